"""The suite leaves no Ray worker behind: workers whose raylet is gone are found."""

from __future__ import annotations

import os
import subprocess
import time

from tests.ray_fixtures import _started, stray_ray_workers


def test_a_ray_worker_without_its_raylet_is_found_and_a_stopped_one_is_not() -> None:
    since = _started(os.getpid())
    orphan = subprocess.Popen(["ray::StepActorCode", "60"], executable="sleep")  # its parent: us
    try:
        deadline = time.monotonic() + 10
        while orphan.pid not in stray_ray_workers(since) and time.monotonic() < deadline:
            time.sleep(0.01)  # until exec has named it
        assert stray_ray_workers(since).get(orphan.pid) == "ray::StepActorCode"
        assert orphan.pid not in stray_ray_workers(_started(orphan.pid) + 1)  # started before
    finally:
        orphan.kill()
        orphan.wait()
    assert orphan.pid not in stray_ray_workers(since)
