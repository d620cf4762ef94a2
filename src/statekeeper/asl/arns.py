"""The names of the Step Functions API: ARNs of machines, versions, aliases and
executions in one region and account (a namespace), and its errors.

Region and account come from ``STATEKEEPER_AWS_REGION`` (default ``us-east-1``) and
``STATEKEEPER_AWS_ACCOUNT`` (default ``000000000000``): an AWS SDK's ARNs then look
as it expects. An execution of machine ``M`` named ``E`` is workflow ``M:E``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from statekeeper.constants import ENV_AWS_ACCOUNT, ENV_AWS_REGION

MACHINE, VERSION, ALIAS = "machine", "version", "alias"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}\Z")
VERSION_NUMBER = re.compile(r"^[1-9][0-9]{0,9}\Z")  # ASCII digits: int() takes any digits


class SfnError(Exception):
    """An error of the Step Functions API: ``code`` as AWS names it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Arn:
    """A parsed ARN of this service: a machine, one of its versions or aliases, or an
    execution."""

    kind: str  # machine, version, alias, execution
    machine: str
    qualifier: str | None = None  # the version number, alias name or execution name


class Arns:
    """The ARNs of one namespace (an account) in one region."""

    def __init__(self, region: str | None = None, account: str | None = None) -> None:
        self.region = region or os.environ.get(ENV_AWS_REGION) or "us-east-1"
        self.account = account or os.environ.get(ENV_AWS_ACCOUNT) or "000000000000"
        self._prefix = f"arn:aws:states:{self.region}:{self.account}:"

    def machine(self, name: str, qualifier: str | int | None = None) -> str:
        tail = "" if qualifier is None else f":{qualifier}"
        return f"{self._prefix}stateMachine:{name}{tail}"

    def execution(self, machine: str, name: str) -> str:
        return f"{self._prefix}execution:{machine}:{name}"

    def parse(self, arn: Any, field: str = "stateMachineArn") -> Arn:
        """The parts of ``arn``; InvalidArn naming ``field`` if it is not one of ours
        (an ARN of another partition, region or account names the difference)."""
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            raise SfnError("InvalidArn", f"Invalid Arn: '{shown(arn)}' ({field})")
        parts = arn.split(":")
        if len(parts) < 7 or parts[2] != "states":
            raise SfnError("InvalidArn", f"Invalid Arn: '{shown(arn)}' ({field})")
        place = (parts[1], parts[3], parts[4])
        if place != ("aws", self.region, self.account):
            raise SfnError(
                "InvalidArn",
                f"Invalid Arn: '{shown(arn)}' ({field}): it names partition '{shown(parts[1])}', "
                f"region '{shown(parts[3])}' and account '{shown(parts[4])}'; this service is "
                f"partition 'aws', region '{self.region}', account '{self.account}'",
            )
        kind, rest = parts[5], parts[6:]
        if kind == "stateMachine" and len(rest) in (1, 2) and NAME.match(rest[0]):
            if len(rest) == 1:
                return Arn(MACHINE, rest[0])
            qualifier = rest[1]
            if VERSION_NUMBER.match(qualifier):
                return Arn(VERSION, rest[0], qualifier)
            if NAME.match(qualifier) and not qualifier.isdigit():  # an alias is not a number
                return Arn(ALIAS, rest[0], qualifier)
        if kind == "execution" and len(rest) == 2 and NAME.match(rest[0]) and NAME.match(rest[1]):
            return Arn("execution", rest[0], rest[1])
        raise SfnError("InvalidArn", f"Invalid Arn: '{shown(arn)}' ({field})")


def execution_id(machine: str, name: str) -> str:
    """The workflow id of execution ``name`` of ``machine``."""
    return f"{machine}:{name}"


def shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."
