"""Amazon States Language: state machine definitions, validated before anything runs."""

from statekeeper.asl.validation import Problem, check, problems

__all__ = ["Problem", "check", "problems"]
