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

`parse_line` defines how one record reads. `SacctReader` reads runs of ordinary
records (a first line with every delimiter, then lines with none) a column at a time
in passes that run in C, about a third of parse_line's time per record, and hands
any record a column cannot take as it stands to parse_line, in its place: the
records, rejections and their order are parse_line's
(test_records_read_a_column_at_a_time_are_parse_lines_records).

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
import math
import re
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import add, is_, itemgetter

import msgspec

from collector.slurm.records import JobRecord, StepRecord

SACCT_FIELDS = (
    "JobIDRaw", "JobID", "Cluster", "User", "Account", "Partition", "QOS", "WCKey", "State",
    "Submit", "Eligible", "Start", "End", "AllocTRES", "NNodes", "AllocCPUS", "NodeList",
    "JobName",
)
_LAST = len(SACCT_FIELDS) - 1
MAX_DIGITS = 15  # a count or id longer than this is garbage (and would not fit the store)
# The job, array task and het offset numbers at most MAX_DIGITS long: a longer one (only
# corrupt output has one) is not a job id, not a number Python refuses to convert or
# the store to hold.
_N = f"[0-9]{{1,{MAX_DIGITS}}}"
_JOB_ID = re.compile(rf"(?P<base>{_N})(?:_(?P<task>{_N}|\[[^\]]*\])|\+(?P<offset>{_N}))?")


class Rejected(msgspec.Struct, frozen=True):
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


_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])")
_DAYS: dict[str, int] = {}  # "2026-10-01" -> epoch of its midnight (UTC)
# "2026-10-01T13" -> epoch of that hour (UTC), for the first 13 characters of every time
# read whole (so only of well-formed ones); with ":MM:SS" of _IN_HOUR after it, the
# text is a well-formed time. Whole times rarely repeat; their hours do (744 a month).
_HOURS: dict[str, int] = {}
_IN_HOUR = {f":{m:02d}:{s:02d}": m * 60 + s for m in range(60) for s in range(60)}
_HEAD, _TAIL = itemgetter(slice(None, 13)), itemgetter(slice(13, None))


def parse_time(text: str, name: str) -> int | None:
    """A sacct timestamp printed in UTC (the door sets TZ=UTC) as epoch seconds.

    Hand-read rather than strptime: a million-job month has four million of them,
    and strptime took half of the collector's time."""
    hour = _HOURS.get(text[:13])
    if hour is not None:
        second = _IN_HOUR.get(text[13:])
        if second is not None:
            return hour + second
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
    hour = midnight + int(match[2]) * 3600
    if len(_HOURS) > 100_000:
        _HOURS.clear()
    _HOURS[text[:13]] = hour
    return hour + int(match[3]) * 60 + int(match[4])


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
        if not sep or not _count(value):
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
            if not _count(value):
                raise FieldError(f"AllocTRES {item!r} is not joules like energy=3600000")
            return int(value)
    return None


def _count(text: str) -> bool:
    """Whether the text is a count as Slurm prints one: ASCII digits, not too many
    (str.isdigit alone passes "²" and "٣", which are no count of Slurm's)."""
    return text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS


def _int(text: str, name: str) -> int:
    if not _count(text):
        raise FieldError(f"{name} {text!r} is not a number")
    return int(text)


def parse_line(line: str, cluster: str | None = None, delimiter: str = "|") -> JobRecord | None:
    """One sacct record as a record; None for a pending array not split into tasks yet."""
    parts = line.split(delimiter, _LAST)
    if len(parts) <= _LAST:
        raise FieldError(f"{len(parts)} fields, expected {len(SACCT_FIELDS)}")
    (raw, job_id, cluster_text, user, account, partition, qos, wckey, state_text, submit_text,
     eligible, start, end, tres, nnodes, cpus, nodelist, name) = parts
    match = _JOB_ID.fullmatch(job_id)
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
        # Fewer lines than this are read a record at a time: the column path's setup
        # (some forty short lists) costs more than it saves on a handful of records.
        # A delimiter of blanks only would make a record's line look blank: such text
        # is always read a record at a time.
        self._min_run: float = 16 if delimiter.strip() else math.inf
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
        """The records of the lines held, in line order. Almost every record starts
        with a line holding every delimiter (`_LAST`), followed by lines holding none
        (the rest of a name that held newlines): runs of those are read a column at a
        time (`_simple`); a record that starts otherwise (a blank line, a WCKey that
        held a newline, a broken record) one at a time (`_one`), as it would be alone.
        Both give the same records."""
        result = ParseResult()
        lines, count = self._lines, len(self._lines)
        counts = list(map(str.count, lines, repeat(self.delimiter, count)))
        odd = ([] if counts.count(_LAST) + counts.count(0) == count else
               [k for k, c in enumerate(counts) if c and c != _LAST])
        pos = 0
        while pos < count:
            if counts[pos] != _LAST or count < self._min_run:
                after = self._one(pos, counts, final, result)
                if after is None:  # the record may go on in the next piece
                    break
                pos = after
                continue
            at = bisect_left(odd, pos)
            stop = odd[at] if at < len(odd) else count
            if stop == count and not final:  # the last record may go on: keep it
                stop -= 1
                while stop > pos and not counts[stop]:
                    stop -= 1
            if stop == pos:
                break
            self._simple(pos, stop, counts, result)
            pos = stop
        self._lines = lines[pos:]
        self._line_no += pos
        return result

    def _one(self, first: int, counts: list[int], final: bool,
             result: ParseResult) -> int | None:
        """The record that starts at line `first`, read or rejected; the line after it,
        or None if it may go on in the next piece."""
        lines = self._lines
        line, i, count = lines[first], first + 1, len(lines)
        if not line.strip():
            result.lines += 1
            return i
        # A newline in the WCKey splits a record's delimiters over several lines:
        # take lines while the record still lacks some (never past a whole record's
        # worth), then every line without one (the rest of the job name).
        found = counts[first]
        while found < _LAST and i < count:
            more = counts[i]
            if found + more > _LAST:
                break
            found += more
            i += 1
        while i < count and not counts[i]:
            i += 1
        if i == count and not final:
            return None
        result.lines += i - first
        record = self._record(line if i == first + 1 else "\n".join(lines[first:i]),
                              self._line_no + first + 1, result)
        if record is not None:
            result.records.append(record)
        return i

    def _record(self, text: str, line_no: int, result: ParseResult) -> JobRecord | None:
        """parse_line's record of the text; None when it is rejected or a pending array
        (added to `result`'s)."""
        try:
            record = parse_line(text, self.cluster, self.delimiter)
        except FieldError as exc:
            # Shown and kept with sacct's default "|": the same line reads the same
            # in every run, whatever delimiter the run drew.
            result.rejected.append(Rejected(line_no, str(exc),
                                            text.replace(self.delimiter, "|")))
            return None
        if record is None:
            result.pending_arrays.append(text.split(self.delimiter, 2)[1])
        return record

    def _simple(self, start: int, stop: int, counts: list[int], result: ParseResult) -> None:
        """Lines start..stop-1: records, each a line with every delimiter and the lines
        without any after it, read a column at a time with passes in C (a third of
        parse_line's time per record). A record that a column cannot take as it stands
        (an array task, a new kind of time, an odd TRES entry, a bad value) is read by
        parse_line instead, in its place: the records, the rejections and their order
        are parse_line's."""
        lines, delimiter = self._lines, self.delimiter
        if 0 in counts[start:stop]:  # some names held newlines
            firsts = [i for i in range(start, stop) if counts[i]]
            texts = [lines[a] if b == a + 1 else "\n".join(lines[a:b])
                     for a, b in zip(firsts, [*firsts[1:], stop], strict=True)]
        else:
            firsts, texts = range(start, stop), lines[start:stop]
        result.lines += stop - start
        n = len(texts)
        fields = delimiter.join(texts).split(delimiter)
        (raw, job_id, cluster_text, user, account, partition, qos, wckey, state, submit,
         eligible, begun, ended, tres, nnodes, cpus, nodelist, name) = (
            fields[c::_LAST + 1] for c in range(_LAST + 1))
        slow: set[int] = set()
        raw_ids = _counts(raw, slow)
        arrays: list | repeat = repeat(None)
        tasks: list | repeat = repeat(None)
        hets: list | repeat = repeat(None)
        offsets: list | repeat = repeat(None)
        same = list(map(str.__eq__, raw, job_id))
        if False in same:
            arrays, tasks, hets, offsets = [None] * n, [None] * n, [None] * n, [None] * n
            for i, plain in enumerate(same):
                if plain:
                    continue
                match = _JOB_ID.fullmatch(job_id[i])
                if match is None or (match["task"] or "").startswith("["):
                    slow.add(i)  # not a job id, or a pending array: parse_line says so
                elif match["task"] is not None:
                    arrays[i], tasks[i] = int(match["base"]), int(match["task"])
                elif match["offset"] is not None:
                    hets[i], offsets[i] = int(match["base"]), int(match["offset"])
        submit_s = _times(submit, slow, required=True)
        eligible_s, start_s, end_s = (_times(c, slow) for c in (eligible, begun, ended))
        slow.update(i for i, (b, e) in enumerate(zip(start_s, end_s, strict=True))
                    if b is not None and e is not None and e < b)
        states = [t.split(" ", 1)[0] if " " in t else t for t in state]
        if "" in states:
            slow.update(i for i, t in enumerate(states) if not t)
        gpus, typed, energy = _tres_columns(tres, slow)
        ran = [t != "None assigned" and t != "" for t in nodelist]
        nodes = [v if r else 0 for v, r in zip(_counts(nnodes, slow, ran), ran, strict=True)]
        cores = [v if r else 0 for v, r in zip(_counts(cpus, slow, ran), ran, strict=True)]
        hosts = [t if r else "" for t, r in zip(nodelist, ran, strict=True)]
        records = list(map(tuple.__new__, repeat(JobRecord), zip(
            repeat(self.cluster) if self.cluster else cluster_text, raw_ids, submit_s,
            job_id, arrays, tasks, hets, offsets, user, account, partition, qos,
            map(str.removeprefix, wckey, repeat("*")), map(str.startswith, wckey, repeat("*")),
            states, eligible_s, start_s, end_s, gpus, typed, nodes, cores, hosts, name,
            energy, repeat(None), repeat(None), repeat(None), repeat(None))))
        if slow:
            for i in sorted(slow):
                records[i] = self._record(texts[i], self._line_no + firsts[i] + 1, result)
            records = [r for r in records if r is not None]
        result.records.extend(records)


def _counts(texts: list[str], slow: set[int], wanted: list[bool] | None = None) -> list[int]:
    """Each text as a count (0 where it is not one: its row goes to `slow`, unless
    `wanted` says the row does not use it)."""
    joined = "".join(texts)
    if (joined.isascii() and joined.isdigit() and "" not in texts
            and max(map(len, texts)) <= MAX_DIGITS):
        return list(map(int, texts))
    values = []
    for i, text in enumerate(texts):
        if _count(text):
            values.append(int(text))
        else:
            values.append(0)
            if wanted is None or wanted[i]:
                slow.add(i)
    return values


def _times(texts: list[str], slow: set[int], required: bool = False) -> list[int | None]:
    """Each text as epoch seconds (parse_time), None where Slurm has none; a row whose
    text is no time (or none when `required`) goes to `slow`. A time whose hour was
    read before costs two dictionary lookups and an addition, each a pass in C; the
    others (Unknown, a new hour, no time) are read by parse_time."""
    hours = list(map(_HOURS.get, map(_HEAD, texts)))
    seconds = list(map(_IN_HOUR.get, map(_TAIL, texts)))
    if None not in hours and None not in seconds:
        return list(map(add, hours, seconds))
    count = len(texts)
    others = sorted({*compress(range(count), map(is_, hours, repeat(None, count))),
                     *compress(range(count), map(is_, seconds, repeat(None, count)))})
    for i in others:
        hours[i] = seconds[i] = 0
    values: list[int | None] = list(map(add, hours, seconds))
    for i in others:
        try:
            value = values[i] = parse_time(texts[i], "")
        except FieldError:
            slow.add(i)
            continue
        if value is None and required:
            slow.add(i)
    return values


_TRES: dict[str, tuple[int, tuple[tuple[str, int], ...]]] = {}  # AllocTRES without energy


def _tres_columns(texts: list[str], slow: set[int]) -> tuple[list, list, list]:
    """GPUs, typed GPUs and joules of each AllocTRES text, as parse_tres and
    parse_energy read them; a text they would read otherwise or refuse goes to `slow`.
    The energy entry differs per job and the rest repeats: the rest is read once."""
    gpus, typed, joules = [], [], []
    cache = _TRES
    if len(cache) > 100_000:
        cache.clear()
    for i, text in enumerate(texts):
        head, sep, tail = text.partition("energy=")
        energy = None
        if sep:
            value, _, rest = tail.partition(",")
            if ((head and head[-1] != ",") or "energy=" in rest or not value.isdigit()
                    or not value.isascii() or len(value) > MAX_DIGITS):  # _count, inline
                slow.add(i)
                value = "0"
            energy, text = int(value), head + rest
        read = cache.get(text)
        if read is None:
            try:
                read = cache[text] = parse_tres(text)
            except FieldError:
                slow.add(i)
                read = (0, ())
        gpus.append(read[0])
        typed.append(read[1])
        joules.append(energy)
    return gpus, typed, joules


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
    if not _count(value):
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
