"""slurmrestd's JSON to the canonical job record and account tree (pure; no I/O).

One job of `GET /slurmdb/v0.0.XX/jobs` becomes the same `JobRecord` that the same
job's sacct line becomes; a test holds the two sources to identical stored jobs.
Every difference between the data-parser versions is adapted here, named with
the Slurm release that brought it:

- v0.0.38 (Slurm 22.05): numbers are plain; `state.current` is one string;
  times are epoch integers, 0 meaning "none".
- v0.0.39 (23.02): optional numbers become `{"set", "infinite", "number"}`
  objects (array task id, het offset, some times) - `values.number` reads both forms.
- v0.0.39 (23.02): `/jobs` truncates start and end to the window and hides the
  earlier runs of a requeued job unless `disable_truncate_usage_time` and
  `show_duplicates` are sent (slurmrestd_source sends them where offered).
- v0.0.40 (23.11): `state.current` becomes a list: the base state and its flags
  (`["PENDING", "REQUEUED"]`); sacct names such a record by the flag.
- v0.0.41 (24.05) to v0.0.44 (26.05): same job shape for what is read here;
  `wckey.flags` lists `ASSIGNED_DEFAULT` for a default WCKey in every version.

A job that cannot be read becomes a `Rejected` entry (its index in the response,
the reason, and the job's JSON cut to 2,000 characters), as a bad sacct line does.
"""

from __future__ import annotations

import json
from typing import Any

from collector.slurm.records import KNOWN_STATES, JobRecord, StepRecord, job_id_text
from collector.slurm.sacct_parser import FieldError, ParseResult, Rejected
from collector.slurm.sacctmgr_parser import Account
from collector.slurm.values import number, text


def _time(value: Any, name: str) -> int | None:
    """Epoch seconds; 0 and unset mean none (sacct prints Unknown / None)."""
    epoch = number(value, name)
    return epoch if epoch else None


# sacct names a record by its first state flag in this order (Slurm's
# job_state_string), else by the base state; v0.0.40+ list both, e.g.
# ["PENDING", "REQUEUED"] for an earlier run of a requeued job, shown as REQUEUED.
_FLAG_ORDER = ("RESIZING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT",
               "STOPPED", "REVOKED")


def _state(value: Any) -> str:
    current = value.get("current") if isinstance(value, dict) else None
    flags = [current] if isinstance(current, str) else current
    if not isinstance(flags, list) or not flags or not all(isinstance(f, str) for f in flags):
        raise FieldError(f"state {value!r} has no current state")
    for flag in _FLAG_ORDER:
        if flag in flags:
            return flag
    base = [f for f in flags if f in KNOWN_STATES]
    return (base or flags)[0]


def _tres(items: Any) -> tuple[int, int, int, tuple[tuple[str, int], ...], int | None]:
    """(GPUs, CPUs, nodes, typed GPUs, joules) of `tres.allocated`."""
    if not isinstance(items, list):
        raise FieldError(f"tres.allocated {items!r} is not a list")
    gpus = cpus = nodes = 0
    energy = None
    typed: list[tuple[str, int]] = []
    for item in items:
        kind, name, count = item.get("type"), item.get("name") or "", item.get("count")
        if kind == "energy" and count in (None, -1, -2):
            continue  # not recorded: null (v0.0.38), NO_VAL64 as -2 (v0.0.40+), INFINITE64
        if kind not in ("gres", "cpu", "node", "energy") or (kind == "gres"
                                                              and name[:3] != "gpu"):
            continue  # other TRES are not read
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < 10**15:
            raise FieldError(f"TRES {kind}/{name} count {count!r} is not a count")
        if kind == "gres" and name == "gpu":
            gpus = count
        elif kind == "gres" and name.startswith("gpu:"):
            typed.append((name[4:], count))
        elif kind == "cpu":
            cpus = count
        elif kind == "node":
            nodes = count
        elif kind == "energy":
            energy = count
    return gpus, cpus, nodes, tuple(sorted(typed)), energy


def job_record(job: dict, cluster: str | None = None) -> JobRecord | None:
    """One job object as a record; None for a pending array not split into tasks yet."""
    if not isinstance(job, dict):
        raise FieldError("a job is not an object")
    raw = number(job.get("job_id"), "job_id")
    if raw is None:
        raise FieldError("job_id is missing")
    array, het = job.get("array") or {}, job.get("het") or {}
    array_id = number(array.get("job_id"), "array.job_id") or None
    task = number(array.get("task_id"), "array.task_id")
    if array_id is not None and task is None:
        return None  # a pending array: the task ids are still a range (array.task)
    het_id = number(het.get("job_id"), "het.job_id") or None
    offset = number(het.get("job_offset"), "het.job_offset") if het_id else None
    job_id = job_id_text(raw, array_id, task, het_id, offset)
    times = job.get("time")
    if not isinstance(times, dict):
        raise FieldError("time is missing")
    submit = _time(times.get("submission"), "time.submission")
    if submit is None:
        raise FieldError("time.submission is missing")
    wckey = job.get("wckey") or {}
    if isinstance(wckey, str):  # not seen, but harmless
        wckey = {"wckey": wckey, "flags": []}
    if not isinstance(wckey, dict) or not isinstance(wckey.get("wckey") or "", str):
        raise FieldError(f"wckey {wckey!r} is not a WCKey")
    nodelist = text(job, "nodes")
    ran = nodelist not in ("None assigned", "")
    gpus, cpus, nodes, typed, energy = _tres((job.get("tres") or {}).get("allocated", []))
    start, end = _time(times.get("start"), "time.start"), _time(times.get("end"), "time.end")
    if start is not None and end is not None and end < start:
        raise FieldError(f"time.end {end} is before time.start {start}")
    alloc_nodes = number(job.get("allocation_nodes"), "allocation_nodes")
    return JobRecord(
        cluster or text(job, "cluster"), raw, submit, job_id,
        array_id, task if array_id is not None else None,
        het_id if offset is not None else None, offset,
        text(job, "user"), text(job, "account"), text(job, "partition"),
        text(job, "qos"), wckey.get("wckey") or "",
        "ASSIGNED_DEFAULT" in (wckey.get("flags") or []), _state(job.get("state")),
        _time(times.get("eligible"), "time.eligible"), start, end, gpus, typed,
        (alloc_nodes if alloc_nodes is not None else nodes) if ran else 0,
        cpus if ran else 0, nodelist if ran else "", text(job, "name"), energy)


def _usage(items: Any, name: str) -> int | None:
    """A gres count of `tres.requested.total` (TRESUsageInTot); None: not recorded."""
    if not isinstance(items, list):
        raise FieldError(f"tres.requested.total {items!r} is not a list")
    for item in items:
        if isinstance(item, dict) and item.get("type") == "gres" and item.get("name") == name:
            count = item.get("count")
            if count in (None, -1, -2):
                return None  # NO_VAL64 / INFINITE64 as -2 / -1: not recorded
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < 10**15:
                raise FieldError(f"step TRES gres/{name} count {count!r} is not a count")
            return count
    return None


def tracks_gpu_use(payload: dict) -> bool:
    """Whether a `/tres` response lists gres/gpuutil (Slurm 23.02+ with gres/gpu)."""
    items = payload.get("TRES") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise FieldError("the /tres response has no TRES list")
    return any(isinstance(t, dict) and t.get("type") == "gres" and t.get("name") == "gpuutil"
               for t in items)


def job_steps(job: dict) -> list[StepRecord]:
    """The finished steps of a job object with their GPU use (`tres.requested.total`:
    TRESUsageInTot, where slurmrestd puts gres/gpuutil and gres/gpumem)."""
    steps = job.get("steps") or []
    if not isinstance(steps, list):
        raise FieldError("steps is not a list")
    out = []
    for step in steps:
        ident = (step.get("step") or {}).get("id")
        if isinstance(ident, dict):  # v0.0.38: {"job_id": .., "step_id": ..}
            ident = str(ident.get("step_id"))
        if not isinstance(ident, str | int):
            raise FieldError(f"step id {ident!r} is not a step id")
        times = step.get("time") or {}
        start, end = _time(times.get("start"), "step time.start"), _time(
            times.get("end"), "step time.end")
        if start is None or end is None:
            continue  # still running: its usage comes when it ends
        if end < start:
            raise FieldError(f"step {ident} ends before it starts")
        tres = step.get("tres") or {}
        total = (tres.get("requested") or {}).get("total") or []
        out.append(StepRecord(str(ident).partition(".")[2] or str(ident), start, end,
                              _tres(tres.get("allocated") or [])[0],
                              _usage(total, "gpuutil"), _usage(total, "gpumem")))
    return out


def parse_jobs(payload: dict, cluster: str | None = None, steps: bool = False) -> ParseResult:
    """Every job of a `/jobs` (or `/job/{id}`) response, read or rejected; with `steps`,
    each job's finished steps too (ParseResult.steps)."""
    result = ParseResult(steps={} if steps else None)
    jobs = payload.get("jobs") if isinstance(payload, dict) else None
    if not isinstance(jobs, list):
        raise FieldError("the response has no jobs list")
    for index, job in enumerate(jobs, 1):
        try:
            record = job_record(job, cluster)
            if record is not None and result.steps is not None:
                result.steps[record.key] = job_steps(job)
        except (FieldError, AttributeError, TypeError) as exc:
            shown = json.dumps(job, ensure_ascii=False, default=str)[:2000]
            reason = str(exc) if isinstance(exc, FieldError) else f"unexpected shape: {exc}"
            result.rejected.append(Rejected(index, reason, shown))
            continue
        if record is None:
            tasks = (job.get("array") or {}).get("task")
            result.pending_arrays.append(f"{job.get('job_id')}_[{tasks}]")
        else:
            result.records.append(record)
    return result


def _group_gpu_minutes(assoc: dict) -> int | None:
    """GrpTRESMins gres/gpu of an association: `max.tres.group.minutes` (a list of
    TRES), in every version from v0.0.38 on."""
    tres = ((((assoc.get("max") or {}).get("tres") or {}).get("group") or {})
            .get("minutes") or [])
    for item in tres:
        if item.get("type") == "gres" and item.get("name") == "gpu":
            return number(item.get("count"), "GrpTRESMins gres/gpu")
    return None


def parse_accounts(assocs: dict, accounts: dict, cluster: str) -> list[Account]:
    """The account tree from `/associations` and `/accounts`, like sacctmgr's."""
    info = {a.get("name"): a for a in accounts.get("accounts") or []}
    parents: dict[str, str] = {}
    budgets: dict[str, int | None] = {}
    users: dict[str, set[str]] = {}
    for assoc in assocs.get("associations") or []:
        if assoc.get("cluster") not in (None, cluster):
            continue
        account = assoc.get("account") or ""
        if assoc.get("user"):
            users.setdefault(account, set()).add(assoc["user"])
        else:
            parents[account] = assoc.get("parent_account") or ""
            budgets[account] = _group_gpu_minutes(assoc)
    return [Account(a, parents[a], info.get(a, {}).get("organization") or "",
                    info.get(a, {}).get("description") or "", budgets[a],
                    tuple(sorted(users.get(a, ())))) for a in sorted(parents)]
