"""Progress percentages from real shapes of Replicate prediction logs."""

from __future__ import annotations

import pytest

from adapters.replicate_api.log_progress import percent
from adapters.replicate_api.predictions import status_line
from adapters.replicate_api.wire import Prediction, Status

# Shapes copied from public predictions' `logs` (diffusion and video models print tqdm bars).
FLUX = (
    "Using seed: 1234\nrunning quantized prediction\n"
    "  0%|          | 0/4 [00:00<?, ?it/s]\r 25%|██▌       | 1/4 [00:00<00:01,  2.83it/s]\r"
    " 50%|█████     | 2/4 [00:00<00:00,  2.97it/s]\r"
)
SEEDANCE = (
    "[seedance] queued\n  0%|          | 0/30 [00:00<?, ?it/s]\n"
    " 43%|████▎     | 13/30 [00:21<00:28,  1.66s/it]\n"
)
COUNTS_ONLY = "Sampling: 18/40 [00:09<00:11, 1.9it/s]"
DONE = FLUX + "100%|██████████| 4/4 [00:01<00:00,  2.99it/s]\nTotal safe images: 1 out of 1\n"


@pytest.mark.parametrize(
    ("logs", "expected"),
    [
        (FLUX, 50),
        (SEEDANCE, 43),
        (COUNTS_ONLY, 45),
        (DONE, 100),
        ("", None),
        (None, None),
        ("Using seed: 42\nloading weights", None),
        ("accuracy 250%| odd", None),  # not a percentage
        ("resized to 1024/768 pixels", None),  # a ratio, not a tqdm count
    ],
)
def test_percent_reads_the_latest_bar(logs: str | None, expected: int | None) -> None:
    assert percent(logs) == expected


def test_only_the_tail_of_long_logs_is_read() -> None:
    logs = " 10%|█         | 1/10 [00:01<00:09]\n" + "x" * 10_000 + "\n 70%|███████   | 7/10 ["
    assert percent(logs) == 70


def test_a_running_prediction_shows_its_percentage_beside_its_status() -> None:
    assert status_line(_prediction("processing", SEEDANCE)) == "processing 43%"
    assert status_line(_prediction("processing", "")) == "processing"
    assert status_line(_prediction("starting", None)) == "starting"
    assert status_line(_prediction("succeeded", DONE)) == "succeeded"


def _prediction(status: str, logs: str | None) -> Prediction:
    return Prediction("p1", Status(status), logs=logs)
