"""Reports: pick a month and download its PDF, Excel and CSV report."""

import streamlit as st

from collector.documents.text import md_escape, render
from dashboard import queries, state

cfg = state.settings()
st.title("Monthly reports")
month = st.selectbox("Month", queries.recent_months(cfg)[1:] + queries.recent_months(cfg)[:1],
                     key="report_month")
period = queries.period_of(cfg, "month", month)
rep = state.report(period)
st.caption(f"{md_escape(rep.facility, first=True)} · {month} · generated "
           f"{queries.heading(rep).generated} · the same figures as "
           f"`gpu-usage report --month {month} --format json`")
c1, c2, c3, c4 = st.columns(4)
c1.download_button("PDF (for funders)", state.document(period, "pdf"),
                   file_name=f"gpu-usage-{month}.pdf", mime="application/pdf")
c2.download_button("Excel", state.document(period, "xlsx"), file_name=f"gpu-usage-{month}.xlsx",
                   mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
c3.download_button("CSV", render(rep, "csv"), file_name=f"gpu-usage-{month}.csv",
                   mime="text/csv")
c4.download_button("JSON", render(rep, "json"), file_name=f"gpu-usage-{month}.json",
                   mime="application/json")
# Shown as the Markdown text it is, not rendered: Streamlit turns any URL, e-mail
# address or :icon: in rendered text into a link or an icon whatever the escaping, and
# the report holds text account coordinators write (organisations, descriptions).
st.code(render(rep, "md"), language="markdown", wrap_lines=False)
