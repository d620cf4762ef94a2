"""Reading Dapr component files for the sidecar: what is served, and each mistake
named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from statekeeper.errors import ConfigurationError
from statekeeper.sidecar.components import Component, load_resources

STATE = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: state.postgresql
  version: v1
  metadata:
  - name: keyPrefix
    value: name
  - name: outboxPublishTopic
    value: order-events
  - name: connectionString
    secretKeyRef: {name: pg, key: url}
"""
PUBSUB = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: events
spec:
  type: pubsub.redis
  metadata:
  - name: enableTLS
    value: false
scopes: [checkout]
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: order-sub
spec:
  topic: orders
  routes: {default: /orders}
  pubsubname: events
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: bindings
spec:
  type: bindings.cron
"""


def folder(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_defaults_are_a_statestore_and_a_pubsub() -> None:
    resources = load_resources(None, "app")
    assert list(resources.state_stores) == ["statestore"]
    assert list(resources.pubsubs) == ["pubsub"]
    assert resources.state_stores["statestore"].namespace == "dapr.statestore"


def test_components_scopes_and_subscriptions_are_read(tmp_path: Path) -> None:
    path = folder(tmp_path, **{"state.yaml": STATE, "pubsub.yml": PUBSUB, "notes.txt": "x"})
    resources = load_resources(path, "checkout")
    orders = resources.state_stores["orders"]
    assert orders.type == "state.postgresql"
    assert orders.metadata == {"keyPrefix": "name", "outboxPublishTopic": "order-events"}
    assert orders.key_prefix("checkout") == "orders||"
    assert resources.pubsubs["events"].metadata == {"enableTLS": "false"}
    assert [d["metadata"]["name"] for d in resources.named("Subscription")] == ["order-sub"]
    assert "bindings" not in {c.name for c in resources.components}
    # Another app is out of the pub/sub's scopes.
    assert "events" not in load_resources(path, "shipping").pubsubs


@pytest.mark.parametrize(
    ("mode", "prefix"),
    [("appid", "checkout||"), ("name", "orders||"), ("none", ""), ("tenant-7", "tenant-7||")],
)
def test_key_prefixes(mode: str, prefix: str) -> None:
    component = Component("orders", "state.redis", {"keyPrefix": mode})
    assert component.key_prefix("checkout") == prefix


def test_a_namespace_of_its_own() -> None:
    component = Component("orders", "state.redis", {"statekeeperNamespace": "shop"})
    assert component.namespace == "shop"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("kind: Component\nmetadata: {name: a\n", "cannot read it as YAML"),
        ("- just\n- a list\n", "is not a mapping"),
        ("kind: Component\nspec: {type: state.redis}\n", "needs metadata.name"),
        ("kind: Component\nmetadata: {name: a}\n", "needs spec.type"),
        ("kind: Component\nmetadata: {name: a}\nspec: {type: state.x, metadata: [{value: 1}]}\n",
         "a metadata entry needs a name"),
        (STATE + "---\n" + STATE, "defined twice"),
    ],
    ids=["bad-yaml", "not-a-mapping", "no-name", "no-type", "unnamed-metadata", "twice"],
)  # fmt: skip
def test_mistakes_are_one_line_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = folder(tmp_path, **{"c.yaml": text})
    with pytest.raises(ConfigurationError, match=fragment) as caught:
        load_resources(path, "app")
    assert "c.yaml" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not a directory"):
        load_resources(tmp_path / "nope", "app")
