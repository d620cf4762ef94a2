"""Keyed entities (virtual objects): state per key, changed by one handler at a time."""

from statekeeper.entities.api import Entities, EntitySnapshot
from statekeeper.entities.context import EntityContext
from statekeeper.entities.definitions import EntityType, EntityTypes, readonly

__all__ = ["Entities", "EntityContext", "EntitySnapshot", "EntityType", "EntityTypes", "readonly"]
