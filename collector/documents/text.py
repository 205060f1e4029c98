"""The typed report laid out as a terminal table, Markdown, CSV or JSON.

Only layout happens here: every number comes from engine.report, every conversion
(hours, ISO text) and every label from each field's `fig` in the model (convert.py).
CSV is one file of sections, each introduced by a `# section` line and its own
header row, so that a spreadsheet or `awk` can pick the table it needs.

Text from Slurm and the policy file has no length limit and may start like a formula;
documents have limits and spreadsheets evaluate formulas. These functions decide it
for every format (documents.py and the dashboard's downloads use them too):

- `cut` shortens one field: at most SHOWN_MAX characters where people read the text
  (PDF, Markdown, the terminal table) and CELL_MAX where a spreadsheet reads it (CSV,
  XLSX; Excel holds at most 32,767 characters in a cell). A cut field ends with
  "… [cut, N characters]", N its full length. JSON keeps every field whole.
- `csv_cell` makes one CSV cell, and `csv_text`, the only CSV writer, puts every cell
  through it. Text that a spreadsheet would read as a formula (its first character,
  or its first after leading white space, one of = + - @ tab CR LF NUL: OWASP's CSV
  injection guidance) gets a leading single quote, which spreadsheets show as text;
  the csv module quotes a cell holding the delimiter, quotes or a line break. Text
  is a `str` value (a list is joined into one): a number (int or float, numpy's too)
  is written as the number it is, so -0.25 stays -0.25.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from collector.documents import convert
from collector.engine import model

FORMATS = ("table", "csv", "md", "json")

SHOWN_MAX = 200      # characters of one field shown in a PDF, Markdown or terminal table
CELL_MAX = 32_000    # characters of one CSV or XLSX cell (Excel's limit: 32,767)
# A text cell starting with one of these is a formula to Excel, LibreOffice or Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")

# (section title, path in the report, columns): columns are fields of the section's row
# type (checked below); a table's header is the field's label, a CSV header its key.
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Capacity (GPU-hours)", "capacity", ("gpus", "nominal_s", "down_s", "planned_down_s",
     "available_s", "allocated_s", "utilisation", "availability")),
    ("Clusters", "clusters", ("cluster", "gpus", "available_s", "allocated_s", "utilisation",
                              "share_of_allocated", "last_collection_s")),
    ("Pools against their share", "pools", ("pool", "used_s", "quota_share", "quota_s",
     "share_of_available", "ytd_used_s", "ytd_quota_s")),
    ("Categories against their quota", "categories", ("category", "pool", "used_s",
     "quota_share", "quota_s", "difference_s", "used_of_quota", "share_of_available",
     "ytd_used_s", "ytd_quota_s")),
    ("Commercial use (cap on the pool)", "commercial", ("category", "pool", "used_s",
     "pool_quota_s", "share_of_pool", "max_share_of_pool", "within_limit")),
    ("Partitions", "partitions", ("partition", "used_s", "share_of_allocated")),
    ("GPU types", "gpu_types", ("gpu_type", "used_s", "weight", "normalised_s", "energy_j")),
    ("Access modes", "access_modes", ("access_mode", "used_s")),
    ("Countries", "countries", ("country", "used_s")),
    ("Allocations", "allocations", ("account", "category", "state", "granted_s",
     "used_period_s", "used_total_s", "consumed", "planned_s", "projected_exhaustion",
     "projected_unused_s", "warnings")),
    ("Job size", "job_mix.size", ("category", "size_class", "used_s", "jobs_started")),
    ("Use phase (WCKey)", "job_mix.phase", ("category", "phase", "used_s")),
    ("Queue wait", "service.queue_wait", ("category", "jobs_started", "mean_wait_s",
     "median_wait_s")),
    ("Energy by category (jobs whose energy Slurm recorded)", "energy.categories",
     ("category", "pool", "used_s", "measured_s", "energy_j", "kwh_per_gpu_hour",
      "share_of_energy", "facility_kwh", "water_l", "co2e_kg")),
    ("Energy, facility total", "energy.total", ("used_s", "measured_s", "energy_j",
                                                "kwh_per_gpu_hour", "facility_kwh",
                                                "water_l", "co2e_kg")),
    ("GPU efficiency by category (from job steps; busy is an upper bound)",
     "efficiency.categories", ("category", "used_s", "quota_s", "measured_s", "busy_s", "idle_s",
                               "busy_share", "idle_share", "long_idle_jobs", "long_idle_s",
                               "mem_peak_gib", "over_threshold")),
    ("GPU efficiency, facility total", "efficiency.total",
     ("used_s", "measured_s", "busy_s", "idle_s", "busy_share", "idle_share", "long_idle_jobs",
      "long_idle_s", "mem_peak_gib")),
    ("Most idle-allocated projects", "efficiency.top_idle_projects",
     ("group", "category", "used_s", "measured_s", "idle_s", "idle_share", "long_idle_jobs",
      "over_threshold")),
    ("GPU efficiency and energy by use phase", "efficiency.phases",
     ("group", "used_s", "measured_s", "busy_share", "idle_share", "long_idle_jobs", "energy_j",
      "kwh_per_gpu_hour")),
    ("GPU efficiency and energy by job size", "efficiency.sizes",
     ("group", "used_s", "measured_s", "busy_share", "idle_share", "long_idle_jobs", "energy_j",
      "kwh_per_gpu_hour")),
    ("Accounts", "accounts", ("account", "category", "pool", "organisation", "used_s",
                              "energy_j")),
    ("Users", "users", ("user", "account", "used_s", "energy_j")),
    ("Unmapped accounts", "unmapped_accounts", ("account", "used_s", "in_slurm_tree")),
)
ROW_TYPES: dict[str, type] = {
    "capacity": model.CapacityFigures, "clusters": model.ClusterUse, "pools": model.PoolUse,
    "categories": model.CategoryUse, "commercial": model.CommercialCheck,
    "partitions": model.PartitionUse, "gpu_types": model.GpuTypeUse,
    "access_modes": model.AccessModeUse, "countries": model.CountryUse,
    "allocations": model.AllocationStatus, "job_mix.size": model.SizeUse,
    "job_mix.phase": model.PhaseUse, "service.queue_wait": model.QueueWait,
    "energy.categories": model.EnergyUse, "energy.total": model.EnergyUse,
    "efficiency.categories": model.EfficiencyUse, "efficiency.total": model.EfficiencyUse,
    "efficiency.top_idle_projects": model.EfficiencyUse,
    "efficiency.phases": model.EfficiencyUse, "efficiency.sizes": model.EfficiencyUse,
    "accounts": model.AccountUse, "users": model.UserUse,
    "unmapped_accounts": model.UnmappedAccount,
}
for _title, _path, _columns in SECTIONS:  # a misspelt column fails at import
    for _c in _columns:
        convert.field_of(ROW_TYPES[_path], _c)
PERCENT_UNITS = ("ratio", "share")
# Sections a report has only when it has rows (a facility of one cluster: no clusters).
OPTIONAL = ("clusters",)


def sections_of(report: model.Report | model.ProjectsReport
                ) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """The report's sections: SECTIONS without an optional one that is empty."""
    return tuple((t, p, c) for t, p, c in SECTIONS
                 if p not in OPTIONAL or getattr(report, p, ()))


def header(path: str, column: str) -> str:
    """A column's label: what a person reads above it."""
    return convert.label(ROW_TYPES[path], column)


def numeric(path: str, column: str) -> bool:
    return convert.unit(ROW_TYPES[path], column) in (
        "gpu_s", "grant_s", "wait_s", "joules", "rate", "span_s", "ratio", "share", "weight",
        "count")


def get_rows(report: model.Report | model.ProjectsReport, path: str) -> list[dict]:
    """The section's rows, each a dict of its columns' document values (hours, ISO
    dates, warning sentences)."""
    value: object = report
    for part in path.split("."):
        value = getattr(value, part)
    rows = value if isinstance(value, tuple) else (value,)
    columns = dict((k, c) for _, k, c in SECTIONS)[path]
    return [convert.row(r, columns, report.period.timezone) for r in rows]


def cell_of(path: str, column: str, value: object) -> str:
    """One value as a table shows it (shares as %, GPU-hours with one decimal)."""
    kind = convert.unit(ROW_TYPES[path], column)
    if value is not None and kind in PERCENT_UNITS and isinstance(value, float | int):
        return f"{value:.1%}"
    if isinstance(value, float) and kind == "rate":
        return f"{value:,.3f}"
    return cell(column, value)


def cell(column: str, value: object) -> str:
    """A value as text (the unit decides shares: see `cell_of`)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, list):
        return "; ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def cut(text: str, limit: int) -> str:
    """The text if it has at most `limit` characters, else its start and a marker that
    says how long it was, `limit` characters in all."""
    if len(text) <= limit:
        return text
    mark = f"\u2026 [cut, {len(text):,} characters]"
    return text[:max(0, limit - len(mark))] + mark


def cut_fields(value: Any, limit: int = SHOWN_MAX) -> Any:
    """A copy of the report (or any part of it) with every string, keys included, cut
    to `limit` characters; numbers and the rest unchanged."""
    if isinstance(value, str):
        return cut(value, limit)
    if isinstance(value, dict):
        return {cut_fields(k, limit): cut_fields(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [cut_fields(v, limit) for v in value]
    return value


def csv_cell(value: object) -> object:
    """One CSV cell: text cut to CELL_MAX and, if a spreadsheet would read it as a
    formula, prefixed with a single quote; a list is text (joined with "; "), None an
    empty cell, and a number stays the number it is."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = "; ".join(map(str, value))
    if not isinstance(value, str):
        return value
    text = cut(value, CELL_MAX)
    if text[:1] in FORMULA_START or text.lstrip()[:1] in FORMULA_START:
        return "'" + text
    return text


class Heading(NamedTuple):
    """What a document or page says above its figures, as text."""

    facility: str
    cluster: str
    label: str              # the period: 2026-10, 2026Q4, ...
    start: str              # ISO instants in the facility's time zone
    end: str
    timezone: str
    hours: float
    data_until: str
    generated: str
    last_collection: str | None


def heading(report: model.Report | model.ProjectsReport, limit: int | None = None) -> Heading:
    """The report's heading; with `limit`, text from the policy cut to that length."""
    p, tz = report.period, report.period.timezone

    def instant(epoch: float | None) -> str | None:
        return convert.convert(epoch, "instant", tz)

    facility, cluster = report.facility, report.cluster
    if limit:
        facility, cluster = cut(facility, limit), cut(cluster, limit)
    return Heading(facility, cluster, p.label, instant(p.start_s), instant(p.end_s), tz,
                   convert.convert(p.length_s, "span_s", tz), instant(p.data_until_s),
                   instant(report.generated_s), instant(report.last_collection_s))


def title_of(report: model.Report | model.ProjectsReport, limit: int | None = None) -> str:
    p, tz = report.period, report.period.timezone
    facility, cluster = report.facility, report.cluster
    if limit:
        facility, cluster = cut(facility, limit), cut(cluster, limit)
    start, end = convert.convert(p.start_s, "instant", tz), convert.convert(p.end_s, "instant", tz)
    return f"{facility} ({cluster}): GPU usage {p.label} ({start} to {end}, {tz})"


def service_lines(report: model.Report, limit: int | None = None) -> Iterator[str]:
    """The report's sentences: service, data quality, and how current it is."""
    s, q, tz = report.service, report.data_quality, report.period.timezone
    paragraph = energy_paragraph(report)
    if paragraph:
        yield paragraph
    served = ", ".join(f"{k} {v}" for k, v in s.projects_served_by_category) or "none"
    yield (f"Users active {s.active_users}, new {s.new_users}; projects active "
           f"{s.active_projects}, new {s.new_projects}; served by category: {served}")
    states = convert.convert(q.unusual_states, "mapping", tz)
    ambiguous = convert.convert(q.ambiguous_accounts, "mapping", tz)
    if limit:
        states, ambiguous = cut_fields(states, limit), cut_fields(ambiguous, limit)
    unseen = (f"; {len(q.nodes_without_inventory)} node(s) in maintenance never seen in the "
              f"node inventory, counted at the cluster's average GPUs per node: "
              f"{', '.join(q.nodes_without_inventory)}" if q.nodes_without_inventory else "")
    conflicts = (f"; accounts under different parents per cluster (the first cluster's "
                 f"parent counts): {_conflicts(q, tz, limit)}" if q.tree_conflicts else "")
    yield (f"Data quality: {q.rejected_lines} rejected sacct line(s); unusual states "
           f"{states or 'none'}; {q.jobs_without_gpu_accounting} job(s) started "
           f"without GPUs; ambiguous accounts {ambiguous or 'none'}; sreport "
           f"would show down {convert.convert(q.sreport_view.down_s, 'gpu_s', tz):,.1f} and "
           f"planned down {convert.convert(q.sreport_view.planned_down_s, 'gpu_s', tz):,.1f} "
           f"GPU-hours ({q.sreport_view.note})"
           f"{unseen}{conflicts}.")
    yield f"Energy: {energy_sentence(report)}."
    yield f"GPU efficiency: {efficiency_sentence(report)}."
    yield (f"Data until {convert.convert(report.period.data_until_s, 'instant', tz)}; "
           f"last collection {convert.convert(report.last_collection_s, 'instant', tz)}.")


def energy_sentence(report: model.Report) -> str:
    """What the energy figures are, or that the cluster recorded none."""
    e, tz = report.energy, report.period.timezone
    gap = ""
    if e.not_collected_before_s is not None:
        gap = (f"jobs stored before {convert.convert(e.not_collected_before_s, 'instant', tz)}"
               " (when this store was upgraded from a version without energy) hold none, "
               "so this period's energy is incomplete: 'gpu-usage collect --from-scratch' "
               "reads it; ")
        if not e.recorded:
            return "not collected for this period: " + gap.removesuffix("; ")
    if not e.recorded:
        return ("not recorded on this cluster in this period: no finished job carries "
                "Slurm's energy TRES (an AcctGatherEnergyType plugin measures it), so the "
                "energy tables show no data, not zero")
    t = e.total
    carbon = dict(e.factors).get("carbon_g_per_kwh") is not None
    it_only = carbon and dict(e.factors).get("pue") is None
    return (gap + f"{convert.convert(t.energy_j, 'joules', tz):,.1f} kWh for "
            f"{convert.convert(t.measured_s, 'gpu_s', tz):,.1f} of "
            f"{convert.convert(t.used_s, 'gpu_s', tz):,.1f} GPU-h "
            f"({e.coverage or 0:.1%}), {t.kwh_per_gpu_hour or 0:.3f} kWh per GPU-h; from the "
            "nodes' sensors, split over periods by each job's time in them; running jobs "
            "and nodes without a sensor have no energy yet (no data)"
            + (f"; facility kWh, water and CO2e are estimates from the configured factors "
               f"({', '.join(f'{k} {v:g}' for k, v in e.factors)})" if e.factors else "")
            + ("; CO2e of the IT energy only (no PUE configured)" if it_only else ""))


def energy_paragraph(report: model.Report) -> str | None:
    """The paragraph on energy and GPU efficiency that quarterly and yearly reports to
    funders carry: the facility's kWh, its estimates, the categories' shares, and how
    busy the allocated GPUs were. None for other periods."""
    if report.period.kind not in ("quarter", "year"):
        return None
    e, eff, tz = report.energy, report.efficiency, report.period.timezone
    parts = [f"Energy and GPU efficiency, {report.period.label}:"]
    if e.recorded and e.total.energy_j is not None:
        t = e.total
        kwh = convert.convert(t.energy_j, "joules", tz)
        parts.append(f"the GPU jobs' nodes used {kwh:,.0f} kWh "
                     f"({t.kwh_per_gpu_hour or 0:.3f} kWh per GPU-hour, measured on "
                     f"{e.coverage or 0:.0%} of the GPU-hours)")
        estimates = [f"{label} {value:,.0f} {unit}" for label, value, unit in (
            ("facility energy", t.facility_kwh, "kWh"), ("water", t.water_l, "litres"),
            ("CO2e", t.co2e_kg, "kg")) if value is not None]
        if estimates:
            parts[-1] += "; estimated from the configured factors: " + ", ".join(estimates)
        shares = sorted(((c.share_of_energy or 0, c.category) for c in e.categories
                         if c.energy_j), reverse=True)
        if shares:
            parts[-1] += "; by category: " + ", ".join(f"{name} {share:.0%}"
                                                       for share, name in shares[:5])
        parts[-1] += "."
    else:
        parts.append(f"energy {energy_sentence(report)}.")
    if eff.recorded:
        t = eff.total
        worst = max((c for c in eff.categories if c.idle_share is not None),
                    key=lambda c: c.idle_share or 0, default=None)
        parts.append(f"Of the allocated GPU-hours with GPU data, at most "
                     f"{t.busy_share or 0:.0%} were busy and {t.idle_share or 0:.0%} allocated "
                     f"but idle; {t.long_idle_jobs:,} job(s) held GPUs idle for more than an "
                     "hour" + (f"; the highest idle share was {worst.category}'s "
                               f"({worst.idle_share:.0%})" if worst else "") + ".")
    else:
        parts.append(f"GPU efficiency: {efficiency_sentence(report)}.")
    return " ".join(parts)


def efficiency_sentence(report: model.Report) -> str:
    """What the GPU efficiency figures are, or that the cluster recorded no GPU use."""
    e, tz = report.efficiency, report.period.timezone
    gap = ""
    if e.not_collected_before_s is not None:
        gap = (f"jobs stored before {convert.convert(e.not_collected_before_s, 'instant', tz)}"
               " (when this store was upgraded from a version without GPU use) hold none: "
               "'gpu-usage collect --from-scratch' reads it; ")
        if not e.recorded:
            return "not collected for this period: " + gap.removesuffix("; ")
    if not e.recorded and not e.read:
        return ('not read: [slurm] gpu_steps is "off", so the collector reads no job steps '
                "and the efficiency tables show no data, not idle GPUs")
    if not e.recorded:
        return ("not recorded on this cluster in this period: no finished job's steps carry "
                "gres/gpuutil (Slurm 23.02+ with a GPU plugin, nvml or rsmi, gathers it), so "
                "the efficiency tables show no data, not idle GPUs")
    t = e.total
    over = [c.category for c in e.categories if c.over_threshold]
    return (gap + f"of {convert.convert(t.measured_s, 'gpu_s', tz):,.1f} GPU-h with GPU data "
            f"({e.coverage or 0:.1%} of {convert.convert(t.used_s, 'gpu_s', tz):,.1f} "
            f"allocated), at most {t.busy_share or 0:.1%} busy and {t.idle_share or 0:.1%} "
            f"allocated but idle; {t.long_idle_jobs:,} job(s) held GPUs idle for more than "
            "an hour. Busy is an upper bound: Slurm keeps each task's peak utilisation, not "
            "its average; time with no GPU data (running jobs, steps without a GPU plugin) "
            "is no data, never idle; idle share over the alert threshold "
            f"({e.idle_threshold:.0%}): {', '.join(over) or 'none'}")


def _conflicts(q: model.DataQuality, tz: str, limit: int | None) -> dict:
    conflicts = convert.convert(q.tree_conflicts, "mapping", tz)
    return cut_fields(conflicts, limit) if limit else conflicts


def facts(report: model.Report, limit: int | None = None) -> list[tuple[str, str]]:
    """The service and data-quality sentences as (what, value) pairs, for a table."""
    s, q, tz = report.service, report.data_quality, report.period.timezone
    states = convert.convert(q.unusual_states, "mapping", tz)
    ambiguous = convert.convert(q.ambiguous_accounts, "mapping", tz)
    if limit:
        states, ambiguous = cut_fields(states, limit), cut_fields(ambiguous, limit)
    out = [
        ("Users", f"{s.active_users:,} active, {s.new_users:,} new"),
        ("Projects", f"{s.active_projects:,} active, {s.new_projects:,} new"),
        ("Projects served by category",
         ", ".join(f"{k} {v}" for k, v in s.projects_served_by_category) or "none"),
        ("Unreadable sacct lines", f"{q.rejected_lines:,}"),
        ("Unusual job states", ", ".join(f"{k} {v}" for k, v in states.items()) or "none"),
        ("Jobs started without GPUs", f"{q.jobs_without_gpu_accounting:,}"),
        ("Ambiguous accounts", "; ".join(f"{a}: {', '.join(c)}" for a, c in ambiguous.items())
         or "none"),
        *([("Accounts under different parents per cluster", "; ".join(
            f"{a}: {', '.join(c)}" for a, c in _conflicts(q, tz, limit).items()))]
          if q.tree_conflicts else []),
        ("sreport's view", f"down {convert.convert(q.sreport_view.down_s, 'gpu_s', tz):,.1f}, "
         f"planned down {convert.convert(q.sreport_view.planned_down_s, 'gpu_s', tz):,.1f} "
         f"GPU-h ({q.sreport_view.note})"),
    ]
    out.append(("Energy", energy_sentence(report)))
    out.append(("GPU efficiency", efficiency_sentence(report)))
    if q.nodes_without_inventory:
        out.append(("Nodes never seen in the inventory", ", ".join(q.nodes_without_inventory)
                    + " (maintenance counted at the cluster's average GPUs per node)"))
    out += [("Data until", convert.convert(report.period.data_until_s, "instant", tz)),
            ("Last collection", str(convert.convert(report.last_collection_s, "instant", tz)))]
    return out


def json_text(report: model.Report | model.ProjectsReport) -> str:
    """The JSON document: every figure under its document key."""
    return json.dumps(convert.to_json(report, report.period.timezone), indent=2,
                      ensure_ascii=False) + "\n"


def render(report: model.Report, fmt: str) -> str:
    if fmt == "json":
        return json_text(report)
    if fmt == "csv":
        return _csv(report)
    if fmt == "md":
        return _markdown(report)
    if fmt == "table":
        return _table(report)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def csv_text(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    """A header and rows as CSV text, every cell through `csv_cell`: the one CSV writer
    of the report and of the dashboard's downloads."""
    out = io.StringIO()
    minimal = csv.writer(out, lineterminator="\n")
    # CPython before 3.11.9 leaves a field with a bare CR unquoted when the line ends in
    # LF (gh-67044), and a reader splits the row there: such a row has its text quoted.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    minimal.writerow([csv_cell(h) for h in header])
    for row in rows:
        cells = [csv_cell(v) for v in row]
        bare_cr = any(isinstance(c, str) and "\r" in c for c in cells)
        (quoted if bare_cr else minimal).writerow(cells)
    return out.getvalue()


def _csv(report: model.Report) -> str:
    parts = []
    for _, path, columns in sections_of(report):
        rows = ([row[c] for c in columns] for row in get_rows(report, path))
        keys = [convert.key(ROW_TYPES[path], c) for c in columns]
        parts += [f"# {path}\n", csv_text(keys, rows), "\n"]
    return "".join(parts)


_MD_ACTIVE = re.compile(r"([\\`*_\[\]!|~$])")
# What makes a line a heading, quote, list item or rule when it starts the line.
_MD_BLOCK = re.compile(r"^(\s*)([#>+=-])|^(\s*\d+)([.)])")


def md_escape(text: str, first: bool = False) -> str:
    """Text for a Markdown line or table cell: shown as is, never as markup (no link,
    image, emphasis, math, HTML or extra table column) and on one line. `first`: the
    text starts the line, so a leading `#`, `>`, `-`, `+`, `=` or `1.` is escaped too.
    (Bare URLs and e-mail addresses still autolink where the renderer does that, as
    Streamlit does: text other people write does not go into rendered Markdown.)"""
    text = _MD_ACTIVE.sub(r"\\\1", text).replace("<", "&lt;")
    text = re.sub(r"[\r\n\t]+", " ", text)
    if not first:
        return text
    return _MD_BLOCK.sub(lambda m: f"{m[1]}\\{m[2]}" if m[2] else f"{m[3]}\\{m[4]}", text)


class Grid(NamedTuple):
    """One section laid out as cells: its title, headers, which columns are numbers
    (right-aligned) and the rows' cells as text. The site's and the network's report
    are laid out through it."""

    title: str
    headers: list[str]
    numeric: list[bool]
    rows: list[list[str]]


def md_grid(grid: Grid) -> list[str]:
    """A section as Markdown lines: its heading and table, or "(none)"."""
    lines = [f"## {grid.title}", ""]
    if not grid.rows:
        return [*lines, "(none)", ""]
    lines.append("| " + " | ".join(md_escape(h) for h in grid.headers) + " |")
    lines.append("|" + "|".join("---:" if n else "---" for n in grid.numeric) + "|")
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in grid.rows]
    return [*lines, ""]


def rich_grid(grid: Grid):
    """A section as a rich Table (every cell plain text, never markup)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(grid.title), title_justify="left")
    for h, n in zip(grid.headers, grid.numeric, strict=True):
        table.add_column(h, justify="right" if n else "left", overflow="fold")
    for row in grid.rows:
        table.add_row(*(Text(c) for c in row))
    if not grid.rows:
        table.add_row(*(["(none)"] + [""] * (len(grid.headers) - 1)))
    return table


def _grid(title: str, path: str, columns: tuple[str, ...], rows: list[dict]) -> Grid:
    return Grid(title, [header(path, c) for c in columns], [numeric(path, c) for c in columns],
                [[cell_of(path, c, row[c]) for c in columns] for row in rows])


def _markdown(report: model.Report) -> str:
    lines = [f"# {md_escape(title_of(report, SHOWN_MAX))}", ""]
    for title, path, columns in sections_of(report):
        lines += md_grid(_grid(title, path, columns, cut_fields(get_rows(report, path))))
    lines += [f"- {md_escape(line)}" for line in service_lines(report, SHOWN_MAX)]
    return "\n".join(lines) + "\n"


def _table(report: model.Report, width: int = 160) -> str:
    # rich only here: a timer writing JSON or CSV need not pay for importing it.
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(title_of(report, SHOWN_MAX), style="bold", markup=False, highlight=False)
    for title, path, columns in sections_of(report):
        rows = cut_fields(get_rows(report, path))
        if path in ("users",) and len(rows) > 30:
            rows = sorted(rows, key=lambda r: -r["used_s"])[:30]
            title += " (top 30)"
        console.print(rich_grid(_grid(title, path, columns, rows)), markup=False,
                      highlight=False)
    table = Table(title=Text("Service and data quality"), title_justify="left",
                  show_header=False)
    table.add_column("what", overflow="fold")
    table.add_column("value", overflow="fold")
    for what, value in facts(report, SHOWN_MAX):
        table.add_row(Text(what), Text(value))
    console.print(table, markup=False, highlight=False)
    return console.file.getvalue()  # type: ignore[attr-defined]
