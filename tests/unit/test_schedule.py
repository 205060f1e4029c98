"""The placement model never overcommits a node and never runs into a blackout."""

from hypothesis import given, settings
from hypothesis import strategies as st

from testcluster.schedule import Cluster, NodeUse


def test_earliest_waits_for_enough_free_units():
    use = NodeUse(capacity=4, start=0)
    use.take(0, 100, 3)
    assert use.earliest(0, 10, 1) == 0      # one unit is still free
    assert use.earliest(0, 10, 2) == 100    # two only after the first job ends
    use.take(0, 50, 1)
    assert use.earliest(0, 10, 1) == 50


def test_earliest_uses_a_hole_that_is_long_enough():
    use = NodeUse(capacity=4, start=0)
    use.take(100, 50, 4)                    # full from 100 to 150
    assert use.earliest(0, 100, 4) == 0     # fits before
    assert use.earliest(0, 101, 4) == 150   # does not fit before
    assert use.earliest(120, 10, 1) == 150


def test_whole_node_jobs_start_together_on_free_nodes():
    cluster = Cluster(["a", "b", "c"], capacity=4, start=0)
    cluster.place_on_one_node(0, 500, 1)    # lands on a
    start, nodes = cluster.place_whole_nodes(0, 100, 2)
    assert (start, nodes) == (0, ["b", "c"])
    start, nodes = cluster.place_whole_nodes(0, 100, 3)
    assert (start, sorted(nodes)) == (500, ["a", "b", "c"])


def test_blocked_window_is_avoided():
    cluster = Cluster(["a"], capacity=4, start=0)
    cluster.block("a", 50, 80)
    assert cluster.place_on_one_node(0, 60, 1) == (80, ["a"])
    assert cluster.place_on_one_node(0, 40, 1) == (0, ["a"])


jobs = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(1, 300), st.sampled_from([1, 2, 3, 4, 8])),
    min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(jobs=jobs, outage=st.tuples(st.integers(0, 1000), st.integers(1, 200)))
def test_random_placements_respect_capacity_and_outages(jobs, outage):
    nodes = ["n1", "n2"]
    cluster = Cluster(nodes, capacity=4, start=0)
    cluster.block("n2", outage[0], outage[0] + outage[1])
    placed = []
    for eligible, duration, units in sorted(jobs):
        cluster.forget_before(eligible)
        if units > 4:
            start, on = cluster.place_whole_nodes(eligible, duration, units // 4)
        else:
            start, on = cluster.place_on_one_node(eligible, duration, units)
        assert start >= eligible
        per_node = 4 if units > 4 else units
        placed += [(n, start, start + duration, per_node) for n in on]
    for node in nodes:
        points = sorted({t for n, s, e, _ in placed if n == node for t in (s, e)})
        for t in points:
            in_use = sum(u for n, s, e, u in placed if n == node and s <= t < e)
            assert in_use <= 4
    for n, s, e, _ in placed:
        if n == "n2":
            assert e <= outage[0] or s >= outage[0] + outage[1]
