"""A finished job's GPU use from its steps (pure; no I/O). docs/efficiency.md has
the definitions in words; this module is the only place that computes them.

What Slurm keeps (23.02+, with a GPU plugin: nvml, rsmi): per step, TRES
`gres/gpuutil` and `gres/gpumem` of TRESUsageInTot, each the sum over the step's
tasks of the task's *peak* sample. So:

- A job has GPU data when any of its steps carries `gres/gpuutil` (the extern step
  does too, which tells a job that ran no step at all from a cluster without a GPU
  plugin). Without any, every figure is None: "no data", never idle.
- The extern step (slurmstepd's own, for the whole allocation) never runs the
  user's GPU work and is left out of use.
- In use: at each instant, the GPUs of the steps running with a peak above 0, at
  most the job's GPUs. A step without GPU figures in a job that has them counts as
  in use too (not measured is not idle).
- Idle-allocated GPU-seconds: the job's GPU-seconds not in use, i.e. time outside
  any step plus steps whose peak is 0, counted once however steps overlap.
- Busy GPU-seconds, an upper bound (peaks, not averages): per step, elapsed x
  min(gpuutil / 100, GPUs), their sum at most the in-use GPU-seconds.
- Idle stretch: the longest wall time during which at least one allocated GPU was
  idle.
- GPU memory peak: the highest step's gpumem / GPUs (per GPU), MiB.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import NamedTuple

from collector.slurm.records import JobRecord, StepRecord

MIB = 1 << 20


class GpuUse(NamedTuple):
    busy_gpu_s: int
    idle_gpu_s: int
    idle_stretch_s: int
    gpu_mem_mib: int | None


def gpu_use(start_s: int, end_s: int, gpus: int, steps: Iterable[StepRecord]) -> GpuUse | None:
    """The GPU use of a job that held `gpus` GPUs over [start, end); None: no data."""
    steps = list(steps)
    if gpus <= 0 or end_s <= start_s or not any(s.gpuutil is not None for s in steps):
        return None
    changes: dict[int, int] = {start_s: 0, end_s: 0}
    busy = 0
    mem: int | None = None
    for s in steps:
        if s.step == "extern":
            continue
        lo, hi = max(start_s, s.start_s), min(end_s, s.end_s)
        if s.gpumem is not None and s.gpus > 0:
            mem = max(mem or 0, s.gpumem // s.gpus // MIB)
        if hi <= lo or s.gpus <= 0 or s.gpuutil == 0:
            continue
        changes[lo] = changes.get(lo, 0) + s.gpus
        changes[hi] = changes.get(hi, 0) - s.gpus
        if s.gpuutil is not None:
            # gpuutil / 100 GPUs busy, at most the step's GPUs: in whole GPU-seconds.
            busy += min((hi - lo) * s.gpuutil // 100, (hi - lo) * s.gpus)
    idle = stretch = running = 0
    stretch_from: int | None = None
    times = sorted(changes)
    for t, nxt in pairwise(times):
        running += changes[t]
        free = gpus - min(gpus, running)
        idle += free * (nxt - t)
        if free:
            stretch_from = t if stretch_from is None else stretch_from
            stretch = max(stretch, nxt - stretch_from)
        else:
            stretch_from = None
    in_use = gpus * (end_s - start_s) - idle
    return GpuUse(min(busy, in_use), idle, stretch, mem)


def with_gpu_use(job: JobRecord, steps: Iterable[StepRecord] | None) -> JobRecord:
    """The record with its GPU use filled in (unchanged while it runs, or without data)."""
    if steps is None or job.start_s is None or job.end_s is None:
        return job
    use = gpu_use(job.start_s, job.end_s, job.gpus, steps)
    if use is None:
        return job
    return job._replace(busy_gpu_s=use.busy_gpu_s, idle_gpu_s=use.idle_gpu_s,
                        idle_stretch_s=use.idle_stretch_s, gpu_mem_mib=use.gpu_mem_mib)
