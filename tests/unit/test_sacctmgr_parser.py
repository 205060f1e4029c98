"""The account tree, events and reservations, read from the sacctmgr output recorded on
every Slurm release (one folder per release under tests/fixtures/)."""

from pathlib import Path

import pytest

from collector.slurm.live_parser import parse_sinfo
from collector.slurm.sacct_parser import FieldError
from collector.slurm.sacctmgr_parser import (
    gpu_minutes,
    parse_accounts,
    parse_events,
    parse_reservations,
)

RELEASES = sorted((Path(__file__).parent.parent / "fixtures").glob("slurm-*"))
per_release = pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)


def _read(release: Path, name: str) -> str:
    return (release / name).read_text()


@per_release
def test_the_tree_has_parents_budgets_users_and_organisations(release):
    tree, rejected = parse_accounts(_read(release, "sacctmgr-assoc.txt"),
                                    _read(release, "sacctmgr-account.txt"))
    assert rejected == []
    accounts = {a.account: a for a in tree}
    listed = {line.split("|", 1)[0]
              for line in _read(release, "sacctmgr-account.txt").splitlines()}
    assert accounts.keys() == listed and len(accounts) > 30
    # The tree the test cluster creates (testcluster/accounts.py) on every release.
    assert accounts["root"].parent == ""
    assert accounts["eu_science"].parent == "eurohpc"
    assert accounts["ehpc_llm01"].parent == "eu_science"
    assert accounts["ehpc_llm01"].grp_gpu_minutes == 9000 * 60
    assert accounts["ehpc_llm01"].users == ("anna", "bram", "chen")
    assert accounts["com_acme"].organisation == "acme analytics sa"
    # Account rows (no user) whose GrpTRESMins has an untyped gres/gpu entry.
    budgeted = {line.split("|")[0] for line in _read(release, "sacctmgr-assoc.txt").splitlines()
                if line.split("|")[1] == "" and "gres/gpu=" in line}
    assert budgeted and {a for a, acc in accounts.items() if acc.grp_gpu_minutes} == budgeted


@per_release
def test_events_give_cluster_gpus_and_node_outages(release):
    events = parse_events(_read(release, "sacctmgr-events.txt"))
    cluster = [e for e in events if e.kind == "cluster"]
    # The registered TRES equal the nodes and GPUs sinfo shows on the same cluster.
    nodes, _ = parse_sinfo(_read(release, "sinfo-live.txt"))
    assert [(e.gpus, e.nodes, e.end_s) for e in cluster] == [
        (sum(n.gpus for n in nodes), len(nodes), None)]
    outages = [e for e in events if e.kind == "node"]
    assert {e.state for e in outages} == {"DOWN", "DRAIN"}
    assert all(e.gpus == 4 and e.end_s > e.start_s for e in outages)
    assert "xid 79, draining for RMA" in {e.reason for e in outages}  # a comma in the reason


@per_release
def test_a_maintenance_reservation_records_cpus_only(release):
    """Its TRES are `cpu=32` on every recorded release (22.05, 24.11 and 26.05 alike)."""
    (resv,) = parse_reservations(_read(release, "sacctmgr-reservations.txt"))
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


def test_line_breaks_other_than_newline_in_an_organisation_stay_text():
    from collector.slurm.sacctmgr_parser import parse_accounts
    assoc = "root|||\nnl_x||root|\n"
    account = "root|root|root\nnl_x|Org\u2028with\rbreaks\x1c|desc\u2029x\n"
    acc = {a.account: a for a in parse_accounts(assoc, account)[0]}["nl_x"]
    assert acc.organisation == "Org\u2028with\rbreaks\x1c" and acc.description == "desc\u2029x"


ASSOC = "root|||\nphys||root|\nacme||root|\nzeta||root|\n"
CLEAN = "acme|Acme BV|industry\nphys|Physics|science\nroot|root|root\nzeta|Zeta|startup\n"


def _texts(account_text):
    tree, rejected = parse_accounts(ASSOC, account_text)
    return {a.account: (a.organisation, a.description) for a in tree}, rejected


def test_clean_account_texts_are_read_whole():
    texts, rejected = _texts(CLEAN)
    assert rejected == [] and texts["phys"] == ("Physics", "science")


@pytest.mark.parametrize("written,unreadable", [
    # A coordinator's description forging another account's row.
    ("industry\nphys|Forged|hijack", {"acme", "phys"}),
    ("industry\nphys|Forged|hijack\nmore", {"acme", "phys"}),
    # A line break alone, or a blank line, then more text.
    ("two\nlines", {"acme"}),
    ("blank\n\nline", {"acme"}),
    # A | inside: the split is ambiguous (organisation "Acme", description "BV|x"?).
    ("a|b", {"acme"}),
])
def test_free_text_that_could_move_to_another_account_is_left_out_and_rejected(written,
                                                                                unreadable):
    texts, rejected = _texts(CLEAN.replace("|industry\n", f"|{written}\n"))
    assert {a for a, t in texts.items() if t == ("", "")} == unreadable
    assert texts["root"] == ("root", "root") and texts["zeta"] == ("Zeta", "startup")
    assert rejected and all("sacctmgr show account" in r.reason for r in rejected)
    assert all(t != ("Forged", "hijack") for t in texts.values())


@pytest.mark.parametrize("forged_in", ["acme", "root"])
def test_a_forged_row_for_an_account_whose_own_text_breaks_is_not_taken(forged_in):
    """phys's organisation holds a line break, so its real first line has two fields
    only; a row forged for phys in another account's description (before or after
    phys's real row) must still count as phys's second (found by a review)."""
    text = CLEAN.replace("phys|Physics|science", "phys|Dept\nUniv|science")
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{forged_in}|"))
    text = text.replace(line, f"{line}\nphys|Forged|hijack")
    texts, rejected = _texts(text)
    assert texts["phys"] == ("", "") and texts[forged_in] == ("", "")
    assert texts["zeta"] == ("Zeta", "startup") and rejected


def test_an_organisation_with_a_bar_is_not_read_as_a_description():
    texts, rejected = _texts(CLEAN.replace("acme|Acme BV|", "acme|Acme|BV|"))
    assert texts["acme"] == ("", "") and [r.line_no for r in rejected] == [1]
