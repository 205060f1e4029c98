"""The facility policy: one TOML file, validated once at start-up into typed settings.

Path: `--config`, else $GPU_USAGE_CONFIG, else ./facility.toml. A problem is reported
with the file and the key (`categories[2].quota_share`); the policy-wide checks
(pools, shares, the commercial rule) report every problem they find at once.

The sections are msgspec Structs, validated by msgspec.convert (C, about 5 ms to
import and define them all; pydantic took about 0.1 s of every command's start,
half of a month's report). A section built in code (`Exporter(port=...)`) is not
type-checked; everything read from a file goes through `parse`.
"""

from __future__ import annotations

import os
import re
import tomllib
import unicodedata
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

ENV_VAR = "GPU_USAGE_CONFIG"
DEFAULT_FILE = "facility.toml"


class ConfigError(ValueError):
    """The policy file is missing, not TOML, or not valid; the message names file and key."""


class FieldError(ValueError):
    """A section's check that concerns one of its keys: the message is shown at
    `section.key` (msgspec places a section's own errors at the section)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _Model(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Facility(_Model):
    name: Annotated[str, Meta(min_length=1)]
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise FieldError("timezone", f"unknown time zone {self.timezone!r} "
                             "(e.g. Europe/Amsterdam)") from exc


# Slurm's own rule for names it stores (clusters, accounts): letters, digits, _ . -
# (\Z, not $: $ would let a trailing newline through)
SLURM_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z"


ClusterName = Annotated[str, Meta(pattern=SLURM_NAME)]
LOGIN = r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,127}\Z"  # a login / SSO user name (no spaces)
HEADER_NAME = r"^[A-Za-z0-9-]+\Z"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*\Z"
HEADER = Annotated[str, Meta(pattern=HEADER_NAME)]
# Characters that do not show as themselves: control, format (bidi, zero-width, soft
# hyphen), surrogates and line or paragraph separators.
HIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def shows_as_is(text: str, limit: int) -> bool:
    """Text of 1 to `limit` characters, none of them HIDDEN_CATEGORIES: a name a report,
    a terminal or a page shows as what it is (any script)."""
    return 0 < len(text) <= limit and not any(
        unicodedata.category(ch) in HIDDEN_CATEGORIES for ch in text)


def _shown_name(text: str) -> None:
    # A pool's or category's name: so that every site's export of it passes the
    # network report's check (store.parquet.plain_name).
    if not shows_as_is(text, 100):
        raise FieldError("name", "not a name a report can show (1-100 characters, no "
                                 "control, format or line-separating character)")


class Slurm(_Model):
    """`[slurm]`: the cluster (`cluster = "name"`) or the clusters of one facility
    (`clusters = ["a", "b"]`, each read through sacct --clusters=NAME), and how to
    read them. Everything is stored and reported per cluster; reports, pages and
    metrics show one cluster or the facility."""

    # Reaches sacct/sacctmgr/sreport as an argument (never through a shell): checked.
    clusters: Annotated[tuple[ClusterName, ...], Meta(min_length=1, max_length=64)]
    source: Literal["sacct", "slurmrestd", "pyslurm"] = "sacct"
    history_start: date | None = None
    window_hours: Annotated[float, Meta(ge=1, le=24 * 366)] = 24.0 * 31
    lookback_hours: Annotated[float, Meta(ge=0, le=24 * 31)] = 6.0
    timeout_s: Annotated[float, Meta(gt=0)] = 600.0
    # GPU use from job steps (gres/gpuutil, gres/gpumem; Slurm 23.02+ with a GPU
    # plugin): "auto" reads steps when slurmdbd has those TRES, "off" never does.
    gpu_steps: Literal["auto", "off"] = "auto"

    def __post_init__(self) -> None:
        # Slurm compares cluster names case-insensitively (sacct -M, slurmdbd's tables).
        seen = [c.lower() for c in self.clusters]
        dupes = sorted({c for c in self.clusters if seen.count(c.lower()) > 1})
        if dupes:
            raise FieldError("clusters", f"clusters listed twice: {', '.join(dupes)}")
        if "all" in seen:  # sacct -M all reads every cluster of the slurmdbd
            raise FieldError("clusters", "'all' is not a cluster name (sacct --clusters=all "
                             "reads every cluster); list the clusters by name")
        # slurmrestd's job-by-id endpoint and pyslurm's live view answer for their own
        # cluster only: several clusters are read with sacct's --clusters.
        if self.several and self.source != "sacct":
            raise ValueError(f'several clusters are read with source = "sacct" (sacct '
                             f'--clusters); the {self.source} door reads one cluster')

    @property
    def several(self) -> bool:
        return len(self.clusters) > 1


def _one_or_many(raw: dict) -> dict:
    """`cluster = "name"` is `clusters = ["name"]`."""
    slurm = raw.get("slurm")
    if not (isinstance(slurm, dict) and "cluster" in slurm):
        return raw
    if "clusters" in slurm:
        raise ConfigError('slurm: give either cluster = "name" or clusters = [...], not both')
    slurm = {**slurm, "clusters": [slurm["cluster"]]}
    del slurm["cluster"]
    return {**raw, "slurm": slurm}


class Slurmrestd(_Model):
    """`[slurm] source = "slurmrestd"`: where slurmrestd listens and how to prove who
    we are. `unix:/path` uses local authentication (no token); `http(s)://host:port`
    needs a JWT, read from `token_file` or the environment variable `token_env` at
    collection time (never stored in the settings, never logged)."""

    url: str = "unix:/run/slurmrestd/slurmrestd.socket"
    user: Annotated[str, Meta(pattern=LOGIN)] | None = None
    token_file: Path | None = None
    token_env: str = "SLURM_JWT"

    def __post_init__(self) -> None:
        if not re.match(r"^(unix:/|https?://)", self.url):
            raise FieldError("url", f"{self.url!r} must start with unix:/, http:// or https://")
        if self.url.startswith("http://"):
            # The JWT goes in a header: over plain HTTP anyone on the path reads it.
            host = urlsplit(self.url).hostname or ""
            if not is_loopback(host):
                raise FieldError("url", f"{self.url!r} would send the JWT in clear text to "
                                 f"{host}: use https://, a slurmrestd on this host "
                                 "(127.0.0.1), or unix:/")


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
    port: Annotated[int, Meta(ge=1, le=65535)] = 9877
    live_refresh_s: Annotated[float, Meta(ge=1)] = 30.0    # squeue/sinfo at most this often
    store_poll_s: Annotated[float, Meta(ge=1)] = 15.0      # look for a finished collection
    store_refresh_s: Annotated[float, Meta(ge=10)] = 300.0  # rebuild anyway (running jobs, "now")
    slurm_timeout_s: Annotated[float, Meta(gt=0)] = 20.0
    project_labels: bool = False                           # gpu_usage_allocation_*{project}




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

    user_header: HEADER = "X-Remote-User"
    secret_header: HEADER = "X-GPU-Usage-Proxy-Secret"
    proxy_secret_file: Path | None = None
    proxy_secret_env: Annotated[str, Meta(pattern=ENV_NAME)] | None = None
    operators: tuple[str, ...] = ()
    pis: dict[str, tuple[str, ...]] = {}

    def __post_init__(self) -> None:
        bad = [u for u in self.operators if not re.match(LOGIN, u)]
        if bad:
            raise FieldError("operators", f"not a user name: {', '.join(map(repr, bad))}")
        bad = [u for u in self.pis if not re.match(LOGIN, u)]
        if bad:
            raise FieldError("pis", f"not a user name: {', '.join(map(repr, bad))}")
        empty = [u for u, accounts in self.pis.items() if not accounts]
        if empty:
            raise FieldError("pis", f"no accounts listed for {', '.join(empty)}")
        if (self.proxy_secret_file is None) == (self.proxy_secret_env is None):
            raise ValueError("give exactly one of proxy_secret_file and proxy_secret_env "
                             "(the secret the reverse proxy sends in secret_header)")
        both = sorted(set(self.operators) & set(self.pis))
        if both:
            raise ValueError(f"both operator and PI: {', '.join(both)}; list each user once")
        if self.user_header.lower() == self.secret_header.lower():
            raise ValueError("user_header and secret_header must differ")


class Dashboard(_Model):
    """`gpu-usage dashboard`: where the Streamlit app listens. Without `[dashboard.auth]`
    every visitor is an operator, so it listens on localhost only; with it, it expects
    the facility's reverse proxy (single sign-on) in front."""

    address: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 8501
    auth: Auth | None = None

    def __post_init__(self) -> None:
        if self.auth is None and not is_loopback(self.address):
            raise ValueError(f"address {self.address!r} is not localhost, but there is no "
                             "[dashboard.auth]: without it every visitor would see "
                             "everything; configure the reverse proxy and [dashboard.auth], "
                             "or listen on 127.0.0.1")


def is_loopback(address: str) -> bool:
    import ipaddress
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Pool(_Model):
    name: str
    share: Annotated[float, Meta(gt=0, le=1)]

    def __post_init__(self) -> None:
        _shown_name(self.name)


class Category(_Model):
    name: str
    pool: str
    quota_share: Annotated[float, Meta(ge=0, le=1)]
    quota_gpu_hours: Annotated[float, Meta(ge=0)] | None = None
    accounts_under: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    account_pattern: str | None = None

    def __post_init__(self) -> None:
        _shown_name(self.name)
        if self.account_pattern is not None:
            try:
                re.compile(self.account_pattern)
            except re.error as exc:
                raise FieldError("account_pattern",
                                 f"not a regular expression: {exc}") from exc
        if not (self.accounts_under or self.accounts or self.account_pattern):
            raise ValueError("needs accounts_under, accounts or account_pattern")


class Allocation(_Model):
    account: Annotated[str, Meta(min_length=1)]
    gpu_hours: Annotated[float, Meta(gt=0)]
    start: date
    end: date
    project: str | None = None
    access_mode: str | None = None
    country: str | None = None
    organisation: str | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")


class CommercialRule(_Model):
    category: str = "commercial"
    pool: str = "eurohpc"
    max_share_of_pool: Annotated[float, Meta(gt=0, le=1)] = 0.20


class EnergyFactors(_Model):
    """Optional factors that turn the IT energy Slurm records into facility-level
    estimates (each left out: that estimate is not shown)."""

    pue: Annotated[float, Meta(ge=1, le=5)] | None = None          # facility kWh / IT kWh
    wue_l_per_kwh: Annotated[float, Meta(ge=0, le=100)] | None = None  # litres water / IT kWh
    carbon_g_per_kwh: Annotated[float, Meta(ge=0, le=2000)] | None = None  # g CO2e / fac. kWh


class EfficiencySettings(_Model):
    """`[efficiency]`: when a group's idle-allocated share of its GPU-hours with GPU
    data is worth an alert (the report flags it, the exporter publishes the threshold
    for the alert rule), and how many projects the report lists as most idle."""

    idle_share_alert: Annotated[float, Meta(gt=0, le=1)] = 0.3
    top_idle_projects: Annotated[int, Meta(ge=1, le=1000)] = 10


class Settings(_Model, kw_only=True):
    facility: Facility
    slurm: Slurm
    slurmrestd: Slurmrestd = Slurmrestd()
    store: Store = Store()
    exporter: Exporter = Exporter()
    dashboard: Dashboard = Dashboard()
    pools: Annotated[tuple[Pool, ...], Meta(min_length=1)]
    categories: Annotated[tuple[Category, ...], Meta(min_length=1)]
    allocations: tuple[Allocation, ...] = ()
    wckeys: dict[str, str] = {}
    gpu_weights: dict[str, float] = {}
    commercial: CommercialRule = CommercialRule()
    energy: EnergyFactors = EnergyFactors()
    efficiency: EfficiencySettings = EfficiencySettings()

    def __post_init__(self) -> None:
        bad = [k for k, w in self.gpu_weights.items() if not 0 < w < float("inf")]  # nan too
        if bad:
            raise FieldError("gpu_weights", f"weights must be above 0 (and finite): "
                             f"{', '.join(bad)}")
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


def resolve_path(path: Path | None) -> Path:
    """--config, else $GPU_USAGE_CONFIG, else ./facility.toml."""
    if path is not None:
        return path
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path.cwd() / DEFAULT_FILE


def _path(kind: type, value: object) -> object:
    """msgspec's hook for the one type it does not know: paths are TOML strings."""
    if kind is Path:
        if isinstance(value, Path):
            return value
        if isinstance(value, str) and value and "\0" not in value:
            return Path(value)
        raise ValueError("expected a path (a non-empty string)")
    raise NotImplementedError(kind)


# What a name check means, in words (msgspec's message shows the regular expression).
_PATTERN_WORDS = {
    SLURM_NAME: "not a Slurm name (letters, digits, _ . -; at most 64; no space)",
    LOGIN: "not a user name (letters, digits, _ . @ + -; no space)",
    HEADER_NAME: "not an HTTP header name (letters, digits, -)",
    ENV_NAME: "not an environment variable name (letters, digits, _)",
}
_MISSING = re.compile(r"^Object missing required field `(.+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.+)`$")


def _problem(exc: msgspec.ValidationError) -> str:
    """`key: message` from msgspec's `message - at `$.key``."""
    message, _, at = str(exc).rpartition(" - at `")
    if not _:
        message, at = str(exc), "$`"
    key = at.removesuffix("`").removeprefix("$").removeprefix(".")
    cause = exc.__cause__
    if isinstance(cause, FieldError):
        key = f"{key}.{cause.key}" if key else cause.key
    elif m := _MISSING.match(message):
        key, message = f"{key}.{m[1]}" if key else m[1], "required, not given"
    elif message.startswith("Expected `str` matching regex"):
        message = next((words for pattern, words in _PATTERN_WORDS.items()
                        if message.endswith(repr(pattern))), message)
    elif m := _UNKNOWN.match(message):
        key, message = f"{key}.{m[1]}" if key else m[1], "unknown key (misspelt?)"
    return f"{key or '(top level)'}: {message}"


T = TypeVar("T", bound=msgspec.Struct)


def parse(raw: dict, source: str = "policy", kind: type[T] = Settings) -> T:
    """Validate a policy (a TOML file's tables), or one section of it (`kind`); raise
    ConfigError naming `source` and the key."""
    try:
        return msgspec.convert(_one_or_many(raw) if kind is Settings else raw, kind,
                               dec_hook=_path)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_problem(exc)}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def as_plain(settings: Settings) -> dict:
    """The settings as JSON gives them back: tables, lists, strings (paths and dates
    too), numbers."""
    return msgspec.json.decode(msgspec.json.encode(settings, enc_hook=str))


def load(path: Path | None = None) -> Settings:
    """Read and validate the policy file; raise ConfigError naming the file and key."""
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
    return parse(raw, str(file))
