"""Altair charts for the dashboard (no Streamlit): one colour per category everywhere,
units on every axis, quotas drawn as black ticks on the usage bars."""

from __future__ import annotations

import altair as alt
import pandas as pd

from collector.engine.model import UNMAPPED

# Tableau 10 plus two; a category keeps its colour on every page and chart.
_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
            "#ff9da7", "#9c755f", "#17becf", "#bcbd22", "#1f77b4")
UNMAPPED_COLOUR = "#9d9d9d"


def category_scale(order: list[str]) -> alt.Scale:
    named = [c for c in order if c != UNMAPPED]
    colours = [_COLOURS[i % len(_COLOURS)] for i in range(len(named))]
    return alt.Scale(domain=[*named, UNMAPPED], range=[*colours, UNMAPPED_COLOUR])


def colour_of(order: list[str], category: str) -> str:
    scale = category_scale(order)
    return dict(zip(scale.domain, scale.range, strict=True)).get(category, UNMAPPED_COLOUR)


def quota_bars(df: pd.DataFrame, key: str, order: list[str] | None = None,
               title: str = "") -> alt.LayerChart:
    """Horizontal bars of GPU-hours used, with the quota as a tick on each bar."""
    y = alt.Y(f"{key}:N", sort=list(df[key]), title=None)
    colour = (alt.Color(f"{key}:N", scale=category_scale(order), legend=None) if order
              else alt.value("#4e79a7"))
    tooltip = [alt.Tooltip(f"{key}:N"),
               alt.Tooltip("gpu_hours:Q", title="used (GPU-h)", format=",.1f"),
               alt.Tooltip("quota_gpu_hours:Q", title="quota (GPU-h)", format=",.1f")]
    bars = alt.Chart(df).mark_bar().encode(
        y=y, x=alt.X("gpu_hours:Q", title="GPU-hours (bar: used; black tick: quota)",
                     axis=alt.Axis(format=",.0f")),
        color=colour, tooltip=tooltip)
    ticks = alt.Chart(df).mark_tick(color="black", thickness=3, size=22).encode(
        y=y, x="quota_gpu_hours:Q", tooltip=tooltip)
    return (bars + ticks).properties(title=title, height=alt.Step(30))


def day_ticks(days: int) -> dict:
    """Ticks on whole days only, at most about 15 of them: left to itself, Vega-Lite puts
    ticks every few hours on a short span and prints the same date under each."""
    return {"interval": "day", "step": max(1, -(-days // 15))}


def daily_stack(df: pd.DataFrame, order: list[str]) -> alt.Chart:
    """GPU-hours per day, stacked by category."""
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("day:T", title="day", axis=alt.Axis(
            format="%d %b", tickCount=day_ticks(df["day"].nunique()))),
        y=alt.Y("sum(gpu_hours):Q", title="GPU-hours per day", axis=alt.Axis(format=",.0f")),
        color=alt.Color("category:N", scale=category_scale(order), title="category"),
        order=alt.Order("category:N"),
        tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "category:N",
                 alt.Tooltip("gpu_hours:Q", title="GPU-hours", format=",.1f")],
    ).properties(height=300)


def share_bars(df: pd.DataFrame, key: str, title: str, colour_by_category: list[str] | None
               = None) -> alt.Chart:
    """GPU-hours per value of `key`, largest first."""
    enc = {"color": alt.Color(f"{key}:N", scale=category_scale(colour_by_category),
                              legend=None)} if colour_by_category else {}
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y(f"{key}:N", sort="-x", title=None),
        x=alt.X("gpu_hours:Q", title="GPU-hours", axis=alt.Axis(format=",.0f")),
        tooltip=[f"{key}:N", alt.Tooltip("gpu_hours:Q", title="GPU-hours", format=",.1f"),
                 alt.Tooltip("share:Q", format=".1%")], **enc,
    ).properties(title=title, height=alt.Step(26))


def energy_bars(df: pd.DataFrame, order: list[str]) -> alt.Chart:
    """kWh per category (its colour), with its share of the facility's energy."""
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("category:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False)),
        x=alt.X("kwh:Q", title="kWh", axis=alt.Axis(format=",.0f")),
        color=alt.Color("category:N", scale=category_scale(order), legend=None),
        tooltip=["category:N", alt.Tooltip("kwh:Q", title="kWh", format=",.1f"),
                 alt.Tooltip("share_of_energy:Q", title="share of energy", format=".1%"),
                 alt.Tooltip("kwh_per_gpu_hour:Q", title="kWh per GPU-hour", format=",.3f")],
    ).properties(title="Energy by category", height=alt.Step(26))


def efficiency_bars(df: pd.DataFrame, order: list[str]) -> alt.Chart:
    """Per category, side by side: its quota, what it was allocated, and of that how much
    the GPUs were busy (an upper bound) and allocated but idle."""
    measures = ["quota", "allocated", "busy (upper bound)", "idle-allocated"]
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("category:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False)),
        yOffset=alt.YOffset("measure:N", sort=measures),
        x=alt.X("gpu_hours:Q", title="GPU-hours", axis=alt.Axis(format=",.0f")),
        color=alt.Color("measure:N", sort=measures, title=None,
                        scale=alt.Scale(domain=measures,
                                        range=["#bbbbbb", "#4c78a8", "#54a24b", "#e45756"])),
        tooltip=["category:N", "measure:N",
                 alt.Tooltip("gpu_hours:Q", title="GPU-hours", format=",.1f")],
    ).properties(title="Quota, allocated, busy and idle-allocated GPU-hours by category",
                 height=alt.Step(12))


def stacked_by_category(df: pd.DataFrame, part: str, value: str, order: list[str],
                        title: str, unit: str) -> alt.Chart:
    """Per category (one bar each), stacked by `part` (job size class, use phase...)."""
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("category:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False)),
        x=alt.X(f"{value}:Q", title=unit, axis=alt.Axis(format=",.0f")),
        color=alt.Color(f"{part}:N", title=part.replace("_", " ")),
        tooltip=["category:N", f"{part}:N", alt.Tooltip(f"{value}:Q", title=unit,
                                                        format=",.1f")],
    ).properties(title=title, height=alt.Step(26))


def burn_chart(df: pd.DataFrame, granted: float, title: str) -> alt.LayerChart:
    """Used so far against the linear plan, with the grant as a horizontal rule."""
    long = df.melt(id_vars="day", value_vars=["used_gpu_hours", "plan_gpu_hours"],
                   var_name="series", value_name="gpu_hours").dropna()
    long["series"] = long["series"].map({"used_gpu_hours": "used",
                                         "plan_gpu_hours": "linear plan"})
    lines = alt.Chart(long).mark_line().encode(
        x=alt.X("day:T", title="day"),
        y=alt.Y("gpu_hours:Q", title="GPU-hours (cumulative)", axis=alt.Axis(format=",.0f")),
        color=alt.Color("series:N", scale=alt.Scale(domain=["used", "linear plan"],
                                                    range=["#4e79a7", "#9d9d9d"])),
        strokeDash=alt.StrokeDash("series:N", scale=alt.Scale(
            domain=["used", "linear plan"], range=[[1, 0], [6, 4]]), legend=None),
        tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "series:N",
                 alt.Tooltip("gpu_hours:Q", format=",.1f")])
    rule = alt.Chart(pd.DataFrame({"granted": [granted]})).mark_rule(
        color="#e15759").encode(y="granted:Q")
    return (lines + rule).properties(title=title, height=260)


def live_bars(df: pd.DataFrame, order: list[str]) -> alt.Chart:
    long = df.melt(id_vars="category", value_vars=["running_gpus", "pending_gpus"],
                   var_name="state", value_name="gpus")
    long["state"] = long["state"].map({"running_gpus": "running", "pending_gpus": "pending"})
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("category:N", sort=order, title=None),
        x=alt.X("gpus:Q", title="GPUs", axis=alt.Axis(format=",.0f", tickMinStep=1)),
        color=alt.Color("state:N", scale=alt.Scale(domain=["running", "pending"],
                                                   range=["#59a14f", "#edc948"])),
        tooltip=["category:N", "state:N", "gpus:Q"],
    ).properties(height=alt.Step(26))
