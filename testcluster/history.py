"""A realistic, deterministic job history for the test cluster (pure; no I/O).

Given a start month, a number of months, a number of job records and a seed, it
makes the jobs an AI Factory's Slurm would have recorded: mostly single-GPU and
single-node jobs, some multi-node jobs, job arrays, requeued runs sharing one job
id, jobs cancelled before they started, failed, timed-out, out-of-memory and
node-failed jobs, CPU-only jobs, WCKey-tagged use phases and hostile job names;
plus node outages (down and drained) and a maintenance window. A placement model
(`schedule.py`) keeps every GPU allocation physically possible, so the history
both reads back through sacct and rolls up in sreport like real usage.

The category mix is skewed on purpose: some categories end over their default
quota and some under.
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .accounts import CATEGORIES, PROJECTS, Project
from .layout import GPUS_PER_NODE, NODE_COUNT
from .schedule import Cluster

# Slurm job states as stored in the job table (src/common/slurm_protocol_defs.h).
COMPLETE, CANCELLED, FAILED, TIMEOUT, NODE_FAIL, OOM = 3, 4, 5, 6, 7, 11
REQUEUED = 0x400  # JOB_REQUEUE: the record of a run that was requeued
NODE_DOWN, NODE_DRAIN_IDLE = 1, 0x200 | 2  # node event states: DOWN, IDLE+DRAIN
FIRST_JOB_ID = 1000
REQUEUE_DELAY_S = 121  # slurmctld holds a requeued job this long (seen on 22.05)

# Target share of GPU-hours per category (sums to 1); not the quotas.
CATEGORY_MIX = {
    "eu_science": 0.36, "eu_industry": 0.03, "commercial": 0.16, "science": 0.31,
    "public": 0.02, "startup": 0.09, "sme": 0.01, "industry": 0.01, "staff": 0.01,
}
# Use phase (WCKey) per category: pretrain, finetune, inference, other.
PHASE_MIX = {
    "eu_science": (0.60, 0.25, 0.05, 0.10), "eu_industry": (0.20, 0.50, 0.20, 0.10),
    "commercial": (0.10, 0.30, 0.50, 0.10), "science": (0.35, 0.35, 0.10, 0.20),
    "public": (0.10, 0.30, 0.40, 0.20), "startup": (0.15, 0.45, 0.30, 0.10),
    "sme": (0.05, 0.35, 0.50, 0.10), "industry": (0.30, 0.40, 0.20, 0.10),
    "staff": (0.0, 0.0, 0.0, 1.0),
}
PHASES = ("pretrain", "finetune", "inference", "other")
# GPUs per job; 0 = CPU-only. Multiples of 4 above 4 are whole nodes.
SIZE_MIX = {0: 0.05, 1: 0.40, 2: 0.17, 4: 0.22, 8: 0.10, 12: 0.03, 16: 0.03}
TIME_LIMITS_MIN = (1, 2, 5, 15, 30, 60, 240, 720, 1440, 2880)
# Share of the GPU time that the jobs ask for. Dense benchmark months (many short
# jobs) get less, which keeps their queue, and the time to place them, short.
TARGET_UTILISATION = 0.78
DENSE_JOBS_PER_MONTH = 100_000
DENSE_UTILISATION = 0.60
# A name that forges a record: a newline, then a whole sacct line (default `|`) that
# gives another user's project 100,000 GPUs for a month. Slurm stores it and sacct
# prints it raw; the collector must read it as the name of its own job.
FORGED_NAME = ("rl-ppo\n9|9|testai|anna|ehpc_llm01|gpu|normal|pretrain|COMPLETED|"
               "2026-10-01T00:00:00|2026-10-01T00:00:00|2026-10-01T00:00:00|"
               "2026-10-31T00:00:00|gres/gpu=100000|1|8|gpu01|x")
# Fifteen names: choosing among them draws as many random bits as before (same history).
JOB_NAMES = (
    "llama-pretrain-7b", "ft_mistral_lora", "eval-harness", "tokenize_shard", "vit-l16",
    "eval|ablation|v2", 'run "baseline"', "<script>alert('x')</script>", "modèle-entraînement",
    "训练-中文", "diffusion_xl", "whisper-ft", "bench_nccl", FORGED_NAME, "x" * 200,
)


@dataclass(frozen=True)
class HistoryJob:
    """One allocation as slurmdbd stores it (one row of the job table)."""

    job_id: int
    user: str
    account: str
    wckey: str
    name: str
    state: int
    submit: int
    eligible: int
    start: int
    end: int
    gpus: int
    cpus: int
    nodes: tuple[str, ...]
    timelimit_min: int
    exit_code: int = 0
    array_job_id: int = 0
    array_task_id: int | None = None
    killed_by_owner: bool = False

    @property
    def ran(self) -> bool:
        return bool(self.nodes)


# The synthetic energy (written as the energy TRES of each finished job, as Slurm's
# energy plugins leave it; docs/test-cluster.md): per GPU, its share of the node when
# idle (150 W: CPUs, memory, network, fans of a GPU node over its GPUs) plus the GPU
# between 70 W idle and 700 W at full load (H100 SXM), at a load typical of the use
# phase, each job +-15 % (by its id); a CPU-only job 400 W per node.
GPU_LOAD = {"pretrain": 0.85, "finetune": 0.7, "inference": 0.35, "other": 0.25}
NODE_SHARE_W, GPU_IDLE_W, GPU_MAX_W, CPU_NODE_W = 150, 70, 700, 400


def energy_j(job: HistoryJob) -> int | None:
    """Joules the job's nodes used while it ran; None for a job that never ran."""
    if not job.ran or job.end <= job.start:
        return None
    if not job.gpus:
        return (job.end - job.start) * CPU_NODE_W * len(job.nodes)
    jitter = 0.85 + 0.3 * ((job.job_id * 2654435761) % 1000) / 1000
    load = min(1.0, GPU_LOAD.get(job.wckey.lstrip("*"), 0.5) * jitter)
    watts = NODE_SHARE_W + GPU_IDLE_W + (GPU_MAX_W - GPU_IDLE_W) * load
    return int((job.end - job.start) * job.gpus * watts)


# The synthetic GPU use (written as step rows with gres/gpuutil and gres/gpumem in
# TRESUsageIn*, as jobacct_gather leaves them with the nvml plugin; on 23.02+ only;
# docs/test-cluster.md). Every GPU job has an extern step (GPU figures 0: it tells a
# job with no step at all from a cluster without a GPU plugin). Then, by use phase and
# a draw from the job id:
# - "other" (interactive, notebooks): 30 % hold their GPUs with no step at all;
# - single-node inference and other jobs run their GPU work in the batch script;
# - the rest (training, multi-node) run one srun step after a setup of a tenth of
#   the job (at most 20 minutes), the batch script idle meanwhile; 10 % of those of
#   2+ GPUs use half their GPUs only (the rest idle all along).
# Peak utilisation per GPU and memory per GPU (GiB, of an 80 GiB H100) by phase:
STEP_UTIL = {"pretrain": (90, 100), "finetune": (70, 100), "inference": (30, 70),
             "other": (10, 50)}
STEP_MEM_GIB = {"pretrain": (60, 78), "finetune": (40, 78), "inference": (15, 40),
                "other": (5, 30)}
EXTERN, BATCH = -4, -5


@dataclass(frozen=True)
class HistoryStep:
    """One step row: its GPU figures are TRESUsageInTot's (sums of the tasks' peaks)."""

    step_id: int           # EXTERN, BATCH, 0 ...
    start: int
    end: int
    gpus: int
    nodes: tuple[str, ...]
    gpuutil: int           # percent, summed over the tasks
    gpumem: int            # bytes, summed over the tasks


def _draw_u(job_id: int, salt: int) -> float:
    """A uniform number in [0, 1) from the job id (deterministic, no RNG state)."""
    return ((job_id * 2654435761 + salt * 40503) % 4294967291) / 4294967291


def job_steps(job: HistoryJob) -> tuple[HistoryStep, ...]:
    """The steps of a finished GPU job (none for CPU-only jobs and jobs that never ran)."""
    elapsed = job.end - job.start
    if not job.ran or elapsed <= 0 or not job.gpus:
        return ()
    steps = [HistoryStep(EXTERN, job.start, job.end, job.gpus, job.nodes, 0, 0)]
    phase = job.wckey.lstrip("*")
    lo, hi = STEP_UTIL.get(phase, STEP_UTIL["other"])
    util = lo + int((hi - lo + 1) * _draw_u(job.job_id, 1))
    mlo, mhi = STEP_MEM_GIB.get(phase, STEP_MEM_GIB["other"])
    mem = (mlo + int((mhi - mlo + 1) * _draw_u(job.job_id, 2))) << 30
    kind = _draw_u(job.job_id, 3)
    batch_gpus = min(job.gpus, GPUS_PER_NODE)
    if phase == "other" and kind < 0.3:
        return tuple(steps)
    if phase in ("inference", "other") and len(job.nodes) == 1:
        steps.append(HistoryStep(BATCH, job.start, job.end, batch_gpus, job.nodes[:1],
                                 util * batch_gpus, mem * batch_gpus))
        return tuple(steps)
    steps.append(HistoryStep(BATCH, job.start, job.end, batch_gpus, job.nodes[:1], 0, 0))
    setup = min(1200, elapsed // 10)
    gpus = job.gpus // 2 if job.gpus >= 2 and kind >= 0.9 else job.gpus
    steps.append(HistoryStep(0, job.start + setup, job.end, gpus, job.nodes,
                             util * gpus, mem * gpus))
    return tuple(steps)


@dataclass(frozen=True)
class NodeOutage:
    node: str
    start: int
    end: int
    state: int
    reason: str


@dataclass(frozen=True)
class Maintenance:
    name: str
    start: int
    end: int
    nodes: str = ""      # comma-separated node names; "": every node


@dataclass
class History:
    start: int
    end: int
    jobs: list[HistoryJob] = field(default_factory=list)
    outages: list[NodeOutage] = field(default_factory=list)
    maintenance: list[Maintenance] = field(default_factory=list)


def month_start(year: int, month: int) -> int:
    return calendar.timegm((year, month, 1, 0, 0, 0))


def add_months(epoch: int, months: int) -> int:
    d = datetime.fromtimestamp(epoch, UTC)
    index = d.year * 12 + d.month - 1 + months
    return month_start(index // 12, index % 12 + 1)


def day(epoch: int) -> str:
    """The UTC date of `epoch` as YYYY-MM-DD (how Slurm tools take a start or end)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def default_start(months: int, now: int) -> int:
    """The first day of the month `months` months before the current month (UTC)."""
    d = datetime.fromtimestamp(now, UTC)
    return add_months(month_start(d.year, d.month), -months)


@dataclass(frozen=True)
class HistorySpec:
    start: int       # epoch, first second of the first month (UTC)
    months: int
    jobs: int        # job records to write (allocations)
    seed: int = 42
    not_after: int | None = None  # drop what would still run after this moment
    utilisation: float | None = None  # GPU time asked for / capacity; None: by density

    @property
    def target_utilisation(self) -> float:
        if self.utilisation is not None:
            return self.utilisation
        dense = self.jobs / self.months > DENSE_JOBS_PER_MONTH
        return DENSE_UTILISATION if dense else TARGET_UTILISATION

    @property
    def end(self) -> int:
        return add_months(self.start, self.months)


def _pick(rng: random.Random, mix: dict) -> object:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def _outages(spec: HistorySpec, nodes: list[str], rng: random.Random) -> list[NodeOutage]:
    out = []
    for m in range(spec.months):
        m0, m1 = add_months(spec.start, m), add_months(spec.start, m + 1)
        t = rng.randrange(m0 + 86400, m1 - 3 * 86400)
        out.append(NodeOutage(rng.choice(nodes), t, t + rng.randrange(4, 36) * 3600, NODE_DOWN,
                              "GPU fell off the bus"))
        t = rng.randrange(m0 + 86400, m1 - 3 * 86400)
        out.append(NodeOutage(rng.choice(nodes), t, t + rng.randrange(2, 12) * 3600,
                              NODE_DRAIN_IDLE, "xid 79, draining for RMA"))
    if spec.months >= 2:  # one outage across a month boundary
        b = add_months(spec.start, 1)
        out.append(NodeOutage(nodes[-1], b - 10 * 3600, b + 6 * 3600, NODE_DOWN, "PSU failure"))
    return out


def _maintenance(spec: HistorySpec) -> list[Maintenance]:
    m0 = add_months(spec.start, spec.months // 2)
    d = datetime.fromtimestamp(m0, UTC)
    # The second Tuesday of that month, 06:00 to 14:00 UTC.
    first_tuesday = 1 + (1 - d.weekday()) % 7
    day0 = m0 + (first_tuesday + 7 - 1) * 86400
    return [Maintenance(f"maint_{d:%Y_%m}", day0 + 6 * 3600, day0 + 14 * 3600)]


def _submit_time(rng: random.Random, spec: HistorySpec) -> int:
    """Busier on weekday daytimes than at night and at weekends."""
    while True:
        t = rng.randrange(spec.start, spec.end)
        d = datetime.fromtimestamp(t, UTC)
        weight = (0.5 if d.weekday() >= 5 else 1.0) * (1.0 if 7 <= d.hour < 20 else 0.45)
        if rng.random() < weight:
            return t


def _duration_s(rng: random.Random, mean_s: float) -> int:
    # Lognormal with sigma 1.4: many short jobs, a long tail of long ones.
    sigma = 1.4
    mu = math.log(mean_s) - sigma * sigma / 2
    return max(1, min(int(rng.lognormvariate(mu, sigma)), TIME_LIMITS_MIN[-1] * 60))


@dataclass
class _Draw:
    """What one submission looks like before it is placed."""

    project: Project
    user: str
    wckey: str
    name: str
    gpus: int
    duration_s: int
    timelimit_min: int
    submit: int
    eligible: int
    fate: str
    tasks: int = 1
    job_id: int = 0


FATES = {"completed": 0.80, "failed": 0.07, "timeout": 0.04, "cancelled_running": 0.03,
         "cancelled_pending": 0.03, "node_fail": 0.01, "requeued": 0.015, "oom": 0.005}


def _draw(rng: random.Random, spec: HistorySpec, by_category: dict[str, list[Project]],
          mean_s: float) -> _Draw:
    category = _pick(rng, CATEGORY_MIX)
    projects = by_category[category]
    project = rng.choices(projects, weights=[1 / (i + 1) for i in range(len(projects))])[0]
    phase = rng.choices(PHASES, weights=PHASE_MIX[category])[0]
    wckey = "*other" if phase == "other" and rng.random() < 0.5 else phase
    gpus = _pick(rng, SIZE_MIX)
    fate = _pick(rng, FATES)
    duration = _duration_s(rng, mean_s)
    limit = next(m for m in TIME_LIMITS_MIN if m * 60 >= duration * 1.2) \
        if duration * 1.2 <= TIME_LIMITS_MIN[-1] * 60 else TIME_LIMITS_MIN[-1]
    if fate == "timeout":
        duration = limit * 60
    submit = _submit_time(rng, spec)
    eligible = submit + (rng.randrange(0, 6 * 3600) if rng.random() < 0.1 else 0)
    arrays_allowed = gpus == 1 and fate not in ("cancelled_pending", "requeued")
    tasks = rng.randrange(2, 21) if arrays_allowed and rng.random() < 0.06 else 1
    return _Draw(project, rng.choice(project.users), wckey, rng.choice(JOB_NAMES), gpus,
                 duration, limit, submit, eligible, fate, tasks)


def _mean_duration_s(spec: HistorySpec) -> float:
    mean_gpus = sum(g * w for g, w in SIZE_MIX.items()) / (1 - SIZE_MIX[0])
    capacity_gpu_s = NODE_COUNT * GPUS_PER_NODE * (spec.end - spec.start)
    return spec.target_utilisation * capacity_gpu_s / (spec.jobs * mean_gpus)


class _Builder:
    def __init__(self, spec: HistorySpec, nodes: list[str],
                 slots: tuple[Cluster, Cluster] | None = None) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.history = History(spec.start, spec.end)
        self.history.outages = _outages(spec, nodes, self.rng)
        self.history.maintenance = _maintenance(spec)
        # CPU-only jobs run on CPU slots that GPU jobs leave free (one per GPU). Given
        # `slots`, the nodes are as an earlier month's jobs left them.
        self.gpu_slots, self.cpu_slots = slots or (Cluster(nodes, GPUS_PER_NODE, spec.start),
                                                   Cluster(nodes, GPUS_PER_NODE, spec.start))
        for pool in (self.gpu_slots, self.cpu_slots):
            for o in self.history.outages:
                pool.block(o.node, o.start, o.end)
            for m in self.history.maintenance:
                for node in nodes:
                    pool.block(node, m.start, m.end)

    def place(self, gpus: int, eligible: int, duration: int) -> tuple[int, tuple[str, ...]]:
        if gpus == 0:
            start, nodes = self.cpu_slots.place_on_one_node(eligible, duration, 1)
        elif gpus <= GPUS_PER_NODE:
            start, nodes = self.gpu_slots.place_on_one_node(eligible, duration, gpus)
        else:
            start, nodes = self.gpu_slots.place_whole_nodes(eligible, duration,
                                                            gpus // GPUS_PER_NODE)
        return start, tuple(nodes)

    def job(self, d: _Draw, job_id: int, **kw: object) -> HistoryJob:
        cpus = max(1, d.gpus)
        base = dict(job_id=job_id, user=d.user, account=d.project.name, wckey=d.wckey,
                    name=d.name, submit=d.submit, eligible=d.eligible, gpus=d.gpus, cpus=cpus,
                    timelimit_min=d.timelimit_min)
        base.update(kw)
        return HistoryJob(**base)  # type: ignore[arg-type]

    def add_run(self, d: _Draw, job_id: int, **kw: object) -> None:
        start, nodes = self.place(d.gpus, d.eligible, d.duration_s)
        state, exit_code, killed, end = {
            "completed": (COMPLETE, 0, False, start + d.duration_s),
            "failed": (FAILED, 256, False, start + d.duration_s),
            "timeout": (TIMEOUT, 0, False, start + d.duration_s),
            "cancelled_running": (CANCELLED, 0, True, start + d.duration_s),
            "node_fail": (NODE_FAIL, 0, False, start + d.duration_s),
            "oom": (OOM, 0, False, start + d.duration_s),
        }[d.fate]
        self.history.jobs.append(self.job(d, job_id, state=state, start=start, end=end,
                                          nodes=nodes, exit_code=exit_code,
                                          killed_by_owner=killed, **kw))

    def add(self, d: _Draw) -> None:
        job_id = d.job_id
        if d.fate == "cancelled_pending":
            cancel = d.eligible + self.rng.randrange(60, 8 * 3600)
            self.history.jobs.append(self.job(
                d, job_id, state=CANCELLED, start=cancel, end=cancel, gpus=d.gpus, nodes=(),
                killed_by_owner=True))
        elif d.fate == "requeued":
            # The first run is cut short and recorded as REQUEUED; the rerun is a
            # second record with the same job id and the requeue time as submit time.
            cut = max(30, d.duration_s // 3)
            start, nodes = self.place(d.gpus, d.eligible, cut)
            self.history.jobs.append(self.job(d, job_id, state=REQUEUED, start=start,
                                              end=start + cut, nodes=nodes))
            rerun = _Draw(**{**d.__dict__, "submit": start + cut,
                             "eligible": start + cut + REQUEUE_DELAY_S, "fate": "completed"})
            self.add_run(rerun, job_id)
        elif d.tasks > 1:
            # The array's own id is carried by its last task; the others get new ids.
            for task in range(d.tasks):
                task_id = job_id if task == d.tasks - 1 else job_id + 1 + task
                self.add_run(d, task_id, array_job_id=job_id, array_task_id=task)
        else:
            self.add_run(d, job_id)


def _draw_all(spec: HistorySpec, by_category: dict[str, list[Project]],
              mean_s: float) -> list[_Draw]:
    rng = random.Random(f"draws-{spec.seed}")
    draws = []
    records = 0
    while records < spec.jobs:
        d = _draw(rng, spec, by_category, mean_s)
        draws.append(d)
        records += d.tasks + (d.fate == "requeued")
    return draws


def _demand_gpu_s(draws: list[_Draw]) -> float:
    total = 0.0
    for d in draws:
        if d.fate != "cancelled_pending":
            runs = 4 / 3 if d.fate == "requeued" else 1
            total += max(d.gpus, 0.25) * d.duration_s * d.tasks * runs
    return total


def generate(spec: HistorySpec, nodes: list[str],
             progress: Callable[[str, int, int], None] | None = None) -> History:
    """Make the history described by `spec` on `nodes` (deterministic for a spec).

    `progress(phase, done, total)` is called while the jobs are placed.
    """
    return _generate(spec, nodes, progress, FIRST_JOB_ID, None)[0]


# Above this many jobs a history is made a month at a time (generate_by_month): a
# history is held in memory whole (about 2 KB a job while it is made).
WHOLE_MAX_JOBS = 2_000_000


def generate_by_month(spec: HistorySpec, nodes: list[str],
                      progress: Callable[[str, int, int], None] | None = None
                      ) -> Iterator[History]:
    """The history of `spec` one month at a time, for histories too large to hold
    whole (a year of 10 million jobs): each month is made as a one-month history with
    its share of the jobs and its own seed, placed on the nodes as the months before
    left them, its job ids following theirs. Deterministic for a spec, but not the
    history `generate` makes of it (no outage across a month boundary; a maintenance
    window every month)."""
    slots: tuple[Cluster, Cluster] | None = None
    next_id = FIRST_JOB_ID
    for m in range(spec.months):
        share = spec.jobs // spec.months + (1 if m < spec.jobs % spec.months else 0)
        month = HistorySpec(add_months(spec.start, m), 1, share, seed=spec.seed * 1000 + m,
                            not_after=spec.not_after, utilisation=spec.target_utilisation)
        history, slots, next_id = _generate(month, nodes, progress, next_id, slots)
        yield history


def _generate(spec: HistorySpec, nodes: list[str],
              progress: Callable[[str, int, int], None] | None, first_id: int,
              slots: tuple[Cluster, Cluster] | None
              ) -> tuple[History, tuple[Cluster, Cluster], int]:
    """(the history, the node slots as its jobs leave them, the next free job id)."""
    builder = _Builder(spec, nodes, slots)
    by_category: dict[str, list[Project]] = {c: [] for c in CATEGORIES}
    for proj in PROJECTS:
        by_category[proj.category].append(proj)
    # Draw once, measure the GPU time that asks for (timeouts run to their limit,
    # requeued jobs run twice), and draw again with the mean corrected, so that
    # demand meets the target at any job density without a runaway queue.
    mean_s = _mean_duration_s(spec)
    draws = _draw_all(spec, by_category, mean_s)
    capacity_gpu_s = NODE_COUNT * GPUS_PER_NODE * (spec.end - spec.start)
    mean_s *= spec.target_utilisation * capacity_gpu_s / _demand_gpu_s(draws)
    draws = _draw_all(spec, by_category, mean_s)
    # Job ids grow with submit time; placement follows eligible time.
    draws.sort(key=lambda d: d.submit)
    next_id = first_id
    for d in draws:
        d.job_id = next_id
        next_id += d.tasks
    draws.sort(key=lambda d: (d.eligible, d.job_id))
    for done, d in enumerate(draws, 1):
        # What ended before the draw's eligible time no longer matters; never forget
        # into the next month, whose jobs (generate_by_month) are placed on these slots.
        builder.gpu_slots.forget_before(min(d.eligible, spec.end))
        builder.cpu_slots.forget_before(min(d.eligible, spec.end))
        builder.add(d)
        if progress is not None and (done % 5000 == 0 or done == len(draws)):
            progress("place", done, len(draws))
    jobs = builder.history.jobs
    if spec.not_after is not None:
        jobs = [j for j in jobs if j.end <= spec.not_after and j.eligible <= spec.not_after]
    jobs.sort(key=lambda j: (j.submit, j.job_id))
    builder.history.jobs = jobs
    return builder.history, (builder.gpu_slots, builder.cpu_slots), next_id
