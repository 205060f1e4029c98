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


def test_budgets_become_gpu_minutes():
    text = accounts.render_load_file("testai")
    assert "Account - 'ehpc_llm01'" in text
    line = next(x for x in text.splitlines() if x.startswith("Account - 'ehpc_llm01'"))
    assert line.endswith(":GrpTRESMins=gres/gpu=540000")  # 9000 GPU-hours
    budgeted = [p for p in accounts.PROJECTS if p.budget_gpu_hours]
    assert text.count("GrpTRESMins=gres/gpu=") == len(budgeted) >= 3


def test_users_default_to_their_first_project_and_get_the_wckeys():
    text = accounts.render_load_file("testai")
    line = next(x for x in text.splitlines() if x.startswith("User - 'anna'"))
    assert "DefaultAccount='ehpc_llm01'" in line
    assert "WCKeys='pretrain,finetune,inference,other'" in line
