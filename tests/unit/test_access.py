"""Access control without a server: who a request is, what a PI's report keeps, the
[dashboard.auth] settings and the dashboard command's refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector import access
from collector.access import LOCAL, Viewer, read_secret, scope_report, viewer
from collector.cli import main
from collector.collect import collect
from collector.config import Auth, ConfigError, load, parse
from collector.documents.convert import document
from collector.engine import periods
from collector.engine.model import Report
from collector.engine.report import build_report
from collector.store.database import Store

from . import fakeslurm

NOW = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp())

SECRET = "s3cr3t-" + "x" * 20


def auth(**kw) -> Auth:
    return parse({"proxy_secret_env": "GPU_USAGE_PROXY_SECRET", "operators": ("olga",),
                  "pis": {"piet": ("proj_a", "proj_b")}, **kw}, "[dashboard.auth]", Auth)


def headers(user: str | None, secret: str | None = SECRET) -> dict[str, str]:
    h = {}
    if user is not None:
        h["x-remote-user"] = user
    if secret is not None:
        h["X-GPU-Usage-Proxy-Secret"] = secret
    return h


def test_without_auth_everyone_is_the_local_operator():
    assert viewer(None, headers("mallory", "nothing"), None) is LOCAL
    assert LOCAL.operator and LOCAL.may_see("anything")


def test_roles_come_from_the_proxy_header_only_with_the_secret():
    a = auth()
    assert viewer(a, headers("olga"), SECRET) == Viewer("olga", "operator")
    assert viewer(a, headers("piet"), SECRET) == Viewer("piet", "pi",
                                                         frozenset({"proj_a", "proj_b"}))
    stranger = viewer(a, headers("eve"), SECRET)
    assert stranger.role == "none" and "eve has no role" in stranger.why
    for h in (headers("olga", None), headers("olga", "wrong"), headers("olga", SECRET[:-1]),
              headers("olga", SECRET + "x")):
        who = viewer(a, h, SECRET)
        assert who.role == "none" and who.user is None and "proxy" in who.why
        assert SECRET not in who.why
    assert viewer(a, headers(""), SECRET).role == "none"
    assert viewer(a, headers("olga;rm -rf"), SECRET).role == "none"
    assert viewer(a, headers("olga"), None).role == "none"  # no secret known: nobody


def test_a_user_or_secret_header_sent_twice_is_nobody():
    """A proxy that appends its X-Remote-User to the client's would leave the client's
    first; the dashboard refuses to pick one."""
    a = auth()
    for name in ("X-Remote-User", "x-gpu-usage-proxy-secret"):
        who = viewer(a, headers("olga"), SECRET, repeated=[name])
        assert who.role == "none" and who.user is None and "more than once" in who.why
    assert viewer(a, headers("olga"), SECRET, repeated=["Accept"]).role == "operator"


def test_a_pi_may_see_their_accounts_only():
    pi = Viewer("piet", "pi", frozenset({"proj_a"}))
    assert pi.may_see("proj_a") and not pi.may_see("proj_c") and not pi.operator
    assert not Viewer("eve", "none").may_see("proj_a")


@pytest.fixture(scope="module")
def october(tmp_path_factory) -> Report:
    """The typed report of fakeslurm's October: accounts ehpc_a, nl_x, com_acme, stray."""
    settings, env = fakeslurm.make(tmp_path_factory.mktemp("access"))
    collect(settings, now=NOW, env=env)
    with Store.open_reader(settings.store.path) as store:
        return build_report(store, settings, periods.parse_month("2026-10", "UTC"), now=NOW)


def test_a_pis_report_keeps_only_their_rows_and_no_other_section(october):
    assert {a.account for a in october.accounts} >= {"nl_x", "com_acme", "stray"}
    pi = Viewer("piet", "pi", frozenset({"nl_x"}))
    got = scope_report(october, pi)
    text = json.dumps(document(got))
    assert "com_acme" not in text and "kim" not in text and "stray" not in text
    assert [a.account for a in got.accounts] == ["nl_x"]
    assert {u.user for u in got.users} == {"maria"}
    assert {a.account for a in got.allocations} <= {"nl_x"}
    assert set(document(got)) == {"facility", "cluster", "generated_at", "last_collection",
                                  "period", "scope", "accounts", "users", "allocations"}
    assert document(got)["scope"] == {"user": "piet", "accounts": ["nl_x"]}
    assert scope_report(october, LOCAL) is october
    with pytest.raises(PermissionError):
        scope_report(october, Viewer("eve", "none", why="no role"))


def test_the_secret_comes_from_a_file_or_the_environment_and_is_never_echoed(tmp_path,
                                                                             monkeypatch):
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    f.chmod(0o640)
    assert read_secret(auth(proxy_secret_env=None, proxy_secret_file=f)) == SECRET
    monkeypatch.setenv("GPU_USAGE_PROXY_SECRET", SECRET)
    assert read_secret(auth()) == SECRET
    monkeypatch.setenv("GPU_USAGE_PROXY_SECRET", "short")
    with pytest.raises(ConfigError, match="GPU_USAGE_PROXY_SECRET.*shorter than 16") as e:
        read_secret(auth())
    assert "short" not in str(e.value).replace("shorter", "")
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(auth(proxy_secret_env=None, proxy_secret_file=tmp_path / "missing"))


@pytest.mark.parametrize(("extra", "message"), [
    ({"proxy_secret_file": "/x"}, "exactly one of proxy_secret_file and proxy_secret_env"),
    ({"proxy_secret_env": None}, "exactly one of proxy_secret_file and proxy_secret_env"),
    ({"operators": ("piet",)}, "both operator and PI: piet"),
    ({"operators": ("a b",)}, "not a user name"),
    ({"pis": {"piet": ()}}, "no accounts listed for piet"),
    ({"user_header": "X-GPU-Usage-Proxy-Secret"}, "must differ"),
    ({"user_header": "X-User\r\nInjected"}, "user_header: not an HTTP header name"),
])
def test_bad_auth_settings_are_named(extra, message):
    with pytest.raises(ValueError, match=message):
        auth(**extra)


POLICY = """
[facility]
name = "F"
[slurm]
cluster = "c"
[[pools]]
name = "p"
share = 1
[[categories]]
name = "c"
pool = "p"
quota_share = 1
accounts = ["a"]
[commercial]
category = "c"
pool = "p"
"""


def test_without_auth_the_dashboard_only_listens_on_localhost(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text(POLICY + '[dashboard]\naddress = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match=r"dashboard: address '0.0.0.0' is not localhost, "
                                          r"but there is no \[dashboard.auth\]"):
        load(path)
    path.write_text(POLICY)
    result = CliRunner().invoke(main, ["dashboard", "--config", str(path), "--address",
                                       "10.1.2.3"])
    assert result.exit_code == 2
    assert "refusing to listen on 10.1.2.3: there is no [dashboard.auth]" in result.output


def test_with_auth_the_dashboard_will_not_start_without_its_secret(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text(POLICY + f'[dashboard]\naddress = "0.0.0.0"\n[dashboard.auth]\n'
                    f'proxy_secret_file = "{tmp_path / "nope"}"\noperators = ["olga"]\n')
    assert load(path).dashboard.auth.operators == ("olga",)
    result = CliRunner().invoke(main, ["dashboard", "--config", str(path)])
    assert result.exit_code == 2
    assert f"proxy_secret_file {tmp_path / 'nope'}: cannot read" in result.output


def test_the_access_module_is_pure():
    source = Path(access.__file__).read_text()
    assert "streamlit" not in source and "subprocess" not in source


def test_secrets_stay_out_of_config_check_and_errors(tmp_path, monkeypatch):
    """The proxy secret and the slurmrestd JWT are read from files/the environment;
    `config check` shows where, never what, and so does a failing collection."""
    token, secret = "eyJhbGciOi.JWT-" + "t" * 30, "proxy-" + "s" * 30
    (tmp_path / "jwt").write_text(token)
    (tmp_path / "proxy").write_text(secret)
    (tmp_path / "jwt").chmod(0o600)
    (tmp_path / "proxy").chmod(0o640)
    path = tmp_path / "f.toml"
    path.write_text(POLICY + f'[slurmrestd]\nurl = "http://127.0.0.1:9"\nuser = "slurm"\n'
                    f'token_file = "{tmp_path / "jwt"}"\n[store]\npath = "{tmp_path / "s"}"\n'
                    f'[dashboard.auth]\nproxy_secret_file = "{tmp_path / "proxy"}"\n'
                    'operators = ["olga"]\n')
    path.write_text(path.read_text().replace('cluster = "c"', 'cluster = "c"\n'
                                             'source = "slurmrestd"'))
    runner = CliRunner()
    shown = runner.invoke(main, ["config", "check", "--config", str(path)])
    assert shown.exit_code == 0, shown.output
    assert str(tmp_path / "jwt") in shown.output and token not in shown.output
    assert secret not in shown.output
    failed = runner.invoke(main, ["collect", "--config", str(path), "--quiet"])
    assert failed.exit_code == 1 and "127.0.0.1:9" in failed.output
    assert token not in failed.output and secret not in failed.output


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602, 0o666])
def test_a_secret_file_that_others_can_read_is_refused_naming_the_fix(tmp_path, mode):
    f = tmp_path / "secret"
    f.write_text(SECRET)
    f.chmod(mode)
    with pytest.raises(ConfigError) as err:
        read_secret(auth(proxy_secret_env=None, proxy_secret_file=f))
    msg = str(err.value)
    assert f"proxy_secret_file {f} is readable by every user" in msg
    assert f"chmod o-rwx {f}" in msg and "install -m 0640 -o root -g gpu-usage" in msg
    assert SECRET not in msg


def test_a_world_readable_slurmrestd_token_stops_the_collection(tmp_path):
    from collector.config import load
    from collector.slurm.commands import SlurmError
    from collector.slurm.sources import read_token

    token = tmp_path / "jwt"
    token.write_text("eyJhbGciOi.JWT-secret")
    path = tmp_path / "f.toml"
    path.write_text(POLICY + f'[slurmrestd]\nurl = "http://127.0.0.1:9"\nuser = "slurm"\n'
                    f'token_file = "{token}"\n')
    settings = load(path)
    token.chmod(0o644)
    with pytest.raises(SlurmError, match=r"slurmrestd token file .* readable by every user"):
        read_token(settings)
    token.chmod(0o640)
    assert read_token(settings) == "eyJhbGciOi.JWT-secret"


@pytest.mark.parametrize(("url", "ok"), [
    ("http://127.0.0.1:6820", True), ("http://localhost:6820", True), ("http://[::1]:6820", True),
    ("https://rest.example.org:6820", True), ("unix:/run/slurmrestd.sock", True),
    ("http://rest.example.org:6820", False), ("http://10.0.0.5:6820", False),
    ("http://127.0.0.1.evil.example:80", False),
])
def test_a_jwt_is_never_sent_over_plain_http_to_another_host(tmp_path, url, ok):
    from collector.config import load
    path = tmp_path / "f.toml"
    path.write_text(POLICY + f'[slurmrestd]\nurl = "{url}"\n')
    if ok:
        assert load(path).slurmrestd.url == url
    else:
        with pytest.raises(ConfigError, match="JWT in clear text"):
            load(path)
