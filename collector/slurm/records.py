"""The canonical records: a job (one allocation, whatever source it came from), its
steps, and the cluster's events and reservations (what capacity is computed from).
Plain data, no parsing: the report reads them from the store without importing a
parser.

Times are epoch seconds (UTC); `None` means Slurm had none ("Unknown", "None").
One record is one allocation: an array task, a heterogeneous job component and
each run of a requeued job are separate records; job steps never are.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

# Base job states of Slurm 22.05 to 26.05 as sacct prints them.
KNOWN_STATES = frozenset({
    "PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT",
    "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "REQUEUED",
    "RESIZING", "REVOKED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED",
})


class StepRecord(NamedTuple):
    """One job step's GPU use as Slurm's accounting keeps it (TRESUsageInTot): the
    sum over its tasks of each task's peak, so `gpuutil` (percent) may pass 100 per
    GPU. None: the step carries no GPU figure (no GPU plugin, or Slurm 22.05)."""

    step: str            # "batch", "extern", "interactive", "0", "1", "0+1" ...
    start_s: int
    end_s: int
    gpus: int            # gres/gpu of the step's allocation
    gpuutil: int | None  # gres/gpuutil of TRESUsageInTot, percent summed over tasks
    gpumem: int | None   # gres/gpumem of TRESUsageInTot, bytes summed over tasks


def job_id_text(raw: int, array_id: int | None, task: int | None, het_id: int | None,
                offset: int | None) -> str:
    """The JobID as sacct prints it (`123_7`, `123+1`, `123`), for sources that give
    the parts separately."""
    if array_id is not None:
        return f"{array_id}_{task}"
    if het_id is not None and offset is not None:
        return f"{het_id}+{offset}"
    return str(raw)


class JobRecord(NamedTuple):
    """A NamedTuple, not a dataclass: a million are made per collection, and the
    field order is the store's column order, so a record is almost its own row."""

    cluster: str
    job_id_raw: int              # unique per allocation (JobIDRaw)
    submit_s: int
    job_id: str                  # as Slurm shows it: 123, 123_7, 123+1
    array_job_id: int | None
    array_task_id: int | None
    het_job_id: int | None
    het_job_offset: int | None
    user: str
    account: str
    partition: str
    qos: str
    wckey: str                   # without the leading "*" of a default WCKey
    wckey_is_default: bool
    state: str                   # base state, e.g. CANCELLED (from "CANCELLED by 1007")
    eligible_s: int | None
    start_s: int | None          # None: never started
    end_s: int | None            # None: still running (or pending)
    gpus: int                    # gres/gpu of the allocated TRES; 0 if none
    gpu_types: tuple[tuple[str, int], ...] = ()  # typed entries, e.g. (("h100", 8),)
    nodes: int = 0
    cpus: int = 0
    nodelist: str = ""
    name: str = ""
    energy_j: int | None = None  # the energy TRES of the allocation (sacct's
    # ConsumedEnergyRaw of the job), joules; None: not recorded (no energy plugin,
    # or the job has not ended yet), never 0 for "unknown"
    # GPU use from the job's steps (engine/gpuuse.py; None: no GPU data recorded):
    busy_gpu_s: int | None = None     # upper bound of the GPU-seconds the GPUs were busy
    idle_gpu_s: int | None = None     # allocated GPU-seconds outside any step using GPUs
    idle_stretch_s: int | None = None  # longest wall time with an allocated GPU idle
    gpu_mem_mib: int | None = None    # highest step's GPU memory peak per GPU, MiB

    @property
    def key(self) -> tuple[str, int, int]:
        """Identity in the store: a requeued job has one record per run (submit time)."""
        return (self.cluster, self.job_id_raw, self.submit_s)

    @property
    def state_known(self) -> bool:
        return self.state in KNOWN_STATES

    @property
    def started(self) -> bool:
        """True if the job ever ran on nodes (a cancelled pending job did not)."""
        return self.start_s is not None and self.nodes > 0

    @property
    def gpu_type(self) -> str | None:
        """The GPU type if the allocation has exactly one; None if untyped or mixed."""
        return self.gpu_types[0][0] if len(self.gpu_types) == 1 else None


class Event(msgspec.Struct, frozen=True):
    kind: str                   # "cluster" (registered TRES) or "node" (down, drain, ...)
    node: str                   # node name; the node list for a cluster event
    start_s: int
    end_s: int | None           # None: still open
    state: str
    reason: str
    gpus: int                   # GPUs of the node, or of the cluster
    nodes: int


class Reservation(msgspec.Struct, frozen=True):
    id: int
    name: str
    start_s: int
    end_s: int
    flags: tuple[str, ...]
    nodelist: str
    tres_gpus: int | None       # gres/gpu in the reservation's TRES (22.05 records none)

    @property
    def maintenance(self) -> bool:
        return "MAINT" in self.flags
