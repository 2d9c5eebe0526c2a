"""The guardrail policies of ``policy/`` run offline on a plan: the "Guardrails" section of ``phasekit plan``.

The same rules (``policy.rules``) run as a CrossGuard policy pack under ``pulumi preview --policy-pack
policy``; here they read the mock preview's recording instead of what the engine sends. What differs:
the recording holds what the program asked for, while the engine hands the pack the inputs after each
provider's ``Check`` (which may add defaults). Unknown values pass, as they do in the pack.

A mandatory violation makes ``phasekit plan`` exit 3. Messages quote only ports, address ranges,
numbers, container names and labels, never a secret input (no rule reads passwords or tokens).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from pulumi.output import Unknown
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.processes import parse_cron
from components.testing import RecordedResource, Recording
from components.tuning import Machine, postgres_shared_buffers_mib, redis_maxmemory_mib
from infra.config import StackConfig
from infra.config_droplets import Phase1Stack, Phase2Stack
from infra.errors import ConfigError
from policy import rules

Level = Literal["mandatory", "advisory", "remediate", "disabled"]
"""CrossGuard's enforcement levels; ``remediate`` counts as mandatory (phasekit's rules only validate)."""

HEADER = "Guardrails (policy/)"


@dataclass(frozen=True)
class Violation:
    policy: str
    urn: str
    resource: str
    """The resource's logical name."""

    message: str
    mandatory: bool
    config_key: str | None = None
    """The stack-file key that set the failing value (``phasekit:vps.backups``), when one did."""


@dataclass(frozen=True)
class ConfigSource:
    """A resource property a stack-file key sets: when ``policy`` fails on ``prop`` of a ``resource_type``
    inside ``component`` (any component when None), the line names ``key`` so the user knows what to edit."""

    policy: str
    resource_type: str | None
    """None: any resource type (``protect`` is a resource option every stateful resource takes)."""

    prop: str
    key: str
    component: str | None = None


CONFIG_SOURCES: tuple[ConfigSource, ...] = (
    ConfigSource("backups-kept", rules.DO_DROPLET, "backups", "phasekit:vps.backups", "phasekit:index:SingleVps"),
    ConfigSource("backups-kept", rules.DO_DROPLET, "backups", "phasekit:droplets.backups", rules.SPLIT_VPS),
    ConfigSource("backups-kept", rules.RDS_INSTANCE, "backupRetentionPeriod", "phasekit:database.backupRetentionDays"),
    ConfigSource("backups-kept", rules.ELASTICACHE_GROUP, "snapshotRetentionLimit",
                 "phasekit:cache.snapshotRetentionDays"),
    ConfigSource("stateful-resources-protected", None, "protect", "phasekit:protect"),
    *(ConfigSource("hpa-min-replicas", hpa, "minReplicas", "phasekit:workload.minReplicas")
      for hpa in sorted(rules.K8S_HPAS)),
)
"""Which config key sets a value a mandatory rule judges. The rules' messages name the property they judge
(``backups is not true``), which is how a violation is matched to its row."""


def config_key_of(policy: str, view: rules.ResourceView, message: str) -> str | None:
    """The stack-file key behind one violation, from ``CONFIG_SOURCES``; None when no key sets it."""
    components = view.urn.split("::")[2].split("$")[:-1] if view.urn.count("::") >= 3 else []
    words = set(re.findall(r"[A-Za-z]+", message))
    for source in CONFIG_SOURCES:
        if (source.policy == policy and source.resource_type in (None, view.type) and source.prop in words
                and (source.component is None or source.component in components)):
            return source.key
    return None


def resource_view(resource: RecordedResource) -> rules.ResourceView:
    return rules.ResourceView(type=resource.type, name=resource.name, urn=resource.urn,
                              props=_neutral(resource.inputs), protect=resource.protect, parent=resource.parent)


def _neutral(value: Any) -> Any:
    if isinstance(value, Unknown):
        return rules.UNKNOWN
    if isinstance(value, Mapping):
        return {key: _neutral(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_neutral(item) for item in value]
    return value


def evaluate(recording: Recording, levels: Mapping[str, Level] | None = None) -> list[Violation]:
    """Every rule's violations, rule by rule in ``rules.RULES`` order, then by resource name.

    ``levels`` overrides rules' enforcement as a ``--policy-pack-config`` file does for the pack (see
    ``load_policy_pack_config``): a ``disabled`` rule is skipped, ``advisory`` ones never fail the plan.
    """
    views = [resource_view(resource) for resource in recording.resources]
    levels = levels or {}
    found: list[Violation] = []
    for rule in rules.RULES:
        level = levels.get(rule.name, levels.get("all", rule.enforcement))
        if level == "disabled":
            continue
        mandatory = level in ("mandatory", "remediate")
        if isinstance(rule, rules.StackRule):
            pairs = rule.violations(views)
        else:
            pairs = [(view, message) for view in views for message in rule.violations(view)]
        # By name: the mock monitor's registration order varies from run to run.
        found += [Violation(policy=rule.name, urn=view.urn, resource=view.name, message=message, mandatory=mandatory,
                            config_key=config_key_of(rule.name, view, message))
                  for view, message in sorted(pairs, key=lambda pair: pair[0].name)]
    return found


def guardrail_lines(violations: Sequence[Violation]) -> list[str]:
    count = len(rules.RULES)
    if not violations:
        return [f"{HEADER}: {count} policies, all pass"]
    mandatory = sum(violation.mandatory for violation in violations)
    failing = len({violation.policy for violation in violations})
    verdict = f"{mandatory} mandatory (plan exits 3)" if mandatory else "advisory only"
    lines = [f"{HEADER}: {count} policies, {failing} with violations, {len(violations)} "
             f"violation{'s' if len(violations) != 1 else ''}: {verdict}"]
    lines += [f"  [{'mandatory' if violation.mandatory else 'advisory'}] {violation.policy}: {violation.resource}: "
              f"{violation.message}{_set_by(violation)}" for violation in violations]
    return lines


def _set_by(violation: Violation) -> str:
    # A message that already names its key ("phasekit:protect: true sets it") is not told it twice.
    if violation.config_key is None or violation.config_key in violation.message:
        return ""
    return f" (set by {violation.config_key})"


def guardrails_json(violations: Sequence[Violation]) -> dict[str, Any]:
    return {
        "policies": [rule.name for rule in rules.RULES],
        "pass": not any(violation.mandatory for violation in violations),
        "violations": [
            {"policy": violation.policy, "urn": violation.urn, "resource": violation.resource,
             "message": violation.message, "enforcement": "mandatory" if violation.mandatory else "advisory",
             **({"configKey": violation.config_key} if violation.config_key is not None else {})}
            for violation in violations
        ],
    }


# --- Processes and schedules (from the config) --------------------------------------------------------------
# These read the validated config, not the recording: the droplets' Compose services and timers are text inside
# cloud-init, and what matters (memory limits, cron ticks) is in the config already. They are warnings, never a
# failed plan: both describe a stack that deploys and runs, only worse than its author probably expects.


HOST_RESERVE_MIB = 512
"""Kept back on every droplet for the OS, dockerd, Caddy and the web workers, at the least: the web container has no
memory limit, so nothing else guarantees it room."""


def droplet_memory_to_spare(config: Phase1Stack | Phase2Stack) -> tuple[int, int, str]:
    """The MiB of the droplet that runs the processes and the schedules (phase 1's droplet, phase 2's app-0),
    what it can spare for them, and how that was worked out.

    Phase 1's droplet also runs PostgreSQL, whose ``shared_buffers`` is a quarter of the RAM
    (``components.tuning.postgres_settings``) and Redis, whose ``maxmemory`` is an eighth
    (``redis_maxmemory_mib``); both are sized at boot and never give that memory back. Phase 2's app droplets run
    neither (they are on the database droplet)."""
    reserve = f"{HOST_RESERVE_MIB} MiB kept for the OS, Docker, Caddy and the web workers"
    if isinstance(config, Phase1Stack):
        memory = config.vps.memory_mib
        machine = Machine(vcpus=config.vps.vcpus, memory_mib=memory)
        postgres, redis = postgres_shared_buffers_mib(machine), redis_maxmemory_mib(machine)
        return memory, memory - postgres - redis - HOST_RESERVE_MIB, (
            f"{memory} MiB less PostgreSQL's shared_buffers {postgres} MiB, Redis' maxmemory {redis} MiB and {reserve}")
    memory = config.app_tier.memory_mib
    return memory, memory - HOST_RESERVE_MIB, (f"{memory} MiB less {reserve}; PostgreSQL and Redis are on the "
                                               "database droplet")


def _process_memory_warning(config: Phase1Stack | Phase2Stack) -> str | None:
    """A container past its ``mem_limit`` is killed by the kernel's OOM killer
    (https://docs.docker.com/engine/containers/resource_constraints/#memory); the web container has no limit, so
    the processes' limits and the largest schedule's are what the other containers can be sure to get."""
    app = config.app
    if not app.processes and not app.schedules:
        return None
    specs = app.process_specs()
    processes = sum(spec.count * spec.memory_mib for spec in specs)
    largest = max(app.schedule_specs(), key=lambda spec: spec.memory_mib, default=None)
    demand = processes + (largest.memory_mib if largest else 0)
    _, spare, beside = droplet_memory_to_spare(config)
    if demand <= spare:
        return None
    parts = [f"{spec.count} x {spec.memory_mib} MiB {spec.name}" for spec in specs]
    parts += [f"{largest.memory_mib} MiB {largest.name} (the largest schedule)"] if largest else []
    droplet = "the droplet" if isinstance(config, Phase1Stack) else "app-0 (it runs the schedules)"
    return (f"phasekit:app.processes/schedules: the memory limits of the processes and the largest schedule "
            f"({' + '.join(parts)} = {demand} MiB) exceed the {spare} MiB {droplet} can spare ({beside}): the "
            "kernel's OOM killer would stop a container. "
            "Lower count or memory, or choose a larger droplet size")


MINUTES_PER_DAY = 24 * 60
CALENDAR_CYCLE_DAYS = (date(2029, 1, 1) - date(2001, 1, 1)).days
"""28 years: the weekdays of the dates repeat (leap years included) between 1901 and 2099, so the gaps between a
cron's matching days across two such cycles (including the step from one to the next) are all the gaps it has in
that century."""


def shortest_interval_seconds(cron: str) -> int:
    """Seconds between the two closest ticks of a five-field cron (``components.processes.parse_cron``; only one
    of day-of-month and day-of-week is ever restricted, which it enforces)."""
    fields = parse_cron(cron)
    times = sorted(hour * 60 + minute for hour in fields.hours for minute in fields.minutes)
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    start = date(2001, 1, 1)
    days = [offset for offset in range(2 * CALENDAR_CYCLE_DAYS + 1)
            if fields.runs_on(start + timedelta(days=offset))]
    gaps += [(later - earlier) * MINUTES_PER_DAY - times[-1] + times[0]
             for earlier, later in zip(days, days[1:], strict=False)]
    return min(gaps) * 60


def _schedule_timeout_warnings(config: StackConfig) -> list[str]:
    """A run never overlaps the previous one: on the droplets ``schedule.sh`` takes a ``flock`` and a tick that
    finds it held is skipped; in phase 3 a CronJob with ``concurrencyPolicy: Forbid`` "skips the new job run"
    while the previous one is running (https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/
    #concurrency-policy)."""
    warnings = []
    for name, schedule in config.app.schedules.items():
        interval = shortest_interval_seconds(schedule.cron)
        if schedule.timeout_seconds > interval:
            where = "its systemd service holds a lock" if config.phase in (1, 2) else "its CronJob forbids overlap"
            warnings.append(
                f"phasekit:app.schedules.{name}.timeoutSeconds: {schedule.timeout_seconds} is longer than the "
                f"{interval} seconds between the closest ticks of {schedule.cron!r}: a run never overlaps the "
                f"previous one ({where}), so a run that takes that long skips the ticks in between. Set "
                f"timeoutSeconds to {interval} or less, or run it less often")
    return warnings


def process_warnings(config: StackConfig) -> list[str]:
    """Warnings about the stack's processes and schedules: in phases 1 and 2 more memory than the droplet that
    runs them can spare, in every phase a schedule that may run longer than the time between its ticks."""
    warnings = []
    if isinstance(config, Phase1Stack | Phase2Stack):
        memory = _process_memory_warning(config)
        warnings += [memory] if memory else []
    return warnings + _schedule_timeout_warnings(config)


# --- Policy pack config ------------------------------------------------------------------------------

LEVELS: tuple[Level, ...] = ("mandatory", "advisory", "remediate", "disabled")


class _PolicySettings(BaseModel):
    """One policy's entry in object form; phasekit's policies take no settings besides the level."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enforcement_level: Level | None = Field(default=None, alias="enforcementLevel")


def load_policy_pack_config(path: Path) -> dict[str, Level]:
    """Enforcement levels from a file in the format of ``pulumi preview --policy-pack-config``:
    ``{"<policy name>" | "all": "<level>" | {"enforcementLevel": "<level>"}}``.

    Raises ConfigError naming the file and key when the file is unreadable, names an unknown policy, or
    holds something other than one of CrossGuard's levels.
    """
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error.msg} (line {error.lineno})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected an object keyed by policy name")
    known = sorted({rule.name for rule in rules.RULES} | {"all"})
    allowed_levels = ", ".join(LEVELS)
    levels: dict[str, Level] = {}
    for key, value in document.items():
        if key not in known:
            raise ConfigError(f"{path}: {key}: no such policy; allowed: {', '.join(known)}")
        where = key
        if isinstance(value, dict):
            where = f"{key}.enforcementLevel"
            try:
                value = _PolicySettings.model_validate(value).enforcement_level
            except ValidationError as error:
                problem = error.errors()[0]
                if problem["type"] == "extra_forbidden":
                    raise ConfigError(f"{path}: {key}.{problem['loc'][0]}: not a setting of this policy; "
                                      "allowed: enforcementLevel") from None
                value = problem["input"]
            if value is None:
                continue
        if value not in LEVELS:
            raise ConfigError(f"{path}: {where}: {value!r} is not an enforcement level; allowed: {allowed_levels}")
        levels[key] = value
    return levels
