"""The door through pyslurm (optional extra): slurmdbd's job records via libslurm.

pyslurm X.Y builds only against Slurm X.Y; PyPI publishes 25.11 only, so it works
where the cluster runs Slurm 25.11 and the libslurm headers were there at install
time. When pyslurm is missing or does not match the running Slurm, the collector
says exactly that and how to fix it, instead of failing inside libslurm.

`PyslurmSource` is the one place that imports pyslurm (lazily: the product imports
without it). `job_fields` reads the attributes of one `pyslurm.db.Job` named in
`JOB_FIELDS`; `job_record` and `account_tree` are pure and unit-tested without
pyslurm, on stand-ins built per pyslurm's source. A job that cannot be read is
rejected with its reason, as the sacct and slurmrestd doors reject theirs, with the
same rules (`slurmrestd_parser`'s validators).

What pyslurm 25.11.2 (pyslurm/db/job.pyx, tres.pyx, assoc.pyx, xcollections.pyx,
utils/uint.pyx) does that is handled here:

- `Jobs.load` returns a `MultiClusterMap`: iterating it yields job ids, so the door
  iterates `.values()`. The same holds for `Associations.load`.
- `Job.as_dict()` computes every property (steps, environment, stdio paths, uid
  lookups); the door reads only `JOB_FIELDS`. A name pyslurm lacks rejects the job
  with that name as the reason, never reads as empty.
- There is no `tres_alloc_str`. `allocated_tres` is a `TrackableResources` (None for a
  job that never ran) already resolved through the TRES table by `Jobs.load`; its
  `gres` maps `gpu` and `gpu:<type>` to `GPU` objects with a `count`. The TRES table is
  therefore not loaded here. `gpus`, `gres` and `tres` fall back to the requested TRES
  of a job that never ran (sacct's AllocTRES is empty then), so they are not read.
- uint32 fields go through `u32_parse(zero_is_noval=True)`: array task 0 reads None,
  like a pending array not split into tasks yet; the two are told apart by
  `array_tasks_waiting` (slurmdbd's array_task_str, which sacct prints as `123_[0-9]`
  and which, as in sacct, makes the record a pending array). `heterogeneous_offset`
  (parsed with noval=0) reads None for component 0 and NO_VAL (4294967294) for a job
  that is not heterogeneous (`heterogeneous_id` None); it is only read for het jobs.
- times of 0 read None (`_raw_time`), empty strings read None (`cstr.to_unicode`).
- `state` is `slurm_job_state_string()`: sacct's word, no " by <uid>" suffix.
- `wckey` keeps slurmdbd's leading "*" of a default WCKey, as sacct prints it.
- `cpus` and `num_nodes` are 0 for a job that never ran (`find_count_in_str`'s
  on_noval=0 wins over the requested-count fallback); the door zeroes them for such
  a job anyway, from its nodelist "None assigned", as the sacct door does.
- `JobFilter(ids=[])` sets no job list and so loads today's jobs, and a start_time of
  0 means "no start" (slurmdb_job_cond_def_start_end then starts at midnight):
  `by_ids([])` asks nothing and windows start at epoch 1 at the earliest.
- There is no `pyslurm.db.Accounts`: the tree comes from `Associations` (which has no
  cluster filter: filtered here); `group_tres_mins` is a `TrackableResources` or None.

Differences from the sacct door, on purpose or because pyslurm 25.11.2 cannot:

- Earlier runs of a requeued job are missing: `JobFilter` has no duplicates option
  (its slurmdb_job_cond_t is private; it sets only NO_TRUNC, SCRIPT and ENV, never
  JOBCOND_FLAG_DUP), and `Jobs.load` keys jobs by (cluster, id), so runs would
  overwrite each other anyway; the deprecated `slurmdb_jobs().get(flags=...)` keys
  by id too. Only the newest run of each job id arrives (sacct --duplicates lists
  the earlier ones as REQUEUED, and their GPU time). The newest run *in a window*:
  when a window's end falls between a run and its requeue, that window brings the
  earlier run, so which earlier runs are stored depends on where the windows fall
  (a CI run with windows growing fourfold stored 4 of them; with twofold, the test
  cluster's history stores none). Another reason to prefer the sacct door.
- `user_name` is resolved on the collecting host (getpwuid); a uid the host does not
  know reads as the uid's digits, where sacct prints slurmdbd's user name.
- Organisation and description of accounts come from `sacctmgr show account` (no
  Accounts in pyslurm 25.11.2), as events and reservations do with every source.
- `Jobs.load` always reads job steps (no JOBCOND_FLAG_NO_STEP option): slower, not
  different.

The live view (jobs holding or waiting for GPUs now, each node's GPUs and state)
comes from slurmctld through `pyslurm.Jobs.load()` and `pyslurm.Nodes.load()` with
this source, as squeue and sinfo give it with the others (pyslurm 25.11.2,
pyslurm/core/job/job.pyx and node.pyx):

- a job's GPUs are `allocated_tres`, else `requested_tres` (a pending job), as
  squeue's `tres-alloc` prints `tres_alloc_str`, else `tres_req_str`; both are
  `TrackableResources` read by `_gpus`. squeue's state filter (`SQUEUE_STATES`) is
  applied here: slurmctld also returns jobs that ended minutes ago.
- a pending array is one record in slurmctld (`array_tasks_waiting`: "3-9"); squeue
  --array prints one line per waiting task, each with the record's job id and
  per-task TRES, so the record becomes that many jobs here too.
- a node's `state` is `slurm_node_state_string_complete()` ("IDLE+DRAIN",
  "DOWN+NOT_RESPONDING"); `sinfo_state` turns it into sinfo's long state ("drained",
  "down*") by the rules of Slurm's node_state_string(), so one `NodeGpus.available`
  decides for every source. `configured_gres` is sinfo's Gres as a dict
  ({"gpu:h100": 4}); `partitions` a list.
- pyslurm reads the local controller (SLURM_CONF); squeue's `--clusters` has no
  counterpart, so the live view is of the cluster this host belongs to.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ClusterShell.RangeSet import RangeSet, RangeSetParseError
from msgspec.structs import replace

from collector.slurm.commands import SlurmError, run_sacctmgr_account_info, run_sinfo_version
from collector.slurm.live_parser import SQUEUE_STATES, LiveJob, NodeGpus
from collector.slurm.records import JobRecord, job_id_text
from collector.slurm.sacct_parser import FieldError, ParseResult, Rejected
from collector.slurm.sacctmgr_parser import Account, account_texts
from collector.slurm.steps import add_sacct_steps
from collector.slurm.values import number, text

FIX = ("install it against this cluster's Slurm: pip install 'gpu-usage[pyslurm]' on a "
       "host with Slurm {want} and its headers (slurm-dev / libslurm-dev), or set "
       "[slurm] source = \"sacct\" or \"slurmrestd\"")

# The pyslurm.db.Job attributes the mapping reads: job_fields asks for exactly these.
JOB_FIELDS = (
    "id", "cluster", "submit_time", "array_id", "array_task_id", "array_tasks_waiting",
    "heterogeneous_id", "heterogeneous_offset", "user_name", "account", "partition", "qos",
    "wckey", "state", "eligible_time", "start_time", "end_time", "allocated_tres",
    "num_nodes", "cpus", "nodelist", "name",
)
# The pyslurm.Job (slurmctld) and pyslurm.Node attributes the live view reads.
LIVE_JOB_FIELDS = ("id", "state", "account", "partition", "allocated_tres", "requested_tres",
                   "num_nodes", "array_tasks_waiting")
NODE_FIELDS = ("name", "state", "configured_gres", "partitions")
NO_VAL = 0xFFFFFFFE  # slurmdbd's "not set" of a uint32 that pyslurm passes through
_REJECTED = (FieldError, AttributeError, TypeError, ValueError, OverflowError, KeyError)


def running_slurm_version() -> str | None:
    """Major.minor of the Slurm on this host (from `sinfo --version`), if any."""
    try:
        out = run_sinfo_version().split()
    except SlurmError:  # no sinfo here, or it failed: the version is not known
        return None
    return ".".join(out[1].split(".")[:2]) if len(out) > 1 else None


def load_pyslurm() -> Any:
    """The pyslurm module, or SlurmError saying what is wrong and how to fix it."""
    slurm = running_slurm_version()
    try:
        import pyslurm  # type: ignore[import-not-found]
    except ImportError as exc:
        raise SlurmError("[slurm] source = \"pyslurm\" but pyslurm is not installed; "
                         + FIX.format(want=slurm or "X.Y")) from exc
    built = ".".join(str(getattr(pyslurm, "__version__", "")).split(".")[:2])
    if slurm and built and built != slurm:
        raise SlurmError(f"pyslurm {pyslurm.__version__} is built for Slurm {built}, but this "
                         f"cluster runs Slurm {slurm}; " + FIX.format(want=slurm))
    return pyslurm


def _int(value: Any, name: str) -> int | None:
    """A plain pyslurm integer (None: unset), checked as slurmrestd_parser checks its
    numbers; the {"set", "number"} form is slurmrestd's and is refused here."""
    if isinstance(value, Mapping):
        raise FieldError(f"{name} {value!r} is not a number")
    return number(value, name)


def job_fields(job: Any, names: tuple[str, ...] = JOB_FIELDS) -> dict[str, Any]:
    """The `names` (`JOB_FIELDS`) of one pyslurm object; a name it lacks is left out
    (and the object then rejected by its mapping)."""
    fields = {}
    for name in names:
        try:
            fields[name] = getattr(job, name)
        except AttributeError:
            continue
    return fields


def _gpus(tres: Any) -> tuple[int, tuple[tuple[str, int], ...]]:
    """(GPUs, typed GPUs) of `allocated_tres` (None: nothing allocated)."""
    if tres is None:
        return 0, ()
    gres = getattr(tres, "gres", None)
    if not isinstance(gres, Mapping):
        raise FieldError(f"allocated_tres is a {type(tres).__name__}, not TRES with gres")
    gpus = 0
    typed: list[tuple[str, int]] = []
    for name, item in gres.items():
        if not isinstance(name, str) or not (name == "gpu" or name.startswith("gpu:")):
            continue  # other GRes (shards, licences) are not read
        count = _int(getattr(item, "count", None), f"allocated_tres gres/{name}")
        if count is None:
            raise FieldError(f"allocated_tres gres/{name} has no count")
        if name == "gpu":
            gpus = count
        else:
            typed.append((name[4:], count))
    return gpus, tuple(sorted(typed))


def _energy(tres: Any) -> int | None:
    """Joules of `allocated_tres.energy`: a TrackableResource, or None when not recorded
    (pyslurm drops a NO_VAL64 count: tres.pyx from_type_and_count)."""
    item = getattr(tres, "energy", None) if tres is not None else None
    if item is None:
        return None
    count = _int(getattr(item, "count", None), "allocated_tres energy")
    if count is None:
        raise FieldError("allocated_tres energy has no count")
    return count


def _time(job: Mapping[str, Any], name: str) -> int | None:
    return _int(job[name], name) or None


def job_record(job: Mapping[str, Any], cluster: str | None = None) -> JobRecord | None:
    """One job's `job_fields` as a record; None for a pending array not split yet."""
    missing = [name for name in JOB_FIELDS if name not in job]
    if missing:
        raise FieldError(f"the job has no {', '.join(missing)}")
    raw = _int(job["id"], "id")
    if raw is None:
        raise FieldError("id is missing")
    array_id = _int(job["array_id"], "array_id") or None
    if array_id is not None and text(job, "array_tasks_waiting"):
        return None  # like sacct: array_task_str makes the record `123_[0-9]`
    task = _int(job["array_task_id"], "array_task_id")
    if array_id is not None and task is None:
        task = 0  # pyslurm 25.11.2 reads task 0 as None
    het_id = _int(job["heterogeneous_id"], "heterogeneous_id") or None
    offset = None
    if het_id is not None:
        offset = _int(job["heterogeneous_offset"], "heterogeneous_offset") or 0
        if offset == NO_VAL:
            raise FieldError(f"heterogeneous job {het_id} has no offset")
    submit = _time(job, "submit_time")
    if submit is None:
        raise FieldError("submit_time is missing")
    start, end = _time(job, "start_time"), _time(job, "end_time")
    if start is not None and end is not None and end < start:
        raise FieldError(f"end_time {end} is before start_time {start}")
    state = text(job, "state").split(" ", 1)[0]
    if not state:
        raise FieldError("state is empty")
    gpus, typed = _gpus(job["allocated_tres"])
    nodelist, wckey = text(job, "nodelist"), text(job, "wckey")
    ran = nodelist not in ("None assigned", "")
    nodes, cpus = _int(job["num_nodes"], "num_nodes"), _int(job["cpus"], "cpus")
    return JobRecord(
        cluster or text(job, "cluster"), raw, submit,
        job_id_text(raw, array_id, task, het_id, offset),
        array_id, task if array_id is not None else None, het_id, offset,
        text(job, "user_name"), text(job, "account"), text(job, "partition"),
        text(job, "qos"), wckey.removeprefix("*"), wckey.startswith("*"), state,
        _time(job, "eligible_time"), start, end, gpus, typed,
        (nodes or 0) if ran else 0, (cpus or 0) if ran else 0, nodelist if ran else "",
        text(job, "name"), _energy(job["allocated_tres"]))


def _plain(value: Any) -> Any:
    """A pyslurm object (or a stand-in) as JSON can hold it, for a rejected job's text."""
    try:
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return to_dict(recursive=True)
        return vars(value)
    except (*_REJECTED, RuntimeError):
        return repr(value)


def _rejected(index: int, exc: Exception, fields: dict[str, Any], obj: Any) -> Rejected:
    reason = str(exc) if isinstance(exc, FieldError) else f"unexpected shape: {exc}"
    shown = json.dumps(fields, default=_plain, ensure_ascii=False) if fields else repr(obj)
    return Rejected(index, reason, shown[:2000])


def parse_jobs(jobs: Iterable[Any], cluster: str | None = None) -> ParseResult:
    """Every `pyslurm.db.Job` of a load, read or rejected (with the fields read)."""
    result = ParseResult()
    for index, job in enumerate(jobs, 1):
        fields: dict[str, Any] = {}
        try:
            fields = job_fields(job)
            record = job_record(fields, cluster)
        except _REJECTED as exc:
            result.rejected.append(_rejected(index, exc, fields, job))
            continue
        if record is None:
            result.pending_arrays.append(f"{fields['id']}_[{fields['array_tasks_waiting']}]")
        else:
            result.records.append(record)
    return result


# --- The live view (slurmctld) ---------------------------------------------------------
def _require(obj: Mapping[str, Any], names: tuple[str, ...], what: str) -> None:
    missing = [name for name in names if name not in obj]
    if missing:
        raise FieldError(f"{what} has no {', '.join(missing)}")


def _waiting_tasks(job: Mapping[str, Any]) -> int:
    """How many tasks a pending array's one record stands for (its `array_task_str`
    without the %throttle, e.g. "3-9" or "1,3,5-7"); 1 for any other job."""
    tasks = text(job, "array_tasks_waiting")
    if not tasks:
        return 1
    try:
        count = len(RangeSet(tasks))
    except RangeSetParseError as exc:
        raise FieldError(f"array_tasks_waiting {tasks[:100]!r} is not a task range") from exc
    if not 0 < count <= 10**7:
        raise FieldError(f"array_tasks_waiting {tasks[:100]!r} holds {count} tasks")
    return count


def live_jobs(job: Mapping[str, Any]) -> list[LiveJob]:
    """One `pyslurm.Job` as squeue's lines read with --array: a pending array's record
    is one line per waiting task, as squeue splits it; none for a job in a state
    squeue is not asked for (`SQUEUE_STATES`)."""
    one = live_job(job)
    return [] if one is None else [one] * _waiting_tasks(job)


def live_job(job: Mapping[str, Any]) -> LiveJob | None:
    """One `pyslurm.Job`'s `LIVE_JOB_FIELDS` as squeue's line reads; None for a job in
    a state squeue is not asked for (`SQUEUE_STATES`)."""
    _require(job, LIVE_JOB_FIELDS, "the job")
    raw = _int(job["id"], "id")
    if raw is None:
        raise FieldError("id is missing")
    state = text(job, "state").split(" ", 1)[0]
    if not state:
        raise FieldError("state is empty")
    if state not in SQUEUE_STATES:
        return None
    tres = job["allocated_tres"]
    gpus, typed = _gpus(tres if tres is not None else job["requested_tres"])
    return LiveJob(str(raw), state, text(job, "account"), text(job, "partition"), gpus,
                   typed[0][0] if len(typed) == 1 else "", _int(job["num_nodes"], "num_nodes") or 0)


# node_state_string()'s flag suffixes, in its order of precedence.
_SUFFIXES = (("MAINTENANCE", "$"), ("REBOOT_ISSUED", "^"), ("REBOOT_REQUESTED", "@"),
             ("POWERING_UP", "#"), ("POWERING_DOWN", "%"), ("POWERED_DOWN", "~"),
             ("POWER_DOWN", "!"), ("NOT_RESPONDING", "*"))


# States node_state_string() names by their one flag when the base is UNKNOWN (0).
_ONLY_FLAG = frozenset({"CLOUD", "EXTERNAL", "POWER_DOWN", "POWER_UP", "POWERING_DOWN",
                        "POWERED_DOWN", "POWERING_UP", "UNDRAIN", "DYNAMIC_FUTURE",
                        "DYNAMIC_NORM"})


def sinfo_state(complete: str) -> str:
    """sinfo's long state ("drained", "down*", "mixed-") of a complete node state
    ("IDLE+DRAIN", "DOWN+NOT_RESPONDING", "MIXED+PLANNED"), by the rules of Slurm
    25.11's node_state_string() (src/common/slurm_protocol_defs.c)."""
    base, *rest = complete.upper().split("+")
    flags = set(rest)
    busy = base in ("ALLOCATED", "MIXED")
    ending = "COMPLETING" in flags
    suffix = next((mark for flag, mark in _SUFFIXES if flag in flags), "")
    no_resp = "*" if "NOT_RESPONDING" in flags else ""
    if "INVALID_REG" in flags:
        return "inval"
    if "MAINTENANCE" in flags and not ("DRAIN" in flags or busy or base == "DOWN"):
        return "maint" + no_resp
    if flags & {"REBOOT_REQUESTED", "REBOOT_ISSUED"} and not busy:
        return "reboot^" if "REBOOT_ISSUED" in flags else "reboot" + no_resp
    if "DRAIN" in flags:
        return ("draining" if busy or ending else "drained") + suffix
    if "FAIL" in flags:
        return ("failing" if busy or ending else "fail") + no_resp
    if base == "UNKNOWN" and len(flags) == 1 and flags <= _ONLY_FLAG:
        return next(iter(flags)).lower()       # e.g. "powered_down", "cloud"
    if base == "ALLOCATED":
        return "allocated" + (suffix or ("+" if ending else ""))
    if base in ("DOWN", "FUTURE"):
        return base.lower() + suffix
    if ending:
        return "completing" + suffix
    if base == "IDLE":
        if suffix:
            return "idle" + suffix
        return next((flag.lower() for flag in ("RESERVED", "BLOCKED", "PLANNED")
                     if flag in flags), "idle")
    if base == "MIXED":
        return "mixed" + (suffix or ("-" if "PLANNED" in flags else ""))
    return "resume" if "RESUME" in flags else "unknown" + no_resp


def live_node(node: Mapping[str, Any]) -> NodeGpus:
    """One `pyslurm.Node`'s `NODE_FIELDS` as sinfo's line reads."""
    _require(node, NODE_FIELDS, "the node")
    name, state = text(node, "name"), text(node, "state")
    if not name or not state:
        raise FieldError("name or state is empty")
    gres, partitions = node["configured_gres"], node["partitions"]
    if not isinstance(gres, Mapping):
        raise FieldError(f"configured_gres {gres!r} is not a mapping")
    if not isinstance(partitions, list | tuple) or not all(
            isinstance(p, str) for p in partitions):
        raise FieldError(f"partitions {partitions!r} is not a list of names")
    gpus, types = 0, set()
    for key, value in gres.items():
        kind, _, gpu_type = str(key).partition(":")
        if kind != "gpu":
            continue  # other GRes (shards, licences) are not read
        count = _int(value.get("count") if isinstance(value, Mapping) else value,
                     f"configured_gres {key}")
        if count is None:
            raise FieldError(f"configured_gres {key} has no count")
        gpus += count
        types.add(gpu_type)
    return NodeGpus(name, sinfo_state(state), gpus, types.pop() if len(types) == 1 else "",
                    tuple(partitions))


def _parse_live(objs: Iterable[Any], names: tuple[str, ...],
                read: Callable[[Mapping[str, Any]], list]) -> tuple[list, list[Rejected]]:
    """Each object's `names` read by `read` (into none, one or more entries), or the
    object rejected with its reason."""
    out: list = []
    rejected: list[Rejected] = []
    for index, obj in enumerate(objs, 1):
        fields: dict[str, Any] = {}
        try:
            fields = job_fields(obj, names)
            out.extend(read(fields))
        except _REJECTED as exc:
            rejected.append(_rejected(index, exc, fields, obj))
    return out, rejected


def parse_live_jobs(jobs: Iterable[Any]) -> tuple[list[LiveJob], list[Rejected]]:
    """Every `pyslurm.Job` of `pyslurm.Jobs.load()` that squeue would list, or rejected."""
    return _parse_live(jobs, LIVE_JOB_FIELDS, live_jobs)


def parse_live_nodes(nodes: Iterable[Any]) -> tuple[list[NodeGpus], list[Rejected]]:
    """Every `pyslurm.Node` of `pyslurm.Nodes.load()`, or rejected."""
    return _parse_live(nodes, NODE_FIELDS, lambda fields: [live_node(fields)])


def _gpu_minutes(tres: Any) -> int | None:
    """GrpTRESMins gres/gpu (untyped, as sacctmgr's) of an association, if any."""
    if tres is None:
        return None
    gres = getattr(tres, "gres", None)
    if not isinstance(gres, Mapping):
        raise FieldError(f"group_tres_mins is a {type(tres).__name__}, not TRES with gres")
    item = gres.get("gpu")
    return None if item is None else _int(getattr(item, "count", None), "GrpTRESMins gres/gpu")


def account_tree(assocs: Iterable[Any], cluster: str) -> list[Account]:
    """The account tree from `pyslurm.db.Association`s, like sacctmgr's (without
    organisation and description: pyslurm 25.11.2 has no Accounts)."""
    parents: dict[str, str] = {}
    budgets: dict[str, int | None] = {}
    users: dict[str, set[str]] = {}
    for assoc in assocs:
        if assoc.cluster not in (None, cluster):
            continue
        account = assoc.account or ""
        if assoc.user:
            users.setdefault(account, set()).add(assoc.user)
        else:
            parents[account] = assoc.parent_account or ""
            budgets[account] = _gpu_minutes(assoc.group_tres_mins)
    return [Account(a, parents[a], "", "", budgets[a], tuple(sorted(users.get(a, ()))))
            for a in sorted(parents)]


@dataclass
class PyslurmSource:
    cluster: str
    timeout_s: float = 120
    env: dict[str, str] | None = None
    name: str = "pyslurm"
    window_target: int = 50_000
    window_growth: int = 2
    _pyslurm: Any = field(default=None, repr=False)
    steps: bool = False  # GPU use from the jobs' steps, through sacct (see sources)

    def _lib(self) -> Any:
        if self._pyslurm is None:
            self._pyslurm = load_pyslurm()
        return self._pyslurm

    def _load(self, **filt: Any) -> ParseResult:
        lib = self._lib()
        try:
            jobs = lib.db.Jobs.load(lib.db.JobFilter(clusters=[self.cluster], **filt))
        except lib.RPCError as exc:
            raise SlurmError(f"pyslurm could not read jobs from slurmdbd: {exc}") from exc
        return parse_jobs(jobs.values(), self.cluster)

    def window(self, start_s: int, end_s: int) -> ParseResult:
        result = self._load(start_time=max(start_s, 1), end_time=end_s)
        if self.steps:
            add_sacct_steps(result, self.cluster, self.timeout_s, self.env, (start_s, end_s))
        return result

    def by_ids(self, job_ids: list[int]) -> ParseResult:
        if not job_ids:
            return ParseResult()
        result = self._load(ids=list(job_ids))
        if self.steps:
            add_sacct_steps(result, self.cluster, self.timeout_s, self.env, ids=list(job_ids))
        return result

    def _slurmctld(self, what: str) -> Any:
        """pyslurm's `Jobs` or `Nodes` collection loaded from slurmctld now."""
        lib = self._lib()
        try:
            return getattr(lib, what).load()
        except lib.RPCError as exc:
            raise SlurmError(f"pyslurm could not read {what.lower()} from slurmctld: {exc}"
                             ) from exc

    def jobs_now(self) -> tuple[list[LiveJob], list[Rejected]]:
        """Jobs holding or waiting for GPUs now, from slurmctld (as squeue lists them)."""
        return parse_live_jobs(self._slurmctld("Jobs").values())

    def nodes_now(self) -> tuple[list[NodeGpus], list[Rejected]]:
        """Every node with its GPUs and state, from slurmctld (as sinfo lists them)."""
        return parse_live_nodes(self._slurmctld("Nodes").values())

    def accounts(self) -> tuple[list[Account], list[Rejected]]:
        lib = self._lib()
        try:
            assocs = lib.db.Associations.load()
        except lib.RPCError as exc:
            raise SlurmError(f"pyslurm could not read associations from slurmdbd: {exc}"
                             ) from exc
        # pyslurm 25.11.2 has no Accounts: organisations and descriptions come from
        # sacctmgr, the door the events and reservations come through with every source.
        info, rejected = account_texts(run_sacctmgr_account_info(self.timeout_s, self.env))
        return [replace(a, organisation=info.get(a.account, ("", ""))[0],
                        description=info.get(a.account, ("", ""))[1])
                for a in account_tree(assocs.values(), self.cluster)], rejected
