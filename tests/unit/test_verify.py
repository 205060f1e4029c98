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
