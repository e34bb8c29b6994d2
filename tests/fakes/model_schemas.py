"""Models' input schemas as Replicate publishes them, for the fake Replicate API.

Each entry is the `openapi_schema.components.schemas` object of a model's
version (`Input`, `Output`, and the enum components that `Input` points at
with `allOf: [{"$ref": "#/components/schemas/<name>"}]`), written from the
models' published OpenAPI schemas as of late 2025 and the facts collected in
PLATFORM_LIMITS.md ("Models as Replicate serves them"), which win where they
differ. Tests rely on these being the real shapes: input names, types, enums,
ranges, defaults and which inputs are required. Change them only to follow
what Replicate serves, never to make a test pass.

`KIND` says what each model makes, `LATEST_VERSION` is a fixed fake version id
per model, and `COMMUNITY` names models that have no official endpoint: they
can only be run by version.
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["COMMUNITY", "DESCRIPTIONS", "KIND", "LATEST_VERSION", "SCHEMAS", "Components"]

Components = dict[str, Any]  # openapi_schema.components.schemas
Field = tuple[str, dict[str, Any]]
_UNSET: Any = object()

ASPECTS = ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]


def _field(name: str, kind: str, about: str, default: Any, **more: Any) -> Field:
    """One Cog input: type, title, description, default when it has one (x-order comes later)."""
    spec: dict[str, Any] = {"type": kind, "title": name.replace("_", " ").title(), **more}
    spec["description"] = about
    if default is not _UNSET:
        spec["default"] = default
    return name, spec


def _text(name: str, about: str, default: Any = _UNSET) -> Field:
    return _field(name, "string", about, default)


def _int(name: str, about: str, default: Any = _UNSET, **bounds: Any) -> Field:
    return _field(name, "integer", about, default, **bounds)


def _num(name: str, about: str, default: Any = _UNSET, **bounds: Any) -> Field:
    return _field(name, "number", about, default, **bounds)


def _bool(name: str, about: str, default: Any = _UNSET) -> Field:
    return _field(name, "boolean", about, default)


def _uri(name: str, about: str) -> Field:
    return _field(name, "string", about, _UNSET, format="uri")


def _choice(name: str, about: str, values: list[Any], default: Any) -> Field:
    """An enum written inline (newer Cog versions)."""
    kind = "integer" if isinstance(values[0], int) else "string"
    return _field(name, kind, about, default, enum=values)


def _ref(name: str, about: str, default: Any) -> Field:
    """An enum kept in its own component (older Cog versions): consumers must resolve it."""
    ref = [{"$ref": f"#/components/schemas/{name}"}]
    return name, {"allOf": ref, "default": default, "description": about}


def _enum(name: str, values: list[Any]) -> dict[str, Any]:
    kind = "integer" if isinstance(values[0], int) else "string"
    return {"type": kind, "enum": values, "title": name, "description": "An enumeration."}


def _input(required: list[str], *fields: Field) -> dict[str, Any]:
    """The Input object; Cog numbers inputs with x-order and omits an empty `required`."""
    properties = {name: {**spec, "x-order": i} for i, (name, spec) in enumerate(fields)}
    schema: dict[str, Any] = {"type": "object", "title": "Input", "properties": properties}
    if required:
        schema["required"] = required
    return schema


TEXT_OUTPUT = {
    "type": "array",
    "items": {"type": "string"},
    "title": "Output",
    "x-cog-array-type": "iterator",
    "x-cog-array-display": "concatenate",
}
IMAGES_OUTPUT = {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"}
VIDEO_OUTPUT = {"type": "string", "format": "uri", "title": "Output"}
PROMPT = _text("prompt", "Text prompt for video generation")
SEED = _int("seed", "Random seed. Set for reproducible generation")
NEGATIVE = _text("negative_prompt", "Things you do not want to see in the video", "")

LLAMA_3_8B: Components = {
    "Input": _input(
        [],
        _text("prompt", "Prompt", ""),
        _text(
            "prompt_template",
            "Template for formatting the prompt; must contain {prompt}",
            "{prompt}",
        ),
        _int("max_tokens", "The maximum number of tokens the model should generate", 512),
        _int("min_tokens", "The minimum number of tokens the model should generate", 0),
        _num("temperature", "Randomness of outputs", 0.6, minimum=0, maximum=5),
        _num("top_p", "Top-p (nucleus) sampling", 0.9, minimum=0, maximum=1),
        _int("top_k", "Sample from the k most likely next tokens", 50),
        _num("presence_penalty", "Presence penalty", 1.15),
        _num("frequency_penalty", "Frequency penalty", 0.2),
        _text(
            "stop_sequences",
            "Comma-separated sequences to stop generation at",
            "<|end_of_text|>,<|eot_id|>",
        ),
    ),
    "Output": TEXT_OUTPUT,
}


def _flux(dev: bool) -> Components:
    low, high, steps = (1, 50, 28) if dev else (1, 4, 4)
    img2img = [
        _uri("image", "Input image for image to image mode"),
        _num("prompt_strength", "Prompt strength when using img2img", 0.8, minimum=0, maximum=1),
    ]
    guidance = [_num("guidance", "Guidance for generated image", 3, minimum=0, maximum=10)]
    fields = [
        _text("prompt", "Prompt for generated image"),
        _ref("aspect_ratio", "Aspect ratio for the generated image", "1:1"),
        *(img2img if dev else []),
        _int("num_outputs", "Number of outputs to generate", 1, minimum=1, maximum=4),
        _int("num_inference_steps", "Number of denoising steps", steps, minimum=low, maximum=high),
        *(guidance if dev else []),
        _int("seed", "Random seed. Set for reproducible generation"),
        _ref("output_format", "Format of the output images", "webp"),
        _int("output_quality", "Quality when saving the output images", 80, minimum=0, maximum=100),
        _bool("disable_safety_checker", "Disable safety checker for generated images", False),
        _bool("go_fast", "Run faster predictions with optimizations", True),
        _ref("megapixels", "Approximate number of megapixels for generated image", "1"),
    ]
    return {
        "Input": _input(["prompt"], *fields),
        "Output": IMAGES_OUTPUT,
        "aspect_ratio": _enum("aspect_ratio", ASPECTS),
        "output_format": _enum("output_format", ["webp", "jpg", "png"]),
        "megapixels": _enum("megapixels", ["1", "0.25"]),
    }


SEEDANCE_1_LITE: Components = {
    "Input": _input(
        ["prompt"],
        PROMPT,
        _uri("image", "Input image for image-to-video generation"),
        _int("duration", "Video duration in seconds", 5, minimum=2, maximum=12),
        _choice("resolution", "Video resolution", ["480p", "720p", "1080p"], "720p"),
        _choice(
            "aspect_ratio",
            "Video aspect ratio. Ignored if an image is used.",
            ["16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21"],
            "16:9",
        ),
        _choice("fps", "Frame rate (frames per second)", [24], 24),
        _bool("camera_fixed", "Whether to fix camera position", False),
        SEED,
        _uri("last_frame_image", "Input image for last frame generation"),
    ),
    "Output": VIDEO_OUTPUT,
}
KLING_V21: Components = {
    "Input": _input(
        ["prompt", "start_image"],
        PROMPT,
        _uri("start_image", "First frame of the video"),
        NEGATIVE,
        _choice("duration", "Duration of the video in seconds", [5, 10], 5),
        _choice("mode", "Standard has 720p output, pro is 1080p", ["standard", "pro"], "standard"),
        _uri("end_image", "Last frame of the video (pro mode only)"),
    ),
    "Output": VIDEO_OUTPUT,
}
KLING_V21_MASTER: Components = {
    "Input": _input(
        ["prompt"],
        PROMPT,
        _uri("start_image", "First frame of the video (optional)"),
        NEGATIVE,
        _choice("aspect_ratio", "Ignored if start_image is given", ["16:9", "9:16", "1:1"], "16:9"),
        _choice("duration", "Duration of the video in seconds", [5, 10], 5),
    ),
    "Output": VIDEO_OUTPUT,
}
HAILUO_02: Components = {
    "Input": _input(
        ["prompt"],
        PROMPT,
        _uri("first_frame_image", "First frame image for video generation"),
        _uri("last_frame_image", "Last frame image for video generation"),
        _choice("duration", "Duration of the video in seconds", [6, 10], 6),
        _ref("resolution", "Pick between 512p, 768p or 1080p", "1080p"),
        _bool("prompt_optimizer", "Use prompt optimizer", True),
    ),
    "Output": VIDEO_OUTPUT,
    "resolution": _enum("resolution", ["512p", "768p", "1080p"]),
}
VEO_31_FAST: Components = {
    "Input": _input(
        ["prompt"],
        PROMPT,
        _uri("image", "Input image to start generating from"),
        _uri("last_frame", "Ending image for interpolation"),
        _choice("aspect_ratio", "Video aspect ratio", ["16:9", "9:16"], "16:9"),
        _ref("duration", "Video duration in seconds", 8),
        _choice("resolution", "Resolution of the generated video", ["720p", "1080p"], "1080p"),
        _bool("generate_audio", "Generate audio with the video", True),
        _text("negative_prompt", "Description of what to discourage in the video"),
        _int("seed", "Random seed. Omit for random generations"),
    ),
    "Output": VIDEO_OUTPUT,
    "duration": _enum("duration", [4, 6, 8]),
}
WAN_22_I2V_FAST: Components = {
    "Input": _input(
        ["prompt", "image"],
        PROMPT,
        _uri("image", "Input image to generate video from"),
        _int("num_frames", "Number of video frames", 81, minimum=81, maximum=121),
        _choice("resolution", "Resolution of video", ["480p", "720p"], "480p"),
        _int("frames_per_second", "Frames per second", 16, minimum=5, maximum=30),
        _int("seed", "Random seed. Leave blank for random"),
        _bool("go_fast", "Go fast", True),
        _num("sample_shift", "Sample shift factor", 12, minimum=1, maximum=20),
        _bool("disable_safety_checker", "Disable safety checker for generated video", False),
    ),
    "Output": VIDEO_OUTPUT,
}
PIXEL_VIDEO: Components = {  # a community model: runs by version only
    "Input": _input(
        ["input_image"],
        _uri("input_image", "Picture to animate"),
        _text("prompt", "How it moves", ""),
        _int("seconds", "Length of the clip", 2, minimum=1, maximum=4),
    ),
    "Output": VIDEO_OUTPUT,
}

SCHEMAS: dict[str, Components] = {
    "meta/meta-llama-3-8b-instruct": LLAMA_3_8B,
    "black-forest-labs/flux-schnell": _flux(dev=False),
    "black-forest-labs/flux-dev": _flux(dev=True),
    "bytedance/seedance-1-lite": SEEDANCE_1_LITE,
    "kwaivgi/kling-v2.1": KLING_V21,
    "kwaivgi/kling-v2.1-master": KLING_V21_MASTER,
    "minimax/hailuo-02": HAILUO_02,
    "google/veo-3.1-fast": VEO_31_FAST,
    "wan-video/wan-2.2-i2v-fast": WAN_22_I2V_FAST,
    "someone-community/pixel-video": PIXEL_VIDEO,
}
KIND: dict[str, str] = {
    "meta/meta-llama-3-8b-instruct": "text",
    "black-forest-labs/flux-schnell": "image",
    "black-forest-labs/flux-dev": "image",
    "bytedance/seedance-1-lite": "video",
    "kwaivgi/kling-v2.1": "video",
    "kwaivgi/kling-v2.1-master": "video",
    "minimax/hailuo-02": "video",
    "google/veo-3.1-fast": "video",
    "wan-video/wan-2.2-i2v-fast": "video",
    "someone-community/pixel-video": "video",
}
DESCRIPTIONS: dict[str, str] = {
    "meta/meta-llama-3-8b-instruct": "An 8 billion parameter language model from Meta,"
    " fine tuned for chat completions",
    "black-forest-labs/flux-schnell": "The fastest image generation model tailored for local"
    " development and personal use",
    "black-forest-labs/flux-dev": "A 12 billion parameter rectified flow transformer capable"
    " of generating images from text descriptions",
    "bytedance/seedance-1-lite": "A video generation model that offers text-to-video and"
    " image-to-video support for 5s or 10s videos, at 480p and 720p resolution",
    "kwaivgi/kling-v2.1": "Use Kling v2.1 to generate 5s and 10s videos in 720p and 1080p"
    " resolution from a starting image (image-to-video)",
    "kwaivgi/kling-v2.1-master": "A premium version of Kling v2.1 with superb dynamics and"
    " prompt adherence. Generate 1080p 5s and 10s videos from text or an image",
    "minimax/hailuo-02": "Hailuo 2 is a text-to-video and image-to-video model that can make"
    " 6s or 10s videos at 768p (standard) or 1080p (pro)",
    "google/veo-3.1-fast": "New and improved version of Veo 3 Fast, with higher-fidelity"
    " video, context-aware audio and last frame support",
    "wan-video/wan-2.2-i2v-fast": "A very fast and cheap PrunaAI optimized version of Wan 2.2"
    " A14B image-to-video",
    "someone-community/pixel-video": "A community model that animates a picture",
}
COMMUNITY: frozenset[str] = frozenset({"someone-community/pixel-video"})
LATEST_VERSION: dict[str, str] = {
    name: hashlib.sha256(f"fake version of {name}".encode()).hexdigest() for name in SCHEMAS
}
