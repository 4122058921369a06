"""Configuration errors in words: the key, the value, what is expected (with an example) and where it came from.

Pydantic's own messages ("Input should be a valid tuple") speak of Python types; a
technician needs "a list of classes, e.g. [pet_bottle]". An unknown key gets the
nearest valid key of its section ("did you mean 'density_per_m2'?"), and every
message names the source of the key: the file and line, or the ``--set`` that gave it.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from sorter.config_yaml import KeyPath, short_repr

#: examples for keys whose shape is not obvious from their type
EXAMPLES: dict[str, str] = {
    "policy.targets": "a list of classes, e.g. [pet_bottle] or [pet_bottle, alu_can]",
    "detector.roi.px": "4 whole numbers [x0, y0, x1, y1] in image pixels, e.g. [0, 120, 1280, 600]",
    "sim.mount.dist": "a list of 5 lens distortion numbers, e.g. [-0.04, 0.01, 0, 0, 0]",
    "sim.speed_steps": "a list of steps, e.g. [{t_s: 10, speed_mm_s: 2000}]",
    "sim.class_mix": "a mapping of class to share, e.g. {pet_bottle: 2, film: 1}",
    "robot.values": "a mapping of class to value, e.g. {pet_bottle: 2.0}",
    "airjet.valves.latency_per_valve_ms": "a mapping of valve index to milliseconds, e.g. {0: 3.1, 1: 2.9}",
}

_WORDS: dict[str, str] = {
    "float_type": "a number, e.g. 2.5",
    "float_parsing": "a number, e.g. 2.5",
    "int_type": "a whole number, e.g. 3",
    "int_parsing": "a whole number, e.g. 3",
    "int_from_float": "a whole number (no decimals), e.g. 3",
    "int_parsing_size": "a whole number of a sensible size",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text, e.g. line-1 (quote it if it looks like a number)",
    "tuple_type": "a list, e.g. [a, b]",
    "list_type": "a list, e.g. [a, b]",
    "dict_type": "a mapping of keys to values (indented lines 'key: value', or {key: value})",
    "model_type": "a section: indented lines 'key: value' under it (see configs/reference.yaml)",
    "model_attributes_type": "a section: indented lines 'key: value' under it (see configs/reference.yaml)",
    "finite_number": "a finite number (not .nan or .inf)",
    "none_required": "null",
}

_BOUNDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}


def dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in loc)


def origin_of(loc: Sequence[str | int], origins: Mapping[KeyPath, str], default: str) -> str:
    """The source of a key: its own, else that of the nearest enclosing key, else ``default``."""
    parts = tuple(str(p) for p in loc)
    for n in range(len(parts), 0, -1):
        if parts[:n] in origins:
            return origins[parts[:n]]
    return default


def _unwrap(annotation: Any) -> list[Any]:
    """The classes a field annotation may hold (Optional, unions, tuples and dicts of models looked into)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [c for a in typing.get_args(annotation) for c in _unwrap(a)]
    if origin in (tuple, list, dict):
        return [c for a in typing.get_args(annotation) if a is not Ellipsis for c in _unwrap(a)]
    return [annotation]


def section_model(root: type[BaseModel], parts: Sequence[str | int]) -> type[BaseModel] | None:
    """The schema class of the section at ``parts`` (list indices skipped), or None when it is not a section."""
    model: type[BaseModel] = root
    for p in parts:
        if isinstance(p, int) or str(p).isdigit():
            continue
        field = model.model_fields.get(str(p))
        if field is None:
            return None
        models = [c for c in _unwrap(field.annotation) if isinstance(c, type) and issubclass(c, BaseModel)]
        if not models:
            return None
        model = models[0]
    return model


def nearest_keys(word: str, candidates: Sequence[str]) -> list[str]:
    """Valid keys close to a misspelt one, best first: whole-key similarity, or a match of its first words."""

    def score(c: str) -> float:
        whole = difflib.SequenceMatcher(None, word, c).ratio()
        head = c.split("_")[0]
        first = difflib.SequenceMatcher(None, word, head).ratio() if len(head) >= 3 else 0.0
        prefix = 0.9 if (c.startswith(word) or word.startswith(c)) and min(len(c), len(word)) >= 3 else 0.0
        return max(whole, first, prefix)

    scored = sorted(((score(c), c) for c in candidates), reverse=True)
    return [c for s, c in scored if s >= 0.7][:3]


def _expected(kind: str, path: str, err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    if kind in _BOUNDS and ctx:
        bound = next(iter(ctx.values()))
        return f"a number {_BOUNDS[kind]} {bound}"
    if kind == "literal_error":
        return f"one of {ctx.get('expected', '').replace(chr(39), '')}"
    if kind in ("too_short", "too_long") and path in EXAMPLES:
        return EXAMPLES[path]
    if kind in ("tuple_type", "list_type", "dict_type", "float_type", "float_parsing", "model_type") and path in EXAMPLES:
        return EXAMPLES[path]
    if kind in ("value_error", "assertion_error"):
        msg = str(err.get("msg", ""))
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in _WORDS:
        return _WORDS[kind]
    return str(err.get("msg", "a valid value"))


def describe_validation_error(
    err: ValidationError, root: type[BaseModel], origins: Mapping[KeyPath, str], default_source: str
) -> list[str]:
    """One line per problem: source, key, value, what is expected or what to do."""
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for e in err.errors():
        loc = e["loc"]
        path = dotted(loc)
        kind = e["type"]
        source = origin_of(loc, origins, default_source)
        value = short_repr(e.get("input"))
        if kind == "extra_forbidden":
            parent = section_model(root, loc[:-1])
            valid = sorted(parent.model_fields) if parent is not None else []
            near = nearest_keys(str(loc[-1]), valid)
            prefix = dotted(loc[:-1])
            if near:
                full = ", ".join(f"'{prefix + '.' if prefix else ''}{n}'" for n in near)
                fix = f"did you mean {full}?"
            else:
                where = f"'{prefix}'" if prefix else "the top level"
                fix = f"valid keys of {where}: {', '.join(valid)}" if valid else "remove it"
            line = f"{source}: unknown key '{path}' (value {value}); {fix} (every key: configs/reference.yaml)"
        elif kind == "missing":
            line = f"{source}: '{path}' is required; add it (see configs/reference.yaml)"
        else:
            line = f"{source}: '{path}' = {value} is invalid: expected {_expected(kind, path, e)}"
        key = (path, line)
        if key not in seen:  # a union reports one error per member: keep each line once
            seen.add(key)
            lines.append(line)
    return lines
