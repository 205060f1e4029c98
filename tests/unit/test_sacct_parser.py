"""sacct text to job records, on output recorded from the real test cluster of every
Slurm release (`python -m testcluster record-fixtures`, one folder per release under
tests/fixtures/) and on hostile and malformed input."""

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.slurm.commands import new_delimiter
from collector.slurm.sacct_parser import SACCT_FIELDS, SacctReader, merge, parse_line, parse_sacct
from testcluster.fixtures import read_recorded_sacct, recorded_delimiter

RELEASES = sorted((Path(__file__).parents[1] / "fixtures").glob("slurm-*"))
DEFAULT_WCKEY = "other"  # the users' default WCKey on the test cluster (testcluster/accounts)


def _manifest(release):
    return json.loads((release / "manifest.json").read_text())


def _load(release, name):
    result = read_recorded_sacct(release / name)
    assert result.rejected == [] and result.pending_arrays == []
    return result.records


@pytest.fixture(scope="module", params=RELEASES, ids=lambda p: p.name)
def release(request):
    return request.param


@pytest.fixture(scope="module")
def manifest(release):
    return _manifest(release)


@pytest.fixture(scope="module")
def workload(release, manifest):
    """The records of each labelled submission (the manifest names its job id)."""
    records = _load(release, "sacct-workload.txt")
    by_label = {}
    for label, sub in manifest["workload"].items():
        base = sub["job_id"]
        by_label[label] = [r for r in records if r.job_id.split("_")[0].split("+")[0] == base]
    return by_label


def test_every_release_is_recorded():
    assert {_manifest(r)["slurm_version"][:5] for r in RELEASES} == {"22.05", "24.11", "25.11",
                                                                    "26.05"}


def test_manifest_matches_the_parser_field_list(manifest):
    assert tuple(manifest["fields"]) == SACCT_FIELDS


# GPUs and nodes follow from each submission's sbatch options (testcluster/workload.py),
# the same on every release.
@pytest.mark.parametrize("label,gpus,nodes", [
    ("single-gpu", 1, 1),
    ("gres-whole-node", 4, 1),
    ("multi-node", 8, 2),
    ("gpus-per-task", 2, 1),
    ("cpu-only", 0, 1),
])
def test_gpus_nodes_and_wckeys(workload, manifest, label, gpus, nodes):
    [rec] = workload[label]
    sub = manifest["workload"][label]
    assert (rec.user, rec.account, rec.cluster) == (sub["user"], sub["account"], "testai")
    assert (rec.gpus, rec.nodes) == (gpus, nodes)
    assert (rec.wckey, rec.wckey_is_default) == (sub["wckey"] or DEFAULT_WCKEY,
                                                 sub["wckey"] is None)
    assert rec.gpu_type == ("h100" if gpus else None)
    assert rec.state == "COMPLETED" and rec.started and rec.start_s <= rec.end_s


def test_array_tasks_are_separate_allocations_of_one_array(workload, manifest):
    tasks = workload["array"]
    array_id = int(manifest["workload"]["array"]["job_id"])
    assert sorted(r.array_task_id for r in tasks) == [0, 1, 2, 3]
    assert {r.array_job_id for r in tasks} == {array_id}
    assert len({r.job_id_raw for r in tasks}) == 4
    # The array's own id is carried by its last task.
    assert next(r for r in tasks if r.array_task_id == 3).job_id_raw == array_id


def test_het_job_components_and_requeued_runs(workload, manifest):
    het = sorted(workload["hetjob"], key=lambda r: r.het_job_offset)
    assert [(r.het_job_offset, r.gpus) for r in het] == [(0, 1), (1, 0)]
    assert {r.het_job_id for r in het} == {int(manifest["workload"]["hetjob"]["job_id"])}
    runs = sorted(workload["requeued"], key=lambda r: r.submit_s)
    assert [r.state for r in runs] == ["REQUEUED", "COMPLETED"]
    assert runs[0].job_id_raw == runs[1].job_id_raw and runs[0].key != runs[1].key
    assert runs[1].submit_s == runs[0].end_s


def test_states_with_suffix_and_failures(workload):
    [cancelled] = workload["cancel-running"]
    assert cancelled.state == "CANCELLED" and cancelled.gpus == 1 and cancelled.started
    [failed] = workload["failing"]
    assert failed.state == "FAILED"
    # Its --begin lies after the recorded window: sacct selects by eligible time.
    assert workload["cancel-pending"] == []


def test_job_name_with_delimiter_quotes_and_markup_is_kept_whole(workload):
    [rec] = workload["hostile-name"]
    assert rec.name == "eval|`quoted` <b>bold</b> ünï"
    assert rec.gpus == 1 and rec.state == "COMPLETED"


def _slurmrestd_jobs(release, window):
    """The same window's jobs as slurmrestd recorded them: the expected counts below."""
    return json.loads((release / f"slurmrestd-{window}.json").read_text())["jobs"]


def test_history_across_a_month_boundary(release, manifest):
    records = _load(release, "sacct-month-boundary.txt")
    spec = manifest["history"]
    boundary = manifest["files"]["sacct-month-boundary.txt"]["window"][0] + 3600
    assert spec["months"] >= 2
    assert any(r.start_s < boundary < r.end_s for r in records if r.started)
    assert any(r.nodes > 1 and r.gpus == 4 * r.nodes for r in records)
    rest = _slurmrestd_jobs(release, "month-boundary")
    assert sum("|" in r.name for r in records) == sum("|" in j["name"] for j in rest)
    never = [r for r in records if not r.started]
    # sacct prints NNodes 1 and AllocCPUS 1 for these; they allocated nothing.
    assert len(never) == sum(j["nodes"] == "None assigned" for j in rest)
    assert all((r.gpus, r.nodes, r.cpus, r.nodelist) == (0, 0, 0, "") for r in never)
    assert all(r.state == "CANCELLED" and r.start_s == r.end_s for r in never)
    assert Counter(r.gpu_type for r in records if r.gpus) == {"h100": sum(1 for r in records
                                                                           if r.gpus)}


def test_the_recordings_together_hold_every_month_boundary_case():
    """The 24.11 and 26.05 histories are smaller (3,000 jobs): their boundary windows hold
    no job that never ran and no name with `|`; the 22.05 one does."""
    records = [r for rel in RELEASES for r in _load(rel, "sacct-month-boundary.txt")]
    assert any(not r.started for r in records) and any("|" in r.name for r in records)


LINE = ("42|42|testai|anna|ehpc_llm01|gpu|normal|pretrain|COMPLETED|2026-10-01T00:00:00|"
        "2026-10-01T00:00:00|2026-10-01T01:00:00|2026-10-01T02:00:00|"
        "billing=4,cpu=4,gres/gpu:a100=2,gres/gpu:h100=2,gres/gpu=4,node=1|1|4|gpu01|n")


def test_a_mixed_gpu_allocation_has_no_single_type():
    rec = parse_line(LINE)
    assert rec.gpus == 4 and rec.gpu_types == (("a100", 2), ("h100", 2)) and rec.gpu_type is None


def test_an_unknown_state_is_kept_and_marked():
    rec = parse_line(LINE.replace("|COMPLETED|", "|WARPED_BY_26.05|"))
    assert rec.state == "WARPED_BY_26.05" and not rec.state_known


@pytest.mark.parametrize("bad,reason", [
    ("|".join(LINE.split("|")[:5]), "fields"),
    (LINE.replace("2026-10-01T01:00:00", "yesterday"), "Start"),
    (LINE.replace("42|42|", "42|4x2|"), "JobID"),
    (LINE.replace("gres/gpu=4", "gres/gpu=four"), "gres/gpu"),
    (LINE.replace("|1|4|gpu01|", "|one|4|gpu01|"), "NNodes"),
    (LINE.replace("|1|4|gpu01|", "|\u00b2|4|gpu01|"), "NNodes"),  # isdigit, not a count
    (LINE.replace("42|42|", "\u0664\u0662|42|"), "JobIDRaw"),  # Arabic-Indic 42
    # Numbers past MAX_DIGITS: Python refuses to convert 4,301 digits and the store an
    # id past 2**63 (both crashed a collection).
    (LINE.replace("42|42|", "42|42_" + "9" * 5000 + "|"), "JobID"),
    (LINE.replace("42|42|", "42|42_99999999999999999999|"), "JobID"),
    (LINE.replace("42|42|", "42|42+99999999999999999999|"), "JobID"),
    (LINE.replace("42|42|", "9" * 5000 + "|" + "9" * 5000 + "|"), "JobID"),
    (LINE.replace("2026-10-01T00:00:00|2026-10-01T00:00:00|", "Unknown|Unknown|"), "Submit"),
])
def test_malformed_lines_are_rejected_with_the_reason_and_others_still_read(bad, reason):
    result = parse_sacct("\n".join([LINE, bad, LINE.replace("42|42", "43|43")]))
    assert [r.job_id_raw for r in result.records] == [42, 43]
    [rejected] = result.rejected
    assert rejected.line_no == 2 and reason in rejected.reason and rejected.line == bad


def test_a_pending_array_not_split_yet_is_counted_not_dropped():
    line = LINE.replace("42|42|", "50|50_[0-9%2]|").replace("2026-10-01T01:00:00", "Unknown")
    result = parse_sacct(line)
    assert result.records == [] and result.pending_arrays == ["50_[0-9%2]"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=200),
    st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=30),
             min_size=len(SACCT_FIELDS) - 2, max_size=len(SACCT_FIELDS) + 2).map("|".join),
    st.just(LINE)), max_size=20))
def test_any_input_is_read_or_rejected_never_crashes_or_vanishes(lines):
    """Every line is read into exactly one outcome (a record, a rejection or a pending
    array), and there are never more outcomes than lines that hold a delimiter (+1)."""
    text = "\n".join(lines)
    result = parse_sacct(text)
    split = text.split("\n")
    if split and split[-1] == "":
        split.pop()
    outcomes = len(result.records) + len(result.rejected) + len(result.pending_arrays)
    assert result.lines == len(split)
    assert outcomes <= sum("|" in x for x in split) + 1
    assert (outcomes == 0) == all(not x.strip() for x in split)
    texts = [r.line for r in result.rejected]
    assert sum(x.count("\n") + 1 for x in texts) <= len(split)


# -- forged records: free text that any user writes -----------------------------------

def printed(line: str, delimiter: str) -> str:
    """A recorded `|` line as sacct prints it with --delimiter (JobName keeps its `|`)."""
    return delimiter.join(line.split("|", len(SACCT_FIELDS) - 1))


FORGED = LINE.replace("|anna|ehpc_llm01|", "|mallory|ehpc_clim03|").replace(
    "gres/gpu=4", "gres/gpu=100000")


@pytest.mark.parametrize("breaker", ["\n", "\r\n", "\r", "\u2028", "\u2029", "\x1c", "\x1e",
                                     "\x85", "\x0b", "\x0c"])
@pytest.mark.parametrize("field", ["JobName", "WCKey"])
def test_a_forged_record_in_a_name_or_wckey_stays_text_of_its_job(breaker, field):
    delimiter = new_delimiter()
    i = SACCT_FIELDS.index(field)
    fields = LINE.split("|", len(SACCT_FIELDS) - 1)
    fields[i] = f"evil{breaker}{FORGED}{breaker}{FORGED}"
    other = printed(LINE.replace("42|42", "43|43"), delimiter)
    text = delimiter.join(fields) + "\n" + other + "\n"
    result = parse_sacct(text, "testai", delimiter)
    # A newline in the WCKey spreads the record's delimiters over lines: still one record.
    assert [(r.job_id_raw, r.user, r.account, r.gpus) for r in result.records] == [
        (42, "anna", "ehpc_llm01", 4), (43, "anna", "ehpc_llm01", 4)]
    assert result.rejected == []
    got = result.records[0].name if field == "JobName" else result.records[0].wckey
    assert got == fields[i]
    assert all(r.user != "mallory" and r.gpus < 100000 for r in result.records)
    assert result.lines == text.count("\n")


def test_each_run_draws_another_delimiter_that_no_newline_can_split():
    seen = {new_delimiter() for _ in range(1000)}
    assert len(seen) == 1000
    assert all("\n" not in d and "|" not in d and len(d) >= 12 for d in seen)


def test_rejected_records_are_kept_with_the_default_delimiter():
    delimiter = new_delimiter()
    bad = printed(LINE.replace("gres/gpu=4", "gres/gpu=four"), delimiter)
    [rejected] = parse_sacct(bad + "\n", "testai", delimiter).rejected
    assert delimiter not in rejected.line and rejected.line == LINE.replace("gres/gpu=4",
                                                                            "gres/gpu=four")


# -- the column path reads as parse_line does ------------------------------------------

def _variant(**fields) -> str:
    parts = LINE.split("|", len(SACCT_FIELDS) - 1)
    for name, value in fields.items():
        parts[SACCT_FIELDS.index(name)] = value
    return "|".join(parts)


ENERGY = "billing=4,cpu=4,energy=3600,gres/gpu:h100=4,gres/gpu=4,node=1"
# Lines (one record each, or not a record) of every shape the two paths treat apart.
SHAPES = [
    LINE,
    _variant(JobID="42_7"), _variant(JobID="42+1"), _variant(JobID="42_[0-9%2]"),
    _variant(JobID="4x2"), _variant(JobID="43"), _variant(JobIDRaw="\u0664\u0662"),
    _variant(JobIDRaw="1234567890123456"), _variant(JobIDRaw=""),
    _variant(JobID="42_" + "9" * 5000), _variant(JobID="42_1234567890123456"),
    _variant(JobID="42+1234567890123456"), _variant(JobID="123456789012345_1"),
    _variant(JobIDRaw="9" * 5000, JobID="9" * 5000),
    _variant(Start="Unknown", End="Unknown"), _variant(End="Unknown"), _variant(Eligible="None"),
    _variant(Submit="Unknown"), _variant(Submit=""), _variant(Start="2026-13-01T00:00:00"),
    _variant(Start="2026-10-01T24:00:00"), _variant(End="2026-10-01T02:00:60"),
    _variant(End="2026-10-01 02:00:00"), _variant(End="2026-10-01T02:00:0"),
    _variant(End="2026-10-01T02:00:00Z"), _variant(End="2026-10-01T00:30:00"),
    _variant(End="2026-10-01T02:60:00"), _variant(End="2026-10-01T2:00:00"),
    _variant(Start="2026-10-01T01:59:59"), _variant(Eligible="2026-10-01T00:00:00 "),
    _variant(AllocTRES=ENERGY), _variant(AllocTRES="energy=7," + ENERGY[:-20]),
    _variant(AllocTRES=ENERGY.replace("node=1", "energy=9")),
    _variant(AllocTRES=ENERGY.replace("cpu=4,energy", "cpu=4,xenergy")),
    _variant(AllocTRES=ENERGY.replace("energy=3600", "energy=36.5")),
    _variant(AllocTRES=ENERGY + ",energy=1"), _variant(AllocTRES="gres/gpu=four"),
    _variant(AllocTRES="gres/gpu=\u00b2"), _variant(AllocTRES=""), _variant(AllocTRES="cpu=1"),
    _variant(State=""), _variant(State="CANCELLED by 1007"), _variant(State=" x"),
    _variant(NNodes="one"), _variant(NNodes="\u00b2"), _variant(AllocCPUS=""),
    _variant(NodeList="None assigned", NNodes="1", AllocCPUS="1"),
    _variant(NodeList="None assigned", NNodes="x", AllocCPUS=""), _variant(NodeList=""),
    _variant(WCKey="*other"), _variant(WCKey="*"), _variant(Cluster="elsewhere"),
    _variant(JobName="two\nlines"), _variant(JobName="blank\n\nline\n"),
    _variant(JobName="a|b|c"), _variant(WCKey="w\nk"),
    "", "   ", "garbage", "|".join(LINE.split("|")[:5]), LINE + "\nrest of a name",
]


def _outcome(result):
    return result.records, result.rejected, result.pending_arrays, result.lines


def _one_at_a_time(text, cluster, delimiter):
    reader = SacctReader(cluster, delimiter)
    reader._min_run = math.inf  # every record through parse_line: the reference
    return merge(reader.feed(text), reader.finish())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SHAPES), st.integers(1, 60)), max_size=40),
       st.lists(st.integers(1, 4000), max_size=6), st.booleans(), st.booleans())
def test_records_read_a_column_at_a_time_are_parse_lines_records(lines, cuts, drawn,
                                                                  cluster):
    """Any mix of records (array tasks, odd times, TRES, states, names that held
    newlines, broken lines), fed in any pieces, reads to the same records, rejections,
    pending arrays and line count as reading each record alone with parse_line."""
    delimiter = new_delimiter() if drawn else "|"
    text = "\n".join(printed(line.replace("42|42|", f"{n}|{n}|", 1), delimiter)
                     for line, n in lines) + "\n"
    want = _one_at_a_time(text, "testai" if cluster else None, delimiter)
    reader = SacctReader("testai" if cluster else None, delimiter)
    reader._min_run = 1  # the column path even for a record or two
    got, at = None, 0
    for cut in [*cuts, len(text)]:
        piece = reader.feed(text[at:at + cut])
        got = piece if got is None else merge(got, piece)
        at += cut
    got = merge(got, reader.feed(text[at:]))
    got = merge(got, reader.finish())
    assert _outcome(got) == _outcome(want)


def test_the_column_path_reads_a_recorded_month_as_parse_line_does():
    """A recorded release's whole sacct output (arrays, hostile names, every state)."""
    read = 0
    for release in RELEASES:
        delimiter = recorded_delimiter(release)
        for path in sorted(release.glob("sacct-*.txt")):
            text = path.read_text()
            got = parse_sacct(text, "testai", delimiter)
            assert _outcome(got) == _outcome(_one_at_a_time(text, "testai", delimiter)), path
            read += len(got.records)
    assert read > 100
