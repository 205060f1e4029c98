"""Checking the store against sreport: the parser on sreport's real format, the
comparison with parents including their children, and the CLI on a stand-in sreport."""

from __future__ import annotations

import pytest

from collector.engine.verify import SreportFormatError, compare, parse_sreport_accounts

# `sreport -n -P -t minutes -T gres/gpu cluster AccountUtilizationByUser
# format=Cluster,Account,Login,Used` (Slurm 22.05)
SREPORT = """\
testai|root||4380
testai|eurohpc||1440
testai|eu_science||960
testai|ehpc_a||960
testai|ehpc_a|anna|960
testai|commercial||480
testai|com_acme||480
testai|com_acme|kim|480
testai|national||2760
testai|science||2760
testai|nl_x||2760
testai|nl_x|maria|2760
testai|stray||180
"""
PARENTS = {"root": "", "eurohpc": "root", "eu_science": "eurohpc", "ehpc_a": "eu_science",
           "commercial": "eurohpc", "com_acme": "commercial", "national": "root",
           "science": "national", "nl_x": "science", "stray": "root"}
H = 3600


def test_parser_keeps_account_lines_only():
    minutes = parse_sreport_accounts(SREPORT)
    assert minutes["root"] == 4380 and minutes["nl_x"] == 2760 and len(minutes) == 10


def test_a_line_that_is_not_sreport_output_is_named():
    with pytest.raises(SreportFormatError, match="line 2"):
        parse_sreport_accounts("testai|root||1\ngarbage\n")


def test_parents_include_their_children_and_equal_figures_agree():
    ours = {"ehpc_a": 16 * H, "com_acme": 8 * H, "nl_x": 46 * H, "stray": 3 * H}
    check = compare("2026-10", ours, PARENTS, parse_sreport_accounts(SREPORT), 0)
    assert check.differing == () and check.total() == (4380, 4380)
    assert {a.account: a.ours_minutes for a in check.accounts}["eurohpc"] == 1440


def test_a_difference_beyond_a_minute_is_reported_per_account():
    ours = {"ehpc_a": 16 * H, "com_acme": 8 * H, "nl_x": 46 * H + 150, "stray": 3 * H}
    check = compare("2026-10", ours, PARENTS, parse_sreport_accounts(SREPORT), 0)
    assert {a.account for a in check.differing} == {"nl_x", "science", "national", "root"}
    assert check.max_difference == 2.5


def test_an_account_only_one_side_knows_is_compared_too():
    ours = {"ehpc_a": 16 * H, "com_acme": 8 * H, "nl_x": 46 * H, "stray": 3 * H, "new": 60}
    check = compare("2026-10", ours, PARENTS, parse_sreport_accounts(SREPORT), 0)
    assert [(a.account, a.sreport_minutes) for a in check.differing] == []
    assert ("new", 1.0, 0) in [(a.account, a.ours_minutes, a.sreport_minutes)
                               for a in check.accounts]


# `sacct -a -X -D -n -P --format=Account,Start,End,ConsumedEnergyRaw,AllocTRES` (TZ=UTC)
SACCT_ENERGY = """\
nl_x|2026-10-31T22:00:00|2026-11-01T02:00:00|14400000|billing=1,cpu=1,energy=14400000,gres/gpu=1,node=1
nl_x|2026-11-02T00:00:00|2026-11-02T01:00:00|3600000|billing=1,cpu=1,energy=3600000,gres/gpu=1,node=1
ehpc_a|2026-11-03T00:00:00|2026-11-03T01:00:00||billing=1,cpu=1,gres/gpu=1,node=1
ehpc_a|2026-11-03T00:00:00|2026-11-03T01:00:00|360000|billing=1,cpu=1,energy=360000,node=1
ehpc_a|2026-11-04T00:00:00|Unknown||billing=1,cpu=1,gres/gpu=4,node=1
"""
NOV = (1_793_491_200, 1_796_083_200)  # 2026-11-01 .. 2026-12-01 UTC


def test_sacct_energy_is_split_by_time_and_skips_what_has_none():
    from collector.slurm.sreport_parser import parse_sacct_energy
    joules, jobs = parse_sacct_energy(SACCT_ENERGY, *NOV)
    # half of the first job's run is in November; no energy, no GPUs, still running: none
    assert joules == {"nl_x": 7_200_000 + 3_600_000} and jobs == 2
    with pytest.raises(SreportFormatError, match="line 1: ConsumedEnergyRaw"):
        parse_sacct_energy("nl_x|2026-11-02T00:00:00|2026-11-02T01:00:00|12 J|gres/gpu=1\n",
                           *NOV)
    with pytest.raises(SreportFormatError, match="expected 5 fields"):
        parse_sacct_energy("nl_x|2026-11-02T00:00:00\n", *NOV)


def test_energy_equal_to_sacct_and_sreports_overcount_named():
    from collector.engine.verify import SREPORT_ENERGY_CAUSE, check_energy
    check = check_energy("2026-11", {"nl_x": 10_800_000, "ehpc_a": 0},
                         ({"nl_x": 10_800_000.0}, 2), {"root": 10_800_000 * 3})
    assert check.recorded and check.differing == () and check.total_j == 10_800_000
    assert check.sreport_note() == f"3.0 times this; {SREPORT_ENERGY_CAUSE}"
    same = check_energy("2026-11", {"nl_x": 10_800_000}, ({"nl_x": 10_800_000.0}, 2),
                        {"root": 10_800_000})
    assert same.sreport_note() == "equal"
    off = check_energy("2026-11", {"nl_x": 10_800_000}, ({"nl_x": 9_000_000.0}, 2),
                       {"root": 5})
    assert off.differing == (("nl_x", 10_800_000, 9_000_000.0),)
    assert off.sreport_note() == "lower than this, with no known cause"
    assert not check_energy("2026-11", {"nl_x": 0}, ({}, 0), {"root": 0}).recorded
