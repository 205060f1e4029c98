"""Figures no user can forge, on the real test cluster: a user submits jobs whose job
names and WCKeys hold newlines followed by a whole sacct line (another user's project
with 100,000 GPUs), `|`, control characters, line breaks other than \\n, and long text.
Slurm stores them and prints them raw (sacct with its default `|` shows the forged
record, checked here, so the attack is real); through every door the collector
stores each hostile job once, under its real owner, with its real GPUs, and no
forged record. (Against sreport: the backfilled history carries a forged-line name,
testcluster/history.FORGED_NAME, and test_collector checks every account.)"""

from __future__ import annotations

import sqlite3
import time

import pytest

from collector import clock
from collector.slurm.sacct_parser import parse_sacct
from collector.store.database import db_path
from testcluster import workload
from testcluster.history import FORGED_NAME

from .conftest import slurm
from .test_collector import gpu_usage, write_policy

pytestmark = pytest.mark.integration

OWNER, ACCOUNT = "vera", "nl_su_speech"
FORGED_LINE = FORGED_NAME.split("\n", 1)[1]   # anna / ehpc_llm01 / gres/gpu=100000
HOSTILE = {
    "name-forges": ("--gpus=1", "-J", f"evil\n{FORGED_LINE}"),
    "wckey-forges": ("--gpus=1", f"--wckey=fine\n{FORGED_LINE}\ntune", "-J", "w"),
    "pipes-and-controls": ("--gpus=1", "-J", "nul\x01like\x1f\x7f|pipe||\u2028\x1c\r\x0b"),
    "long": ("--gpus=1", "-J", "L" * 250),
}


@pytest.fixture(scope="module")
def hostile(lay):
    since = int(clock.now()) - 60
    ids = {label: workload.submit(lay, workload.Submission(label, OWNER, ACCOUNT, args,
                                                           command="sleep 1"))
           for label, args in HOSTILE.items()}
    workload.wait_idle(lay, timeout_s=120)
    deadline = time.monotonic() + 120
    while True:   # until slurmdbd has them all, whole (eligible time filled in)
        out = slurm(lay, "sacct", "-a", "-X", "-n", "-o", "JobIDRaw,State", "-S",
                    time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since)), "-E", "now")
        done = {ln.split()[0] for ln in out.splitlines() if "COMPLETED" in ln}
        if done >= set(ids.values()):
            return since, ids
        assert time.monotonic() < deadline, f"jobs {ids} never reached sacct: {out}"
        time.sleep(1)


def test_the_attack_is_real_sacct_prints_the_forged_line(lay, hostile):
    _, ids = hostile
    text = slurm(lay, "sacct", "-a", "-X", "-P", "-n", "-j", ",".join(ids.values()),
                 "-o", "JobIDRaw,JobID,Cluster,User,Account,Partition,QOS,WCKey,State,"
                       "Submit,Eligible,Start,End,AllocTRES,NNodes,AllocCPUS,NodeList,JobName")
    naive = parse_sacct(text, "testai")   # what the door read before: the default `|`
    assert any(r.user == "anna" and r.gpus == 100000 for r in naive.records)


@pytest.mark.parametrize("source", ["sacct", "slurmrestd"])
def test_each_hostile_job_is_stored_once_under_its_owner(lay, hostile, tmp_path, source):
    since, ids = hostile
    policy = write_policy(tmp_path, since - since % 86400)
    text = policy.read_text().replace('source = "sacct"', f'source = "{source}"')
    if source == "slurmrestd":
        text += f'\n[slurmrestd]\nurl = "unix:{lay.rest_socket}"\n'
    policy.write_text(text)
    gpu_usage(lay, "collect", "--config", str(policy))
    with sqlite3.connect(f"file:{db_path(tmp_path / 'store')}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT job_id_raw, user, account, gpus, name, wckey FROM jobs "
                            "WHERE job_id_raw >= ?", (min(int(i) for i in ids.values()),)
                            ).fetchall()
        forged = conn.execute("SELECT count(*) FROM jobs WHERE gpus >= 100000 OR "
                              "job_id_raw = 9").fetchone()[0]
        rejected = conn.execute("SELECT count(*) FROM rejected_lines").fetchone()[0]
    assert forged == 0 and rejected == 0
    by_id = {r[0]: r for r in rows}
    for label, job_id in ids.items():
        assert [r[0] for r in rows].count(int(job_id)) == 1, label
        _, user, account, gpus, name, wckey = by_id[int(job_id)]
        assert (user, account, gpus) == (OWNER, ACCOUNT, 1), label
    assert by_id[int(ids["name-forges"])][4] == f"evil\n{FORGED_LINE}"
    # Slurm keeps WCKeys in lower case.
    assert by_id[int(ids["wckey-forges"])][5] == f"fine\n{FORGED_LINE}\ntune".lower()
