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

from . import releases

DEFAULT_BASE_PORT = 16800
DEFAULT_CLUSTER_NAME = "testai"
NODE_COUNT = 4
CPUS_PER_NODE = 8
MEMORY_MB_PER_NODE = 64000
GPUS_PER_NODE = 4
GPU_TYPE = "h100"
PARTITION = "gpu"
# slurmrestd refuses to run as root or SlurmUser: it runs as this user.
REST_USER = "slurmrest"
# Live jobs get ids from here on; backfilled history uses the ids below (a year of 10
# million jobs fits; Slurm's largest job id is 67,043,328).
FIRST_LIVE_JOB_ID = 20_000_000


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
    release: str | None = None   # Slurm release; None: the one recorded in the run dir
    # GPUs of each node (a mixed cluster: e.g. (4, 4, 8, 8)); None: recorded at `up`, else
    # GPUS_PER_NODE on every node.
    node_gpus: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir).resolve())
        if not 1024 <= self.base_port <= 65000:
            raise ValueError(f"base port {self.base_port} must be between 1024 and 65000")

    # -- names -------------------------------------------------------------
    node_prefix = "gpu"

    @property
    def nodes(self) -> list[str]:
        return [f"{self.node_prefix}{i:02d}" for i in range(1, NODE_COUNT + 1)]

    @property
    def nodelist(self) -> str:
        return f"{self.node_prefix}[01-{NODE_COUNT:02d}]"

    @property
    def first(self) -> Layout:
        """The cluster whose munge, MariaDB and slurmdbd this one uses: itself."""
        return self

    @property
    def second(self) -> SecondLayout:
        """The second cluster of this run directory (`up --second-cluster`): its own
        slurmctld and nodes, accounted by this cluster's slurmdbd."""
        return SecondLayout(self.run_dir, self.base_port, release=self.release)

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

    @property
    def node_gpus_file(self) -> Path:
        return self.run_dir / "node-gpus"

    @property
    def gpus_per_node(self) -> tuple[int, ...]:
        """Each node's GPUs: asked for, else recorded at `up`, else GPUS_PER_NODE each."""
        if self.node_gpus:
            return self.node_gpus
        if self.node_gpus_file.exists():
            return tuple(int(g) for g in self.node_gpus_file.read_text().split(","))
        return (GPUS_PER_NODE,) * NODE_COUNT

    def gpus_of(self, node: str) -> int:
        return self.gpus_per_node[self.nodes.index(node)]

    # -- Slurm release -------------------------------------------------------
    @property
    def release_file(self) -> Path:
        return self.run_dir / "slurm-release"

    @property
    def slurm(self) -> str:
        """The Slurm release this cluster runs: asked for, else recorded at `up`."""
        if self.release:
            return self.release
        if self.release_file.exists():
            return self.release_file.read_text().strip()
        return releases.HOST

    @property
    def root(self) -> Path | None:
        """The chroot its Slurm runs in; None for the host's Slurm."""
        return releases.root_of(self.slurm)

    @property
    def prefix(self) -> Path | None:
        """Where a Slurm built from source is installed; None for packaged releases."""
        return releases.prefix_of(self.slurm)

    @property
    def bin_dir(self) -> Path:
        """Wrappers that run the root's client commands (first on PATH)."""
        return self.run_dir / "bin"

    # -- slurmrestd ----------------------------------------------------------
    @property
    def rest_socket(self) -> Path:
        """slurmrestd with local authentication (the peer's uid)."""
        return self.run_dir / "rest" / "slurmrestd.sock"

    @property
    def rest_port(self) -> int:
        """slurmrestd over HTTP with JWT authentication (127.0.0.1)."""
        return self.base_port + 20

    @property
    def jwt_key(self) -> Path:
        return self.etc_dir / "jwt_hs256.key"

    @property
    def rest_token_file(self) -> Path:
        """A JWT for REST_USER, made at `up` (scontrol token)."""
        return self.etc_dir / "slurmrestd.jwt"

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

    @property
    def ports(self) -> list[int]:
        """Every port the cluster's daemons listen on."""
        return [self.mariadb_port, self.slurmctld_port, self.slurmdbd_port, self.rest_port,
                *(self.slurmd_port(i) for i in range(len(self.nodes)))]

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
        if self.root is not None:
            env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
        elif (prefix := self.prefix) is not None:
            env["PATH"] = f"{prefix}/bin:{prefix}/sbin:{env.get('PATH', '/usr/bin:/bin')}"
            # libslurm and libslurmfull of the prefix, for pyslurm in the collector
            env["LD_LIBRARY_PATH"] = ":".join(filter(None, (
                f"{prefix}/lib", f"{prefix}/lib/slurm", env.get("LD_LIBRARY_PATH"))))
        return env


SECOND_CLUSTER_NAME = "testai2"


@dataclass(frozen=True)
class SecondLayout(Layout):
    """A second cluster in the same run directory, as a facility with two clusters on one
    slurmdbd runs them: its own slurm.conf, slurmctld and four slurmd nodes (b01-b04),
    registered with the first cluster's slurmdbd; munge, MariaDB, slurmdbd and the
    database password are the first one's. Its files live under RUN_DIR/testai2/."""

    cluster: str = SECOND_CLUSTER_NAME
    node_prefix = "b"

    @property
    def home(self) -> Path:
        return self.run_dir / self.cluster

    @property
    def first(self) -> Layout:
        return Layout(self.run_dir, self.base_port, release=self.release)

    @property
    def node_gpus_file(self) -> Path:
        return self.home / "node-gpus"

    @property
    def slurmctld_port(self) -> int:
        return self.base_port + 27

    def slurmd_port(self, index: int) -> int:
        return self.base_port + 111 + index

    @property
    def ports(self) -> list[int]:
        return [self.slurmctld_port, *(self.slurmd_port(i) for i in range(len(self.nodes)))]

    @property
    def db_password(self) -> str:
        return self.first.db_password

    @property
    def jwt_key(self) -> Path:
        return self.first.jwt_key

    @property
    def etc_dir(self) -> Path:
        return self.home / "etc"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    @property
    def pid_dir(self) -> Path:
        return self.home / "pid"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def dev_dir(self) -> Path:
        return self.home / "dev"
