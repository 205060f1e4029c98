"""My projects (a PI's only page): their accounts, their users, their allocations and
burn-down, and the same as CSV/JSON. Everything comes from `state.report`, which a PI
receives already cut down to their own accounts (collector/access.py)."""

import json

import streamlit as st

from collector.documents.text import csv_text, md_escape
from dashboard import charts, queries, state

period = state.current_period()
rep = state.report(period)
doc = queries.document(rep)             # the JSON document, also offered for download
mine = list(rep.scope.accounts) if hasattr(rep, "scope") else []

st.title(f"My projects · {period.label}")
# The projects' names are in the tables below (plain cells), not in this Markdown line.
st.caption(f"{md_escape(rep.facility, first=True)} · {len(mine)} "
           f"project{'s' if len(mine) != 1 else ''} · "
           f"data until {queries.heading(rep).data_until}")

accounts, users = queries.project_accounts(rep), queries.project_users(rep)
c1, c2 = st.columns(2)
c1.metric("GPU-hours used", state.gpu_h(float(accounts["gpu_hours"].sum())))
c2.metric("Users with GPU jobs", f"{users['user'].nunique():,}")

st.subheader("Projects")
if accounts.empty:
    state.empty(f"No GPU use in your projects in {period.label}.")
else:
    state.table(accounts, hours=("gpu_hours",))
st.subheader("Users")
if users.empty:
    state.empty("No user of your projects ran a GPU job in this period.")
else:
    state.table(users.sort_values("gpu_hours", ascending=False), hours=("gpu_hours",))

allocs = queries.allocations(rep)
st.subheader("Allocations")
if allocs.empty:
    state.empty("No allocation is recorded for your projects.")
else:
    state.table(allocs, hours=("granted_gpu_hours", "used_gpu_hours_total",
                               "used_gpu_hours_period", "planned_gpu_hours_to_date",
                               "projected_unused_gpu_hours"), ratios=("consumed", "plan_ratio"))
    dated = allocs[allocs["start"].notna()]
    if not dated.empty:
        account = st.selectbox("Burn-down of", list(dated["account"]), key="pi_burn_account")
        row = dated.set_index("account").loc[account]
        st.altair_chart(charts.burn_chart(state.burn(account), float(row["granted_gpu_hours"]),
                                          f"{row['project']}: {row['granted_gpu_hours']:,.0f} "
                                          "GPU-h granted (red line)"), use_container_width=True)

d1, d2 = st.columns(2)
# csv_text: the report's CSV writer, so no user or account name reaches a spreadsheet
# as a formula.
d1.download_button("Users (CSV)", csv_text(users.columns, users.itertuples(index=False)),
                   mime="text/csv",
                   file_name=f"gpu-usage-{period.label}-users.csv")
d2.download_button("My projects (JSON)", json.dumps(doc, indent=2, ensure_ascii=False),
                   file_name=f"gpu-usage-{period.label}-projects.json",
                   mime="application/json")
