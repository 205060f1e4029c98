"""The test cluster's MariaDB: connections and the slurmdbd database user.

Only the test cluster touches slurmdbd's tables directly (to write history); the
collector never does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .layout import Layout
from .processes import ClusterError

if TYPE_CHECKING:
    import pymysql


def connect(lay: Layout, database: str | None = None) -> pymysql.connections.Connection:
    """A root connection over the cluster's own MariaDB socket."""
    try:
        import pymysql
    except ImportError as exc:  # the testcluster extra is not installed
        raise ClusterError(
            "PyMySQL is missing: install the test-cluster extra (pip install -e '.[testcluster]')"
        ) from exc
    return pymysql.connect(unix_socket=str(lay.mariadb_socket), user="root",
                           database=database, autocommit=False, charset="utf8mb4",
                           local_infile=False)


def can_connect(lay: Layout) -> bool:
    if not lay.mariadb_socket.exists():
        return False
    try:
        connect(lay).close()
    except Exception:
        return False
    return True


def ensure_slurm_user(lay: Layout) -> None:
    """Create slurmdbd's database user (idempotent) with the password in the run dir."""
    password = lay.db_password
    conn = connect(lay)
    try:
        with conn.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):
                cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                            (lay.db_user, host, password))
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (lay.db_user, host, password))
                cur.execute(f"GRANT ALL ON `{lay.db_name}`.* TO %s@%s", (lay.db_user, host))
        conn.commit()
    finally:
        conn.close()
