"""Who is looking, and what they may see (pure: headers and settings in, a Viewer out).

The dashboard runs behind the facility's reverse proxy. With `[dashboard.auth]` it
trusts the proxy's user header only on a request that also carries the proxy's
shared secret (compared in constant time); without `[dashboard.auth]` it listens on
localhost only and the local visitor is an operator. An operator sees everything; a
PI sees only their projects (Slurm accounts) and the users who ran jobs there;
anyone else sees nothing. `scope_report` cuts a report down to a PI's projects by
keeping only what is known to be theirs (a whitelist: a new report section stays
hidden from PIs until someone decides it is theirs to see).
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from collector.config import LOGIN, Auth, ConfigError
from collector.engine.model import ProjectsReport, Report, Scope
from collector.secretfile import SecretFileError, read_secret_file

Role = Literal["operator", "pi", "none"]


class Viewer(msgspec.Struct, frozen=True):
    user: str | None
    role: Role
    accounts: frozenset[str] = msgspec.field(default_factory=frozenset)
    why: str = ""          # for "none": what is missing (never the secret)

    @property
    def operator(self) -> bool:
        return self.role == "operator"

    def may_see(self, account: str) -> bool:
        return self.role == "operator" or (self.role == "pi" and account in self.accounts)


LOCAL = Viewer("local", "operator", why="no [dashboard.auth]: localhost only, every "
               "visitor is an operator")


def read_secret(auth: Auth) -> str:
    """The proxy's shared secret, from its file or environment variable. The error
    names where it looked, never what it found."""
    if auth.proxy_secret_file is not None:
        try:
            secret = read_secret_file(auth.proxy_secret_file, "proxy_secret_file")
        except SecretFileError as exc:
            raise ConfigError(f"[dashboard.auth] {exc}") from exc
        where = f"proxy_secret_file {auth.proxy_secret_file}"
    else:
        secret = os.environ.get(auth.proxy_secret_env or "", "").strip()
        where = f"environment variable {auth.proxy_secret_env}"
    if len(secret) < 16:
        raise ConfigError(f"[dashboard.auth] {where}: the proxy secret is missing or shorter "
                          "than 16 characters (e.g. `openssl rand -hex 32`)")
    return secret


def viewer(auth: Auth | None, headers: Mapping[str, str], secret: str | None,
           repeated: Iterable[str] = ()) -> Viewer:
    """The viewer of one request, from its headers (names compared case-insensitively;
    `repeated`: the names the request carries more than once)."""
    if auth is None:
        return LOCAL
    twice = {k.lower() for k in repeated} & {auth.user_header.lower(),
                                            auth.secret_header.lower()}
    if twice:
        # A proxy that adds its header after the client's would leave the client's
        # first: which one counts is not for the dashboard to guess.
        return Viewer(None, "none", why=f"the request carries {sorted(twice)[0]} more than "
                      "once; the proxy must replace it, not add to it")
    lower = {k.lower(): v for k, v in headers.items()}
    sent = lower.get(auth.secret_header.lower(), "")
    if not secret or not hmac.compare_digest(sent.encode(), secret.encode()):
        return Viewer(None, "none", why="this request did not come through the facility's "
                      "proxy (its secret header is missing or wrong)")
    user = lower.get(auth.user_header.lower(), "").strip()
    if not user:
        return Viewer(None, "none", why=f"the proxy sent no user ({auth.user_header} is empty)")
    if re.match(LOGIN, user) is None:
        return Viewer(None, "none", why="the proxy sent a user name that is not a login")
    if user in auth.operators:
        return Viewer(user, "operator")
    if user in auth.pis:
        return Viewer(user, "pi", frozenset(auth.pis[user]))
    return Viewer(user, "none", why=f"{user} has no role here; ask the facility's operators")


def scope_report(report: Report, who: Viewer) -> Report | ProjectsReport:
    """The report as `who` may see it: whole for an operator; for a PI only the
    facility/period header and the rows of their own accounts (accounts, users,
    allocations); for anyone else nothing."""
    if who.operator:
        return report
    if who.role != "pi":
        raise PermissionError(who.why or "no access")
    mine = who.accounts
    return ProjectsReport(
        facility=report.facility, cluster=report.cluster, generated_s=report.generated_s,
        last_collection_s=report.last_collection_s, period=report.period,
        scope=Scope(who.user, tuple(sorted(mine))),
        accounts=tuple(a for a in report.accounts if a.account in mine),
        users=tuple(u for u in report.users if u.account in mine),
        allocations=tuple(a for a in report.allocations if a.account in mine))
