"""Reads YAML files the tools are handed: stack files, the price catalog, the replacement rules.

Stack files are read as the Pulumi CLI reads them (pulumi/pulumi, ``sdk/go/common/workspace/loaders.go`` and
``sdk/go/common/resource/config/key.go``, checked 2026-08):

- a mapping that holds the same key twice is refused: the CLI decodes with ``gopkg.in/yaml.v3``, which fails with
  ``mapping key "x" already defined at line N`` (and YAML 1.2 requires unique keys); PyYAML would silently keep
  the last value;
- a key without a namespace belongs to the project (``stackConfigNamespacedWithProject``): ``tags:`` is
  ``phasekit:tags``, so writing both is a duplicate;
- ``<namespace>:config:<name>`` is the old spelling of ``<namespace>:<name>`` (``ParseKey``); any other key
  with more than one ``:`` is refused;
- a leading UTF-8 byte-order mark is ignored (``readFileStripUTF8BOM``);
- the top level holds only the keys of ``ProjectStack`` (``sdk/go/common/workspace/project.go``: its yaml tags
  ``secretsprovider``, ``encryptedkey``, ``encryptionsalt``, ``config``, ``environment``). Any other key is no
  setting the CLI reads, so ``conifg:`` would drop the whole config unnoticed; phasekit refuses it with a
  did-you-mean (or, for a ``<namespace>:<name>`` key, a pointer to ``config:``);
- plain scalars resolve as yaml.v3 resolves them (``resolve.go``, YAML 1.2 core schema), not as PyYAML does
  (YAML 1.1): only ``true``/``false`` (and ``True``, ``TRUE``, ``False``, ``FALSE``) are booleans, so ``on``,
  ``off``, ``yes``, ``no``, ``y``, ``n`` stay strings; base 60 (``1:30``) stays a string; integers are read as
  Go's ``strconv.ParseInt(s, 0, 64)`` reads them once ``_`` is removed (``0x1F``, ``0o17``, ``0b101``, and
  ``017`` as octal); a float is yaml.v3's ``yamlStyleFloat`` (digits with an optional fraction and an optional
  exponent whose sign may be left out, so ``1e3`` is one) or ``.inf``/``.nan`` in their case forms. Nulls and
  timestamps are unchanged;
- a document whose aliases expand it too far is refused, as yaml.v3 refuses it with ``document contains
  excessive aliasing`` (``decode.go``: ``unmarshal`` fails once more than 100 of over 1,000 decoded values come
  from aliases and their share exceeds ``allowedAliasRatio``, 99 % up to 400,000 values). phasekit counts the
  expanded size once per node (memoised by identity, so even a "billion laughs" costs a few hundred steps) and
  refuses above 100,000 values, far above any real stack file; an anchor whose value holds an alias to itself is
  refused as yaml.v3 refuses it (``anchor 'x' value contains itself``).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from infra.config_keys import qualify_key, show_value
from infra.errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that holds the same key twice, at any depth.

    Keys merged in with ``<<: *anchor`` may be overridden (that is what a merge is for); only keys written in
    the mapping itself must be unique.
    """

    def compose_document(self) -> yaml.Node | None:
        # PyYAML's Composer forgets the anchors once the document is composed; keep them to name a looping one.
        self.get_event()  # DocumentStartEvent
        node = self.compose_node(None, None)  # type: ignore[arg-type]
        self.get_event()  # DocumentEndEvent
        self.document_anchors: dict[str, yaml.Node] = self.anchors
        self.anchors = {}
        return node

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    seen = key in first_line
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if seen:
                    raise ConstructorError(
                        problem=f"duplicate key {show_value(key)} (first on line {first_line[key] + 1})",
                        problem_mark=key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


class _StackFileLoader(_UniqueKeyLoader):
    """``_UniqueKeyLoader`` resolving plain scalars as yaml.v3 does (see the module docstring)."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """An integer as Go's ``strconv.ParseInt(s, 0, 64)`` reads it once ``_`` is removed."""
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        bases = {"b": 2, "o": 8, "x": 16}
        if digits[:1] == "0" and digits[1:2].lower() in bases:
            return sign * int(digits[2:], bases[digits[1].lower()])
        if len(digits) > 1 and digits.startswith("0"):
            return sign * int(digits, 8)
        return sign * int(digits)


_YAML_1_1_TAGS = frozenset({"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_StackFileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_1_1_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StackFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_StackFileLoader.add_implicit_resolver(  # before the float, which also matches digits alone
    "tag:yaml.org,2002:int",
    re.compile(r"""^[-+]?(?:0[bB]_*[01][01_]*|0[oO]_*[0-7][0-7_]*|0[xX]_*[0-9a-fA-F][0-9a-fA-F_]*
                   |0[0-7_]*|[1-9][0-9_]*)$""", re.X),
    list("-+0123456789"))
_StackFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9][0-9_]*)?
                   |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))
_StackFileLoader.add_constructor("tag:yaml.org,2002:int", _StackFileLoader.construct_yaml_int)

MAX_EXPANDED_VALUES = 100_000
"""Values (scalars, lists and mappings, keys included) a stack file may hold once its aliases are expanded."""


def _refuse_excessive_aliasing(root: yaml.Node, anchors: dict[str, yaml.Node], shown: str) -> None:
    """One-line ConfigError if ``root`` expands past ``MAX_EXPANDED_VALUES`` or an anchor holds itself.

    An alias is the very node its anchor names, so a size memoised by node identity is computed once per node
    written, however often aliases repeat it.
    """
    anchor_names = {id(node): name for name, node in anchors.items()}
    sizes: dict[int, int] = {}
    being_sized: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in being_sized:
            mark = node.start_mark
            raise ConfigError(f"{shown}:{mark.line + 1}:{mark.column + 1}: not valid YAML: anchor "
                              f"'{anchor_names.get(key, '')}' value contains itself")
        being_sized.add(key)
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(key_node) + size(value_node) for key_node, value_node in node.value)
        else:
            total = 1
        if total > MAX_EXPANDED_VALUES:
            raise ConfigError(f"{shown}: not valid YAML: document contains excessive aliasing (aliases expand it to "
                              f"more than {MAX_EXPANDED_VALUES} values)")
        being_sized.discard(key)
        sizes[key] = total
        return total

    size(root)


def _load(path: Path, what: str, shown: str,
          loader_class: type[_UniqueKeyLoader] = _UniqueKeyLoader) -> tuple[Any, yaml.Node | None]:
    """The document in ``path`` and its node tree (for line numbers), or one-line ConfigError."""
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except OSError as error:
        raise ConfigError(f"{shown}: cannot read {what}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not a UTF-8 text file") from None
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _refuse_excessive_aliasing(node, loader.document_anchors, shown)
        return loader.construct_document(node), node
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
        reason = getattr(error, "problem", None) or " ".join(str(error).split())
        context = getattr(error, "context", None)
        if context and reason.startswith("but "):  # "expected a single document in the stream, but found ..."
            reason = f"{context}, {reason}"
        raise ConfigError(f"{where}: not valid YAML: {reason}") from None
    finally:
        loader.dispose()


def read_yaml(path: Path, what: str, shown: str | None = None) -> Any:
    """The YAML document in ``path`` (a stack file, the price catalog, the replacement rules); anything
    unreadable stops with one line naming the file as ``shown`` (default: the path) and, for bad YAML
    (a duplicate key included), the line and column."""
    return _load(path, what, str(path) if shown is None else shown)[0]


def read_stack_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config:`` mapping of a ``Pulumi.<stack>.yaml`` file (``{}`` when it has none), every key
    qualified with its namespace as the Pulumi CLI does (``tags`` -> ``phasekit:tags``)."""
    path = Path(path)
    document, node = _load(path, "the stack file", str(path), _StackFileLoader)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a Pulumi stack file: the top level is not a mapping")
    _refuse_unknown_top_level_keys(document, _key_marks_of(node), str(path))
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: config: {show_value(config)} is not a mapping; allowed: a mapping of config keys")
    return _qualified(config, _key_marks(node, "config"), str(path))


TOP_LEVEL_KEYS = ("config", "encryptedkey", "encryptionsalt", "environment", "secretsprovider")
"""The yaml tags of the Pulumi CLI's ``ProjectStack`` (pulumi/pulumi ``sdk/go/common/workspace/project.go``)."""


def _refuse_unknown_top_level_keys(document: dict[Any, Any], marks: dict[str, yaml.Mark], shown: str) -> None:
    for key in document:
        if key in TOP_LEVEL_KEYS:
            continue
        mark = marks.get(str(key))
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
        written = key if isinstance(key, str) else show_value(key)
        if isinstance(key, str) and ":" in key:
            hint = " (a config key goes under config:)"
        else:
            close = difflib.get_close_matches(str(key).lower(), TOP_LEVEL_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: {written}: unknown top-level key; allowed: {', '.join(TOP_LEVEL_KEYS)}{hint}")


def _key_marks_of(mapping: yaml.Node | None) -> dict[str, yaml.Mark]:
    """Where each scalar key of ``mapping`` is written."""
    if not isinstance(mapping, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark for key, _ in mapping.value if isinstance(key, yaml.ScalarNode)}


def _key_marks(document: yaml.Node | None, section: str) -> dict[str, yaml.Mark]:
    """Where each key of the top-level mapping ``section`` is written (the last one, as a merge keeps)."""
    if not isinstance(document, yaml.MappingNode):
        return {}
    for key_node, value_node in document.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == section:
            if isinstance(value_node, yaml.MappingNode):
                return {key.value: key.start_mark for key, _ in value_node.value if isinstance(key, yaml.ScalarNode)}
    return {}


def _qualified(config: dict[Any, Any], marks: dict[str, yaml.Mark], shown: str) -> dict[str, Any]:
    qualified: dict[str, Any] = {}
    written_as: dict[str, str] = {}
    for key, value in config.items():
        mark = marks.get(str(key))
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
        if not isinstance(key, str):
            raise ConfigError(f"{where}: config key {show_value(key)} is not a string; allowed: keys like "
                              "phasekit:phase or digitalocean:token")
        full = qualify_key(key)
        if full is None:
            raise ConfigError(f"{where}: {key!r} is not a config key; allowed: <namespace>:<name> with one ':', "
                              "e.g. phasekit:phase")
        if full in qualified:
            earlier = written_as[full]
            first = marks.get(earlier)
            on_line = f" on line {first.line + 1}" if first is not None else ""
            raise ConfigError(f"{where}: duplicate key {key!r}: it is {full}, already set as {earlier!r}{on_line} "
                              "(a key without a namespace belongs to the project); allowed: each key once")
        qualified[full] = value
        written_as[full] = key
    return qualified
