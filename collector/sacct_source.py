"""The one door to sacct: the only place that runs it.

Argument list, no shell; TZ=UTC so that the parser reads every time the same way;
the field list is the parser's own `SACCT_FIELDS`. SLURM_CONF comes from the
environment, so one install can point at any cluster. Failures raise
`SlurmError` naming the command and what it said; only the CLI turns them into
exit codes.
"""

from __future__ import annotations

import os
import subprocess
import time

from .sacct_parser import SACCT_FIELDS


class SlurmError(RuntimeError):
    """A Slurm command failed, timed out or could not be started."""


def sacct_time(epoch: int) -> str:
    """An epoch as sacct's --starttime/--endtime in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def sacct_argv(start_s: int, end_s: int, cluster: str | None = None) -> list[str]:
    """The sacct command for every allocation eligible or running in [start, end)."""
    argv = ["sacct", "--allusers", "--allocations", "--duplicates", "--parsable2",
            "--noheader", f"--starttime={sacct_time(start_s)}",
            f"--endtime={sacct_time(end_s)}", f"--format={','.join(SACCT_FIELDS)}"]
    if cluster:
        argv.append(f"--clusters={cluster}")
    return argv


def run_sacct(start_s: int, end_s: int, cluster: str | None = None,
              timeout_s: float = 600, env: dict[str, str] | None = None) -> str:
    """The raw sacct text for the window; raises SlurmError."""
    argv = sacct_argv(start_s, end_s, cluster)
    full_env = dict(os.environ if env is None else env, TZ="UTC")
    try:
        proc = subprocess.run(argv, env=full_env, capture_output=True, text=True,
                              timeout=timeout_s, check=False, errors="replace")
    except FileNotFoundError as exc:
        raise SlurmError("sacct not found: install slurm-client or put it on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"sacct timed out after {timeout_s:.0f} s for "
                         f"{sacct_time(start_s)}..{sacct_time(end_s)}") from exc
    if proc.returncode != 0:
        raise SlurmError(f"sacct exited {proc.returncode} for {sacct_time(start_s)}.."
                         f"{sacct_time(end_s)}: {proc.stderr.strip()[:500]}")
    return proc.stdout
