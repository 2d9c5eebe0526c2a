"""Translates pydantic's validation errors into phasekit's one-line config problems.

Each problem reads ``<key as the user writes it>: <the bad value> <what is wrong>; allowed: <what is
allowed>``; the ``allowed:`` text comes from the ``Allowed`` markers on the domain types.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from infra.config_keys import NAMESPACE, config_key, is_secure_value, show_value
from infra.domain import PROBLEM_TYPE, Allowed, closest_match, did_you_mean

_TYPE_FAULTS = {
    "int_type": "is not an integer",
    "int_parsing": "is not an integer",
    "int_from_float": "is not an integer",
    "int_parsing_size": "is out of range",
    "bool_type": "is not true or false",
    "bool_parsing": "is not true or false",
    "string_type": "is not a string",
    "list_type": "is not a list",
    "tuple_type": "is not a list",
    "dict_type": "is not a mapping",
    "mapping_type": "is not a mapping",
    "model_type": "is not a mapping",
    "model_attributes_type": "is not a mapping",
    "greater_than": "is out of range",
    "greater_than_equal": "is out of range",
    "less_than": "is out of range",
    "less_than_equal": "is out of range",
    "too_long": "is too long",
}


def without_consequences(details: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop a list's "too short" when it only follows from its own items being refused."""
    return [
        detail
        for detail in details
        if detail["type"] != "too_short"
        or not any(other["loc"][: len(detail["loc"])] == detail["loc"] and other is not detail for other in details)
    ]


def describe_problem(detail: ErrorDetails, model: type[BaseModel]) -> str:
    """One phasekit problem line for one pydantic error of ``model`` (validated through the tagged union)."""
    loc = tuple(detail["loc"][1:])  # the first element is the union's tag, the phase
    kind = detail["type"]
    context = detail.get("ctx") or {}
    if kind == PROBLEM_TYPE:
        message = context["message"]
        value = detail["input"]
        if isinstance(value, str) and repr(value) in message:
            # The validators quote the whole value; a long one is cut as show_value cuts it, to keep one line.
            message = message.replace(repr(value), show_value(value))
        return f"{config_key((*loc, *context['at']))}: {message}"
    if kind == "extra_forbidden":
        return _unknownconfig_key(loc, model)
    allowed, noun = allowed_at(model, loc)
    if kind == "missing":
        return f"{config_key(loc)}: missing; allowed: {allowed}"
    value = detail["input"]
    if is_secure_value(value):
        return (
            f"{config_key(loc)}: an encrypted value cannot be used here; allowed: {allowed} "
            f"(app secrets go under {NAMESPACE}:secrets, named in app.secretEnv)"
        )
    if kind == "too_short":
        fault = "is empty" if not value else "is too short"
    elif kind in ("enum", "literal_error"):
        fault = f"is not {noun or 'an allowed value'}"
    else:
        fault = _TYPE_FAULTS.get(kind, "is not valid")
    return f"{config_key(loc)}: {show_value(value)} {fault}; allowed: {allowed}"


def _unknownconfig_key(loc: tuple[str | int, ...], model: type[BaseModel]) -> str:
    parent = _model_at(model, loc[:-1])
    name = str(loc[-1])
    if not loc[:-1]:
        keys = model.accepted_keys()
        known = sorted(f"{NAMESPACE}:{key}" for key in keys)
        # Matched without the namespace, which every candidate shares and would make anything look close.
        match = closest_match(name, keys)
        hint = f" (did you mean '{NAMESPACE}:{match}'?)" if match is not None else ""
    else:
        known = sorted(_aliases(parent)) if parent is not None else []
        hint = did_you_mean(name, known)
    return f"{config_key(loc)}: unknown key; allowed: {', '.join(known)}{hint}"


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    annotation, _ = annotation_at(model, loc)
    return annotation if is_model(annotation) else None


def allowed_at(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[str, str | None]:
    """The ``allowed:`` text and set noun for the value at ``loc``, from the ``Allowed`` markers on the types."""
    annotation, metadata = annotation_at(model, loc)
    for marker in reversed(metadata):
        if isinstance(marker, Allowed):
            return marker.text, marker.noun
    if is_model(annotation):
        return f"a mapping with keys {', '.join(sorted(_aliases(annotation)))}", None
    if annotation is bool:
        return "true or false", None
    return "see the config reference, docs/config.md", None


def annotation_at(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[Any, list[Any]]:
    """Walk the model's type annotations along an error location; returns the type there and its metadata."""
    annotation: Any = model
    metadata: list[Any] = []
    index = 0
    while index < len(loc):
        part = loc[index]
        annotation, metadata = unwrap_annotation(annotation, metadata)
        origin = typing.get_origin(annotation)
        arguments = typing.get_args(annotation)
        if is_model(annotation) and isinstance(part, str):
            field = next(
                (field for name, field in annotation.model_fields.items() if part in (field.alias, name)), None
            )
            if field is None:
                return None, []
            annotation, metadata = field.annotation, list(field.metadata)
        elif origin in (tuple, list) and isinstance(part, int):
            annotation, metadata = arguments[0], []
        elif origin in (dict, Mapping) and index + 1 < len(loc) and loc[index + 1] == "[key]":
            annotation, metadata = arguments[0], []
            index += 1
        elif origin in (dict, Mapping):
            annotation, metadata = arguments[1], []
        else:
            return None, []
        index += 1
    return unwrap_annotation(annotation, metadata)


def unwrap_annotation(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` (collecting its metadata) and ``| None`` until a plain type is left."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            metadata = [*metadata, *annotation.__metadata__]
            annotation = typing.get_args(annotation)[0]
            continue
        arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        if typing.get_origin(annotation) in (Union, types.UnionType) and len(arguments) == 1:
            annotation = arguments[0]
            continue
        return annotation, metadata


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
