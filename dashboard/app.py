"""The dashboard's entry point: `gpu-usage dashboard` runs `streamlit run` on this file.

It loads the policy named by GPU_USAGE_CONFIG, draws the period picker in the
sidebar (shared by every page) and runs the chosen page from views/.
"""

import streamlit as st

from collector.documents.text import md_escape
from dashboard import state

st.set_page_config(page_title="GPU usage", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/categories.py", title="Categories", icon=":material/category:"),
    st.Page("views/allocations.py", title="Allocations", icon=":material/account_balance:"),
    st.Page("views/job_mix.py", title="Job mix", icon=":material/stacked_bar_chart:"),
    st.Page("views/energy.py", title="Energy", icon=":material/electric_bolt:"),
    st.Page("views/efficiency.py", title="GPU efficiency", icon=":material/speed:"),
    st.Page("views/live.py", title="Live", icon=":material/bolt:"),
    st.Page("views/data_quality.py", title="Data quality", icon=":material/fact_check:"),
    st.Page("views/reports.py", title="Reports", icon=":material/description:"),
]

# A PI sees their own projects only; their navigation has no other page, and every
# query behind the operator pages refuses them too (state.operator_only).
PI_PAGES = [st.Page("views/projects.py", title="My projects", icon=":material/folder:",
                    default=True)]

cfg = state.settings()
who = state.viewer()
if who.role == "none":
    st.title("GPU usage")
    state.said(st.error, "No access:", who.why or "")
    st.stop()
page = st.navigation(PAGES if who.operator else PI_PAGES)
names = cfg.slurm.clusters
st.sidebar.markdown(f"**{md_escape(cfg.facility.name)}** · "
                    + (f"cluster `{names[0]}`" if len(names) == 1 else f"{len(names)} clusters"))
st.session_state["cluster"] = state.cluster_picker(cfg)
if cfg.dashboard.auth is None:
    st.sidebar.caption("No [dashboard.auth] configured: listening on localhost only, "
                       "every visitor is an operator.")
else:
    st.sidebar.text(f"Signed in as {who.user} ({who.role})")  # text: never a mailto link
st.session_state["period"] = state.period_picker(cfg)
page.run()
