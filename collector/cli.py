"""The `gpu-usage` command line: a thin layer; each command calls one library function."""

from __future__ import annotations

import json
from pathlib import Path

import click

from collector import __version__

_CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Policy file [default: $GPU_USAGE_CONFIG, else ./facility.toml].")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpu-usage")
def main() -> None:
    """GPU usage by user category against allocation quotas, from Slurm accounting.

    \b
    Example:
      gpu-usage collect --config /etc/gpu-usage/facility.toml
      gpu-usage report --month last
    """


@main.group()
def config() -> None:
    """The facility policy file (facility.toml).

    \b
    Example:
      gpu-usage config check --config /etc/gpu-usage/facility.toml
    """


@config.command()
@_CONFIG_OPTION
def check(config_path: Path | None) -> None:
    """Validate the policy file and print the resolved settings.

    Exits 2 and names the file and every wrong key when the file is not valid.

    \b
    Example:
      gpu-usage config check --config testcluster/facility.toml
    """
    from collector import config as cfg

    try:
        settings = cfg.load(config_path)
    except cfg.ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    click.echo(f"# {cfg.resolve_path(config_path)}: valid")
    click.echo(json.dumps(cfg.as_plain(settings), indent=2))


def _private_files() -> None:
    """Files this command writes (the store, its lock, reports) hold every user's jobs:
    create them readable by their owner only (the systemd units set UMask=0077 too)."""
    import os
    os.umask(0o077)


def _settings(config_path: Path | None):
    from collector import config as cfg

    try:
        return cfg.load(config_path)
    except cfg.ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc


def _cluster_option(what: str):
    return click.option("--cluster", default=None, metavar="NAME",
                        help=f"One of the policy file's clusters: {what} "
                             "[default: the whole facility].")


def _check_cluster(settings, cluster: str | None) -> None:
    if cluster is not None and cluster not in settings.slurm.clusters:
        raise click.BadParameter(f"{cluster!r} is not one of the configured clusters "
                                 f"({', '.join(settings.slurm.clusters)})",
                                 param_hint="--cluster")


@main.command()
@_CONFIG_OPTION
@click.option("--quiet", is_flag=True, help="No progress bar, only the summary line.")
@click.option("--from-scratch", is_flag=True,
              help="Forget the stored jobs and read the whole history again (one transaction: "
                   "readers keep the old figures until it is done).")
@_cluster_option("collect only this one")
def collect(config_path: Path | None, quiet: bool, from_scratch: bool,
            cluster: str | None) -> None:
    """Read new Slurm accounting into the store (incremental, idempotent).

    Reads sacct in bounded windows from where the last run ended (minus the
    look-back) to now, plus the account tree, node events and reservations from
    sacctmgr, and commits all of it at once. A failed or killed run changes
    nothing; run it again. With several clusters each is collected in turn, in a
    transaction of its own: one whose Slurm fails is left as it was and the others
    go on. Exits 1 if Slurm or the store fails (for any cluster), 2 on a bad policy
    file, 75 if another collection is running.

    \b
    Example:
      gpu-usage collect --config /etc/gpu-usage/facility.toml
      gpu-usage collect --from-scratch    # after restoring slurmdbd from an archive
      gpu-usage collect --cluster gpu2    # one cluster of several
    """
    from collector.collect import CollectionsFailed, collect_facility
    from collector.progress import progress_bar
    from collector.store.database import StoreBusy

    _private_files()
    settings = _settings(config_path)
    _check_cluster(settings, cluster)
    failed: list = []
    try:
        with progress_bar(enabled=not quiet) as progress:
            done = collect_facility(settings, progress=progress, from_scratch=from_scratch,
                                    clusters=(cluster,) if cluster else None)
    except StoreBusy as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(75) from exc
    except CollectionsFailed as exc:
        done, failed = exc.done, exc.failed
    for one in done:
        took = one.finished_s - one.started_s
        click.echo(f"collected {one.cluster}: {one.jobs_new:,} new, "
                   f"{one.jobs_updated:,} updated, {one.jobs_unchanged:,} unchanged job "
                   f"records from {one.windows} window(s) in {took:.1f} s into "
                   f"{settings.store.path}")
        if one.message:
            click.echo(f"note: {one.message}", err=True)
        if one.rejected:
            click.echo(f"warning: {one.rejected:,} record(s) from Slurm could not be read; "
                       "they are kept in the store and shown in the report's data-quality "
                       "section", err=True)
    for name, exc in failed:
        where = f" of {name}" if settings.slurm.several else ""
        click.echo(f"error: collection{where} failed, its part of the store is unchanged: "
                   f"{exc}" if where else
                   f"error: collection failed, the store is unchanged: {exc}", err=True)
    if failed:
        raise SystemExit(1)


@main.command()
@_CONFIG_OPTION
@click.option("--month", help="YYYY-MM, 'last' or 'this' (months in the facility's time zone).")
@click.option("--quarter", help="YYYYQN (e.g. 2026Q3), 'last' or 'this'.")
@click.option("--year", help="YYYY, 'last' or 'this'.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "md", "json", "pdf", "xlsx"]),
              default="table", show_default=True,
              help="Output format; pdf (for funders) and xlsx need --out.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (atomically) instead of standard output; "
                   "'{period}' in it becomes the period's label (e.g. 2026-10).")
@click.option("--site-export", "site_exports", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="A site's 'gpu-usage export --format parquet' directory (repeat): the "
                   "report of the network of these sites, computed with DuckDB over their "
                   "files (no policy file, no store; formats table, csv, md, json).")
@_cluster_option("the report of this one (its quotas: the facility's, split by its share "
                 "of the available GPU time)")
def report(config_path: Path | None, month: str | None, quarter: str | None,
           year: str | None, fmt: str, out: Path | None, site_exports: tuple[Path, ...],
           cluster: str | None) -> None:
    """GPU usage of a month, quarter or year: capacity, pools and categories against
    quota, allocations, job mix, queue waits, data quality.

    Reads the store only (run 'gpu-usage collect' first); running jobs count up to
    now. Without a period: the previous month. With several clusters the report is
    on the facility (a section per cluster), or on one with --cluster. With
    --site-export: the network's
    report over several sites' exports (sites, categories and pools against quota,
    GPU types, energy), each site's months in its own time zone.

    \b
    Example:
      gpu-usage report --config facility.toml --month 2026-10
      gpu-usage report --month last --format json --out reports/last.json
      gpu-usage report --quarter 2026Q3 --format md
      gpu-usage report --month last --cluster gpu2
      gpu-usage report --month last --format csv --out 'reports/{period}.csv'
      gpu-usage report --month 2026-10 --format pdf --out reports/2026-10.pdf
      gpu-usage report --quarter 2026Q3 --site-export groningen/ --site-export bologna/
    """
    from collector.engine import periods

    _private_files()
    chosen = [(k, v) for k, v in (("month", month), ("quarter", quarter), ("year", year)) if v]
    if len(chosen) > 1:
        raise click.UsageError("give one of --month, --quarter, --year")
    kind, text = chosen[0] if chosen else ("month", "last")
    parse = {"month": periods.parse_month, "quarter": periods.parse_quarter,
             "year": periods.parse_year}[kind]
    if site_exports:
        if cluster is not None:
            raise click.UsageError("--cluster is for a site's own report: a network report "
                                   "shows each site's clusters together")
        if fmt in ("pdf", "xlsx"):
            raise click.UsageError("the network report is written as table, csv, md or json")
        period = _period(parse, text, "UTC", kind)
        data = _network_report(list(site_exports), period, fmt)
    else:
        settings = _settings(config_path)
        _check_cluster(settings, cluster)
        period = _period(parse, text, settings.facility.timezone, kind)
        data = _site_report(settings, period, fmt, out, cluster)
    if out is None:
        click.echo(data.decode(), nl=False)
        return
    out = Path(str(out).replace("{period}", period.label))
    out.parent.mkdir(parents=True, exist_ok=True)
    # A fresh temporary name (O_EXCL, 0600): nobody can plant a file or link there first.
    import os
    import tempfile
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"wrote {fmt} report for {period.label} to {out}", err=True)


def _period(parse, text: str, tz: str, kind: str):
    from collector.engine import periods
    try:
        return parse(text, tz)
    except periods.PeriodError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{kind}") from exc


def _site_report(settings, period, fmt: str, out: Path | None, cluster: str | None) -> bytes:
    from collector.documents.text import render
    from collector.engine.report import build_report
    from collector.engine.usage import PeriodAlignmentError
    from collector.store.database import Store, StoreError

    if fmt in ("pdf", "xlsx") and out is None:
        raise click.UsageError(f"--format {fmt} writes a file: give --out PATH")
    try:
        with Store.open_reader(settings.store.path) as store:
            built = build_report(store, settings, period, cluster=cluster)
    except (StoreError, PeriodAlignmentError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from exc
    if fmt in ("pdf", "xlsx"):
        from collector.documents.office import render_document
        return render_document(built, fmt)
    return render(built, fmt).encode()


def _network_report(dirs: list[Path], period, fmt: str) -> bytes:
    from collector import clock
    from collector.network.report import NetworkError, network_report, render

    try:
        built = network_report(dirs, period, int(clock.now()),
                               warn=lambda gap: click.echo(f"warning: {gap}", err=True))
    except NetworkError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from exc
    except ImportError as exc:
        click.echo(f"error: the network report needs DuckDB ({exc}): "
                   "pip install 'gpu-usage[network]'", err=True)
        raise SystemExit(1) from exc
    return render(built, fmt).encode()


@main.command()
@_CONFIG_OPTION
@click.option("--format", "fmt", type=click.Choice(["parquet"]), default="parquet",
              show_default=True, help="The export's format.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write (an earlier export there is replaced whole).")
@click.option("--site", default=None,
              help="The site's name in the files [default: [facility] name].")
@click.option("--since", default=None, metavar="YYYY-MM",
              help="First month to export [default: everything in the store].")
def export(config_path: Path | None, fmt: str, out: Path, site: str | None,
           since: str | None) -> None:
    """Export the site's figures for a network of sites: daily usage by category, pool,
    account, partition and GPU type, daily capacity, the categories' quotas, and the
    finished GPU jobs, as Parquet files partitioned by cluster and month, with a
    versioned schema (docs/network.md). No user names, job names or comments.

    The files are private (0600); 'gpu-usage report --site-export DIR ...' reads
    several sites' exports into one report, and Spark or Trino read them as they are.

    \b
    Example:
      gpu-usage export --config facility.toml --format parquet --out /srv/export/groningen
      gpu-usage export --since 2026-01 --out export/ --site Groningen
    """
    import signal
    import sys

    from collector import clock
    from collector.engine import periods
    from collector.store.database import Store, StoreError

    _private_files()
    # SIGTERM (a timer's stop, a kill) unwinds like Ctrl-C: the unfinished export is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = _settings(config_path)
    first = None
    if since is not None:
        try:
            first = periods.parse_month(since, settings.facility.timezone).start_date()
        except periods.PeriodError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from exc
    try:
        from collector.network.export import ExportError, export_parquet
    except ImportError as exc:  # pragma: no cover - duckdb is in the network extra
        click.echo(f"error: the export needs DuckDB ({exc}): pip install "
                   "'gpu-usage[network]'", err=True)
        raise SystemExit(1) from exc
    try:
        with Store.open_reader(settings.store.path) as store:
            done = export_parquet(store, settings, out, site or settings.facility.name, first,
                                  int(clock.now()),
                                  say=lambda line: click.echo(f"  {line}", err=True))
    except (StoreError, ExportError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from exc
    click.echo(f"wrote the {fmt} export of {site or settings.facility.name} "
               f"({done.first_day} to now) to {done.out}", err=True)


@main.command()
@_CONFIG_OPTION
@click.option("--address", default=None, help="Listen address [default: [dashboard] address, "
              "127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Listen port [default: [dashboard] port, 8501].")
def dashboard(config_path: Path | None, address: str | None, port: int | None) -> None:
    """Serve the Streamlit dashboard: overview, categories, allocations, job mix,
    live GPUs, data quality, and the monthly report documents.

    Reads the store (and squeue/sinfo for the live page); needs the 'dashboard'
    extra (pip install 'gpu-usage[dashboard]'). Without [dashboard.auth] every
    visitor is an operator, so it listens on localhost only (another address is
    refused). With [dashboard.auth] it expects the facility's reverse proxy in
    front: the proxy's user header decides who sees what (operators everything, a
    PI their own projects), and a request without the proxy's secret sees
    nothing. Runs until SIGTERM or Ctrl-C.

    \b
    Example:
      gpu-usage dashboard --config /etc/gpu-usage/facility.toml --port 8501
    """
    import importlib.util
    import os
    import sys

    _private_files()
    settings = _settings(config_path)
    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("pandas") is None:
        click.echo("error: the dashboard needs Streamlit and pandas: "
                   "pip install 'gpu-usage[dashboard]'", err=True)
        raise SystemExit(1)
    from collector.access import read_secret
    from collector.config import ConfigError, is_loopback, resolve_path

    cfg = settings.dashboard
    listen = cfg.address if address is None else address
    if cfg.auth is None:
        if not is_loopback(listen):
            click.echo(f"error: refusing to listen on {listen}: there is no [dashboard.auth], "
                       "so every visitor would see everything. Configure the reverse proxy "
                       "and [dashboard.auth], or listen on 127.0.0.1.", err=True)
            raise SystemExit(2)
        click.echo(f"dashboard on http://{listen}:{cfg.port if port is None else port}/ "
                   "(localhost only: no [dashboard.auth], every visitor is an operator)",
                   err=True)
    else:
        try:
            read_secret(cfg.auth)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(2) from exc
        click.echo(f"dashboard on {listen}:{cfg.port if port is None else port} behind the "
                   f"proxy: user from {cfg.auth.user_header}, {len(cfg.auth.operators)} "
                   f"operator(s), {len(cfg.auth.pis)} PI(s); requests without the proxy's "
                   "secret see nothing", err=True)
    env = dict(os.environ, GPU_USAGE_CONFIG=str(resolve_path(config_path).resolve()))
    argv = [sys.executable, "-m", "dashboard.serve",
            f"--server.address={listen}",
            f"--server.port={cfg.port if port is None else port}",
            "--server.headless=true", "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none", "--global.developmentMode=false",
            "--client.toolbarMode=viewer", "--theme.base=light",
            # An unexpected error shows its type to the viewer; the traceback (paths,
            # values) goes to the server's log only.
            "--client.showErrorDetails=type"]
    os.execve(sys.executable, argv, env)


@main.command()
@_CONFIG_OPTION
@click.option("--month", "months", multiple=True,
              help="YYYY-MM or 'last' (repeatable) [default: last]. Only closed months.")
@click.option("--details", is_flag=True, help="Print every account, not only differences.")
@_cluster_option("check only this one")
def verify(config_path: Path | None, months: tuple[str, ...], details: bool,
           cluster: str | None) -> None:
    """Check the store's GPU-minutes of every account against sreport, and its energy.

    Runs 'sreport -t minutes -T gres/gpu cluster AccountUtilizationByUser' for each
    closed month and each cluster, compares it with the store (an account includes
    the accounts below it, as in sreport), records the result for the data-quality
    page. Energy is checked against sacct's ConsumedEnergyRaw split by time (sreport
    -T energy is shown too, with the known cause of its overcount). Exits 1 if any
    account differs by more than a minute or its energy differs from sacct's (75 if a
    collection holds the store).

    \b
    Example:
      gpu-usage verify --config /etc/gpu-usage/facility.toml
      gpu-usage verify --month 2026-09 --month 2026-10 --details
      gpu-usage verify --month last --cluster gpu2
    """
    from collector import clock
    from collector.documents import convert
    from collector.engine import periods
    from collector.engine.verify import (
        TOLERANCE_MINUTES,
        SreportFormatError,
        energy_gap,
        save_check,
        verify_energy,
        verify_period,
    )
    from collector.slurm.commands import SlurmError
    from collector.store.database import Store, StoreBusy, StoreError

    _private_files()
    settings = _settings(config_path)
    _check_cluster(settings, cluster)
    tz = settings.facility.timezone
    chosen = []
    for text in months or ("last",):
        try:
            period = periods.parse_month(text, tz)
        except periods.PeriodError as exc:
            raise click.BadParameter(str(exc), param_hint="--month") from exc
        if period.end_s > clock.now():
            raise click.BadParameter(f"{period.label} is not over yet; sreport and the store "
                                     "agree only on closed months", param_hint="--month")
        chosen.append(period)
    bad = 0
    try:
        with Store.open_writer(settings.store.path) as store:
            for period, name in [(p, c) for p in chosen
                                 for c in ((cluster,) if cluster else settings.slurm.clusters)]:
                check = verify_period(store, settings, period, name)
                save_check(store, name, check)
                ours, theirs = check.total()
                on = f" on {name}" if settings.slurm.several else ""
                click.echo(f"{period.label}{on}: {len(check.accounts)} accounts, "
                           f"{len(check.differing)} differ by more than "
                           f"{TOLERANCE_MINUTES:g} GPU-minute; total {ours:,.0f} GPU-minutes "
                           f"here, {theirs:,} in sreport")
                for a in check.accounts if details else check.differing:
                    click.echo(f"  {a.account:<24} here {a.ours_minutes:>14,.1f}  sreport "
                               f"{a.sreport_minutes:>12,}  difference {a.difference:+,.1f}")
                bad += len(check.differing)
                gap = energy_gap(store, period)
                if gap is not None:
                    since = convert.convert(gap, "instant", tz)
                    click.echo(f"  energy: not checked: jobs stored before {since} hold no "
                               "energy (this store was upgraded from a version without it); "
                               "'gpu-usage collect --from-scratch' reads it")
                    continue
                energy = verify_energy(store, settings, period, name)
                if not energy.recorded:
                    click.echo("  energy: not recorded on this cluster in this period (no "
                               "job has ConsumedEnergyRaw)")
                    continue
                click.echo(f"  energy: {energy.total_j / 3.6e6:,.3f} kWh here, "
                           f"{sum(energy.sacct_j.values()) / 3.6e6:,.3f} kWh by sacct's "
                           f"ConsumedEnergyRaw of {energy.jobs:,} jobs; "
                           f"{len(energy.differing)} accounts differ; sreport -T energy "
                           f"{energy.sreport_j / 3.6e6:,.3f} kWh: {energy.sreport_note()}")
                for account, ours_j, sacct_j in energy.differing:
                    click.echo(f"  {account:<24} here {ours_j / 3.6e6:>14,.3f} kWh  sacct "
                               f"{sacct_j / 3.6e6:>12,.3f} kWh")
                bad += len(energy.differing)
    except StoreBusy as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(75) from exc
    except (SlurmError, StoreError, SreportFormatError) as exc:
        click.echo(f"error: verification failed: {exc}", err=True)
        raise SystemExit(1) from exc
    if bad:
        raise SystemExit(1)


@main.command()
@_CONFIG_OPTION
@click.option("--address", default=None, help="Listen address [default: [exporter] address, "
              "127.0.0.1]; another address serves every figure without login (warned).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Listen port [default: [exporter] port, 9877]; 0 picks a free one.")
def exporter(config_path: Path | None, address: str | None, port: int | None) -> None:
    """Serve Prometheus metrics: usage against quota, allocations, GPUs now, health.

    Reads the store when a collection has finished and squeue/sinfo at most every
    [exporter] live_refresh_s seconds; a scrape only reads what was prepared, so
    it stays fast and never fails because Slurm or the store does (see
    gpu_usage_exporter_source_up). Runs until SIGTERM or Ctrl-C.

    \b
    Example:
      gpu-usage exporter --config /etc/gpu-usage/facility.toml --port 9877
      curl -s localhost:9877/metrics | grep gpu_usage_category_quota_used_ratio
    """
    import logging
    import signal
    import threading

    from collector.export.exporter import serve

    _private_files()
    settings = _settings(config_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cfg = settings.exporter
    try:
        serve(settings, cfg.address if address is None else address,
              cfg.port if port is None else port, stop,
              on_ready=lambda url: click.echo(f"serving {url} (cluster "
                                              f"{', '.join(settings.slurm.clusters)})", err=True))
    except OSError as exc:
        click.echo(f"error: cannot listen on {address or cfg.address}:{port or cfg.port}: "
                   f"{exc.strerror}", err=True)
        raise SystemExit(1) from exc
