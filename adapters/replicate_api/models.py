"""The Replicate model table: which input carries what, what comes out, what it costs.

A model is named `owner/name` (official-model endpoint) or `owner/name:<version>`
(version endpoint). A model that is not in the table is sent the input names of
its kind's default model (the best guess without fetching the model's
schema) and priced like the most expensive known model of its kind, so an
estimate never undercounts.

Prices are in US dollars as listed on the models' Replicate pages when this
table was written; check them before relying on estimates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from core.model import StepKind

MODEL_RE = re.compile(r"([a-z0-9][a-z0-9._-]*)/([a-z0-9][a-z0-9._-]*)(?::([0-9a-f]{64}))?")
MODEL_HINT = "owner/name or owner/name:<64 hex version>"


class PriceUnit(str, Enum):
    """How a model is billed."""

    OUTPUT = "output"  # per image or per video produced
    SECOND = "second"  # per second of run time (metrics.predict_time)
    MTOKEN = "mtoken"  # per million tokens (metrics input + output token counts)


class OutputKind(str, Enum):
    """What a prediction's output is."""

    TEXT = "text"  # a string or a list of string pieces to join
    IMAGE = "image"  # a URL (or a list of URLs) of an image file
    VIDEO = "video"  # a URL of a video file


@dataclass(frozen=True)
class ModelRef:
    """A parsed model id."""

    owner: str
    name: str
    version: str | None = None

    @property
    def model(self) -> str:
        """`owner/name` without the version."""
        return f"{self.owner}/{self.name}"

    def __str__(self) -> str:
        return f"{self.model}:{self.version}" if self.version else self.model


def parse_ref(text: str) -> ModelRef:
    """Parse `owner/name[:version]`; ValueError names what is allowed."""
    match = MODEL_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a model id ({MODEL_HINT})")
    return ModelRef(match[1], match[2], match[3])


@dataclass(frozen=True)
class ModelSpec:
    """One model: its input names, fixed inputs, output kind and price."""

    ref: str
    output: OutputKind
    prompt_key: str = "prompt"
    image_key: str | None = None  # the input image (image-to-video)
    aspect_key: str | None = None
    seed_key: str | None = "seed"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    unit: PriceUnit = PriceUnit.OUTPUT
    price_usd: float = 0.0
    typical: float = 1.0  # seconds or million tokens of a typical run, for estimates

    def with_ref(self, ref: str) -> ModelSpec:
        """The same mapping and price for another model id."""
        return replace(self, ref=ref)

    def inputs(
        self, prompt: str, *, seed: int | None, image: str | None = None, aspect: str = "1:1"
    ) -> dict[str, Any]:
        """The prediction input for this model."""
        values: dict[str, Any] = {**self.fixed, self.prompt_key: prompt}
        if self.seed_key and seed is not None:
            values[self.seed_key] = seed
        if self.aspect_key:
            values[self.aspect_key] = aspect
        if self.image_key and image is not None:
            values[self.image_key] = image
        return values

    def estimate_usd(self) -> float:
        """Expected cost of one typical prediction."""
        if self.unit is PriceUnit.OUTPUT:
            return self.price_usd
        return round(self.price_usd * self.typical, 6)

    def cost_usd(self, metrics: Mapping[str, Any] | None, outputs: int = 1) -> float:
        """Actual cost of a finished prediction from its metrics."""
        metrics = metrics or {}
        if self.unit is PriceUnit.OUTPUT:
            return round(self.price_usd * outputs, 6)
        if self.unit is PriceUnit.SECOND:
            return round(self.price_usd * float(metrics.get("predict_time") or 0.0), 6)
        tokens = float(metrics.get("input_token_count") or 0) + float(
            metrics.get("output_token_count") or 0
        )
        return round(self.price_usd * tokens / 1e6, 6)


_SYSTEM = "You are a merchandise designer. Answer with JSON only."
KNOWN: dict[str, ModelSpec] = {
    spec.ref: spec
    for spec in (
        # Billed $0.05/M input and $0.25/M output tokens; charged here at the output
        # price for all tokens (an upper bound; a plan costs well under a cent).
        ModelSpec(
            "meta/meta-llama-3-8b-instruct",
            OutputKind.TEXT,
            seed_key=None,
            fixed={"system_prompt": _SYSTEM, "max_tokens": 2048, "temperature": 0.7},
            unit=PriceUnit.MTOKEN,
            price_usd=0.25,
            typical=0.002,
        ),
        ModelSpec(
            "black-forest-labs/flux-schnell",
            OutputKind.IMAGE,
            aspect_key="aspect_ratio",
            fixed={"num_outputs": 1, "output_format": "png"},
            price_usd=0.003,
        ),
        ModelSpec(
            "black-forest-labs/flux-dev",
            OutputKind.IMAGE,
            aspect_key="aspect_ratio",
            fixed={"num_outputs": 1, "output_format": "png"},
            price_usd=0.025,
        ),
        # Billed per second of output video ($0.036/s at 720p): 5 s clips.
        ModelSpec(
            "bytedance/seedance-1-lite",
            OutputKind.VIDEO,
            image_key="image",
            fixed={"duration": 5, "resolution": "720p"},
            price_usd=0.18,
        ),
    )
}
DEFAULTS: dict[StepKind, str] = {
    StepKind.TEXT: "meta/meta-llama-3-8b-instruct",
    StepKind.IMAGE: "black-forest-labs/flux-schnell",
    StepKind.VIDEO: "bytedance/seedance-1-lite",
}


@dataclass(frozen=True)
class ModelTable:
    """The configured model per kind, and how to call any model of that kind."""

    text: str = DEFAULTS[StepKind.TEXT]
    image: str = DEFAULTS[StepKind.IMAGE]
    video: str = DEFAULTS[StepKind.VIDEO]

    def spec(self, kind: StepKind, override: str | None = None) -> ModelSpec:
        """The spec for a kind, honouring a request's override."""
        ref = override or getattr(self, kind.value)
        parsed = parse_ref(ref)
        known = KNOWN.get(parsed.model)
        if known and known.output.value == kind.value:
            return known.with_ref(ref)
        return _unknown(kind).with_ref(ref)


def _unknown(kind: StepKind) -> ModelSpec:
    """A model not in the table: the default's inputs, the dearest known price of its kind."""
    base = KNOWN[DEFAULTS[kind]]
    dearest = max(
        (spec for spec in KNOWN.values() if spec.output.value == kind.value),
        key=lambda spec: spec.estimate_usd(),
    )
    return replace(base, unit=dearest.unit, price_usd=dearest.price_usd, typical=dearest.typical)
