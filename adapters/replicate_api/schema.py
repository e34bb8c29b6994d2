"""A model's input schema as Replicate publishes it, and the inputs built from it.

`GET /v1/models/{owner}/{name}` carries `latest_version.openapi_schema`, whose
`components.schemas.Input` lists the model's inputs (type, enum, minimum,
maximum, default, `format: uri`, required); enums may be inline or an
`allOf: [{"$ref": "#/components/schemas/<name>"}]` to another component.
Replicate answers 422 to a missing required input or a value outside an enum
or range, and silently ignores inputs a model does not declare, so inputs are
built from the schema: each role (prompt, start image, seed, ...) goes to the
input that declares it, and nothing else is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Json = Mapping[str, Any]

# Where each role may live, best first (names seen in today's popular models' schemas).
IMAGE_INPUTS = ("image", "start_image", "first_frame_image", "input_image", "init_image")
TEXT_PROMPTS = ("prompt",)
SEED_INPUTS = ("seed",)
ASPECT_INPUTS = ("aspect_ratio",)
DURATION_INPUTS = ("duration", "seconds", "duration_seconds", "video_length")
RESOLUTION_INPUTS = ("resolution",)
FORMAT_INPUTS = ("output_format",)
COUNT_INPUTS = ("num_outputs", "number_of_images", "num_images")
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class SchemaError(ValueError):
    """A schema we cannot read (not an OpenAPI Input object)."""


@dataclass(frozen=True)
class InputField:
    """One declared input."""

    name: str
    type: str | None = None
    enum: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    default: Any = None
    uri: bool = False
    required: bool = False

    def problem(self, value: Any) -> str | None:
        """Why Replicate would refuse `value` for this input, or None."""
        if self.enum and value not in self.enum:
            return f"must be one of {', '.join(map(str, self.enum))}"
        wanted = _TYPES.get(self.type or "")
        if wanted and (not isinstance(value, wanted) or _bool_posing(value, self.type)):
            return f"must be of type {self.type}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum:g}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum:g}"
        if self.uri and not (isinstance(value, str) and value.split(":", 1)[0] in _URI_SCHEMES):
            return "must be a URL"
        return None

    def snap(self, wanted: Any) -> Any:
        """The allowed value nearest `wanted` (ties to the lower); `wanted` if all are allowed."""
        if self.enum:
            return _nearest(self.enum, wanted)
        if isinstance(wanted, int | float) and not isinstance(wanted, bool):
            low = self.minimum if self.minimum is not None else wanted
            high = self.maximum if self.maximum is not None else wanted
            value = min(max(wanted, low), high)
            return round(value) if self.type == "integer" else value
        return wanted


_URI_SCHEMES = frozenset({"http", "https", "data"})


def _bool_posing(value: Any, kind: str | None) -> bool:
    return isinstance(value, bool) and kind in ("integer", "number")


def _nearest(allowed: Iterable[Any], wanted: Any) -> Any:
    """The allowed value closest to `wanted` by number ('720p' counts as 720), ties lower."""
    options = list(allowed)
    target = _number(wanted)
    if wanted in options or target is None:
        return wanted if wanted in options else options[0]
    scored = [(abs(n - target), n, o) for o in options if (n := _number(o)) is not None]
    return min(scored)[2] if scored else options[0]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    digits = "".join(c for c in str(value).split(".")[0] if c.isdigit())
    return float(digits) if digits else None


@dataclass(frozen=True)
class InputSchema:
    """A model's declared inputs, by name."""

    fields: Mapping[str, InputField] = field(default_factory=dict)

    @classmethod
    def from_components(cls, components: Json) -> InputSchema:
        """From `openapi_schema.components.schemas` (refs resolved); SchemaError if unreadable."""
        inputs = components.get("Input") if isinstance(components, Mapping) else None
        if not isinstance(inputs, Mapping) or not isinstance(inputs.get("properties"), Mapping):
            raise SchemaError("the schema has no Input object")
        required = set(inputs.get("required") or ())
        return cls(
            {
                name: _field(name, spec, components, name in required)
                for name, spec in inputs["properties"].items()
                if isinstance(spec, Mapping)
            }
        )

    @classmethod
    def from_model(cls, model: Json) -> InputSchema:
        """From a `GET /v1/models/...` answer (its latest version) or a version object."""
        version = model.get("latest_version") if "latest_version" in model else model
        openapi = version.get("openapi_schema") if isinstance(version, Mapping) else None
        components = (openapi or {}).get("components") if isinstance(openapi, Mapping) else None
        schemas = components.get("schemas") if isinstance(components, Mapping) else None
        if not isinstance(schemas, Mapping):
            raise SchemaError("the model publishes no input schema")
        return cls.from_components(schemas)

    def first(self, names: Iterable[str]) -> str | None:
        """The first of `names` this model declares."""
        return next((n for n in names if n in self.fields), None)

    def problems(self, inputs: Mapping[str, Any]) -> list[str]:
        """Why Replicate would refuse these inputs (422), one line per input; [] if none."""
        found = [
            f"{name} is required"
            for name, f in self.fields.items()
            if f.required and name not in inputs
        ]
        for name, value in inputs.items():
            spec = self.fields.get(name)
            if spec is None:
                found.append(f"{name} is not an input of this model")
            elif (problem := spec.problem(value)) is not None:
                found.append(f"{name} {problem}")
        return found


def _field(name: str, spec: Json, components: Json, required: bool) -> InputField:
    resolved = _resolve(spec, components)
    enum = resolved.get("enum")
    return InputField(
        name=name,
        type=resolved.get("type") if isinstance(resolved.get("type"), str) else None,
        enum=tuple(enum) if isinstance(enum, list) else (),
        minimum=_float(resolved.get("minimum")),
        maximum=_float(resolved.get("maximum")),
        default=resolved.get("default"),
        uri=resolved.get("format") == "uri",
        required=required,
    )


def _resolve(spec: Json, components: Json) -> dict[str, Any]:
    """The field's own keys plus those of `allOf`/`$ref` components it points to."""
    merged: dict[str, Any] = {}
    for part in spec.get("allOf") or ():
        ref = part.get("$ref", "") if isinstance(part, Mapping) else ""
        target = components.get(ref.rsplit("/", 1)[-1]) if ref else part
        if isinstance(target, Mapping):
            merged.update(_resolve(target, components))
    if isinstance(ref := spec.get("$ref"), str):
        target = components.get(ref.rsplit("/", 1)[-1])
        if isinstance(target, Mapping):
            merged.update(_resolve(target, components))
    merged.update({k: v for k, v in spec.items() if k not in ("allOf", "$ref")})
    return merged


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
