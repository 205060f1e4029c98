"""Rendered Slurm configuration: GPUs accounted, everything under the run dir, own ports."""

import re
from pathlib import Path

from testcluster.layout import Layout
from testcluster.slurmconf import render_gres_conf, render_slurm_conf, render_slurmdbd_conf


def _ports(text: str) -> set[int]:
    ports = {int(p) for p in re.findall(r"Port=(\d+)", text)}
    for first, last in re.findall(r"Port=\[(\d+)-(\d+)\]", text):
        ports |= set(range(int(first), int(last) + 1))
    return ports


def test_gpus_are_declared_typed_and_accounted(tmp_path: Path):
    conf = render_slurm_conf(Layout(tmp_path))
    assert "AccountingStorageTRES=gres/gpu,gres/gpu:h100" in conf
    assert "Gres=gpu:h100:4" in conf and "NodeName=gpu[01-04]" in conf
    assert "TrackWCKey=yes" in conf
    gres = render_gres_conf(Layout(tmp_path))
    assert gres.count("Name=gpu Type=h100") == 4 and "AutoDetect=off" in gres


def test_every_path_lies_under_the_run_dir(tmp_path: Path):
    lay = Layout(tmp_path / "run")
    for text in (render_slurm_conf(lay), render_slurmdbd_conf(lay), render_gres_conf(lay)):
        for path in re.findall(r"=(/[^\s,\]]+)", text):
            assert path.startswith(str(lay.run_dir)), path


def test_two_clusters_with_different_base_ports_share_no_port(tmp_path: Path):
    a, b = Layout(tmp_path / "a", 16800), Layout(tmp_path / "b", 26800)
    ports_a = _ports(render_slurm_conf(a) + render_slurmdbd_conf(a)) | {a.mariadb_port}
    ports_b = _ports(render_slurm_conf(b) + render_slurmdbd_conf(b)) | {b.mariadb_port}
    assert len(ports_a) == 7  # slurmctld, slurmdbd, MariaDB, four slurmd
    assert not ports_a & ports_b


def test_munge_socket_is_the_cluster_own_for_daemons_and_slurmdbd_clients(tmp_path: Path):
    lay = Layout(tmp_path)
    conf = render_slurm_conf(lay)
    assert f"AuthInfo=socket={lay.munge_socket}" in conf
    # sacctmgr/sacct reach slurmdbd through the socket named here, not AuthInfo.
    assert f"AccountingStoragePass={lay.munge_socket}" in conf
