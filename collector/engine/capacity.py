"""GPU capacity of a period from Slurm's events and reservations (pure; no I/O).

- Nominal: GPUs registered with the cluster (its TRES events) x time.
- Planned down: GPUs of the nodes in a MAINT reservation x its time.
- Down: GPUs of nodes with a node event (down, drain, fail) x time, outside
  maintenance (a node down during maintenance counts once, as planned down).
- Available = nominal - down - planned down.

A node's GPUs: for its down time, those its event recorded (what sreport counts);
for maintenance, those the node inventory saw (each collection records every node's
GPUs from sinfo), else those of its own events, else, for a node never seen, the
cluster's GPUs spread evenly over its nodes (such nodes are named in
`Capacity.nodes_without_inventory`, shown in the report's data quality).

sreport's own split differs for maintenance: Slurm 22.05 stores a MAINT
reservation with CPUs only (`tres=1=32`), so `sreport -T gres/gpu cluster
utilization` shows the reservation's GPUs as idle and only the down nodes
inside it as planned down. `sreport_*` reproduce that view so that the report
can show the difference (and the tests can prove both).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import msgspec

from collector.slurm.records import Event, Reservation

Interval = tuple[int, int]


class Capacity(msgspec.Struct, frozen=True):
    nominal_gpu_s: int
    down_gpu_s: int
    planned_down_gpu_s: int
    sreport_down_gpu_s: int
    sreport_planned_down_gpu_s: int
    gpus_now: int
    nodes_without_inventory: tuple[str, ...] = ()

    @property
    def available_gpu_s(self) -> int:
        return self.nominal_gpu_s - self.down_gpu_s - self.planned_down_gpu_s

    def __add__(self, other: Capacity) -> Capacity:
        """Two clusters' capacities as one facility's (their nodes named per cluster)."""
        return Capacity(self.nominal_gpu_s + other.nominal_gpu_s,
                        self.down_gpu_s + other.down_gpu_s,
                        self.planned_down_gpu_s + other.planned_down_gpu_s,
                        self.sreport_down_gpu_s + other.sreport_down_gpu_s,
                        self.sreport_planned_down_gpu_s + other.sreport_planned_down_gpu_s,
                        self.gpus_now + other.gpus_now,
                        self.nodes_without_inventory + other.nodes_without_inventory)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[list[int]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def length(intervals: Iterable[Interval]) -> int:
    return sum(e - s for s, e in intervals)


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def expand_nodes(nodelist: str) -> list[str]:
    from ClusterShell.NodeSet import NodeSet, NodeSetParseError  # only when there is one

    try:
        return list(NodeSet(nodelist)) if nodelist else []
    except NodeSetParseError:
        return []


Inventory = Mapping[str, list[tuple[int, int | None, int]]]  # node -> [(from, to, GPUs)]


def inventory_gpus(seen: list[tuple[int, int | None, int]], start_s: int) -> int:
    """The node's GPUs at `start_s`: the newest inventory entry from before it, else the
    first one seen after it."""
    before = [g for first, _, g in seen if first <= start_s]
    return before[-1] if before else seen[0][2]


def capacity(start_s: int, end_s: int, events: list[Event],
             reservations: list[Reservation], inventory: Inventory | None = None
             ) -> Capacity:
    """The capacity split of [start, end); open events and reservations end at end_s."""
    period = [(start_s, end_s)]

    def clip(s: int, e: int | None) -> list[Interval]:
        return intersect([(s, end_s if e is None else e)], period)

    clusters = [e for e in events if e.kind == "cluster"]
    nominal = sum(e.gpus * length(clip(e.start_s, e.end_s)) for e in clusters)
    current = max(clusters, key=lambda e: e.start_s) if clusters else None
    gpus_now = current.gpus if current else 0
    # GPUs per node for down time: from its own events, else the cluster's average.
    per_node = {e.node: e.gpus for e in events if e.kind == "node"}
    fallback = (current.gpus // current.nodes) if current and current.nodes else 0

    maint: dict[str, list[Interval]] = defaultdict(list)
    sreport_resv_gpu_s = 0
    for r in reservations:
        if not r.maintenance:
            continue
        nodes = expand_nodes(r.nodelist) or (expand_nodes(current.node) if current else [])
        for node in nodes:
            maint[node].extend(clip(r.start_s, r.end_s))
        sreport_resv_gpu_s += (r.tres_gpus or 0) * length(clip(r.start_s, r.end_s))
    maint = {n: merge(iv) for n, iv in maint.items()}
    inventory = inventory or {}
    planned = 0
    unseen = set()
    for node, ivs in maint.items():
        for s, e in ivs:
            if node in inventory:
                gpus = inventory_gpus(inventory[node], s)
            elif node in per_node:
                gpus = per_node[node]
            else:
                gpus = fallback
                unseen.add(node)
            planned += gpus * (e - s)

    down_by_node: dict[str, list[Interval]] = defaultdict(list)
    for e in events:
        if e.kind == "node":
            down_by_node[e.node].extend(clip(e.start_s, e.end_s))
    down = down_in_maint = 0
    for node, ivs in down_by_node.items():
        merged = merge(ivs)
        inside = length(intersect(merged, maint.get(node, [])))
        gpus = per_node.get(node, fallback)
        down += gpus * (length(merged) - inside)
        down_in_maint += gpus * inside
    return Capacity(nominal, down, planned, down, sreport_resv_gpu_s + down_in_maint, gpus_now,
                    tuple(sorted(unseen)))
