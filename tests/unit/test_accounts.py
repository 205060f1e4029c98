"""The account tree and its sacctmgr load file."""


import re

from testcluster import accounts


def test_every_project_sits_under_a_category_under_a_pool():
    for project in accounts.PROJECTS:
        category = accounts.parent_of(project.name)
        assert category in accounts.CATEGORIES
        pool = accounts.parent_of(category)
        assert pool in ("eurohpc", "national", "root")


def test_tree_has_several_projects_per_category_and_shared_users():
    per_category = {c: 0 for c in accounts.CATEGORIES}
    for project in accounts.PROJECTS:
        per_category[project.category] += 1
    assert all(n >= 1 for n in per_category.values())
    assert sum(n >= 2 for n in per_category.values()) >= 6
    assert any(len(accounts.projects_of(u)) > 1 for u in accounts.users())


def test_accounts_are_added_parents_first_then_users_in_all_their_projects():
    commands = accounts.add_commands("testai")
    created = {"root"}
    for cmd in commands:
        kind, name, opts = cmd[1], cmd[2], dict(o.split("=", 1) for o in cmd[3:])
        assert opts["cluster"] == "testai"
        if kind == "account":
            assert opts["parent"] in created and opts["parent"] == accounts.parent_of(name)
            created.add(name)
        else:
            assert kind == "user"
            assert opts["account"].split(",") == accounts.projects_of(name)
            assert all(a in created for a in opts["account"].split(","))


def test_budgets_become_gpu_minutes():
    commands = accounts.add_commands("testai")
    llm = next(c for c in commands if c[1:3] == ["account", "ehpc_llm01"])
    assert llm[-1] == "GrpTRESMins=gres/gpu=540000"  # 9000 GPU-hours
    budgeted = [p for p in accounts.PROJECTS if p.budget_gpu_hours]
    assert sum(c[-1].startswith("GrpTRESMins=gres/gpu=") for c in commands) == len(budgeted) >= 3


def test_users_default_to_their_first_project_and_get_the_wckeys():
    anna = next(c for c in accounts.add_commands("testai") if c[1:3] == ["user", "anna"])
    assert "DefaultAccount=ehpc_llm01" in anna and "account=ehpc_llm01,nl_uva_nlp" in anna
    assert "WCKeys=pretrain,finetune,inference,other" in anna


def test_only_what_is_missing_is_added():
    have = {("", a) for a, _, _ in accounts._account_rows()}
    have |= {(u, a) for u in accounts.users() for a in accounts.projects_of(u)}
    assert accounts.add_commands("testai", have) == []
    have.discard(("anna", "nl_uva_nlp"))
    assert [c[1:3] for c in accounts.add_commands("testai", have)] == [["user", "anna"]]
def test_load_file_declares_each_parent_before_its_children():
    text = accounts.render_load_file("testai")
    created = {"root"}
    parent = None
    for line in text.splitlines()[1:]:
        kind, _, rest = line.partition(" - ")
        name = re.match(r"'([^']*)'", rest).group(1)
        if kind == "Parent":
            assert name in created, name
            parent = name
        elif kind == "Account":
            assert accounts.parent_of(name) == parent
            created.add(name)
        else:
            assert kind == "User" and parent in accounts.projects_of(name)


def test_budgets_become_gpu_minutes_in_the_load_file():
    text = accounts.render_load_file("testai")
    assert "Account - 'ehpc_llm01'" in text
    line = next(x for x in text.splitlines() if x.startswith("Account - 'ehpc_llm01'"))
    assert line.endswith(":GrpTRESMins=gres/gpu=540000")  # 9000 GPU-hours
    budgeted = [p for p in accounts.PROJECTS if p.budget_gpu_hours]
    assert text.count("GrpTRESMins=gres/gpu=") == len(budgeted) >= 3


