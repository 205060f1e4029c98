"""Where a test cluster lives: its run directory, ports, names and node set.

Everything a cluster writes (config, state, spool, logs, sockets, pid files, the
MariaDB data directory) lives under one run directory, and every daemon listens on
a port derived from one base port. Two clusters with different run directories and
base ports never touch each other, nor a real Slurm on the same machine.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE_PORT = 16800
DEFAULT_CLUSTER_NAME = "testai"
NODE_COUNT = 4
CPUS_PER_NODE = 8
MEMORY_MB_PER_NODE = 64000
GPUS_PER_NODE = 4
GPU_TYPE = "h100"
PARTITION = "gpu"
# Live jobs get ids from here on; backfilled history uses the ids below.
FIRST_LIVE_JOB_ID = 5_000_000


def default_run_dir() -> Path:
    """The run directory: $GPU_USAGE_CLUSTER_DIR, else ./var/testcluster."""
    env = os.environ.get("GPU_USAGE_CLUSTER_DIR")
    return Path(env) if env else Path.cwd() / "var" / "testcluster"


@dataclass(frozen=True)
class Layout:
    """Paths, ports and names of one test cluster."""

    run_dir: Path
    base_port: int = DEFAULT_BASE_PORT
    cluster: str = DEFAULT_CLUSTER_NAME

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir).resolve())
        if not 1024 <= self.base_port <= 65000:
            raise ValueError(f"base port {self.base_port} must be between 1024 and 65000")

    # -- names -------------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return [f"gpu{i:02d}" for i in range(1, NODE_COUNT + 1)]

    @property
    def nodelist(self) -> str:
        return f"gpu[01-{NODE_COUNT:02d}]"

    @property
    def hostname(self) -> str:
        return socket.gethostname().split(".")[0]

    @property
    def db_name(self) -> str:
        return "slurm_acct_db"

    @property
    def db_user(self) -> str:
        return "slurm"

    @property
    def db_password(self) -> str:
        """The slurmdbd database password, made once and kept in the run directory."""
        path = self.etc_dir / "db.password"
        return path.read_text().strip() if path.exists() else ""

    # -- ports -------------------------------------------------------------
    @property
    def mariadb_port(self) -> int:
        return self.base_port + 6

    @property
    def slurmctld_port(self) -> int:
        return self.base_port + 17

    @property
    def slurmdbd_port(self) -> int:
        return self.base_port + 19

    def slurmd_port(self, index: int) -> int:
        """Port of node number `index` (0-based)."""
        return self.base_port + 101 + index

    # -- directories and files ---------------------------------------------
    @property
    def etc_dir(self) -> Path:
        return self.run_dir / "etc"

    @property
    def slurm_conf(self) -> Path:
        return self.etc_dir / "slurm.conf"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "log"

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pid"

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "state"

    @property
    def spool_dir(self) -> Path:
        return self.run_dir / "spool"

    @property
    def dev_dir(self) -> Path:
        return self.run_dir / "dev"

    @property
    def munge_dir(self) -> Path:
        return self.run_dir / "munge"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket"

    @property
    def mariadb_dir(self) -> Path:
        return self.run_dir / "mariadb"

    @property
    def mariadb_socket(self) -> Path:
        return self.run_dir / "mariadb.sock"

    @property
    def jobs_dir(self) -> Path:
        """Working directory and output of the jobs the workload submits."""
        return self.run_dir / "jobs"

    def env(self) -> dict[str, str]:
        """Environment for Slurm client commands (sacct, sbatch, sreport) on this cluster."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.slurm_conf)
        return env
