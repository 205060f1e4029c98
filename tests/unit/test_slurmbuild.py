"""Slurm built from source for the test cluster: the tarball is verified against its
checksum before anything is built, the build is cached under a path keyed by that
checksum, and a missing or different tarball is refused with where to look."""

import hashlib

import pytest

from testcluster import slurmbuild
from testcluster.errors import ClusterError


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    folder = tmp_path / "third_party"
    folder.mkdir()
    data = b"not really slurm"
    (folder / "slurm-25.11.7.tar.xz").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (folder / "SHA256SUMS").write_text(f"{digest}  slurm-25.11.7.tar.xz\n")
    monkeypatch.setenv("GPU_USAGE_THIRD_PARTY", str(folder))
    monkeypatch.setenv("GPU_USAGE_SLURM_BUILDS", str(tmp_path / "builds"))
    return folder, digest


def test_the_source_is_verified_and_the_prefix_is_keyed_by_its_checksum(third_party):
    folder, digest = third_party
    tarball, got = slurmbuild.source("25.11")
    assert tarball == folder / "slurm-25.11.7.tar.xz" and got == digest
    prefix = slurmbuild.prefix_of("25.11", digest)
    assert prefix.name.startswith(f"slurm-25.11-{digest[:16]}-")
    assert slurmbuild.built_prefix("25.11") is None          # not built yet
    prefix.mkdir(parents=True)
    assert slurmbuild.built_prefix("25.11") is None          # no marker: incomplete
    (prefix / slurmbuild.MARKER).write_text(digest)
    assert slurmbuild.built_prefix("25.11") == prefix       # cached: no second build
    assert slurmbuild.ensure_built("25.11", say=lambda _: None) == prefix


def test_a_tarball_that_differs_from_its_checksum_is_refused(third_party):
    folder, digest = third_party
    (folder / "slurm-25.11.7.tar.xz").write_bytes(b"tampered")
    with pytest.raises(ClusterError, match=f"SHA256SUMS says {digest}: refusing"):
        slurmbuild.source("25.11")
    assert slurmbuild.built_prefix("25.11") is None


def test_a_missing_source_names_where_it_was_looked_for(third_party):
    folder, _ = third_party
    (folder / "slurm-25.11.7.tar.xz").unlink()
    with pytest.raises(ClusterError, match="GPU_USAGE_THIRD_PARTY"):
        slurmbuild.source("25.11")
    with pytest.raises(ClusterError, match="no source build for Slurm 24.11"):
        slurmbuild.source("24.11")
