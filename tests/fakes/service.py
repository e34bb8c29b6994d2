"""Fakes for the service as the front ends see it (their port into the core).

A front end only calls the service it is given, so a test hands it one of these
instead of patching the real service: the rest of the test (the store, the
resumer, `service.wait`) keeps using the real one unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.model import Campaign
from core.ports import ProgressSink
from core.service import CampaignService


class ServiceWith:
    """The real service, as a front end sees it, with some of its methods replaced."""

    def __init__(self, real: CampaignService, **replaced: Callable[..., Any]) -> None:
        self._real = real
        self._replaced = replaced

    def __getattr__(self, name: str) -> Any:
        if name in self._replaced:
            return self._replaced[name]
        return getattr(self._real, name)


class ResumingRecorder:
    """Records what a front end asks the resumer for (and resumes nothing)."""

    def __init__(self) -> None:
        self.asked: list[tuple[Callable[[Campaign], list[ProgressSink]], Any]] = []

    def start_resuming(
        self, sinks_for: Callable[[Campaign], list[ProgressSink]], *, accept: Any
    ) -> None:
        self.asked.append((sinks_for, accept))
