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
  the earlier ones as REQUEUED, and their GPU time).
- `user_name` is resolved on the collecting host (getpwuid); a uid the host does not
  know reads as the uid's digits, where sacct prints slurmdbd's user name.
- Organisation and description of accounts come from `sacctmgr show account` (no
  Accounts in pyslurm 25.11.2), as events and reservations do with every source.
- `Jobs.load` always reads job steps (no JOBCOND_FLAG_NO_STEP option): slower, not
  different.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from collector.slurm.commands import SlurmError, run_sacctmgr_account_info
from collector.slurm.records import JobRecord, job_id_text
from collector.slurm.sacct_parser import FieldError, ParseResult, Rejected
from collector.slurm.sacctmgr_parser import Account, parse_account_info
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
NO_VAL = 0xFFFFFFFE  # slurmdbd's "not set" of a uint32 that pyslurm passes through
_REJECTED = (FieldError, AttributeError, TypeError, ValueError, OverflowError, KeyError)


def running_slurm_version() -> str | None:
    """Major.minor of the Slurm on this host (from `sinfo --version`), if any."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(["sinfo", "--version"], capture_output=True, text=True,
                             timeout=30, check=False).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
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


def job_fields(job: Any) -> dict[str, Any]:
    """The `JOB_FIELDS` of one `pyslurm.db.Job`; a name it lacks is left out (and the
    job then rejected by `job_record`)."""
    fields = {}
    for name in JOB_FIELDS:
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
        text(job, "name"))


def _plain(value: Any) -> Any:
    """A pyslurm object (or a stand-in) as JSON can hold it, for a rejected job's text."""
    try:
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return to_dict(recursive=True)
        return vars(value)
    except (*_REJECTED, RuntimeError):
        return repr(value)


def parse_jobs(jobs: Iterable[Any], cluster: str | None = None) -> ParseResult:
    """Every `pyslurm.db.Job` of a load, read or rejected (with the fields read)."""
    result = ParseResult()
    for index, job in enumerate(jobs, 1):
        fields: dict[str, Any] = {}
        try:
            fields = job_fields(job)
            record = job_record(fields, cluster)
        except _REJECTED as exc:
            reason = str(exc) if isinstance(exc, FieldError) else f"unexpected shape: {exc}"
            text = (json.dumps(fields, default=_plain, ensure_ascii=False) if fields
                    else repr(job))
            result.rejected.append(Rejected(index, reason, text[:2000]))
            continue
        if record is None:
            result.pending_arrays.append(f"{fields['id']}_[{fields['array_tasks_waiting']}]")
        else:
            result.records.append(record)
    return result


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
    _pyslurm: Any = field(default=None, repr=False)

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
        return self._load(start_time=max(start_s, 1), end_time=end_s)

    def by_ids(self, job_ids: list[int]) -> ParseResult:
        return self._load(ids=list(job_ids)) if job_ids else ParseResult()

    def accounts(self) -> list[Account]:
        lib = self._lib()
        try:
            assocs = lib.db.Associations.load()
        except lib.RPCError as exc:
            raise SlurmError(f"pyslurm could not read associations from slurmdbd: {exc}"
                             ) from exc
        # pyslurm 25.11.2 has no Accounts: organisations and descriptions come from
        # sacctmgr, the door the events and reservations come through with every source.
        info = parse_account_info(run_sacctmgr_account_info(self.timeout_s, self.env))
        return [replace(a, organisation=info.get(a.account, ("", ""))[0],
                        description=info.get(a.account, ("", ""))[1])
                for a in account_tree(assocs.values(), self.cluster)]
