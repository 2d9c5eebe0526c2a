"""Secret config values, read only as Pulumi secrets; they never enter the config models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi.runtime.config import get_config, is_config_secret

from components.droplet_parts import SlackChannel, webhook_url_problem
from infra.config import (
    BACKUP_PASSPHRASE_MIN_LENGTH,
    BACKUP_PASSPHRASE_SECRET,
    NAMESPACE,
    REGISTRY_PASSWORD_SECRET,
    SECRET_KEYS,
    ConfigError,
    Phase1Stack,
    StackConfig,
    alert_slack,
    required_secret_names,
)


@dataclass(frozen=True)
class StackSecretInputs:
    secret_env: Mapping[str, pulumi.Output[str]]
    """Value of each ``app.secretEnv`` name, from ``phasekit:secrets.<NAME>``."""

    ssh_private_key: pulumi.Output[str] | None
    """``phasekit:sshPrivateKey``; None means the rollout uses the SSH agent."""

    registry_password: pulumi.Output[str] | None
    """``phasekit:secrets.REGISTRY_PASSWORD`` when ``app.registry`` is set."""

    backup_passphrase: pulumi.Output[str]
    """``phasekit:secrets.BACKUP_PASSPHRASE``: the key the off-site backups are encrypted with (every phase)."""

    alert_slack: tuple[SlackChannel, ...] = ()
    """The droplets' alert Slack channels, each webhook URL from ``phasekit:secrets.<webhook>`` (phases 1, 2)."""


def set_secret_command(name: str) -> str:
    """The command that sets one ``phasekit:secrets`` entry. It takes no value argument: ``pulumi config set``
    then prompts for the value without echo, or reads it from stdin when piped (pulumi/pulumi
    ``pkg/cmd/pulumi/config``, ``configSetCmd``), so the secret stays out of shell history and ``ps``."""
    return f"pulumi config set --secret --path 'secrets.{name}'"


def read_secret_inputs(config: StackConfig) -> StackSecretInputs:
    """Read the secret values the program needs; a missing or plain-text one is a ConfigError."""
    required = required_secret_names(config)
    for key in SECRET_KEYS:
        qualified = f"{NAMESPACE}:{key}"
        if get_config(qualified) is not None and not is_config_secret(qualified):
            raise ConfigError(f"{qualified}: set in plain text; set it again with --secret")

    stored = decode_stored_secrets(get_config(f"{NAMESPACE}:secrets"))
    missing = [name for name in required if name not in stored]
    if missing:
        raise ConfigError(*[
            f"{NAMESPACE}:secrets.{name}: missing; {_why_required(name, config)}, so set it with: "
            f"{set_secret_command(name)}" for name in missing])
    # null would reach the app as the text "None"; both are what `pulumi config set --secret ... ""` leaves.
    empty = [name for name in required if stored[name] is None or str(stored[name]).strip() == ""]
    if empty:
        raise ConfigError(*[f"{NAMESPACE}:secrets.{name}: empty; allowed: a secret value set with: "
                            f"{set_secret_command(name)}" for name in empty])

    short = _too_short_passphrase(stored)
    if short is not None:
        raise ConfigError(short)
    bad_webhooks = _bad_webhooks(config, stored)
    if bad_webhooks:
        raise ConfigError(*bad_webhooks)

    pulumi_config = pulumi.Config(NAMESPACE)
    values = pulumi_config.require_secret_object("secrets")

    def entry(name: str) -> pulumi.Output[str]:
        return values.apply(lambda all_values: str(all_values[name]))

    return StackSecretInputs(
        secret_env={name: entry(name) for name in config.app.secret_env},
        ssh_private_key=pulumi_config.get_secret("sshPrivateKey"),
        registry_password=entry(REGISTRY_PASSWORD_SECRET) if config.app.registry is not None else None,
        backup_passphrase=entry(BACKUP_PASSPHRASE_SECRET),
        alert_slack=tuple(SlackChannel(channel=slack.channel, url=entry(slack.webhook))
                          for slack in alert_slack(config)),
    )


def decode_stored_secrets(text: str | None) -> Mapping[str, object]:
    """``phasekit:secrets`` as the engine hands it over: a JSON object (encrypted entry by entry or as a whole,
    the engine decrypts both the same way); anything else is one ConfigError line, never the value."""
    if text is None:
        return {}
    try:
        stored = json.loads(text)
    except json.JSONDecodeError:
        stored = None
    if not isinstance(stored, dict):
        raise ConfigError(f"{NAMESPACE}:secrets: not a mapping; allowed: a mapping of NAME to a secret set with: "
                          f"{set_secret_command('<NAME>')}")
    return stored


def _bad_webhooks(config: StackConfig, stored: Mapping[str, object]) -> list[str]:
    """One line per Slack webhook that is not an ``https://`` URL, naming the entry, never the value."""
    problems = []
    for slack in alert_slack(config):
        other_use = _other_use(slack.webhook, config)
        if other_use is not None:
            problems.append(f"{NAMESPACE}:secrets.{slack.webhook}: {other_use} too, and a webhook URL is sent to "
                            "DigitalOcean and shown in its control panel; allowed: a secrets entry of its own for "
                            "the webhook URL")
            continue
        problem = webhook_url_problem(str(stored[slack.webhook]))
        if problem is not None:
            problems.append(f"{NAMESPACE}:secrets.{slack.webhook}: {problem}")
    return list(dict.fromkeys(problems))


def _other_use(name: str, config: StackConfig) -> str | None:
    """What else reads the secret ``name`` besides a Slack channel, or None."""
    if name in config.app.secret_env:
        return "app.secretEnv lists it"
    if name == BACKUP_PASSPHRASE_SECRET:
        return "the off-site backups are encrypted with it"
    if name == REGISTRY_PASSWORD_SECRET:
        return "app.registry logs in with it"
    return None


def _why_required(name: str, config: StackConfig) -> str:
    if name in config.app.secret_env:
        return "app.secretEnv lists it"
    if any(slack.webhook == name for slack in alert_slack(config)):
        key = "vps" if isinstance(config, Phase1Stack) else "droplets"
        return f"{key}.alertSlack names it as the webhook URL of a Slack channel"
    if name == BACKUP_PASSPHRASE_SECRET:
        return "the off-site backups are encrypted with it (keep a copy outside Pulumi: restores need it)"
    return "app.registry needs it"


def _too_short_passphrase(stored: Mapping[str, object]) -> str | None:
    """The message for a ``BACKUP_PASSPHRASE`` shorter than ``BACKUP_PASSPHRASE_MIN_LENGTH``, naming its length
    only, never the value; None when it is long enough."""
    length = len(str(stored[BACKUP_PASSPHRASE_SECRET]))
    if length >= BACKUP_PASSPHRASE_MIN_LENGTH:
        return None
    return (f"{NAMESPACE}:secrets.{BACKUP_PASSPHRASE_SECRET}: {length} characters is too short to encrypt backups "
            f"with; allowed: at least {BACKUP_PASSPHRASE_MIN_LENGTH} characters, e.g. openssl rand -base64 32 | "
            f"{set_secret_command(BACKUP_PASSPHRASE_SECRET)}")
