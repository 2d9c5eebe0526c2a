"""Secret config values, read only as Pulumi secrets; they never enter the config models."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi.runtime.config import get_config, is_config_secret

from infra.config import NAMESPACE, SECRET_KEYS, ConfigError


@dataclass(frozen=True)
class StackSecretInputs:
    secret_env: Mapping[str, pulumi.Output[str]]
    """Value of each ``app.secretEnv`` name, from ``phasekit:secrets.<NAME>``."""

    ssh_private_key: pulumi.Output[str] | None
    """``phasekit:sshPrivateKey``; None means the rollout uses the SSH agent."""


def set_secret_command(name: str) -> str:
    return f"pulumi config set --secret --path 'secrets.{name}' <value>"


def read_secret_inputs(secret_env_names: Sequence[str]) -> StackSecretInputs:
    """Read the secret values the program needs; a missing or plain-text one is a ConfigError."""
    for key in SECRET_KEYS:
        qualified = f"{NAMESPACE}:{key}"
        if get_config(qualified) is not None and not is_config_secret(qualified):
            raise ConfigError(f"{qualified}: set in plain text; set it again with --secret")

    stored = json.loads(get_config(f"{NAMESPACE}:secrets") or "{}")
    missing = [name for name in secret_env_names if name not in stored]
    if missing:
        raise ConfigError(*[
            f"{NAMESPACE}:secrets.{name}: missing; app.secretEnv lists it, so set it with: "
            f"{set_secret_command(name)}" for name in missing])

    config = pulumi.Config(NAMESPACE)
    values = config.require_secret_object("secrets") if secret_env_names else None
    return StackSecretInputs(
        secret_env={name: values.apply(lambda all_values, name=name: str(all_values[name]))
                    for name in secret_env_names} if values is not None else {},
        ssh_private_key=config.get_secret("sshPrivateKey"),
    )
