"""`python -m testcluster ...`: start, fill and stop the local Slurm test cluster."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click
from rich.progress import TaskID

from collector import clock

from .layout import DEFAULT_BASE_PORT, DEFAULT_CLUSTER_NAME, Layout, default_run_dir
from .processes import ClusterError
from .releases import RELEASES


def _layout_options(func: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
                  envvar="GPU_USAGE_CLUSTER_DIR", default=None,
                  help="Directory holding all cluster state [env GPU_USAGE_CLUSTER_DIR; "
                       "default ./var/testcluster].")
    @click.option("--base-port", type=click.IntRange(1024, 65000),
                  envvar="GPU_USAGE_CLUSTER_PORT", default=DEFAULT_BASE_PORT, show_default=True,
                  help="Ports are derived from this one [env GPU_USAGE_CLUSTER_PORT].")
    @click.option("--cluster-name", default=DEFAULT_CLUSTER_NAME, show_default=True,
                  help="Slurm ClusterName.")
    @wraps(func)
    def wrapper(run_dir: Path | None, base_port: int, cluster_name: str,
                **kwargs: Any) -> Any:
        lay = Layout(run_dir or default_run_dir(), base_port, cluster_name)
        try:
            return func(lay, **kwargs)
        except ClusterError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group()
def cluster() -> None:
    """A real local Slurm cluster with GPU accounting, for demos and tests.

    \b
    Example:
      python -m testcluster up && python -m testcluster backfill --months 3
      eval "$(python -m testcluster env)" && sreport -T gres/gpu cluster utilization
      python -m testcluster down
    """


@cluster.command()
@_layout_options
@click.option("--slurm", "release", type=click.Choice(RELEASES), default=None,
              help="Slurm release: 22.05 is this machine's Debian 12; 24.11 (Debian 13) and "
                   "26.05 (Debian sid) run from a debootstrapped root under chroot, built "
                   "once into $GPU_USAGE_SLURM_ROOTS; 25.11 is compiled once from its "
                   "verified source into $GPU_USAGE_SLURM_BUILDS [default: the run dir's, "
                   "else 22.05].")
@click.option("--node-gpus", default=None, metavar="N,N,N,N",
              help="GPUs of each of the 4 nodes, for a cluster of mixed node types "
                   "(e.g. 4,4,8,8) [default: 4 each].")
@click.option("--second-cluster", is_flag=True,
              help="Also start a second cluster, testai2 (its own slurmctld and nodes "
                   "b01-b04), accounted by the same slurmdbd: a facility of two clusters.")
def up(lay: Layout, release: str | None, node_gpus: str | None, second_cluster: bool) -> None:
    """Start munge, MariaDB, slurmdbd, slurmctld, 4 GPU nodes and slurmrestd; create
    the account tree.

    Idempotent: daemons that already run are left alone.

    \b
    Example:
      python -m testcluster up --run-dir /tmp/tc --base-port 26800
      python -m testcluster up --slurm 24.11 --run-dir var/tc-2411 --base-port 26800
      python -m testcluster up --node-gpus 4,4,8,8 --run-dir /tmp/mixed --base-port 27800
      python -m testcluster up --second-cluster    # testai and testai2 on one slurmdbd
    """
    from . import accounts
    from . import cluster as tc

    if release is not None:
        lay = dataclasses.replace(lay, release=release)
    if node_gpus is not None:
        try:
            counts = tuple(int(g) for g in node_gpus.split(","))
        except ValueError:
            counts = ()
        if len(counts) != len(lay.nodes) or not all(1 <= g <= 64 for g in counts):
            raise click.BadParameter(f"{node_gpus!r}: give {len(lay.nodes)} GPU counts "
                                     "between 1 and 64, e.g. 4,4,8,8", param_hint="--node-gpus")
        lay = dataclasses.replace(lay, node_gpus=counts)
    started = time.monotonic()
    timings = tc.up(lay, say=click.echo)
    t0 = time.monotonic()
    summary = accounts.apply(lay)
    timings["accounts"] = time.monotonic() - t0
    if second_cluster:
        t0 = time.monotonic()
        tc.up_second(lay)
        summary += f"; second cluster {lay.second.cluster}: {accounts.apply(lay.second)}"
        timings["second cluster"] = time.monotonic() - t0
    took = time.monotonic() - started
    click.echo(f"cluster {lay.cluster} (Slurm {lay.slurm}) is up in {took:.1f} s "
               f"(run dir {lay.run_dir})")
    click.echo("  " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    click.echo(f"  {summary}")
    click.echo(f"  use it:  export SLURM_CONF={lay.slurm_conf}")


@cluster.command()
@_layout_options
def down(lay: Layout) -> None:
    """Stop every process the cluster started (jobs included); keep its data.

    \b
    Example:
      python -m testcluster down --run-dir /tmp/tc
    """
    from . import cluster as tc

    stopped = tc.down(lay)
    click.echo(f"cluster {lay.cluster} is down ({stopped} processes stopped)")


@cluster.command()
@_layout_options
def status(lay: Layout) -> None:
    """Say which daemons run, and show the nodes when slurmctld is up.

    Exits 0 when every daemon runs, 3 when none does, 1 when some do.

    \b
    Example:
      python -m testcluster status
    """
    from . import cluster as tc

    states = tc.status(lay)
    for st in states:
        click.echo(f"{st.name:<16} {'running, pid ' + str(st.pid) if st.running else 'stopped'}")
    running = sum(st.running for st in states)
    if running and any(st.name == "slurmctld" and st.running for st in states):
        out = tc.run_slurm(lay, ["sinfo", "-N", "-o", "%N %P %t %G"], check=False).stdout
        click.echo(out.rstrip())
    if running == len(states):
        return
    raise SystemExit(3 if running == 0 else 1)


@cluster.command()
@_layout_options
def env(lay: Layout) -> None:
    """Print the shell lines that point Slurm commands at this cluster (and, for a
    release that runs in a root, put its client wrappers first on PATH; for one built
    from source, its prefix's commands and libslurm).

    \b
    Example:
      eval "$(python -m testcluster env)" && sinfo
    """
    click.echo(f"export SLURM_CONF={lay.slurm_conf}")
    if lay.root is not None:
        click.echo(f'export PATH="{lay.bin_dir}:$PATH"')
    elif (prefix := lay.prefix) is not None:
        click.echo(f'export PATH="{prefix}/bin:{prefix}/sbin:$PATH"')
        click.echo(f'export LD_LIBRARY_PATH="{prefix}/lib:{prefix}/lib/slurm'
                   '${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"')


def _month_arg(value: str | None) -> int | None:
    if value is None:
        return None
    from .history import month_start

    try:
        year, month = (int(x) for x in value.split("-"))
        return month_start(year, month)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a month like 2026-08") from exc


@cluster.command()
@_layout_options
@click.option("--months", type=click.IntRange(1, 36), default=3, show_default=True,
              help="Whole months of history, ending where the current month begins.")
@click.option("--jobs", type=click.IntRange(10, 15_000_000), default=30_000, show_default=True,
              help="Job records (allocations) to write; above 2,000,000 the history is made, "
                   "written and rolled up a month at a time (see --by-month).")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Random seed: the same seed gives the same history.")
@click.option("--start", "start_month", metavar="YYYY-MM", default=None,
              help="First month of the history (default: --months before this month).")
@click.option("--utilisation", type=click.FloatRange(0.05, 0.95), default=None,
              help="GPU time the jobs ask for, as a share of capacity [default: 0.78; "
                   "0.60 above 100,000 jobs a month].")
@click.option("--second-cluster", is_flag=True,
              help="Into the second cluster (testai2, `up --second-cluster`) instead.")
@click.option("--by-month", is_flag=True,
              help="Make, write and roll the history up a month at a time, each month "
                   "recorded as it is done, so that --resume can finish it if it is "
                   "interrupted (the default above 2,000,000 jobs).")
@click.option("--resume", is_flag=True,
              help="Finish the interrupted backfill recorded in <run dir>/etc/"
                   "backfill-progress.json, with its own parameters (give no others).")
@click.pass_context
def backfill(ctx: click.Context, lay: Layout, months: int, jobs: int, seed: int,
             start_month: str | None, utilisation: float | None, second_cluster: bool,
             by_month: bool, resume: bool) -> None:
    """Write a realistic job history into slurmdbd and let it roll up.

    Replaces an earlier backfill. Afterwards sacct and sreport answer for the
    backfilled months (the months are UTC months). The history's parameters are
    kept in <run dir>/etc/history.json, so the same history can be made again.

    A backfill made a month at a time (--by-month; above 2,000,000 jobs) records
    each month written and rolled up; one that was interrupted (a machine switched
    off) is finished with --resume, which writes the month it was writing again.

    \b
    Example:
      python -m testcluster backfill --months 3 --jobs 30000 --seed 42
      python -m testcluster backfill --months 1 --jobs 1000000   # benchmark size
      python -m testcluster backfill --second-cluster --months 3 --jobs 5000 --seed 7
      python -m testcluster backfill --months 12 --jobs 10000000 --seed 1  # hours
      python -m testcluster backfill --resume    # after an interruption of the above
    """
    from . import backfill as bf
    from .history import HistorySpec, day, default_start

    if second_cluster:
        lay = lay.second
    if resume:
        flags = {p.name: p.opts[0] for p in ctx.command.params}
        given = [flags[name] for name in
                 ("months", "jobs", "seed", "start_month", "utilisation", "by_month")
                 if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--resume takes the interrupted backfill's own "
                                   f"parameters: drop {', '.join(given)}")
        with _progress_bar() as progress:
            spec, timings = bf.resume(lay, progress)
        click.echo(f"resumed and finished the backfill of {spec.jobs:,} job records, a month "
                   f"at a time, from {day(spec.start)} to {day(spec.end)}: "
                   + _took(timings) + " (all parts, the interrupted ones included)")
        return
    now = int(clock.now())
    start = _month_arg(start_month) or default_start(months, now)
    spec = HistorySpec(start=start, months=months, jobs=jobs, seed=seed, not_after=now - 7200,
                       utilisation=utilisation)
    with _progress_bar() as progress:
        history, timings = bf.backfill(lay, spec, progress, by_month=by_month or None)
    made = (f"{len(history.jobs):,} job records, {len(history.outages)} node outages and "
            f"{len(history.maintenance)} maintenance window(s)") if history.jobs else \
        f"{int(timings.get('jobs', 0)):,} job records, a month at a time,"
    click.echo(f"backfilled {made} from {day(spec.start)} to {day(spec.end)}"
               + (f" with {int(timings['step_rows']):,} steps" if timings.get("step_rows") else "")
               + ": " + _took(timings))


def _took(timings: dict[str, float]) -> str:
    return (f"generated in {timings['generate_s']:.1f} s, written in "
            f"{timings['write_s']:.1f} s, rolled up in {timings['rollup_s']:.1f} s")


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback (phase, done, total) that draws one bar per phase."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    labels = {"place": "placing jobs on nodes", "jobs": "writing job rows",
              "months": "months written", "rollup": "slurmdbd rollup (hours)",
              "rollup months": "slurmdbd rollup (months)"}
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(labels.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield progress


@cluster.command()
@_layout_options
@click.option("--no-wait", is_flag=True, help="Return after submitting; do not wait for the end.")
def workload(lay: Layout, no_wait: bool) -> None:
    """Submit real jobs as the project users; they run for seconds.

    GPU jobs in every spelling (--gpus, --gres, --gpus-per-node, --gpus-per-task),
    whole-node and multi-node jobs, an array, a heterogeneous job, WCKeys, a failing
    job, jobs cancelled pending and running, a requeued job, a CPU-only job.

    \b
    Example:
      python -m testcluster workload && eval "$(python -m testcluster env)" && sacct -a -X
    """
    from . import workload as wl

    t0 = time.monotonic()
    done = wl.run(lay, wait=not no_wait)
    for sub in done:
        click.echo(f"  {sub.job_id:>9}  {sub.label:<22} {sub.user:<8} {sub.account}")
    verb = "submitted" if no_wait else "ran"
    click.echo(f"{verb} {len(done)} submissions in {time.monotonic() - t0:.1f} s")


@cluster.command()
@_layout_options
@click.option("--months", type=click.IntRange(1, 36), default=3, show_default=True,
              help="How many complete months to show.")
def summary(lay: Layout, months: int) -> None:
    """Show what the cluster holds, in Slurm's own numbers (sinfo, sacct, sreport).

    \b
    Example:
      python -m testcluster summary --months 3
    """
    from rich.console import Console

    from .summary import print_summary

    print_summary(lay, Console(), months)


@cluster.command()
@_layout_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the facility policy here.")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The store directory it names (default: var/store).")
def policy(lay: Layout, out: Path, store: Path | None) -> None:
    """Write the test cluster's facility policy, its allocations placed on the last
    backfill's months (testcluster/facility.toml's dates suit a history that starts in
    2026-11; a backfill made on another day moves them with it).

    \b
    Example:
      python -m testcluster policy --out var/facility.toml
    """
    from .backfill import recorded_spec
    from .policy import policy_text

    spec = recorded_spec(lay)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(policy_text(spec.start, store))
    click.echo(f"wrote {out} (allocations placed on the history from "
               f"{time.strftime('%Y-%m', time.gmtime(spec.start))})")


@cluster.command("record-fixtures")
@_layout_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("tests/fixtures"), show_default=True,
              help="Fixtures go to OUT/slurm-<version>/.")
@click.option("--live-only", is_flag=True,
              help="Record only the live view (squeue, sinfo; pyslurm's on 25.11).")
def record_fixtures(lay: Layout, out_dir: Path, live_only: bool) -> None:
    """Record real Slurm output from this cluster as unit-test fixtures.

    Runs the workload, then records sacct (the collector's own field list), slurmrestd
    and, on 25.11, pyslurm for the workload's window and for two hours around the
    first month boundary of the backfilled history, with a manifest of which job is
    which; then the account tree, events, reservations and the live view (squeue,
    sinfo, pyslurm's) with jobs running and pending and a node drained.

    \b
    Examples:
      python -m testcluster backfill --months 3 && python -m testcluster record-fixtures
      python -m testcluster record-fixtures --run-dir var/tc-25.11 --live-only
    """
    from .fixtures import record

    target = record(lay, out_dir, live_only)
    click.echo(f"recorded fixtures in {target}")
