"""A campaign's folder on disk: the writes the core makes there itself.

Steps and pictures write their outputs through the executor; the one file the
core writes directly is a caller's uploaded image, before its campaign is
stored, and it removes the folder again if the campaign is refused. Both run
off the event loop. Where the folder is: `campaign_folder`.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path


def campaign_folder(data_dir: Path, campaign_id: str) -> Path:
    """Where a campaign's files go, under the data folder."""
    return (data_dir / "campaigns" / campaign_id).resolve()


async def write_new(path: Path, data: bytes) -> None:
    """Write `data` to `path`, making its folder first."""
    await asyncio.to_thread(_write_new, path, data)


async def remove_folder(folder: Path) -> None:
    """Remove `folder` and everything in it; a missing folder is no error."""
    await asyncio.to_thread(shutil.rmtree, folder, True)


def _write_new(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
