"""A collector-only install stays small, and every dependency is pinned."""

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())


def _names(requirements):
    return {re.split(r"[=<>!~\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_collector_only_install_pulls_no_dashboard_or_database_driver():
    core = _names(PYPROJECT["project"]["dependencies"])
    assert not core & {"streamlit", "pandas", "pymysql"}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "streamlit" in _names(extras["dashboard"])
    assert "pymysql" in _names(extras["testcluster"])


def test_every_dependency_is_pinned():
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    for requirement in requirements:
        if requirement.startswith("gpu-usage["):  # an extra of this project, pinned there
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", requirement), requirement


def test_the_test_cluster_is_not_part_of_the_product():
    """`pip install gpu-usage` installs collector/ and dashboard/; the test cluster runs
    from the repository as `python -m testcluster` and has no console script."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == ["collector*", "dashboard*"]
    assert set(PYPROJECT["project"]["scripts"]) == {"gpu-usage"}
    assert "testcluster" not in PYPROJECT["tool"]["setuptools"].get("package-data", {})
