"""Allocations: granted, used, % consumed, linear plan, projected exhaustion; burn-down."""

import streamlit as st

from dashboard import charts, queries, state

period = state.current_period()
rep = state.report(period)
df = queries.allocations(rep)

st.title(f"Allocations · {period.label}")
if df.empty:
    state.empty("No allocations: add [[allocations]] to the policy file, or give Slurm "
                "accounts a GrpTRESMins=gres/gpu=N budget.")
    st.stop()

which = st.radio("Show", ("all", "over", "under"), horizontal=True, key="alloc_filter",
                 format_func={"all": "All", "over": "Ahead of plan or used up",
                              "under": "Behind plan or projected unused"}.get)
shown = queries.filter_allocations(df, which)
if shown.empty:
    state.empty("No allocation matches this filter.")
else:
    state.table(shown, hours=("granted_gpu_hours", "used_gpu_hours_total",
                              "used_gpu_hours_period", "planned_gpu_hours_to_date",
                              "projected_unused_gpu_hours"),
                ratios=("consumed", "plan_ratio"))
    st.caption("consumed = used / granted; plan ratio = used / linear plan to date; "
               "projected exhaustion: the day the budget runs out at the burn rate so far.")

dated = shown[shown["start"].notna()]
if not dated.empty:
    st.subheader("Burn-down")
    account = st.selectbox("Allocation", list(dated["account"]), key="burn_account",
                           format_func=lambda a: f"{dated.set_index('account').at[a, 'project']}"
                                                 f" ({a})")
    row = dated.set_index("account").loc[account]
    st.altair_chart(charts.burn_chart(state.burn(account), float(row["granted_gpu_hours"]),
                                      f"{row['project']}: {row['granted_gpu_hours']:,.0f} "
                                      "GPU-h granted (red line)"), use_container_width=True)
