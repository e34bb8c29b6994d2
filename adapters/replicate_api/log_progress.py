"""A running prediction's progress as a percentage, read from its logs.

Replicate does not report progress as a field; models print it. Most print
tqdm bars (`' 45%|████▌     | 9/20 [00:03<00:04,  2.43it/s]'`), rewritten in
place with carriage returns; some print only the counts (`9/20 [00:03<...]`).
The last bar in the logs is the current one.
"""

from __future__ import annotations

import re

_PERCENT = re.compile(r"(\d{1,3})%\|")
_COUNTS = re.compile(r"(?<![\d/])(\d+)/(\d+) \[")


def percent(logs: str | None) -> int | None:
    """The latest progress percentage (0-100) in `logs`, or None if they show none."""
    if not logs:
        return None
    tail = logs[-4000:]  # the last bar is near the end; logs can be long
    found = list(_PERCENT.finditer(tail))
    if found:
        value = int(found[-1].group(1))
        return value if value <= 100 else None
    counts = list(_COUNTS.finditer(tail))
    if counts:
        done, total = int(counts[-1].group(1)), int(counts[-1].group(2))
        if total > 0 and done <= total:
            return done * 100 // total
    return None
