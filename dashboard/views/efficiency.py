"""GPU efficiency: per category its quota, what it was allocated and how much of that
the GPUs were busy (an upper bound: Slurm keeps peaks) or allocated but idle; the most
idle-allocated projects; use phases and job sizes with their energy. Definitions:
docs/efficiency.md."""

import streamlit as st

from collector.documents.text import efficiency_sentence, md_escape
from dashboard import charts, queries, state

cfg = state.settings()
period = state.current_period()
rep = state.report(period)
order = queries.category_order(cfg)
eff = rep.efficiency

st.title(f"GPU efficiency · {period.label}")
df = queries.efficiency(rep)
if eff.recorded:
    total = eff.total
    tiles = st.columns(4)
    tiles[0].metric("Busy (upper bound)", state.pct(total.busy_share))
    tiles[1].metric("Idle-allocated", state.pct(total.idle_share))
    tiles[2].metric("Jobs idle > 1 h", f"{total.long_idle_jobs:,}")
    tiles[3].metric("GPU-hours with GPU data", state.pct(eff.coverage))
else:
    state.empty(f"GPU use is {md_escape(efficiency_sentence(rep))}. Quota and allocated GPU-hours "
                "are shown; busy and idle are no data.")
# Quota and allocated are known without GPU data: the chart shows what there is.
st.altair_chart(charts.efficiency_bars(queries.efficiency_bars(df), order),
                use_container_width=True)
state.table(df, hours=("quota_gpu_hours", "gpu_hours", "gpu_hours_with_gpu_data",
                       "busy_gpu_hours", "idle_allocated_gpu_hours",
                       "gpu_hours_of_jobs_idle_over_1h"),
            ratios=("busy_share", "idle_share"), counts=("jobs_idle_over_1h",),
            rates=("gpu_memory_peak_gib",))
if eff.recorded:
    st.subheader("Most idle-allocated projects")
    state.table(queries.top_idle_projects(rep),
                hours=("gpu_hours", "gpu_hours_with_gpu_data", "idle_allocated_gpu_hours"),
                ratios=("idle_share",), counts=("jobs_idle_over_1h",))
    left, right = st.columns(2)
    for column, part, title in ((left, "phase", "By use phase"), (right, "size", "By job size")):
        with column:
            st.subheader(title)
            state.table(queries.efficiency_by(rep, part),
                        hours=("gpu_hours", "gpu_hours_with_gpu_data", "kwh"),
                        ratios=("busy_share", "idle_share"), counts=("jobs_idle_over_1h",),
                        rates=("kwh_per_gpu_hour",))
# The sentence names the policy's categories over the idle threshold.
st.caption(f"GPU efficiency: {md_escape(efficiency_sentence(rep))}.")
