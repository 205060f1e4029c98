"""The facility policy: one TOML file, validated once at start-up into typed settings.

Path: `--config`, else $GPU_USAGE_CONFIG, else ./facility.toml. Every problem is
reported with the file and the key (`categories[2].quota_share`), all at once.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
import types
from datetime import date
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _without_pydantic_plugins() -> None:
    """pydantic looks for plugins when it builds its first validator: it imports
    importlib.metadata and reads the entry points of every installed distribution,
    about 30 ms of every command's start (a month's report takes 0.2 s in all). The
    project uses no pydantic plugin, so its loader answers "none" without looking.
    Its module name is pydantic's own (pinned in pyproject.toml): test_config.py
    fails if a new pydantic no longer asks it."""
    if "pydantic.plugin._loader" not in sys.modules:
        loader = types.ModuleType("pydantic.plugin._loader")
        loader.get_plugins = tuple  # type: ignore[attr-defined]
        sys.modules["pydantic.plugin._loader"] = loader


_without_pydantic_plugins()

from pydantic import (  # noqa: E402  (after the hook above)
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_VAR = "GPU_USAGE_CONFIG"
DEFAULT_FILE = "facility.toml"


class ConfigError(ValueError):
    """The policy file is missing, not TOML, or not valid; the message names file and key."""


class _Model(BaseModel):
    # defer_build: a section's validator is built when it is first needed, not at
    # import; validating a policy file builds Settings' alone (about 55 ms of every
    # command's start, against about 110 ms for all sixteen sections' at import).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Facility(_Model):
    name: str = Field(min_length=1)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Amsterdam)") from exc
        return value


# Slurm's own rule for names it stores (clusters, accounts): letters, digits, _ . -
SLURM_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"


ClusterName = Annotated[str, Field(pattern=SLURM_NAME)]


class Slurm(_Model):
    """`[slurm]`: the cluster (`cluster = "name"`) or the clusters of one facility
    (`clusters = ["a", "b"]`, each read through sacct --clusters=NAME), and how to
    read them. Everything is stored and reported per cluster; reports, pages and
    metrics show one cluster or the facility."""

    # Reaches sacct/sacctmgr/sreport as an argument (never through a shell): checked.
    clusters: tuple[ClusterName, ...] = Field(min_length=1, max_length=64)
    source: Literal["sacct", "slurmrestd", "pyslurm"] = "sacct"
    history_start: date | None = None
    window_hours: float = Field(default=24 * 31, ge=1, le=24 * 366)
    lookback_hours: float = Field(default=6, ge=0, le=24 * 31)
    timeout_s: float = Field(default=600, gt=0)
    # GPU use from job steps (gres/gpuutil, gres/gpumem; Slurm 23.02+ with a GPU
    # plugin): "auto" reads steps when slurmdbd has those TRES, "off" never does.
    gpu_steps: Literal["auto", "off"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, data: object) -> object:
        if isinstance(data, dict) and "cluster" in data:
            if "clusters" in data:
                raise ValueError("give either cluster = \"name\" or clusters = [...], "
                                 "not both")
            data = {**data, "clusters": [data["cluster"]]}
            del data["cluster"]
        return data

    @field_validator("clusters")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Slurm compares cluster names case-insensitively (sacct -M, slurmdbd's tables).
        seen = [c.lower() for c in value]
        dupes = sorted({c for c in value if seen.count(c.lower()) > 1})
        if dupes:
            raise ValueError(f"clusters listed twice: {', '.join(dupes)}")
        if "all" in seen:  # sacct -M all reads every cluster of the slurmdbd
            raise ValueError("'all' is not a cluster name (sacct --clusters=all reads every "
                             "cluster); list the clusters by name")
        return value

    @model_validator(mode="after")
    def _one_door_for_several(self) -> Slurm:
        # slurmrestd's job-by-id endpoint and pyslurm's live view answer for their own
        # cluster only: several clusters are read with sacct's --clusters.
        if self.several and self.source != "sacct":
            raise ValueError(f'several clusters are read with source = "sacct" (sacct '
                             f'--clusters); the {self.source} door reads one cluster')
        return self

    @property
    def several(self) -> bool:
        return len(self.clusters) > 1


class Slurmrestd(_Model):
    """`[slurm] source = "slurmrestd"`: where slurmrestd listens and how to prove who
    we are. `unix:/path` uses local authentication (no token); `http(s)://host:port`
    needs a JWT, read from `token_file` or the environment variable `token_env` at
    collection time (never stored in the settings, never logged)."""

    url: str = "unix:/run/slurmrestd/slurmrestd.socket"
    user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,127}$")
    token_file: Path | None = None
    token_env: str = "SLURM_JWT"

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not re.match(r"^(unix:/|https?://)", value):
            raise ValueError(f"{value!r} must start with unix:/, http:// or https://")
        if value.startswith("http://"):
            # The JWT goes in a header: over plain HTTP anyone on the path reads it.
            host = urlsplit(value).hostname or ""
            if not is_loopback(host):
                raise ValueError(f"{value!r} would send the JWT in clear text to {host}: use "
                                 "https://, a slurmrestd on this host (127.0.0.1), or unix:/")
        return value


class Store(_Model):
    path: Path = Path("var/store")


class Exporter(_Model):
    """`gpu-usage exporter`: where it listens, how fresh its prepared data is, and
    whether it names projects. It has no login of its own: it listens on localhost
    unless told otherwise (a Prometheus on another host goes through a TLS and
    basic-auth proxy). Per-allocation series carry project names and their granted
    and used GPU time, so they are served only with `project_labels = true`;
    without it the allocations show summed per category."""

    address: str = "127.0.0.1"
    port: int = Field(default=9877, ge=1, le=65535)
    live_refresh_s: float = Field(default=30, ge=1)      # squeue/sinfo at most this often
    store_poll_s: float = Field(default=15, ge=1)        # look for a finished collection
    store_refresh_s: float = Field(default=300, ge=10)   # rebuild anyway (running jobs, "now")
    slurm_timeout_s: float = Field(default=20, gt=0)
    project_labels: bool = False                         # gpu_usage_allocation_*{project}


LOGIN = r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,127}$"  # a login / SSO user name (no spaces)


class Auth(_Model):
    """`[dashboard.auth]`: who may see what, behind the facility's reverse proxy.

    The proxy authenticates (single sign-on, basic auth...) and sets `user_header`
    to the user name; it also sends the shared secret in `secret_header`, so a
    request that reaches the dashboard without passing the proxy is refused even
    if it forges the user header. The secret is read from `proxy_secret_file` or
    the environment variable `proxy_secret_env`, never from this file.
    `operators` see everything; each user in `pis` sees only the listed Slurm
    accounts (their projects) and the users who ran jobs there; anyone else sees
    nothing."""

    user_header: str = Field(default="X-Remote-User", pattern=r"^[A-Za-z0-9-]+$")
    secret_header: str = Field(default="X-GPU-Usage-Proxy-Secret", pattern=r"^[A-Za-z0-9-]+$")
    proxy_secret_file: Path | None = None
    proxy_secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    operators: tuple[str, ...] = ()
    pis: dict[str, tuple[str, ...]] = {}

    @field_validator("operators")
    @classmethod
    def _logins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [u for u in value if not re.match(LOGIN, u)]
        if bad:
            raise ValueError(f"not a user name: {', '.join(map(repr, bad))}")
        return value

    @field_validator("pis")
    @classmethod
    def _projects(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        bad = [u for u in value if not re.match(LOGIN, u)]
        if bad:
            raise ValueError(f"not a user name: {', '.join(map(repr, bad))}")
        empty = [u for u, accounts in value.items() if not accounts]
        if empty:
            raise ValueError(f"no accounts listed for {', '.join(empty)}")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> Auth:
        if (self.proxy_secret_file is None) == (self.proxy_secret_env is None):
            raise ValueError("give exactly one of proxy_secret_file and proxy_secret_env "
                             "(the secret the reverse proxy sends in secret_header)")
        both = sorted(set(self.operators) & set(self.pis))
        if both:
            raise ValueError(f"both operator and PI: {', '.join(both)}; list each user once")
        if self.user_header.lower() == self.secret_header.lower():
            raise ValueError("user_header and secret_header must differ")
        return self


class Dashboard(_Model):
    """`gpu-usage dashboard`: where the Streamlit app listens. Without `[dashboard.auth]`
    every visitor is an operator, so it listens on localhost only; with it, it expects
    the facility's reverse proxy (single sign-on) in front."""

    address: str = "127.0.0.1"
    port: int = Field(default=8501, ge=1, le=65535)
    auth: Auth | None = None

    @model_validator(mode="after")
    def _local_without_auth(self) -> Dashboard:
        if self.auth is None and not is_loopback(self.address):
            raise ValueError(f"address {self.address!r} is not localhost, but there is no "
                             "[dashboard.auth]: without it every visitor would see "
                             "everything; configure the reverse proxy and [dashboard.auth], "
                             "or listen on 127.0.0.1")
        return self


def is_loopback(address: str) -> bool:
    import ipaddress
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Pool(_Model):
    name: str = Field(min_length=1)
    share: float = Field(gt=0, le=1)


class Category(_Model):
    name: str = Field(min_length=1)
    pool: str
    quota_share: float = Field(ge=0, le=1)
    quota_gpu_hours: float | None = Field(default=None, ge=0)
    accounts_under: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    account_pattern: str | None = None

    @field_validator("account_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _matches_something(self) -> Category:
        if not (self.accounts_under or self.accounts or self.account_pattern):
            raise ValueError("needs accounts_under, accounts or account_pattern")
        return self


class Allocation(_Model):
    account: str = Field(min_length=1)
    gpu_hours: float = Field(gt=0)
    start: date
    end: date
    project: str | None = None
    access_mode: str | None = None
    country: str | None = None
    organisation: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Allocation:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class CommercialRule(_Model):
    category: str = "commercial"
    pool: str = "eurohpc"
    max_share_of_pool: float = Field(default=0.20, gt=0, le=1)


class EnergyFactors(_Model):
    """Optional factors that turn the IT energy Slurm records into facility-level
    estimates (each left out: that estimate is not shown)."""

    pue: float | None = Field(default=None, ge=1, le=5)          # facility kWh / IT kWh
    wue_l_per_kwh: float | None = Field(default=None, ge=0, le=100)  # litres of water per IT kWh
    carbon_g_per_kwh: float | None = Field(default=None, ge=0, le=2000)  # g CO2e per facility kWh


class EfficiencySettings(_Model):
    """`[efficiency]`: when a group's idle-allocated share of its GPU-hours with GPU
    data is worth an alert (the report flags it, the exporter publishes the threshold
    for the alert rule), and how many projects the report lists as most idle."""

    idle_share_alert: float = Field(default=0.3, gt=0, le=1)
    top_idle_projects: int = Field(default=10, ge=1, le=1000)


class Settings(_Model):
    facility: Facility
    slurm: Slurm
    slurmrestd: Slurmrestd = Slurmrestd()
    store: Store = Store()
    exporter: Exporter = Exporter()
    dashboard: Dashboard = Dashboard()
    pools: tuple[Pool, ...] = Field(min_length=1)
    categories: tuple[Category, ...] = Field(min_length=1)
    allocations: tuple[Allocation, ...] = ()
    wckeys: dict[str, str] = {}
    gpu_weights: dict[str, float] = {}
    commercial: CommercialRule = CommercialRule()
    energy: EnergyFactors = EnergyFactors()
    efficiency: EfficiencySettings = EfficiencySettings()

    @field_validator("gpu_weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in value.items() if w <= 0]
        if bad:
            raise ValueError(f"weights must be above 0: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = []
        pools = [p.name for p in self.pools]
        names = [c.name for c in self.categories]
        for kind, seen in (("pool", pools), ("category", names)):
            dupes = sorted({n for n in seen if seen.count(n) > 1})
            if dupes:
                problems.append(f"{kind} names used twice: {', '.join(dupes)}")
        for i, cat in enumerate(self.categories):
            if cat.pool not in pools:
                problems.append(f"categories[{i}] ({cat.name}): pool {cat.pool!r} is not one "
                                f"of the pools ({', '.join(pools)})")
        if sum(p.share for p in self.pools) > 1 + 1e-9:
            problems.append("pool shares add up to more than 1")
        if sum(c.quota_share for c in self.categories) > 1 + 1e-9:
            problems.append("category quota shares add up to more than 1")
        if self.commercial.category not in names or self.commercial.pool not in pools:
            problems.append(f"commercial rule names category {self.commercial.category!r} "
                            f"and pool {self.commercial.pool!r}; both must exist")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def resolve_path(path: Path | None) -> Path:
    """--config, else $GPU_USAGE_CONFIG, else ./facility.toml."""
    if path is not None:
        return path
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path.cwd() / DEFAULT_FILE


def _location(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load(path: Path | None = None) -> Settings:
    """Read and validate the policy file; raise ConfigError naming the file and keys."""
    file = resolve_path(path)
    try:
        raw = tomllib.loads(file.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{file}: no such file (give --config or set {ENV_VAR})") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start}): a policy file is "
                          "TOML, which is UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{file}: {exc.error_count()} problem(s):"]
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {_location(err['loc'])}: {msg}")
        raise ConfigError("\n".join(lines)) from exc
