"""One report over several sites' exports (parquet.py), computed by DuckDB over the files.

For a month, quarter or year (each site's local days), per site and for the network:
capacity and use, categories and pools against their quotas, GPU types, energy. A
site's figures are its own report's (the same days, the same capacity, the same
quotas); the network's are their sums: a category's quota is the sum over the sites of
its share of each site's available GPU time (or of its absolute monthly quota x
months). Categories and pools are matched by name across sites.

Every export is checked first (manifest.json names the schema and a version this
release reads); store/parquet.py reads the files with DuckDB.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from collector.engine import periods
from collector.engine.model import Record, fig, part
from collector.store.parquet import (
    CONTROL,
    NETWORK,
    SCHEMA,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ExportDir,
    ParquetError,
    manifest_bytes,
    network_rows,
    plain_name,
)


class NetworkError(Exception):
    """An export cannot be read (the message names it and why)."""


class NetworkPeriod(Record):
    kind: str = fig("kind", "text", "Kind")
    label: str = fig("label", "text", "Period")
    first_day: date = fig("first_day", "date", "From")
    last_day: date = fig("last_day", "date", "To")


class SiteUse(Record):
    site: str = fig("site", "text", "Site")
    cluster: str = fig("cluster", "text", "Cluster")
    data_until: str = fig("data_until", "text", "Data until")
    gpus: int = fig("gpus", "count", "GPUs (last day)")
    nominal_s: int = fig("nominal_gpu_hours", "gpu_s", "Nominal GPU-h")
    down_s: int = fig("down_gpu_hours", "gpu_s", "Down GPU-h")
    planned_down_s: int = fig("planned_down_gpu_hours", "gpu_s", "Planned down GPU-h")
    available_s: int = fig("available_gpu_hours", "gpu_s", "Available GPU-h")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    utilisation: float | None = fig("utilisation", "ratio", "Utilisation")
    energy_j: int | None = fig("energy_kwh", "joules", "Energy kWh")
    energy_coverage: float | None = fig("energy_coverage", "ratio", "Energy coverage")


class NetworkCategoryUse(Record):
    site: str = fig("site", "text", "Site")
    category: str = fig("category", "text", "Category")
    pool: str = fig("pool", "text", "Pool")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    quota_s: float | None = fig("quota_gpu_hours", "gpu_s", "Quota GPU-h")
    used_of_quota: float | None = fig("used_of_quota", "ratio", "Used of quota")
    share_of_available: float | None = fig("share_of_available", "ratio", "Share of available")
    energy_j: int | None = fig("energy_kwh", "joules", "Energy kWh")


class NetworkPoolUse(Record):
    site: str = fig("site", "text", "Site")
    pool: str = fig("pool", "text", "Pool")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    quota_s: float | None = fig("quota_gpu_hours", "gpu_s", "Quota GPU-h")
    share_of_available: float | None = fig("share_of_available", "ratio", "Share of available")


class NetworkGpuTypeUse(Record):
    gpu_type: str = fig("gpu_type", "text", "GPU type")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    energy_j: int | None = fig("energy_kwh", "joules", "Energy kWh")


class NetworkReport(Record):
    schema_version: int = fig("schema_version", "count", "Export schema")
    generated_s: int = fig("generated_at", "instant", "Generated")
    period: NetworkPeriod = part("period")
    sites: tuple[SiteUse, ...] = part("sites")
    categories: tuple[NetworkCategoryUse, ...] = part("categories")
    pools: tuple[NetworkPoolUse, ...] = part("pools")
    gpu_types: tuple[NetworkGpuTypeUse, ...] = part("gpu_types")


# (title, report field, columns) as the documents lay them out.
SECTIONS = (
    ("Sites: capacity and use", "sites", ("site", "cluster", "data_until", "gpus",
     "nominal_s", "down_s", "planned_down_s", "available_s", "used_s", "utilisation",
     "energy_j", "energy_coverage")),
    ("Categories against their quota", "categories", ("site", "category", "pool", "used_s",
     "quota_s", "used_of_quota", "share_of_available", "energy_j")),
    ("Pools against their share", "pools", ("site", "pool", "used_s", "quota_s",
     "share_of_available")),
    ("GPU types", "gpu_types", ("gpu_type", "used_s", "energy_j")),
)
ROW_TYPES = {"sites": SiteUse, "categories": NetworkCategoryUse, "pools": NetworkPoolUse,
             "gpu_types": NetworkGpuTypeUse}


def read_manifest(path: Path) -> dict:
    """The export's manifest, checked: this release reads SCHEMA_NAME version 1, with
    its site, clusters, first day, data until and each table's rows."""
    file = path / "manifest.json"
    try:
        manifest = json.loads(manifest_bytes(path))
    except ParquetError as exc:
        raise NetworkError(str(exc)) from exc
    except (ValueError, RecursionError) as exc:
        raise NetworkError(f"{file}: cannot be read: {str(exc)[:300]}") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA_NAME:
        raise NetworkError(f"{file}: not a gpu-usage export manifest")
    version = manifest.get("version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise NetworkError(f"{file}: export schema version {CONTROL.sub('?', repr(version))[:50]};"
                           f" this release reads version {SCHEMA_VERSION}")
    site, clusters, rows = manifest.get("site"), manifest.get("clusters"), manifest.get("rows")
    if not plain_name(site):
        raise NetworkError(f"{file}: the site's name must be text of 1-200 characters "
                           f"without control or format characters, and not {NETWORK!r}")
    if not isinstance(clusters, list) or not clusters or len(set(map(str, clusters))) != len(
            clusters) or not all(plain_name(c) for c in clusters):
        raise NetworkError(f"{file}: 'clusters' must list the site's clusters, each once")
    if not isinstance(rows, dict) or set(rows) != set(SCHEMA) or not all(
            type(n) is int and n >= 0 for n in rows.values()):
        raise NetworkError(f"{file}: 'rows' must give each table's rows ({', '.join(SCHEMA)})")
    try:
        date.fromisoformat(manifest.get("first_day"))
        if type(manifest.get("data_until_s")) is not int:
            raise TypeError
        datetime.fromisoformat(manifest.get("data_until"))
    except (TypeError, ValueError):
        raise NetworkError(f"{file}: 'first_day', 'data_until' and 'data_until_s' must be "
                           "a day, a time and epoch seconds") from None
    return manifest


def coverage_gaps(manifests: list[dict], first: date, end: date, end_s: int, now_s: int
                  ) -> list[str]:
    """Sites whose export does not cover the period [first, end): their days outside it
    count as nothing, so the report says so rather than show a quiet zero."""
    gaps = []
    for m in manifests:
        start = date.fromisoformat(m["first_day"])
        if start > first:
            gaps.append(f"{m['site']}: its export starts on {start}, after the period's "
                        f"first day {first}: the days before count as no capacity and "
                        "no use (export with an earlier --since)")
        if m["data_until_s"] < min(end_s, now_s) - 86400:
            gaps.append(f"{m['site']}: its export has data until {m['data_until']}, "
                        f"before the period's end ({end}): a newer export is needed")
    return gaps


def network_report(dirs: list[Path], period: periods.Period, now_s: int,
                   warn: Callable[[str], None] = lambda _: None) -> NetworkReport:
    """The report on `period` over the exports in `dirs` (one per site); `warn` hears
    of each site whose export does not cover the period."""
    manifests = [read_manifest(d) for d in dirs]
    sites = [m["site"] for m in manifests]
    if len(set(sites)) != len(sites):
        raise NetworkError("two exports name the same site: "
                           + ", ".join(sorted({s for s in sites if sites.count(s) > 1})))
    first = datetime.fromtimestamp(period.start_s, UTC).date()
    end = datetime.fromtimestamp(period.end_s, UTC).date()
    months = len(periods.months_of(period)) if period.kind in ("month", "quarter", "year") \
        else (end - first).days / (365.25 / 12)
    for gap in coverage_gaps(manifests, first, end, period.end_s, now_s):
        warn(gap)
    exports = [ExportDir(d, m["site"], frozenset(m["clusters"]), m["rows"])
               for d, m in zip(dirs, manifests, strict=True)]
    try:
        rows = network_rows(exports, first, end)
    except ParquetError as exc:
        raise NetworkError(f"the exports cannot be read ({', '.join(map(str, dirs))}): "
                           f"{exc}") from exc
    until = {m["site"]: m["data_until"] for m in manifests}
    cap = {(s, c): row for s, c, *row in rows["capacity"]}
    use = {(s, c, cat, pool): row for s, c, cat, pool, *row in rows["usage"]}
    quota = {(s, c, cat): tuple(q) for s, c, cat, *q in rows["categories"]}
    return _assemble(period, first, end, months, now_s, until, cap, use, quota,
                     rows["gpu_types"])


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _split(part: int, whole: int, clusters: int) -> float:
    """A cluster's part of its site's absolute quota (evenly if nothing is available)."""
    return part / whole if whole > 0 else 1 / clusters


def _assemble(period: periods.Period, first: date, end: date, months: float, now_s: int,
              until: dict[str, str], cap: dict, use: dict, quota: dict, types: list
              ) -> NetworkReport:
    keys = sorted(set(cap) | {k[:2] for k in use} | {k[:2] for k in quota})
    site_rows, totals = [], [0] * 5
    for site, cluster in keys:
        gpus, nominal, down, planned, available = cap.get((site, cluster), [0] * 5)
        mine = [v for k, v in use.items() if k[:2] == (site, cluster)]
        used = sum(v[0] for v in mine)
        joules, measured = sum(v[1] for v in mine), sum(v[2] for v in mine)
        site_rows.append(SiteUse(site, cluster, until.get(site, ""), gpus, nominal, down,
                                 planned, available, used, _ratio(used, available),
                                 joules if measured else None, _ratio(measured, used)))
        for i, v in enumerate((gpus, nominal, down, planned, available)):
            totals[i] += v
    used = sum(r.used_s for r in site_rows)
    measured = sum(v[2] for v in use.values())
    joules = sum(v[1] for v in use.values())
    site_rows.append(SiteUse(NETWORK, "", "", *totals, used, _ratio(used, totals[4]),
                             joules if measured else None, _ratio(measured, used)))

    available = {k: (cap.get(k) or [0] * 5)[4] for k in keys}
    cats: dict[tuple[str, str, str], list] = {}   # (site, category, pool) -> sums
    pools: dict[tuple[str, str], list] = {}       # (site, pool) -> [used, quota]
    pool_share: dict[tuple[str, str, str], float] = {}
    site_available: dict[str, int] = defaultdict(int)
    for (site, _cluster), seconds in available.items():
        site_available[site] += seconds
    for (site, cluster, category), (pool, pshare, qshare, qhours) in quota.items():
        # A site's absolute quota is split over its clusters by their available time,
        # as the site's own report on one cluster splits it.
        here = available[(site, cluster)]
        q = qhours * 3600 * months * _split(here, site_available[site], sum(
            1 for k in available if k[0] == site)) if qhours is not None else qshare * here
        for who in (site, NETWORK):
            cell = cats.setdefault((who, category, pool), [0, 0.0, 0, 0, 0.0])
            cell[1] += q
        pool_share[(site, cluster, pool)] = pshare
    for (site, _cluster, category, pool), (gpu_s, joules_, measured_) in use.items():
        for who in (site, NETWORK):
            cell = cats.setdefault((who, category, pool), [0, None, 0, 0, 0.0])
            cell[0] += gpu_s
            cell[2] += joules_
            cell[3] += measured_
    for (site, cluster, pool), share in pool_share.items():
        for who in (site, NETWORK):
            pools.setdefault((who, pool), [0, 0.0])[1] += share * available[(site, cluster)]
    for (who, _category, pool), cell in cats.items():
        pools.setdefault((who, pool), [0, None])[0] += cell[0]
    avail_of: dict[str, int] = defaultdict(int)   # a site's clusters added up
    for r in site_rows:
        avail_of[r.site] += r.available_s
    order = {s: i for i, s in enumerate([r.site for r in site_rows])}
    category_rows = tuple(
        NetworkCategoryUse(who, category, pool, c[0], c[1],
                           _ratio(c[0], c[1]) if c[1] is not None else None,
                           _ratio(c[0], avail_of.get(who, 0)), c[2] if c[3] else None)
        for (who, category, pool), c in sorted(cats.items(),
                                               key=lambda kv: (order[kv[0][0]], kv[0][1])))
    pool_rows = tuple(
        NetworkPoolUse(who, pool, p[0], p[1], _ratio(p[0], avail_of.get(who, 0)))
        for (who, pool), p in sorted(pools.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])))
    type_rows = tuple(NetworkGpuTypeUse(t or "(untyped)", s, j if m else None)
                      for t, s, j, m in types)
    return NetworkReport(SCHEMA_VERSION, now_s,
                         NetworkPeriod(period.kind, period.label, first,
                                       date.fromordinal(end.toordinal() - 1)),
                         tuple(site_rows), category_rows, pool_rows, type_rows)


def render(report: NetworkReport, fmt: str) -> str:
    """The network report as a terminal table, Markdown, CSV or JSON."""
    from collector.documents import convert, text

    if fmt == "json":
        return json.dumps(convert.to_json(report, "UTC"), indent=2, ensure_ascii=False) + "\n"
    sections = [(title, columns, ROW_TYPES[path],
                 text.cut_fields([convert.row(r, columns, "UTC")
                                  for r in getattr(report, path)])
                 if fmt != "csv" else
                 [convert.row(r, columns, "UTC") for r in getattr(report, path)], path)
                for title, path, columns in SECTIONS]
    title = (f"GPU usage of the network, {report.period.label} "
             f"({report.period.first_day} to {report.period.last_day}, each site's local days)")

    def shown(cls: type, column: str, value: object) -> str:
        kind = convert.unit(cls, column)
        if value is not None and kind in ("ratio", "share"):
            return f"{value:.1%}"
        # Names come from other sites' files: no terminal control sequence gets through.
        return CONTROL.sub("?", text.cell(column, value))

    def numeric(cls: type, column: str) -> bool:
        return convert.unit(cls, column) in ("gpu_s", "joules", "ratio", "share", "count")

    if fmt == "csv":
        out = []
        for _, columns, cls, rows, path in sections:
            out += [f"# {path}\n", text.csv_text([convert.key(cls, c) for c in columns],
                                                 ([r[c] for c in columns] for r in rows)), "\n"]
        return "".join(out)
    if fmt not in ("md", "table"):
        raise ValueError(f"unknown format {fmt!r}")
    grids = [text.Grid(section, [convert.label(cls, c) for c in columns],
                       [numeric(cls, c) for c in columns],
                       [[shown(cls, c, r[c]) for c in columns] for r in rows])
             for section, columns, cls, rows, _ in sections]
    if fmt == "md":
        lines = [f"# {text.md_escape(title)}", ""]
        for grid in grids:
            lines += text.md_grid(grid)
        return "\n".join(lines)
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=160, force_terminal=False, color_system=None)
    console.print(title, style="bold", markup=False, highlight=False)
    for grid in grids:
        console.print(text.rich_grid(grid), markup=False, highlight=False)
    return console.file.getvalue()  # type: ignore[attr-defined]
