"""sacct text to job records (pure; no I/O).

The field list is `SACCT_FIELDS`, the same tuple the sacct door asks for. JobName
and WCKey are free text that any cluster user writes, and sacct prints them raw: a
newline in a job name starts a new line of output, so with sacct's default `|`
delimiter a name can hold a whole forged record (of any user, account and GPU count).
The door therefore asks for a delimiter drawn at random for each run
(`--delimiter`), which no name written before the run can contain, and this parser
reads a record as the lines that hold its `len(SACCT_FIELDS) - 1` delimiters (more
than one line when the WCKey holds a newline) plus every following line that holds
none (the rest of a job name that held newlines; JobName comes last). The fields
before WCKey (ids, cluster, user, account, partition, QOS) are Slurm's own, so a
record's first line always holds a delimiter. Lines are
split at "\n" only: sacct separates records with it, and a name may hold any other
line-breaking character (U+2028, \r, \x1c...). A line that cannot be read becomes
a `Rejected` entry with its line number, the reason and its text; nothing is dropped
silently. With the default `|` (recorded fixtures), a `|` inside the last field is
joined back into the name.

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

from collector.slurm.records import JobRecord, StepRecord

SACCT_FIELDS = (
    "JobIDRaw", "JobID", "Cluster", "User", "Account", "Partition", "QOS", "WCKey", "State",
    "Submit", "Eligible", "Start", "End", "AllocTRES", "NNodes", "AllocCPUS", "NodeList",
    "JobName",
)
_LAST = len(SACCT_FIELDS) - 1
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
    lines: int = 0  # lines of text read into a record, a rejection or a pending array
    # Each job's steps by JobRecord.key, when the source read them (None: not read;
    # engine/gpuuse.py turns them into the job's GPU use).
    steps: dict[tuple[str, int, int], list[StepRecord]] | None = None


class FieldError(ValueError):
    """One field of a sacct line cannot be read."""


_TIME = re.compile(r"(\d{4}-\d\d-\d\d)T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)")
_DAYS: dict[str, int] = {}  # "2026-10-01" -> epoch of its midnight (UTC)
_SEEN: dict[str, int] = {}  # whole timestamps: submit, eligible, start and end repeat a lot


MAX_DIGITS = 15  # a count or id longer than this is garbage (and would not fit the store)


def parse_time(text: str, name: str) -> int | None:
    """A sacct timestamp printed in UTC (the door sets TZ=UTC) as epoch seconds.

    Hand-read rather than strptime: a million-job month has four million of them,
    and strptime took half of the collector's time."""
    epoch = _SEEN.get(text)
    if epoch is not None:
        return epoch
    if text in ("Unknown", "None", ""):
        return None
    match = _TIME.fullmatch(text)
    midnight = _DAYS.get(match[1]) if match else None
    if midnight is None:
        try:
            if match is None:
                raise ValueError(text)
            midnight = calendar.timegm(time.strptime(match[1], "%Y-%m-%d"))
            if midnight < 0:
                raise ValueError(text)
        except ValueError as exc:
            raise FieldError(f"{name} {text!r} is not a time like 2026-10-01T00:00:00") from exc
        _DAYS[match[1]] = midnight
    epoch = midnight + int(match[2]) * 3600 + int(match[3]) * 60 + int(match[4])
    if len(_SEEN) > 200_000:
        _SEEN.clear()
    _SEEN[text] = epoch
    return epoch


def parse_tres(text: str) -> tuple[int, tuple[tuple[str, int], ...]]:
    """(GPUs, typed GPU counts) from an AllocTRES string such as
    `billing=8,cpu=8,gres/gpu:h100=8,gres/gpu=8,mem=62.50G,node=2`."""
    if "gres/gpu" not in text:  # CPU jobs and jobs that never ran: most of the cheap lines
        return 0, ()
    gpus = 0
    typed: list[tuple[str, int]] = []
    for item in text.split(","):
        if not item.startswith("gres/gpu"):
            continue
        key, sep, value = item.partition("=")
        if not sep or not value.isdigit() or len(value) > MAX_DIGITS:
            raise FieldError(f"AllocTRES {item!r} is not a count like gres/gpu=8")
        if key == "gres/gpu":
            gpus = int(value)
        elif key.startswith("gres/gpu:"):
            typed.append((key[9:], int(value)))
    return gpus, tuple(sorted(typed))


def parse_energy(text: str) -> int | None:
    """Joules of AllocTRES's `energy=` entry (the job's ConsumedEnergyRaw); None when
    there is none: slurmdbd keeps NO_VAL for a job whose node had no energy plugin,
    and sacct then prints no entry (and an empty ConsumedEnergyRaw)."""
    if "energy=" not in text:
        return None
    for item in text.split(","):
        if item.startswith("energy="):
            value = item[7:]
            if not value.isdigit() or len(value) > MAX_DIGITS:
                raise FieldError(f"AllocTRES {item!r} is not joules like energy=3600000")
            return int(value)
    return None


def _int(text: str, name: str) -> int:
    if not text.isdigit() or len(text) > MAX_DIGITS:
        raise FieldError(f"{name} {text!r} is not a number")
    return int(text)


def parse_line(line: str, cluster: str | None = None, delimiter: str = "|") -> JobRecord | None:
    """One sacct record as a record; None for a pending array not split into tasks yet."""
    parts = line.split(delimiter, _LAST)
    if len(parts) <= _LAST:
        raise FieldError(f"{len(parts)} fields, expected {len(SACCT_FIELDS)}")
    (raw, job_id, cluster_text, user, account, partition, qos, wckey, state_text, submit_text,
     eligible, start, end, tres, nnodes, cpus, nodelist, name) = parts
    match = _JOB_ID.match(job_id)
    if match is None:
        raise FieldError(f"JobID {job_id!r} is not a job id")
    task, offset = match["task"], match["offset"]
    if task is not None and task.startswith("["):
        return None
    submit = parse_time(submit_text, "Submit")
    if submit is None:
        raise FieldError("Submit is missing")
    gpus, typed = parse_tres(tres)
    state = state_text.split(" ", 1)[0]
    if not state:
        raise FieldError("State is empty")
    base = int(match["base"])
    ran = nodelist not in ("None assigned", "")
    start_s, end_s = parse_time(start, "Start"), parse_time(end, "End")
    if start_s is not None and end_s is not None and end_s < start_s:
        raise FieldError(f"End {end} is before Start {start}")
    return JobRecord(
        cluster or cluster_text, _int(raw, "JobIDRaw"), submit, job_id,
        base if task is not None else None, int(task) if task is not None else None,
        base if offset is not None else None, int(offset) if offset is not None else None,
        user, account, partition, qos, wckey.removeprefix("*"), wckey.startswith("*"), state,
        parse_time(eligible, "Eligible"), start_s, end_s,
        gpus, typed, _int(nnodes, "NNodes") if ran else 0,
        _int(cpus, "AllocCPUS") if ran else 0, nodelist if ran else "", name,
        parse_energy(tres))


class SacctReader:
    """Reads sacct's output as it arrives: `feed` each piece of text, then `finish`.

    Each call returns the records completed so far. A record's extent is known only
    when the next record's first line (or the end) is seen, so the last one waits for
    the next piece; line numbers run on across pieces. The result is the same as
    reading the whole text at once, however the text is cut."""

    def __init__(self, cluster: str | None = None, delimiter: str = "|"):
        if not delimiter or "\n" in delimiter:
            raise ValueError(f"delimiter {delimiter!r}: expected a string without newlines")
        self.cluster, self.delimiter = cluster, delimiter
        self._lines: list[str] = []  # whole lines not read into a record yet
        self._partial = ""           # text after the last newline
        self._line_no = 0            # lines read before self._lines[0]

    def feed(self, text: str) -> ParseResult:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if self._lines:
            self._lines.extend(lines)
        else:
            self._lines = lines
        return self._read(final=False)

    def finish(self) -> ParseResult:
        """The records left once the output has ended (its last line may lack "\n")."""
        if self._partial:
            self._lines.append(self._partial)
            self._partial = ""
        return self._read(final=True)

    def _read(self, final: bool) -> ParseResult:
        result = ParseResult()
        delimiter, lines, base = self.delimiter, self._lines, self._line_no
        i, count = 0, len(lines)
        while i < count:
            line, first = lines[i], i
            i += 1
            if not line.strip():
                result.lines += 1
                continue
            # A newline in the WCKey splits a record's delimiters over several lines:
            # take lines while the record still lacks some (never past a whole record's
            # worth), then every line without one (the rest of the job name).
            found = line.count(delimiter)
            while found < _LAST and i < count:
                more = lines[i].count(delimiter)
                if found + more > _LAST:
                    break
                found += more
                i += 1
            while i < count and delimiter not in lines[i]:
                i += 1
            if i == count and not final:  # the record may go on in the next piece
                i = first
                break
            record_text = line if i == first + 1 else "\n".join(lines[first:i])
            result.lines += i - first
            try:
                record = parse_line(record_text, self.cluster, delimiter)
            except FieldError as exc:
                # Shown and kept with sacct's default "|": the same line reads the same
                # in every run, whatever delimiter the run drew.
                result.rejected.append(Rejected(base + first + 1, str(exc),
                                                record_text.replace(delimiter, "|")))
                continue
            if record is None:
                result.pending_arrays.append(line.split(delimiter, 2)[1])
            else:
                result.records.append(record)
        self._lines = lines[i:]
        self._line_no = base + i
        return result


def merge(into: ParseResult, more: ParseResult) -> ParseResult:
    """`into` with `more`'s records, rejections and pending arrays added."""
    into.records.extend(more.records)
    into.rejected.extend(more.rejected)
    into.pending_arrays.extend(more.pending_arrays)
    into.lines += more.lines
    return into


def parse_sacct(text: str, cluster: str | None = None, delimiter: str = "|") -> ParseResult:
    """Every record of `sacct --parsable2 --noheader --delimiter=DELIMITER` output, read
    or rejected; a record's name may run over several lines (see the module's doc)."""
    reader = SacctReader(cluster, delimiter)
    return merge(reader.feed(text), reader.finish())


# The steps call: no free text (no step name), so sacct's "|" cannot be forged.
STEP_FIELDS = ("JobIDRaw", "Submit", "Start", "End", "AllocTRES", "TRESUsageInTot")
_STEP_ID = re.compile(r"^(?P<raw>\d+)(?:\.(?P<step>[A-Za-z0-9+]+))?$")


def _usage(text: str, key: str) -> int | None:
    """One `gres/...=N` count of a TRESUsageInTot string (sacct --noconvert)."""
    at = text.find(key + "=")
    if at < 0 or (at > 0 and text[at - 1] != ","):
        return None
    value = text[at + len(key) + 1:].split(",", 1)[0]
    if not value.isdigit() or len(value) > MAX_DIGITS:
        raise FieldError(f"TRESUsageInTot {key}={value!r} is not a count")
    return int(value)


def parse_steps(text: str, cluster: str) -> tuple[dict[tuple[str, int, int], list[StepRecord]],
                                                   list[Rejected]]:
    """Every job's finished steps from `sacct --noconvert --parsable2 --noheader
    --format=STEP_FIELDS` (without --allocations: each job line, then its steps), by
    the job's key; lines that cannot be read are rejected with their number. A step
    belongs to the job line above it (with --duplicates, each run of a requeued job
    is followed by its own steps)."""
    steps: dict[tuple[str, int, int], list[StepRecord]] = {}
    rejected: list[Rejected] = []
    current: tuple[str, int, int] | None = None
    for no, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        try:
            parts = line.split("|")
            if len(parts) != len(STEP_FIELDS):
                raise FieldError(f"{len(parts)} fields, expected {len(STEP_FIELDS)}")
            raw, submit, start, end, alloc, usage = parts
            match = _STEP_ID.match(raw)
            if match is None:
                raise FieldError(f"JobIDRaw {raw!r} is not a job or step id")
            if match["step"] is None:
                current = None  # a job line that cannot be read owns no steps
                submit_s = parse_time(submit, "Submit")
                if submit_s is None:
                    raise FieldError("Submit is missing")
                current = (cluster, _int(raw, "JobIDRaw"), submit_s)
                steps.setdefault(current, [])
                continue
            if current is None or current[1] != int(match["raw"]):
                raise FieldError(f"step {raw} does not follow its job's line")
            start_s, end_s = parse_time(start, "Start"), parse_time(end, "End")
            if start_s is None or end_s is None:
                continue  # a step still running: its usage comes when it ends
            if end_s < start_s:
                raise FieldError(f"End {end} is before Start {start}")
            steps[current].append(StepRecord(
                match["step"], start_s, end_s, parse_tres(alloc)[0],
                _usage(usage, "gres/gpuutil"), _usage(usage, "gres/gpumem")))
        except FieldError as exc:
            rejected.append(Rejected(no, f"step line: {exc}", line))
    return steps, rejected
