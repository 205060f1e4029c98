"""The policy file: the test cluster's loads; every mistake names the file and the key."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from collector import config
from collector.cli import main

TESTCLUSTER = Path(__file__).parents[2] / "testcluster" / "facility.toml"


def test_the_test_cluster_policy_is_valid():
    settings = config.load(TESTCLUSTER)
    assert settings.slurm.clusters == ("testai",) and settings.slurm.source == "sacct"
    assert {p.name for p in settings.pools} == {"eurohpc", "national"}
    assert abs(sum(c.quota_share for c in settings.categories) - 1) < 1e-9
    assert len(settings.allocations) == 6 and settings.commercial.max_share_of_pool == 0.2
    assert settings.wckeys["pretrain"] == "pre-training"


def _write(tmp_path, text):
    path = tmp_path / "facility.toml"
    path.write_text(text)
    return path


BASE = TESTCLUSTER.read_text()


@pytest.mark.parametrize("change,expected", [
    (('timezone = "UTC"', 'timezone = "Mars/Olympus"'), "facility.timezone: unknown time zone"),
    (('quota_share = 0.25', 'quota_share = 1.5'), "categories[0].quota_share"),
    (('source = "sacct"', 'source = "ssh"'), "slurm.source"),
    (('pool = "eurohpc"\nquota_share = 0.25', 'pool = "eu"\nquota_share = 0.25'),
     "pool 'eu' is not one of the pools"),
    (('end = 2027-01-31', 'end = 2026-01-31'), "allocations[0]: end 2026-01-31 is before start"),
    (('gpu_hours = 9000', 'gpu_hours = -1'), "allocations[0].gpu_hours"),
    (('accounts_under = ["eu_science"]', 'account_pattern = "(unclosed"'),
     "categories[0].account_pattern: not a regular expression"),
    (('accounts_under = ["eu_science"]', ''), "categories[0]: needs accounts_under"),
    (('[facility]', '[facility]\ncolour = "blue"'), "facility.colour: unknown key"),
    (('quota_share = 0.05\naccounts_under = ["sme"]',
      'quota_share = 0.35\naccounts_under = ["sme"]'),
     "category quota shares add up to more than 1"),
    (('h100 = 1.0', 'h100 = 0'), "gpu_weights: weights must be above 0 (and finite): h100"),
    (('h100 = 1.0', 'h100 = nan'), "gpu_weights: weights must be above 0 (and finite): h100"),
    (('[facility]', '[facility]\nport = "9877"'), "facility.port: unknown key"),
    (('port = 9877', 'port = "9877"'), "exporter.port: Expected `int`, got `str`"),
    (('source = "sacct"', 'source = "sacct"\nwindow_hours = 0'), "slurm.window_hours"),
    (('source = "sacct"', 'source = "sacct"\nlookback_hours = -1'), "slurm.lookback_hours"),
    (('source = "sacct"', 'source = "sacct"\nhistory_start = "last year"'),
     "slurm.history_start"),
    (('cluster = "testai"', 'cluster = "testai; rm -rf /"'), "slurm.clusters[0]: not a Slurm "
     "name (letters, digits"),
    (('cluster = "testai"', 'cluster = "-Mall"'), "slurm.clusters[0]"),
    (('[slurm]', '[slurmrestd]\nuser = "root\\r\\nX-Evil: 1"\n[slurm]'), "slurmrestd.user"),
    (('name = "eu_science"', 'name = "eu_\\u202escience"'),
     "categories[0].name: not a name a report can show"),
    (('name = "eurohpc"', 'name = "euro\\u001b[2Jhpc"'), "pools[0].name: not a name"),
])
def test_each_mistake_names_the_file_and_the_key(tmp_path, change, expected):
    old, new = change
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_not_toml_and_missing_file(tmp_path, monkeypatch):
    with pytest.raises(config.ConfigError, match=r"not valid TOML.*line 1"):
        config.load(_write(tmp_path, "[facility\n"))
    monkeypatch.chdir(tmp_path / "..")
    monkeypatch.delenv(config.ENV_VAR, raising=False)
    with pytest.raises(config.ConfigError, match="facility.toml: no such file"):
        config.load(None)


def test_path_comes_from_the_environment_when_not_given(tmp_path, monkeypatch):
    path = _write(tmp_path, BASE)
    monkeypatch.setenv(config.ENV_VAR, str(path))
    assert config.resolve_path(None) == path
    assert config.load(None).facility.name == "Test AI Factory"


def test_collect_and_report_exit_2_on_a_bad_policy(tmp_path):
    bad = _write(tmp_path, BASE.replace("quota_share = 0.25", "quota_share = 2"))
    for command in (["collect"], ["report", "--month", "2026-10"]):
        result = CliRunner(mix_stderr=False).invoke(main, [*command, "--config", str(bad)])
        assert result.exit_code == 2 and "categories[0].quota_share" in result.stderr


def test_a_bad_period_is_a_usage_error_naming_the_form(tmp_path):
    result = CliRunner(mix_stderr=False).invoke(
        main, ["report", "--config", str(TESTCLUSTER), "--month", "2026-13"])
    assert result.exit_code == 2 and "expected YYYY-MM" in result.stderr
    both = CliRunner(mix_stderr=False).invoke(
        main, ["report", "--config", str(TESTCLUSTER), "--month", "last", "--year", "2026"])
    assert both.exit_code == 2 and "one of --month, --quarter, --year" in both.stderr


def test_a_report_without_a_store_says_to_collect_first(tmp_path):
    policy = _write(tmp_path, BASE.replace('path = "var/store"', f'path = "{tmp_path}/none"'))
    result = CliRunner(mix_stderr=False).invoke(
        main, ["report", "--config", str(policy), "--month", "2026-10"])
    assert result.exit_code == 1 and "run 'gpu-usage collect' first" in result.stderr


def test_config_check_prints_settings_or_exits_2(tmp_path):
    runner = CliRunner(mix_stderr=False)
    ok = runner.invoke(main, ["config", "check", "--config", str(TESTCLUSTER)])
    assert ok.exit_code == 0 and '"clusters": [\n      "testai"\n    ]' in ok.stdout
    bad = _write(tmp_path, BASE.replace('name = "Test AI Factory"', 'name = ""'))
    result = runner.invoke(main, ["config", "check", "--config", str(bad)])
    assert result.exit_code == 2 and "facility.name" in result.stderr


def test_nothing_reaches_a_shell():
    """Slurm commands get argument lists (subprocess without a shell); no module builds
    a command line as a string."""
    root = Path(__file__).parents[2]
    for package in ("collector", "dashboard", "testcluster", "scripts"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            for bad in ("shell=True", "os.system(", "os.popen("):
                assert bad not in text, f"{path}: {bad}"


def test_only_the_door_runs_programs():
    """One door to Slurm: in the product, only collector/slurm/commands.py starts a
    process (so every Slurm tool gets its environment from `slurm_env`); the one exec
    elsewhere is `gpu-usage dashboard` becoming the dashboard's own Python server."""
    root = Path(__file__).parents[2]
    sources = {path.relative_to(root).as_posix(): path.read_text()
               for package in ("collector", "dashboard") for path in (root / package).rglob("*.py")}
    assert {p for p, text in sources.items() if "subprocess" in text or "os.spawn" in text
            or "os.posix_spawn" in text} == {"collector/slurm/commands.py"}
    assert {p for p, text in sources.items() if "os.exec" in text} == {"collector/cli.py"}
    assert sources["collector/cli.py"].count("os.exec") == 1
    assert "os.execve(sys.executable, argv, env)" in sources["collector/cli.py"]


def test_a_report_starts_without_pydantic_and_validates_the_policy_it_reads():
    """A month's report takes about 0.2 s, sreport of the same month about 0.26 s: the
    policy sections are msgspec Structs (pydantic took about 0.1 s of every start).
    The report's own imports must not bring pydantic back."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from collector import config\n"
        "import collector.cli, collector.engine.report, collector.documents.text\n"
        f"settings = config.load(config.Path({str(TESTCLUSTER)!r}))\n"
        "assert settings.categories, settings\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["[]"]


def test_a_trailing_newline_does_not_pass_a_name_check(tmp_path):
    """`$` matches before a final newline in Python's re; the name checks end in \\Z."""
    with pytest.raises(config.ConfigError, match=r"slurm\.clusters\[0\]"):
        config.parse({**config.tomllib.loads(BASE),
                      "slurm": {"clusters": ["testai\n"]}})
    with pytest.raises(config.ConfigError, match=r"dashboard\.auth\.operators: not a user"):
        config.parse({**config.tomllib.loads(BASE), "dashboard": {"auth": {
            "operators": ["olga\n"], "proxy_secret_env": "SECRET"}}})
