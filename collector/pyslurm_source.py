"""The door through pyslurm (optional extra): slurmdbd's job records via libslurm.

pyslurm X.Y builds only against Slurm X.Y; PyPI publishes 25.11 only, so it works
where the cluster runs Slurm 25.11 and the libslurm headers were there at install
time. When pyslurm is missing or does not match the running Slurm, the collector
says exactly that and how to fix it, instead of failing inside libslurm.

The mapping (`job_record`) reads the dictionary that `pyslurm.db.Job.as_dict()`
gives, plus the TRES ids of `tres_alloc_str` resolved through the cluster's TRES
table, and is unit-tested without pyslurm.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from .records import JobRecord, job_id_text
from .sacct_parser import FieldError, ParseResult, Rejected, parse_tres
from .sacct_source import SlurmError
from .sacctmgr_parser import Account

FIX = ("install it against this cluster's Slurm: pip install 'gpu-usage[pyslurm]' on a "
       "host with Slurm {want} and its headers (slurm-dev / libslurm-dev), or set "
       "[slurm] source = \"sacct\" or \"slurmrestd\"")


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


def tres_text(alloc: str, names: dict[int, str]) -> str:
    """slurmdbd's `1=8,1001=4,1002=4` as sacct's `cpu=8,gres/gpu=4,gres/gpu:h100=4`."""
    items = []
    for item in filter(None, (alloc or "").split(",")):
        key, _, value = item.partition("=")
        if not key.isdigit():
            raise FieldError(f"tres_alloc_str item {item!r} is not id=count")
        name = names.get(int(key))
        if name is not None:
            items.append(f"{name}={value}")
    return ",".join(items)


def job_record(job: dict, tres_names: dict[int, str], cluster: str | None = None
               ) -> JobRecord | None:
    """One `pyslurm.db.Job.as_dict()` as a record; None for a pending array not split."""
    raw = job.get("id")
    if not isinstance(raw, int):
        raise FieldError(f"id {raw!r} is not a job id")
    array_id = job.get("array_id") or None
    task = job.get("array_task_id")
    if array_id is not None and task is None:
        return None
    het_id = job.get("het_job_id") or None
    offset = job.get("het_job_offset") if het_id else None
    job_id = job_id_text(raw, array_id, task, het_id, offset)
    submit = job.get("submit_time") or None
    if submit is None:
        raise FieldError("submit_time is missing")
    gpus, typed = parse_tres(tres_text(job.get("tres_alloc_str") or "", tres_names))
    nodelist = job.get("nodelist") or ""
    ran = nodelist not in ("None assigned", "")
    wckey = job.get("wckey") or ""
    state = (job.get("state") or "").split(" ", 1)[0]
    if not state:
        raise FieldError("state is empty")
    return JobRecord(
        cluster or job.get("cluster") or "", raw, int(submit), job_id,
        array_id, task if array_id is not None else None,
        het_id if offset is not None else None, offset,
        job.get("user_name") or "", job.get("account") or "", job.get("partition") or "",
        job.get("qos") or "", wckey.removeprefix("*"), wckey.startswith("*"), state,
        job.get("eligible_time") or None, job.get("start_time") or None,
        job.get("end_time") or None, gpus, typed,
        int(job.get("num_nodes") or 0) if ran else 0, int(job.get("cpus") or 0) if ran else 0,
        nodelist if ran else "", job.get("name") or "")


def parse_jobs(jobs: list[dict], tres_names: dict[int, str], cluster: str | None = None
               ) -> ParseResult:
    result = ParseResult()
    for index, job in enumerate(jobs, 1):
        try:
            record = job_record(job, tres_names, cluster)
        except (FieldError, TypeError, ValueError, AttributeError) as exc:
            result.rejected.append(Rejected(index, str(exc), json.dumps(
                job, default=str, ensure_ascii=False)[:2000]))
            continue
        if record is None:
            result.pending_arrays.append(f"{job.get('id')}_[{job.get('array_tasks_waiting')}]")
        else:
            result.records.append(record)
    return result


def _as_dict(job: Any) -> dict:
    data = dict(job.as_dict())
    # Not every pyslurm release exposes these as properties; read them when it does.
    for name in ("tres_alloc_str", "het_job_id", "het_job_offset"):
        if name not in data and hasattr(job, name):
            data[name] = getattr(job, name)
    return data


@dataclass
class PyslurmSource:
    cluster: str
    name: str = "pyslurm"
    window_target: int = 50_000
    _pyslurm: Any = field(default=None, repr=False)
    _tres: dict[int, str] | None = field(default=None, repr=False)

    def _lib(self) -> Any:
        if self._pyslurm is None:
            self._pyslurm = load_pyslurm()
        return self._pyslurm

    def _tres_names(self) -> dict[int, str]:
        if self._tres is None:
            lib = self._lib()
            names = {}
            for tres in lib.db.TrackableResources.load():
                kind, name = tres.type, getattr(tres, "name", None)
                names[int(tres.id)] = f"{kind}/{name}" if name else kind
            self._tres = names
        return self._tres

    def _load(self, **filt: Any) -> ParseResult:
        lib = self._lib()
        try:
            jobs = lib.db.Jobs.load(lib.db.JobFilter(clusters=[self.cluster], **filt))
        except lib.RPCError as exc:
            raise SlurmError(f"pyslurm could not read jobs from slurmdbd: {exc}") from exc
        return parse_jobs([_as_dict(j) for j in jobs], self._tres_names(), self.cluster)

    def window(self, start_s: int, end_s: int) -> ParseResult:
        return self._load(start_time=start_s, end_time=end_s)

    def by_ids(self, job_ids: list[int]) -> ParseResult:
        return self._load(ids=list(job_ids))

    def accounts(self) -> list[Account]:
        lib = self._lib()
        info = {a.name: a for a in lib.db.Accounts.load()}
        parents: dict[str, str] = {}
        budgets: dict[str, int | None] = {}
        users: dict[str, set[str]] = {}
        for assoc in lib.db.Associations.load():
            if getattr(assoc, "cluster", self.cluster) != self.cluster:
                continue
            if assoc.user:
                users.setdefault(assoc.account, set()).add(assoc.user)
            else:
                parents[assoc.account] = assoc.parent_account or ""
                minutes = getattr(assoc, "group_tres_mins", None) or {}
                budgets[assoc.account] = (minutes.get("gres/gpu") if isinstance(minutes, dict)
                                          else None)
        return [Account(a, parents[a], getattr(info.get(a), "organization", "") or "",
                        getattr(info.get(a), "description", "") or "", budgets[a],
                        tuple(sorted(users.get(a, ())))) for a in sorted(parents)]
