"""The report dict laid out as a terminal table, Markdown, CSV or JSON.

Only layout happens here: every number comes from report.py. CSV is one file of
sections, each introduced by a `# section` line and its own header row, so that
a spreadsheet or `awk` can pick the table it needs.

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
from typing import Any

FORMATS = ("table", "csv", "md", "json")

SHOWN_MAX = 200      # characters of one field shown in a PDF, Markdown or terminal table
CELL_MAX = 32_000    # characters of one CSV or XLSX cell (Excel's limit: 32,767)
# A text cell starting with one of these is a formula to Excel, LibreOffice or Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")

# (section title, key in the report, columns); nested keys use "a.b".
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Capacity (GPU-hours)", "capacity", ("gpus", "nominal_gpu_hours", "down_gpu_hours",
     "planned_down_gpu_hours", "available_gpu_hours", "allocated_gpu_hours", "utilisation",
     "availability")),
    ("Pools against their share", "pools", ("pool", "gpu_hours", "quota_share",
     "quota_gpu_hours", "share_of_available", "ytd_gpu_hours", "ytd_quota_gpu_hours")),
    ("Categories against their quota", "categories", ("category", "pool", "gpu_hours",
     "quota_share", "quota_gpu_hours", "difference_gpu_hours", "used_of_quota",
     "share_of_available", "ytd_gpu_hours", "ytd_quota_gpu_hours")),
    ("Commercial use (cap on the pool)", "commercial", ("category", "pool", "gpu_hours",
     "pool_quota_gpu_hours", "share_of_pool", "max_share_of_pool", "within_limit")),
    ("Partitions", "partitions", ("partition", "gpu_hours", "share_of_allocated")),
    ("GPU types", "gpu_types", ("gpu_type", "gpu_hours", "weight", "normalised_gpu_hours")),
    ("Access modes", "access_modes", ("access_mode", "gpu_hours")),
    ("Countries", "countries", ("country", "gpu_hours")),
    ("Allocations", "allocations", ("account", "category", "state", "granted_gpu_hours",
     "used_gpu_hours_period", "used_gpu_hours_total", "consumed", "planned_gpu_hours_to_date",
     "projected_exhaustion", "projected_unused_gpu_hours", "warnings")),
    ("Job size", "job_mix.size", ("category", "size_class", "gpu_hours", "jobs_started")),
    ("Use phase (WCKey)", "job_mix.phase", ("category", "phase", "gpu_hours")),
    ("Queue wait", "service.queue_wait", ("category", "jobs_started", "mean_wait_hours",
     "median_wait_hours")),
    ("Accounts", "accounts", ("account", "category", "pool", "organisation", "gpu_hours")),
    ("Users", "users", ("user", "account", "gpu_hours")),
    ("Unmapped accounts", "unmapped_accounts", ("account", "gpu_hours", "in_slurm_tree")),
)
SHARE_COLUMNS = {"utilisation", "availability", "quota_share", "share_of_available",
                 "used_of_quota", "share_of_pool", "max_share_of_pool", "share_of_allocated",
                 "consumed"}


def get_rows(report: dict, key: str) -> list[dict]:
    value: object = report
    for part in key.split("."):
        value = value[part]  # type: ignore[index]
    return [value] if isinstance(value, dict) else list(value)  # type: ignore[arg-type]


def cell(column: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, list):
        return "; ".join(map(str, value))
    if isinstance(value, float | int) and column in SHARE_COLUMNS:
        return f"{value:.1%}"
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


def title_of(report: dict) -> str:
    p = report["period"]
    return (f"{report['facility']} ({report['cluster']}): GPU usage {p['label']} "
            f"({p['start']} to {p['end']}, {p['timezone']})")


def service_lines(report: dict) -> Iterator[str]:
    s, q = report["service"], report["data_quality"]
    yield (f"Users active {s['active_users']}, new {s['new_users']}; projects active "
           f"{s['active_projects']}, new {s['new_projects']}; served by category: "
           + ", ".join(f"{k} {v}" for k, v in s["projects_served_by_category"].items()))
    sv = q["sreport_view"]
    yield (f"Data quality: {q['rejected_lines']} rejected sacct line(s); unusual states "
           f"{q['unusual_states'] or 'none'}; {q['jobs_without_gpu_accounting']} job(s) started "
           f"without GPUs; ambiguous accounts {q['ambiguous_accounts'] or 'none'}; sreport "
           f"would show down {sv['down_gpu_hours']:,.1f} and planned down "
           f"{sv['planned_down_gpu_hours']:,.1f} GPU-hours ({sv['note']}).")
    yield (f"Data until {report['period']['data_until']}; "
           f"last collection {report['last_collection']}.")


def render(report: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
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


def _csv(report: dict) -> str:
    parts = []
    for _, key, columns in SECTIONS:
        rows = ([row[c] for c in columns] for row in get_rows(report, key))
        parts += [f"# {key}\n", csv_text(columns, rows), "\n"]
    return "".join(parts)


_MD_ACTIVE = re.compile(r"([\\`*_\[\]!|~$])")


def md_escape(text: str) -> str:
    """Text for a Markdown line or table cell: shown as is, never as markup (no link,
    image, emphasis, math, HTML or extra table column) and on one line."""
    text = _MD_ACTIVE.sub(r"\\\1", text).replace("<", "&lt;")
    return re.sub(r"[\r\n\t]+", " ", text)


def _markdown(report: dict) -> str:
    report = cut_fields(report)
    lines = [f"# {md_escape(title_of(report))}", ""]
    for title, key, columns in SECTIONS:
        rows = get_rows(report, key)
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["(none)", ""]
            continue
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join("---:" if c.endswith(("hours", "share")) else "---"
                                    for c in columns) + "|")
        for row in rows:
            lines.append("| " + " | ".join(md_escape(cell(c, row[c])) for c in columns) + " |")
        lines.append("")
    lines += [f"- {md_escape(line)}" for line in service_lines(report)]
    return "\n".join(lines) + "\n"


def _table(report: dict, width: int = 160) -> str:
    # rich only here: a timer writing JSON or CSV need not pay for importing it.
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    report = cut_fields(report)
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(title_of(report), style="bold", markup=False, highlight=False)
    for title, key, columns in SECTIONS:
        rows = get_rows(report, key)
        if key in ("users",) and len(rows) > 30:
            rows = sorted(rows, key=lambda r: -r["gpu_hours"])[:30]
            title += " (top 30)"
        table = Table(title=Text(title), title_justify="left")
        for c in columns:
            numeric = any(isinstance(r[c], int | float) and not isinstance(r[c], bool)
                          for r in rows)
            table.add_column(c.replace("_", " "), justify="right" if numeric else "left",
                             overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell(c, row[c])) for c in columns))
        if not rows:
            table.add_row(*(["(none)"] + [""] * (len(columns) - 1)))
        console.print(table, markup=False, highlight=False)
    for line in service_lines(report):
        console.print(line, markup=False, highlight=False)
    return console.file.getvalue()  # type: ignore[attr-defined]
