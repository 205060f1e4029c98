"""sacct text to job records (pure; no I/O).

The field list is `SACCT_FIELDS`, the same tuple the sacct door asks for. JobName
comes last because it is the one free-text field: a name containing the `|`
delimiter makes a line longer, and the surplus is joined back into the name.
A line that cannot be read becomes a `Rejected` entry with its line number, the
reason and the line itself; nothing is dropped silently. (A newline inside a job
name splits the line: the first part reads with the name cut, the rest is
rejected and so shows up.)

Slurm 22.05 quirks handled here:
- sacct has no ArrayJobID / HetJobID fields in 22.05: array and heterogeneous
  membership is read from the JobID text (`123_7`, `123+1`).
- A pending array not yet split shows as `123_[0-9]` (no task of its own yet).
- The default WCKey is shown with a leading `*` (`*other`).
- State may carry a suffix: `CANCELLED by 1007`.
- A job that never ran shows NodeList `None assigned`, empty AllocTRES, and yet
  NNodes 1 and AllocCPUS 1 (slurmdbd stores 0): it gets 0 nodes and 0 CPUs here.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field

from .records import JobRecord

SACCT_FIELDS = (
    "JobIDRaw", "JobID", "Cluster", "User", "Account", "Partition", "QOS", "WCKey", "State",
    "Submit", "Eligible", "Start", "End", "AllocTRES", "NNodes", "AllocCPUS", "NodeList",
    "JobName",
)
_JOB_ID = re.compile(r"^(?P<base>\d+)(?:_(?P<task>\d+|\[[^\]]*\])|\+(?P<offset>\d+))?$")


@dataclass(frozen=True)
class Rejected:
    line_no: int
    reason: str
    line: str


@dataclass
class ParseResult:
    records: list[JobRecord] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    pending_arrays: list[str] = field(default_factory=list)  # e.g. "123_[0-9]": no task yet


class FieldError(ValueError):
    """One field of a sacct line cannot be read."""


def parse_time(text: str, name: str) -> int | None:
    """A sacct timestamp printed in UTC (the door sets TZ=UTC) as epoch seconds."""
    if text in ("Unknown", "None", ""):
        return None
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError as exc:
        raise FieldError(f"{name} {text!r} is not a time like 2026-10-01T00:00:00") from exc


def parse_tres(text: str) -> tuple[int, tuple[tuple[str, int], ...]]:
    """(GPUs, typed GPU counts) from an AllocTRES string such as
    `billing=8,cpu=8,gres/gpu:h100=8,gres/gpu=8,mem=62.50G,node=2`."""
    gpus = 0
    typed: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise FieldError(f"AllocTRES entry {item!r} has no '='")
        if key == "gres/gpu":
            gpus = _count(value, key)
        elif key.startswith("gres/gpu:"):
            typed[key.removeprefix("gres/gpu:")] = _count(value, key)
    return gpus, tuple(sorted(typed.items()))


def _count(value: str, key: str) -> int:
    if not value.isdigit():
        raise FieldError(f"AllocTRES {key}={value!r} is not a count")
    return int(value)


def _int(text: str, name: str) -> int:
    if not text.isdigit():
        raise FieldError(f"{name} {text!r} is not a number")
    return int(text)


def parse_line(line: str, cluster: str | None = None) -> JobRecord | None:
    """One sacct line as a record; None for a pending array not split into tasks yet."""
    parts = line.split("|", len(SACCT_FIELDS) - 1)
    if len(parts) < len(SACCT_FIELDS):
        raise FieldError(f"{len(parts)} fields, expected {len(SACCT_FIELDS)}")
    f = dict(zip(SACCT_FIELDS, parts, strict=True))
    match = _JOB_ID.match(f["JobID"])
    if match is None:
        raise FieldError(f"JobID {f['JobID']!r} is not a job id")
    task, offset = match["task"], match["offset"]
    if task is not None and task.startswith("["):
        return None
    submit = parse_time(f["Submit"], "Submit")
    if submit is None:
        raise FieldError("Submit is missing")
    gpus, typed = parse_tres(f["AllocTRES"])
    state = f["State"].split(" ", 1)[0]
    if not state:
        raise FieldError("State is empty")
    base = int(match["base"])
    ran = f["NodeList"] not in ("None assigned", "")
    return JobRecord(
        cluster=cluster or f["Cluster"], job_id_raw=_int(f["JobIDRaw"], "JobIDRaw"),
        job_id=f["JobID"],
        array_job_id=base if task is not None else None,
        array_task_id=int(task) if task is not None else None,
        het_job_id=base if offset is not None else None,
        het_job_offset=int(offset) if offset is not None else None,
        user=f["User"], account=f["Account"], partition=f["Partition"], qos=f["QOS"],
        wckey=f["WCKey"].removeprefix("*"), wckey_is_default=f["WCKey"].startswith("*"),
        state=state, submit_s=submit, eligible_s=parse_time(f["Eligible"], "Eligible"),
        start_s=parse_time(f["Start"], "Start"), end_s=parse_time(f["End"], "End"),
        gpus=gpus, gpu_types=typed, nodes=_int(f["NNodes"], "NNodes") if ran else 0,
        cpus=_int(f["AllocCPUS"], "AllocCPUS") if ran else 0,
        nodelist=f["NodeList"] if ran else "", name=f["JobName"],
    )


def parse_sacct(text: str, cluster: str | None = None) -> ParseResult:
    """Every line of sacct --parsable2 --noheader output, read or rejected."""
    result = ParseResult()
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = parse_line(line, cluster)
        except FieldError as exc:
            result.rejected.append(Rejected(line_no, str(exc), line))
            continue
        if record is None:
            result.pending_arrays.append(line.split("|", 2)[1])
        else:
            result.records.append(record)
    return result
