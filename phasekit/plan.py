"""Offline plan: run the real program under Pulumi's mock monitor, in preview mode, from a stack file.

No Pulumi CLI, credentials or network: ``secure:`` values in the stack file are replaced by placeholders
(and stay masked), computed values are unknown exactly as on a fresh stack's ``pulumi preview``, and
Cloudflare's IP ranges come from the harness' snapshot instead of Cloudflare's API.

This module runs the plan and renders it as JSON (``plan_json``); the text, summary first, is
``phasekit.plan_text``, and on a terminal ``phasekit.terminal``. The project folder and stack-file look-ups
live in ``phasekit.project`` (re-exported here), so the CLI can check them before the SDKs load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.tags import default_tags
from components.testing import SECRET_MASK, UNKNOWN_MASK, RecordedResource, Recording, run_recorded
from infra.config import config_warnings, load_config, secret_env_names_missing, secret_placeholder_names
from infra.config_keys import NAMESPACE, is_secure_value
from infra.errors import ConfigError
from infra.stack_secrets import set_secret_command
from phasekit.project import find_project_dir, project_name, stack_file_of, stack_names
from phasekit.stack_file import read_stack_file

__all__ = ["Plan", "find_project_dir", "project_name", "run_plan", "stack_names"]

if TYPE_CHECKING:
    from infra.config import StackConfig
    from phasekit.cost import CostEstimate
    from phasekit.guardrails import Violation

SECRET_PLACEHOLDER = "offline-plan-placeholder"


@dataclass(frozen=True)
class Plan:
    stack: str
    project: str
    phase: int
    recording: Recording
    secrets_to_set: list[str]
    warnings: list[str] = field(default_factory=list)
    """``config_warnings`` of the stack file: valid, but probably not what was meant."""

    default_tags: dict[str, str] = field(default_factory=dict)
    """The tags every taggable resource carries: the stack's ``tags`` under phasekit's own (project, stack,
    phase, managed-by), as ``infra`` merges them. The text plan shows them once, in its summary."""

    config: StackConfig | None = None
    """The stack's validated config: what the tools read where the recording cannot show it (the processes and
    schedules phases 1 and 2 carry inside the rollout bundle). None only for hand-built plans."""


def runtime_form(raw: Mapping[str, Any], missing_secret_names: list[str]) -> tuple[dict[str, str], list[str]]:
    """Stack-file config as the engine would hand it over: strings, JSON objects, secrets flagged."""
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        replaced, had_secret = _replace_secure(value)
        if key == f"{NAMESPACE}:secrets":
            # Encrypted as a whole, the mapping is one placeholder string: stand in for its entries instead.
            entries = replaced if isinstance(replaced, dict) else {}
            replaced = {**entries, **{name: SECRET_PLACEHOLDER for name in missing_secret_names}}
        config[key] = replaced if isinstance(replaced, str) else json.dumps(replaced)
        if had_secret:
            secret_keys.append(key)
    if missing_secret_names and f"{NAMESPACE}:secrets" not in raw:
        config[f"{NAMESPACE}:secrets"] = json.dumps({name: SECRET_PLACEHOLDER for name in missing_secret_names})
    if missing_secret_names:
        secret_keys.append(f"{NAMESPACE}:secrets")
    return config, sorted(set(secret_keys))


def _replace_secure(value: Any) -> tuple[Any, bool]:
    if is_secure_value(value):
        return SECRET_PLACEHOLDER, True
    if isinstance(value, dict):
        pairs = {key: _replace_secure(item) for key, item in value.items()}
        return {key: pair[0] for key, pair in pairs.items()}, any(pair[1] for pair in pairs.values())
    if isinstance(value, list):
        items = [_replace_secure(item) for item in value]
        return [item[0] for item in items], any(item[1] for item in items)
    return value, False


def run_plan(stack: str, project_dir: Path, stack_file: Path | None = None, option: str = "--stack",
             today: date | None = None) -> Plan:
    """Validate the stack's config and run the program offline. Raises ConfigError on bad config.

    ``stack_file`` defaults to ``Pulumi.<stack>.yaml`` in ``project_dir``; pass another file to plan a
    different version of the same stack (e.g. the pull request's base, for change risk). ``option`` is the
    command-line option that named the stack, for the error message. ``today`` (default: today, UTC, the day
    the cost estimate prices) dates the EKS support warning against the price catalog's support calendar.
    """
    from infra.program import build_stack
    from infra.runtime_config import runtime_raw_config
    from phasekit.cost import eks_standard_support_ends
    from phasekit.guardrails import process_warnings

    project = project_name(project_dir)
    if stack_file is None:
        stack_file = stack_file_of(stack, project_dir, option)
    elif not stack_file.is_file():
        raise ConfigError(f"{stack_file}: no such stack file")
    raw = read_stack_file(stack_file)
    config = load_config(raw)
    missing = secret_env_names_missing(raw, config)
    runtime_config, secret_keys = runtime_form(raw, secret_placeholder_names(raw, config))

    recording = run_recorded(
        lambda: build_stack(runtime_raw_config(), project, stack),
        preview=True, project=project, stack=stack, config=runtime_config, secret_keys=secret_keys,
    )
    return Plan(stack=stack, project=project, phase=config.phase, recording=recording,
                secrets_to_set=[set_secret_command(name) for name in missing],
                warnings=[*config_warnings(raw, config, today=today or datetime.now(UTC).date(),
                                           standard_support_ends=eks_standard_support_ends()),
                          *process_warnings(config)],
                default_tags={**config.tags, **default_tags(project, stack, config.phase)}, config=config)


# --- Rendering ------------------------------------------------------------------------------------


def masked_inputs(resource: RecordedResource) -> dict[str, Any]:
    return {key: SECRET_MASK if key in resource.secret_inputs else _mask_unknown(value)
            for key, value in sorted(resource.inputs.items())}


def _mask_unknown(value: Any) -> Any:
    """Unknowns become ``UNKNOWN_MASK``; whole floats become ints (the wire format has only floats)."""
    if isinstance(value, dict):
        return {key: _mask_unknown(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_unknown(item) for item in value]
    if type(value).__name__ == "Unknown":
        return UNKNOWN_MASK
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def masked_outputs(recording: Recording) -> dict[str, Any]:
    return {name: SECRET_MASK if name in recording.secret_outputs else value
            for name, value in sorted(recording.outputs.items())}


def _provider_urn(resource: RecordedResource) -> str | None:
    """The provider reference the engine records is ``<provider urn>::<provider id>``; the URN is the address."""
    return resource.provider.rsplit("::", 1)[0] if resource.provider else None


def plan_json(plan: Plan, cost: CostEstimate | None = None,
              violations: list[Violation] | None = None) -> dict[str, Any]:
    """The plan as JSON: ``stack``, ``project``, ``phase``, ``summary`` (see ``plan_text.summary_json``),
    ``resources``, ``outputs``, ``secretsToSet``, ``warnings``, and with them ``cost`` and ``guardrails``.

    Each resource carries its relations the way ``terraform show -json`` records them in its
    ``configuration`` representation (https://developer.hashicorp.com/terraform/internals/json-format),
    with URNs for addresses, so outside tools (policy scanners, diagram tools) can follow them::

        "dependsOn": ["urn:...::vps-droplet", ...],          # every resource it waits for, sorted
        "expressions": {                                       # per input fed by other resources:
            "dropletIds": {"references": ["urn:...::vps-droplet"]}   # the engine's propertyDependencies
        }

    ``dependsOn`` is the engine's plain dependency list (explicit ``depends_on`` plus every input's
    sources); ``expressions`` only names inputs with at least one source (an input absent there is a
    literal, or came from config). ``provider`` is the URN of the explicit provider a resource uses (the
    phase-3 ``aws`` and cluster ``kubernetes`` providers), like terraform's ``provider_config_key``; null
    for the default provider of its package.
    """
    from phasekit.cost import cost_json
    from phasekit.guardrails import guardrails_json
    from phasekit.plan_text import summary_json

    extra: dict[str, Any] = {}
    if cost is not None:
        extra["cost"] = cost_json(cost)
    if violations is not None:
        extra["guardrails"] = guardrails_json(violations)
    return {
        "stack": plan.stack,
        "project": plan.project,
        "phase": plan.phase,
        "summary": summary_json(plan, cost, violations),
        "resources": [
            {"urn": resource.urn, "type": resource.type, "name": resource.name, "parent": resource.parent,
             "inputs": masked_inputs(resource), "protect": resource.protect,
             "retainOnDelete": resource.retain_on_delete, "ignoreChanges": list(resource.ignore_changes),
             "dependsOn": sorted(set(resource.dependencies)), "expressions": _references(resource),
             "provider": _provider_urn(resource)}
            for resource in plan.recording.resources
        ],
        "outputs": masked_outputs(plan.recording),
        "secretsToSet": plan.secrets_to_set,
        "warnings": plan.warnings,
        **extra,
    }


def _references(resource: RecordedResource) -> dict[str, dict[str, list[str]]]:
    sources = resource.property_dependencies or {}
    return {key: {"references": sorted(set(urns))} for key, urns in sorted(sources.items()) if urns}
