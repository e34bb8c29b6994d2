"""What `bot.py models` shows: each kind's model, its mapped inputs, unit, price and estimate."""

from __future__ import annotations

import logging
from typing import Any

from adapters.replicate_api.catalog import Binding, ModelCatalog
from adapters.replicate_api.http import ReplicateHttp
from adapters.replicate_api.models import KINDS, parse_ref
from adapters.replicate_api.schema import (
    ASPECT_INPUTS,
    COUNT_INPUTS,
    DURATION_INPUTS,
    FORMAT_INPUTS,
    RESOLUTION_INPUTS,
    SEED_INPUTS,
)
from core.errors import StepError

log = logging.getLogger(__name__)
NOT_FETCHED = "schema not fetched"


async def describe_models(
    catalog: ModelCatalog, http: ReplicateHttp | None
) -> list[dict[str, Any]]:
    """One row per kind; schemas are read through `http` when given, else from the cache."""
    rows = []
    for kind in KINDS:
        binding = catalog.bound(kind)
        error = None
        try:
            binding = await catalog.bind(http, kind) if http else await catalog.from_cache(kind)
        except StepError as exc:
            error = str(exc)
        rows.append(_row(binding, catalog, error))
    return rows


def _row(binding: Binding, catalog: ModelCatalog, error: str | None) -> dict[str, Any]:
    price = binding.price
    requestable = sorted(catalog.table.requestable()[binding.kind.value])
    return {
        "kind": binding.kind.value,
        "model": binding.ref,
        "version": parse_ref(binding.ref).version or binding.latest,
        "inputs": _inputs(binding) if binding.schema else NOT_FETCHED,
        "problems": binding.problems(),
        "unit": price.unit.value,
        "price_usd": price.price,
        "prices_by_resolution": dict(price.prices_by_resolution),
        "estimate_usd": binding.estimate_usd(),
        "typical_s": price.typical_s,
        "price_source": price.source,
        "requestable": requestable,
        "error": error,
    }


def _inputs(binding: Binding) -> dict[str, Any]:
    """Role -> the input that takes it (`name=value` where the bot sets a value)."""
    assert binding.schema is not None
    schema = binding.schema
    image = binding.image_input if binding.kind.value == "video" else None
    sample = (
        binding.inputs("<prompt>", seed=1, image="<image>")
        if binding.kind.value != "text"
        else binding.text_inputs("<prompt>", "<instruction>")
    )
    roles = {
        "prompt": "prompt" if "prompt" in schema.fields else None,
        "image": image,
        "seed": schema.first(SEED_INPUTS),
        "aspect_ratio": schema.first(ASPECT_INPUTS),
        "duration": schema.first(DURATION_INPUTS),
        "resolution": schema.first(RESOLUTION_INPUTS),
        "output_format": schema.first(FORMAT_INPUTS),
        "outputs": schema.first(COUNT_INPUTS),
    }
    mapped: dict[str, Any] = {}
    for role, name in roles.items():
        if name is None:
            continue
        value = sample.get(name, schema.fields[name].default)
        shown = value if role not in ("prompt", "image", "seed") else None
        mapped[role] = f"{name}={shown}" if shown is not None else name
    if binding.kind.value == "text":
        mapped["sent"] = sorted(sample)
    return mapped
