"""The map of the code holds: the product (collector/, dashboard/) never imports the
test cluster, the doors and the store never import the engine or what is built on
it, and no module imports itself through others (lazy imports inside functions
count too)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("collector", "dashboard", "testcluster")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != name and not (ROOT / t.replace(".", "/") / "__init__.py"
                                             ).is_file():
                    edges.add(t)
        graph[name] = edges
    return graph


GRAPH = _graph()


def test_the_graph_is_read():
    assert "collector.engine.report" in GRAPH and "collector.cli" in GRAPH
    assert "collector.store.database" in GRAPH["collector.engine.report"] | {
        t for m in GRAPH["collector.engine.report"] for t in GRAPH[m]}


@pytest.mark.parametrize("package", ["collector", "dashboard"])
def test_the_product_never_imports_the_test_cluster(package):
    bad = {m: sorted(t for t in ts if t.startswith("testcluster"))
           for m, ts in GRAPH.items() if m.startswith(package)}
    assert not {m: t for m, t in bad.items() if t}


@pytest.mark.parametrize("layer, forbidden", [
    ("collector.slurm", ("collector.store", "collector.engine", "collector.export",
                         "collector.documents", "collector.collect", "collector.network",
                         "dashboard")),
    # The store reads the rollup's calendar (local days), nothing else of the engine.
    ("collector.store", ("collector.engine.report", "collector.engine.usage",
                         "collector.engine.policy", "collector.engine.capacity",
                         "collector.export", "collector.documents", "collector.collect",
                         "collector.network", "dashboard")),
    ("collector.engine", ("collector.export", "collector.documents", "collector.network",
                          "dashboard")),
    ("collector.documents", ("collector.store", "collector.slurm", "collector.network",
                             "dashboard")),
    # The network of sites: built on the store, the engine and the documents; nothing
    # below it knows it, and it never runs Slurm or a collection.
    ("collector.network", ("collector.slurm", "collector.collect", "collector.export",
                           "dashboard")),

])
def test_layers_import_downwards_only(layer, forbidden):
    bad = {m: sorted(t for t in ts if t.startswith(forbidden))
           for m, ts in GRAPH.items() if m.startswith(layer)}
    assert not {m: t for m, t in bad.items() if t}


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t] if t in path else [m, t])
            elif t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_all_sql_lives_in_the_store():
    """Every query runs in collector/store/: the engine, the exporter and the dashboard
    read through store.reads, never with SQL of their own."""
    outside = [p for pkg in ("collector", "dashboard") for p in (ROOT / pkg).rglob("*.py")
               if "store" not in p.relative_to(ROOT).parts]
    found = [f"{p.relative_to(ROOT)}:{n}" for p in outside
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if ".execute(" in line or "executemany(" in line or "import sqlite3" in line]
    assert not found


def test_a_report_loads_no_parser_and_no_dataclass():
    """`gpu-usage report` starts a process per report and is timed against sreport,
    process start included: the report's modules (engine, store reads, documents) read
    stored records and load no Slurm parser (sacct_parser alone took 15-25 ms), and
    define their records as msgspec Structs, not dataclasses (45 dataclasses were
    40 % of the report's process start: each compiles its methods at import)."""
    import subprocess
    import sys

    code = ("import sys, collector.engine.report, collector.store.reads, "
            "collector.documents.convert, collector.documents.text, collector.cli, "
            "collector.config, collector.engine.usage, collector.store.database; "
            "print(sorted(m for m in sys.modules if m.startswith('collector.') "
            "and m.endswith('_parser') or m == 'dataclasses'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
