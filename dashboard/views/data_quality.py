"""Data quality: unmapped accounts, unusual states, jobs without GPU accounting,
unreadable lines, the last collection, and the difference from sreport."""

import streamlit as st

from dashboard import queries, state

period = state.current_period()
rep = state.report(period)
dq = queries.data_quality(rep)

st.title(f"Data quality · {period.label}")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Last collection", (dq["last_collection"] or "never")[:16].replace("T", " "),
          help=f"status: {dq['last_collection_status'] or 'none'}")
c2.metric("Unmapped accounts", f"{len(dq['unmapped']):,}")
c3.metric("Jobs without GPU accounting", f"{dq['jobs_without_gpu_accounting']:,}")
c4.metric("Unreadable sacct lines", f"{dq['rejected_lines']:,}")

st.subheader("Accounts that map to no category")
if dq["unmapped"].empty:
    st.success("Every account with use maps to a category.")
else:
    state.table(dq["unmapped"], hours=("gpu_hours",))
if not dq["ambiguous_accounts"].empty:
    st.warning("Accounts that match several categories (the first wins):")
    state.table(dq["ambiguous_accounts"])
if not dq["tree_conflicts"].empty:
    st.warning("Accounts under different parents on different clusters (the first "
               "cluster's parent counts for the facility):")
    state.table(dq["tree_conflicts"])
if not dq["nodes_without_inventory"].empty:
    st.warning("Nodes in maintenance that no collection has seen, counted at the cluster's "
               "average GPUs per node:")
    state.table(dq["nodes_without_inventory"])

st.subheader("Unusual job states")
if dq["unusual_states"].empty:
    st.success("No job in an unusual state in this period.")
else:
    state.table(dq["unusual_states"], counts=("jobs",))

if not dq["rejected_sample"].empty:
    st.subheader("Unreadable lines (newest)")
    state.table(dq["rejected_sample"])

st.subheader("Difference from sreport (closed months)")
checks = state.checks()
if checks.empty:
    state.empty("No month checked yet: run `gpu-usage verify --month last` (it compares "
                "every account with sreport and records the result here).")
else:
    bad = int((checks["differing"] > 0).sum())
    (st.warning if bad else st.success)(
        f"{bad} of {len(checks)} checked month(s) differ from sreport by more than a "
        "GPU-minute on some account.")
    state.table(checks, hours=("max_difference_minutes", "ours_gpu_minutes",
                               "sreport_gpu_minutes"), counts=("accounts", "differing"))
