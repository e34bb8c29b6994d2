"""What a paid create sent: the input as stored with its intent, and whether a prediction
found on Replicate is that create's (adoption after an ambiguous answer or a crash)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from adapters.replicate_api.models import ModelRef
from adapters.replicate_api.wire import Prediction


def matches_sent(prediction: Prediction, model: ModelRef, inputs: Mapping[str, Any]) -> bool:
    """Ours if the input matches (and the version, when pinned); the model name may differ.

    A `data:` input may not be echoed back as sent (the list endpoint may leave it out
    or show a file URL instead): any string, or none, matches it.
    """
    echoed = prediction.input
    if echoed is None or set(echoed) - set(inputs):
        return False
    for key, value in inputs.items():
        if _is_data(value):
            if not isinstance(echoed.get(key, ""), str):
                return False
        elif key not in echoed or echoed[key] != value:
            return False
    return model.version is None or prediction.version == model.version


def _is_data(value: object) -> bool:
    return isinstance(value, str) and value.startswith("data:")


def sent_text(inputs: Mapping[str, Any]) -> str:
    """The input as stored with an intent: JSON, each `data:` value cut to its media type
    and a digest (it may be hundreds of kilobytes, and adoption matches it loosely)."""
    return json.dumps(
        {k: _digest(v) if _is_data(v) else v for k, v in inputs.items()}, sort_keys=True
    )


def _digest(value: str) -> str:
    head = value.split(",", 1)[0].removesuffix(";base64")
    return f"{head};sha256={hashlib.sha256(value.encode()).hexdigest()[:16]}"
