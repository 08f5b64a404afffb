"""A fast yes/no check for the subset of JSON Schema that the contract's files use.

jsonschema takes 150-300 microseconds per event on these schemas, too slow for the caller's
thread. This turns a schema into plain Python predicates once. jsonschema stays the reference:
it explains every rejection, and a rejection it does not confirm is not made (see contract.py);
tests check that both agree. A keyword outside the subset fails at load time, never silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]
Resolve = Callable[[str, str], tuple[dict[str, Any], str]]  # ($ref, current document) -> (schema, its document)

# Keywords that describe rather than constrain; `then` is read together with `if`.
_IGNORED = frozenset({"$schema", "$id", "$defs", "title", "description", "default", "x-error", "then"})


def compile_schema(schema: Mapping[str, Any], document: str, resolve: Resolve) -> Check:
    checks = [
        _keyword(name, value, schema, document, resolve) for name, value in schema.items() if name not in _IGNORED
    ]
    return checks[0] if len(checks) == 1 else _all_of(checks)


def _all_of(checks: list[Check]) -> Check:
    def check_all(instance: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a loop is measurably faster than all() over a generator
            if not check(instance):
                return False
        return True

    return check_all


def _keyword(name: str, value: Any, schema: Mapping[str, Any], document: str, resolve: Resolve) -> Check:
    def sub(subschema: Mapping[str, Any]) -> Check:
        return compile_schema(subschema, document, resolve)

    if name == "$ref":
        target, target_document = resolve(value, document)
        return compile_schema(target, target_document, resolve)
    if name == "type":
        types = tuple(value) if isinstance(value, list) else (value,)
        if len(types) == 1:
            return lambda instance: _is_type(instance, types[0])
        return lambda instance: any(_is_type(instance, t) for t in types)
    if name == "const":
        return lambda instance: _equal(instance, value)
    if name == "enum":
        return lambda instance: any(_equal(instance, option) for option in value)
    if name == "minLength":
        return lambda instance: not isinstance(instance, str) or len(instance) >= value
    if name == "minimum":
        return lambda instance: not _is_type(instance, "number") or instance >= value
    if name == "maximum":
        return lambda instance: not _is_type(instance, "number") or instance <= value
    if name == "pattern":
        regex = re.compile(value)
        return lambda instance: not isinstance(instance, str) or regex.search(instance) is not None
    if name == "required":
        return lambda instance: not isinstance(instance, Mapping) or all(key in instance for key in value)
    if name == "properties":
        properties = [(key, sub(subschema)) for key, subschema in value.items()]

        def check_properties(instance: Any) -> bool:
            if not isinstance(instance, Mapping):
                return True
            for key, check in properties:  # noqa: SIM110 - as in _all_of
                if key in instance and not check(instance[key]):
                    return False
            return True

        return check_properties
    if name == "additionalProperties" and value is False:
        allowed = frozenset(schema.get("properties", {}))
        return lambda instance: not isinstance(instance, Mapping) or allowed.issuperset(instance)
    if name == "allOf":
        return _all_of([sub(subschema) for subschema in value])
    if name == "if":
        condition, then = sub(value), sub(schema.get("then", {}))
        return lambda instance: not condition(instance) or then(instance)
    if name == "not":
        negated = sub(value)
        return lambda instance: not negated(instance)
    raise ValueError(f"schema keyword {name!r} ({document}) is not supported by the fast check; add it here")


def _is_type(instance: Any, name: str) -> bool:
    if name == "string":
        return isinstance(instance, str)
    if name == "integer":
        return (isinstance(instance, int) and not isinstance(instance, bool)) or (
            isinstance(instance, float) and instance.is_integer()
        )
    if name == "number":
        return isinstance(instance, int | float) and not isinstance(instance, bool)
    if name == "object":
        return isinstance(instance, Mapping)
    if name == "boolean":
        return isinstance(instance, bool)
    if name == "null":
        return instance is None
    if name == "array":
        return isinstance(instance, list)
    raise ValueError(f"unknown JSON type {name!r}")


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)
