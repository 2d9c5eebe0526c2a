"""How phasekit's stack-file keys and values are written back to the user.

Every config message names a key as the user writes it with ``pulumi config set --path``
(``phasekit:vps.sshAdminCidrs[0]``) and shows a value as YAML would (strings quoted, long values cut).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import Enum

NAMESPACE = "phasekit"
"""The Pulumi config namespace (the project name) phasekit's own keys live under."""

SECRET_KEYS = frozenset({"secrets", "sshPrivateKey"})
"""phasekit keys the program reads as secrets; they are accepted but never model fields."""

_SIMPLE_PATH_PART = re.compile(r'[^.\[\]"]+')


def is_secure_value(value: object) -> bool:
    """A stack-file value Pulumi encrypted: ``{secure: <ciphertext>}``."""
    return isinstance(value, Mapping) and set(value) == {"secure"} and isinstance(value["secure"], str)


def qualify_key(key: str) -> str | None:
    """A stack-file config key with its namespace, as the Pulumi CLI reads it; None when it cannot be one.

    A key without a namespace belongs to the project (``tags`` -> ``phasekit:tags``: pulumi/pulumi
    ``workspace/loaders.go`` ``stackConfigNamespacedWithProject``); ``<namespace>:config:<name>`` is the old
    spelling of ``<namespace>:<name>`` and any other key with more than one ``:`` is refused
    (``resource/config/key.go`` ``ParseKey``).
    """
    parts = key.split(":")
    if len(parts) == 1:
        return f"{NAMESPACE}:{key}"
    if len(parts) == 2:
        return key
    if len(parts) == 3 and parts[1] == "config":
        return f"{parts[0]}:{parts[2]}"
    return None


def config_key(loc: Sequence[str | int]) -> str:
    """The key as the user writes it: ``phasekit:vps.sshAdminCidrs[0]``."""
    return f"{NAMESPACE}:{pulumi_path([part for part in loc if part != '[key]'])}"


def pulumi_path(parts: Sequence[str | int]) -> str:
    """A ``pulumi config --path`` path: ``app.env.LOG_LEVEL``, ``vps.alertEmails[0]``, ``tags["a.b"]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _SIMPLE_PATH_PART.fullmatch(part):
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else part
    return text


_MAX_SHOWN = 80


def show_value(value: object) -> str:
    """A value as the user wrote it in YAML, strings quoted, cut short when long."""
    text = _render(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _render(value: object) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if is_secure_value(value):
        return "{secure: ...}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {_render(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    return repr(value)
