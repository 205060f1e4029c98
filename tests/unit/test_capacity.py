"""Capacity of a period from events and reservations, checked by hand."""

from collector.engine.capacity import capacity, intersect, merge
from collector.slurm.records import Event, Reservation

H = 3600
CLUSTER = Event("cluster", "gpu[01-04]", 0, None, "", "Cluster Registered TRES", 16, 4)


def node(name: str, start: int, end: int | None, gpus: int = 4) -> Event:
    return Event("node", name, start, end, "DOWN", "test", gpus, 1)


def maint(start: int, end: int, nodes: str = "gpu[01-04]", gpus: int | None = None):
    return Reservation(1, "m", start, end, ("MAINT", "SPEC_NODES"), nodes, gpus)


def test_interval_helpers():
    assert merge([(5, 9), (0, 3), (2, 6), (10, 10)]) == [(0, 9)]
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]


def test_nominal_is_gpus_times_the_period_and_follows_capacity_changes():
    assert capacity(0, 10 * H, [CLUSTER], []).nominal_gpu_s == 16 * 10 * H
    grown = [Event("cluster", "", 0, 5 * H, "", "", 16, 4),
             Event("cluster", "", 5 * H, None, "", "", 32, 8)]
    cap = capacity(0, 10 * H, grown, [])
    assert cap.nominal_gpu_s == (16 * 5 + 32 * 5) * H and cap.gpus_now == 32


def test_down_nodes_are_clipped_to_the_period_and_merged():
    events = [CLUSTER, node("gpu01", -2 * H, 2 * H), node("gpu01", H, 3 * H),
              node("gpu02", 9 * H, None)]
    cap = capacity(0, 10 * H, events, [])
    assert cap.down_gpu_s == 4 * (3 * H) + 4 * H
    assert cap.available_gpu_s == 16 * 10 * H - cap.down_gpu_s


def test_maintenance_is_planned_down_and_a_down_node_inside_it_counts_once():
    events = [CLUSTER, node("gpu04", 0, 6 * H)]
    cap = capacity(0, 10 * H, events, [maint(4 * H, 8 * H)])
    assert cap.planned_down_gpu_s == 16 * 4 * H
    assert cap.down_gpu_s == 4 * 4 * H  # 0..4 h; 4..6 h is inside maintenance
    assert cap.available_gpu_s == 16 * 10 * H - 16 * 4 * H - 4 * 4 * H
    # sreport (22.05, reservation TRES without GPUs): only the down node inside is planned.
    assert cap.sreport_down_gpu_s == 4 * 4 * H
    assert cap.sreport_planned_down_gpu_s == 4 * 2 * H


def test_a_maintenance_of_some_nodes_counts_only_their_gpus():
    cap = capacity(0, 10 * H, [CLUSTER], [maint(0, H, "gpu[01-02]")])
    assert cap.planned_down_gpu_s == 2 * 4 * H


def test_a_reservation_without_maint_is_not_downtime():
    plain = Reservation(2, "course", 0, H, ("SPEC_NODES",), "gpu01", None)
    assert capacity(0, 10 * H, [CLUSTER], [plain]).planned_down_gpu_s == 0


def test_a_reservation_that_records_gpus_is_planned_down_in_the_sreport_view_too():
    cap = capacity(0, 10 * H, [CLUSTER], [maint(0, H, gpus=16)])
    assert cap.sreport_planned_down_gpu_s == 16 * H == cap.planned_down_gpu_s


MIXED = Event("cluster", "gpu[01-04]", 0, None, "", "Cluster Registered TRES", 24, 4)


def test_maintenance_on_a_node_without_events_counts_its_inventory_gpus():
    """Two 4-GPU and two 8-GPU nodes: a MAINT reservation on gpu03 (no down event)
    counts its own 8 GPUs from the node inventory, not the average 24 / 4 = 6."""
    inventory = {"gpu01": [(0, 5 * H, 4)], "gpu02": [(0, 5 * H, 4)],
                 "gpu03": [(0, 5 * H, 8)], "gpu04": [(0, 5 * H, 8)]}
    events = [MIXED, node("gpu01", H, 3 * H, gpus=4)]
    cap = capacity(0, 10 * H, events, [maint(2 * H, 6 * H, "gpu03")], inventory)
    assert cap.planned_down_gpu_s == 8 * 4 * H
    assert cap.down_gpu_s == 4 * 2 * H
    assert cap.available_gpu_s == 24 * 10 * H - 8 * 4 * H - 4 * 2 * H
    assert cap.nodes_without_inventory == ()
    # Without the inventory the node falls back to the average, and is named.
    old = capacity(0, 10 * H, events, [maint(2 * H, 6 * H, "gpu03")])
    assert old.planned_down_gpu_s == 6 * 4 * H and old.nodes_without_inventory == ("gpu03",)


def test_the_inventory_keeps_a_nodes_history():
    """gpu03 had 4 GPUs until 5 h, then 8: each maintenance counts what it had then."""
    inventory = {"gpu03": [(0, 4 * H, 4), (5 * H, 9 * H, 8)]}
    early = capacity(0, 10 * H, [MIXED], [maint(H, 2 * H, "gpu03")], inventory)
    late = capacity(0, 10 * H, [MIXED], [maint(6 * H, 7 * H, "gpu03")], inventory)
    assert (early.planned_down_gpu_s, late.planned_down_gpu_s) == (4 * H, 8 * H)
