"""The models a fake Replicate serves: kinds, versions and their published input schemas."""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from typing import Any

from tests.fakes import model_schemas
from tests.fakes.model_schemas import Components
from tests.fakes.replicate_parts import PROFILES, now_iso, version_json


class ServedModels:
    """Every model of tests/fakes/model_schemas.py at first; tests add or change models."""

    def __init__(self) -> None:
        self.versions: dict[str, str] = {}  # version id -> owner/name
        self.kinds: dict[str, str] = {}  # owner/name -> text|image|video
        self.latest: dict[str, str] = {}  # owner/name -> its latest version id
        self.community: set[str] = set()  # models without an official endpoint
        self.schemas: dict[str, Components] = {}  # version id -> components.schemas
        self.schema_fetches: Counter[str] = Counter()  # owner/name -> model/version GETs
        self._version_born: dict[str, str] = {}
        for name, components in model_schemas.SCHEMAS.items():
            self.add_model(
                name,
                components,
                model_schemas.KIND[name],
                version=model_schemas.LATEST_VERSION[name],
                community=name in model_schemas.COMMUNITY,
            )

    def add_model(
        self,
        name: str,
        components: Components,
        kind: str,
        version: str | None = None,
        community: bool = False,
    ) -> str:
        """Serve (or replace) a model with this schema as its latest version; returns its id."""
        if kind not in PROFILES["fast"]:
            raise ValueError(f"kind must be text, image or video, not {kind!r}")
        version = version or hashlib.sha256(f"{name} {len(self.schemas)}".encode()).hexdigest()
        self.kinds[name] = kind
        (self.community.add if community else self.community.discard)(name)
        self._add_version(name, version, components)
        return version

    def new_version(self, name: str, components: Components) -> str:
        """Publish a new latest version of a served model; older versions keep their schema."""
        if name not in self.kinds:
            raise KeyError(name)
        version = secrets.token_hex(32)
        self._add_version(name, version, components)
        return version

    def _add_version(self, name: str, version: str, components: Components) -> None:
        self.versions[version] = name
        self.schemas[version] = components
        self.latest[name] = version
        self._version_born[version] = now_iso()

    def schema_of(self, version: str) -> Components | None:
        """The schema of a version (one a test put in `versions` gets its model's latest)."""
        model = self.versions.get(version)
        if version in self.schemas:
            return self.schemas[version]
        if model in self.latest:
            return self.schemas[self.latest[model]]
        return None

    def version_view(self, version: str) -> dict[str, Any]:
        """The version object the API answers (`GET .../versions/{id}`)."""
        components = self.schema_of(version) or {}
        return version_json(version, components, self._version_born.get(version, now_iso()))
