"""ReplicateSettings: the Replicate adapters' section of the settings.

Each field names its variable (docs/configuration.md lists them all); the
API token and webhook secret are SecretStr, so no repr() or log shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import InstanceOf, SecretStr, model_validator

from adapters.replicate_api.hosts import OUTPUT_HOSTS, host_patterns
from adapters.replicate_api.models import ModelTable, parse_ref
from core.errors import ConfigError
from core.model import StepKind
from core.setting_values import positive_float, positive_int, words, yes_no
from core.settings import Env, Section, env_value, reveal


def _ref(raw: str) -> str:
    return str(parse_ref(raw))


def _hosts(raw: str) -> tuple[str, ...]:
    return host_patterns(words(raw))


def _model(name: str, raw: str) -> str:
    try:
        return _ref(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from None


class ReplicateSettings(Section):
    """Replicate generator and planner configuration (frozen, picklable)."""

    api_token: Annotated[SecretStr | None, Env("REPLICATE_API_TOKEN")] = None
    # None: the client's own default (api.replicate.com).
    base_url: Annotated[str | None, Env("REPLICATE_BASE_URL")] = None
    # REPLICATE_TEXT_MODEL / _IMAGE_ / _VIDEO_, REPLICATE_VIDEO_SECONDS / _RESOLUTION and
    # CAMPAIGN_MODELS_FILE.
    models: InstanceOf[ModelTable] = ModelTable()
    deadline_text_s: Annotated[float, Env("REPLICATE_DEADLINE_TEXT", positive_float)] = 120.0
    deadline_image_s: Annotated[float, Env("REPLICATE_DEADLINE_IMAGE", positive_float)] = 300.0
    deadline_video_s: Annotated[float, Env("REPLICATE_DEADLINE_VIDEO", positive_float)] = 1800.0
    # Replicate's create limit, and its limit for every other endpoint.
    create_per_min: Annotated[float, Env("REPLICATE_CREATE_RATE", positive_float)] = 600.0
    read_per_min: Annotated[float, Env("REPLICATE_READ_RATE", positive_float)] = 3000.0
    # Seconds' worth of requests sent at once (Replicate allows bursts).
    burst_s: Annotated[float, Env("REPLICATE_BURST", positive_float)] = 1.0
    # `Prefer: wait` on text and image creates: the answer comes when the prediction
    # is done or after this long. Kept below the 15 s a cancel waits for a create's
    # answer, so a campaign cancelled meanwhile still learns the id and cancels it.
    prefer_wait_s: Annotated[int, Env("REPLICATE_PREFER_WAIT", positive_int)] = 10
    create_attempts: Annotated[int, Env("REPLICATE_CREATE_ATTEMPTS", positive_int)] = 6
    backoff_s: float = 1.0  # first retry delay; doubles, with jitter (not in env)
    retry_cap_s: Annotated[float, Env("REPLICATE_RETRY_CAP", positive_float)] = 60.0
    read_timeout_s: float = 30.0  # wait for an API answer (the client's default); not in env
    # A cancelled step waits this long for its create's answer (to cancel what it made),
    # and for the cancel itself; not in env.
    cancel_wait_s: float = 15.0
    # Shortest and longest gap between polls of one prediction (the webhook, when set,
    # usually comes first).
    poll_min_s: Annotated[float, Env("REPLICATE_POLL_MIN", positive_float)] = 0.1
    poll_max_s: Annotated[float, Env("REPLICATE_POLL_MAX", positive_float)] = 5.0
    # Public URL Replicate POSTs finished predictions to; its secret (whsec_...), else fetched.
    webhook_url: Annotated[str | None, Env("REPLICATE_WEBHOOK_URL")] = None
    webhook_secret: Annotated[SecretStr | None, Env("REPLICATE_WEBHOOK_SECRET")] = None
    # host:port of the webhook listener (not Slack's).
    webhook_listen: Annotated[str, Env("REPLICATE_WEBHOOK_LISTEN")] = "127.0.0.1:8788"
    # Plain http API and output URLs: local testing only.
    allow_http: Annotated[bool, Env("REPLICATE_ALLOW_HTTP", yes_no)] = False
    # Output downloads: hosts added to Replicate's delivery hosts (names or *.domain), and
    # whether outputs may resolve to loopback/private addresses (local testing only).
    output_hosts: Annotated[tuple[str, ...], Env("REPLICATE_OUTPUT_HOSTS", _hosts)] = ()
    allow_private_outputs: Annotated[bool, Env("REPLICATE_ALLOW_PRIVATE_OUTPUTS", yes_no)] = False
    max_download_mb: Annotated[float, Env("REPLICATE_MAX_DOWNLOAD_MB", positive_float)] = 200.0
    # Input images up to this size go inline as data: URIs.
    inline_max_kb: Annotated[int, Env("REPLICATE_INLINE_MAX_KB", positive_int)] = 256

    @property
    def token(self) -> str:
        """The API token's text, for the Authorization header only ("" when unset)."""
        return reveal(self.api_token)

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
        return self.model_copy(update={"models": models})

    @classmethod
    def variables(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        """The single variables, plus the model table made of several (and a models file)."""
        base = ModelTable()
        models = ModelTable(
            **{
                k.value: env_value(
                    environ, f"REPLICATE_{k.value.upper()}_MODEL", _ref, getattr(base, k.value)
                )
                for k in (StepKind.TEXT, StepKind.IMAGE, StepKind.VIDEO)
            },
            video_seconds=env_value(environ, "REPLICATE_VIDEO_SECONDS", positive_float, None),
            video_resolution=(environ.get("REPLICATE_VIDEO_RESOLUTION") or "").strip() or None,
        )
        if path := (environ.get("CAMPAIGN_MODELS_FILE") or "").strip():
            models = models.with_file(path)
        return {**super().variables(environ), "models": models}

    @model_validator(mode="after")
    def _checked(self) -> ReplicateSettings:
        if not 1 <= self.prefer_wait_s <= 60:
            raise ConfigError("REPLICATE_PREFER_WAIT is invalid: must be 1-60 seconds")
        self.check()
        self.models.check()
        return self

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
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else None
        if secret is not None and not secret.startswith("whsec_"):
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
