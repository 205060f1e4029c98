"""Overview: capacity tiles, usage per pool and category against quota, the daily
trend by category and the commercial-share check."""

import streamlit as st

from collector.documents.text import md_escape
from dashboard import charts, queries, state

cfg = state.settings()
period = state.current_period()
rep = state.report(period)
head = queries.heading(rep)
live, _ = state.live()
order = queries.category_order(cfg)

scope = state.cluster()
# A cluster's name has no backtick (config.SLURM_NAME): in a code span, never a link.
st.title(f"GPU usage · {period.label}" + (f" · cluster `{scope}`" if scope else ""))
st.caption(f"{md_escape(head.facility, first=True)} · {head.start[:10]} to {head.end[:10]} "
           f"({head.timezone}) · "
           f"data until {head.data_until} · last collection {head.last_collection or 'never'}")

# The live view (squeue) is the facility's: not shown against one cluster's figures.
t = queries.tiles(rep, sum(live.by_category["running_gpus"]) if live and not scope else None)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Available GPU-hours", state.gpu_h(t["available_gpu_hours"]),
          help="Nominal GPU-hours minus down and planned-down time")
c2.metric("Used GPU-hours", state.gpu_h(t["used_gpu_hours"]))
c3.metric("Utilisation", state.pct(t["utilisation"]), help="Used / available")
c4.metric("GPUs allocated now", "-" if t["gpus_allocated_now"] is None
          else f"{t['gpus_allocated_now']:,} of {t['gpus']:,}",
          help="From squeue, for the whole facility; '-' when Slurm cannot be reached "
          "from the dashboard or one cluster is picked")

if rep.clusters:
    st.subheader("Clusters")
    state.table(queries.clusters(rep), hours=("available_gpu_hours", "allocated_gpu_hours"),
                ratios=("utilisation", "share_of_used"), counts=("gpus",))

cats = queries.categories(rep)
pools = queries.pools(rep)
if t["used_gpu_hours"] == 0:
    state.empty(f"No GPU use recorded in {period.label} yet: the bars below show the quotas "
                "only. Pick an earlier period in the sidebar, or run a collection.")
left, right = st.columns([2, 1])
with left:
    st.subheader("Categories against quota")
    st.altair_chart(charts.quota_bars(cats, "category", order), use_container_width=True)
with right:
    st.subheader("Pools against quota")
    st.altair_chart(charts.quota_bars(pools, "pool"), use_container_width=True)
    com = queries.commercial(rep)
    share, limit = com["share_of_pool"], com["max_share_of_pool"]
    text = (f"Commercial use: **{state.pct(share)}** of the {md_escape(com['pool'])} pool "
            f"(limit {limit:.0%}; {com['gpu_hours']:,.1f} of {com['pool_quota_gpu_hours']:,.1f}"
            " GPU-h)")
    (st.success if com["within_limit"] else st.warning)(
        text + ("" if com["within_limit"] else " - **over the limit**"))

st.subheader("Daily GPU-hours by category")
days = state.daily(period)
if days.empty:
    state.empty("No daily usage in this period.")
else:
    st.altair_chart(charts.daily_stack(days, order), use_container_width=True)

st.subheader("Per category")
state.table(cats, hours=("gpu_hours", "quota_gpu_hours", "difference_gpu_hours",
                         "ytd_gpu_hours", "ytd_quota_gpu_hours"),
            ratios=("used_of_quota", "quota_share", "share_of_available"))
