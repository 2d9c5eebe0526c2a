"""phasekit's guardrails as a CrossGuard policy pack: ``pulumi preview --policy-pack policy``.

Every rule of ``rules.RULES`` becomes a ``ResourceValidationPolicy`` or ``StackValidationPolicy`` with the
rule's name, description and enforcement level; ``--policy-pack-config`` can lower or disable any of them
(e.g. ``{"stateful-resources-protected": "advisory"}`` for a scratch stack with ``phasekit:protect: false``).

How the Pulumi CLI starts it (``runtime: python`` in ``PulumiPolicy.yaml``): in this directory, with the
virtualenv's interpreter, ``python -u -m pulumi.policy <engine address> <this directory>``, which runs
this file as a script (``runpy.run_path``) with the directory first on ``sys.path``. So ``rules`` is a
top-level module there, while tests import this file as ``policy.__main__`` from the repository; and
the pack only starts its gRPC server when run as ``__main__``.

Unknown values: the engine marks each computed value with a sentinel string, and the SDK's property
proxy raises ``UnknownValueError`` when a policy reads one (reported as an advisory "can't run policy
during preview" note, which would also skip the policy's other checks). ``plain`` reads every value
through the proxy once and turns the unknown ones into ``rules.UNKNOWN``, which the rules treat as
"cannot tell".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyPack,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

if __package__:  # imported from the repository: policy.__main__
    from policy import rules
else:  # run by the Pulumi CLI as a script, with this directory on sys.path
    import rules

PACK_NAME = "phasekit-guardrails"

_LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def plain(value: Any) -> Any:
    """Plain dicts and lists from the SDK's unknown-checking proxies, unknowns as ``rules.UNKNOWN``."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Mapping):
        return {key: _read(value, key) for key in value}
    if isinstance(value, Sequence):
        return [_read(value, index) for index in range(len(value))]
    return value


def _read(container: Any, key: Any) -> Any:
    try:
        return plain(container[key])
    except UnknownValueError:
        return rules.UNKNOWN


def resource_view(args: ResourceValidationArgs) -> rules.ResourceView:
    return rules.ResourceView(type=args.resource_type, name=args.name, urn=args.urn, props=plain(args.props),
                              protect=bool(args.opts.protect), parent=args.opts.parent)


def stack_view(resource: PolicyResource) -> rules.ResourceView:
    """A stack policy sees each resource's outputs; for a create in preview they echo its inputs."""
    return rules.ResourceView(type=resource.resource_type, name=resource.name, urn=resource.urn,
                              props=plain(resource.props), protect=bool(resource.opts.protect),
                              parent=resource.parent.urn if resource.parent is not None else None)


def resource_policy(rule: rules.ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in rule.resource_types:
            return
        for message in rule.violations(resource_view(args)):
            report_violation(message, None)

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                    enforcement_level=_LEVELS[rule.enforcement])


def stack_policy(rule: rules.StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        relevant = [resource for resource in args.resources if resource.resource_type in rule.resource_types]
        for resource, message in rule.violations([stack_view(resource) for resource in relevant]):
            report_violation(message, resource.urn)

    return StackValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                 enforcement_level=_LEVELS[rule.enforcement])


def policies() -> list[Policy]:
    return [stack_policy(rule) if isinstance(rule, rules.StackRule) else resource_policy(rule)
            for rule in rules.RULES]


if __name__ == "__main__":
    # Blocks: serves the engine's Analyze/AnalyzeStack calls until the CLI stops the process.
    PolicyPack(
        name=PACK_NAME,
        policies=policies(),
        enforcement_level=EnforcementLevel.MANDATORY,
        description="phasekit's guardrails: no public data stores or SSH, encryption, protected and backed-up "
                    "data, a private Kubernetes API, IMDSv2, restricted pods, probes, replicas and "
                    "disruption budgets.",
    )
