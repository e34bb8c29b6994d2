"""ReplicateSettings: everything the Replicate adapters read from the environment.

The API token is kept out of repr() so it never reaches logs or messages.
Every variable is listed in docs/configuration.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlsplit

from adapters.replicate_api.downloads import OUTPUT_HOSTS, host_patterns
from adapters.replicate_api.models import ModelTable, parse_ref
from core.errors import ConfigError
from core.model import StepKind
from core.settings import env_value, positive_float, positive_int, yes_no


@dataclass(frozen=True)
class ReplicateSettings:
    """Replicate generator and planner configuration (frozen, picklable)."""

    api_token: str | None = field(default=None, repr=False)
    base_url: str | None = None  # None: the client's own default (api.replicate.com)
    models: ModelTable = field(default_factory=ModelTable)
    deadline_text_s: float = 120.0
    deadline_image_s: float = 300.0
    deadline_video_s: float = 1800.0
    create_per_min: float = 600.0  # Replicate's create limit
    read_per_min: float = 3000.0  # Replicate's limit for every other endpoint
    burst_s: float = 1.0  # seconds' worth of requests sent at once (Replicate allows bursts)
    # `Prefer: wait` on text and image creates: the answer comes when the prediction
    # is done or after this long. Kept below the 15 s a cancel waits for a create's
    # answer, so a campaign cancelled meanwhile still learns the id and cancels it.
    prefer_wait_s: int = 10
    create_attempts: int = 6
    backoff_s: float = 1.0  # first retry delay; doubles, with jitter
    retry_cap_s: float = 60.0
    read_timeout_s: float = 30.0  # wait for an API answer (the client's default); not in env
    poll_min_s: float = 0.1  # shortest gap between polls of one prediction
    poll_max_s: float = 5.0  # longest gap (the webhook, when set, usually comes first)
    webhook_url: str | None = None  # public URL Replicate POSTs finished predictions to
    webhook_secret: str | None = field(default=None, repr=False)  # whsec_...; else fetched
    webhook_listen: str = "127.0.0.1:8788"  # host:port of the webhook listener (not Slack)
    allow_http: bool = False  # plain http API and output URLs: local testing only
    # Output downloads: hosts added to Replicate's delivery hosts (names or *.domain), and
    # whether outputs may resolve to loopback/private addresses (local testing only).
    output_hosts: tuple[str, ...] = ()
    allow_private_outputs: bool = False
    max_download_mb: float = 200.0
    inline_max_kb: int = 256  # input images up to this size go inline as data: URIs

    def deadline(self, kind: StepKind) -> float:
        """Seconds a prediction of this kind may take before it is canceled."""
        value: float = getattr(self, f"deadline_{kind.value}_s", self.deadline_image_s)
        return value

    def with_models(self, overrides: Mapping[str, str | None]) -> ReplicateSettings:
        """A copy with some kinds' models replaced (e.g. from command-line options)."""
        given = {k: _model(f"--{k}-model", v) for k, v in overrides.items() if v}
        models = replace(
            self.models,
            text=given.get("text", self.models.text),
            image=given.get("image", self.models.image),
            video=given.get("video", self.models.video),
        )
        models.check()
        return replace(self, models=models)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReplicateSettings:
        """Settings from REPLICATE_* variables (see docs/configuration.md)."""
        env = os.environ if env is None else env
        base = cls()
        numbers = {
            f.name: env_value(env, _ENV[f.name], _NUMBERS[f.type], getattr(base, f.name))
            for f in fields(cls)
            if f.name in _ENV and f.type in _NUMBERS
        }
        models = ModelTable(
            **{
                k.value: env_value(
                    env, f"REPLICATE_{k.value.upper()}_MODEL", _ref, getattr(base.models, k.value)
                )
                for k in (StepKind.TEXT, StepKind.IMAGE, StepKind.VIDEO)
            },
            video_seconds=env_value(env, "REPLICATE_VIDEO_SECONDS", positive_float, None),
            video_resolution=(env.get("REPLICATE_VIDEO_RESOLUTION") or "").strip() or None,
        )
        if path := (env.get("CAMPAIGN_MODELS_FILE") or "").strip():
            models = models.with_file(path)
        settings = cls(
            api_token=env.get("REPLICATE_API_TOKEN") or None,
            base_url=(env.get("REPLICATE_BASE_URL") or "").strip() or None,
            webhook_url=(env.get("REPLICATE_WEBHOOK_URL") or "").strip() or None,
            webhook_secret=(env.get("REPLICATE_WEBHOOK_SECRET") or "").strip() or None,
            webhook_listen=(env.get("REPLICATE_WEBHOOK_LISTEN") or "").strip()
            or base.webhook_listen,
            models=models,
            allow_http=env_value(env, "REPLICATE_ALLOW_HTTP", yes_no, False),
            output_hosts=env_value(env, "REPLICATE_OUTPUT_HOSTS", _hosts, ()),
            allow_private_outputs=env_value(env, "REPLICATE_ALLOW_PRIVATE_OUTPUTS", yes_no, False),
            **numbers,
        )
        settings.check()
        settings.models.check()
        return settings

    def __post_init__(self) -> None:
        if not 1 <= self.prefer_wait_s <= 60:
            raise ConfigError("REPLICATE_PREFER_WAIT is invalid: must be 1-60 seconds")

    def check(self) -> None:
        """Refuse plain-http URLs unless explicitly allowed, and malformed webhook secrets."""
        for name, url in (
            ("REPLICATE_BASE_URL", self.base_url),
            ("REPLICATE_WEBHOOK_URL", self.webhook_url),
        ):
            scheme = urlsplit(url).scheme if url else "https"
            if scheme not in ("https", "http") or (scheme == "http" and not self.allow_http):
                raise ConfigError(
                    f"{name}={url!r} is invalid: must be https "
                    "(plain http only with REPLICATE_ALLOW_HTTP=1, for local testing)"
                )
        if self.webhook_secret is not None and not self.webhook_secret.startswith("whsec_"):
            raise ConfigError("REPLICATE_WEBHOOK_SECRET is invalid: it starts with whsec_")
        self.listen_address()

    def download_hosts(self) -> tuple[str, ...]:
        """Hosts outputs may be downloaded from: Replicate's, the operator's, and the API's own
        host when REPLICATE_BASE_URL names one (a proxy or a local fake serving outputs too)."""
        api_host = urlsplit(self.base_url).hostname if self.base_url else None
        return host_patterns([*OUTPUT_HOSTS, *self.output_hosts, *([api_host] if api_host else [])])

    def listen_address(self) -> tuple[str, int]:
        """(host, port) of REPLICATE_WEBHOOK_LISTEN."""
        host, _, port = self.webhook_listen.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(
                f"REPLICATE_WEBHOOK_LISTEN={self.webhook_listen!r} is invalid: use host:port"
            )
        return host, int(port)


_ENV = {
    "deadline_text_s": "REPLICATE_DEADLINE_TEXT",
    "deadline_image_s": "REPLICATE_DEADLINE_IMAGE",
    "deadline_video_s": "REPLICATE_DEADLINE_VIDEO",
    "create_per_min": "REPLICATE_CREATE_RATE",
    "read_per_min": "REPLICATE_READ_RATE",
    "burst_s": "REPLICATE_BURST",
    "prefer_wait_s": "REPLICATE_PREFER_WAIT",
    "create_attempts": "REPLICATE_CREATE_ATTEMPTS",
    "retry_cap_s": "REPLICATE_RETRY_CAP",
    "poll_min_s": "REPLICATE_POLL_MIN",
    "poll_max_s": "REPLICATE_POLL_MAX",
    "max_download_mb": "REPLICATE_MAX_DOWNLOAD_MB",
    "inline_max_kb": "REPLICATE_INLINE_MAX_KB",
}


def _ref(raw: str) -> str:
    return str(parse_ref(raw))


def _hosts(raw: str) -> tuple[str, ...]:
    return host_patterns(raw.replace(",", " ").split())


def _model(name: str, raw: str) -> str:
    try:
        return _ref(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from None


_NUMBERS: dict[object, Callable[[str], object]] = {
    "float": positive_float,
    "int": positive_int,
    float: positive_float,
    int: positive_int,
}
