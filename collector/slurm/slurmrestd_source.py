"""The door to slurmrestd: Slurm accounting over its REST API.

Two ways in, as the facility's security rules allow:
- a UNIX socket with local authentication (`url = "unix:/run/slurmrestd.sock"`):
  slurmrestd identifies the collector by the socket peer's uid, no token;
- HTTP(S) with a JWT (`url = "http://slurm-rest:6820"`): the headers
  `X-SLURM-USER-NAME` and `X-SLURM-USER-TOKEN`, the token read from a file or an
  environment variable. The token is never logged and never part of a message.

The data-parser version is discovered from the server's OpenAPI description (the
newest `/slurmdb/v0.0.XX/jobs` this collector knows), never configured. Window
times are sent relative to the server's clock (`now-N seconds`): slurmrestd
reads absolute times in its own time zone, and 22.05 refuses epoch numbers.

Failures raise `SlurmError` naming the request and what slurmrestd said.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from collector import clock
from collector.slurm.commands import SlurmError

# Data-parser versions whose job JSON slurmrestd_parser reads (oldest first).
KNOWN_VERSIONS = ("v0.0.38", "v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44")
_JOBS_PATH = re.compile(r"^/slurmdb/(v\d+\.\d+\.\d+)/jobs/?$")
OPENAPI_PATHS = ("/openapi/v3", "/openapi", "/openapi.json")
# Windows start this much earlier than asked: a request may reach the server a little
# after its `now-N` was computed; an overlap costs nothing (records are compared).
MARGIN_S = 120
# ESLURM_REST_EMPTY_RESULT: 22.05 reports an empty job list as this error (with 200).
EMPTY_RESULT = 9003


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version[1:].split("."))


# Query flags that make /jobs answer as sacct --duplicates (no usage truncation, no
# steps). v0.0.38 (22.05) has only skip_steps and shows duplicates untruncated;
# v0.0.39+ (23.02+) truncate start and end to the window and hide the earlier runs
# of a requeued job unless told. Sent when the server's description lists them.
JOB_FLAGS = ("skip_steps", "show_duplicates", "disable_truncate_usage_time")


def jobs_parameters(spec: dict, version: str) -> set[str]:
    """The query parameters the server's /jobs of `version` accepts."""
    for path, item in (spec.get("paths") or {}).items():
        match = _JOBS_PATH.match(path)
        if match and match[1] == version:
            return {p.get("name") for p in (item.get("get") or {}).get("parameters") or []}
    return set()


def pick_version(paths: list[str] | dict) -> str:
    """The newest data-parser version that both the server and this collector know."""
    offered = {m[1] for p in paths if (m := _JOBS_PATH.match(p))}
    usable = sorted(offered & set(KNOWN_VERSIONS), key=_version_key)
    if not usable:
        raise SlurmError(
            "slurmrestd offers no /slurmdb jobs endpoint this collector reads: offered "
            f"{', '.join(sorted(offered, key=_version_key)) or 'none (is openapi/slurmdbd or '}"
            f"{'' if offered else 'openapi/dbv0.0.XX loaded? start slurmrestd with -s)'}; "
            f"known {', '.join(KNOWN_VERSIONS)}")
    return usable[-1]


@dataclass
class RestClient:
    """One slurmrestd: `url` is unix:/path or http(s)://host:port."""

    url: str
    user: str | None = None
    token: str | None = None
    timeout_s: float = 600
    version: str | None = None
    job_flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("unix", "http", "https"):
            raise SlurmError(f"slurmrestd url {self.url!r} must start with unix:/, http:// "
                             "or https://")
        if parts.scheme != "unix" and not (self.user and self.token):
            raise SlurmError(f"slurmrestd over {parts.scheme.upper()} needs a JWT: set "
                             "[slurmrestd] user and token_file (or the SLURM_JWT environment "
                             "variable); make one with `scontrol token username=USER`")
        self._parts = parts

    def _connection(self) -> http.client.HTTPConnection:
        parts = self._parts
        if parts.scheme == "unix":
            return _UnixConnection(parts.path, self.timeout_s)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else \
            http.client.HTTPConnection
        return cls(parts.hostname or "localhost", parts.port, timeout=self.timeout_s)

    def get(self, path: str, params: dict[str, str] | None = None) -> dict:
        """GET path?params as JSON; raises SlurmError."""
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in (params or {}).items())
        target = f"{path}?{query}" if query else path
        headers = {"Accept": "application/json"}
        if self.user and self.token:
            headers["X-SLURM-USER-NAME"] = self.user
            headers["X-SLURM-USER-TOKEN"] = self.token
        conn = self._connection()
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except FileNotFoundError as exc:
            raise SlurmError(f"slurmrestd socket {self._parts.path} does not exist: is "
                             "slurmrestd running?") from exc
        except TimeoutError as exc:
            raise SlurmError(f"slurmrestd timed out after {self.timeout_s:.0f} s (GET {path}); "
                             "is slurmdbd overloaded or unreachable?") from exc
        except OSError as exc:
            raise SlurmError(f"cannot reach slurmrestd at {self.url} (GET {path}): "
                             f"{exc.strerror or exc}") from exc
        finally:
            conn.close()
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        errors = _errors(payload)
        if resp.status != 200 or payload is None or errors:
            detail = errors or body.decode("utf-8", "replace").strip()[:300] or "(no body)"
            hint = " (is the JWT valid and not expired?)" if resp.status in (401, 403) else ""
            raise SlurmError(f"slurmrestd GET {path} answered {resp.status}{hint}: {detail}")
        return payload

    def discover(self) -> str:
        """Find (once) the data-parser version to use."""
        if self.version is None:
            last: SlurmError | None = None
            for path in OPENAPI_PATHS:
                try:
                    spec = self.get(path)
                except SlurmError as exc:
                    last = exc
                    continue
                self.version = pick_version(list(spec.get("paths") or {}))
                offered = jobs_parameters(spec, self.version)
                self.job_flags = tuple(f for f in JOB_FLAGS if f in offered)
                break
            else:
                raise last or SlurmError("slurmrestd has no OpenAPI description")
        return self.version

    # -- accounting ---------------------------------------------------------
    def jobs(self, start_s: int, end_s: int, cluster: str | None = None,
             now: float | None = None, margin_s: int = MARGIN_S, steps: bool = False) -> dict:
        """Every allocation eligible or running in [start, end), as sacct's window
        (starting `margin_s` earlier); with `steps`, each with its steps that overlap
        the window (slurmdbd leaves out the others)."""
        version = self.discover()
        now = clock.now_or(now)
        params = {"start_time": _relative(now, start_s - margin_s),
                  "end_time": _relative(now, end_s)}
        if cluster:
            params["cluster"] = cluster
        params.update(dict.fromkeys((f for f in self.job_flags
                                     if not (steps and f == "skip_steps")), "true"))
        return self.get(f"/slurmdb/{version}/jobs", params)

    def tres(self) -> dict:
        """The TRES slurmdbd tracks (`{"TRES": [{"type", "name", "id"}, ...]}`; the same
        key from v0.0.38 to v0.0.44)."""
        return self.get(f"/slurmdb/{self.discover()}/tres")

    def job(self, job_id: int) -> dict:
        """Every record of one job id (each run of a requeued job)."""
        return self.get(f"/slurmdb/{self.discover()}/job/{int(job_id)}")

    def associations(self, cluster: str) -> dict:
        return self.get(f"/slurmdb/{self.discover()}/associations", {"cluster": cluster})

    def accounts(self) -> dict:
        return self.get(f"/slurmdb/{self.discover()}/accounts")


def _relative(now: float, epoch: int) -> str:
    """`now-N seconds`, or `now` for the future (slurmrestd's own clock and zone)."""
    ago = int(now) - int(epoch)
    return f"now-{ago}seconds" if ago > 0 else "now"


def _errors(payload: object) -> str:
    """slurmrestd's `errors` list as one line ("" when there is none)."""
    if not isinstance(payload, dict):
        return ""
    found = []
    for err in payload.get("errors") or []:
        if isinstance(err, dict):
            text = err.get("description") or err.get("error") or ""
            number = err.get("error_number") or err.get("errno")
            if number == EMPTY_RESULT:
                continue
            if text or number:
                found.append(f"{text} ({number})" if number else str(text))
    return "; ".join(found)
