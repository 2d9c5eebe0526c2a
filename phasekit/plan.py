"""Offline plan: run the real program under Pulumi's mock monitor, in preview mode, from a stack file.

No Pulumi CLI, credentials or network: ``secure:`` values in the stack file are replaced by placeholders
(and stay masked), computed values are unknown exactly as on a fresh stack's ``pulumi preview``, and
Cloudflare's IP ranges come from the harness' snapshot instead of Cloudflare's API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components.testing import SECRET_MASK, UNKNOWN_MASK, RecordedResource, Recording, run_recorded
from infra.config import config_warnings, load_config, secret_env_names_missing
from infra.config_keys import NAMESPACE, is_secure_value
from infra.errors import ConfigError
from infra.stack_secrets import set_secret_command
from phasekit.stack_file import read_stack_file

if TYPE_CHECKING:
    from phasekit.cost import CostEstimate
    from phasekit.guardrails import Violation

SECRET_PLACEHOLDER = "offline-plan-placeholder"
LONG_VALUE = 72


@dataclass(frozen=True)
class Plan:
    stack: str
    project: str
    phase: int
    recording: Recording
    secrets_to_set: list[str]
    warnings: list[str] = field(default_factory=list)
    """``config_warnings`` of the stack file: valid, but probably not what was meant."""


def find_project_dir(start: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise ConfigError(f"no Pulumi.yaml in {start} or any parent directory")


def project_name(project_dir: Path) -> str:
    try:
        document = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"Pulumi.yaml: not valid YAML: {error}") from None
    name = document.get("name") if isinstance(document, dict) else None
    if not isinstance(name, str) or not name:
        raise ConfigError("Pulumi.yaml: name: missing; allowed: the project name, e.g. phasekit")
    return name


def runtime_form(raw: Mapping[str, Any], missing_secret_names: list[str]) -> tuple[dict[str, str], list[str]]:
    """Stack-file config as the engine would hand it over: strings, JSON objects, secrets flagged."""
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        replaced, had_secret = _replace_secure(value)
        if key == f"{NAMESPACE}:secrets":
            replaced = {**replaced, **{name: SECRET_PLACEHOLDER for name in missing_secret_names}}
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


def stack_names(project_dir: Path) -> list[str]:
    return sorted(path.name[len("Pulumi."):-len(".yaml")] for path in project_dir.glob("Pulumi.*.yaml"))


def run_plan(stack: str, project_dir: Path, stack_file: Path | None = None, option: str = "--stack") -> Plan:
    """Validate the stack's config and run the program offline. Raises ConfigError on bad config.

    ``stack_file`` defaults to ``Pulumi.<stack>.yaml`` in ``project_dir``; pass another file to plan a
    different version of the same stack (e.g. the pull request's base, for change risk). ``option`` is the
    command-line option that named the stack, for the error message.
    """
    from infra.program import build_stack
    from infra.runtime_config import runtime_raw_config

    project = project_name(project_dir)
    if stack_file is None:
        stack_file = project_dir / f"Pulumi.{stack}.yaml"
        if not stack_file.is_file():
            raise ConfigError(f"{option}: no stack file {stack_file.name}; "
                              f"allowed: {', '.join(stack_names(project_dir)) or 'none found'}")
    elif not stack_file.is_file():
        raise ConfigError(f"{stack_file}: no such stack file")
    raw = read_stack_file(stack_file)
    config = load_config(raw)
    missing = secret_env_names_missing(raw, config)
    runtime_config, secret_keys = runtime_form(raw, missing)

    recording = run_recorded(
        lambda: build_stack(runtime_raw_config(), project, stack),
        preview=True, project=project, stack=stack, config=runtime_config, secret_keys=secret_keys,
    )
    return Plan(stack=stack, project=project, phase=config.phase, recording=recording,
                secrets_to_set=[set_secret_command(name) for name in missing], warnings=config_warnings(raw, config))


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


def plan_json(plan: Plan, cost: CostEstimate | None = None,
              violations: list[Violation] | None = None) -> dict[str, Any]:
    from phasekit.cost import cost_json
    from phasekit.guardrails import guardrails_json

    extra: dict[str, Any] = {}
    if cost is not None:
        extra["cost"] = cost_json(cost)
    if violations is not None:
        extra["guardrails"] = guardrails_json(violations)
    return {
        "stack": plan.stack,
        "project": plan.project,
        "phase": plan.phase,
        "resources": [
            {"urn": resource.urn, "type": resource.type, "name": resource.name, "parent": resource.parent,
             "inputs": masked_inputs(resource), "protect": resource.protect,
             "retainOnDelete": resource.retain_on_delete, "ignoreChanges": list(resource.ignore_changes)}
            for resource in plan.recording.resources
        ],
        "outputs": masked_outputs(plan.recording),
        "secretsToSet": plan.secrets_to_set,
        **extra,
    }


def plan_text(plan: Plan, cost: CostEstimate | None = None, violations: list[Violation] | None = None) -> str:
    resources = plan.recording.resources
    lines = [
        f"phasekit plan: stack {plan.stack} (phase {plan.phase}) of project {plan.project}",
        "offline preview under Pulumi's mock monitor: no credentials used, computed values unknown",
        "",
        f"Resources: {len(resources)} to create",
        f"pulumi:pulumi:Stack  {plan.project}-{plan.stack}",
    ]
    lines += _tree_lines(plan.recording, parent=None, prefix="")
    lines += ["", "Outputs:"]
    lines += [f"  {name}: {_short(value)}" for name, value in masked_outputs(plan.recording).items()]
    if cost is not None:
        from phasekit.cost import cost_lines

        lines += ["", *cost_lines(cost)]
    if violations is not None:
        from phasekit.guardrails import guardrail_lines

        lines += ["", *guardrail_lines(violations)]
    if plan.secrets_to_set:
        lines += ["", "Secrets to set before `pulumi up` (placeholders were used offline):"]
        lines += [f"  {command}" for command in plan.secrets_to_set]
    return "\n".join(lines) + "\n"


def _tree_lines(recording: Recording, parent: str | None, prefix: str) -> list[str]:
    children = [resource for resource in recording.resources if resource.parent == parent]
    children.sort(key=lambda resource: (resource.custom, resource.type, resource.name))
    lines: list[str] = []
    for index, resource in enumerate(children):
        last = index == len(children) - 1
        flags = []
        if resource.protect:
            flags.append("protected")
        if resource.retain_on_delete:
            flags.append("retained on delete")
        if resource.ignore_changes:
            flags.append("ignores changes to " + ", ".join(resource.ignore_changes))
        flag_text = f"  [{'; '.join(flags)}]" if flags else ""
        lines.append(f"{prefix}{'└─ ' if last else '├─ '}{resource.type}  {resource.name}{flag_text}")
        detail_prefix = prefix + ("   " if last else "│  ")
        if resource.custom:
            for key, value in masked_inputs(resource).items():
                if key in ("inboundRules", "outboundRules") and isinstance(value, list):
                    lines.append(f"{detail_prefix}    {key}:")
                    lines += [f"{detail_prefix}      {_firewall_rule(rule)}" for rule in value]
                else:
                    lines.append(f"{detail_prefix}    {key}: {_short(value)}")
        lines += _tree_lines(recording, resource.urn, detail_prefix)
    return lines


def _firewall_rule(rule: dict[str, Any]) -> str:
    addresses = rule.get("sourceAddresses") or rule.get("destinationAddresses") or []
    direction = "from" if "sourceAddresses" in rule else "to"
    shown = ", ".join(addresses[:4]) + (f" … ({len(addresses)} ranges)" if len(addresses) > 4 else "")
    return f"{rule.get('protocol')} {rule.get('portRange', 'all')} {direction} {shown}"


def _short(value: Any) -> str:
    if isinstance(value, str):
        if "\n" in value or len(value) > LONG_VALUE:
            first_line = value.splitlines()[0] if value else ""
            return f"<{first_line[:40]}… {len(value.encode())} bytes>"
        return value
    text = json.dumps(value, separators=(", ", ": "))
    if len(text) > LONG_VALUE * 2:
        return text[: LONG_VALUE * 2] + f"… ({len(text)} chars)"
    return text
