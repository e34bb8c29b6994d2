"""`export ID [--out FILE]`: a zip of one campaign's files plus campaign.json.

campaign.json is the document `show --json` prints. The files are every
output the campaign stored (images, videos, contact sheet, timeline, reel,
an uploaded image) that lies inside the campaign's own folder, stored in the
zip by their path relative to it; a path that points elsewhere (an edited
database) is left out and listed under `skipped`.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.model import Campaign


@dataclass(frozen=True)
class Exported:
    """What went into the zip."""

    path: Path
    files: list[str]  # names inside the zip, campaign.json first
    skipped: list[str]  # stored paths outside the campaign folder or missing


def outputs(campaign: Campaign) -> list[str]:
    """Every file path the campaign stored, once each, in a stable order."""
    found = [s.output for p in campaign.products for s in p.steps]
    found += [campaign.contact_sheet, campaign.timeline, campaign.reel]
    return list(dict.fromkeys(p for p in found if p))


def export_zip(campaign: Campaign, document: dict[str, Any], folder: Path, out: Path) -> Exported:
    """Write the zip (to a temporary name first, so a half-written file is never left)."""
    root = folder.resolve()
    names, skipped = ["campaign.json"], []
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("campaign.json", json.dumps(document, indent=2))
        for stored in outputs(campaign):
            path = Path(stored).resolve()
            if not path.is_file() or not path.is_relative_to(root):
                skipped.append(stored)
                continue
            name = path.relative_to(root).as_posix()
            kind = zipfile.ZIP_STORED if path.suffix in (".png", ".jpg", ".mp4", ".webp") else None
            zf.write(path, name, compress_type=kind)
            names.append(name)
    partial.replace(out)
    return Exported(out, names, skipped)
