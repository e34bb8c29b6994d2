"""ReplicateGenerator: product images and videos made by Replicate models.

The generator holds configuration only, so it pickles (the Ray executor ships
it to actors). The `replicate.Client`, the download client and the rate-limit
buckets are made lazily, once per running event loop, by `ReplicateRuntime`,
which the LLM planner shares so its predictions count against the same limit.

A step: create the prediction (or re-attach to `job.provider_id`), store its
id at once, wait for it with a per-kind deadline (images and plans are created
with `Prefer: wait` and usually come back finished), cancel it on Replicate
when the deadline passes or the step is cancelled, announce its output URL
(a video can start from it at once), then download the output into the
campaign folder and price it from `metrics`. A video's input image is the
image's output URL while Replicate still serves it, else the saved file
(inline when small, uploaded when not).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from adapters.replicate_api.catalog import Binding, ModelCatalog, UnknownModel
from adapters.replicate_api.downloads import Downloader, OutputGone, shared_tls, sniff
from adapters.replicate_api.http import Refused
from adapters.replicate_api.predict import REUSABLE, predict
from adapters.replicate_api.predictions import PredictionApi
from adapters.replicate_api.settings import ReplicateSettings
from adapters.replicate_api.shared_rate import PortableRate, SharedRate
from adapters.replicate_api.wire import Prediction, Status
from core.errors import (
    ConfigError,
    InvalidRequest,
    PermanentStepError,
    StepError,
    TransientStepError,
)
from core.model import StepKind, StepName
from core.ports import StepContext, StepJob, StepOutput
from core.retry import Backoff, retrying

log = logging.getLogger(__name__)

Remember = Callable[[str], Awaitable[None]]
# Replicate recommends data: URIs for input files under 1 MB (base64: 4 characters per 3 bytes).
DATA_URI_MAX_CHARS = 1_000_000 * 4 // 3 + 100
DOWNLOAD_ATTEMPTS = 3
# 1 s after the first failed download, 2 s after the second: exact, no jitter
DOWNLOAD_RETRY = Backoff(base_s=1.0, attempts=DOWNLOAD_ATTEMPTS, jitter=0.0)


class _Loop:
    """What one event loop owns: the API client and the download client."""

    def __init__(
        self, settings: ReplicateSettings, shared: Callable[[], SharedRate | None]
    ) -> None:
        self.api = PredictionApi(settings, shared=shared)
        self.downloads = Downloader(
            max_bytes=int(settings.max_download_mb * 1e6),
            allow_http=settings.allow_http,
            hosts=settings.download_hosts(),
            allow_private=settings.allow_private_outputs,
        )

    async def aclose(self) -> None:
        await self.api.aclose()
        await self.downloads.aclose()


class TextPace:
    """How fast each language model writes its answers, as seen in their streams."""

    CHARS_PER_PLAN = 600  # one product's plan: ~150 tokens
    DEFAULT_CHARS_PER_S = 400.0  # ~100 tokens a second (Llama 3 8B on Replicate)

    def __init__(self) -> None:
        self._chars_per_s: dict[str | None, float] = {}

    def learn(self, model: str | None, chars_per_s: float | None) -> None:
        """One answer's speed (None: it showed none); recent answers count the most."""
        if chars_per_s is None or chars_per_s <= 0:
            return
        old = self._chars_per_s.get(model)
        self._chars_per_s[model] = chars_per_s if old is None else 0.5 * old + 0.5 * chars_per_s

    def plan_s(self, model: str | None) -> float:
        """Seconds the model takes to write one product's plan."""
        return self.CHARS_PER_PLAN / self._chars_per_s.get(model, self.DEFAULT_CHARS_PER_S)


class ReplicateRuntime:
    """Configuration plus lazily made clients, one set per event loop; pickles as config."""

    def __init__(self, settings: ReplicateSettings) -> None:
        self.settings = settings
        self.catalog = ModelCatalog(settings.models)
        self.pace = TextPace()  # how fast the language models write, as seen here
        # The account's create schedule shared through the database (set by the wiring):
        # `shared` here (the store itself, on its own connection), `portable` for Ray
        # actors (it travels with the rest and connects again where it lands).
        self.shared: SharedRate | None = None
        self.portable: PortableRate | None = None
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = (
            weakref.WeakKeyDictionary()
        )

    def __getstate__(self) -> dict[str, Any]:
        # clients belong to the loop that made them; the schemas read so far travel along,
        # and so does a portable create schedule (it connects again where it lands)
        shared = self.shared if isinstance(self.shared, PortableRate) else self.portable
        return {"settings": self.settings, "catalog": self.catalog, "shared": shared}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"])  # type: ignore[misc]
        self.catalog = state["catalog"]
        self.shared = state.get("shared")

    async def share(self, shared: SharedRate | None, portable: PortableRate | None = None) -> None:
        """Take every create's slot from `shared` (the account's schedule) from now on, and
        hand `portable` (the same schedule, connecting on its own) to Ray actors; the
        running loop's connection to a portable schedule attached before is closed.

        In the process that holds the store, `shared` is the store itself: a second
        connection writing the same SQLite file would wait on the first one's locks."""
        if isinstance(self.shared, PortableRate) and self.shared is not shared:
            await self.shared.aclose()
        self.shared, self.portable = shared, portable

    def current(self) -> _Loop:
        """The clients of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        if loop not in self._loops:
            self._loops[loop] = _Loop(self.settings, lambda: self.shared)
        return self._loops[loop]

    def nudge(self, prediction_id: str) -> None:
        """Poll a prediction now if a step of this process waits for it (another replica got
        its webhook)."""
        own = self._loops.get(asyncio.get_running_loop())
        if own is not None:
            own.api.polls.nudge(prediction_id)

    async def aclose(self) -> None:
        """Close the running loop's clients and its connection to the create schedule."""
        own = self._loops.pop(asyncio.get_running_loop(), None)
        if own is not None:
            await own.aclose()
        if isinstance(self.shared, PortableRate):
            await self.shared.aclose()


def outcome_error(prediction: Prediction) -> str | None:
    """The user-facing reason a finished prediction is unusable, or None if it succeeded."""
    status = prediction.status
    if status is Status.SUCCEEDED:
        return None
    if status is Status.FAILED:
        error = " ".join((prediction.error or "no reason given").split())
        return f"the model failed: {error[:300]}"
    if status is Status.ABORTED:
        return "Replicate aborted the prediction before it ran"
    return "the prediction was canceled on Replicate"


def predict_time(prediction: Prediction) -> float | None:
    """The prediction's `metrics.predict_time` in seconds, if Replicate reported one."""
    seconds = prediction.metrics.predict_time
    return seconds if seconds is not None and seconds >= 0 else None


def file_url(output: object) -> str | None:
    """The first file URL in a prediction's output."""
    if isinstance(output, str):
        return output or None
    if isinstance(output, list) and output:
        return file_url(output[0])
    if isinstance(output, dict):
        return next((u for v in output.values() if (u := file_url(v))), None)
    return None


class ReplicateGenerator:
    """Images and videos from Replicate models (see the module doc)."""

    name = "replicate"

    def __init__(self, settings: ReplicateSettings, runtime: ReplicateRuntime | None = None):
        self.settings = settings
        self.runtime = runtime or ReplicateRuntime(settings)

    def price_usd(self, step: StepName, model: str | None) -> float:
        """Expected cost of one step on its model, priced on what would be sent."""
        return self.runtime.catalog.bound(step.kind, model).estimate_usd()

    async def aclose(self) -> None:
        """Close the running loop's clients."""
        await self.runtime.aclose()

    async def ping(self) -> object:
        """One authenticated GET /v1/account (3 s): the token is accepted, the API answers."""
        return await self.runtime.current().api.http.send("GET", "/v1/account", timeout_s=3.0)

    async def warm(self) -> None:
        """Build the running loop's clients (and the TLS context) before the first campaign."""
        await asyncio.to_thread(shared_tls)  # ~50 ms once, off the event loop
        self.runtime.current().api.http.warm()

    def typical_s(self, step: StepName, model: str | None) -> float | None:
        """The model's typical seconds (the price table or models file), if it names one."""
        try:
            seconds = self.runtime.catalog.bound(step.kind, model).price.typical_s
        except ConfigError:
            return None
        return seconds or None

    async def check_models(self, models: Mapping[StepKind, str | None]) -> None:
        """Refuse a model that does not exist or cannot make its kind's steps (InvalidRequest);
        reads the schemas the estimates need. Replicate unreachable and no stored schema:
        let it through (the step reads the schema again when it runs)."""
        http = self.runtime.current().api.http
        for kind, override in models.items():
            field = f"{kind.value}_model"
            try:
                binding = await self.runtime.catalog.bind(http, kind, override)
            except UnknownModel as exc:
                raise InvalidRequest(field, str(exc), "a model that exists on Replicate") from None
            except StepError as exc:  # e.g. unreachable: the step reads the schema again
                log.warning("could not check the %s model: %s", kind.value, exc)
                continue
            if (unable := binding.unable()) is not None:
                raise InvalidRequest(field, unable, f"a {kind.value} model with those inputs")

    async def run(self, job: StepJob, ctx: StepContext) -> StepOutput:
        """Run one image or video prediction and download its output."""
        own = self.runtime.current()
        binding = await self.runtime.catalog.bind(own.api.http, job.kind, job.model)
        existing = await self._reattach(own.api, job, ctx) if job.provider_id else None
        if existing is not None:
            try:
                return await self._finish(own, binding, job, ctx, existing)
            except OutputGone:
                await ctx.hooks.report("stored prediction expired; starting a new one")
        try:
            return await self._finish(
                own, binding, job, ctx, None, await self._inputs(own, binding, job)
            )
        except Refused as refused:
            again = await self.runtime.catalog.after_refusal(own.api.http, binding, refused)
            if again is None:
                raise
            return await self._finish(
                own, again, job, ctx, None, await self._inputs(own, again, job)
            )

    async def _finish(
        self,
        own: _Loop,
        binding: Binding,
        job: StepJob,
        ctx: StepContext,
        existing: Prediction | None,
        inputs: dict[str, Any] | None = None,
    ) -> StepOutput:
        prediction = await predict(
            own.api,
            binding.create_ref,
            inputs or {},
            kind=job.kind,
            deadline_s=self.settings.deadline(job.kind),
            hooks=ctx.hooks,
            existing=existing,
            intent_at=job.intent_at if existing is None else None,
            sent=json.loads(job.sent_input) if job.sent_input else None,
            key=job.campaign_id,
        )
        if (error := outcome_error(prediction)) is not None:
            raise PermanentStepError(error)
        url = file_url(prediction.output)
        if url is None:
            raise PermanentStepError("the model returned no output")
        handed_on = self._handed_on(url)
        if handed_on is not None:
            await ctx.hooks.output_ready(handed_on)  # a video may start from it while we download
        path = await self._download(own.downloads, url, job, ctx)
        sent = prediction.input if prediction.input is not None else inputs
        return StepOutput(
            path=path,
            url=handed_on,
            provider_id=prediction.id,
            model=binding.ref,
            cost_usd=binding.cost_usd(sent or {}, prediction.metrics),
            predict_time_s=predict_time(prediction),
        )

    def _handed_on(self, url: str) -> str | None:
        """The output URL a video may start from: Replicate's, or a `data:` URL small enough
        to send inline (so the image is not uploaded again)."""
        if not url.startswith("data:"):
            return url
        return url if len(url) <= DATA_URI_MAX_CHARS else None

    async def _reattach(
        self, api: PredictionApi, job: StepJob, ctx: StepContext
    ) -> Prediction | None:
        """The stored prediction if it can still give this step its output."""
        assert job.provider_id is not None
        try:
            prediction = await api.get(job.provider_id)
        except PermanentStepError:  # unknown to Replicate (e.g. another account)
            return None
        if prediction.status not in REUSABLE or prediction.data_removed:
            return None
        await ctx.hooks.report(f"re-attached to prediction {job.provider_id}")
        return prediction

    async def _inputs(self, own: _Loop, binding: Binding, job: StepJob) -> dict[str, Any]:
        """The step's input, built from the model's schema and checked before anything is spent."""
        if (unable := binding.unable()) is not None:
            raise PermanentStepError(unable)
        if job.step is StepName.IMAGE:
            inputs = binding.inputs(job.plan.image_prompt, seed=job.seed)
        elif job.input_url is not None:
            # Replicate still serves the image (or it is small enough inline): no upload
            inputs = binding.inputs(job.plan.video_prompt, seed=job.seed, image=job.input_url)
        elif job.input_path is not None:
            image = await self._image_input(own.api, job.input_path)
            inputs = binding.inputs(job.plan.video_prompt, seed=job.seed, image=image)
        else:
            raise PermanentStepError("video step has no input image")
        assert binding.schema is not None  # bound: inputs() needs it
        if problems := binding.schema.problems(inputs):
            raise PermanentStepError(f"{binding.ref} would refuse the input: {'; '.join(problems)}")
        return inputs

    async def _image_input(self, api: PredictionApi, path: str) -> str:
        """A data: URI for a small image, else an uploaded file's URL."""
        data = await asyncio.to_thread(Path(path).read_bytes)
        media = sniff(data[:16]) or "application/octet-stream"
        if len(data) <= self.settings.inline_max_kb * 1024:
            return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
        return await api.upload(data, Path(path).name, media)

    async def _download(
        self, downloads: Downloader, url: str, job: StepJob, ctx: StepContext
    ) -> str:
        kind = "video" if job.kind is StepKind.VIDEO else "image"
        stem = Path(job.out_dir) / f"p{job.plan.index + 1:02d}-{job.step.value}"
        await ctx.hooks.report("downloading")

        async def back_off(exc: TransientStepError, attempt: int) -> None:
            log.info("download of %s failed (%s); retrying", job.provider_id, exc)
            await asyncio.sleep(DOWNLOAD_RETRY.delay(attempt))

        try:
            return await retrying(
                lambda: downloads.fetch(url, stem, kind),
                DOWNLOAD_RETRY,
                TransientStepError,
                between=back_off,
            )
        except TransientStepError as exc:
            raise PermanentStepError(f"could not download the output: {exc}") from None
