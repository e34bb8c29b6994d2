"""Which Replicate models the bot may call, and what each costs.

A model is named `owner/name` (official-model endpoint) or `owner/name:<version>`
(version endpoint). Its inputs come from its published schema (`schema.py`);
its price comes from this module: a dated built-in table of popular models,
plus an operator's models file (`CAMPAIGN_MODELS_FILE`, TOML) that adds or
overrides any model. A model with no price can be neither a default (a
start-up error) nor requested; a request may name only a default or a model
marked `requestable`, so a chat user cannot pick a clip the operator never
chose. Estimates price what is sent (clip seconds, resolution), so they
never undercount the table.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from adapters.replicate_api.wire import Metrics
from core.errors import ConfigError
from core.model import StepKind

MODEL_RE = re.compile(r"([a-z0-9][a-z0-9._-]*)/([a-z0-9][a-z0-9._-]*)(?::([0-9a-f]{64}))?")
MODEL_HINT = "owner/name or owner/name:<64 hex version>"
PRICES_AS_OF = "2025-11"  # when the built-in prices were read off the models' pages


class PriceUnit(str, Enum):
    """How a model is billed."""

    OUTPUT = "output"  # per image or clip produced
    OUTPUT_SECOND = "output_second"  # per second of the clip sent for (its `duration`)
    RUN_SECOND = "run_second"  # per second of compute (metrics.predict_time)
    MTOKEN = "mtoken"  # per million input plus output tokens


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
class ModelPrice:
    """One model's kind, billing and typical run; `source` says where the price comes from."""

    model: str
    kind: StepKind
    unit: PriceUnit
    price: float  # US dollars per unit
    prices_by_resolution: Mapping[str, float] = field(default_factory=dict)
    image_input: str | None = None  # where the start image goes, if the schema is ambiguous
    requestable: bool = False  # a request may name it (defaults always may)
    typical_s: float = 0.0  # wall seconds of a typical prediction (first ETAs)
    typical_units: float = 1.0  # run seconds, million tokens or clip seconds of a typical run
    source: str = "table"

    def unit_price(self, resolution: object = None) -> float:
        """The price per unit at this resolution (the dearest listed one when unknown)."""
        by = self.prices_by_resolution
        if not by:
            return self.price
        if isinstance(resolution, str) and resolution in by:
            return by[resolution]
        return max(by.values())

    def estimate_usd(self, *, seconds: float | None = None, resolution: object = None) -> float:
        """Expected cost of one prediction that asks for `seconds` of clip at `resolution`."""
        units = self.typical_units
        if self.unit is PriceUnit.OUTPUT:
            units = 1.0
        elif self.unit is PriceUnit.OUTPUT_SECOND and seconds is not None:
            units = seconds
        return round(self.unit_price(resolution) * units, 6)

    def cost_usd(
        self,
        metrics: Metrics | None,
        *,
        seconds: float | None = None,
        resolution: object = None,
    ) -> float:
        """What a finished prediction cost, from what was sent and its metrics."""
        metrics = metrics or Metrics()
        rate = self.unit_price(resolution)
        if self.unit is PriceUnit.RUN_SECOND:
            return round(rate * (metrics.predict_time or 0.0), 6)
        if self.unit is PriceUnit.MTOKEN:
            tokens = (metrics.input_token_count or 0.0) + (metrics.output_token_count or 0.0)
            return round(rate * tokens / 1e6, 6)
        return self.estimate_usd(seconds=seconds, resolution=resolution)


def _table(*prices: ModelPrice) -> dict[str, ModelPrice]:
    return {p.model: p for p in prices}


_SEEDANCE = {"480p": 0.018, "720p": 0.036, "1080p": 0.072}
# Read off each model's Replicate page (https://replicate.com/<owner>/<name>) in PRICES_AS_OF;
# check them before relying on estimates, and override them in CAMPAIGN_MODELS_FILE.
BUILT_IN = _table(
    # $0.05/M input and $0.25/M output tokens: charged at the output price for all tokens.
    ModelPrice(
        "meta/meta-llama-3-8b-instruct",
        StepKind.TEXT,
        PriceUnit.MTOKEN,
        0.25,
        requestable=True,
        typical_s=5.0,
        typical_units=0.002,
    ),
    ModelPrice(
        "black-forest-labs/flux-schnell",
        StepKind.IMAGE,
        PriceUnit.OUTPUT,
        0.003,
        requestable=True,
        typical_s=1.0,
    ),
    ModelPrice(
        "black-forest-labs/flux-dev",
        StepKind.IMAGE,
        PriceUnit.OUTPUT,
        0.025,
        requestable=True,
        typical_s=4.0,
    ),
    ModelPrice(
        "black-forest-labs/flux-1.1-pro", StepKind.IMAGE, PriceUnit.OUTPUT, 0.04, typical_s=5.0
    ),
    ModelPrice(
        "bytedance/seedance-1-lite",
        StepKind.VIDEO,
        PriceUnit.OUTPUT_SECOND,
        0.036,
        prices_by_resolution=_SEEDANCE,
        requestable=True,
        typical_s=40.0,
        typical_units=5.0,
    ),
    # Standard mode (the schema's default; the bot does not set `mode`). Pro is $0.09/s.
    ModelPrice(
        "kwaivgi/kling-v2.1",
        StepKind.VIDEO,
        PriceUnit.OUTPUT_SECOND,
        0.05,
        image_input="start_image",
        typical_s=150.0,
        typical_units=5.0,
    ),
    ModelPrice(
        "kwaivgi/kling-v2.1-master",
        StepKind.VIDEO,
        PriceUnit.OUTPUT_SECOND,
        0.28,
        image_input="start_image",
        typical_s=240.0,
        typical_units=5.0,
    ),
    ModelPrice(
        "minimax/hailuo-02",
        StepKind.VIDEO,
        PriceUnit.OUTPUT_SECOND,
        0.08,
        prices_by_resolution={"512p": 0.017, "768p": 0.045, "1080p": 0.08},
        image_input="first_frame_image",
        typical_s=180.0,
        typical_units=6.0,
    ),
    # With audio (the schema's default `generate_audio: true`).
    ModelPrice(
        "google/veo-3.1-fast",
        StepKind.VIDEO,
        PriceUnit.OUTPUT_SECOND,
        0.15,
        typical_s=90.0,
        typical_units=8.0,
    ),
    ModelPrice(
        "wan-video/wan-2.2-i2v-fast",
        StepKind.VIDEO,
        PriceUnit.OUTPUT,
        0.11,
        prices_by_resolution={"480p": 0.05, "720p": 0.11},
        typical_s=40.0,
    ),
)
DEFAULTS: dict[StepKind, str] = {
    StepKind.TEXT: "meta/meta-llama-3-8b-instruct",
    StepKind.IMAGE: "black-forest-labs/flux-schnell",
    StepKind.VIDEO: "bytedance/seedance-1-lite",
}
KINDS = (StepKind.TEXT, StepKind.IMAGE, StepKind.VIDEO)


@dataclass(frozen=True)
class ModelTable:
    """The configured model per kind, the wanted clip, and the price book."""

    text: str = DEFAULTS[StepKind.TEXT]
    image: str = DEFAULTS[StepKind.IMAGE]
    video: str = DEFAULTS[StepKind.VIDEO]
    video_seconds: float | None = None  # REPLICATE_VIDEO_SECONDS; None: the model's default
    video_resolution: str | None = None  # REPLICATE_VIDEO_RESOLUTION; None: the model's default
    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(BUILT_IN))
    models_file: str | None = None  # CAMPAIGN_MODELS_FILE, if one was read

    def ref(self, kind: StepKind, override: str | None = None) -> str:
        """The model a step of this kind runs on (a request's override, else the default)."""
        return override or str(getattr(self, kind.value))

    def price(self, kind: StepKind, ref: str) -> ModelPrice:
        """The price entry of a model of this kind; ConfigError when it has none."""
        entry = self.prices.get(parse_ref(ref).model)
        if entry is None or entry.kind is not kind:
            where = self.models_file or "a models file named by CAMPAIGN_MODELS_FILE"
            raise ConfigError(
                f"{ref} has no {kind.value} price: add it to {where} with its kind, unit and price"
            )
        return entry

    def requestable(self) -> dict[str, frozenset[str]]:
        """Per kind, the models a request may name: the default and those marked requestable."""
        return {
            k.value: frozenset(
                {parse_ref(self.ref(k)).model}
                | {m for m, p in self.prices.items() if p.kind is k and p.requestable}
            )
            for k in KINDS
        }

    def check(self) -> None:
        """Every default has a price (a start-up error otherwise, naming where to add it)."""
        for kind in KINDS:
            try:
                self.price(kind, self.ref(kind))
            except ConfigError as exc:
                raise ConfigError(f"REPLICATE_{kind.value.upper()}_MODEL={exc}") from None

    def with_file(self, path: str | Path) -> ModelTable:
        """The table with a models file's entries added or overriding (ConfigError if bad)."""
        prices = {**self.prices, **load_models_file(path)}
        return replace(self, prices=prices, models_file=str(path))


_UNITS = ", ".join(u.value for u in PriceUnit)
_KEYS = frozenset(
    {
        "kind",
        "unit",
        "price",
        "prices_by_resolution",
        "image_input",
        "requestable",
        "typical_seconds",
        "typical_units",
    }
)


def load_models_file(path: str | Path) -> dict[str, ModelPrice]:
    """The `[models."owner/name"]` tables of a TOML models file (see docs/replicate.md)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"CAMPAIGN_MODELS_FILE={path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"CAMPAIGN_MODELS_FILE={path} is not valid TOML: {exc}") from None
    models = data.get("models", {})
    if not isinstance(models, dict) or set(data) - {"models"}:
        raise ConfigError(
            f'CAMPAIGN_MODELS_FILE={path}: expected only [models."owner/name"] tables'
        )
    return {name: _entry(path, name, spec) for name, spec in models.items()}


def _entry(path: str | Path, name: str, spec: object) -> ModelPrice:
    where = f"CAMPAIGN_MODELS_FILE={path}: models.{name!r}"
    if not MODEL_RE.fullmatch(name) or parse_ref(name).version:
        raise ConfigError(f"{where} is not a model name (owner/name)")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a table")
    if unknown := set(spec) - _KEYS:
        raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    try:
        kind = StepKind(spec.get("kind"))
        if kind not in KINDS:
            raise ValueError
    except ValueError:
        raise ConfigError(f"{where}.kind must be text, image or video") from None
    try:
        unit = PriceUnit(spec.get("unit"))
    except ValueError:
        raise ConfigError(f"{where}.unit must be one of {_UNITS}") from None
    by_resolution = spec.get("prices_by_resolution", {})
    if not isinstance(by_resolution, dict):
        raise ConfigError(f"{where}.prices_by_resolution must be a table of prices")
    image_input = spec.get("image_input")
    if image_input is not None and not isinstance(image_input, str):
        raise ConfigError(f"{where}.image_input must be an input name")
    requestable = spec.get("requestable", False)
    if not isinstance(requestable, bool):
        raise ConfigError(f"{where}.requestable must be true or false")
    return ModelPrice(
        model=name,
        kind=kind,
        unit=unit,
        price=_amount(where, "price", spec.get("price")),
        prices_by_resolution={
            str(k): _amount(where, f"prices_by_resolution.{k}", v) for k, v in by_resolution.items()
        },
        image_input=image_input,
        requestable=requestable,
        typical_s=_amount(where, "typical_seconds", spec.get("typical_seconds", 0.0)),
        typical_units=_amount(where, "typical_units", spec.get("typical_units", 1.0)),
        source=str(path),
    )


def _amount(where: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}.{key} must be a number of 0 or more")
    return float(value)
