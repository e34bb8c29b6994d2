"""Replicate webhooks: a finished prediction is POSTed to us, and its step ends at once.

`WebhookReceiver.handle` is an aiohttp handler: it checks the signature
(webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256 with the
account's `whsec_...` secret, via the `replicate` package's own
`Webhooks.validate`, with a 5-minute tolerance against replays), then hands
the prediction to the running event loop's `PredictionApi`, which wakes the
step waiting for it. Unsigned, badly signed, stale or malformed requests get
401/400 and change nothing. Polling goes on underneath, so a lost webhook
costs only latency.

The Slack HTTP server mounts the handler on its own port; every other mode
starts `listen()`, a small server on REPLICATE_WEBHOOK_LISTEN. Steps running
on Ray actors are not reached by webhooks (their polls finish them).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from replicate.webhook import Webhooks, WebhookSigningSecret, WebhookValidationError

from adapters.replicate_api.generator import ReplicateRuntime
from adapters.replicate_api.wire import NotAPrediction, Prediction

log = logging.getLogger(__name__)

TOLERANCE_S = 300  # a signed request older than this is refused (replays)
MAX_BODY = 1 << 20


class WebhookReceiver:
    """Receives Replicate's `completed` webhooks for one runtime's predictions."""

    def __init__(self, runtime: ReplicateRuntime) -> None:
        url = runtime.settings.webhook_url or "http://localhost/replicate/webhook"
        self.runtime = runtime
        self.path = urlsplit(url).path or "/"
        self.received = 0
        # A webhook no step here waits for may be another replica's: tell it (the wiring sets
        # the store's `announce_prediction`; on one host there is nobody else to tell).
        self.announce: Callable[[str], Awaitable[None]] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """Check the signature, then end the waiting step."""
        if (request.content_length or 0) > MAX_BODY:
            return web.Response(status=413, text="too large")
        body = (await request.read()).decode("utf-8", "replace")
        api = self.runtime.current().api
        secret = WebhookSigningSecret(key=await api.webhook_secret())
        try:
            Webhooks.validate(headers=dict(request.headers), body=body, secret=secret,
                              tolerance=TOLERANCE_S)  # fmt: skip
        except (WebhookValidationError, ValueError) as exc:
            log.warning("refused a Replicate webhook: %s", type(exc).__name__)
            return web.Response(status=401, text="invalid signature")
        try:
            data = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="not JSON")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            return web.Response(status=400, text="not a prediction")
        self.received += 1
        try:
            taken = api.deliver(Prediction.from_json(data))
        except NotAPrediction:  # signed but without a status a wait can use: polls find it
            log.info("a Replicate webhook without a known status for %s", data["id"])
            return web.Response(text="ok")
        if not taken and self.announce is not None:
            await self.announce(data["id"])
        return web.Response(text="ok")

    def add_to(self, app: web.Application) -> None:
        """Mount the handler on an existing aiohttp application."""
        app.router.add_post(self.path, self.handle)

    @contextlib.asynccontextmanager
    async def listen(self, host: str, port: int) -> AsyncIterator[int]:
        """Serve the handler on host:port until the block ends; yields the bound port."""
        app = web.Application(client_max_size=MAX_BODY)
        self.add_to(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            bound = int(runner.addresses[0][1])
            log.info("Replicate webhooks: listening on %s:%s%s", host, bound, self.path)
            yield bound
        finally:
            await runner.cleanup()
