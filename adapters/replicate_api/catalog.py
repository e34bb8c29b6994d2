"""Models bound to their published schemas: what each step sends, and what it costs.

`ModelCatalog.bind(http, kind, override)` gives a `Binding`: the model's price
entry (`models.py`) and its input schema (`schema.py`), read from
`GET /v1/models/{owner}/{name}` (or the pinned version's
`/versions/{id}`). Schemas are kept in memory and in the store
(`ProviderCache`): a latest version is compared with Replicate at most once
an hour (`SCHEMA_TTL_S`) and once more after a 422 (`forget`), and a cached
schema keeps the bot working while Replicate is unreachable. A pinned
version never changes, so it is read once.

A `Binding` builds every input from the schema and sends nothing the model
does not declare; `problems()` says what keeps a model from doing its kind's
job (no prompt input, no start-image input for image-to-video) before
anything is spent.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.replicate_api.http import Refused, ReplicateHttp, Retry
from adapters.replicate_api.models import ModelPrice, ModelTable, parse_ref
from adapters.replicate_api.schema import (
    ASPECT_INPUTS,
    COUNT_INPUTS,
    DURATION_INPUTS,
    FORMAT_INPUTS,
    IMAGE_INPUTS,
    RESOLUTION_INPUTS,
    SEED_INPUTS,
    InputSchema,
    SchemaError,
)
from adapters.replicate_api.wire import Metrics
from core.errors import PermanentStepError, TransientStepError
from core.model import StepKind
from core.provider_docs import CachedDoc, ProviderCache

log = logging.getLogger(__name__)

SCHEMA_TTL_S = 3600.0
RETRY_READ_S = 60.0  # after a failed re-read, the stored schema serves this long
IMAGE_FORMATS = ("png", "jpg", "jpeg")  # what every chat platform shows inline
# A text model that declares no system prompt gets the instruction inside its prompt;
# these sampling settings suit JSON answers (no penalty on repeating keys).
TEXT_SAMPLING = {
    "temperature": 0.6,
    "top_p": 0.9,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "max_tokens": 2048,
}


# Llama 3's chat format (Meta's model card): the instruction as the system turn.
LLAMA_3_CHAT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system_prompt}<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


@dataclass(frozen=True)
class Binding:
    """One model of one kind, ready to call: where to send, what to send, what it costs."""

    ref: str  # as configured or requested: owner/name[:version]
    kind: StepKind
    price: ModelPrice
    schema: InputSchema | None = None  # None: not read yet (estimates only)
    latest: str | None = None  # the latest version id, when read from the model
    video_seconds: float | None = None
    video_resolution: str | None = None
    community: bool = False  # only reachable by version (its official endpoint said 404)

    @property
    def create_ref(self) -> str:
        """The id to create with: the version endpoint for a community model."""
        if self.community and self.latest and parse_ref(self.ref).version is None:
            return f"{self.ref}:{self.latest}"
        return self.ref

    @property
    def image_input(self) -> str | None:
        """Where the start image goes (the models file's choice, else the schema's)."""
        if self.schema is None:
            return self.price.image_input
        if self.price.image_input and self.price.image_input in self.schema.fields:
            return self.price.image_input
        return self.schema.first(IMAGE_INPUTS)

    def unable(self) -> str | None:
        """Why this model cannot make a step of its kind, in words; None if it can."""
        missing = self.problems()
        if not missing:
            return None
        return f"{self.ref} cannot make {self.kind.value}s: it has no {' or '.join(missing)}"

    def problems(self) -> list[str]:
        """What keeps this model from doing a step of its kind (empty: it can)."""
        if self.schema is None:
            return []
        missing = []
        if "prompt" not in self.schema.fields:
            missing.append("a prompt input (prompt)")
        if self.kind is StepKind.VIDEO and self.image_input is None:
            named = self.price.image_input
            where = named if named else ", ".join(IMAGE_INPUTS)
            missing.append(f"a start-image input ({where})")
        return missing

    def inputs(
        self, prompt: str, *, seed: int | None = None, image: str | None = None
    ) -> dict[str, Any]:
        """The prediction input: only inputs the schema declares, values it allows."""
        schema = self._schema()
        values: dict[str, Any] = {"prompt": prompt}
        fields = schema.fields
        if (name := schema.first(SEED_INPUTS)) and seed is not None:
            values[name] = fields[name].snap(seed)
        if self.kind is StepKind.IMAGE:
            self._put(values, ASPECT_INPUTS, "1:1", only_if_allowed=True)
            self._put(values, COUNT_INPUTS, 1)
            fmt = schema.first(FORMAT_INPUTS)
            if fmt and (allowed := fields[fmt].enum):
                choice = next((f for f in IMAGE_FORMATS if f in allowed), None)
                if choice:
                    values[fmt] = choice
        if self.kind is StepKind.VIDEO:
            if image is not None and (name := self.image_input):
                values[name] = image
            values.update(self._clip())
        return values

    def _clip(self) -> dict[str, Any]:
        """The clip length and resolution to send: the wanted ones, snapped to the schema."""
        values: dict[str, Any] = {}
        if self.video_seconds is not None:
            self._put(values, DURATION_INPUTS, self.video_seconds)
        if self.video_resolution is not None:
            self._put(values, RESOLUTION_INPUTS, self.video_resolution)
        return values

    def text_inputs(self, prompt: str, instruction: str) -> dict[str, Any]:
        """A language model's input: the instruction where the model takes one."""
        schema = self._schema()
        fields = schema.fields
        values: dict[str, Any] = {"prompt": prompt}
        if "system_prompt" in fields:
            values["system_prompt"] = instruction
        elif "prompt_template" in fields:
            template = str(fields["prompt_template"].default or "")
            if "{system_prompt}" not in template:
                template = LLAMA_3_CHAT if "llama-3" in self.ref else "{system_prompt}\n\n{prompt}"
            values["prompt_template"] = template.replace("{system_prompt}", _braced(instruction))
        else:
            values["prompt"] = f"{instruction}\n\n{prompt}"
        for name, value in TEXT_SAMPLING.items():
            if name in fields:
                values[name] = fields[name].snap(value)
        return values

    def sent(self, inputs: Mapping[str, Any]) -> tuple[float | None, object]:
        """(clip seconds, resolution) of these inputs, the schema's defaults standing in."""
        seconds = self._value(inputs, DURATION_INPUTS)
        resolution = self._value(inputs, RESOLUTION_INPUTS)
        number = float(seconds) if isinstance(seconds, int | float) else None
        return number, resolution

    def estimate_usd(self) -> float:
        """Expected cost of one prediction with the configured clip length and resolution."""
        seconds: float | None = self.video_seconds
        resolution: object = self.video_resolution
        if self.schema is not None and self.kind is StepKind.VIDEO:
            seconds, resolution = self.sent(self._clip())
        return self.price.estimate_usd(seconds=seconds, resolution=resolution)

    def cost_usd(self, inputs: Mapping[str, Any], metrics: Metrics | None) -> float:
        """What a finished prediction with these inputs cost."""
        seconds, resolution = self.sent(inputs) if self.schema else (None, None)
        return self.price.cost_usd(metrics, seconds=seconds, resolution=resolution)

    def _schema(self) -> InputSchema:
        if self.schema is None:
            raise TransientStepError(f"the input schema of {self.ref} has not been read yet")
        return self.schema

    def _put(
        self,
        values: dict[str, Any],
        names: tuple[str, ...],
        wanted: Any,
        only_if_allowed: bool = False,
    ) -> None:
        schema = self._schema()
        name = schema.first(names)
        if name is None:
            return
        spec = schema.fields[name]
        if only_if_allowed and spec.enum and wanted not in spec.enum:
            return
        values[name] = spec.snap(wanted)

    def _value(self, inputs: Mapping[str, Any], names: tuple[str, ...]) -> Any:
        if self.schema is None or (name := self.schema.first(names)) is None:
            return None
        return inputs.get(name, self.schema.fields[name].default)


def _braced(text: str) -> str:
    """`text` safe inside a template that Replicate fills with str.format."""
    return text.replace("{", "{{").replace("}", "}}")


@dataclass
class _Known:
    schema: InputSchema
    version: str
    checked_at: float


@dataclass
class ModelCatalog:
    """Price book plus schemas (memory, then the store, then Replicate); pickles without
    its store, keeping the schemas it has read."""

    table: ModelTable
    cache: ProviderCache | None = None
    clock: Callable[[], float] = time.time
    _known: dict[str, _Known] = field(default_factory=dict)
    _community: set[str] = field(default_factory=set)
    _stale: set[str] = field(default_factory=set)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "cache": None, "clock": time.time}

    def bound(self, kind: StepKind, override: str | None = None) -> Binding:
        """The binding from what is known now (the schema may be missing): for estimates."""
        ref = self.table.ref(kind, override)
        known = self._known.get(ref)
        return Binding(
            ref=ref,
            kind=kind,
            price=self.table.price(kind, ref),
            schema=known.schema if known else None,
            latest=known.version if known else None,
            video_seconds=self.table.video_seconds,
            video_resolution=self.table.video_resolution,
            community=ref in self._community,
        )

    async def bind(
        self, http: ReplicateHttp, kind: StepKind, override: str | None = None
    ) -> Binding:
        """The binding with the model's schema (read or refreshed as needed)."""
        ref = self.table.ref(kind, override)
        self.table.price(kind, ref)  # no price: refused before anything is read
        await self._refresh(http, ref)
        return self.bound(kind, override)

    async def from_cache(self, kind: StepKind, override: str | None = None) -> Binding:
        """The binding with the stored schema, if any (no request to Replicate)."""
        ref = self.table.ref(kind, override)
        if ref not in self._known and self.cache is not None:
            await self._from_cache(ref)
        return self.bound(kind, override)

    async def after_refusal(
        self, http: ReplicateHttp, binding: Binding, refused: Refused
    ) -> Binding | None:
        """The binding to create with once more after a refused create, or None.

        404 on the official endpoint: a community model, created by its latest
        version from now on. 422: the schema may have changed since it was read,
        so it is read again. None when nothing changed: the refusal stands.
        """
        if refused.status == 404 and binding.latest and not binding.community:
            self._community.add(binding.ref)
        elif refused.status == 422:
            self._stale.add(binding.ref)
        else:
            return None
        again = await self.bind(http, binding.kind, binding.ref)
        changed = again.community != binding.community or again.schema != binding.schema
        return again if changed else None

    async def _refresh(self, http: ReplicateHttp, ref: str) -> None:
        known = self._known.get(ref)
        if known is None and self.cache is not None:
            known = await self._from_cache(ref)
        pinned = parse_ref(ref).version is not None
        fresh = known is not None and (pinned or self.clock() - known.checked_at < SCHEMA_TTL_S)
        if fresh and ref not in self._stale:
            return
        self._stale.discard(ref)
        try:
            body = await http.call("GET", _schema_path(ref), f"schema of {ref}", 3)
            schema = InputSchema.from_model(body)
        except (Retry, Refused, SchemaError) as exc:
            if known is not None:  # Replicate is away: the cached schema keeps us working
                log.warning(
                    "could not re-read the schema of %s (%s); using the stored one", ref, exc
                )
                # asked again in a minute, not by every step meanwhile
                known.checked_at = self.clock() - SCHEMA_TTL_S + RETRY_READ_S
                self._known[ref] = known
                return
            raise _unreadable(ref, exc) from None
        version = str((body.get("latest_version") or body).get("id") or "")
        self._known[ref] = _Known(schema, version, self.clock())
        if self.cache is not None:
            doc = CachedDoc(ref, version, json.dumps(body), self.clock())
            await self.cache.cache(doc)

    async def _from_cache(self, ref: str) -> _Known | None:
        assert self.cache is not None
        doc = await self.cache.cached(ref)
        if doc is None:
            return None
        try:
            schema = InputSchema.from_model(json.loads(doc.body))
        except (ValueError, SchemaError):
            return None
        self._known[ref] = _Known(schema, doc.version, doc.checked_at)
        return self._known[ref]


def _schema_path(ref: str) -> str:
    parsed = parse_ref(ref)
    path = f"/v1/models/{parsed.owner}/{parsed.name}"
    return f"{path}/versions/{parsed.version}" if parsed.version else path


class UnknownModel(PermanentStepError):
    """Replicate has no such model (or this token cannot see it)."""


def _unreadable(ref: str, exc: Exception) -> Exception:
    if isinstance(exc, Refused) and exc.status == 404:
        return UnknownModel(f"{ref} does not exist on Replicate (or this API token cannot see it)")
    if isinstance(exc, Refused | SchemaError):
        return PermanentStepError(f"could not read the input schema of {ref}: {exc}")
    return TransientStepError(f"could not read the input schema of {ref}: {exc}", delay_s=5.0)
