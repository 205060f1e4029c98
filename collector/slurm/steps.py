"""Each job's steps, for its GPU use, through sacct: the sacct source's, and the pyslurm
source's (pyslurm's JobStep has no GPU figures). slurmdbd returns a window's steps
that overlap the window only, so the steps of jobs that ran past its edges are read
again by job id, whole (docs/slurm-facts.md)."""

from __future__ import annotations

from collector.slurm import commands as door
from collector.slurm.sacct_parser import ParseResult, parse_steps

STEP_IDS_PER_CALL = 2000  # job ids per `sacct --jobs` call for steps (about 16 KB of argv)


def crossing(result: ParseResult, start_s: int, end_s: int) -> list[int]:
    """Ids of the window's finished GPU jobs that ran past either of its edges: slurmdbd
    returns a window's steps that overlap it only, so theirs are read again by id."""
    return sorted({r.job_id_raw for r in result.records
                   if r.gpus > 0 and r.start_s is not None and r.end_s is not None
                   and not start_s <= r.start_s <= r.end_s < end_s})


def add_sacct_steps(result: ParseResult, cluster: str, timeout_s: float,
                    env: dict[str, str] | None, window: tuple[int, int] | None = None,
                    ids: list[int] | None = None) -> None:
    """Each job's steps from sacct into `result.steps` (and unreadable step lines into
    its rejections): the window's, then, whole, those of the jobs that ran past either
    edge of it (sacct shows a window's steps that overlap it only), or those of `ids`."""
    def add(text: str) -> None:
        steps, rejected = parse_steps(text, cluster)
        result.steps = {**(result.steps or {}), **steps}  # a later read is whole: it wins
        result.rejected.extend(rejected)

    if window is not None:
        add(door.run_sacct_steps(*window, cluster, timeout_s, env))
        ids = crossing(result, *window)
    ids = list(ids or ())
    for i in range(0, len(ids), STEP_IDS_PER_CALL):
        add(door.run_sacct_job_steps(ids[i:i + STEP_IDS_PER_CALL], cluster, timeout_s, env))
