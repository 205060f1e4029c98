"""squeue and sinfo text to the live view (pure; no I/O): jobs holding or waiting for
GPUs now, and the GPUs of each node with its state.

The field lists are `SQUEUE_FIELDS` and `SINFO_FIELDS`, the same tuples the door
(sacct_source.py) asks for, each field printed unpadded and ended by `|`
(`-O Field:|`). Neither holds free text (no job names), so a `|` never appears
inside a field. A line that cannot be read is rejected with its reason, never
dropped silently.

Slurm 22.05 facts handled here:
- `tres-alloc` of a pending job holds what it asked for (gres/gpu included,
  without the typed entry); of a running job, what it holds, totalled over nodes.
- sinfo prints a node once per partition: nodes are counted once, with all their
  partitions; the default partition has a `*` suffix.
- sinfo's long state carries flags as suffixes: `*` not responding, `~` powered
  off, `#` powering up, `!` powering down, `%` powering off, `$` maintenance, `@`
  reboot pending, `^` rebooting, `-` planned.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from collector.slurm.sacct_parser import FieldError, Rejected, parse_tres

SQUEUE_FIELDS = ("JobID", "State", "Account", "Partition", "tres-alloc", "NumNodes")
SINFO_FIELDS = ("NodeList", "Partition", "StateLong", "Gres")

# States in which a job holds its GPUs (squeue --states asks for these and PENDING).
HOLDING_STATES = ("RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED")
SQUEUE_STATES = (*HOLDING_STATES, "PENDING")

# A node in one of these (base) states offers no GPUs now. A draining node still runs
# its jobs and counts as available until it is drained; a `planned` node (22.05: kept
# free by the backfill scheduler for a pending job) is up and counts as available.
UNAVAILABLE_STATES = ("down", "drained", "fail", "failing", "maint", "inval", "future",
                      "unknown", "reboot_issued", "powered_down", "power_down")
_STATE_FLAGS = "*~#!%$@^-"
_GRES_GPU = re.compile(r"^gpu(?::(?P<type>[^:(]+))?:(?P<count>\d+)")


class LiveJob(NamedTuple):
    job_id: str
    state: str
    account: str
    partition: str
    gpus: int
    gpu_type: str          # "" if untyped or mixed
    nodes: int

    @property
    def holding(self) -> bool:
        return self.state in HOLDING_STATES


class NodeGpus(NamedTuple):
    node: str
    state: str             # sinfo's long state, flags included (e.g. "down*")
    gpus: int
    gpu_type: str
    partitions: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        """True if the node can run jobs now (it may be busy)."""
        if self.state.endswith("*") or self.state == "reboot^":  # not responding, rebooting
            return False
        base = self.state.rstrip(_STATE_FLAGS).split("+")
        return not any(part in UNAVAILABLE_STATES for part in base)


def _fields(line: str, count: int) -> list[str]:
    parts = line.split("|")
    if parts and parts[-1] == "":
        parts.pop()  # the last field's own "|"
    if len(parts) != count:
        raise FieldError(f"{len(parts)} fields, expected {count}")
    return parts


def parse_squeue(text: str) -> tuple[list[LiveJob], list[Rejected]]:
    """Jobs from `squeue --noheader -O ...` with `SQUEUE_FIELDS`."""
    jobs, rejected = [], []
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            job_id, state, account, partition, tres, nodes = _fields(line, len(SQUEUE_FIELDS))
            gpus, types = parse_tres(tres if tres not in ("", "N/A", "(null)") else "")
            if not (nodes.isascii() and nodes.isdigit()):
                raise FieldError(f"NumNodes {nodes!r} is not a number")
            jobs.append(LiveJob(job_id, state.split(" ")[0], account, partition, gpus,
                                types[0][0] if len(types) == 1 else "", int(nodes)))
        except FieldError as exc:
            rejected.append(Rejected(no, str(exc), line))
    return jobs, rejected


def parse_gres_gpus(gres: str) -> tuple[int, str]:
    """GPUs and their type from sinfo's Gres, e.g. `gpu:h100:4(S:0-1)` -> (4, "h100");
    several entries add up (the type is "" when they differ)."""
    count, types = 0, set()
    for item in gres.split(","):
        m = _GRES_GPU.match(item.strip())
        if m:
            count += int(m["count"])
            types.add(m["type"] or "")
    return count, (types.pop() if len(types) == 1 else "")


def parse_sinfo(text: str) -> tuple[list[NodeGpus], list[Rejected]]:
    """Nodes from `sinfo --noheader --Node -O ...` with `SINFO_FIELDS`, each once."""
    nodes: dict[str, NodeGpus] = {}
    rejected = []
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            name, partition, state, gres = _fields(line, len(SINFO_FIELDS))
        except FieldError as exc:
            rejected.append(Rejected(no, str(exc), line))
            continue
        partition = partition.rstrip("*")
        if name in nodes:
            seen = nodes[name]
            nodes[name] = seen._replace(partitions=(*seen.partitions, partition))
            continue
        gpus, gpu_type = parse_gres_gpus(gres)
        nodes[name] = NodeGpus(name, state, gpus, gpu_type, (partition,))
    return list(nodes.values()), rejected
