"""State machines as the Step Functions API knows them: create, update, describe,
list and delete them, publish versions, make aliases, tag them.

A machine's current definition is the namespace's workflow definition of kind
``asl`` under the machine's name, so any worker runs its executions; the machine's
own record (role, type, tags, dates, revision id) and its versions and aliases are
records of ``storage.machine_ops``. A version ``N`` is also a workflow definition,
``<machine>:<N>``, which never changes, so an execution started on a version or an
alias runs that version. Deleting a machine removes it from the API; executions
already running finish on the definition they started with.

Errors are ``SfnError``s named as Step Functions names them (``InvalidDefinition``,
``StateMachineDoesNotExist``, ...), which the HTTP API answers in AWS's shape.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from statekeeper.asl import validation
from statekeeper.asl.arns import ALIAS, MACHINE, NAME, VERSION, Arn, Arns, SfnError, shown
from statekeeper.asl.tasks import SYNC, WAIT_FOR_TOKEN
from statekeeper.asl.workflow import KIND
from statekeeper.codec import decode_json
from statekeeper.errors import MalformedJSON

if TYPE_CHECKING:
    from statekeeper.app import App

REVISION = "revision"  # a machine's definition as one Create or Update left it
MAX_DEFINITION = 1024 * 1024  # bytes, as Step Functions allows
MAX_TAGS = 50
TYPES = ("STANDARD", "EXPRESS")
_WAITING = (WAIT_FOR_TOKEN, SYNC, SYNC + ":2")  # integrations that wait for an answer
_ARTICLES = {VERSION: "a", ALIAS: "an", "execution": "an"}
CONFIGURATIONS = ("loggingConfiguration", "tracingConfiguration")
# A page's nextToken is the name of the last record listed: a machine, or machine:version.
_PAGE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,80}(:[0-9]{10})?\Z")


def version_key(machine: str, number: int) -> str:
    """The record name of version ``number``: sorts in number order."""
    return f"{machine}:{number:010d}"


def version_workflow(machine: str, number: int | str) -> str:
    """The workflow that runs version ``number`` of ``machine``."""
    return f"{machine}:{number}"


def check_name(name: Any, what: str = "state machine") -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise SfnError(
            "InvalidName",
            f"Invalid Name: '{shown(name)}': {'an' if what[0] in 'aeiou' else 'a'} {what} name "
            "is 1-80 letters, digits, '-' or '_'",
        )
    return name


def parse_definition(text: Any) -> dict[str, Any]:
    """A definition given as JSON text, validated; InvalidDefinition naming every
    problem with where it is."""
    if not isinstance(text, str) or not text.strip():
        raise SfnError("InvalidDefinition", "Invalid State Machine Definition: it is missing")
    if len(text.encode()) > MAX_DEFINITION:
        raise SfnError(
            "InvalidDefinition", f"Invalid State Machine Definition: over {MAX_DEFINITION} bytes"
        )
    try:  # strictly, within the nesting every value stored has (no RecursionError)
        definition = decode_json(text.encode(), "the definition")
    except MalformedJSON as error:
        raise SfnError(
            "InvalidDefinition",
            f"Invalid State Machine Definition: 'INVALID_JSON_DESCRIPTION: {error.message}'",
        ) from None
    found = validation.problems(definition)
    if found:
        shown = ", ".join(
            f"'SCHEMA_VALIDATION_FAILED: {p.message} at {p.where or '/'}'" for p in found[:20]
        )
        raise SfnError("InvalidDefinition", f"Invalid State Machine Definition: {shown}")
    assert isinstance(definition, dict)
    return definition


def check_express(definition: dict[str, Any]) -> None:
    """InvalidDefinition if an EXPRESS machine's ``definition`` has a Task that waits for
    a task token or a job (``.waitForTaskToken``, ``.sync``): Express executions run
    in memory, where no token can reach them, and AWS refuses them too."""
    found: list[str] = []

    def walk(machine: Any, where: str) -> None:
        states = machine.get("States") if isinstance(machine, dict) else None
        for name, state in (states or {}).items():
            at = f"{where}/States/{name}"
            resource = state.get("Resource")
            if isinstance(resource, str) and resource.endswith(_WAITING):
                found.append(
                    "'SCHEMA_VALIDATION_FAILED: an EXPRESS state machine does not support "
                    f"the .{resource.rsplit('.', 1)[-1]} integration at {at}/Resource'"
                )
            for index, branch in enumerate(state.get("Branches") or []):
                walk(branch, f"{at}/Branches/{index}")
            for processor in ("ItemProcessor", "Iterator"):
                if processor in state:
                    walk(state[processor], f"{at}/{processor}")

    walk(definition, "")
    if found:
        raise SfnError(
            "InvalidDefinition", f"Invalid State Machine Definition: {', '.join(found[:20])}"
        )


def tags_of(given: Any) -> dict[str, str]:
    """AWS's ``[{"key", "value"}]`` as a dict; ValidationException if malformed."""
    if given is None:
        return {}
    if not isinstance(given, list) or len(given) > MAX_TAGS:
        raise SfnError(
            "ValidationException", f"tags is a list of at most {MAX_TAGS} key/value pairs"
        )
    tags: dict[str, str] = {}
    for tag in given:
        key = tag.get("key") if isinstance(tag, dict) else None
        value = tag.get("value", "") if isinstance(tag, dict) else None
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= 128
            or not isinstance(value, str)
            or len(value) > 256
        ):
            raise SfnError(
                "ValidationException",
                'a tag is {"key": 1-128 characters, "value": at most 256 characters}',
            )
        tags[key] = value
    return tags


class StateMachines:
    """The Step Functions resources of one app namespace."""

    def __init__(self, app: App, arns: Arns | None = None) -> None:
        self.app = app
        self.arns = arns or Arns()

    @property
    def _store(self) -> Any:
        return self.app.backend.machines

    @property
    def _ns(self) -> str:
        return self.app.namespace

    async def record(self, name: str) -> dict[str, Any]:
        """The machine record of ``name``; StateMachineDoesNotExist if there is none."""
        found = await self._store.get(self._ns, MACHINE, name)
        if found is None:
            raise SfnError(
                "StateMachineDoesNotExist",
                f"State Machine Does Not Exist: '{self.arns.machine(name)}'",
            )
        return {**found.doc, "creationDate": found.created_at}

    async def resolve(self, arn: Any) -> tuple[Arn, str, dict[str, Any]]:
        """What an execution of ``arn`` (a machine, version or alias ARN) runs: the
        parsed ARN, the workflow name and the definition."""
        parsed = self.arns.parse(arn)
        if parsed.kind == "execution":
            raise SfnError(
                "InvalidArn", f"Invalid Arn: '{arn}' is an execution, not a state machine"
            )
        record = await self.record(parsed.machine)
        if parsed.kind == ALIAS:
            alias = await self._store.get(self._ns, ALIAS, f"{parsed.machine}:{parsed.qualifier}")
            if alias is None:
                raise SfnError("ResourceNotFound", f"Resource Not Found: '{arn}'")
            number = _route(alias.doc["routingConfiguration"])
            parsed = Arn(VERSION, parsed.machine, str(number))
        if parsed.kind == VERSION:
            version = await self._store.get(
                self._ns, VERSION, version_key(parsed.machine, int(parsed.qualifier or 0))
            )
            if version is None:
                raise SfnError("ResourceNotFound", f"Resource Not Found: '{arn}'")
            workflow = version_workflow(parsed.machine, int(parsed.qualifier or 0))
            return parsed, workflow, json.loads(version.doc["definition"])
        return parsed, parsed.machine, json.loads(record["definition"])

    # --- machines -----------------------------------------------------------------------

    async def create(self, request: dict[str, Any]) -> dict[str, Any]:
        name = check_name(request.get("name"))
        text = request.get("definition")
        definition = parse_definition(text)
        kind = request.get("type", "STANDARD")
        if kind not in TYPES:
            raise SfnError(
                "ValidationException", f"type must be STANDARD or EXPRESS, got {shown(kind)}"
            )
        if kind == "EXPRESS":
            check_express(definition)
        publish = _publishing(request)  # checked before anything is stored
        now = self.app.clock()
        doc = {
            "definition": text,
            "roleArn": _text(request.get("roleArn", ""), "roleArn"),
            "type": kind,
            "description": _text(request.get("description", ""), "description"),
            "tags": tags_of(request.get("tags")),
            "loggingConfiguration": _configuration(request, "loggingConfiguration")
            or {"level": "OFF", "includeExecutionData": False},
            "tracingConfiguration": _configuration(request, "tracingConfiguration")
            or {"enabled": False},
            "revisionId": uuid.uuid4().hex,
            "updateDate": now,
        }
        if not await self._store.insert(self._ns, MACHINE, name, doc, now):
            existing = await self.record(name)
            same = existing["definition"] == text and existing["roleArn"] == doc["roleArn"]
            if not same or existing["type"] != kind:
                raise SfnError(
                    "StateMachineAlreadyExists",
                    f"State Machine Already Exists: '{self.arns.machine(name)}'",
                )
            return {
                "stateMachineArn": self.arns.machine(name),
                "creationDate": existing["creationDate"],
            }
        await self._keep_revision(name, doc["revisionId"], str(text), now)
        await self.app.workflows.define(name, KIND, definition)
        answer: dict[str, Any] = {"stateMachineArn": self.arns.machine(name), "creationDate": now}
        if publish is not None:
            published = await self.publish(
                {"stateMachineArn": answer["stateMachineArn"], "description": publish}
            )
            answer["stateMachineVersionArn"] = published["stateMachineVersionArn"]
        return answer

    async def update(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self.arns.parse(request.get("stateMachineArn"))
        if parsed.kind != MACHINE:
            raise SfnError(
                "ValidationException", "only a state machine (not a version or alias) is updated"
            )
        record = await self.record(parsed.machine)
        doc = {k: v for k, v in record.items() if k != "creationDate"}
        # Every field is checked before anything changes: a bad one changes nothing.
        definition = parse_definition(request["definition"]) if "definition" in request else None
        if definition is not None and record["type"] == "EXPRESS":
            check_express(definition)
        if "roleArn" in request:
            doc["roleArn"] = _text(request["roleArn"], "roleArn")
        for field in CONFIGURATIONS:
            if field in request:
                doc[field] = _configuration(request, field) or record[field]
        publish = _publishing(request)
        if definition is not None:
            doc["definition"] = request["definition"]
            await self.app.workflows.define(parsed.machine, KIND, definition)
        doc["revisionId"] = uuid.uuid4().hex
        doc["updateDate"] = self.app.clock()
        await self._keep_revision(
            parsed.machine, doc["revisionId"], doc["definition"], doc["updateDate"]
        )
        await self._store.update(self._ns, MACHINE, parsed.machine, doc)
        answer: dict[str, Any] = {"updateDate": doc["updateDate"], "revisionId": doc["revisionId"]}
        if publish is not None:
            published = await self.publish(
                {"stateMachineArn": request["stateMachineArn"], "description": publish}
            )
            answer["stateMachineVersionArn"] = published["stateMachineVersionArn"]
        return answer

    async def _keep_revision(self, machine: str, revision: str, text: str, now: float) -> None:
        """Keep the definition of a revision: an execution started on it runs it, even
        after the machine is updated (and before a worker first runs it)."""
        doc = {"definition": text}
        await self._store.insert(self._ns, REVISION, f"{machine}:{revision}", doc, now)

    async def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self._machine_arn(request.get("stateMachineArn"))
        record = await self.record(parsed.machine)
        answer = {
            "stateMachineArn": self.arns.machine(parsed.machine),
            "name": parsed.machine,
            "status": "ACTIVE",
            "definition": record["definition"],
            "roleArn": record["roleArn"],
            "type": record["type"],
            "creationDate": record["creationDate"],
            "loggingConfiguration": record["loggingConfiguration"],
            "tracingConfiguration": record["tracingConfiguration"],
            "revisionId": record["revisionId"],
        }
        if record.get("description"):
            answer["description"] = record["description"]
        if parsed.kind == VERSION:
            version = await self._store.get(
                self._ns, VERSION, version_key(parsed.machine, int(parsed.qualifier or 0))
            )
            if version is None:
                raise SfnError(
                    "ResourceNotFound", f"Resource Not Found: '{request['stateMachineArn']}'"
                )
            answer.update(
                stateMachineArn=request["stateMachineArn"],
                definition=version.doc["definition"],
                revisionId=version.doc["revisionId"],
                creationDate=version.created_at,
            )
            if version.doc.get("description"):
                answer["description"] = version.doc["description"]
        elif parsed.kind == ALIAS:
            raise SfnError(
                "ValidationException", "describe an alias with DescribeStateMachineAlias"
            )
        return answer

    async def list(self, request: dict[str, Any]) -> dict[str, Any]:
        limit, after = _page(request)
        records = await self._store.list(self._ns, MACHINE, after=after, limit=limit + 1)
        items = [
            {
                "stateMachineArn": self.arns.machine(r.name),
                "name": r.name,
                "type": r.doc["type"],
                "creationDate": r.created_at,
            }
            for r in records[:limit]
        ]
        return {"stateMachines": items, **_next(records, limit)}

    async def delete(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self._machine_arn(request.get("stateMachineArn"))
        if parsed.kind == VERSION:
            await self._store.delete(
                self._ns, VERSION, version_key(parsed.machine, int(parsed.qualifier or 0))
            )
            return {}
        if parsed.kind != MACHINE:
            raise SfnError("ValidationException", "delete an alias with DeleteStateMachineAlias")
        await self._store.delete(self._ns, MACHINE, parsed.machine)
        await self._store.delete_prefix(self._ns, VERSION, parsed.machine + ":")
        await self._store.delete_prefix(self._ns, ALIAS, parsed.machine + ":")
        await self._store.delete_prefix(self._ns, REVISION, parsed.machine + ":")
        return {}

    def _machine_arn(self, arn: Any, field: str = "stateMachineArn") -> Arn:
        """``arn`` parsed: a machine's, a version's or an alias's, not an execution's."""
        parsed = self.arns.parse(arn, field)
        if parsed.kind == "execution":
            raise SfnError(
                "InvalidArn",
                f"Invalid Arn: '{shown(arn)}' ({field}) is an execution, not a state machine",
            )
        return parsed

    # --- versions and aliases -------------------------------------------------------------

    async def publish(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self.arns.parse(request.get("stateMachineArn"))
        if parsed.kind != MACHINE:
            raise SfnError(
                "ValidationException",
                "a version is published of a state machine (not of a version, alias or execution)",
            )
        record = await self.record(parsed.machine)
        wanted = request.get("revisionId")
        if wanted is not None and wanted != record["revisionId"]:
            raise SfnError("ConflictException", "the state machine was changed since that revision")
        for _ in range(10):  # another publisher may take the number first
            newest = await self._store.list(
                self._ns, VERSION, parsed.machine + ":", limit=1, newest_first=True
            )
            if newest and newest[0].doc["revisionId"] == record["revisionId"]:
                number = int(newest[0].name.rsplit(":", 1)[1])
                return {
                    "creationDate": newest[0].created_at,
                    "stateMachineVersionArn": self.arns.machine(parsed.machine, number),
                }
            number = 1 + (int(newest[0].name.rsplit(":", 1)[1]) if newest else 0)
            doc = {
                "definition": record["definition"],
                "revisionId": record["revisionId"],
                "description": _text(request.get("description") or "", "description"),
            }
            now = self.app.clock()
            if await self._store.insert(
                self._ns, VERSION, version_key(parsed.machine, number), doc, now
            ):
                await self.app.workflows.define(
                    version_workflow(parsed.machine, number), KIND, json.loads(record["definition"])
                )
                return {
                    "creationDate": now,
                    "stateMachineVersionArn": self.arns.machine(parsed.machine, number),
                }
        raise SfnError("ConflictException", "too many versions are being published at once")

    async def list_versions(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self._machine_arn(request.get("stateMachineArn"))
        await self.record(parsed.machine)
        limit, after = _page(request)
        records = await self._store.list(
            self._ns, VERSION, parsed.machine + ":", after=after, limit=limit + 1, newest_first=True
        )
        items = [
            {
                "stateMachineVersionArn": self.arns.machine(
                    parsed.machine, int(r.name.rsplit(":", 1)[1])
                ),
                "creationDate": r.created_at,
            }
            for r in records[:limit]
        ]
        return {"stateMachineVersions": items, **_next(records, limit)}

    async def create_alias(self, request: dict[str, Any]) -> dict[str, Any]:
        name = check_name(request.get("name"), "alias")
        if name.isdigit():
            raise SfnError("ValidationException", "an alias name cannot be a number")
        routing = request.get("routingConfiguration")
        machine = await self._check_routing(routing)
        now = self.app.clock()
        doc = {
            "routingConfiguration": routing,
            "description": _text(request.get("description") or "", "description"),
            "updateDate": now,
        }
        if not await self._store.insert(self._ns, ALIAS, f"{machine}:{name}", doc, now):
            raise SfnError("ConflictException", f"the alias {name!r} exists already")
        return {"stateMachineAliasArn": self.arns.machine(machine, name), "creationDate": now}

    async def describe_alias(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self.arns.parse(request.get("stateMachineAliasArn"), "stateMachineAliasArn")
        if parsed.kind != ALIAS:
            raise SfnError("InvalidArn", "not the ARN of an alias")
        found = await self._store.get(self._ns, ALIAS, f"{parsed.machine}:{parsed.qualifier}")
        if found is None:
            raise SfnError(
                "ResourceNotFound", f"Resource Not Found: '{request['stateMachineAliasArn']}'"
            )
        answer = {
            "stateMachineAliasArn": request["stateMachineAliasArn"],
            "name": parsed.qualifier,
            "routingConfiguration": found.doc["routingConfiguration"],
            "creationDate": found.created_at,
            "updateDate": found.doc["updateDate"],
        }
        if found.doc.get("description"):
            answer["description"] = found.doc["description"]
        return answer

    async def _check_routing(self, routing: Any) -> str:
        if not isinstance(routing, list) or not 1 <= len(routing) <= 2:
            raise SfnError(
                "ValidationException", "routingConfiguration routes to one or two versions"
            )
        machines = set()
        total = 0
        for route in routing:
            arn = route.get("stateMachineVersionArn") if isinstance(route, dict) else None
            weight = route.get("weight") if isinstance(route, dict) else None
            parsed = self.arns.parse(arn, "stateMachineVersionArn")
            if (
                parsed.kind != VERSION
                or isinstance(weight, bool)
                or not isinstance(weight, int)
                or not 0 <= weight <= 100
            ):
                raise SfnError(
                    "ValidationException", "a route is {stateMachineVersionArn, weight 0-100}"
                )
            if (
                await self._store.get(
                    self._ns, VERSION, version_key(parsed.machine, int(parsed.qualifier or 0))
                )
                is None
            ):
                raise SfnError("ResourceNotFound", f"Resource Not Found: '{arn}'")
            machines.add(parsed.machine)
            total += weight
        if len(machines) != 1 or total != 100:
            raise SfnError(
                "ValidationException",
                "routes name versions of one machine, weights adding up to 100",
            )
        return machines.pop()

    # --- tags -------------------------------------------------------------------------------

    async def tag(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self._tagged(request.get("resourceArn"))
        given = tags_of(request.get("tags"))
        record = await self.record(parsed.machine)
        tags = {**record.get("tags", {}), **given}
        if len(tags) > MAX_TAGS:
            raise SfnError("TooManyTags", f"a resource has at most {MAX_TAGS} tags")
        doc = {k: v for k, v in record.items() if k != "creationDate"}
        await self._store.update(self._ns, MACHINE, parsed.machine, {**doc, "tags": tags})
        return {}

    async def untag(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self._tagged(request.get("resourceArn"))
        keys = request.get("tagKeys")
        if (
            not isinstance(keys, list)
            or len(keys) > MAX_TAGS
            or not all(isinstance(key, str) and 1 <= len(key) <= 128 for key in keys)
        ):  # a string would be searched for substrings: "team" would remove tag "a"
            raise SfnError(
                "ValidationException", f"tagKeys is a list of at most {MAX_TAGS} tag keys"
            )
        record = await self.record(parsed.machine)
        tags = {k: v for k, v in record.get("tags", {}).items() if k not in keys}
        doc = {k: v for k, v in record.items() if k != "creationDate"}
        await self._store.update(self._ns, MACHINE, parsed.machine, {**doc, "tags": tags})
        return {}

    async def list_tags(self, request: dict[str, Any]) -> dict[str, Any]:
        parsed = self._tagged(request.get("resourceArn"))
        record = await self.record(parsed.machine)
        return {"tags": [{"key": k, "value": v} for k, v in record.get("tags", {}).items()]}

    def _tagged(self, arn: Any) -> Arn:
        """The machine whose tags ``arn`` names: tags belong to a machine, not to its
        versions, aliases or executions."""
        parsed = self.arns.parse(arn, "resourceArn")
        if parsed.kind != MACHINE:
            raise SfnError(
                "InvalidArn",
                f"Invalid Arn: '{shown(arn)}' (resourceArn): tags belong to a state machine, "
                f"not to {_ARTICLES[parsed.kind]} {parsed.kind}",
            )
        return parsed


def _route(routing: list[dict[str, Any]]) -> int:
    """The version an alias sends this execution to, by the routes' weights."""
    import random

    pick = random.uniform(0, 100)
    for route in routing:
        pick -= route["weight"]
        if pick <= 0 and route["weight"] > 0:
            return int(route["stateMachineVersionArn"].rsplit(":", 1)[1])
    return int(routing[-1]["stateMachineVersionArn"].rsplit(":", 1)[1])


def _page(request: dict[str, Any]) -> tuple[int, str | None]:
    limit = request.get("maxResults") or 100
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise SfnError("ValidationException", "maxResults is an integer from 1 to 1000")
    token = request.get("nextToken")
    if token is not None and (not isinstance(token, str) or not _PAGE_TOKEN.match(token)):
        raise SfnError("InvalidToken", "Invalid Token: the nextToken is not one this service gave")
    return limit, token


def _next(records: list[Any], limit: int) -> dict[str, Any]:
    return {"nextToken": records[limit - 1].name} if len(records) > limit else {}


def _configuration(request: dict[str, Any], field: str) -> dict[str, Any] | None:
    """``loggingConfiguration`` or ``tracingConfiguration``: an object (kept as given)."""
    value = request.get(field)
    if value is not None and (not isinstance(value, dict) or len(json.dumps(value)) > 4096):
        raise SfnError("ValidationException", f"{field} is an object (of at most 4096 bytes)")
    return value


def _publishing(request: dict[str, Any]) -> str | None:
    """The description of the version a Create or Update publishes (``publish``), or
    None if it publishes none; checked before anything changes."""
    publish = request.get("publish", False)
    if not isinstance(publish, bool):
        raise SfnError("ValidationException", f"publish is true or false, got {shown(publish)}")
    description = _text(request.get("versionDescription") or "", "versionDescription", 256)
    return description if publish else None


def _text(value: Any, field: str, most: int = 2048) -> str:
    if not isinstance(value, str) or len(value) > most:
        raise SfnError("ValidationException", f"{field} is a string of at most {most} characters")
    return value
