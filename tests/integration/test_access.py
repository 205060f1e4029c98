"""Who sees what, through a real nginx (Debian's) in front of the dashboard, with
the deploy/nginx/gpu-usage.conf site: basic auth stands in for single sign-on, nginx
sets X-Remote-User and sends the proxy secret.

Sessions speak Streamlit's own websocket protocol (testcluster/stclient.py), so a
test sees every text the server sends a browser, and can forge headers. A real
Chromium loads the operator's view through nginx too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from testcluster import history
from testcluster.browser import PAGES, chromium, dashboard, free_port, wait_rendered
from testcluster.proxy import nginx_proxy
from testcluster.stclient import Run, Session

from .conftest import some_history
from .test_collector import gpu_usage, write_policy
from .test_dashboard import ARTIFACTS, report_json

pytestmark = pytest.mark.integration
OPERATOR, PI, STRANGER = "olga", "piet", "eve"
PASSWORDS = {OPERATOR: "op-" + secrets.token_hex(8), PI: "pi-" + secrets.token_hex(8),
             STRANGER: "st-" + secrets.token_hex(8)}
OPERATOR_PAGES = tuple(PAGES.values())   # every page, in the navigation's order


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


@pytest.fixture(scope="module")
def site(lay, cli_args, tmp_path_factory):
    """A store collected from the cluster; a policy whose [dashboard.auth] names an
    operator and a PI of the busiest project; nginx in front of the dashboard."""
    spec = some_history(lay, cli_args)
    tmp = tmp_path_factory.mktemp("access")
    path = write_policy(tmp, spec.start)
    month = time.strftime("%Y-%m", time.gmtime(history.add_months(spec.start, 0)))
    gpu_usage(lay, "collect", "--config", str(path))
    rep = report_json(lay, path, month)
    used = sorted((a for a in rep["accounts"] if a["gpu_hours"] > 0),
                  key=lambda a: -a["gpu_hours"])
    mine = used[0]["account"]
    secret = secrets.token_hex(24)
    (tmp / "proxy-secret").write_text(secret + "\n")
    (tmp / "proxy-secret").chmod(0o640)   # readable by others: refused
    path.write_text(path.read_text() + f"""
[dashboard.auth]
proxy_secret_file = "{tmp / 'proxy-secret'}"
operators = ["{OPERATOR}"]
pis = {{ {PI} = ["{mine}"] }}
""")
    gpu_usage(lay, "config", "check", "--config", str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with dashboard(path, dict(lay.env()), log=ARTIFACTS / "dashboard-auth.log") as direct, \
            nginx_proxy(tmp / "nginx", free_port(), direct, PASSWORDS, secret) as proxied:
        yield {"direct": direct, "proxy": proxied, "report": rep, "month": month, "tmp": tmp,
               "policy": path,
               "mine": mine, "secret": secret,
               "others": [a["account"] for a in used[1:]],
               "my_users": {u["user"] for u in rep["users"] if u["account"] == mine},
               "other_users": {u["user"] for u in rep["users"] if u["account"] != mine}
               - {u["user"] for u in rep["users"] if u["account"] == mine}}


def runs(url: str, headers: dict[str, str], visits: list[tuple[str, str]],
         fetch: bool = False) -> list[tuple[Run, list[tuple[int, bytes]]]]:
    """Each (page, query) in one session; with fetch, every download link too."""
    async def go():
        out = []
        async with Session(url, headers) as s:
            for page, query in visits:
                run = await s.run(page, query)
                files = [await s.fetch(u) for u in run.downloads] if fetch else []
                out.append((run, files))
        return out
    return asyncio.run(go())


def test_an_operator_sees_every_page_and_every_category(site):
    rep = site["report"]
    [(first, _)] = runs(site["proxy"], basic(OPERATOR), [("", f"month={site['month']}")])
    assert first.finished == "FINISHED_SUCCESSFULLY" and not first.exceptions
    assert tuple(first.pages) == OPERATOR_PAGES
    assert f"Signed in as {OPERATOR} (operator)" in first.texts
    for c in rep["categories"]:
        assert c["category"] in first.texts, c["category"]
    for page, _ in runs(site["proxy"], basic(OPERATOR),
                        [(p, f"month={site['month']}") for p in OPERATOR_PAGES[1:]]):
        assert page.finished == "FINISHED_SUCCESSFULLY" and not page.exceptions
        assert not page.page_not_found


def test_a_pi_sees_only_their_project_by_every_route(site):
    mine, others = site["mine"], site["others"]
    assert others and site["other_users"]
    month = site["month"]
    visits = [("", f"month={month}")]
    visits += [(p, f"month={month}") for p in OPERATOR_PAGES[1:]]          # other pages
    visits += [("", f"month={month}&account={o}") for o in others[:3]]      # query params
    visits += [("allocations", f"account={others[0]}&user={sorted(site['other_users'])[0]}"),
               ("reports", f"month={month}&format=pdf")]
    results = runs(site["proxy"], basic(PI), visits, fetch=True)
    first = results[0][0]
    assert first.pages == [""], "a PI's navigation holds their page only"
    assert f"Signed in as {PI} (pi)" in first.texts and mentions(first.text, mine)
    assert site["my_users"] & set(first.texts)
    downloads = 0
    for (page, query), (run, files) in zip(visits, results, strict=True):
        assert run.finished == "FINISHED_SUCCESSFULLY" and not run.exceptions, (page, query)
        seen = run.text + "\n".join(body.decode("utf-8", "replace") for _, body in files)
        for other in others:
            assert not mentions(seen, other), (page, query, other)
        for user in site["other_users"]:
            assert not mentions(seen, user), (page, query, user)
        for code, body in files:
            assert code == 200 and mentions(body.decode(), mine)
            downloads += 1
    assert downloads >= 2 * len(visits)  # the CSV and JSON of their projects, every time
    scoped = json.loads(next(b for _, b in results[0][1] if b.lstrip().startswith(b"{")))
    assert scoped["scope"] == {"user": PI, "accounts": [mine]}
    assert {a["account"] for a in scoped["accounts"]} == {mine}
    assert "categories" not in scoped and "data_quality" not in scoped


def test_a_pi_cannot_claim_another_user_through_the_proxy(site):
    """nginx overwrites X-Remote-User: a client's own header is never passed on."""
    headers = dict(basic(PI), **{"X-Remote-User": OPERATOR,
                                 "X-GPU-Usage-Proxy-Secret": "guess"})
    [(run, _)] = runs(site["proxy"], headers, [("", "")])
    assert run.pages == [""] and f"Signed in as {PI} (pi)" in run.texts


def test_a_user_without_a_role_and_a_stranger_see_nothing(site):
    [(run, _)] = runs(site["proxy"], basic(STRANGER), [("", "")])
    assert run.pages == [] and not run.downloads
    assert any(f"{STRANGER} has no role here" in t for t in run.texts)
    assert not any(mentions(run.text, a) for a in [site["mine"], *site["others"]])
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"olga:wrong").decode()}):
        request = urllib.request.Request(site["proxy"] + "/", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401


def test_a_request_that_bypasses_the_proxy_gets_nothing(site):
    for headers in ({"X-Remote-User": OPERATOR},
                    {"X-Remote-User": OPERATOR, "X-GPU-Usage-Proxy-Secret": "0" * 48},
                    {"X-Remote-User": OPERATOR,
                     "X-GPU-Usage-Proxy-Secret": site["secret"][:-1]}):
        [(run, _)] = runs(site["direct"], headers, [("", ""), ("data_quality", "")])[:1]
        assert run.pages == [] and not run.downloads, headers
        assert any("did not come through the facility's proxy" in t for t in run.texts)
        assert not any(mentions(run.text, a) for a in [site["mine"], *site["others"]])
        assert site["secret"] not in run.text


def test_a_real_browser_through_nginx_shows_the_operator_view(site):
    driver = chromium()
    try:
        # The credentials on every request, the websocket's too (as a browser does
        # once the user has answered the login prompt).
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": basic(OPERATOR)})
        driver.get(f"{site['proxy']}/?month={site['month']}")
        try:
            wait_rendered(driver, charts=3, timeout_s=120)
        finally:
            driver.save_screenshot(str(ARTIFACTS / "operator-through-nginx.png"))
        body = driver.find_element("css selector", "body").text
        assert f"Signed in as {OPERATOR} (operator)" in body
    finally:
        driver.quit()


def _listeners(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on `port` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:   # 0A: LISTEN
                found.add(address)
    return found


def test_the_exporter_serves_loopback_only_and_no_project_by_default(lay, site):
    """The policy without an [exporter] address or project_labels: the exporter listens
    on 127.0.0.1 only, and its scrape names no project or account, only the per-category
    allocation sums."""
    kept, section = [], ""
    for line in site["policy"].read_text().splitlines():
        if line.startswith("["):
            section = line
        if section == "[exporter]" and line.split("=")[0].strip() in ("address", "port",
                                                                      "project_labels"):
            continue
        kept.append(line)
    policy = site["tmp"] / "defaults.toml"
    policy.write_text("\n".join(kept) + "\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "collector", "exporter", "--config",
                             str(policy), "--port", str(port)], env=lay.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    body = r.read().decode()
                if "gpu_usage_category_allocations_granted_gpu_seconds" in body:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "exporter not up"
            time.sleep(0.5)
        assert _listeners(port) == {"0100007F"}   # 127.0.0.1, and nothing else
        assert 'project="' not in body and 'account="' not in body
        assert "gpu_usage_allocation_granted_gpu_seconds" not in body
        for a in site["report"]["accounts"]:
            assert not mentions(body, a["account"]), a["account"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "without login" not in err   # no warning: it listened on loopback
