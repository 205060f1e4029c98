"""Real jobs, submitted with sbatch as the project users, that run for seconds.

The mix covers what the collector must read correctly: GPUs asked for in each of
Slurm's spellings (--gpus, --gres, --gpus-per-node, --gpus-per-task), single-GPU,
whole-node and multi-node jobs, a job array, a heterogeneous job, WCKey-tagged use
phases, a failing job, jobs cancelled while pending and while running, a requeued
job, a CPU-only job, and a hostile job name.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

from . import releases
from .layout import Layout
from .processes import ClusterError, failed

HOSTILE_NAME = 'eval|"quoted" <b>bold</b> ünï'


@dataclass(frozen=True)
class Submission:
    label: str
    user: str
    account: str
    args: tuple[str, ...]            # sbatch options
    command: str = "sleep 3"
    wckey: str | None = None
    then: str | None = None          # "cancel-pending", "cancel-running", "requeue"
    script_lines: tuple[str, ...] = field(default_factory=tuple)  # for heterogeneous jobs


SUBMISSIONS: tuple[Submission, ...] = (
    Submission("single-gpu", "anna", "ehpc_llm01", ("--gpus=1",), wckey="pretrain"),
    Submission("gres-whole-node", "maria", "nl_uva_nlp", ("--gres=gpu:h100:4", "-c", "4"),
               wckey="finetune"),
    Submission("multi-node", "bram", "nl_ind_chip", ("-N", "2", "--gpus-per-node=4"),
               wckey="pretrain"),
    Submission("gpus-per-task", "omar", "nl_rug_astro", ("-n", "2", "--gpus-per-task=1")),
    Submission("array", "quinn", "nl_tud_vision", ("--array=0-3", "--gpus=1"),
               command="sleep 2", wckey="inference"),
    Submission("commercial-inference", "jasper", "com_acme", ("--gpus=2",), wckey="inference"),
    Submission("failing", "tess", "nl_knmi_wx", ("--gpus=1",), command="sleep 1; exit 3"),
    Submission("hostile-name", "vera", "nl_su_speech", ("--gpus=1", "-J", HOSTILE_NAME),
               wckey="finetune"),
    Submission("cpu-only", "opsbot", "staff_ops", ("-c", "2",)),
    Submission("cancel-pending", "yara", "nl_sme_agri", ("--gpus=1", "--begin=now+1hour"),
               then="cancel-pending"),
    Submission("cancel-running", "gijs", "ehpc_ind_robo", ("--gpus=1",), command="sleep 300",
               then="cancel-running"),
    Submission("requeued", "sven", "nl_umc_med", ("--gpus=1", "--requeue"), command="sleep 8",
               then="requeue"),
    Submission("hetjob", "fatima", "ehpc_clim03", (), script_lines=(
        "#SBATCH --gpus=1", "#SBATCH -n 1", "#SBATCH hetjob", "#SBATCH -n 1 -c 2",
        "sleep 3")),
)


@dataclass(frozen=True)
class Submitted:
    label: str
    job_id: str
    user: str
    account: str
    wckey: str | None


def _run(lay: Layout, argv: list[str], timeout_s: float = 30) -> str:
    proc = subprocess.run(argv, env=lay.env(), capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise failed(f"{' '.join(argv[:6])} ...", proc)
    return proc.stdout.strip()


def submit(lay: Layout, sub: Submission) -> str:
    """Submit one job as its user (argument list, no shell); return the job id."""
    argv = ["sbatch", "--parsable", "-A", sub.account,
            "-t", "10", f"--chdir={lay.jobs_dir}", f"--output={lay.jobs_dir}/%j.out"]
    if sub.wckey:
        argv.append(f"--wckey={sub.wckey}")
    argv += list(sub.args)
    if sub.script_lines:
        script = lay.jobs_dir / f"{sub.label}.sh"
        script.write_text("#!/bin/sh\n" + "\n".join(sub.script_lines) + "\n")
        script.chmod(0o755)
        argv.append(str(script))
    else:
        argv += ["--wrap", sub.command]
    # sbatch prints "id" or "id;cluster"; a het job prints its leader id.
    return _run(lay, releases.as_user(lay.root, sub.user, argv, lay.prefix)).split(";")[0]


def _state(lay: Layout, job_id: str) -> str:
    out = _run(lay, ["squeue", "-h", "-j", job_id, "-o", "%T"], timeout_s=10)
    return out.splitlines()[0] if out else ""


def _wait_for(lay: Layout, job_id: str, state: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _state(lay, job_id) == state:
            return
        time.sleep(0.5)
    raise ClusterError(f"job {job_id} did not reach {state} within {timeout_s:.0f} s")


def _follow_up(lay: Layout, sub: Submission, job_id: str) -> None:
    if sub.then == "cancel-pending":
        _run(lay, releases.as_user(lay.root, sub.user, ["scancel", job_id], lay.prefix))
    elif sub.then == "cancel-running":
        _wait_for(lay, job_id, "RUNNING")
        time.sleep(2)
        _run(lay, releases.as_user(lay.root, sub.user, ["scancel", job_id], lay.prefix))
    elif sub.then == "requeue":
        _wait_for(lay, job_id, "RUNNING")
        time.sleep(2)
        _run(lay, ["scontrol", "requeue", job_id])
        # A requeued job waits about two minutes before it may start again; skip that.
        _wait_for(lay, job_id, "PENDING")
        _run(lay, ["scontrol", "update", f"JobId={job_id}", "StartTime=now"])


def wait_idle(lay: Layout, timeout_s: float = 300) -> None:
    """Wait until no job is pending or running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _run(lay, ["squeue", "-h", "-o", "%i"], timeout_s=10):
            return
        time.sleep(1)
    raise ClusterError(f"jobs still queued after {timeout_s:.0f} s: "
                       + _run(lay, ["squeue", "-h", "-o", "%i %T %r"], timeout_s=10))


def run(lay: Layout, wait: bool = True) -> list[Submitted]:
    """Submit the whole mix, cancel and requeue what it says, and wait for the end."""
    done = []
    for sub in SUBMISSIONS:
        job_id = submit(lay, sub)
        done.append(Submitted(sub.label, job_id, sub.user, sub.account, sub.wckey))
    for sub, sent in zip(SUBMISSIONS, done, strict=True):
        if sub.then:
            _follow_up(lay, sub, sent.job_id)
    if wait:
        wait_idle(lay)
    return done
