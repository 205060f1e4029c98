"""Every command has --help with an example."""

import click
from click.testing import CliRunner

from collector.cli import main


def _commands(group: click.Group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    paths = [()] + [p for p, _ in _commands(main)]
    assert ("cluster", "backfill") in paths and ("report",) in paths and ("collect",) in paths
    for path in paths:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example" in result.output, f"gpu-usage {' '.join(path)} --help has no example"
        assert "gpu-usage" in result.output.split("Example", 1)[1], path


def test_bad_month_is_a_clear_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["cluster", "backfill", "--run-dir", str(tmp_path),
                                       "--start", "2026-13"])
    assert result.exit_code == 2 and "2026-13" in result.output
