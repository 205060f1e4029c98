"""Accounts to categories and pools; allocations from the policy and from Slurm."""

from datetime import date

from collector.config import Settings, parse
from collector.engine.policy import allocations, ancestors, descendants, map_accounts

PARENTS = {"root": "", "eurohpc": "root", "eu_science": "eurohpc", "ehpc_a": "eu_science",
           "ehpc_a_sub": "ehpc_a", "national": "root", "science": "national",
           "nl_x": "science", "stray": "root"}


def settings(**extra) -> Settings:
    raw = {"facility": {"name": "F"}, "slurm": {"cluster": "c"},
           "pools": [{"name": "eurohpc", "share": 0.5}, {"name": "national", "share": 0.5}],
           "categories": [
               {"name": "eu_science", "pool": "eurohpc", "quota_share": 0.3,
                "accounts_under": ["eu_science"]},
               {"name": "science", "pool": "national", "quota_share": 0.3,
                "accounts_under": ["science"]},
               {"name": "commercial", "pool": "eurohpc", "quota_share": 0.1,
                "account_pattern": "^com_"},
               {"name": "staff", "pool": "national", "quota_share": 0.05,
                "accounts": ["ops", "nl_x"]}]}
    raw.update(extra)
    return parse(raw)


def test_tree_walks():
    assert ancestors("ehpc_a_sub", PARENTS) == ["ehpc_a_sub", "ehpc_a", "eu_science",
                                                "eurohpc", "root"]
    assert descendants("eu_science", PARENTS) == {"eu_science", "ehpc_a", "ehpc_a_sub"}
    assert ancestors("a", {"a": "b", "b": "a"}) == ["a", "b"]  # a cycle ends the walk


def test_accounts_map_by_subtree_list_and_pattern():
    m = map_accounts(settings(), PARENTS, {"com_acme", "ops", "gone_account"})
    assert m.category_of("ehpc_a_sub") == "eu_science"
    assert m.category_of("eu_science") == "eu_science"  # the category account itself
    assert m.category_of("com_acme") == "commercial"
    assert m.category_of("ops") == "staff"
    assert m.pool_of("com_acme") == "eurohpc"
    assert m.category_of("stray") is None and m.category_of("gone_account") is None
    assert m.category_of("eurohpc") is None


def test_an_account_in_two_categories_is_reported_and_takes_the_first():
    m = map_accounts(settings(), PARENTS, [])
    assert m.ambiguous == {"nl_x": ("science", "staff")}
    assert m.category_of("nl_x") == "science"


def test_allocations_come_from_the_policy_then_from_slurm_budgets():
    s = settings(allocations=[{"account": "ehpc_a", "gpu_hours": 100, "start": "2026-01-01",
                               "end": "2026-06-30", "access_mode": "Fast Lane",
                               "country": "NL"}])
    allocs = allocations(s, {"ehpc_a": 6000 * 60, "nl_x": 120, "stray": None},
                         {"nl_x": "uni"})
    assert [(a.account, a.source, a.granted_gpu_hours) for a in allocs] == [
        ("ehpc_a", "policy", 100), ("nl_x", "GrpTRESMins", 2)]
    assert allocs[0].slurm_gpu_hours == 6000 and allocs[0].start == date(2026, 1, 1)
    assert allocs[1].start is None and allocs[1].organisation == "uni"
