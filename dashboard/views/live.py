"""Live: GPUs running and pending per category now (squeue and sinfo)."""

import streamlit as st

from dashboard import charts, queries, state

cfg = state.settings()
order = queries.category_order(cfg)
st.title("Live")
live, why = state.live()
if live is None:
    state.said(st.warning, "Slurm cannot be reached from the dashboard, so there is no live "
               "view:", why or "")
    st.stop()
running, pending = int(live.by_category["running_gpus"].sum()), int(
    live.by_category["pending_gpus"].sum())
c1, c2, c3 = st.columns(3)
c1.metric("GPUs running", f"{running:,} of {live.gpus_total:,}")
c2.metric("GPUs requested by pending jobs", f"{pending:,}")
c3.metric("GPUs on available nodes", f"{live.gpus_available:,}")
st.caption(f"squeue and sinfo read {state.age(live.taken_s)} (at most every "
           f"{state.LIVE_TTL_S} s)")
if running == 0 and pending == 0:
    state.empty("No job holds or waits for GPUs right now.")
else:
    st.altair_chart(charts.live_bars(live.by_category, order), use_container_width=True)
state.table(live.by_category, counts=("running_gpus", "running_jobs", "pending_gpus",
                                      "pending_jobs"))
if live.rejected:
    st.warning(f"{live.rejected} squeue/sinfo line(s) could not be read.")
