"""Typed keyword fields for rule functions, with errors that name the target and the field."""

from dataclasses import dataclass
from typing import Any, Callable

from rules.load.starlark_eval import RuleError

_MISSING = object()


@dataclass(frozen=True)
class Field:
    kind: type | tuple  # str, int, bool, list (of str), dict (str -> str)
    default: Any = _MISSING
    check: Callable[[Any], str | None] | None = None  # returns an error text or None

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def validate(rule: str, fields: dict[str, Field], kwargs: dict) -> dict:
    """Return kwargs completed with defaults, or raise a RuleError naming target and field."""
    target = f'{rule} "{kwargs["name"]}"' if isinstance(kwargs.get("name"), str) else rule
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise RuleError(
            f"{target}: unknown field '{unknown[0]}' (fields: {', '.join(sorted(fields))})")
    out = {}
    for key, spec in fields.items():
        if key not in kwargs:
            if spec.required:
                raise RuleError(f"{target}: missing field '{key}'")
            out[key] = spec.default
            continue
        value = kwargs[key]
        problem = _type_problem(spec.kind, value) or (spec.check(value) if spec.check else None)
        if problem:
            raise RuleError(f"{target}: field '{key}': {problem}")
        out[key] = value
    return out


def _type_problem(kind, value) -> str | None:
    names = {str: "a string", int: "an integer", bool: "True or False",
             list: "a list of strings", dict: "a dict of strings"}
    if kind is int and isinstance(value, bool):
        return "expected an integer, got a bool"
    if not isinstance(value, kind):
        return f"expected {names[kind]}, got {type(value).__name__} {value!r}"
    if kind is list and not all(isinstance(v, str) for v in value):
        return "expected a list of strings"
    if kind is dict and not all(isinstance(k, str) and isinstance(v, str)
                                for k, v in value.items()):
        return "expected a dict of strings to strings"
    return None
