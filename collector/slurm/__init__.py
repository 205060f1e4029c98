"""The doors to Slurm: the only code that runs a Slurm command or talks to slurmrestd
or pyslurm, and the parsers that turn their output into the shared record types.

- `commands`: runs sacct, sacctmgr, squeue, sinfo and sreport (timeouts, a new
  delimiter per sacct run, `SlurmError` naming the command and its words).
- `sacct_parser`, `sacctmgr_parser`, `live_parser`: their output, version quirks
  included, into `records.JobRecord`, accounts, events, reservations, live jobs and
  nodes; every unreadable line is kept as a rejected line with its reason.
- `slurmrestd_source`/`slurmrestd_parser` and `pyslurm_source`: the same records
  from slurmrestd's JSON and from pyslurm's objects.
- `sources`: `[slurm] source` picks one of the three; the collector sees only the
  `JobSource` protocol.

Nothing here reads the store or knows about categories.
"""
