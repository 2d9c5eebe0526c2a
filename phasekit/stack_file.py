"""Reads YAML files the tools are handed: stack files, the price catalog, the replacement rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from infra.config_keys import show_value
from infra.errors import ConfigError


def read_yaml(path: Path, what: str, shown: str | None = None) -> Any:
    """The YAML document in ``path`` (a stack file, the price catalog, the replacement rules); anything
    unreadable stops with one line naming the file as ``shown`` (default: the path) and, for bad YAML, the
    line and column."""
    shown = str(path) if shown is None else shown
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{shown}: cannot read {what}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not a UTF-8 text file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
        reason = getattr(error, "problem", None) or " ".join(str(error).split())
        raise ConfigError(f"{where}: not valid YAML: {reason}") from None


def read_stack_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config:`` mapping of a ``Pulumi.<stack>.yaml`` file (``{}`` when it has none)."""
    path = Path(path)
    document = read_yaml(path, "the stack file")
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a Pulumi stack file: the top level is not a mapping")
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: config: {show_value(config)} is not a mapping; allowed: a mapping of config keys")
    return config
