"""The account tree, events and reservations, read from recorded sacctmgr output."""

from pathlib import Path

import pytest

from collector.sacct_parser import FieldError
from collector.sacctmgr_parser import (
    gpu_minutes,
    parse_accounts,
    parse_events,
    parse_reservations,
)

FIX = Path(__file__).parent.parent / "fixtures" / "slurm-22.05.8"


def _read(name: str) -> str:
    return (FIX / name).read_text()


def test_the_tree_has_parents_budgets_users_and_organisations():
    accounts = {a.account: a for a in parse_accounts(_read("sacctmgr-assoc.txt"),
                                                     _read("sacctmgr-account.txt"))}
    assert len(accounts) == 32
    assert accounts["root"].parent == ""
    assert accounts["eu_science"].parent == "eurohpc"
    assert accounts["ehpc_llm01"].parent == "eu_science"
    assert accounts["ehpc_llm01"].grp_gpu_minutes == 9000 * 60
    assert accounts["ehpc_llm01"].users == ("anna", "bram", "chen")
    assert accounts["com_acme"].organisation == "acme analytics sa"
    assert sum(1 for a in accounts.values() if a.grp_gpu_minutes) == 6


def test_events_give_cluster_gpus_and_node_outages():
    events = parse_events(_read("sacctmgr-events.txt"))
    cluster = [e for e in events if e.kind == "cluster"]
    assert [(e.gpus, e.nodes, e.end_s) for e in cluster] == [(16, 4, None)]
    nodes = [e for e in events if e.kind == "node"]
    assert {e.state for e in nodes} == {"DOWN", "DRAIN"}
    assert all(e.gpus == 4 and e.end_s > e.start_s for e in nodes)
    assert "xid 79, draining for RMA" in {e.reason for e in nodes}  # a comma in the reason


def test_a_maintenance_reservation_records_cpus_only_in_22_05():
    (resv,) = parse_reservations(_read("sacctmgr-reservations.txt"))
    assert resv.maintenance and resv.nodelist == "gpu[01-04]"
    assert resv.tres_gpus is None and resv.end_s - resv.start_s == 8 * 3600


def test_a_reason_may_hold_the_delimiter():
    line = "c||n1|2026-10-01T00:00:00|Unknown|Node|DOWN|gres/gpu=4|broken | really"
    assert parse_events(line)[0].reason == "broken | really"


@pytest.mark.parametrize("text", ["c|x", "c||n1|yesterday|Unknown|Node|DOWN|gres/gpu=4|r"])
def test_unreadable_rows_raise_naming_the_command(text):
    with pytest.raises(FieldError, match="show events|Start"):
        parse_events(text)


def test_gpu_minutes_reads_the_untyped_gpu_entry():
    assert gpu_minutes("cpu=100,gres/gpu=540000") == 540000
    assert gpu_minutes("gres/gpu:h100=60") is None
    assert gpu_minutes("") is None
