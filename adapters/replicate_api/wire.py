"""Replicate's prediction JSON as typed values, parsed once where it enters the bot.

Shaped after the API's published prediction object (and the `replicate`
package's `Prediction`): `id`, `model`, `version`, `input`, `output`, `logs`,
`error`, `status` (starting, processing, succeeded, failed, canceled,
aborted), `data_removed`, `created_at` / `started_at` / `completed_at`
(ISO-8601), `metrics` (`predict_time`, `total_time`, token counts of language
models) and `urls` (`get`, `cancel`, `stream`, `web`). Fields the bot does not
use (`source`, `deployment`, ...) are ignored; every one but `id` and
`status` may be missing. An answer without a string `id` or a known `status`
is not a prediction (`NotAPrediction`).

`input` and `output` stay JSON: they are the model's own, shaped by its schema.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Where a prediction is (Replicate's `status`)."""

    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ABORTED = "aborted"  # ended by Replicate before it ran (e.g. a `Cancel-After` deadline)


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.ABORTED})


class NotAPrediction(ValueError):
    """JSON that lacks a prediction's `id` or a known `status`."""


@dataclass(frozen=True, slots=True)
class Metrics:
    """What Replicate measured of a prediction; None where it reported nothing."""

    predict_time: float | None = None  # seconds of compute (what per-second models bill)
    total_time: float | None = None  # seconds from create to finish
    input_token_count: float | None = None  # language models
    output_token_count: float | None = None

    @classmethod
    def from_json(cls, data: object) -> Metrics:
        """The `metrics` object of a prediction (anything else: nothing measured)."""
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            predict_time=number(data.get("predict_time")),
            total_time=number(data.get("total_time")),
            input_token_count=number(data.get("input_token_count")),
            output_token_count=number(data.get("output_token_count")),
        )


@dataclass(frozen=True, slots=True)
class Urls:
    """A prediction's API and web addresses."""

    get: str | None = None
    cancel: str | None = None
    stream: str | None = None
    web: str | None = None

    @classmethod
    def from_json(cls, data: object) -> Urls:
        """The `urls` object of a prediction (or of an uploaded file)."""
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            get=text(data.get("get")),
            cancel=text(data.get("cancel")),
            stream=text(data.get("stream")),
            web=text(data.get("web")),
        )


@dataclass(frozen=True, slots=True)
class Prediction:
    """One prediction as the API last showed it."""

    id: str
    status: Status
    model: str | None = None  # may name an internal deployment rather than the model asked
    version: str | None = None
    input: Mapping[str, Any] | None = None  # as echoed back (a list may leave `data:` out)
    output: object = None  # the model's JSON: a URL, a list of URLs or text pieces, ...
    logs: str | None = None
    error: str | None = None
    data_removed: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    metrics: Metrics = field(default_factory=Metrics)
    urls: Urls = field(default_factory=Urls)

    @classmethod
    def from_json(cls, data: object) -> Prediction:
        """Parse the API's JSON; NotAPrediction without an `id` or a known `status`."""
        if not isinstance(data, Mapping):
            raise NotAPrediction("not a JSON object")
        pid = data.get("id")
        if not isinstance(pid, str) or not pid:
            raise NotAPrediction("no prediction id")
        try:
            status = Status(str(data.get("status")))
        except ValueError:
            raise NotAPrediction(f"unknown status {data.get('status')!r}") from None
        echoed = data.get("input")
        error = data.get("error")
        return cls(
            id=pid,
            status=status,
            model=text(data.get("model")),
            version=text(data.get("version")),
            input=dict(echoed) if isinstance(echoed, Mapping) else None,
            output=data.get("output"),
            logs=data.get("logs") if isinstance(data.get("logs"), str) else None,
            error=str(error) if error else None,
            data_removed=bool(data.get("data_removed")),
            created_at=moment(data.get("created_at")),
            started_at=moment(data.get("started_at")),
            completed_at=moment(data.get("completed_at")),
            metrics=Metrics.from_json(data.get("metrics")),
            urls=Urls.from_json(data.get("urls")),
        )

    @property
    def done(self) -> bool:
        """Finished one way or another: it will not change any more."""
        return self.status in TERMINAL

    def server_duration(self) -> float | None:
        """Seconds from created_at to completed_at, by the API's own clock."""
        created, completed = epoch(self.created_at), epoch(self.completed_at)
        if created is None or completed is None or completed < created:
            return None
        return completed - created


def text(value: object) -> str | None:
    """A non-empty JSON string, else None."""
    return value if isinstance(value, str) and value else None


def number(value: object) -> float | None:
    """A finite JSON number (or numeric string) as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        result = float(value)
    except ValueError:
        return None
    return result if math.isfinite(result) else None


def moment(value: object) -> datetime | None:
    """An ISO-8601 time from the API, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def epoch(moment: datetime | None) -> float | None:
    """Epoch seconds of a time from the API (one without a zone is local), or None."""
    return None if moment is None else moment.timestamp()
