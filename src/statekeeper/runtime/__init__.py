"""Running functions: consumers of queues and the worker that drives them."""

from __future__ import annotations

from statekeeper.runtime.consumer import Consumer
from statekeeper.runtime.worker import Worker

__all__ = ["Consumer", "Worker"]
