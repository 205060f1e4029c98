"""A small synthetic cluster for unit tests of collect and report, served by the
stand-in `sacct`/`sacctmgr` in tests/fakeslurm (real subprocesses, recorded format).

October 2026 (UTC) by hand, 16 GPUs all month, no outages:
  A  ehpc_a   8 GPUs  09-30 22:00 .. 10-01 02:00   -> 16 GPU-h in October (spans the start)
  B  nl_x     4 GPUs  10-10 00:00 .. 10-10 10:00   -> 40
  C  com_acme 2 GPUs  10-31 20:00 .. running       -> 8 up to 11-01 00:00
  D  nl_x     cancelled while pending              -> 0
  E  nl_x     CPU only, one hour                   -> 0 (a job without GPUs)
  F  stray    1 GPU   10-20 00:00 .. 03:00         -> 3 (an account in no category)
  G  nl_x     1 GPU, id 107 twice: run 10-05 00:00..01:00 requeued, rerun 02:00..04:00
                                                    -> 1 + 2
Total 70 GPU-hours.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import msgspec

from collector.config import Settings, parse

FAKE_BIN = Path(__file__).parent.parent / "fakeslurm"
H = 3600


def line(raw: int, user: str, account: str, state: str, submit: str, start: str, end: str,
         tres: str, nodes: int = 1, nodelist: str = "gpu01", job_id: str | None = None,
         name: str = "job", wckey: str = "pretrain") -> str:
    return "|".join([str(raw), job_id or str(raw), "testai", user, account, "gpu", "normal",
                     wckey, state, submit, submit, start, end, tres, str(nodes), "8",
                     nodelist, name])


def gpu(n: int) -> str:
    return f"billing={n},cpu={n},gres/gpu:h100={n},gres/gpu={n},mem=8G,node=1"


JOBS = [
    line(101, "anna", "ehpc_a", "COMPLETED", "2026-09-30T21:00:00", "2026-09-30T22:00:00",
         "2026-10-01T02:00:00", gpu(8), 2, "gpu[01-02]"),
    line(102, "maria", "nl_x", "COMPLETED", "2026-10-09T23:00:00", "2026-10-10T00:00:00",
         "2026-10-10T10:00:00", gpu(4)),
    line(103, "kim", "com_acme", "RUNNING", "2026-10-31T19:00:00", "2026-10-31T20:00:00",
         "Unknown", gpu(2)),
    line(104, "maria", "nl_x", "CANCELLED by 1007", "2026-10-11T00:00:00",
         "2026-10-11T01:00:00", "2026-10-11T01:00:00", "", 1, "None assigned"),
    line(105, "maria", "nl_x", "COMPLETED", "2026-10-12T00:00:00", "2026-10-12T00:00:00",
         "2026-10-12T01:00:00", "billing=8,cpu=8,mem=8G,node=1"),
    line(106, "omar", "stray", "COMPLETED", "2026-10-19T23:00:00", "2026-10-20T00:00:00",
         "2026-10-20T03:00:00", gpu(1), name="a|name with [bold]markup[/bold] <b>"),
    line(107, "maria", "nl_x", "REQUEUED", "2026-10-04T23:00:00", "2026-10-05T00:00:00",
         "2026-10-05T01:00:00", gpu(1)),
    line(107, "maria", "nl_x", "COMPLETED", "2026-10-05T01:00:00", "2026-10-05T02:00:00",
         "2026-10-05T04:00:00", gpu(1)),
]
TOTAL_OCT_GPU_H = 16 + 40 + 8 + 3 + 1 + 2

ASSOC = textwrap.dedent("""\
    root||||
    root|root|||
    eurohpc||root|
    eu_science||eurohpc|
    ehpc_a||eu_science|gres/gpu=6000
    ehpc_a|anna|||
    commercial||eurohpc|
    com_acme||commercial|
    com_acme|kim|||
    national||root|
    science||national|
    nl_x||science|
    nl_x|maria|||
    stray||root|
    stray|omar|||
    """)
ACCOUNTS = "\n".join(f"{a}|org {a}|desc {a}" for a in (
    "root", "eurohpc", "eu_science", "ehpc_a", "commercial", "com_acme", "national", "science",
    "nl_x", "stray")) + "\n"
EVENTS = ("testai|gpu[01-04]||2026-01-01T00:00:00|Unknown|Cluster||billing=32,cpu=32,"
          "gres/gpu:h100=16,gres/gpu=16,mem=250G,node=4|Cluster Registered TRES\n")

POLICY = {
    "facility": {"name": "Fake Factory", "timezone": "UTC"},
    "slurm": {"cluster": "testai", "history_start": "2026-09-01"},
    "pools": [{"name": "eurohpc", "share": 0.5}, {"name": "national", "share": 0.5}],
    "categories": [
        {"name": "eu_science", "pool": "eurohpc", "quota_share": 0.3,
         "accounts_under": ["eu_science"]},
        {"name": "commercial", "pool": "eurohpc", "quota_share": 0.1,
         "accounts_under": ["commercial"]},
        {"name": "science", "pool": "national", "quota_share": 0.5,
         "accounts_under": ["science"]}],
    "allocations": [{"account": "nl_x", "gpu_hours": 100, "start": "2026-10-01",
                     "end": "2026-11-30", "access_mode": "national", "country": "NL"}],
    "wckeys": {"pretrain": "pre-training"},
}


def make(tmp: Path, jobs: list[str] = JOBS, steps: str | None = None
         ) -> tuple[Settings, dict[str, str]]:
    """Write the cluster's files under tmp; return settings and the environment. With
    `steps` (sacct's step lines, see STEP_FIELDS), slurmdbd tracks gres/gpuutil."""
    data = tmp / "slurm"
    data.mkdir(exist_ok=True)
    write_jobs(data, jobs)
    if steps is not None:
        (data / "steps.txt").write_text(steps)
        (data / "sacctmgr-tres.txt").write_text("cpu|\nmem|\nenergy|\nnode|\ngres|gpu\n"
                                                "gres|gpumem\ngres|gpuutil\n")
    (data / "sacctmgr-assoc.txt").write_text(ASSOC)
    (data / "sacctmgr-account.txt").write_text(ACCOUNTS)
    (data / "sacctmgr-events.txt").write_text(EVENTS)
    (data / "sacctmgr-reservation.txt").write_text("")
    # The nodes as the real cluster's sinfo printed them (the collection's node inventory).
    (data / "sinfo.txt").write_text(
        (Path(__file__).parents[1] / "fixtures" / "slurm-22.05.8" / "sinfo-live.txt").read_text())
    env = dict(os.environ, PATH=f"{FAKE_BIN}:{os.environ['PATH']}", FAKE_SLURM_DIR=str(data))
    settings = parse({**POLICY, "store": {"path": str(tmp / "store")}})
    return settings, env


def changed(settings: Settings, section: str, **keys: object) -> Settings:
    """The settings with some keys of one section changed (as if edited in the file)."""
    return parse(msgspec.to_builtins(msgspec.structs.replace(
        settings, **{section: msgspec.structs.replace(getattr(settings, section), **keys)}),
        enc_hook=str))


def write_jobs(data: Path, jobs: list[str]) -> None:
    (data / "sacct.txt").write_text("\n".join(jobs) + "\n")


def gpu_use_jobs() -> tuple[list[str], str]:
    """JOBS with job 103 (com_acme, 2 GPUs, 10-31 20:00 to 11-01 12:00) finished and its
    steps: the extern step, the batch script idle for the first 4 hours, then one step
    at a peak of 80 % per GPU and 40 GiB per GPU. The other jobs have no steps (no data)."""
    jobs = list(JOBS)
    jobs[2] = line(103, "kim", "com_acme", "COMPLETED", "2026-10-31T19:00:00",
                   "2026-10-31T20:00:00", "2026-11-01T12:00:00", gpu(2))
    alloc = "cpu=2,gres/gpu=2,mem=8G,node=1"
    steps = "\n".join([
        f"103|2026-10-31T19:00:00|2026-10-31T20:00:00|2026-11-01T12:00:00|{alloc}|",
        f"103.extern|x|2026-10-31T20:00:00|2026-11-01T12:00:00|{alloc}|"
        "gres/gpumem=0,gres/gpuutil=0",
        f"103.batch|x|2026-10-31T20:00:00|2026-11-01T12:00:00|{alloc}|"
        "gres/gpumem=0,gres/gpuutil=0",
        f"103.0|x|2026-11-01T00:00:00|2026-11-01T12:00:00|{alloc}|"
        "gres/gpumem=85899345920,gres/gpuutil=160"]) + "\n"
    return jobs, steps
