"""`python -m testcluster ...` (from the repository's root): the local Slurm test
cluster's own command, outside the installed product."""

from testcluster.cli import cluster

cluster(prog_name="python -m testcluster")
