"""The sidecar's components: which state stores and pub/subs it serves, read from
Dapr component files.

Without ``--resources-path`` the sidecar serves what a fresh Dapr installation has: a
state store named ``statestore`` and a pub/sub named ``pubsub``. With it, every
``*.yaml`` / ``*.yml`` file of the directory is read; each document of ``kind:
Component`` whose ``spec.type`` starts with ``state.`` or ``pubsub.`` becomes one
component (any such type: statekeeper's store and queues serve them all), unless its
``scopes`` leave this app out. Documents of other kinds (``Subscription`` is read by
``pubsub``) are kept for their readers; unknown kinds are skipped with a log line.

Each component lives in a statekeeper namespace: ``dapr.<name>`` unless its metadata
says ``statekeeperNamespace`` (to share a store with a statekeeper app). A state
store's keys are ``<prefix>||<key>`` as Dapr stores them, the prefix chosen by
``keyPrefix``: ``appid`` (the default), ``name`` (the store's), ``namespace`` (the
app's namespace and id), ``none``, or any other text used as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from statekeeper.errors import ConfigurationError
from statekeeper.identifiers import check_namespace

log = logging.getLogger("statekeeper.sidecar")

DEFAULT_STATE_STORE = "statestore"
DEFAULT_PUBSUB = "pubsub"
KEY_SEPARATOR = "||"
NAMESPACE_METADATA = "statekeeperNamespace"


@dataclass(frozen=True)
class Component:
    """One state store or pub/sub: its name, Dapr type (``state.redis``...), metadata,
    and the statekeeper namespace it lives in."""

    name: str
    type: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    version: str = "v1"

    @property
    def kind(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def namespace(self) -> str:
        return check_namespace(self.metadata.get(NAMESPACE_METADATA) or f"dapr.{self.name}")

    def flag(self, name: str) -> bool:
        return self.metadata.get(name, "").strip().lower() in ("true", "1", "yes")

    def key_prefix(self, app_id: str) -> str:
        """What this store's keys start with (``<prefix>||``), for ``app_id``."""
        mode = self.metadata.get("keyPrefix", "appid")
        if mode == "appid":
            return f"{app_id}{KEY_SEPARATOR}" if app_id else ""
        if mode == "name":
            return f"{self.name}{KEY_SEPARATOR}"
        if mode == "namespace":
            namespace = os.environ.get("NAMESPACE", "")
            scope = f"{namespace}.{app_id}" if namespace else app_id
            return f"{scope}{KEY_SEPARATOR}" if scope else ""
        if mode == "none":
            return ""
        return f"{mode}{KEY_SEPARATOR}"


@dataclass(frozen=True)
class Resources:
    """The components this sidecar serves, and the other documents it read
    (declarative subscriptions)."""

    components: tuple[Component, ...]
    documents: tuple[Mapping[str, Any], ...] = ()

    def of_kind(self, kind: str) -> dict[str, Component]:
        return {c.name: c for c in self.components if c.kind == kind}

    @property
    def state_stores(self) -> dict[str, Component]:
        return self.of_kind("state")

    @property
    def pubsubs(self) -> dict[str, Component]:
        return self.of_kind("pubsub")

    def named(self, kind: str) -> list[Mapping[str, Any]]:
        """The documents of ``kind`` (``Subscription``...)."""
        return [d for d in self.documents if d.get("kind") == kind]


def default_resources() -> Resources:
    return Resources(
        (
            Component(DEFAULT_STATE_STORE, "state.statekeeper", {"actorStateStore": "true"}),
            Component(DEFAULT_PUBSUB, "pubsub.statekeeper"),
        )
    )


def load_resources(path: str | Path | None, app_id: str) -> Resources:
    """The components of the files in ``path`` that this app may use (the defaults
    when ``path`` is None); ConfigurationError names the file and what is wrong."""
    if path is None:
        return default_resources()
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigurationError(f"--resources-path {str(folder)!r} is not a directory")
    components: dict[str, Component] = {}
    documents: list[Mapping[str, Any]] = []
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    for file in files:
        for doc in _documents(file):
            kind = doc.get("kind")
            if kind != "Component":
                if kind in ("Subscription", "Resiliency", "Configuration"):
                    documents.append(doc)
                else:
                    log.info("skipped a document of kind %r", kind, extra={"file": str(file)})
                continue
            component = _component(file, doc)
            if component is None or not _in_scope(doc, app_id):
                continue
            if component.name in components:
                raise ConfigurationError(
                    f"{file}: a component named {component.name!r} is defined twice"
                )
            components[component.name] = component
    return Resources(tuple(components.values()), tuple(documents))


def _documents(file: Path) -> list[Mapping[str, Any]]:
    try:
        loaded = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as problem:
        first = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        raise ConfigurationError(f"{file}: cannot read it as YAML: {first}") from None
    docs = [d for d in loaded if d is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise ConfigurationError(f"{file}: a document is not a mapping")
    return docs


def _component(file: Path, doc: Mapping[str, Any]) -> Component | None:
    meta = doc.get("metadata")
    spec = doc.get("spec")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ConfigurationError(f"{file}: a Component needs metadata.name")
    name = meta["name"]
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ConfigurationError(f"{file}: component {name!r} needs spec.type")
    kind = spec["type"].split(".", 1)[0]
    if kind not in ("state", "pubsub"):
        log.info("skipped component %r of type %r", name, spec["type"], extra={"file": str(file)})
        return None
    metadata: dict[str, str] = {}
    for entry in spec.get("metadata") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigurationError(f"{file}: component {name!r}: a metadata entry needs a name")
        if "value" not in entry:
            log.info(
                "ignored metadata %r of component %r: only plain values are read",
                entry["name"], name, extra={"file": str(file)},
            )  # fmt: skip
            continue
        value = entry["value"]
        metadata[entry["name"]] = (
            str(value).lower() if isinstance(value, bool) else "" if value is None else str(value)
        )
    component = Component(name, spec["type"], metadata, str(spec.get("version") or "v1"))
    try:
        component.namespace  # noqa: B018 - checked now, not on the first request
    except ConfigurationError as problem:
        raise ConfigurationError(f"{file}: component {name!r}: {problem}") from None
    return component


def _in_scope(doc: Mapping[str, Any], app_id: str) -> bool:
    scopes = doc.get("scopes")
    return not scopes or app_id in scopes
