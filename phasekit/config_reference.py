"""The key tables of the config reference (docs/config.md), generated from the config models.

Each row is one pydantic field of the ``StackConfig`` tree (``infra/config.py``): the key is its camelCase
alias, the type its annotation with the ``Allowed`` text the error messages print (found by the same walk
``infra/config_messages.py`` does), the default the field's own default (so each default is written once, in
the model), and the rule the field's docstring (read from the source below, as pydantic's
``use_attribute_docstrings`` reads it). The tables sit in docs/config.md between
``<!-- config-reference:<section>:start -->`` and ``<!-- config-reference:<section>:end -->`` markers, the
way terraform-docs keeps a module's README inputs table; everything outside the markers is written by hand.
tests/test_config_reference.py fails when the page is stale. Refresh it, or check it, with::

    python -m phasekit.config_reference --write docs/config.md
    python -m phasekit.config_reference --check docs/config.md    # exit 1 when stale
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from infra.config import IMPLEMENTED_PHASES, StackConfig
from infra.config_keys import NAMESPACE

# The walk the error messages use to find a key's ``allowed:`` text; reused so the docs and the messages agree.
from infra.config_messages import allowed_at, annotation_at, is_model, unwrap_annotation

MARKER = "<!-- config-reference:{section}:{end} -->"


def phase_models() -> dict[int, type[BaseModel]]:
    """Each phase's top-level model, from ``StackConfig``'s union and each member's ``phase`` literal."""
    union = typing.get_args(StackConfig)[0]
    members = typing.get_args(union) or (union,)
    return {typing.get_args(model.model_fields["phase"].annotation)[0]: model for model in members}


@dataclass(frozen=True)
class Section:
    """One generated table: the nested keys of some top-level keys of one phase's model."""

    name: str
    """As in the markers: ``<!-- config-reference:<name>:start -->``."""

    phase: int
    keys: tuple[str, ...] | None
    """Top-level keys whose nested keys the table lists; ``None``: each mapping key of ``phase`` that no other
    section lists (so a key added to that phase's model lands in the table by itself)."""

    anchor: str
    """The heading's anchor on the page, which the top-level table links to."""

    relative: bool = False
    """Show keys below their top-level key (``image``) rather than with it (``appTier.size``)."""


TOP = "top"
SECTIONS: tuple[Section, ...] = (
    Section("app", 1, ("app",), "phasekitapp", relative=True),
    Section("edge", 1, ("edge",), "phasekitedge", relative=True),
    Section("backups", 1, ("backups",), "phasekitbackups", relative=True),
    Section("vps", 1, ("vps",), "phasekitvps", relative=True),
    Section("services", 1, ("services",), "phasekitservices", relative=True),
    Section("phase2", 2, None, "phase-2-keys"),
    Section("phase3", 3, None, "phase-3-keys"),
)
SECTION_NAMES: tuple[str, ...] = (TOP, *(section.name for section in SECTIONS))


@dataclass(frozen=True)
class Row:
    """One key's row, each cell already Markdown."""

    key: str
    type: str
    default: str
    rule: str
    phases: tuple[int, ...] = ()


# --- one field ---------------------------------------------------------------------------------------------


def _kind(annotation: Any) -> str:
    """How a YAML writer would name the annotation's type: ``integer``, ``list of strings``, ``mapping``."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        others = [argument for argument in arguments if argument is not type(None)]
        return " or ".join(_kind(other) for other in others) + (" or null" if len(others) < len(arguments) else "")
    if origin is Literal:
        return _kind(type(arguments[0]))
    if origin in (tuple, list):
        return f"list of {_kind(arguments[0])}s"
    if origin in (dict, Mapping) or is_model(annotation):
        return "mapping"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if isinstance(annotation, type) and issubclass(annotation, str | Enum):
        return "string"
    raise TypeError(f"no YAML name for {annotation!r}")


def _allowed(model: type[BaseModel], loc: tuple[str | int, ...]) -> str | None:
    """The ``Allowed`` text of the value at ``loc``; ``None`` where the kind says it all (a mapping, a boolean)."""
    annotation, _ = annotation_at(model, loc)
    if is_model(annotation) or annotation is bool:
        return None
    return allowed_at(model, loc)[0]


def _as_markdown(text: str) -> str:
    """Plain text (an ``Allowed`` text) escaped for Markdown: ``'-' or '_'`` must not open an emphasis."""
    return re.sub(r"([\\`*_])", r"\\\1", text)


def _type_text(model: type[BaseModel], loc: tuple[str, ...], field: FieldInfo) -> str:
    return _as_markdown(_type_words(model, loc, field))


def _type_words(model: type[BaseModel], loc: tuple[str, ...], field: FieldInfo) -> str:
    parts = [_kind(field.annotation)]
    allowed = _allowed(model, loc)
    if allowed is not None:
        parts.append(f": {allowed}")
    annotation, _ = annotation_at(model, loc)
    # A mapping's keys and values are described by their types' ``Allowed`` texts; a list's items are left to the
    # field's docstring: a narrower item type without a marker of its own (``ApiAdminCidr``, IPv4 only) would
    # print its base's wider text.
    if typing.get_origin(annotation) in (dict, Mapping):
        keys, values = _allowed(model, (*loc, "NAME", "[key]")), _allowed(model, (*loc, "NAME"))
        parts += [f"; keys: {keys}" if keys else "", f"; values: {values}" if values else ""]
    return "".join(parts)


def yaml_text(value: object) -> str:
    """``value`` as YAML writes it on one line: ``8000``, ``'1.35'``, ``[t3.large]``, ``{}``, ``null``."""
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=sys.maxsize)
    return text.removesuffix("...\n").strip()


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    factory = field.default_factory
    if isinstance(factory, type) and issubclass(factory, BaseModel):
        return "`{}`"  # every nested key at its own default, which the rows below give
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    return f"`{yaml_text(value)}`"


# Not pydantic's ``use_attribute_docstrings``: on Python < 3.13 it walks the call stack and parses each class
# as the class is created, which made every ``import infra.config`` (so each plan and each ``pulumi up``) about
# 33 ms slower (about 162 ms instead of 129 ms, measured 2026-12 on the 2-core machine) for the benefit of this
# generator alone. The same reading happens here, only when the tables are generated.
@functools.cache
def _attribute_docstrings(cls: type) -> dict[str, str]:
    """The string literal written right under each annotated attribute of ``cls`` (``x: int = 1`` then
    ``\"\"\"...\"\"\"``), cleaned as ``inspect.cleandoc`` cleans docstrings."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    return {
        attribute.target.id: inspect.cleandoc(text.value.value)
        for attribute, text in zip(body, body[1:], strict=False)
        if isinstance(attribute, ast.AnnAssign) and isinstance(attribute.target, ast.Name)
        and isinstance(text, ast.Expr) and isinstance(text.value, ast.Constant) and isinstance(text.value.value, str)
    }


def field_docstring(model: type[BaseModel], name: str) -> str:
    """The docstring of field ``name`` (snake_case) where the class that declares it writes it; ``""`` if none."""
    declaring = next(cls for cls in model.__mro__ if name in vars(cls).get("__annotations__", {}))
    return _attribute_docstrings(declaring).get(name, "")


def rule_text(model: type[BaseModel], name: str) -> str:
    """The field's docstring on one line, reStructuredText's ````code```` as Markdown's ```code```."""
    return " ".join(field_docstring(model, name).split()).replace("``", "`")


def _row(model: type[BaseModel], loc: tuple[str, ...], shown: str, **extra: Any) -> Row:
    """The row of the key at ``loc`` (camelCase) of ``model``, shown as ``shown``."""
    owner, _ = annotation_at(model, loc[:-1])
    name, field = next((name, field) for name, field in owner.model_fields.items() if (field.alias or name) == loc[-1])
    return Row(shown, _type_text(model, loc, field), _default_text(field), rule_text(owner, name), **extra)


def _nested_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation, _ = unwrap_annotation(field.annotation, [])
    return annotation if is_model(annotation) else None


def _mapped_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of each value of a mapping field (``processes: Mapping[ProcessName, Process]``), else ``None``."""
    annotation, _ = unwrap_annotation(field.annotation, [])
    if typing.get_origin(annotation) not in (dict, Mapping):
        return None
    value, _ = unwrap_annotation(typing.get_args(annotation)[1], [])
    return value if is_model(value) else None


NAME_PLACEHOLDER = "<name>"
"""How a row writes the user-chosen key of a mapping of models: ``processes.<name>.command``."""


def field_rows(model: type[BaseModel], loc: tuple[str, ...], prefix: str = "") -> list[Row]:
    """A row for every key below ``loc`` of ``model``, depth first in declaration order; a mapping whose values
    are models (``processes``) gets its row, then a row per key of its value model below ``<name>``."""
    annotation, _ = annotation_at(model, loc)
    rows = []
    for name, field in annotation.model_fields.items():
        key = field.alias or name
        rows.append(_row(model, (*loc, key), prefix + key))
        if _nested_model(field) is not None:
            rows += field_rows(model, (*loc, key), f"{prefix}{key}.")
        elif _mapped_model(field) is not None:
            rows += field_rows(model, (*loc, key, NAME_PLACEHOLDER), f"{prefix}{key}.{NAME_PLACEHOLDER}.")
    return rows


def model_tree() -> list[type[BaseModel]]:
    """Every model of the ``StackConfig`` tree once: the phases' models, then the models nested in them."""
    found: list[type[BaseModel]] = []
    pending = list(phase_models().values())
    while pending:
        model = pending.pop(0)
        if model not in found:
            found.append(model)
            pending += [nested for field in model.model_fields.values()
                        if (nested := _nested_model(field) or _mapped_model(field))]
    return found


# --- the tables ---------------------------------------------------------------------------------------------


def section_keys(section: Section) -> tuple[str, ...]:
    """The top-level keys ``section`` lists, in the order the phase's model declares them."""
    if section.keys is not None:
        return section.keys
    listed = {key for other in SECTIONS if other.keys is not None for key in other.keys}
    model = phase_models()[section.phase]
    return tuple(
        field.alias or name for name, field in model.model_fields.items()
        if _nested_model(field) is not None and (field.alias or name) not in listed
    )


def section_rows(section: Section) -> list[Row]:
    model = phase_models()[section.phase]
    rows = []
    for key in section_keys(section):
        prefix = "" if section.relative else f"{key}."
        rows += field_rows(model, (key,), prefix)
    return rows


def _section_of(phase: int, key: str) -> Section | None:
    """The table listing ``key``'s nested keys in ``phase`` (a shared key's table serves every phase)."""
    return next((section for section in SECTIONS
                 if key in section_keys(section) and (section.phase == phase or section.relative)), None)


def top_rows() -> list[Row]:
    """One row per top-level key; a key whose type, default and rule are the same in several phases is one row."""
    rows: list[Row] = []
    for phase, model in phase_models().items():
        for name, field in model.model_fields.items():
            key = field.alias or name
            row = _row(model, (key,), f"{NAMESPACE}:{key}")
            if key == "phase":  # the discriminator: each model admits its own number, the union all of them
                numbers = [str(number) for number in IMPLEMENTED_PHASES]
                row = replace(row, type=f"integer: {', '.join(numbers[:-1])} or {numbers[-1]}")
            section = _section_of(phase, key)
            if section is not None and _nested_model(field) is not None:
                row = replace(row, rule=f"{row.rule} See [below](#{section.anchor}).")
            same = next((index for index, seen in enumerate(rows) if replace(seen, phases=()) == row), None)
            if same is None:
                rows.append(replace(row, phases=(phase,)))
            else:
                rows[same] = replace(rows[same], phases=(*rows[same].phases, phase))
    return sorted(rows, key=lambda row: row.key != f"{NAMESPACE}:phase")  # the key that decides the others first


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _phases_text(phases: Sequence[int]) -> str:
    return "all" if tuple(phases) == IMPLEMENTED_PHASES else ", ".join(str(phase) for phase in phases)


def render_table(rows: Sequence[Row], with_phases: bool = False) -> str:
    header = ["Key", *(["Phases"] if with_phases else []), "Type", "Default", "Rule"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"`{row.key}`", *([_phases_text(row.phases)] if with_phases else []), row.type, row.default,
                 row.rule]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def render_section(name: str) -> str:
    """The Markdown that goes between the section's markers."""
    if name == TOP:
        return render_table(top_rows(), with_phases=True)
    section = next(section for section in SECTIONS if section.name == name)
    return render_table(section_rows(section))


# --- the page -------------------------------------------------------------------------------------------------


def _block(name: str) -> re.Pattern[str]:
    start, end = (re.escape(MARKER.format(section=name, end=which)) for which in ("start", "end"))
    return re.compile(rf"(?P<start>{start}\n)(?P<body>.*?)(?P<end>{end})", re.DOTALL)


def generated_blocks(page: str) -> dict[str, str]:
    """What stands between each section's markers in ``page``; a missing or repeated marker pair is an error."""
    blocks = {}
    for name in SECTION_NAMES:
        found = _block(name).findall(page)
        if len(found) != 1:
            raise ValueError(f"{len(found)} '{MARKER.format(section=name, end='start')}' blocks; expected 1")
        blocks[name] = found[0][1]
    return blocks


def _block_body(name: str) -> str:
    # Blank lines around the table: without them Markdown reads the comment and the table as one HTML block.
    return f"\n{render_section(name)}\n"


def refreshed(page: str) -> str:
    """``page`` with every generated block replaced by what the models say today."""
    generated_blocks(page)  # each block exactly once
    for name in SECTION_NAMES:
        page = _block(name).sub(lambda match, name=name: match["start"] + _block_body(name) + match["end"], page)
    return page


def stale_sections(page: str) -> list[str]:
    """Sections whose block in ``page`` differs from the generator's output."""
    return [name for name, body in generated_blocks(page).items() if body != _block_body(name)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phasekit.config_reference",
                                     description="Refresh or check the generated tables of docs/config.md.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="PAGE", type=Path, help="refresh the generated tables in PAGE")
    action.add_argument("--check", metavar="PAGE", type=Path, help="exit 1 when PAGE's tables are stale")
    action.add_argument("--section", choices=SECTION_NAMES, help="print one section's table")
    args = parser.parse_args(argv)
    if args.section:
        sys.stdout.write(render_section(args.section))
        return 0
    page_path = args.write or args.check
    try:
        page = page_path.read_text(encoding="utf-8")
        stale = stale_sections(page)
    except OSError as error:
        print(f"{page_path}: cannot read the page: {error.strerror}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"{page_path}: {error}", file=sys.stderr)
        return 1
    if args.check:
        for name in stale:
            print(f"{page_path}: config-reference:{name} is stale; run: python -m phasekit.config_reference "
                  f"--write {page_path}", file=sys.stderr)
        return 1 if stale else 0
    if stale:
        page_path.write_text(refreshed(page), encoding="utf-8")
    print(f"{page_path}: {len(stale)} of {len(SECTION_NAMES)} tables refreshed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
