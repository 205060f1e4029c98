"""Categories: drill down from category to project to user; GPU type and partition."""

import streamlit as st

from collector.documents.text import md_escape
from dashboard import charts, queries, state

cfg = state.settings()
period = state.current_period()
rows = state.rows(period)
order = queries.category_order(cfg)

st.title(f"Categories · {period.label}")
if rows.empty:
    state.empty(f"No GPU use in {period.label}: nothing to break down.")
    st.stop()

by_cat = queries.breakdown(rows, "category")
st.altair_chart(charts.share_bars(by_cat, "category", "GPU-hours per category", order),
                use_container_width=True)
present = [c for c in order if c in set(by_cat["category"])]
category = st.selectbox("Category", present, key="drill_category")
projects = queries.breakdown(rows, "account", category=category)
left, right = st.columns(2)
with left:
    st.subheader(f"Projects in {md_escape(category)}")
    state.table(projects, hours=("gpu_hours",), ratios=("share",))
with right:
    project = st.selectbox("Project (Slurm account)", list(projects["account"]),
                           key="drill_project")
    st.subheader("Users of the project")  # its name is in the box above, as text
    state.table(queries.breakdown(rows, "user", category=category, account=project),
                hours=("gpu_hours",), ratios=("share",))

st.subheader(f"{md_escape(category)}: by GPU type and partition")
g, p = st.columns(2)
with g:
    gt = queries.breakdown(rows, "gpu_type", category=category)
    st.altair_chart(charts.share_bars(gt, "gpu_type", "GPU type"), use_container_width=True)
with p:
    pt = queries.breakdown(rows, "partition", category=category)
    st.altair_chart(charts.share_bars(pt, "partition", "Partition"), use_container_width=True)
