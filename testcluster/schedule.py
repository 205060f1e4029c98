"""A small placement model that keeps a generated history physically possible.

Each node keeps, as a step function over time, how many of its `capacity` units
(GPUs, or CPU slots for CPU-only jobs) are in use. Outages and maintenance windows
are entered as full use. A job is placed at the earliest time at or after its
eligible time at which its units stay free for its whole run, on one node or on
enough whole nodes: like conservative backfill, later jobs may use holes before
earlier placements. The history therefore never allocates more GPUs than exist,
and sreport's cluster utilisation stays consistent with the job records.

The caller places jobs in order of eligible time and calls `forget_before` with
the current one: what lies before it can no longer be used, and dropping it keeps
each node's step function short.
"""

from __future__ import annotations

import bisect


class NodeUse:
    """Units in use on one node: use[i] holds on [times[i], times[i + 1])."""

    def __init__(self, capacity: int, start: int) -> None:
        self.capacity = capacity
        self.times = [start]
        self.use = [0]

    def _split(self, t: int) -> int:
        """Make t a segment boundary; return its index."""
        i = bisect.bisect_right(self.times, t) - 1
        if i < 0:
            raise ValueError(f"time {t} lies before this node's history")
        if self.times[i] == t:
            return i
        self.times.insert(i + 1, t)
        self.use.insert(i + 1, self.use[i])
        return i + 1

    def earliest(self, t: int, duration: int, units: int) -> int:
        """The earliest time >= t at which `units` stay free for `duration` seconds."""
        limit = self.capacity - units
        times, use = self.times, self.use
        last = len(times) - 1
        j = max(0, bisect.bisect_right(times, t) - 1)
        candidate = t
        # The last segment always drains (use 0), so the loop always returns.
        while j < last:
            if use[j] > limit:
                candidate = max(candidate, times[j + 1])
            elif times[j + 1] >= candidate + duration:
                return candidate
            j += 1
        return candidate

    def take(self, t: int, duration: int, units: int) -> None:
        i, k = self._split(t), self._split(t + duration)
        for j in range(i, k):
            self.use[j] += units
            if self.use[j] > self.capacity:
                raise RuntimeError(f"overcommitted at {self.times[j]}")

    def forget_before(self, t: int) -> None:
        """Drop segments that end at or before t (nothing can be placed there any more)."""
        i = bisect.bisect_right(self.times, t) - 1
        if i > 64:
            del self.times[:i]
            del self.use[:i]


class Cluster:
    """Placement over several nodes with the same capacity."""

    def __init__(self, nodes: list[str], capacity: int, start: int) -> None:
        self.nodes = {n: NodeUse(capacity, start) for n in nodes}
        self.capacity = capacity

    def block(self, node: str, start: int, end: int) -> None:
        """Nothing runs on `node` in [start, end) (outage, maintenance)."""
        use = self.nodes[node]
        i, k = use._split(start), use._split(end)
        for j in range(i, k):
            use.use[j] = self.capacity

    def forget_before(self, t: int) -> None:
        for use in self.nodes.values():
            use.forget_before(t)

    def place_on_one_node(self, eligible: int, duration: int, units: int) -> tuple[int, list[str]]:
        best = min((use.earliest(eligible, duration, units), name)
                   for name, use in self.nodes.items())
        self.nodes[best[1]].take(best[0], duration, units)
        return best[0], [best[1]]

    def place_whole_nodes(self, eligible: int, duration: int, count: int) -> tuple[int, list[str]]:
        cap = self.capacity
        ranked = sorted((use.earliest(eligible, duration, cap), name)
                        for name, use in self.nodes.items())
        chosen = sorted(name for _, name in ranked[:count])
        t = max(t for t, _ in ranked[:count])
        while True:  # move to a time at which every chosen node is free
            moved = max(self.nodes[n].earliest(t, duration, cap) for n in chosen)
            if moved == t:
                break
            t = moved
        for name in chosen:
            self.nodes[name].take(t, duration, cap)
        return t, chosen
