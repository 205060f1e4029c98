"""Every command has --help with an example."""

import click
from click.testing import CliRunner

from collector.cli import main
from testcluster.cli import cluster


def _commands(group: click.Group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def _check_help(group: click.Group, prog: str) -> list[tuple[str, ...]]:
    runner = CliRunner()
    paths = [()] + [p for p, _ in _commands(group)]
    for path in paths:
        result = runner.invoke(group, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example" in result.output, f"{prog} {' '.join(path)} --help has no example"
        assert prog in result.output.split("Example", 1)[1], path
    return paths


def test_every_command_has_help_with_an_example():
    paths = _check_help(main, "gpu-usage")
    assert ("report",) in paths and ("collect",) in paths
    assert ("cluster",) not in paths  # the test cluster is not part of the product


def test_every_test_cluster_command_has_help_with_an_example():
    paths = _check_help(cluster, "python -m testcluster")
    assert ("backfill",) in paths and ("up",) in paths


def test_bad_month_is_a_clear_usage_error(tmp_path):
    result = CliRunner().invoke(cluster, ["backfill", "--run-dir", str(tmp_path),
                                       "--start", "2026-13"])
    assert result.exit_code == 2 and "2026-13" in result.output
