"""Energy: kWh by category from Slurm's energy accounting, each category's share of the
facility's energy, kWh per GPU-hour, and the estimates from the configured factors."""

import streamlit as st

from collector.documents.text import energy_sentence
from dashboard import charts, queries, state

cfg = state.settings()
period = state.current_period()
rep = state.report(period)
order = queries.category_order(cfg)

st.title(f"Energy · {period.label}")
if not rep.energy.recorded:
    state.empty(f"Energy is {energy_sentence(rep)}.")
    st.stop()
total = rep.energy.total
tiles = st.columns(4)
tiles[0].metric("Energy (nodes)", f"{total.energy_j / 3.6e6:,.0f} kWh")
tiles[1].metric("kWh per GPU-hour", f"{total.kwh_per_gpu_hour or 0:,.3f}")
tiles[2].metric("GPU-hours with energy", state.pct(rep.energy.coverage))
if total.facility_kwh is not None:
    tiles[3].metric("Facility (est., x PUE)", f"{total.facility_kwh:,.0f} kWh")
df = queries.energy(rep)
shown = df[df["kwh"].notna()]
st.altair_chart(charts.energy_bars(shown, order), use_container_width=True)
state.table(df, hours=("gpu_hours", "gpu_hours_with_energy", "kwh", "facility_kwh_estimate",
                       "water_litres_estimate", "co2e_kg_estimate"),
            ratios=("share_of_energy",), rates=("kwh_per_gpu_hour",))
st.caption(f"Energy: {energy_sentence(rep)}.")
