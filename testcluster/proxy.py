"""A real nginx (Debian's) in front of the dashboard, as deploy/nginx/gpu-usage.conf
sets it up: basic auth stands in for single sign-on, the user goes to the dashboard
in X-Remote-User, the shared secret in X-GPU-Usage-Proxy-Secret.

`nginx_proxy()` runs it unprivileged-style in a directory of its own (config, pid,
logs, temp files), on plain HTTP on a local port, and stops it afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SITE = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "gpu-usage.conf"


class ProxyError(RuntimeError):
    pass


def htpasswd_line(user: str, password: str) -> str:
    """An nginx auth_basic_user_file entry ({SSHA}: salted SHA-1, as nginx reads it)."""
    salt = hashlib.sha256(user.encode()).digest()[:8]
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}"


def render_site(listen_port: int, upstream: str, htpasswd: Path, secret_conf: Path) -> str:
    """deploy/nginx/gpu-usage.conf for a local test: plain HTTP on 127.0.0.1."""
    text = SITE.read_text()
    replace = {
        "listen 443 ssl;": f"listen 127.0.0.1:{listen_port};",
        "    ssl_certificate     /etc/ssl/certs/gpu-usage.pem;\n": "",
        "    ssl_certificate_key /etc/ssl/private/gpu-usage.key;\n": "",
        "http://127.0.0.1:8501": upstream,
        "/etc/nginx/gpu-usage.htpasswd": str(htpasswd),
        "/etc/nginx/gpu-usage-secret.conf": str(secret_conf),
    }
    for old, new in replace.items():
        if old not in text:
            raise ProxyError(f"{SITE} no longer contains {old.strip()!r}; update {__file__}")
        text = text.replace(old, new)
    return text


@contextmanager
def nginx_proxy(workdir: Path, port: int, upstream: str, users: dict[str, str],
                secret: str) -> Iterator[str]:
    """nginx on 127.0.0.1:`port` in front of `upstream`; yields its base URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise ProxyError("nginx not found: run scripts/setup-debian.sh test (nginx-light)")
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("tmp", "logs"):
        (workdir / sub).mkdir(exist_ok=True)
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in users.items()))
    secret_conf = workdir / "secret.conf"
    secret_conf.write_text(f'proxy_set_header X-GPU-Usage-Proxy-Secret "{secret}";\n')
    (workdir / "site.conf").write_text(render_site(port, upstream, htpasswd, secret_conf))
    (workdir / "nginx.conf").write_text(f"""\
daemon off;
worker_processes 1;
user root;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {workdir}/logs/access.log;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    include {workdir}/site.conf;
}}
""")
    proc = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.poll() else ""
                    raise ProxyError(f"nginx did not start on port {port}: {err}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
