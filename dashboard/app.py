"""The dashboard's entry point: `gpu-usage dashboard` runs `streamlit run` on this file.

It loads the policy named by GPU_USAGE_CONFIG, draws the period picker in the
sidebar (shared by every page) and runs the chosen page from views/.
"""

import streamlit as st

from dashboard import state

st.set_page_config(page_title="GPU usage", page_icon=":material/memory:", layout="wide")

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/categories.py", title="Categories", icon=":material/category:"),
    st.Page("views/allocations.py", title="Allocations", icon=":material/account_balance:"),
    st.Page("views/job_mix.py", title="Job mix", icon=":material/stacked_bar_chart:"),
    st.Page("views/live.py", title="Live", icon=":material/bolt:"),
    st.Page("views/data_quality.py", title="Data quality", icon=":material/fact_check:"),
    st.Page("views/reports.py", title="Reports", icon=":material/description:"),
]

page = st.navigation(PAGES)
cfg = state.settings()
st.sidebar.markdown(f"**{cfg.facility.name}** · cluster `{cfg.slurm.cluster}`")
st.session_state["period"] = state.period_picker(cfg)
page.run()
