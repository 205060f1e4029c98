"""The `gpu-usage` command line: a thin layer; each command calls one library function."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpu-usage")
def main() -> None:
    """GPU usage by user category against allocation quotas, from Slurm accounting.

    \b
    Example:
      gpu-usage cluster up          # a local Slurm test cluster with GPU accounting
      gpu-usage cluster status
    """


@main.group()
def config() -> None:
    """The facility policy file (facility.toml).

    \b
    Example:
      gpu-usage config check --config /etc/gpu-usage/facility.toml
    """


@config.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Policy file [default: $GPU_USAGE_CONFIG, else ./facility.toml].")
def check(config_path: Path | None) -> None:
    """Validate the policy file and print the resolved settings.

    Exits 2 and names the file and every wrong key when the file is not valid.

    \b
    Example:
      gpu-usage config check --config testcluster/facility.toml
    """
    from . import config as cfg

    try:
        settings = cfg.load(config_path)
    except cfg.ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    click.echo(f"# {cfg.resolve_path(config_path)}: valid")
    click.echo(json.dumps(settings.model_dump(mode="json"), indent=2))


def _register_cluster() -> None:
    # The test cluster is tooling for demos and tests; it is optional at import time
    # so that a collector-only install keeps a working CLI.
    from testcluster.cli import cluster

    main.add_command(cluster)


_register_cluster()
