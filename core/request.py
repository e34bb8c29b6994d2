"""Campaign requests: one validated value object, built from chat text or typed options.

Text grammar of `parse_request` (words are separated by whitespace):

    pair    key:value or key=value; keys are case-insensitive. `key: value` (a space
            after the separator) also works when the next word is not itself a pair.
    keys    theme, products (aliases n, count, product), videos (alias video), style,
            audience, seed, text_model, image_model, video_model. Each at most once.
    value   bare (up to the next whitespace) or quoted with "..." or '...'.
    quotes  open only at the start of a word or right after `key:`, so apostrophes
            inside words (cat's) are literal. A quote closes only when followed by
            whitespace or the end of the text ('don't stop' is one value). Inside
            quotes \\" \\' and \\\\ are escapes; any other backslash is literal.
    words   everything else. Loose words and the `theme:` value are JOINED into the
            theme in the order written (`theme: retro cats` means "retro cats").
    phrases unquoted, case-insensitive: `5 products`, `5 product`, `products 5`,
            `with 5 products`, `with video(s)`, `no video(s)`, `without video(s)`,
            `neon style`, `in neon style` (real style names only: `retro style` is
            theme text).

New requests refuse control characters that are not whitespace (NUL, ESC, DEL, C1),
bidi embeddings/overrides/isolates (U+202A-E, U+2066-9) and lone surrogates in any
field; whitespace controls separate words like a space. Stored ones are not re-checked.

A word whose part before ':' or '=' is not letters/underscores (`3:30`, `x-y=z`) or
that continues with `//` (`https://x.com`) is a theme word. Any other `word:` is an
option, and an unknown one is an error (quote the theme to use such words).
Every problem raises `InvalidRequest`; nothing else escapes for any input text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from core.errors import InvalidRequest

DEFAULT_MAX_PRODUCTS = 20
DEFAULT_PRODUCTS = 3
MAX_THEME_CHARS = 300
MAX_AUDIENCE_CHARS = 200
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 500  # an animate's motion prompt

_ECHO_CHARS = 40
_YES = frozenset({"yes", "true", "on", "1", "y"})
_NO = frozenset({"no", "false", "off", "0", "n"})
_FIELDS = (
    "theme", "products", "videos", "style", "audience", "seed",
    "text_model", "image_model", "video_model",
)  # fmt: skip
_ALIASES = {
    "n": "products", "count": "products", "product": "products", "video": "videos",
}  # fmt: skip
_PLAIN_FIELDS = _FIELDS[:6]  # stored at the top level of to_dict()
_MODEL_KINDS = ("text", "image", "video")
_MODEL_HINT = "owner/name or owner/name:<64 hex version>"
_HINTS = {
    "theme": "text", "products": "a number", "videos": "yes or no",
    "style": "a style name", "audience": "text", "seed": "a number",
}  # fmt: skip
_PAIR_RE = re.compile(r"([A-Za-z_]+)[:=]")
_BARE_RE = re.compile(r"\S*")
_DIGITS_RE = re.compile(r"[0-9]+")
_INT_RE = re.compile(r"-?[0-9]+")
_MODEL_RE = re.compile(r"[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*(?::[0-9a-f]{64})?")
_PRODUCT_WORDS = frozenset({"product", "products"})
_VIDEO_WORDS = frozenset({"video", "videos"})
_QUOTES = "\"'"
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
        pairs = zip(_FIELDS, values, strict=True)
        return " ".join(f"{key}:{value}" for key, value in pairs if value is not None)


def parse_request(text: str, *, max_products: int = DEFAULT_MAX_PRODUCTS) -> CampaignRequest:
    """Parse chat text such as `retro cats 5 products with videos` (see module doc)."""
    _check_limit(max_products)
    if not isinstance(text, str):
        raise InvalidRequest("theme", "is not text", f"1-{MAX_THEME_CHARS} characters")
    raw: dict[str, object] = {}
    words: list[str] = []
    for field, value in _assemble(_tokenize(text)):
        if field is not None:
            if field in raw:
                raise InvalidRequest(field, "is given more than once", "one value")
            raw[field] = value
        if field in (None, "theme"):
            words.append(value)
    raw["theme"] = " ".join(words) if words else None
    return _build(raw, max_products)


class _Token(NamedTuple):
    key: str | None  # canonical field name for `key:value`, None for a loose word
    value: str
    quoted: bool


def _tokenize(text: str) -> list[_Token]:
    """Split text into pairs and loose words, honouring quotes."""
    tokens: list[_Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return tokens
        key, pos = _read_key(text, pos)
        if pos < len(text) and text[pos] in _QUOTES:
            value, pos = _read_quoted(text, pos, key or "theme")
            tokens.append(_Token(key, value, True))
        else:
            match = _BARE_RE.match(text, pos)
            end = match.end() if match else len(text)
            tokens.append(_Token(key, text[pos:end], False))
            pos = end


def _read_key(text: str, pos: int) -> tuple[str | None, int]:
    """Read `key:` or `key=` at pos; return (canonical key or None, new position)."""
    match = _PAIR_RE.match(text, pos)
    if match is None or text.startswith("//", match.end()):
        return None, pos
    return _resolve_key(match.group(1)), match.end()


def _resolve_key(word: str) -> str:
    """Map a typed key or alias to its field name, or raise with a suggestion."""
    key = word.lower()
    if key in _FIELDS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    close = [*difflib.get_close_matches(key, [*_FIELDS, *_ALIASES], n=1), None]
    raise InvalidRequest(_clip(key), "unknown option", ", ".join(_FIELDS), close[0])


def _read_quoted(text: str, pos: int, field: str) -> tuple[str, int]:
    """Read a quoted value starting at the quote at pos; return (content, end)."""
    quote, pos = text[pos], pos + 1
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in "\"'\\":
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == quote and (pos + 1 == len(text) or text[pos + 1].isspace()):
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    allowed = f"a closing {quote} followed by a space or the end"
    raise InvalidRequest(field, f"has an unterminated {quote} quote", allowed)


def _assemble(tokens: list[_Token]) -> Iterator[tuple[str | None, str]]:
    """Yield (field, value) for pairs and phrases and (None, word) for theme words."""
    pos = 0
    while pos < len(tokens):
        token = tokens[pos]
        if token.key is not None and (token.value or token.quoted):
            yield token.key, token.value
            pos += 1
        elif token.key is not None:  # `key:` with the value in the next word
            following = tokens[pos + 1] if pos + 1 < len(tokens) else None
            if following is None or following.key is not None:
                raise InvalidRequest(token.key, "has no value", _HINTS.get(token.key, _MODEL_HINT))
            yield token.key, following.value
            pos += 2
        else:
            phrase = _phrase(_plain_words(tokens, pos))
            if phrase is None:
                yield None, token.value
                pos += 1
            else:
                yield phrase[0], phrase[1]
                pos += phrase[2]


def _plain_words(tokens: list[_Token], pos: int) -> list[str]:
    """Return up to three lowercased unquoted loose words starting at pos."""
    words: list[str] = []
    for token in tokens[pos : pos + 3]:
        if token.key is not None or token.quoted:
            break
        words.append(token.value.lower())
    return words


def _phrase(words: list[str]) -> tuple[str, str, int] | None:
    """Match a forgiving phrase at the start of words; return (field, value, used)."""
    w = [*words, "", "", ""]
    if w[0] == "with" and _DIGITS_RE.fullmatch(w[1]) and w[2] in _PRODUCT_WORDS:
        return "products", w[1], 3
    if _DIGITS_RE.fullmatch(w[0]) and w[1] in _PRODUCT_WORDS:
        return "products", w[0], 2
    if w[0] in _PRODUCT_WORDS and _DIGITS_RE.fullmatch(w[1]):
        return "products", w[1], 2
    if w[0] in ("with", "no", "without") and w[1] in _VIDEO_WORDS:
        return "videos", "yes" if w[0] == "with" else "no", 2
    if w[0] == "in" and w[1] in _STYLE_NAMES and w[2] == "style":
        return "style", w[1], 3
    if w[0] in _STYLE_NAMES and w[1] == "style":
        return "style", w[0], 2
    return None


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
    raise InvalidRequest(field, f"{_show(value)} is not a model id", _MODEL_HINT)


def _clip(text: str) -> str:
    """Collapse whitespace and cut user text to about 40 characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _ECHO_CHARS else flat[: _ECHO_CHARS - 1] + "…"


def _show(value: object) -> str:
    """Render user input for a message: quoted and clipped."""
    if isinstance(value, str):
        return f'"{_clip(value)}"'
    if isinstance(value, (bool, float)):
        return repr(value)
    return _clip(type(value).__name__)


def _quote(text: str) -> str:
    """Double-quote text for to_text, escaping backslashes and double quotes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
