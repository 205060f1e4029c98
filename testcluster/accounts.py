"""The test cluster's account tree, its Unix users, and how they are put into Slurm.

The tree follows the domain's defaults: two pools (`eurohpc`, `national`) with a
category account each under them, `staff` directly under root, and project accounts
under the categories. Users are real Unix users; some work in more than one
project. Some projects carry a `GrpTRESMins=gres/gpu=...` budget.
"""

from __future__ import annotations

import pwd
import subprocess
from dataclasses import dataclass

from . import releases
from .layout import Layout
from .processes import ClusterError, failed, run_slurm

WCKEYS = ("pretrain", "finetune", "inference", "other")


@dataclass(frozen=True)
class Project:
    name: str
    category: str
    organization: str
    users: tuple[str, ...]
    budget_gpu_hours: int | None = None  # becomes GrpTRESMins=gres/gpu=<minutes>


# category -> pool ("root" for staff, which serves both pools)
CATEGORIES: dict[str, str] = {
    "eu_science": "eurohpc",
    "eu_industry": "eurohpc",
    "commercial": "eurohpc",
    "science": "national",
    "public": "national",
    "startup": "national",
    "sme": "national",
    "industry": "national",
    "staff": "root",
}

PROJECTS: tuple[Project, ...] = (
    Project("ehpc_llm01", "eu_science", "EuroHPC Large Scale: multilingual LLM",
            ("anna", "bram", "chen"), budget_gpu_hours=9000),
    Project("ehpc_bio02", "eu_science", "EuroHPC Fast Lane: protein folding",
            ("daan", "eva")),
    Project("ehpc_clim03", "eu_science", "EuroHPC AI for Science: climate emulator",
            ("fatima", "chen"), budget_gpu_hours=4000),
    Project("ehpc_ind_robo", "eu_industry", "RoboStart GmbH", ("gijs", "hanna")),
    Project("ehpc_ind_med", "eu_industry", "MedScan Oy", ("ivan",), budget_gpu_hours=1500),
    Project("com_acme", "commercial", "ACME Analytics SA", ("jasper", "kim")),
    Project("com_visionx", "commercial", "VisionX BV", ("lars",)),
    Project("nl_uva_nlp", "science", "Universiteit van Amsterdam", ("maria", "noor", "anna"),
            budget_gpu_hours=6000),
    Project("nl_rug_astro", "science", "Rijksuniversiteit Groningen", ("omar", "petra")),
    Project("nl_tud_vision", "science", "TU Delft", ("quinn", "rosa", "noor")),
    Project("nl_umc_med", "science", "UMC Utrecht", ("sven",), budget_gpu_hours=2000),
    Project("nl_knmi_wx", "public", "KNMI", ("tess",)),
    Project("nl_rivm_epi", "public", "RIVM", ("umut", "tess")),
    Project("nl_su_speech", "startup", "SpeechLab BV", ("vera",)),
    Project("nl_su_legal", "startup", "LegalMind BV", ("wout",), budget_gpu_hours=800),
    Project("nl_sme_agri", "sme", "AgriVision BV", ("yara",)),
    Project("nl_sme_logi", "sme", "LogiOpt BV", ("xander", "yara")),
    Project("nl_ind_chip", "industry", "ChipCo NV", ("zoe", "bram")),
    Project("staff_ops", "staff", "Facility operations", ("opsbot",)),
    Project("staff_bench", "staff", "Facility benchmarks", ("opsbot", "kim")),
)


def users() -> list[str]:
    """Every user, in first-seen order."""
    seen: dict[str, None] = {}
    for proj in PROJECTS:
        for user in proj.users:
            seen.setdefault(user)
    return list(seen)


def projects_of(user: str) -> list[str]:
    return [p.name for p in PROJECTS if user in p.users]


def parent_of(account: str) -> str:
    """The parent account in the tree."""
    if account in CATEGORIES:
        return CATEGORIES[account]
    if account in ("eurohpc", "national"):
        return "root"
    for proj in PROJECTS:
        if proj.name == account:
            return proj.category
    raise KeyError(account)


def _sacctmgr(lay: Layout, *args: str) -> str:

    return run_slurm(lay, ["sacctmgr", "-i", *args]).stdout


def ensure_unix_users() -> int:
    """Create the Unix users that do not exist yet; return how many were made."""
    made = 0
    for user in users():
        try:
            pwd.getpwnam(user)
            continue
        except KeyError:
            pass
        proc = subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh",
                               "--user-group", "--comment", "gpu-usage test user", user],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise failed(f"useradd {user}", proc)
        made += 1
    return made


def _account_rows() -> list[tuple[str, str, str]]:
    """(account, parent, organization) in creation order: pools, categories, projects."""
    rows = [("eurohpc", "root", "EuroHPC JU share"), ("national", "root", "Host country share")]
    rows += [(cat, parent, f"category {cat}") for cat, parent in CATEGORIES.items()]
    rows += [(p.name, p.category, p.organization) for p in PROJECTS]
    return rows


def _quote(value: str) -> str:
    if "'" in value:
        raise ValueError(f"cannot put {value!r} into a sacctmgr load file")
    return f"'{value}'"


def render_load_file(cluster: str) -> str:
    """The whole tree in `sacctmgr load` format: one call instead of one per entity."""
    lines = [f"Cluster - {_quote(cluster)}"]
    budgets = {p.name: p.budget_gpu_hours for p in PROJECTS}
    rows = _account_rows()
    for parent in ["root", *(a for a, _, _ in rows)]:
        children = [(a, org) for a, par, org in rows if par == parent]
        members = [u for u in users() if parent in projects_of(u)]
        if not children and not members:
            continue
        lines.append(f"Parent - {_quote(parent)}")
        for account, org in children:
            extra = ""
            if budgets.get(account):
                extra = f":GrpTRESMins=gres/gpu={budgets[account] * 60}"
            lines.append(f"Account - {_quote(account)}:Description={_quote(org)}"
                         f":Organization={_quote(org)}{extra}")
        for user in members:
            lines.append(f"User - {_quote(user)}:DefaultAccount={_quote(projects_of(user)[0])}"
                         f":WCKeys={_quote(','.join(WCKEYS))}:DefaultWCKey='other'")
    return "\n".join(lines) + "\n"


def add_commands(cluster: str, have: set[tuple[str, str]] = frozenset()) -> list[list[str]]:
    """sacctmgr argument lists that add what `have` (user, account) lacks: accounts
    parents first, then each user with all its projects (releases without a usable
    `sacctmgr load`: see releases.LOAD_FILE)."""
    budgets = {p.name: p.budget_gpu_hours for p in PROJECTS}
    commands = []
    for account, parent, org in _account_rows():
        if ("", account) in have:
            continue
        extra = [f"GrpTRESMins=gres/gpu={budgets[account] * 60}"] if budgets.get(account) else []
        commands.append(["add", "account", account, f"cluster={cluster}", f"parent={parent}",
                         f"Description={org}", f"Organization={org}", *extra])
    for user in users():
        projects = [a for a in projects_of(user) if (user, a) not in have]
        if projects:
            commands.append(["add", "user", user, f"cluster={cluster}",
                             f"account={','.join(projects)}",
                             f"DefaultAccount={projects_of(user)[0]}",
                             f"WCKeys={','.join(WCKEYS)}", "DefaultWCKey=other"])
    return commands


def apply(lay: Layout) -> str:
    """Put the tree, the users, their WCKeys and the budgets into slurmdbd (idempotent)."""
    made_unix = ensure_unix_users()
    before = _assoc_pairs(lay)
    if lay.slurm in releases.LOAD_FILE:
        load_file = lay.etc_dir / "accounts.cfg"
        load_file.write_text(render_load_file(lay.cluster))
        _sacctmgr(lay, "load", f"file={load_file}")
    else:
        for command in add_commands(lay.cluster, before):
            _sacctmgr(lay, *command)
    after = _assoc_pairs(lay)
    missing = {(u, a) for u in users() for a in projects_of(u)} - after
    if missing:
        raise ClusterError(f"sacctmgr left out user associations: {sorted(missing)}")
    return (f"{len(PROJECTS)} projects in {len(CATEGORIES)} categories, {len(users())} users "
            f"({len(after - before)} associations and {made_unix} Unix users created now)")


def _assoc_pairs(lay: Layout) -> set[tuple[str, str]]:
    out = _sacctmgr(lay, "-n", "-P", "show", "assoc", f"cluster={lay.cluster}",
                    "format=user,account")
    pairs = set()
    for line in out.splitlines():
        user, _, account = line.partition("|")
        pairs.add((user, account))  # user "" is the account's own association
    return pairs
