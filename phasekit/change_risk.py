"""Change risk: what a new version of a stack file would do to the resources the old version describes.

``assess(base, head)`` compares two offline plans of the same stack (``phasekit.plan.run_plan`` on each version
of the stack file), matches custom resources by URN and classifies each one: create, update in place,
replace, delete or unchanged. A change is a replace when

- a changed input (or a nested path under it) is in the provider's replace-on-change list for the type, or
  a conditional rule matches (e.g. a droplet's ``ipv6`` turned off, ElastiCache going from Valkey to Redis);
- the resource's explicit provider is replaced (e.g. a new ``region`` on ``pulumi:providers:aws``), or its
  provider reference moves to a provider whose config differs in a replacing property;
- an input it takes from a replaced or new resource is replace-on-change (see below).

The rules live in ``phasekit/replacement_rules.yaml``, each with the provider source it was read from. Replacing
or deleting a stateful resource (DigitalOcean volumes, the phase-2 database droplet, RDS, ElastiCache, PVCs,
the R2 bucket) is data-destroying; ``phasekit risk`` exits 4 on one unless ``--allow-data-loss`` is given.

What an offline comparison cannot see: both plans are previews of a fresh stack, so computed values (ids,
addresses, generated passwords, and the rollout bundles built from them) are unknown on both sides and
compare equal. When a dependency is replaced, new or swapped, the computed inputs it feeds are marked "may
change", and the resource is replaced if one of them is replace-on-change. Which input a dependency feeds
comes from the recording's ``property_dependencies`` when the harness records them; without them every
computed input counts, which over-reports. A new image in phases 1 and 2 travels in the rollout bundle,
which carries generated passwords and so is unknown offline: such a change shows only as the droplets'
ignored ``userData``. Only ``pulumi preview`` against the stack's state is final.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from components.testing import SECRET_MASK, UNKNOWN_MASK, RecordedResource, Recording
from infra.config import StackConfig
from infra.config_keys import pulumi_path
from infra.errors import ConfigError
from phasekit.compare import command_lines
from phasekit.guardrails import resource_view
from phasekit.plan_text import WIDTH, wrap
from phasekit.stack_file import read_yaml
from policy import rules as policy_rules

RULES_FILE = Path(__file__).with_name("replacement_rules.yaml")

ALLOW_FLAG = "--allow-data-loss"
ALLOW_LABEL = "allow-data-loss"
"""The pull-request label the workflows turn into ``--allow-data-loss``."""

ENGINE_PROVIDER_SOURCE = ("https://github.com/pulumi/pulumi/blob/1b5949891b3cefcb9974752b24a5ecef0acc86c8/"
                          "pkg/resource/deploy/step_generator.go#L2798-L2882")
"""The engine's ``providerChanged``: a changed provider reference replaces the resource when the new
provider's DiffConfig reports a replacement."""

PROGRAM_PROTECTED_HOLDS = "data (the program protects it and retains it on delete)"

ChangeKind = Literal["create", "update", "replace", "delete", "unchanged"]
KIND_ORDER: tuple[ChangeKind, ...] = ("replace", "delete", "create", "update", "unchanged")
SHORT_VALUE = 60

# --- The rules file ------------------------------------------------------------------------------------

TypeToken = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+:[A-Za-z0-9/._-]+:[A-Za-z0-9]+$")]
PropertyPath = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$")]
HttpsUrl = Annotated[str, Field(pattern=r"^https://\S+$")]
Text = Annotated[str, Field(min_length=1)]
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr


class _RulesModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ConditionalReplace(_RulesModel):
    """A property that replaces only on one kind of change: from one value to another, or when removed."""

    property: PropertyPath
    from_value: Scalar | None = Field(default=None, alias="from")
    to_value: Scalar | None = Field(default=None, alias="to")
    removed: bool = False

    @model_validator(mode="after")
    def _one_condition(self) -> ConditionalReplace:
        has_values = self.from_value is not None or self.to_value is not None
        if self.removed == has_values:
            raise ValueError("give either from/to or removed: true")
        return self

    def matches(self, old: Any, new: Any) -> bool:
        if self.removed:
            return not _absent(old) and _absent(new)
        if _same(old, new):
            return False
        return ((self.from_value is None or _same(old, self.from_value))
                and (self.to_value is None or _same(new, self.to_value)))

    def describe(self, old: Any, new: Any, secret: bool = False) -> str:
        if self.removed:
            return f"{self.property} is removed"
        return f"{self.property} changes from {_shown(old, secret)} to {_shown(new, secret)}"


class InPlaceEffect(_RulesModel):
    """What an in-place update of one property does to the running resource (e.g. a droplet resize powers it
    off), and how to soften it: printed under every update that changes the property."""

    property: PropertyPath
    effect: Text
    commands: tuple[Text, ...] = ()
    """Commands the effect's text refers to (printed on lines of their own, so wrapping never cuts one)."""

    source: HttpsUrl


class ReplacementRule(_RulesModel):
    type: TypeToken
    properties: tuple[PropertyPath, ...]
    """Properties whose every change replaces the resource."""

    conditional: tuple[ConditionalReplace, ...] = ()
    source: HttpsUrl
    """Where the rule was read: the provider's schema or code, or the maintainers' statement."""

    quote: Text
    notes: Text | None = None
    in_place: tuple[InPlaceEffect, ...] = ()
    """Effects of properties updated in place that a reader must know before applying them."""


class ReplacementRules(_RulesModel):
    rules: tuple[ReplacementRule, ...]

    @model_validator(mode="after")
    def _each_type_once(self) -> ReplacementRules:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.type in seen:
                raise ValueError(f"rules: {rule.type} is listed twice; allowed: one entry per type")
            seen.add(rule.type)
        return self

    def rule_for(self, type_token: str) -> ReplacementRule | None:
        return next((rule for rule in self.rules if rule.type == type_token), None)


def data_held(resource: RecordedResource) -> str | None:
    """What data the resource holds, or None for a stateless one: policy/rules.py's definition, shared with
    the stateful-resources-protected guardrail."""
    held = policy_rules.data_held(resource_view(resource))
    # components/stateful.py gives exactly the stateful children both options; trusting that too flags a
    # new stateful child before anyone lists its type in policy/rules.py.
    if held is None and resource.protect and resource.retain_on_delete:
        return PROGRAM_PROTECTED_HOLDS
    return held


def load_rules(path: Path = RULES_FILE) -> ReplacementRules:
    """Read and validate the rules file; a bad one raises ``ConfigError`` with one line naming the entry."""
    document = read_yaml(path, "the replacement rules", path.name)
    try:
        return ReplacementRules.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_describe_rules_error(path, document, error)) from None


def _describe_rules_error(path: Path, document: Any, error: ValidationError) -> str:
    details = error.errors()
    first = details[0]
    location = list(first["loc"])
    where = ""
    if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
        section, index = location[0], location[1]
        entry = document[section][index] if isinstance(document, dict) else None
        entry_type = entry.get("type") if isinstance(entry, dict) else None
        where = f"{section}[{index}]" + (f" ({entry_type})" if entry_type else "") + ": "
        location = location[2:]
    elif location:
        where = ".".join(str(part) for part in location) + ": "
        location = []
    inner = ".".join(str(part) for part in location)
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{path.name}: {where}{inner + ': ' if inner else ''}{message}{more}"


# --- The report ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyChange:
    path: str
    """Pulumi property path, e.g. ``spec.template.spec.containers[0].image``."""

    old: str
    new: str
    """Shown values: secrets as ``[secret]``, computed ones as ``(known after apply)``."""

    forces_replacement: str | None = None
    """The rule property this change matched, when it forces a replacement."""

    may_change_from: tuple[str, ...] = ()
    """For a computed input: the replaced or new resources it may take a new value from."""


@dataclass(frozen=True)
class ReplaceReason:
    because: str
    rule: str
    source: str


@dataclass(frozen=True)
class ResourceChange:
    urn: str
    name: str
    type: str
    kind: ChangeKind
    properties: tuple[PropertyChange, ...] = ()
    replaced_because: tuple[ReplaceReason, ...] = ()
    ignored: tuple[str, ...] = ()
    """Changed inputs the resource's ``ignoreChanges`` keeps from being applied."""

    delete_before_replace: bool = False
    holds: str | None = None
    """What data the resource holds, for a stateful one."""

    protected: bool = False
    retained_on_delete: bool = False
    has_rule: bool = True
    """False when phasekit/replacement_rules.yaml has no entry for the type."""

    reboot_needed: tuple[str, ...] = ()
    """Changed static parameters (apply method ``pending-reboot``) that take effect only at the next reboot."""

    reboot_instances: tuple[str, ...] = ()
    """Identifiers of the RDS instances using the group (those to reboot), when the plan names them."""

    in_place_effects: tuple[InPlaceEffect, ...] = ()
    """The rule's ``in_place`` effects of the properties this update changes."""

    @property
    def data_destroying(self) -> bool:
        return self.holds is not None and self.kind in ("replace", "delete")


@dataclass(frozen=True)
class RiskReport:
    changes: tuple[ResourceChange, ...]
    """Every custom resource of either version, ordered by kind (replace first) and name."""

    app_changes: tuple[str, ...] = ()
    """What changes among the app's processes and schedules, read from the two stack files (``app_changes``):
    in phases 1 and 2 they travel in the rollout bundle, which is unknown offline, so no resource shows them."""

    @property
    def data_destroying(self) -> list[ResourceChange]:
        return [change for change in self.changes if change.data_destroying]

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for change in self.changes if change.kind == kind)

    def of_kind(self, kind: ChangeKind) -> list[ResourceChange]:
        return [change for change in self.changes if change.kind == kind]


# --- Processes and schedules (from the config) ----------------------------------------------------------


def app_changes(base: StackConfig, head: StackConfig) -> tuple[str, ...]:
    """One line per process or schedule added, removed or changed between two versions of a stack's config,
    saying how the phase applies it. Phases 1 and 2: ``deploy.sh`` (the rollout ``command:remote:Command``,
    re-run in place when its bundle changes) recreates Compose services and rewrites systemd timers; no droplet
    is replaced. Phase 3: each process is a Deployment (+ PodDisruptionBudget, + HorizontalPodAutoscaler with
    ``maxCount``), each schedule a CronJob, all updated in place (replacement_rules.yaml)."""
    droplets = head.phase in (1, 2)
    lines: list[str] = []
    for name, before, process, changed in _entry_changes(base.app.processes, head.app.processes):
        if process is None:
            lines.append(f"process {name} removed: " + (
                "the rollout stops its containers on each app droplet (SIGTERM, SIGKILL after "
                f"{before.stop_timeout_seconds} s); no droplet is replaced" if droplets else
                "its Deployment, PodDisruptionBudget and any HorizontalPodAutoscaler are deleted; its pods get "
                f"SIGTERM, then SIGKILL after {before.stop_timeout_seconds} s"))
        elif before is None:
            scaled = (f", a HorizontalPodAutoscaler up to {process.max_count}" if process.max_count is not None
                      else "")
            lines.append(f"process {name} added: " + (
                f"the rollout starts {process.count} container{'s' if process.count != 1 else ''} on each app "
                "droplet after the release command; no droplet is replaced" if droplets else
                f"a Deployment of {process.count} replica{'s' if process.count != 1 else ''}{scaled} and a "
                "PodDisruptionBudget are created after the release Job"))
        else:
            lines.append(f"process {name} changed ({changed}): " + (
                "the rollout updates its containers in place; no droplet is replaced" if droplets else
                "its Deployment is updated in place"))
    lines += _schedule_changes(base, head)
    return tuple(lines)


def _schedule_changes(base: StackConfig, head: StackConfig) -> list[str]:
    droplets = head.phase in (1, 2)
    where = "the droplet" if head.phase == 1 else "app-0"
    lines: list[str] = []
    for name, before, schedule, changed in _entry_changes(base.app.schedules, head.app.schedules):
        if schedule is None:
            lines.append(f"schedule {name} removed: " + (
                f"the rollout removes its systemd timer from {where}, so no further run starts" if droplets else
                "its CronJob is deleted, so no further run starts"))
        elif before is None:
            lines.append(f"schedule {name} added ({schedule.cron!r}, UTC): " + (
                f"the rollout installs its systemd timer on {where} after the release command" if droplets else
                "a CronJob is created after the release Job; its first run is at the next tick"))
        else:
            lines.append(f"schedule {name} changed ({changed}): " + (
                f"the rollout rewrites its timer and service on {where} in place" if droplets else
                "its CronJob is updated in place") + "; runs from the next tick on follow it")
    return lines


T = TypeVar("T", bound=BaseModel)


def _entry_changes(old: Mapping[str, T], new: Mapping[str, T]) -> Iterator[tuple[str, T | None, T | None, str]]:
    """``(name, before, after, fields changed)`` for each entry removed (after None), added (before None) or changed
    between two named mappings of config models, in the base's order, then the new names."""
    for name in [*old, *(name for name in new if name not in old)]:
        if name not in new or name not in old:
            yield name, old.get(name), new.get(name), ""
        elif changed := _fields_changed(old[name], new[name]):
            yield name, old[name], new[name], changed


def _fields_changed(old: BaseModel, new: BaseModel) -> str:
    """``count 2 → 3, cron '*/15 * * * *' → '0 * * * *'``: the changed keys, camelCase as the stack file has them."""
    parts = []
    for name, field_info in type(old).model_fields.items():
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            parts.append(f"{field_info.alias or name} {_config_value(before)} → {_config_value(after)}")
    return ", ".join(parts)


def _config_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def with_app_changes(report: RiskReport, base: StackConfig, head: StackConfig) -> RiskReport:
    """``report`` with the process and schedule changes between the two configs (``app_changes``)."""
    return replace(report, app_changes=app_changes(base, head))


# --- Assessment ----------------------------------------------------------------------------------------


def assess(base: Recording, head: Recording, rules: ReplacementRules | None = None) -> RiskReport:
    """Classify every custom resource of ``base`` and ``head`` (two offline plans of one stack)."""
    rules = rules or load_rules()
    olds = {resource.urn: resource for resource in base.resources if resource.custom}
    news = {resource.urn: resource for resource in head.resources if resource.custom}
    drafts = {urn: _direct_change(olds.get(urn), news.get(urn), rules) for urn in olds.keys() | news.keys()}
    _propagate(drafts, olds, news, rules)
    changes = [draft.freeze(drafts, rules) for draft in drafts.values()]
    changes.sort(key=lambda change: (KIND_ORDER.index(change.kind), change.name, change.urn))
    return RiskReport(changes=tuple(changes))


@dataclass
class _Draft:
    urn: str
    old: RecordedResource | None
    new: RecordedResource | None
    kind: ChangeKind
    properties: list[PropertyChange] = field(default_factory=list)
    reasons: list[ReplaceReason] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    computed: list[_ComputedInput] = field(default_factory=list)
    """Computed inputs that may take a new value from an affecting dependency."""

    affected_by: frozenset[str] = frozenset()
    """The affecting dependencies ``computed`` was worked out for."""

    @property
    def current(self) -> RecordedResource:
        resource = self.new or self.old
        assert resource is not None
        return resource

    def affecting(self, drafts: Mapping[str, _Draft]) -> set[str]:
        """Dependencies whose outputs may differ: replaced or new ones, and ones added or dropped."""
        if self.old is None or self.new is None:
            return set()
        changed = {urn for urn in self.new.dependencies if urn in drafts and drafts[urn].kind in ("replace", "create")}
        return changed | (set(self.old.dependencies) ^ set(self.new.dependencies))

    def freeze(self, drafts: Mapping[str, _Draft], rules: ReplacementRules) -> ResourceChange:
        resource = self.current
        rule = rules.rule_for(resource.type)
        properties = [*self.properties, *(PropertyChange(item.path, item.shown, item.shown, item.forcing,
                                                          item.sources) for item in self.computed)]
        reasons = [*self.reasons,
                   *(ReplaceReason(f"{item.path} is computed and may take a new value from {', '.join(item.sources)}",
                                   item.forcing, rule.source)
                     for item in self.computed if item.forcing is not None and rule is not None)]
        # Protection and retention that matter for a delete or replace are the ones in the stack's state.
        state = self.old or resource
        holds = next((held for held in (data_held(r) for r in (self.old, self.new) if r is not None) if held),
                     None)
        reboot = pending_reboot_parameters(self.old, self.new) if self.kind == "update" else ()
        return ResourceChange(
            urn=self.urn, name=_name(self.urn), type=resource.type, kind=self.kind,
            properties=tuple(properties), replaced_because=tuple(reasons), ignored=tuple(self.ignored),
            delete_before_replace=bool(self.new and self.new.delete_before_replace),
            holds=holds, protected=state.protect, retained_on_delete=state.retain_on_delete,
            has_rule=rule is not None,
            reboot_needed=reboot,
            reboot_instances=_instances_using(self.urn, drafts) if reboot else (),
            in_place_effects=tuple(effect for effect in (rule.in_place if rule is not None else ())
                                   if self.kind == "update" and any(_top(prop.path) == effect.property
                                                                    for prop in self.properties)),
        )


def _top(path: str) -> str:
    """``size`` for ``size`` and for ``size[0]``/``size.x``."""
    return path.split(".")[0].split("[")[0]


def _instances_using(group_urn: str, drafts: Mapping[str, _Draft]) -> tuple[str, ...]:
    """The ``identifier`` of every RDS instance in the new version that depends on the parameter group."""
    return tuple(sorted(
        draft.new.inputs["identifier"] for draft in drafts.values()
        if draft.new is not None and draft.new.type == "aws:rds/instance:Instance"
        and group_urn in draft.new.dependencies and isinstance(draft.new.inputs.get("identifier"), str)))


REBOOT_APPLIED_TYPES = ("aws:rds/parameterGroup:ParameterGroup",)
"""Parameter groups whose parameters carry an ``applyMethod``: ``pending-reboot`` ones (static, such as
``max_connections``) wait for the instance's next reboot, whatever ``apply_immediately`` says
(https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_WorkingWithParamGroups.Modifying.html)."""

REBOOT_COMMAND = "aws rds reboot-db-instance --db-instance-identifier {identifier}"
REBOOT_INDENT = " " * 6


def pending_reboot_parameters(old: RecordedResource | None, new: RecordedResource | None) -> tuple[str, ...]:
    """``name: old → new`` of each changed or added ``pending-reboot`` parameter of an RDS parameter group."""
    if old is None or new is None or new.type not in REBOOT_APPLIED_TYPES:
        return ()

    def by_name(resource: RecordedResource) -> dict[str, Mapping[str, Any]]:
        return {item.get("name"): item for item in resource.inputs.get("parameters") or []
                if isinstance(item, Mapping)}

    before, after = by_name(old), by_name(new)
    return tuple(
        f"{name}: {before[name].get('value') if name in before else '(unset)'} → {item.get('value')}"
        for name, item in sorted(after.items())
        if item.get("applyMethod") == "pending-reboot" and (name not in before or _plain(before[name]) != _plain(item))
    )


def _direct_change(old: RecordedResource | None, new: RecordedResource | None, rules: ReplacementRules) -> _Draft:
    urn = (new or old).urn  # type: ignore[union-attr]
    if old is None:
        return _Draft(urn, None, new, "create")
    if new is None:
        return _Draft(urn, old, None, "delete")
    draft = _Draft(urn, old, new, "unchanged")
    rule = rules.rule_for(new.type)
    secret_keys = old.secret_inputs | new.secret_inputs
    for path, before, after in _leaf_changes(old.inputs, new.inputs):
        text = pulumi_path(path)
        if any(_ignored(path, pattern) for pattern in new.ignore_changes):
            draft.ignored.append(text)
            continue
        forcing = _forcing(rule, path)
        secret = path[0] in secret_keys
        draft.properties.append(PropertyChange(text, _shown(before, secret), _shown(after, secret), forcing))
        if forcing is not None and rule is not None:
            draft.reasons.append(ReplaceReason(f"{text} changed", forcing, rule.source))
    for condition in rule.conditional if rule else ():
        before, after = _lookup(old.inputs, condition.property), _lookup(new.inputs, condition.property)
        if not any(_ignored(tuple(condition.property.split(".")), p) for p in new.ignore_changes) \
                and condition.matches(before, after):
            secret = condition.property.split(".")[0] in secret_keys
            draft.reasons.append(ReplaceReason(condition.describe(before, after, secret), condition.property,
                                               rule.source))
            draft.properties = [_marked_forcing(change, condition.property) for change in draft.properties]
    draft.ignored = sorted(set(draft.ignored))
    draft.kind = "replace" if draft.reasons else "update" if draft.properties else "unchanged"
    return draft


def _forcing(rule: ReplacementRule | None, path: PathParts) -> str | None:
    """The rule property a change at ``path`` falls under, if it forces a replacement."""
    return next((prop for prop in rule.properties if _under(path, prop)), None) if rule else None


def _marked_forcing(change: PropertyChange, rule_property: str) -> PropertyChange:
    """``change`` marked as forcing a replacement when it lies under ``rule_property``."""
    if change.forces_replacement is None and _under(_parse_path(change.path), rule_property):
        return PropertyChange(change.path, change.old, change.new, rule_property, change.may_change_from)
    return change


def _propagate(drafts: dict[str, _Draft], olds: Mapping[str, RecordedResource],
               news: Mapping[str, RecordedResource], rules: ReplacementRules) -> None:
    """Carry replacements along provider references and dependencies until nothing changes."""
    progressing = True
    while progressing:
        progressing = False
        for draft in drafts.values():
            if draft.old is None or draft.new is None or draft.kind == "replace":
                continue
            provider_reason = _provider_reason(draft.old, draft.new, drafts, olds, news, rules)
            if provider_reason is not None:
                draft.reasons.append(provider_reason)
                draft.kind = "replace"
                progressing = True
            else:
                affecting = frozenset(draft.affecting(drafts))
                if affecting != draft.affected_by:
                    _mark_computed_inputs(draft, affecting, rules)
                    progressing = True


def _provider_reason(old: RecordedResource, new: RecordedResource, drafts: Mapping[str, _Draft],
                     olds: Mapping[str, RecordedResource], news: Mapping[str, RecordedResource],
                     rules: ReplacementRules) -> ReplaceReason | None:
    old_ref, new_ref = _provider_urn(old.provider), _provider_urn(new.provider)
    if old_ref == new_ref:
        provider = drafts.get(new_ref) if new_ref else None
        if provider is None or provider.kind != "replace":
            return None
        rule = rules.rule_for(provider.current.type)
        return ReplaceReason(f"its provider {_name(provider.urn)} is replaced", "provider",
                             rule.source if rule else ENGINE_PROVIDER_SOURCE)
    if old_ref is None or new_ref is None:
        moved = (f"{_name(old_ref) if old_ref else 'the default provider'} to "
                 f"{_name(new_ref) if new_ref else 'the default provider'}")
        return ReplaceReason(f"its provider changes from {moved}; the engine replaces it unless the provider's "
                             "config diff says otherwise, which an offline plan cannot see",
                             "provider", ENGINE_PROVIDER_SOURCE)
    old_provider, new_provider = olds.get(old_ref), news.get(new_ref)
    rule = rules.rule_for(new_provider.type) if new_provider else None
    if old_provider is None or new_provider is None or rule is None:
        return ReplaceReason(f"its provider changes from {_name(old_ref)} to {_name(new_ref)}, whose config "
                             "cannot be compared offline", "provider", ENGINE_PROVIDER_SOURCE)
    for path, before, after in _leaf_changes(old_provider.inputs, new_provider.inputs):
        if _forcing(rule, path) is not None:
            secret = path[0] in old_provider.secret_inputs | new_provider.secret_inputs
            return ReplaceReason(f"its provider changes from {_name(old_ref)} to {_name(new_ref)} with "
                                 f"{pulumi_path(path)}: {_shown(before, secret)} → {_shown(after, secret)}",
                                 "provider", rule.source)
    return None


def _mark_computed_inputs(draft: _Draft, affecting: frozenset[str], rules: ReplacementRules) -> None:
    """Record which computed inputs of ``draft`` may take a new value from the ``affecting`` dependencies."""
    old, new = draft.old, draft.new
    assert old is not None and new is not None
    draft.affected_by = affecting
    listed = {change.path for change in draft.properties}
    rule = rules.rule_for(new.type)
    old_sources, new_sources = _input_sources(old), _input_sources(new)
    draft.computed = []
    for path in _unknown_paths(new.inputs):
        text = pulumi_path(path)
        if text in listed or any(_ignored(path, pattern) for pattern in new.ignore_changes):
            continue
        key = str(path[0])
        if new_sources is None or old_sources is None:
            # Without per-input sources every computed input may come from any affecting dependency.
            sources = affecting
        else:
            fed_by = set(new_sources.get(key, ()))
            sources = frozenset(fed_by & affecting
                                if fed_by == set(old_sources.get(key, ())) else fed_by ^ set(old_sources.get(key, ())))
        if not sources:
            continue
        shown = SECRET_MASK if key in new.secret_inputs else UNKNOWN_MASK
        draft.computed.append(_ComputedInput(text, _forcing(rule, path), shown,
                                             tuple(sorted({_name(urn) for urn in sources}))))
    if draft.reasons or any(item.forcing is not None for item in draft.computed):
        draft.kind = "replace"
    elif draft.properties or draft.computed:
        draft.kind = "update"


@dataclass(frozen=True)
class _ComputedInput:
    path: str
    forcing: str | None
    shown: str
    sources: tuple[str, ...]
    """Names of the replaced, new or swapped dependencies the value may come from."""


def _input_sources(resource: RecordedResource) -> Mapping[str, tuple[str, ...]] | None:
    """Which resources each top-level input came from (the engine's propertyDependencies), when the
    recording has them; None means unknown, and every computed input is then suspect."""
    return resource.property_dependencies


# --- Values and paths ----------------------------------------------------------------------------------

_MISSING = object()
PathParts = tuple[str | int, ...]


def _is_unknown(value: Any) -> bool:
    return type(value).__name__ == "Unknown"


def _absent(value: Any) -> bool:
    return value is _MISSING or value is None


def _same(a: Any, b: Any) -> bool:
    """Equality where computed values equal each other (both sides are previews) and null equals absent."""
    if _is_unknown(a) or _is_unknown(b):
        return _is_unknown(a) and _is_unknown(b)
    if _absent(a) or _absent(b):
        return _absent(a) and _absent(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same(a.get(key, _MISSING), b.get(key, _MISSING)) for key in a.keys() | b.keys())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _leaf_changes(old: Any, new: Any, path: PathParts = ()) -> list[tuple[PathParts, Any, Any]]:
    """The deepest paths at which ``old`` and ``new`` differ (lists of different length count as one)."""
    if _same(old, new):
        return []
    if isinstance(old, dict) or isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {} if _absent(old) else None
        new_map = new if isinstance(new, dict) else {} if _absent(new) else None
        if old_map is not None and new_map is not None:
            return [change for key in sorted(old_map.keys() | new_map.keys())
                    for change in _leaf_changes(old_map.get(key, _MISSING), new_map.get(key, _MISSING),
                                                (*path, key))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [change for index, (x, y) in enumerate(zip(old, new, strict=True))
                for change in _leaf_changes(x, y, (*path, index))]
    return [(path, old, new)]


def _unknown_paths(value: Any, path: PathParts = ()) -> list[PathParts]:
    if _is_unknown(value):
        return [path]
    if isinstance(value, dict):
        return [found for key in sorted(value) for found in _unknown_paths(value[key], (*path, key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _unknown_paths(item, (*path, index))]
    return []


def _lookup(inputs: Mapping[str, Any], dotted: str) -> Any:
    value: Any = inputs
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _under(path: PathParts, rule_property: str) -> bool:
    """Whether a change at ``path`` touches ``rule_property``: one is a prefix of the other, list positions
    aside (a list that changed length is reported whole, and may hold the rule's nested property)."""
    names = tuple(part for part in path if isinstance(part, str))
    rule = tuple(rule_property.split("."))
    shared = min(len(names), len(rule))
    return shared > 0 and names[:shared] == rule[:shared]


_PATH_TOKEN = re.compile(r'\[(\d+|\*|"[^"]*")\]|([^.\[\]]+)')


def _parse_path(text: str) -> tuple[str | int | None, ...]:
    """A Pulumi property path (``a.b[0]``, ``a[*].b``, ``tags["Name"]``); ``None`` stands for ``[*]``."""
    parts: list[str | int | None] = []
    for bracket, plain in _PATH_TOKEN.findall(text):
        if plain:
            parts.append(plain)
        elif bracket == "*":
            parts.append(None)
        elif bracket.startswith('"'):
            parts.append(bracket[1:-1])
        else:
            parts.append(int(bracket))
    return tuple(parts)


def _ignored(path: Iterable[str | int], pattern: str) -> bool:
    parts, wanted = tuple(path), _parse_path(pattern)
    if len(parts) < len(wanted):
        return False
    return all(want is None and isinstance(part, int) or want == part
               for want, part in zip(wanted, parts[:len(wanted)], strict=True))


def _shown(value: Any, secret: bool = False) -> str:
    if _absent(value):
        return "(none)"
    if secret:
        return SECRET_MASK
    if _is_unknown(value):
        return UNKNOWN_MASK
    if isinstance(value, str):
        if "\n" in value or len(value) > SHORT_VALUE:
            digest = hashlib.sha256(value.encode()).hexdigest()[:12]
            return f"<{len(value.encode())} bytes, sha256 {digest}>"
        return value
    text = json.dumps(_plain(value), separators=(", ", ": "))
    return text if len(text) <= SHORT_VALUE else text[:SHORT_VALUE] + f"… ({len(text)} chars)"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if _is_unknown(value):
        return UNKNOWN_MASK
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _provider_urn(reference: str | None) -> str | None:
    """The provider URN of a ``<urn>::<id>`` reference; the id is unknown in preview, and a replaced
    provider's new id is what the engine compares, so the URN is what identifies the provider here."""
    return reference.rsplit("::", 1)[0] if reference else None


# --- Rendering -----------------------------------------------------------------------------------------


def summary_line(report: RiskReport) -> str:
    return (f"{report.count('create')} to create, {report.count('update')} to update in place, "
            f"{report.count('replace')} to replace, {report.count('delete')} to delete, "
            f"{report.count('unchanged')} unchanged")


def allow_line(report: RiskReport) -> str:
    destroying = len(report.data_destroying)
    if not destroying:
        return "No data-destroying changes."
    noun = "change" if destroying == 1 else "changes"
    return (f"{destroying} data-destroying {noun}. If that is intended, allow it with {ALLOW_FLAG} "
            f"(or the pull-request label {ALLOW_LABEL}).")


def allowed_line(report: RiskReport) -> str:
    """What ``--allow-data-loss`` allowed, so a run with the flag never reads like one without it."""
    return f"data-destroying changes allowed by {ALLOW_FLAG}: {len(report.data_destroying)}"


def risk_text(report: RiskReport, allowed: bool = False) -> str:
    """The report as text; ``allowed``: ``--allow-data-loss`` was given (the last line says what it allowed)."""
    lines = [
        f"phasekit risk: {summary_line(report)}",
        "offline: computed values (ids, addresses, generated secrets) are unknown in both versions, and "
        "resources taking them from a replaced or new resource may change; only `pulumi preview` against the "
        "stack's state is final.",
    ]
    destroying = report.data_destroying
    for change in destroying:
        verb = "is replaced" if change.kind == "replace" else "is deleted"
        lines += ["", f"DATA-DESTROYING: {change.name} ({change.type}) {verb}{_order_note(change)}; "
                      f"it holds {change.holds}"]
        lines += _detail_lines(change)
        lines.append("    " + _protection_note(change))
    rest = [change for change in report.changes if change.kind != "unchanged" and not change.data_destroying]
    if rest:
        lines.append("")
    for change in rest:
        order = _order_note(change)
        lines.append(f"{change.kind:<8} {change.name}  {change.type}{'  ' + order.strip() if order else ''}")
        lines += _detail_lines(change)
    if report.app_changes:
        lines += ["", "app processes and schedules (read from the two stack files):"]
        lines += [f"  - {line}" for line in report.app_changes]
    quiet = [change for change in report.of_kind("unchanged") if change.ignored]
    if quiet:
        lines += ["", "unchanged, ignoring changes (ignoreChanges) to: "
                  + "; ".join(f"{change.name} ({', '.join(change.ignored)})" for change in quiet)]
    lines += ["", allowed_line(report) if allowed and destroying else allow_line(report)]
    # Every line at most WIDTH columns, continuations under the line's own indent (as `plan --stack` does).
    return "".join(f"{wrapped}\n" for line in lines for wrapped in wrap(line, WIDTH))


def _order_note(change: ResourceChange) -> str:
    if change.kind == "replace" and change.delete_before_replace:
        return " (deleted before its replacement is created)"
    return ""


def _detail_lines(change: ResourceChange) -> list[str]:
    lines = []
    for prop in change.properties:
        if prop.may_change_from:
            lines.append(f"    {prop.path}: {prop.new}, may change: from {', '.join(prop.may_change_from)}")
        else:
            lines.append(f"    {prop.path}: {prop.old} → {prop.new}")
    lines += [f"    replaced because {reason.because} (rule: {reason.rule}; source: {reason.source})"
              for reason in change.replaced_because]
    if change.ignored and change.kind != "unchanged":
        lines.append(f"    ignoring changes (ignoreChanges) to: {', '.join(change.ignored)}")
    if change.reboot_needed:
        # The commands on lines of their own, so wrapping the prose never cuts one.
        lines.append(f"    applies at the next reboot ({', '.join(change.reboot_needed)}); the instance is unavailable "
                     "while it restarts:")
        commands = [REBOOT_COMMAND.format(identifier=identifier) for identifier in change.reboot_instances] or [
            REBOOT_COMMAND.format(identifier="<identifier>") + "   # for each instance using this group"]
        lines += [line for command in commands for line in command_lines(command, indent=REBOOT_INDENT)]
    for effect in change.in_place_effects:
        lines.append(f"    {effect.effect}")
        lines += [line for command in effect.commands for line in command_lines(command, indent=REBOOT_INDENT)]
        lines.append(f"    (source: {effect.source})")
    if not change.has_rule and change.kind == "update":
        lines.append("    no replacement rule for this type in phasekit/replacement_rules.yaml: shown as in place; "
                     "a real `pulumi preview` decides")
    return lines


def _protection_note(change: ResourceChange) -> str:
    if change.protected:
        retained = ("; retainOnDelete would keep the old one in the cloud, detached from the stack"
                    if change.retained_on_delete else "")
        return (f"protected: `pulumi up` refuses to {change.kind} it until it is unprotected "
                f"(phasekit:protect false, applied first){retained}")
    if change.retained_on_delete:
        return "not protected; retainOnDelete keeps the old one in the cloud, detached from the stack"
    return f"not protected: `pulumi up` will {change.kind} it and the data is gone"


def risk_json(report: RiskReport, allowed: bool = False) -> dict[str, Any]:
    """The report as JSON; ``dataLossAllowed`` is true when ``--allow-data-loss`` was given."""
    return {
        "summary": {kind: report.count(kind) for kind in ("create", "update", "replace", "delete", "unchanged")},
        "dataDestroying": [
            {"name": change.name, "type": change.type, "urn": change.urn, "kind": change.kind,
             "holds": change.holds, "protected": change.protected}
            for change in report.data_destroying
        ],
        "changes": [_change_json(change) for change in report.changes
                    if change.kind != "unchanged" or change.ignored],
        "allowDataLoss": {"flag": ALLOW_FLAG, "label": ALLOW_LABEL},
        "dataLossAllowed": allowed,
        **({"appChanges": list(report.app_changes)} if report.app_changes else {}),
    }


def _change_json(change: ResourceChange) -> dict[str, Any]:
    return {
        "urn": change.urn,
        "name": change.name,
        "type": change.type,
        "kind": change.kind,
        "dataDestroying": change.data_destroying,
        "holds": change.holds,
        "protected": change.protected,
        "retainOnDelete": change.retained_on_delete,
        "deleteBeforeReplace": change.delete_before_replace,
        "hasRule": change.has_rule,
        "properties": [
            {"path": prop.path, "old": prop.old, "new": prop.new, "forcesReplacement": prop.forces_replacement,
             "mayChangeFrom": list(prop.may_change_from)}
            for prop in change.properties
        ],
        "replacedBecause": [{"because": reason.because, "rule": reason.rule, "source": reason.source}
                            for reason in change.replaced_because],
        "ignored": list(change.ignored),
        "rebootNeeded": list(change.reboot_needed),
        "rebootInstances": list(change.reboot_instances),
        "inPlaceEffects": [{"property": effect.property, "effect": effect.effect, "commands": list(effect.commands),
                            "source": effect.source} for effect in change.in_place_effects],
    }
