"""The `gpu-usage` command line: a thin layer; each command calls one library function."""

from __future__ import annotations

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


def _register_cluster() -> None:
    # The test cluster is tooling for demos and tests; it is optional at import time
    # so that a collector-only install keeps a working CLI.
    from testcluster.cli import cluster

    main.add_command(cluster)


_register_cluster()
