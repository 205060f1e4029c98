"""A mutation fuzzer over what the collector reads: sacct lines, slurmrestd job JSON
and the policy file, each mutated from real recorded input (tests/fixtures) with a
seeded random generator, so a failure replays.

The rule checked on every input: it is read or it is rejected with a reason and
counted, never a crash, never a record that silently vanishes; a policy file is
valid or refused with ConfigError naming the file, never another exception.
`scripts/fuzz.py` runs it at length and prints the figures; the unit tests run a
shorter round of the same.
"""

from __future__ import annotations

import copy
import json
import random
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collector.config import ConfigError, load
from collector.slurm.sacct_parser import FieldError, ParseResult, SacctReader, merge, parse_sacct
from collector.slurm.slurmrestd_parser import parse_jobs

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
POLICY = ROOT / "testcluster" / "facility.toml"

HOSTILE_TEXT = (
    "", " ", "|", "||", "\n", "\r\n", "\t", '"', "'", "\\", "\x00", "\x7f",
    "<script>alert(1)</script>",
    "=HYPERLINK(\"http://evil\")", "${jndi:x}", "%s%n", "-1", "0", "2147483648",
    "18446744073709551616", "1e999", "NaN", "Unknown", "None", "INVALID", "2026-13-45T25:61:61",
    "1970-01-01T00:00:00", "9999-12-31T23:59:59", "gres/gpu=-4", "gres/gpu:h100=999999999",
    "node[1-", "node[0-99999]", "ünï 中文 \u202e", "x" * 5000, "😀", "\ud7ff",
)
HOSTILE_JSON = (None, "", " ", -1, 0, 2**63, 2**70, -(2**70), 1.5, float("inf"), True, False,
                [], {}, [None], {"set": True, "infinite": True, "number": -5},
                {"set": "yes", "number": "x"}, "NaN", "x" * 5000, "<b>x</b>",
                ["PENDING", 3], {"current": None})
HOSTILE_TOML = ("-1", "0", "1e999", "nan", "inf", '""', '"x"', "[]", "{}", "true",
                '"../../etc/passwd"', "2026-13-45", "1979-05-27T07:32:00Z",
                '"Europe/Nowhere"', '"[unclosed"', "[1, \"a\"]", '"\\u0000"',
                '"' + "x" * 5000 + '"',
                "{ a = 1 }", "'''multi\nline'''", "0x7fffffffffffffff")


@dataclass
class Tally:
    inputs: int = 0
    records: int = 0
    rejected: int = 0
    pending: int = 0
    refused: int = 0          # whole inputs refused with the documented error
    failures: list[str] = field(default_factory=list)   # broke the rule (must stay empty)

    def line(self, what: str) -> str:
        return (f"{what}: {self.inputs:,} inputs, {self.records:,} records read, "
                f"{self.rejected:,} rejected with a reason, {self.pending:,} pending arrays, "
                f"{self.refused:,} refused whole, {len(self.failures)} broke the rule")


# --- sacct ------------------------------------------------------------------------------
# Free text a user writes into a job name or WCKey to forge records: newlines followed by
# a whole sacct line (with the default "|", since the run's delimiter is unknown to them),
# and every other line break Python's splitlines() would honour.
URLSAFE = string.ascii_letters + string.digits + "-_"
FORGERIES = ("\n", "evil\n", "\r", "\u2028", "\x1c", "\x1e", "\x85", "\x1f")


def _forged_line(rng: random.Random, real: list[str]) -> str:
    """A line break and a whole record of another user's project with 100,000 GPUs."""
    fields = rng.choice(real).split("|", 17)
    fields[3], fields[4], fields[13] = "anna", "ehpc_llm01", "gres/gpu=100000"
    return rng.choice(FORGERIES) + "|".join(fields)


def _mutate_fields(rng: random.Random, fields: list[str], real: list[str]) -> list[str]:
    kind = rng.randrange(5)
    if kind == 0:       # a field replaced by something hostile
        fields[rng.randrange(len(fields))] = rng.choice(HOSTILE_TEXT)
    elif kind == 1:     # a field dropped or doubled
        i = rng.randrange(len(fields))
        fields[i:i + 1] = [] if rng.random() < 0.5 else [fields[i], fields[i]]
    elif kind == 2:     # two fields swapped
        i, j = rng.randrange(len(fields)), rng.randrange(len(fields))
        fields[i], fields[j] = fields[j], fields[i]
    elif kind == 3:     # the user's own text (JobName, WCKey) holds a forged record
        i = rng.choice((min(7, len(fields) - 1), len(fields) - 1))  # fields may be dropped
        fields[i] = fields[i] + _forged_line(rng, real)
    else:               # several of the above
        for _ in range(rng.randrange(2, 5)):
            fields = _mutate_fields(rng, fields, real)
    return fields or [""]


def _mutate_text(rng: random.Random, line: str) -> str:
    kind = rng.randrange(3)
    if kind == 0:       # cut short
        return line[:rng.randrange(len(line) + 1)]
    if kind == 1:       # random characters inserted
        i = rng.randrange(len(line) + 1)
        return line[:i] + rng.choice(HOSTILE_TEXT) + line[i:]
    digits = [i for i, c in enumerate(line) if c.isdigit()]  # a digit changed
    if digits:
        i = rng.choice(digits)
        return line[:i] + rng.choice("0123456789-") + line[i + 1:]
    return line


def sacct_lines() -> list[str]:
    """Real recorded sacct lines, with the `|` they were recorded with."""
    from .fixtures import recorded_delimiter

    lines = []
    for path in sorted(FIXTURES.glob("slurm-*/sacct-*.txt")):
        delimiter = recorded_delimiter(path.parent)
        lines += [x.replace(delimiter, "|") for x in path.read_text().split("\n") if x.strip()]
    return lines


def fuzz_sacct(n: int, seed: int = 1) -> Tally:
    """Real lines printed with a run's random delimiter, as the collector asks sacct,
    mutated; the forged records inside names must never become records."""
    rng, real, tally = random.Random(seed), sacct_lines(), Tally()
    for _ in range(n):
        # Shaped as collector.slurm.commands.new_delimiter's, but drawn from the seeded
        # generator: the mutations below depend on the line's text, so a failure replays
        # only if the delimiter does too.
        delimiter = f"\x1f{''.join(rng.choice(URLSAFE) for _ in range(11))}\x1f"
        lines = []
        for line in (rng.choice(real) for _ in range(rng.randrange(1, 6))):
            fields = line.split("|", 17)
            if rng.random() < 0.8:
                fields = _mutate_fields(rng, fields, real)
            out = delimiter.join(fields)
            lines.append(_mutate_text(rng, out) if rng.random() < 0.3 else out)
        text = "\n".join(lines) + "\n"
        tally.inputs += 1
        try:
            result = parse_sacct(text, None, delimiter)
        except Exception as exc:
            tally.failures.append(f"{type(exc).__name__}: {exc} <- {text[:300]!r}")
            continue
        # Read as it would arrive from sacct, in random pieces: the same result.
        reader, cuts = SacctReader(None, delimiter), sorted(
            rng.randrange(len(text) + 1) for _ in range(rng.randrange(4)))
        streamed = ParseResult()
        for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
            merge(streamed, reader.feed(text[a:b]))
        merge(streamed, reader.finish())
        if (streamed.records, streamed.rejected, streamed.pending_arrays, streamed.lines) != \
                (result.records, result.rejected, result.pending_arrays, result.lines):
            tally.failures.append(f"read in pieces {cuts}: another result <- {text[:300]!r}")
        split = text.split("\n")[:-1]
        if result.lines != len(split):
            tally.failures.append(f"{len(split)} lines, {result.lines} read <- {text[:300]!r}")
        if len(result.records) > len(lines):
            tally.failures.append(f"forged: {len(result.records)} records from {len(lines)} "
                                  f"<- {text[:300]!r}")
        outcomes = len(result.records) + len(result.rejected) + len(result.pending_arrays)
        _count(tally, result, outcomes if split else 0, f"records <- {text[:300]!r}")
    return tally


def _count(tally: Tally, result, expected: int, what: str) -> None:
    """Add one parse result; every one of `expected` items read or rejected, all sane."""
    got = len(result.records) + len(result.rejected) + len(result.pending_arrays)
    if got != expected:
        tally.failures.append(f"{expected} {what}: {got} read or rejected")
    bad = [r for r in result.records if not _sane(r)]
    if bad:
        tally.failures.append(f"insane record {bad[0]} in {what}")
    tally.records += len(result.records)
    tally.rejected += len(result.rejected)
    tally.pending += len(result.pending_arrays)


def _sane(r) -> bool:
    return (r.gpus >= 0 and r.nodes >= 0 and r.cpus >= 0 and r.submit_s >= 0
            and (r.start_s is None or r.end_s is None or r.end_s >= r.start_s)
            and all(isinstance(t, str) for t in (r.cluster, r.user, r.account, r.partition,
                                                  r.qos, r.wckey, r.state, r.nodelist, r.name))
            and all(0 <= v < 10**15 for v in (r.job_id_raw, r.submit_s, r.gpus, r.nodes,
                                              r.cpus, r.start_s or 0, r.end_s or 0,
                                              r.eligible_s or 0, *(c for _, c in r.gpu_types))))


# --- slurmrestd ------------------------------------------------------------------------
def _paths(value, prefix=()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            out += _paths(v, (*prefix, i))
    return out


def _mutate_job(rng: random.Random, job: dict) -> dict:
    job = copy.deepcopy(job)
    for _ in range(rng.randrange(1, 4)):
        paths = [p for p in _paths(job) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = job
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and rng.random() < 0.3:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(HOSTILE_JSON))
    return job


def rest_jobs() -> list[dict]:
    jobs = []
    for path in sorted(FIXTURES.glob("slurm-*/slurmrestd-*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("jobs"), list):
            jobs += data["jobs"]
    return jobs


def fuzz_rest(n: int, seed: int = 2) -> Tally:
    rng, real, tally = random.Random(seed), rest_jobs(), Tally()
    for _ in range(n):
        jobs = [_mutate_job(rng, rng.choice(real)) if rng.random() < 0.8 else rng.choice(real)
                for _ in range(rng.randrange(1, 4))]
        tally.inputs += 1
        try:
            result = parse_jobs({"jobs": jobs})
        except Exception as exc:
            tally.failures.append(f"{type(exc).__name__}: {exc} <- "
                                  f"{json.dumps(jobs, default=str)[:300]}")
            continue
        _count(tally, result, len(jobs), "jobs")
    for whole in (None, [], "x", {"jobs": "x"}, {"jobs": None}, {}):
        tally.inputs += 1
        try:
            parse_jobs(whole)  # type: ignore[arg-type]
            tally.failures.append(f"accepted {whole!r} as a response")
        except FieldError:
            tally.refused += 1
        except Exception as exc:
            tally.failures.append(f"{type(exc).__name__}: {exc} <- {whole!r}")
    return tally


# --- the policy file -------------------------------------------------------------------
def _mutate_policy(rng: random.Random, lines: list[str]) -> str:
    lines = list(lines)
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(lines))
        kind = rng.randrange(6)
        if kind == 0 and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {rng.choice(HOSTILE_TOML)}"
        elif kind == 1:
            del lines[i]
        elif kind == 2:
            lines.insert(i, lines[i])
        elif kind == 3:
            lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
        elif kind == 4:
            lines.insert(i, rng.choice(("[facility]", "[[pools]]", "[dashboard.auth]",
                                        "unknown_key = 1", "[slurm]\ncluster = \"\"")))
        else:
            lines[i] = lines[i] + rng.choice(HOSTILE_TEXT)
    return "\n".join(lines)


def fuzz_policy(n: int, seed: int = 3, as_bytes: Callable[[str], bytes] | None = None) -> Tally:
    rng, tally = random.Random(seed), Tally()
    lines = POLICY.read_text().splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "facility.toml"
        for i in range(n):
            text = _mutate_policy(rng, lines)
            data = text.encode("utf-8", "surrogatepass")
            if i % 10 == 0:  # now and then not UTF-8 at all
                data = data.replace(b"=", b"= \xff\xfe", 1)
            path.write_bytes(data)
            tally.inputs += 1
            try:
                load(path)
                tally.records += 1
            except ConfigError as exc:
                tally.refused += 1
                if str(path) not in str(exc):
                    tally.failures.append(f"error does not name the file: {exc}")
            except Exception as exc:
                tally.failures.append(f"{type(exc).__name__}: {exc} <- {text[:300]!r}")
    return tally
