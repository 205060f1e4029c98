"""Job mix: GPU-hours by job size and by use phase (WCKey) per category; queue wait."""

import streamlit as st

from dashboard import charts, queries, state

cfg = state.settings()
period = state.current_period()
rep = state.report(period)
order = queries.category_order(cfg)

st.title(f"Job mix · {period.label}")
sizes, phases, waits = queries.job_sizes(rep), queries.phases(rep), queries.queue_wait(rep)
if sizes.empty and phases.empty:
    state.empty(f"No jobs ran on GPUs in {period.label}.")
    st.stop()
left, right = st.columns(2)
with left:
    st.altair_chart(charts.stacked_by_category(sizes, "size_class", "gpu_hours", order,
                                               "By job size", "GPU-hours"),
                    use_container_width=True)
with right:
    st.altair_chart(charts.stacked_by_category(phases, "phase", "gpu_hours", order,
                                               "By use phase (WCKey)", "GPU-hours"),
                    use_container_width=True)
st.subheader("Queue wait per category")
if waits.empty:
    state.empty("No GPU job started in this period.")
else:
    state.table(waits, hours=("median_wait_hours", "mean_wait_hours"), counts=("jobs_started",))
    st.caption("Wait = start - eligible time, of GPU jobs that started in the period; "
               "hours. The median is interpolated within wait bins.")
state.table(sizes, hours=("gpu_hours",), counts=("jobs_started",))
