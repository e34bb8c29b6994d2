"""Tests for core.request: text grammar, typed options, storage and round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidRequest
from core.request import (
    DEFAULT_PRODUCTS,
    MAX_THEME_CHARS,
    UNSAFE_CHARS,
    CampaignRequest,
    ModelOverrides,
    Style,
    parse_request,
)

VERSION = "0123456789abcdef" * 4
KNOWN_KEYS = [
    "theme", "products", "videos", "style", "audience", "seed",
    "text_model", "image_model", "video_model",
]  # fmt: skip


def req(theme: str = "retro cats", **fields: object) -> CampaignRequest:
    """Shorthand for an expected request."""
    return CampaignRequest(theme=theme, **fields)  # type: ignore[arg-type]


# --- valid text -------------------------------------------------------------------

VALID_TEXT = [
    ("retro cats", req()),
    ("  retro \t\n cats  ", req()),
    (
        'theme:"retro cats" products:5 videos:yes style:neon audience:"indie gamers"',
        req(products=5, videos=True, style=Style.NEON, audience="indie gamers"),
    ),
    ("theme='retro cats' n=4", req(products=4)),
    ("retro cats count:2 video:on", req(products=2, videos=True)),
    ("Theme:retro PRODUCTS:2 Style:NEON cats", req(products=2, style=Style.NEON)),
    ("retro cats product:7", req(products=7)),
    ("theme: retro cats", req()),
    ("products: 6 retro cats", req(products=6)),
    ('audience: "indie gamers" retro cats', req(audience="indie gamers")),
    ("retro theme:cats", req()),
    ('theme:"" retro cats', req()),
    ("retro cats 5 products", req(products=5)),
    ("1 product retro cats", req(products=1)),
    ("retro cats products 7", req(products=7)),
    ("retro cats with 4 products", req(products=4)),
    ("retro cats with videos", req(videos=True)),
    ("retro cats With Video", req(videos=True)),
    ("retro cats no videos", req(videos=False)),
    ("retro cats without video", req(videos=False)),
    ("retro cats neon style", req(style=Style.NEON)),
    ("retro cats in watercolor style", req(style=Style.WATERCOLOR)),
    ("retro cats in Vintage Style", req(style=Style.VINTAGE)),
    ("retro style cats", req("retro style cats")),
    ("videos of cats", req("videos of cats")),
    ('"5 products" sale', req("5 products sale")),
    ('"with videos"', req("with videos")),
    ("meet at 3:30 https://x.com/a?b=c", req("meet at 3:30 https://x.com/a?b=c")),
    ("e-mail=spam 2+2=4", req("e-mail=spam 2+2=4")),
    ("cat's pajamas", req("cat's pajamas")),
    ("theme:'don't stop'", req("don't stop")),
    ('theme:"say \\"hi\\" now"', req('say "hi" now')),
    ('theme:"C:\\new\\\\"', req("C:\\new\\")),
    ('theme:"a"b c"', req('a"b c')),
    ('theme:"  spaced   out "', req("spaced out")),
    ("x seed:0", req("x", seed=0)),
    ("x seed:4294967295", req("x", seed=2**32 - 1)),
    ("x products:20 seed:007", req("x", products=20, seed=7)),
    ("x text_model:owner/name", req("x", models=ModelOverrides(text="owner/name"))),
    (
        "x image_model=black-forest-labs/flux-1.1_pro",
        req("x", models=ModelOverrides(image="black-forest-labs/flux-1.1_pro")),
    ),
    (
        f"x video_model:a/b:{VERSION}",
        req("x", models=ModelOverrides(video=f"a/b:{VERSION}")),
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID_TEXT)
def test_parse_valid(text: str, expected: CampaignRequest) -> None:
    assert parse_request(text) == expected


@pytest.mark.parametrize(
    "word", ["yes", "YES", "true", "On", "1", "y", "no", "False", "off", "0", "N"]
)
def test_parse_yes_no_words(word: str) -> None:
    expected = word.lower() in {"yes", "true", "on", "1", "y"}
    assert parse_request(f"cats videos:{word}").videos is expected


def test_parse_defaults() -> None:
    got = parse_request("cats")
    assert (got.products, got.videos, got.style) == (DEFAULT_PRODUCTS, False, Style.PHOTO)
    assert (got.audience, got.seed, got.models) == (None, None, ModelOverrides())


def test_parse_custom_max_products() -> None:
    assert parse_request("cats products:50", max_products=50).products == 50
    with pytest.raises(InvalidRequest, match=r"allowed: 1-5\)"):
        parse_request("cats 6 products", max_products=5)


def test_parse_rejects_bad_limit() -> None:
    with pytest.raises(ValueError, match="max_products"):
        parse_request("cats", max_products=0)


# --- invalid text -----------------------------------------------------------------

INVALID_TEXT = [
    ("", "theme", ["is missing"]),
    ("   ", "theme", ["is missing"]),
    ("products:5 videos:yes", "theme", ["is missing"]),
    ('theme:""', "theme", ["is empty"]),
    ("x" * 301, "theme", ["too long", "1-300"]),
    ("prodcts:5 cats", "prodcts", ["unknown option", "did you mean products?"]),
    ("cats stlye:neon", "stlye", ["did you mean style?"]),
    ("Vidoes:yes cats", "vidoes", ["did you mean video"]),
    ("note:hi cats", "note", ["unknown option", "allowed: theme, products"]),
    ("cats products:lots", "products", ['"lots" is not a number', "allowed: 1-20"]),
    ("cats products:0", "products", ["0 is out of range"]),
    ("cats products:-1", "products", ["-1 is out of range"]),
    ("cats products:21", "products", ["21 is out of range", "1-20"]),
    ("cats 25 products", "products", ["25 is out of range"]),
    ("cats products:" + "9" * 50, "products", ["out of range"]),
    ("cats products:5.5", "products", ["not a number"]),
    ("cats videos:maybe", "videos", ['"maybe" is not yes or no']),
    ("cats style:cubist", "style", ['"cubist" is not a style', "photo, minimal"]),
    ("cats style:neno", "style", ["did you mean neon?"]),
    ('cats audience:""', "audience", ["is empty"]),
    ("cats audience:" + "a" * 201, "audience", ["too long", "1-200"]),
    ("cats seed:abc", "seed", ["not a number"]),
    ("cats seed:4294967296", "seed", ["out of range", "0-4294967295"]),
    ("cats seed:-1", "seed", ["out of range"]),
    ("cats text_model:Owner/Name", "text_model", ["not a model id", "owner/name"]),
    ("cats image_model:nope", "image_model", ["not a model id"]),
    ("cats video_model:a/b:123", "video_model", ["not a model id"]),
    ("cats video_model:/b", "video_model", ["not a model id"]),
    ('theme:"retro cats', "theme", ['unterminated " quote']),
    ('"retro cats', "theme", ["unterminated"]),
    ("cats audience:'gamers", "audience", ["unterminated ' quote"]),
    ("'90s retro", "theme", ["unterminated"]),
    ("cats products:5 n:4", "products", ["more than once"]),
    ("cats 5 products products:4", "products", ["more than once"]),
    ("cats with videos videos:no", "videos", ["more than once"]),
    ("cats neon style style:photo", "style", ["more than once"]),
    ('theme:"a" theme:"b"', "theme", ["more than once"]),
    ("cats products:", "products", ["has no value", "a number"]),
    ("cats products: style:neon", "products", ["has no value"]),
    ("cats text_model=", "text_model", ["has no value", "owner/name"]),
]


@pytest.mark.parametrize(("text", "field", "fragments"), INVALID_TEXT)
def test_parse_invalid(text: str, field: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(text)
    assert caught.value.field == field
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_message_format_exact() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request("cats products:lots")
    assert str(caught.value) == 'products: "lots" is not a number (allowed: 1-20)'
    assert caught.value.problem == '"lots" is not a number'
    assert caught.value.allowed == "1-20"


def test_unknown_key_suggestion_attribute() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request("prodcts:5 cats")
    assert caught.value.suggestion == "products"
    with pytest.raises(InvalidRequest) as caught:
        parse_request("note:5 cats")
    assert caught.value.suggestion is None
    assert all(key in caught.value.allowed for key in KNOWN_KEYS)


@pytest.mark.parametrize(
    "text",
    [
        "cats style:" + "q" * 500,
        "cats products:" + "z" * 500,
        "cats seed:" + "1" * 5000,
        "cats text_model:" + "Q" * 500,
        "a" * 500 + ":x cats",
    ],
)
def test_messages_clip_user_input(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(text)
    message = str(caught.value)
    assert len(message) < 200
    assert "…" in message
    assert max(message.count(c) for c in "qz1Qa") <= 45


# --- from_options -----------------------------------------------------------------

VALID_OPTIONS: list[tuple[dict[str, object], CampaignRequest]] = [
    ({"theme": "retro cats"}, req()),
    ({"theme": "  retro\n cats "}, req()),
    (
        {"theme": "x", "products": 5, "videos": True, "style": Style.NEON},
        req("x", products=5, videos=True, style=Style.NEON),
    ),
    (
        {"theme": "x", "videos": "Yes", "style": "VINTAGE"},
        req("x", videos=True, style=Style.VINTAGE),
    ),
    ({"theme": "x", "videos": "off"}, req("x", videos=False)),
    ({"theme": "x", "seed": "42"}, req("x", seed=42)),
    ({"theme": "x", "seed": 0}, req("x", seed=0)),
    ({"theme": "x", "audience": " indie  gamers "}, req("x", audience="indie gamers")),
    ({"theme": "x", "products": 30, "max_products": 30}, req("x", products=30)),
    (
        {"theme": "x", "text_model": "a/b", "image_model": f"c/d:{VERSION}"},
        req("x", models=ModelOverrides(text="a/b", image=f"c/d:{VERSION}")),
    ),
]


@pytest.mark.parametrize(("options", "expected"), VALID_OPTIONS)
def test_from_options_valid(options: dict[str, object], expected: CampaignRequest) -> None:
    assert CampaignRequest.from_options(**options) == expected  # type: ignore[arg-type]


INVALID_OPTIONS: list[tuple[dict[str, object], str, str]] = [
    ({"theme": ""}, "theme", "is empty"),
    ({"theme": " \t "}, "theme", "is empty"),
    ({"theme": None}, "theme", "is missing"),
    ({"theme": "x" * (MAX_THEME_CHARS + 1)}, "theme", "too long"),
    ({"theme": "x", "products": 0}, "products", "out of range"),
    ({"theme": "x", "products": 21}, "products", "1-20"),
    ({"theme": "x", "products": 6, "max_products": 5}, "products", "1-5"),
    ({"theme": "x", "products": True}, "products", "not a number"),
    ({"theme": "x", "products": 10**5000}, "products", "out of range"),
    ({"theme": "x", "videos": "maybe"}, "videos", "not yes or no"),
    ({"theme": "x", "style": "cubist"}, "style", "not a style"),
    ({"theme": "x", "audience": ""}, "audience", "is empty"),
    ({"theme": "x", "seed": 2**32}, "seed", "out of range"),
    ({"theme": "x", "seed": "soon"}, "seed", "not a number"),
    ({"theme": "x", "text_model": "bad"}, "text_model", "not a model id"),
    ({"theme": "x", "video_model": f"a/b:{VERSION.upper()}"}, "video_model", "model id"),
]


@pytest.mark.parametrize(("options", "field", "fragment"), INVALID_OPTIONS)
def test_from_options_invalid(options: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        CampaignRequest.from_options(**options)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert fragment in str(caught.value)


# --- storage and canonical text ---------------------------------------------------

FULL = req(
    'say "hi"',
    products=5,
    videos=True,
    style=Style.NEON,
    audience="indie gamers",
    seed=7,
    models=ModelOverrides(text="a/b", video=f"c/d:{VERSION}"),
)


def test_to_text_is_canonical() -> None:
    assert FULL.to_text() == (
        'theme:"say \\"hi\\"" products:5 videos:yes style:neon '
        f'audience:"indie gamers" seed:7 text_model:a/b video_model:c/d:{VERSION}'
    )
    assert req().to_text() == 'theme:"retro cats" products:3 videos:no style:photo'


def test_to_dict_is_json_and_reversible() -> None:
    data = FULL.to_dict()
    assert data["style"] == "neon"
    assert data["models"] == {"text": "a/b", "image": None, "video": f"c/d:{VERSION}"}
    assert CampaignRequest.from_dict(json.loads(json.dumps(data))) == FULL


def test_from_dict_defaults_and_no_products_cap() -> None:
    assert CampaignRequest.from_dict({"theme": "x"}) == req("x")
    assert CampaignRequest.from_dict({"theme": "x", "products": 99}).products == 99


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "theme"),
        ({"theme": 5}, "theme"),
        ({"theme": "x", "products": "many"}, "products"),
        ({"theme": "x", "style": 3}, "style"),
        ({"theme": "x", "videos": [1]}, "videos"),
        ({"theme": "x", "models": "a/b"}, "models"),
        ({"theme": "x", "models": {"text": "NOPE"}}, "text_model"),
    ],
)
def test_from_dict_invalid(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        CampaignRequest.from_dict(data)
    assert caught.value.field == field


# --- properties -------------------------------------------------------------------

FAST = settings(max_examples=200, deadline=None)
KEY_WORDS = [*KNOWN_KEYS, "n", "count", "video", "product", "Theme", "prodcts", "for"]
VALUE_SAMPLES = [
    "5", "0", "-1", "9" * 40, "yes", "NO", "neon", "a/b", f"a/b:{VERSION}", "",
    '"a b"', "'a b'", '"open', "'", '"', '\\"', 'x"y', '""',
]  # fmt: skip
LOOSE_SAMPLES = [
    "with", "no", "without", "videos", "video", "in", "neon", "style", "products",
    "5", "30", "3:30", "http://x", "cat's", '"', "'", '""', "\\", ":", "=", "é",
]  # fmt: skip
VALUES = st.one_of(st.sampled_from(VALUE_SAMPLES), st.text(max_size=8))
PAIRS = st.builds(
    "{}{}{}".format, st.sampled_from(KEY_WORDS), st.sampled_from([":", "=", ": "]), VALUES
)
LOOSE = st.sampled_from(LOOSE_SAMPLES)
TOKENS = st.lists(st.one_of(PAIRS, LOOSE, st.text(max_size=6)), max_size=12)
GRAMMARISH = st.builds(
    lambda seps, toks: seps.join(toks), st.sampled_from([" ", "  ", "\t", "\n"]), TOKENS
)


def check_parse(text: str) -> None:
    """Parse must return a valid request or raise a short InvalidRequest."""
    try:
        got = parse_request(text)
    except InvalidRequest as err:
        message = str(err)
        got = None
    if got is None:
        assert len(message) < 250
        return
    assert 1 <= len(got.theme) <= MAX_THEME_CHARS
    assert 1 <= got.products <= 20
    assert parse_request(got.to_text()) == got


@FAST
@given(st.text())
def test_any_text_parses_or_raises_invalid_request(text: str) -> None:
    check_parse(text)


@FAST
@given(GRAMMARISH)
def test_grammar_like_text_parses_or_raises_invalid_request(text: str) -> None:
    check_parse(text)


def _normal(text: str) -> str:
    return " ".join(UNSAFE_CHARS.sub("", text).split())  # new requests refuse control chars


THEMES = (
    st.text(min_size=1, max_size=320).map(_normal).filter(lambda s: 1 <= len(s) <= MAX_THEME_CHARS)
)
AUDIENCES = st.text(min_size=1, max_size=60).map(_normal).filter(bool)
MODELS = st.from_regex(
    r"[a-z0-9][a-z0-9._-]{0,8}/[a-z0-9][a-z0-9._-]{0,8}(:[0-9a-f]{64})?", fullmatch=True
)
REQUESTS = st.builds(
    CampaignRequest.from_options,
    theme=THEMES,
    products=st.none() | st.integers(1, 20),
    videos=st.none() | st.booleans(),
    style=st.none() | st.sampled_from(Style),
    audience=st.none() | AUDIENCES,
    seed=st.none() | st.integers(0, 2**32 - 1),
    text_model=st.none() | MODELS,
    image_model=st.none() | MODELS,
    video_model=st.none() | MODELS,
)


@FAST
@given(REQUESTS)
def test_round_trips(request: CampaignRequest) -> None:
    assert parse_request(request.to_text()) == request
    assert CampaignRequest.from_dict(request.to_dict()) == request
    assert CampaignRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request
