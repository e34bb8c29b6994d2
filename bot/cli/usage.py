"""`bot.py usage [--json]`: campaigns and money per user, channel and server.

Read from the audit ledger (see core/quotas.py): every stored campaign with
its estimate and what its steps cost so far, and every refused or blocked
request. Ids are shown as the ledger keeps them (`slack:U123`,
`discord:555`); campaigns started in the terminal have no user or channel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from bot.cli.console import inert
from bot.words import usd
from core.quotas import SpendLine
from core.store_ports import SpendLedger

SCOPES = (
    ("user", "users", "user"),
    ("channel", "channels", "channel"),
    ("guild", "guilds", "server / workspace"),
)
NO_KEY = {"user": "(terminal)", "channel": "(none)", "guild": "(none)"}


async def usage(
    store: SpendLedger,
    *,
    as_json: bool,
    out: Console,
    days: float | None = None,
) -> int:
    """Print spend per user, channel and server (the last `days` only, if given); exit code."""
    since = time.time() - days * 86_400 if days else None
    lines = list(await store.spend_by(since))
    if as_json:
        out.print(
            json.dumps(report(lines, since), indent=2),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        for table in tables(lines, since):
            out.print(table)
    return 0


def report(lines: Sequence[SpendLine], since: float | None) -> dict[str, Any]:
    """The JSON form: one list per scope, biggest spender first, and the totals."""
    users = [ln for ln in lines if ln.scope == "user"]  # every request is in exactly one
    data: dict[str, Any] = {
        "since": _iso(since),
        "total": {
            "campaigns": sum(ln.campaigns for ln in users),
            "refused": sum(ln.refused for ln in users),
            "estimate_usd": round(sum(ln.estimate_usd for ln in users), 6),
            "cost_usd": round(sum(ln.cost_usd for ln in users), 6),
        },
    }
    for scope, plural, _title in SCOPES:
        data[plural] = [
            {
                "id": ln.key or None,
                "campaigns": ln.campaigns,
                "refused": ln.refused,
                "estimate_usd": ln.estimate_usd,
                "cost_usd": ln.cost_usd,
            }
            for ln in lines
            if ln.scope == scope
        ]
    return data


def tables(lines: Sequence[SpendLine], since: float | None) -> list[Table]:
    """One rich table per scope; ids are shown literally (never as markup)."""
    period = f"since {_iso(since)}" if since else "all time"
    found: list[Table] = []
    for scope, _plural, title in SCOPES:
        table = Table(title=f"Spend per {title} ({period})", title_justify="left")
        table.add_column(title)
        for name in ("campaigns", "refused", "estimated", "cost"):
            table.add_column(name, justify="right")
        for ln in (ln for ln in lines if ln.scope == scope):
            table.add_row(
                inert(ln.key or NO_KEY[scope]),
                str(ln.campaigns),
                str(ln.refused),
                usd(ln.estimate_usd),
                usd(ln.cost_usd),
            )
        if not table.row_count:
            table.add_row(inert("nothing yet"), "0", "0", usd(0), usd(0))
        found.append(table)
    return found


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
