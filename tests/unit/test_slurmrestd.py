"""slurmrestd and pyslurm doors, without a cluster: real recorded output of every
Slurm release (tests/fixtures/slurm-*/), and a local stand-in server for the
client's HTTP handling (authentication headers, errors, version discovery)."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from collector.slurm import pyslurm_source, slurmrestd_parser
from collector.slurm.commands import SlurmError
from collector.slurm.sacct_parser import FieldError
from collector.slurm.sacctmgr_parser import parse_accounts
from collector.slurm.slurmrestd_source import RestClient, pick_version
from testcluster.fixtures import read_recorded_sacct

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEASES = sorted(p for p in FIXTURES.glob("slurm-*") if (p / "slurmrestd-workload.json").exists())


def test_fixtures_cover_four_releases():
    versions = {json.loads((p / "manifest.json").read_text())["slurm_version"][:5]
                for p in RELEASES}
    assert versions == {"22.05", "24.11", "25.11", "26.05"}


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)
@pytest.mark.parametrize("window", ["workload", "month-boundary"])
def test_slurmrestd_gives_the_same_records_as_sacct(release, window):
    sacct = read_recorded_sacct(release / f"sacct-{window}.txt", "testai")
    rest = slurmrestd_parser.parse_jobs(
        json.loads((release / f"slurmrestd-{window}.json").read_text()), "testai")
    assert not sacct.rejected and not rest.rejected
    assert len(sacct.records) >= 10
    by_key = {r.key: r for r in rest.records}
    assert by_key.keys() == {r.key for r in sacct.records}
    for record in sacct.records:
        assert by_key[record.key] == record, record.job_id
    assert sorted(rest.pending_arrays) == [] or len(rest.pending_arrays) == len(
        sacct.pending_arrays)


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)
def test_workload_states_arrays_and_requeues_are_read(release):
    manifest = json.loads((release / "manifest.json").read_text())
    rest = slurmrestd_parser.parse_jobs(
        json.loads((release / "slurmrestd-workload.json").read_text()), "testai")
    states = {r.state for r in rest.records}
    assert {"COMPLETED", "FAILED", "CANCELLED", "REQUEUED"} <= states, states
    assert any(r.array_task_id is not None for r in rest.records)
    assert any(r.wckey_is_default for r in rest.records)
    requeued = manifest["workload"]["requeued"]["job_id"]
    runs = [r for r in rest.records if str(r.job_id_raw) == requeued]
    assert len(runs) >= 2 and len({r.submit_s for r in runs}) == len(runs)


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)
def test_the_account_tree_from_slurmrestd_equals_sacctmgr(release):
    rest = slurmrestd_parser.parse_accounts(
        json.loads((release / "slurmrestd-associations.json").read_text()),
        json.loads((release / "slurmrestd-accounts.json").read_text()), "testai")
    sacctmgr, _ = parse_accounts((release / "sacctmgr-assoc.txt").read_text(),
                                 (release / "sacctmgr-account.txt").read_text())
    assert rest == sacctmgr
    assert any(a.grp_gpu_minutes for a in rest)


def test_version_differences_are_read_in_one_place():
    job = {"job_id": 7, "time": {"submission": 100, "start": {"set": True, "infinite": False,
                                                                 "number": 110},
                                 "end": {"set": False, "infinite": False, "number": 0},
                                 "eligible": 100},
           "array": {"job_id": 0, "task_id": {"set": False, "infinite": False, "number": 0}},
           "het": {"job_id": 0, "job_offset": {"set": False, "number": 0}},
           "state": {"current": ["PENDING", "REQUEUED"]}, "nodes": "gpu01",
           "allocation_nodes": 1, "tres": {"allocated": [
               {"type": "gres", "name": "gpu:h100", "count": 2},
               {"type": "gres", "name": "gpu", "count": 2}, {"type": "cpu", "count": 4},
               {"type": "energy", "name": None, "count": None}]},
           "wckey": {"wckey": "other", "flags": ["ASSIGNED_DEFAULT"]}, "cluster": "c"}
    record = slurmrestd_parser.job_record(job)
    assert (record.start_s, record.end_s, record.state) == (110, None, "REQUEUED")
    assert (record.gpus, record.gpu_types, record.cpus) == (2, (("h100", 2),), 4)
    assert record.wckey == "other" and record.wckey_is_default
    assert record.array_task_id is None and record.job_id == "7"
    assert slurmrestd_parser.job_record({**job, "state": {"current": "COMPLETED"}}).state == \
        "COMPLETED"


def test_a_job_that_cannot_be_read_is_rejected_with_its_reason():
    good = json.loads((RELEASES[0] / "slurmrestd-workload.json").read_text())["jobs"][0]
    bad = {**good, "time": {**good["time"], "submission": "yesterday"}}
    result = slurmrestd_parser.parse_jobs({"jobs": [good, bad, "junk"]}, "testai")
    assert len(result.records) == 1
    assert [r.line_no for r in result.rejected] == [2, 3]
    assert "time.submission 'yesterday' is not a number" in result.rejected[0].reason
    assert '"yesterday"' in result.rejected[0].line


def test_the_newest_known_version_is_picked():
    paths = ["/slurmdb/v0.0.40/jobs/", "/slurmdb/v0.0.42/jobs/", "/slurmdb/v0.0.41/jobs/",
             "/slurmdb/v0.0.99/jobs/", "/slurm/v0.0.42/jobs/"]
    assert pick_version(paths) == "v0.0.42"
    with pytest.raises(SlurmError, match="offered v0.0.99"):
        pick_version(["/slurmdb/v0.0.99/jobs"])


def test_http_needs_a_token_and_the_scheme_is_checked():
    with pytest.raises(SlurmError, match="needs a JWT.*scontrol token"):
        RestClient("http://127.0.0.1:1")
    with pytest.raises(SlurmError, match="must start with unix:/"):
        RestClient("ftp://x")


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict]] = []
    spec: ClassVar[dict] = {"paths": {"/slurmdb/v0.0.38/jobs": {"get": {"parameters": [
        {"name": "skip_steps"}, {"name": "start_time"}]}}}}

    def do_GET(self):  # http.server's name
        self.seen.append({"path": self.path, **dict(self.headers)})
        if self.headers.get("X-SLURM-USER-TOKEN") == "expired":
            self._send(401, b"Authentication failure")
        elif self.path.startswith("/openapi/v3"):
            self._send(200, json.dumps(self.spec).encode())
        elif self.path.startswith("/slurmdb/v0.0.38/jobs"):
            body = (RELEASES[0] / "slurmrestd-workload.json").read_bytes()
            self._send(200, body)
        else:
            self._send(404, b"not here")

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    _Handler.seen.clear()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_the_client_sends_the_jwt_and_reads_jobs(server):
    client = RestClient(server, user="collector", token="tok-123")
    payload = client.jobs(1_000_000, 2_000_000, "testai", now=3_000_000)
    assert slurmrestd_parser.parse_jobs(payload, "testai").records
    request = _Handler.seen[-1]
    assert request["X-SLURM-USER-NAME"] == "collector"
    assert request["X-SLURM-USER-TOKEN"] == "tok-123"
    # Relative times (zone-free), the margin, and only the flags the server offers.
    assert "start_time=now-2000120seconds" in request["path"]
    assert "end_time=now-1000000seconds" in request["path"]
    assert "skip_steps=true" in request["path"] and "show_duplicates" not in request["path"]


def test_a_refused_token_is_a_clear_error_that_never_shows_the_token(server):
    with pytest.raises(SlurmError) as err:
        RestClient(server, user="collector", token="expired").discover()
    assert "401" in str(err.value) and "JWT" in str(err.value)
    assert "expired" not in str(err.value).replace("not expired", "")


def test_an_absent_socket_says_so(tmp_path):
    with pytest.raises(SlurmError, match="does not exist: is slurmrestd running"):
        RestClient(f"unix:{tmp_path}/none.sock").discover()


# -- pyslurm ------------------------------------------------------------------

# The mapping of pyslurm 25.11.2's Job objects (and records built from sacct lines in
# that shape) is tested in test_pyslurm_mapping.py; here, the import and version check.


def test_missing_pyslurm_is_explained_with_the_fix(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_pyslurm(name, *args, **kwargs):
        if name == "pyslurm":
            raise ImportError("No module named 'pyslurm'")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_pyslurm)
    monkeypatch.setattr(pyslurm_source, "running_slurm_version", lambda: "22.05")
    with pytest.raises(SlurmError) as err:
        pyslurm_source.load_pyslurm()
    text = str(err.value)
    assert "pyslurm is not installed" in text and "Slurm 22.05" in text
    assert "pip install 'gpu-usage[pyslurm]'" in text and 'source = "sacct"' in text


def test_a_pyslurm_for_another_slurm_is_refused(monkeypatch):
    import sys
    import types
    fake = types.ModuleType("pyslurm")
    fake.__version__ = "25.11.0"
    monkeypatch.setitem(sys.modules, "pyslurm", fake)
    monkeypatch.setattr(pyslurm_source, "running_slurm_version", lambda: "24.11")
    with pytest.raises(SlurmError, match="built for Slurm 25.11, but this cluster runs Slurm "
                                         "24.11"):
        pyslurm_source.load_pyslurm()


def test_steps_are_asked_for_only_when_wanted(server):
    client = RestClient(server, user="collector", token="tok-123")
    client.jobs(1_000_000, 2_000_000, "testai", now=3_000_000, steps=True)
    assert "skip_steps" not in _Handler.seen[-1]["path"]
    client.jobs(1_000_000, 2_000_000, "testai", now=3_000_000)
    assert "skip_steps=true" in _Handler.seen[-1]["path"]


def test_gpu_use_is_read_where_slurmdbd_tracks_gpuutil():
    # /tres as 22.05 (v0.0.38) and 25.11 (v0.0.44) answer it on the test clusters
    gpu = [{"type": "gres", "name": "gpu", "id": 1001, "count": 0}]
    util = [{"type": "gres", "name": "gpuutil", "id": 1004, "count": 0}]
    assert not slurmrestd_parser.tracks_gpu_use({"TRES": gpu})
    assert slurmrestd_parser.tracks_gpu_use({"TRES": gpu + util})
    with pytest.raises(FieldError, match="no TRES list"):
        slurmrestd_parser.tracks_gpu_use({"errors": ["no"]})
