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
- a leading UTF-8 byte-order mark is ignored (``readFileStripUTF8BOM``).
"""

from __future__ import annotations

import os
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


def _load(path: Path, what: str, shown: str) -> tuple[Any, yaml.Node | None]:
    """The document in ``path`` and its node tree (for line numbers), or one-line ConfigError."""
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except OSError as error:
        raise ConfigError(f"{shown}: cannot read {what}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not a UTF-8 text file") from None
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
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
    document, node = _load(path, "the stack file", str(path))
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a Pulumi stack file: the top level is not a mapping")
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: config: {show_value(config)} is not a mapping; allowed: a mapping of config keys")
    return _qualified(config, _key_marks(node, "config"), str(path))


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
