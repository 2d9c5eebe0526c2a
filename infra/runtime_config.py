"""The stack's ``phasekit:`` config as the Pulumi engine hands it to the program."""

from __future__ import annotations

import json
from typing import Any

from pulumi.runtime.config import CONFIG, get_config_env

from infra.config_keys import NAMESPACE, SECRET_KEYS


def runtime_raw_config() -> dict[str, Any]:
    """``{"phasekit:app": {...}, ...}`` with structured values decoded, secret keys left out.

    The engine passes every value as a string (objects JSON-encoded); decoding gives ``load_config`` the
    same shapes a stack file has.
    """
    merged = {**get_config_env(), **CONFIG.get()}
    return {
        key: _decode(value)
        for key, value in merged.items()
        if key.startswith(f"{NAMESPACE}:") and key.split(":", 1)[1] not in SECRET_KEYS
    }


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
