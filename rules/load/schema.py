"""Typed keyword fields for rule functions, with errors that name the target and the field."""

from dataclasses import dataclass
from typing import Any, Callable

from rules.load.starlark_eval import RuleError

_MISSING = object()


@dataclass(frozen=True)
class Records:
    """A field kind: a dict of name -> dict, each inner dict checked against ``fields`` (what
    a rule takes as `flavors = {"onbuild": {"tag_suffix": ""}, ...}`)."""

    what: str  # what one entry is called in errors ("flavor")
    fields: dict


@dataclass(frozen=True)
class Field:
    kind: type | tuple | Records  # str, int, bool, list (of str), dict (str -> str), Records
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
        if isinstance(spec.kind, Records):
            value, problem = _records(spec.kind, value)
        else:
            problem = _type_problem(spec.kind, value)
        problem = problem or (spec.check(value) if spec.check else None)
        if problem:
            raise RuleError(f"{target}: field '{key}': {problem}")
        out[key] = value
    return out


def _records(kind: Records, value) -> tuple[dict, str | None]:
    """The entries completed with their defaults, or the first problem (entry and key named)."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        return value, f"expected a dict of {kind.what} name to dict, got {value!r}"
    out = {}
    for name, entry in value.items():
        where = f"{kind.what} {name!r}"
        unknown = sorted(set(entry) - set(kind.fields))
        if unknown:
            return value, (f"{where}: unknown key '{unknown[0]}' (keys: "
                           f"{', '.join(sorted(kind.fields))})")
        out[name] = {}
        for key, spec in kind.fields.items():
            if key not in entry:
                if spec.required:
                    return value, f"{where}: missing key '{key}'"
                out[name][key] = spec.default
                continue
            problem = _type_problem(spec.kind, entry[key]) or (
                spec.check(entry[key]) if spec.check else None)
            if problem:
                return value, f"{where}: key '{key}': {problem}"
            out[name][key] = entry[key]
    return out, None


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
