"""sacctmgr text to the account tree and the capacity history (pure; no I/O).

Each function names the `format=` it reads (`*_FORMAT`), the same tuple the door
asks for; a free-text field comes last so that a `|` inside it is kept (but for
`show account`, which has two). Times are read as printed with TZ=UTC, like sacct's.

sacctmgr has no `--delimiter`, and an account's organisation and description are
free text that account coordinators may write (`account_texts` says how they are
read without letting one account's text become another's).
"""

from __future__ import annotations

from collections import Counter

import msgspec

from collector.slurm.records import Event, Reservation
from collector.slurm.sacct_parser import FieldError, Rejected, parse_time, parse_tres

ASSOC_FORMAT = ("Account", "User", "ParentName", "GrpTRESMins")
ACCOUNT_FORMAT = ("Account", "Organization", "Description")
EVENT_FORMAT = ("Cluster", "ClusterNodes", "NodeName", "Start", "End", "Event", "State",
                "TRES", "Reason")
RESERVATION_FORMAT = ("Cluster", "ID", "Name", "Start", "End", "Flags", "NodeNames", "TRES")


class Account(msgspec.Struct, frozen=True):
    account: str
    parent: str                 # "" for root
    organisation: str
    description: str
    grp_gpu_minutes: int | None  # GrpTRESMins=gres/gpu=N of the account, if any
    users: tuple[str, ...]


def _rows(text: str, fields: tuple[str, ...], what: str) -> list[dict[str, str]]:
    rows = []
    # "\n" only: sacctmgr ends rows with it, and an organisation or a reason may hold
    # any other line-breaking character (U+2028, \r, \x1c...) as text.
    for line_no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        parts = line.split("|", len(fields) - 1)
        if len(parts) != len(fields):
            raise FieldError(f"sacctmgr {what}, line {line_no}: {len(parts)} fields, expected "
                             f"{len(fields)}: {line[:200]!r}")
        rows.append(dict(zip(fields, parts, strict=True)))
    return rows


def gpu_minutes(tres: str) -> int | None:
    """gres/gpu=N of a GrpTRESMins string (untyped entry), else None."""
    for item in filter(None, tres.split(",")):
        key, _, value = item.partition("=")
        if key == "gres/gpu" and value.isascii() and value.isdigit():
            return int(value)
    return None


def account_texts(text: str) -> tuple[dict[str, tuple[str, str]], list[Rejected]]:
    """Account -> (organisation, description), from `sacctmgr show account` with
    ACCOUNT_FORMAT, and the lines that could not be read.

    Either text may hold a `|` or a line break, which sacctmgr prints raw: a `|` makes
    the row's split ambiguous, a line break makes the rest of the text a line of its
    own, which may even look like another account's row. So a row of more than three
    fields, an account that more than one line starts with (one of them written inside
    someone's text), the row before a line that is no row and the rows before a
    repeated account's rows (their text may run on into it) are all left without
    text, and their lines are rejected with the reason: no text ever moves to another
    account.
    (A line break followed by something shaped like a row of an account that does not
    exist cuts the text before it short; it cannot be told from a real row.)"""
    lines = text.split("\n")  # "\n" only: other line-breaking characters are text
    if lines and lines[-1] == "":
        lines.pop()
    rows: list[tuple[int, str, list[str]]] = []  # (line number, account, fields)
    loose: list[tuple[int, str]] = []            # lines that are no row
    unsure: dict[int, str] = {}                  # row index -> why its text is not used
    # Every line that starts like a line of an account's row: a real row whose
    # organisation holds a line break has a first line of two fields only, and a
    # forged row of that account must still count as its second.
    heads: Counter[str] = Counter()
    for line_no, line in enumerate(lines, 1):
        parts = line.split("|")
        if len(parts) > 1 and parts[0]:
            heads[parts[0]] += 1
        if len(parts) < len(ACCOUNT_FORMAT) or not parts[0]:
            loose.append((line_no, line))
            if rows:
                unsure.setdefault(len(rows) - 1, "a line that is no row follows (its text "
                                  "may run over a line break)")
            continue
        if len(parts) > len(ACCOUNT_FORMAT):
            unsure[len(rows)] = "a | in its organisation or description"
        rows.append((line_no, parts[0], parts))
    repeated = {a for a, n in heads.items() if n > 1}
    for i, (_, account, _) in enumerate(rows):
        if account in repeated:
            unsure[i] = f"account {account} is on more than one row"
            if i > 0:
                unsure.setdefault(i - 1, "its text may run on into the next row")
    texts = {account: ("", "") if i in unsure else (parts[1], parts[2])
             for i, (_, account, parts) in enumerate(rows)}
    rejected = [Rejected(rows[i][0], f"sacctmgr show account: {why}; the account's "
                         "organisation and description are left out", lines[rows[i][0] - 1])
                for i, why in unsure.items()]
    rejected += [Rejected(n, "sacctmgr show account: not a row (text after a line break "
                             "in an organisation or description)", line) for n, line in loose]
    return texts, sorted(rejected, key=lambda r: r.line_no)


def parse_accounts(assoc_text: str, account_text: str) -> tuple[list[Account], list[Rejected]]:
    """The account tree: account associations give parent and budget; user
    associations give the users of each account; `show account` the organisation
    (`account_texts`). With the lines of `show account` that could not be read."""
    texts, rejected = account_texts(account_text)
    parents: dict[str, str] = {}
    budgets: dict[str, int | None] = {}
    users: dict[str, list[str]] = {}
    for r in _rows(assoc_text, ASSOC_FORMAT, "show assoc"):
        if r["User"]:
            users.setdefault(r["Account"], []).append(r["User"])
        else:
            parents[r["Account"]] = r["ParentName"]
            budgets[r["Account"]] = gpu_minutes(r["GrpTRESMins"])
    return [Account(a, parents[a], *texts.get(a, ("", "")), budgets[a],
                    tuple(sorted(set(users.get(a, ()))))) for a in sorted(parents)], rejected


def _node_count(tres: str) -> int:
    for item in tres.split(","):
        key, _, value = item.partition("=")
        if key == "node" and value.isascii() and value.isdigit():
            return int(value)
    return 0


def parse_events(text: str) -> list[Event]:
    events = []
    for r in _rows(text, EVENT_FORMAT, "show events"):
        start = parse_time(r["Start"], "Start")
        if start is None:
            raise FieldError(f"sacctmgr show events: event without a start: {r}")
        gpus, _ = parse_tres(r["TRES"])
        cluster = r["Event"] == "Cluster"
        events.append(Event(
            "cluster" if cluster else "node", r["ClusterNodes"] if cluster else r["NodeName"],
            start, parse_time(r["End"], "End"), r["State"], r["Reason"], gpus,
            _node_count(r["TRES"]) if cluster else 1))
    return events


def parse_reservations(text: str) -> list[Reservation]:
    out = []
    for r in _rows(text, RESERVATION_FORMAT, "show reservation"):
        start, end = parse_time(r["Start"], "Start"), parse_time(r["End"], "End")
        if start is None or end is None or not (r["ID"].isascii() and r["ID"].isdigit()):
            raise FieldError(f"sacctmgr show reservation: unreadable row {r}")
        gpus, _ = parse_tres(r["TRES"])
        has_gpu = any(t.startswith("gres/gpu=") for t in r["TRES"].split(","))
        out.append(Reservation(int(r["ID"]), r["Name"], start, end,
                               tuple(f for f in r["Flags"].split(",") if f), r["NodeNames"],
                               gpus if has_gpu else None))
    return out
