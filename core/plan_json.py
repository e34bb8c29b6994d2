"""The LLM planner's prompt and the parser for its answer (pure, stdlib only).

Language models wrap JSON in prose and code fences, add trailing remarks, or
return something else entirely. `parse_plans` finds the first JSON array (or
an object with a "products" array) anywhere in the text, then validates every
field of every plan; anything unusable raises `PlanFormatError` with a short
reason, so the planner can ask again or fall back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from core.model import ProductPlan
from core.planner import STYLE_LOOKS
from core.request import CampaignRequest

FIELDS = {  # name -> longest accepted value
    "name": 80,
    "product_type": 40,
    "tagline": 200,
    "image_prompt": 1000,
    "video_prompt": 1000,
}
OUTLINE_FIELDS = ("name", "product_type")  # the short first call: what the products are
DETAIL_FIELDS = ("name", "tagline", "image_prompt", "video_prompt")  # then each one's details
_FIELD_HINTS = {
    "product_type": "product_type is one or two words (e.g. mug, hoodie)",
    "image_prompt": "image_prompt describes one product photo",
    "video_prompt": "video_prompt describes a short camera move around it",
}
STRICT = "Your previous answer was not valid. Output only the JSON array, nothing else."
_FENCE_RE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)


class PlanFormatError(ValueError):
    """The model's answer is not N valid product plans."""


def plan_prompt(request: CampaignRequest, *, strict: bool = False) -> str:
    """The instruction that asks a language model for request.products plans as JSON."""
    return _prompt(
        f"Plan exactly {request.products} different merchandise products for the theme "
        f'"{request.theme}".{_audience(request)}',
        request,
        tuple(FIELDS),
        strict,
    )


def outline_prompt(request: CampaignRequest, *, strict: bool = False) -> str:
    """The short first call: names and product types of request.products products."""
    return _prompt(
        f"Name exactly {request.products} different merchandise products for the theme "
        f'"{request.theme}".{_audience(request)}',
        request,
        OUTLINE_FIELDS,
        strict,
    )


def details_prompt(
    request: CampaignRequest, products: Sequence[tuple[str, str]], *, strict: bool = False
) -> str:
    """The details of some products already named: (name, product_type) each, in order."""
    listed = "\n".join(f'{n}. "{name}" ({kind})' for n, (name, kind) in enumerate(products, 1))
    return _prompt(
        f"Write the details of exactly {len(products)} merchandise products for the theme "
        f'"{request.theme}".{_audience(request)} The products, in this order:\n{listed}',
        request,
        DETAIL_FIELDS,
        strict,
    )


def _audience(request: CampaignRequest) -> str:
    return f" The audience is {request.audience}." if request.audience else ""


def _prompt(task: str, request: CampaignRequest, fields: Sequence[str], strict: bool) -> str:
    hints = [_FIELD_HINTS[f] for f in fields if f in _FIELD_HINTS]
    lines = [
        task,
        f"Visual style of every product image: {STYLE_LOOKS[request.style]}.",
        "Answer with a JSON array of objects with these string fields: "
        + ", ".join(fields)
        + ("." if not hints else ". " + "; ".join(hints) + "."),
    ]
    if "name" in fields and "product_type" in fields:
        lines.append("Every name must be different.")
    if strict:
        lines.append(STRICT)
    return "\n".join(lines)


def parse_plans(text: str, count: int) -> list[ProductPlan]:
    """Exactly `count` validated plans from a model's answer; raises PlanFormatError."""
    items = find_list(text)
    if len(items) < count:
        raise PlanFormatError(f"{len(items)} plans instead of {count}")
    plans = [_plan(index, item) for index, item in enumerate(items[:count])]
    names = [p.name.casefold() for p in plans]
    if len(set(names)) != len(names):
        raise PlanFormatError("two plans have the same name")
    return plans


def find_list(text: str) -> list[Any]:
    """The first JSON array of plans in the text (inside a code fence, if any)."""
    if not isinstance(text, str) or not text.strip():
        raise PlanFormatError("the answer is empty")
    chunks = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in chunks:
        for start in (i for i, ch in enumerate(chunk) if ch in "[{"):
            try:
                value, _ = decoder.raw_decode(chunk, start)
            except ValueError:
                continue
            if isinstance(value, dict):
                value = value.get("products")
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return value
    raise PlanFormatError("no JSON list of products in the answer")


def _plan(index: int, item: dict[str, Any]) -> ProductPlan:
    return ProductPlan(index=index, **fields_of(index, item, tuple(FIELDS)))


def fields_of(index: int, item: Any, fields: Sequence[str]) -> dict[str, str]:
    """The named text fields of one answered object, tidied; raises PlanFormatError."""
    if not isinstance(item, dict):
        raise PlanFormatError(f"plan {index + 1} is not an object")
    values: dict[str, str] = {}
    for field in fields:
        raw, limit = item.get(field), FIELDS[field]
        if not isinstance(raw, str) or not raw.strip():
            raise PlanFormatError(f"plan {index + 1}: {field} is missing or not text")
        value = " ".join(raw.split())
        if len(value) > limit:
            raise PlanFormatError(f"plan {index + 1}: {field} is longer than {limit} characters")
        values[field] = value
    return values
