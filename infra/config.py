"""The stack config: one frozen, typed model tree per phase, loaded from a stack file's ``config:`` mapping.

Users write camelCase keys under the ``phasekit:`` namespace; Python code reads snake_case attributes. Keys of
other namespaces (``digitalocean:``, ``cloudflare:``, ``aws:``, ``kubernetes:``, ``pulumi:``) are ignored, and
the secret-bearing keys ``phasekit:secrets`` and ``phasekit:sshPrivateKey`` never become model fields: the
program reads them with ``require_secret``. ``load_config`` is pure, so tests run without the Pulumi runtime.

Error messages. Every problem is one line::

    <key as the user writes it>: <the bad value, quoted> <what is wrong>; allowed: <what is allowed>

for example ``phasekit:vps.sshAdminCidrs[0]: '0.0.0.0/0' opens SSH to the whole internet; allowed: ...``.
Missing keys read ``<key>: missing; allowed: ...`` and unknown keys ``<key>: unknown key; allowed: <the
keys that level accepts>``. A ``ConfigError`` with one problem is exactly that line; with several, the first
line is ``invalid stack config (<n> problems):`` and each problem follows on its own line, indented by two
spaces. Plain-text secrets are reported by key only, never with their value.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from infra.config_base import (  # noqa: F401  (the model tree is imported from here)
    MAX_POSTGRES_CONNECTIONS,
    REGISTRY_PASSWORD_SECRET,
    App,
    ConfigModel,
    Edge,
    PhaseStack,
    Registry,
)
from infra.config_droplets import AppTier, Database, DropletAccess, Phase1Stack, Phase2Stack, Redis, Vps  # noqa: F401
from infra.config_keys import NAMESPACE, SECRET_KEYS, is_secure_value, pulumi_path, show_value
from infra.config_messages import describe_problem, without_consequences
from infra.config_phase3 import Aws, Cache, Cluster, NodeGroup, Phase3Stack, RdsDatabase, Workload  # noqa: F401
from infra.errors import ConfigError

# pydantic's discriminated union picks the phase's model from `phase`.
StackConfig = Annotated[Union[Phase1Stack, Phase2Stack, Phase3Stack], Field(discriminator="phase")]  # noqa: UP007

_STACK_CONFIG = TypeAdapter(StackConfig)


def _union_members(annotated: Any) -> tuple[type[PhaseStack], ...]:
    member = typing.get_args(annotated)[0]
    return typing.get_args(member) or (member,)


_MODELS_BY_PHASE: dict[int, type[PhaseStack]] = {
    typing.get_args(model.model_fields["phase"].annotation)[0]: model for model in _union_members(StackConfig)
}

IMPLEMENTED_PHASES: tuple[int, ...] = tuple(sorted(_MODELS_BY_PHASE))
"""Phases this version can deploy, derived from ``StackConfig``'s members."""


def load_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a stack file's ``config:`` mapping into the model of its phase.

    Raises ``ConfigError`` listing every problem found: plain-text secrets, an unusable phase, and each bad
    key of the phase's model.
    """
    problems = _plain_text_secrets(raw)
    settings = {
        key.removeprefix(f"{NAMESPACE}:"): value
        for key, value in raw.items()
        if key.startswith(f"{NAMESPACE}:") and key.removeprefix(f"{NAMESPACE}:") not in SECRET_KEYS
    }
    phase, phase_problem = _read_phase(settings)
    config = None
    if phase_problem is not None:
        problems.append(phase_problem)
    else:
        try:
            config = _STACK_CONFIG.validate_python({**settings, "phase": phase}, by_name=False)
        except ValidationError as error:
            model = _MODELS_BY_PHASE[phase]
            problems.extend(describe_problem(detail, model) for detail in without_consequences(error.errors()))
    if problems or config is None:
        raise ConfigError(*problems)
    return config


def config_warnings(raw: Mapping[str, Any], config: StackConfig) -> list[str]:
    """Things a valid stack file probably did not mean, one line each, naming the key (format as problems)."""
    return []


def check_secrets_encrypted(raw: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` if the stack file holds a secret in plain text rather than as ``{secure: ...}``."""
    problems = _plain_text_secrets(raw)
    if problems:
        raise ConfigError(*problems)


def required_secret_names(config: StackConfig) -> list[str]:
    """Entries ``phasekit:secrets`` must hold: every ``app.secretEnv`` name, then the registry password."""
    registry = [REGISTRY_PASSWORD_SECRET] if config.app.registry is not None else []
    return [*config.app.secret_env, *(name for name in registry if name not in config.app.secret_env)]


def secret_env_names_missing(raw: Mapping[str, Any], config: StackConfig) -> list[str]:
    """``required_secret_names`` with no entry under ``phasekit:secrets``, in that order.

    When ``phasekit:secrets`` is encrypted as one value its entries cannot be seen, and none are reported.
    """
    secrets = raw.get(f"{NAMESPACE}:secrets")
    if is_secure_value(secrets):
        return []
    present = set(secrets) if isinstance(secrets, Mapping) else set()
    return [name for name in required_secret_names(config) if name not in present]


_MISSING = object()


def _read_phase(settings: Mapping[str, Any]) -> tuple[int, None] | tuple[None, str]:
    value = settings.get("phase", _MISSING)
    allowed = ", ".join(str(phase) for phase in IMPLEMENTED_PHASES)
    if value is _MISSING:
        return None, f"{NAMESPACE}:phase: missing; allowed: {allowed}"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        number = int(value)
    if number in _MODELS_BY_PHASE:
        return number, None
    return None, f"{NAMESPACE}:phase: {show_value(value)} is not a phase; allowed: {allowed}"


# --- plain-text secrets ---------------------------------------------------------------------------------------

_PROVIDER_SECRET_KEYS = frozenset(
    {"digitalocean:token", "cloudflare:apiToken", "cloudflare:apiKey", "aws:secretKey", "aws:accessKey"}
)
_SECRET_WORDS = ("password", "token", "secret", "privatekey")
# Paths whose values name secrets rather than hold them.
_SECRET_NAME_LISTS = frozenset({("app", "secretEnv")})


def _looks_secret(key: object) -> bool:
    folded = str(key).lower().replace("_", "").replace("-", "")
    return any(word in folded for word in _SECRET_WORDS)


def _plain_text_secrets(raw: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, value in raw.items():
        if value is None or is_secure_value(value):
            continue
        if key in _PROVIDER_SECRET_KEYS:
            problems.append(_plain_text_secret(key, f"{key} <value>"))
        elif key == f"{NAMESPACE}:secrets":
            problems.extend(_plain_text_in_secrets(value))
        elif key == f"{NAMESPACE}:sshPrivateKey":
            problems.append(_plain_text_secret(key, "sshPrivateKey <value>"))
        elif key.startswith(f"{NAMESPACE}:"):
            for path in _secret_looking_leaves((key.removeprefix(f"{NAMESPACE}:"),), value):
                problems.append(_plain_text_phasekit_secret(path))
    return problems


def _plain_text_in_secrets(secrets: object) -> list[str]:
    how = "pulumi config set --secret --path 'secrets.<NAME>' <value>"
    if not isinstance(secrets, Mapping):
        return [f"{NAMESPACE}:secrets: not a mapping; allowed: a mapping of NAME to a secret set with: {how}"]
    return [
        _plain_text_phasekit_secret(("secrets", name))
        for name, value in secrets.items()
        if value is not None and not is_secure_value(value)
    ]


def _secret_looking_leaves(path: tuple[str | int, ...], value: object) -> Iterator[tuple[str | int, ...]]:
    if value is None or is_secure_value(value) or path in _SECRET_NAME_LISTS:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_looking_leaves((*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_looking_leaves((*path, index), item)
    elif _looks_secret(path[-1]):
        yield path


def _plain_text_phasekit_secret(path: tuple[str | int, ...]) -> str:
    key = f"{NAMESPACE}:{pulumi_path(path)}"
    if path[:2] == ("app", "env") and len(path) == 3:
        name = path[2]
        return _plain_text_secret(
            key, f"--path 'secrets.{name}' <value>, and list {name} in app.secretEnv instead of app.env"
        )
    if len(path) == 1:
        return _plain_text_secret(key, f"{path[0]} <value>")
    return _plain_text_secret(key, f"--path '{pulumi_path(path)}' <value>")


def _plain_text_secret(key: str, set_arguments: str) -> str:
    return f"{key}: plain-text secret in the stack file; set it with: pulumi config set --secret {set_arguments}"
