"""A real Slurm cluster with GPU accounting on one machine, for the demo and the tests.

munge, MariaDB, slurmdbd, slurmctld and four slurmd nodes (4 x H100 each, declared),
all under one run directory with their own ports; an account tree that matches the
facility's pools and categories; a workload of real jobs; and a backfilled history
that slurmdbd rolls up so that sacct and sreport answer for past months.
"""
