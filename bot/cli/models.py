"""`bot.py models`: the configured Replicate model of each kind, as mapped and priced."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO


def print_models(rows: Sequence[Mapping[str, Any]], out: TextIO, *, as_json: bool) -> None:
    """One block per kind (or the rows as JSON)."""
    if as_json:
        print(json.dumps(list(rows), indent=2), file=out)
        return
    for row in rows:
        version = f" (version {row['version'][:12]})" if row.get("version") else ""
        print(f"{row['kind']}: {row['model']}{version}", file=out)
        inputs = row["inputs"]
        if isinstance(inputs, Mapping):
            text = ", ".join(f"{role} -> {name}" for role, name in inputs.items() if role != "sent")
        else:
            text = str(inputs)
        print(f"  inputs:   {text}", file=out)
        for problem in row.get("problems") or ():
            print(f"  cannot:   it has no {problem}", file=out)
        by = row.get("prices_by_resolution") or {}
        price = ", ".join(f"{k} ${v:g}" for k, v in by.items()) if by else f"${row['price_usd']:g}"
        print(f"  price:    {price} per {row['unit']} (from {row['price_source']})", file=out)
        typical = f", typically {row['typical_s']:g} s" if row.get("typical_s") else ""
        print(f"  estimate: ${row['estimate_usd']:g} a prediction{typical}", file=out)
        print(f"  requests may name: {', '.join(row['requestable'])}", file=out)
        if row.get("error"):
            print(f"  warning:  {row['error']}", file=out)
