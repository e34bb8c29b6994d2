"""Campaign requests: one validated value object, built from chat text or typed options.

The chat text's grammar is in core/request_text.py.

New requests refuse control characters that are not whitespace (NUL, ESC, DEL, C1),
bidi embeddings/overrides/isolates (U+202A-E, U+2066-9) and lone surrogates in any
field; whitespace controls separate words like a space. Stored ones are not re-checked.

Every problem raises `InvalidRequest`; nothing else escapes for any input text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from core.errors import InvalidRequest
from core.request_text import FIELDS, MODEL_HINT, clip, pairs

DEFAULT_MAX_PRODUCTS = 20
DEFAULT_PRODUCTS = 3
MAX_THEME_CHARS = 300
MAX_AUDIENCE_CHARS = 200
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 500  # an animate's motion prompt

_YES = frozenset({"yes", "true", "on", "1", "y"})
_NO = frozenset({"no", "false", "off", "0", "n"})
_PLAIN_FIELDS = FIELDS[:6]  # stored at the top level of to_dict()
_MODEL_KINDS = ("text", "image", "video")
_INT_RE = re.compile(r"-?[0-9]+")
_MODEL_RE = re.compile(r"[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*(?::[0-9a-f]{64})?")
UNSAFE_CHARS = re.compile(  # refused in new requests (see the module doc)
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


class Style(str, Enum):
    """Visual style of the generated images."""

    PHOTO = "photo"
    MINIMAL = "minimal"
    VINTAGE = "vintage"
    NEON = "neon"
    WATERCOLOR = "watercolor"


_STYLE_NAMES = tuple(s.value for s in Style)


@dataclass(frozen=True)
class ModelOverrides:
    """Optional Replicate model ids that replace the configured defaults."""

    text: str | None = None
    image: str | None = None
    video: str | None = None


@dataclass(frozen=True)
class CampaignRequest:
    """What the user asked for; build via from_options, parse_request or from_dict."""

    theme: str
    products: int = DEFAULT_PRODUCTS
    videos: bool = False
    style: Style = Style.PHOTO
    audience: str | None = None
    seed: int | None = None
    models: ModelOverrides = ModelOverrides()

    @classmethod
    def from_options(
        cls,
        *,
        theme: str,
        products: int | None = None,
        videos: bool | str | None = None,
        style: str | Style | None = None,
        audience: str | None = None,
        seed: int | str | None = None,
        text_model: str | None = None,
        image_model: str | None = None,
        video_model: str | None = None,
        max_products: int = DEFAULT_MAX_PRODUCTS,
    ) -> CampaignRequest:
        """Validate typed options (as a slash command sends them); None = not given."""
        _check_limit(max_products)
        raw: dict[str, object] = {
            "theme": theme, "products": products, "videos": videos, "style": style,
            "audience": audience, "seed": seed, "text_model": text_model,
            "image_model": image_model, "video_model": video_model,
        }  # fmt: skip
        return _build(raw, max_products)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-safe dict for storage; from_dict reverses it."""
        models = {kind: getattr(self.models, kind) for kind in _MODEL_KINDS}
        return {
            "theme": self.theme, "products": self.products, "videos": self.videos,
            "style": self.style.value, "audience": self.audience, "seed": self.seed,
            "models": models,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CampaignRequest:
        """Re-validate a stored dict; products is not capped (the limit may change)."""
        models = data.get("models") or {}
        if not isinstance(models, Mapping):
            raise InvalidRequest("models", "is not a mapping", "text, image, video")
        raw: dict[str, object] = {key: data.get(key) for key in _PLAIN_FIELDS}
        raw.update({f"{kind}_model": models.get(kind) for kind in _MODEL_KINDS})
        return _build(raw, None, stored=True)

    def to_text(self) -> str:
        """Return canonical one-line text; parse_request gives back an equal request."""
        audience = None if self.audience is None else _quote(self.audience)
        values: list[object] = [
            _quote(self.theme), self.products, "yes" if self.videos else "no",
            self.style.value, audience, self.seed,
            *(getattr(self.models, kind) for kind in _MODEL_KINDS),
        ]  # fmt: skip
        pairs = zip(FIELDS, values, strict=True)
        return " ".join(f"{key}:{value}" for key, value in pairs if value is not None)


def parse_request(text: str, *, max_products: int = DEFAULT_MAX_PRODUCTS) -> CampaignRequest:
    """Parse chat text such as `retro cats 5 products with videos` (see module doc)."""
    _check_limit(max_products)
    if not isinstance(text, str):
        raise InvalidRequest("theme", "is not text", f"1-{MAX_THEME_CHARS} characters")
    raw: dict[str, object] = {}
    words: list[str] = []
    for field, value in pairs(text, _STYLE_NAMES):
        if field is not None:
            if field in raw:
                raise InvalidRequest(field, "is given more than once", "one value")
            raw[field] = value
        if field in (None, "theme"):
            words.append(value)
    raw["theme"] = " ".join(words) if words else None
    return _build(raw, max_products)


def _build(
    raw: Mapping[str, object], max_products: int | None, *, stored: bool = False
) -> CampaignRequest:
    """Validate raw field values (None = not given) into a CampaignRequest."""
    for field, value in () if stored else raw.items():
        bad = UNSAFE_CHARS.search(value) if isinstance(value, str) else None
        if bad is not None:
            problem = f"contains the control character U+{ord(bad.group()):04X}"
            raise InvalidRequest(field, problem, "text without control characters")
    if raw.get("theme") is None:
        raise InvalidRequest("theme", "is missing", f"1-{MAX_THEME_CHARS} characters")
    given = {key: value for key, value in raw.items() if value is not None}
    models = {
        kind: _model(f"{kind}_model", given[f"{kind}_model"])
        for kind in _MODEL_KINDS
        if f"{kind}_model" in given
    }
    return CampaignRequest(
        theme=_text("theme", given["theme"], MAX_THEME_CHARS),
        products=_int("products", given.get("products", DEFAULT_PRODUCTS), 1, max_products),
        videos=_yes_no(given.get("videos", False)),
        style=_style(given.get("style", Style.PHOTO)),
        audience=_text("audience", given["audience"], MAX_AUDIENCE_CHARS)
        if "audience" in given
        else None,
        seed=_int("seed", given["seed"], 0, MAX_SEED) if "seed" in given else None,
        models=ModelOverrides(**models),
    )


def motion_prompt(value: object) -> str:
    """A motion prompt for Animate, checked like a request's text fields (InvalidRequest)."""
    bad = UNSAFE_CHARS.search(value) if isinstance(value, str) else None
    if bad is not None:
        problem = f"contains the control character U+{ord(bad.group()):04X}"
        raise InvalidRequest("prompt", problem, "text without control characters")
    return _text("prompt", value, MAX_PROMPT_CHARS)


def _check_limit(max_products: int) -> None:
    """Reject a bad products limit: a configuration bug, so ValueError."""
    if type(max_products) is not int or max_products < 1:
        raise ValueError(f"max_products must be a positive int, got {max_products!r}")


def _text(field: str, value: object, limit: int) -> str:
    """Trim and collapse whitespace; require 1..limit characters."""
    allowed = f"1-{limit} characters"
    if not isinstance(value, str):
        raise InvalidRequest(field, "is not text", allowed)
    text = " ".join(value.split())
    if not text:
        raise InvalidRequest(field, "is empty", allowed)
    if len(text) > limit:
        raise InvalidRequest(field, f"is too long ({len(text)} characters)", allowed)
    return text


def _int(field: str, value: object, low: int, high: int | None) -> int:
    """Accept an int or integer text in low..high (high None = no upper bound)."""
    allowed = f"{low}-{high}" if high is not None else f"{low} or more"
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        digits = value.strip()
        if len(digits) > 30:
            raise InvalidRequest(field, f"{_show(digits)} is out of range", allowed)
        value = int(digits)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(field, f"{_show(value)} is not a number", allowed)
    if value < low or (high is not None and value > high):
        shown = str(value) if abs(value) < 10**30 else "that number"
        raise InvalidRequest(field, f"{shown} is out of range", allowed)
    return value


def _yes_no(value: object) -> bool:
    """Accept a bool or yes/no/true/false/on/off/1/0/y/n in any case."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise InvalidRequest("videos", f"{_show(value)} is not yes or no", "yes, no")


def _style(value: object) -> Style:
    """Accept a Style or a style name in any case, suggesting the nearest name."""
    if isinstance(value, Style):
        return value
    word = value.strip().lower() if isinstance(value, str) else ""
    if word in _STYLE_NAMES:
        return Style(word)
    close = [*difflib.get_close_matches(word, _STYLE_NAMES, n=1), None]
    problem = f"{_show(value)} is not a style"
    raise InvalidRequest("style", problem, ", ".join(_STYLE_NAMES), close[0])


def _model(field: str, value: object) -> str:
    """Accept owner/name or owner/name:<64 lowercase hex version>."""
    if isinstance(value, str) and _MODEL_RE.fullmatch(value.strip()):
        return value.strip()
    raise InvalidRequest(field, f"{_show(value)} is not a model id", MODEL_HINT)


def _show(value: object) -> str:
    """Render user input for a message: quoted and clipped."""
    if isinstance(value, str):
        return f'"{clip(value)}"'
    if isinstance(value, (bool, float)):
        return repr(value)
    return clip(type(value).__name__)


def _quote(text: str) -> str:
    """Double-quote text for to_text, escaping backslashes and double quotes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
