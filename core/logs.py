"""Structured logs: one line per event, as text or as JSON (CAMPAIGN_LOG_FORMAT=json).

An event is an ordinary log record whose fields travel as `extra=`: for example
`log_event(log, "step.finished", "...", campaign_id=..., step="image",
duration_s=1.2, outcome="succeeded")`. The text format shows the message; the
JSON format writes one object per line with `ts`, `level`, `logger`, `msg` and
every extra field, so a log collector can filter by campaign id, step or outcome.

Secrets are never passed to a log call; as a second line of defence both
formats blank anything shaped like a Replicate, Slack or Discord token, a
webhook secret or a bearer credential.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

from core.model import StepRecord

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
_SECRETS = re.compile(
    r"r8_[A-Za-z0-9]{10,}"  # Replicate API token
    r"|xox[a-z]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"  # Slack bot/user and app tokens
    r"|whsec_[A-Za-z0-9+/=]{10,}"  # webhook signing secret
    r"|[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"  # Discord bot token
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{12,}|(?<=Bot )[A-Za-z0-9._~+/=-]{12,}"
)
_STANDARD = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def redact(text: str) -> str:
    """`text` with anything shaped like a secret replaced by [redacted]."""
    return _SECRETS.sub(REDACTED, text)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call passed as `extra=`."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, the extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in extra_fields(record).items():
            data[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic one-line text format, with secrets blanked."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The record as text."""
        return redact(super().format(record))


def configure(fmt: str = "text", *, verbose: bool = False, stream: IO[str] | None = None) -> None:
    """Send every log record to stderr (or `stream`) in `fmt` ("text" or "json").

    Text logs warnings unless `verbose`; JSON logs events (INFO) too, since it
    is meant for a collector.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (allowed: {', '.join(LOG_FORMATS)})")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    level = logging.INFO if verbose or fmt == "json" else logging.WARNING
    logging.basicConfig(level=level, handlers=[handler], force=True)


def log_event(
    logger: logging.Logger,
    event: str,
    message: str,
    /,
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log one event: `message` for people, `event` and `fields` for machines."""
    logger.log(level, "%s", message, extra={"event": event, **fields})


def step_fields(campaign_id: str, step: StepRecord) -> dict[str, Any]:
    """The fields of a finished step's log line."""
    duration = (
        round(step.finished_at - step.started_at, 3)
        if step.started_at is not None and step.finished_at is not None
        else None
    )
    return {
        "event": "step.finished",
        "campaign_id": campaign_id,
        "product": step.product_index,
        "step": step.name.value,
        "duration_s": duration,
        "outcome": step.status.value,
        "attempts": step.attempts,
        "cost_usd": step.cost_usd,
        "model": step.model,
    }
