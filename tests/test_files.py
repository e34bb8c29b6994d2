"""Atomic writes: a file appears whole or not at all, and leaves nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from adapters.files import atomic_path


def test_a_file_is_written_whole_into_a_folder_made_for_it(tmp_path: Path) -> None:
    out = tmp_path / "campaigns" / "c1" / "clip.mp4"  # neither folder exists yet
    with atomic_path(str(out)) as tmp:
        assert not out.exists()  # nothing at the final name while it is written
        Path(tmp).write_bytes(b"video")
    assert out.read_bytes() == b"video"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert os.listdir(out.parent) == ["clip.mp4"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    out.write_bytes(b"old")

    def crash_midway() -> None:
        with atomic_path(str(out)) as tmp:
            Path(tmp).write_bytes(b"half")
            raise RuntimeError("the renderer crashed")

    with pytest.raises(RuntimeError):
        crash_midway()
    assert out.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["sheet.png"]


def test_writers_at_once_get_names_of_their_own(tmp_path: Path) -> None:
    out = str(tmp_path / "a.png")
    with atomic_path(out) as first, atomic_path(out) as second:
        assert first != second
        Path(first).write_bytes(b"1")
        Path(second).write_bytes(b"2")
    assert Path(out).read_bytes() == b"1"  # the last to finish wins, whole
