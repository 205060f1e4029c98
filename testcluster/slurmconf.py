"""Renders slurm.conf, slurmdbd.conf and gres.conf for a test cluster (pure text)."""

from __future__ import annotations

from .layout import (
    CPUS_PER_NODE,
    FIRST_LIVE_JOB_ID,
    GPU_TYPE,
    GPUS_PER_NODE,
    MEMORY_MB_PER_NODE,
    PARTITION,
    Layout,
)


def render_slurm_conf(lay: Layout) -> str:
    """slurm.conf: four GPU nodes on this host, each slurmd on its own port."""
    run = lay.run_dir
    first, last = lay.slurmd_port(0), lay.slurmd_port(len(lay.nodes) - 1)
    if set(lay.gpus_per_node) == {GPUS_PER_NODE}:
        nodes = (f"NodeName={lay.nodelist} NodeHostname=localhost NodeAddr=127.0.0.1 "
                 f"Port=[{first}-{last}]")
    else:  # a mixed cluster: each node its own line with its GPUs
        nodes = "\n".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 "
            f"Port={lay.slurmd_port(i)} Gres=gpu:{GPU_TYPE}:{lay.gpus_of(n)}"
            for i, n in enumerate(lay.nodes))
    return f"""\
# Written by `python -m testcluster up`; edits are overwritten.
ClusterName={lay.cluster}
SlurmctldHost={lay.hostname}(127.0.0.1)
SlurmUser=root
SlurmctldPort={lay.slurmctld_port}
AuthType=auth/munge
AuthInfo=socket={lay.munge_socket}
# JWTs for slurmrestd over HTTP (`scontrol token`).
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={lay.jwt_key}
CredType=cred/munge
StateSaveLocation={lay.state_dir}
SlurmdSpoolDir={lay.spool_dir}/slurmd-%n
SlurmctldPidFile={lay.pid_dir}/slurmctld.slurm.pid
SlurmdPidFile={lay.pid_dir}/slurmd-%n.slurm.pid
SlurmctldLogFile={lay.log_dir}/slurmctld.log
SlurmdLogFile={lay.log_dir}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups on this machine: track processes by parent id, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# The nodes declare more CPUs, memory and GPUs than this machine has.
SlurmdParameters=config_overrides
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={lay.slurmdbd_port}
# With slurmdbd, this names the munge socket used to reach it (not a password).
AccountingStoragePass={lay.munge_socket}
AccountingStorageTRES=gres/gpu,gres/gpu:{GPU_TYPE}
AccountingStorageEnforce=associations,limits
TrackWCKey=yes
JobCompType=jobcomp/none
PriorityType=priority/multifactor
MinJobAge=60
FirstJobId={FIRST_LIVE_JOB_ID}
KillWait=5
InactiveLimit=0
Waittime=0
TmpFS={run}/tmp
NodeName=DEFAULT CPUs={CPUS_PER_NODE} RealMemory={MEMORY_MB_PER_NODE} \
Gres=gpu:{GPU_TYPE}:{GPUS_PER_NODE} State=UNKNOWN
{nodes}
PartitionName={PARTITION} Nodes={lay.nodelist} Default=YES MaxTime=7-00:00:00 State=UP
"""


def render_gres_conf(lay: Layout) -> str:
    """gres.conf: four GPUs per node, backed by character devices in the run dir."""
    lines = ["# Written by `python -m testcluster up`.", "AutoDetect=off"]
    for node in lay.nodes:
        files = f"{lay.dev_dir}/{node}/nvidia[0-{lay.gpus_of(node) - 1}]"
        lines.append(f"NodeName={node} Name=gpu Type={GPU_TYPE} File={files}")
    return "\n".join(lines) + "\n"


def render_slurmdbd_conf(lay: Layout) -> str:
    """slurmdbd.conf: slurmdbd reads it from the directory of SLURM_CONF (mode 600)."""
    return f"""\
# Written by `python -m testcluster up`.
AuthType=auth/munge
AuthInfo=socket={lay.munge_socket}
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={lay.jwt_key}
DbdHost=localhost
DbdPort={lay.slurmdbd_port}
SlurmUser=root
PidFile={lay.pid_dir}/slurmdbd.slurm.pid
LogFile={lay.log_dir}/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={lay.mariadb_port}
StorageUser={lay.db_user}
StoragePass={lay.db_password}
StorageLoc={lay.db_name}
"""
