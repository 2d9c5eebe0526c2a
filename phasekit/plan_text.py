"""The text of ``phasekit plan --stack``: the verdict first, then the tree.

Layout, top to bottom:

1. a header (stack, phase, project; offline preview);
2. the **summary**: resources to create per provider (the first segment of the type token: ``aws``,
   ``kubernetes``, ...; components counted apart), the monthly cost with the unconfirmed leads, the
   guardrails' pass/fail count, the secrets still to set, the config warnings, the default tags, and what
   the exit status will be and mean (``--summary`` stops here);
3. the resource **tree**, each custom resource with its inputs. Default tags (phasekit's own plus the
   stack's ``tags``) are shown once, in the summary: a resource's ``tags``/``labels`` equal to them read
   ``<default tags>``, and one that differs shows only the difference (``<default tags> + Name=alerts``);
4. outputs, the cost table, guardrail violations.

This module builds the document as plain data (``PlanDocument``) and renders it as plain text:
deterministic, every line at most ``WIDTH`` columns (long lines wrap under their own indent). On a terminal
``phasekit.terminal`` renders the same document with ``rich`` (colour, the console's width).
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.tags import digitalocean_tags, kubernetes_labels
from components.testing import Recording
from phasekit.plan import Plan, masked_inputs, masked_outputs

if TYPE_CHECKING:
    from phasekit.cost import CostEstimate
    from phasekit.guardrails import Violation

WIDTH = 100
"""Plain text wraps to this many columns (a terminal uses its own width)."""

LONG_VALUE = 72
DEFAULT_TAGS_MARK = "<default tags>"
TAG_KEYS = frozenset({"tags", "tagsAll", "labels"})
"""Input keys (at any depth) whose value is a tag or label set: compared with the default tags."""

EXIT_MEANINGS = {0: "config valid, no mandatory guardrail failed",
                 3: "a mandatory guardrail failed"}


@dataclass(frozen=True)
class SummaryRow:
    label: str
    text: str
    tone: str = ""
    """``ok``, ``bad``, ``warn`` or ``""``: colour on a terminal, nothing in plain text."""

    items: tuple[str, ...] = ()
    """Lines listed under the row (warnings, the secret-setting commands)."""


@dataclass(frozen=True)
class TreeNode:
    type: str
    name: str
    flags: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    """``key: value`` lines; a firewall's rules as indented lines under their key."""

    children: tuple[TreeNode, ...] = ()


@dataclass(frozen=True)
class PlanDocument:
    header: tuple[str, ...]
    summary: tuple[SummaryRow, ...]
    root: TreeNode
    resource_count: int
    sections: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    """Outputs, cost, guardrails: each a block of lines after the tree."""


# --- The summary ------------------------------------------------------------------------------------


def provider_of(type_token: str) -> str:
    """The first segment of a type token: ``aws:rds/instance:Instance`` -> ``aws``."""
    return type_token.split(":", 1)[0]


def resources_by_provider(recording: Recording) -> tuple[dict[str, int], int]:
    """(custom resources per provider, most first then by name; the number of components)."""
    counts = Counter(provider_of(resource.type) for resource in recording.resources if resource.custom)
    ordered = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return ordered, sum(1 for resource in recording.resources if not resource.custom)


def exit_status(violations: Sequence[Violation] | None) -> int:
    return 3 if violations and any(violation.mandatory for violation in violations) else 0


def summary_rows(plan: Plan, cost: CostEstimate | None, violations: Sequence[Violation] | None) -> list[SummaryRow]:
    by_provider, components = resources_by_provider(plan.recording)
    total = len(plan.recording.resources)
    rows = [SummaryRow("resources", f"{total} to create: "
                       + ", ".join(f"{provider} {count}{' (explicit providers)' if provider == 'pulumi' else ''}"
                                   for provider, count in by_provider.items())
                       + f"; {components} component{'s' if components != 1 else ''}")]
    if cost is not None:
        rows.append(_cost_row(cost))
    if violations is not None:
        rows.append(_guardrails_row(violations))
    if plan.secrets_to_set:
        count = len(plan.secrets_to_set)
        rows.append(SummaryRow("secrets", f"{count} still to set before `pulumi up` (placeholders were used "
                                          "offline):", "warn", tuple(plan.secrets_to_set)))
    else:
        rows.append(SummaryRow("secrets", "none to set", "ok"))
    if plan.warnings:
        rows.append(SummaryRow("warnings", f"{len(plan.warnings)}:", "warn", tuple(plan.warnings)))
    else:
        rows.append(SummaryRow("warnings", "none", "ok"))
    if plan.default_tags:
        shown = ", ".join(f"{key}={value}" for key, value in sorted(plan.default_tags.items()))
        rows.append(SummaryRow("default tags", f"{shown} (on every taggable resource; the tree shows "
                                               f"{DEFAULT_TAGS_MARK} and any difference)"))
    status = exit_status(violations)
    rows.append(SummaryRow("exit status", f"{status}: {EXIT_MEANINGS[status]}", "bad" if status else "ok"))
    return rows


def _cost_row(cost: CostEstimate) -> SummaryRow:
    from phasekit.cost import money

    text = f"${money(cost.total_usd)} a month at list prices"
    if cost.unconfirmed:
        text += (f"; unconfirmed leads ${money(cost.unconfirmed_lead_usd)} more "
                 f"({len(cost.unconfirmed)} line{'s' if len(cost.unconfirmed) != 1 else ''}), "
                 f"${money(cost.total_with_leads_usd)} with leads")
    if cost.unpriced:
        text += f"; {len(cost.unpriced)} without a price"
    if cost.usage_based:
        text += f"; {len(cost.usage_based)} usage-based not counted"
    return SummaryRow("monthly cost", text, "warn" if cost.unconfirmed or cost.unpriced else "")


def _guardrails_row(violations: Sequence[Violation]) -> SummaryRow:
    from policy import rules

    count = len(rules.RULES)
    failing = {violation.policy for violation in violations}
    mandatory = {violation.policy for violation in violations if violation.mandatory}
    text = f"{count} policies: {count - len(failing)} pass, {len(failing)} fail"
    if failing:
        text += ": " + ", ".join(f"{name} ({'mandatory' if name in mandatory else 'advisory'})"
                                 for name in sorted(failing))
    return SummaryRow("guardrails", text, "bad" if mandatory else "warn" if failing else "ok")


def summary_json(plan: Plan, cost: CostEstimate | None, violations: Sequence[Violation] | None) -> dict[str, Any]:
    by_provider, components = resources_by_provider(plan.recording)
    return {
        "resourcesToCreate": len(plan.recording.resources),
        "byProvider": by_provider,
        "components": components,
        "defaultTags": dict(sorted(plan.default_tags.items())),
        "secretsToSet": len(plan.secrets_to_set),
        "warnings": len(plan.warnings),
        "exitStatus": exit_status(violations),
    }


# --- The tree ---------------------------------------------------------------------------------------


def tree(plan: Plan) -> TreeNode:
    defaults = _default_forms(plan.default_tags)
    return TreeNode("pulumi:pulumi:Stack", f"{plan.project}-{plan.stack}",
                    children=_children(plan.recording, None, defaults))


def _children(recording: Recording, parent: str | None, defaults: _DefaultForms) -> tuple[TreeNode, ...]:
    children = sorted((resource for resource in recording.resources if resource.parent == parent),
                      key=lambda resource: (resource.custom, resource.type, resource.name))
    nodes = []
    for resource in children:
        flags = []
        if resource.protect:
            flags.append("protected")
        if resource.retain_on_delete:
            flags.append("retained on delete")
        if resource.ignore_changes:
            flags.append("ignores changes to " + ", ".join(resource.ignore_changes))
        details: list[str] = []
        if resource.custom:
            for key, value in masked_inputs(resource).items():
                value = without_default_tags(key, value, defaults)
                if key in ("inboundRules", "outboundRules") and isinstance(value, list):
                    details.append(f"{key}:")
                    details += [f"  {_firewall_rule(rule)}" for rule in value]
                else:
                    details.append(f"{key}: {_short(value)}")
        nodes.append(TreeNode(resource.type, resource.name, tuple(flags), tuple(details),
                              _children(recording, resource.urn, defaults)))
    return tuple(nodes)


@dataclass(frozen=True)
class _DefaultForms:
    """The default tags as each provider spells them (``components.tags``)."""

    aws: Mapping[str, str]
    kubernetes: Mapping[str, str]
    digitalocean: tuple[str, ...]


def _default_forms(tags: Mapping[str, str]) -> _DefaultForms:
    return _DefaultForms(aws=dict(tags), kubernetes=kubernetes_labels(tags),
                         digitalocean=tuple(digitalocean_tags(tags)))


def without_default_tags(key: str, value: Any, defaults: _DefaultForms) -> Any:
    """``value`` with every tag set (under a ``TAG_KEYS`` key, at any depth) that shares an entry with the
    default tags replaced by ``<default tags>`` plus the difference: ``+ key=value`` for added or changed
    entries, ``- key`` for defaults it lacks. Tag sets with no default entry (selectors, pod labels) stay."""
    if key in TAG_KEYS:
        if isinstance(value, dict):
            for form in (defaults.aws, defaults.kubernetes):
                if form and any(value.get(name) == shown for name, shown in form.items()):
                    added = [f"{name}={item}" for name, item in value.items() if form.get(name) != item]
                    return _marked(added, [name for name in form if name not in value])
        if isinstance(value, list) and defaults.digitalocean and set(value) & set(defaults.digitalocean):
            return _marked([item for item in value if item not in defaults.digitalocean],
                           [item for item in defaults.digitalocean if item not in value])
    if isinstance(value, dict):
        return {name: without_default_tags(name, item, defaults) for name, item in value.items()}
    if isinstance(value, list):
        return [without_default_tags("", item, defaults) for item in value]
    return value


def _marked(added: list[str], missing: list[str]) -> str:
    text = DEFAULT_TAGS_MARK
    if added:
        text += " + " + ", ".join(sorted(added))
    if missing:
        text += " - " + ", ".join(missing)
    return text


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


# --- The document -----------------------------------------------------------------------------------


def plan_document(plan: Plan, cost: CostEstimate | None = None,
                  violations: Sequence[Violation] | None = None) -> PlanDocument:
    header = (f"phasekit plan: stack {plan.stack} (phase {plan.phase}) of project {plan.project}",
              "offline preview under Pulumi's mock monitor: no credentials used, computed values unknown")
    sections = [("Outputs:", *(f"  {name}: {_short(value)}" for name, value in masked_outputs(plan.recording).items()))]
    if cost is not None:
        from phasekit.cost import cost_lines

        sections.append(tuple(cost_lines(cost)))
    if violations is not None:
        from phasekit.guardrails import guardrail_lines

        sections.append(tuple(guardrail_lines(violations)))
    return PlanDocument(header=header, summary=tuple(summary_rows(plan, cost, violations)), root=tree(plan),
                        resource_count=len(plan.recording.resources), sections=tuple(sections))


def plan_text(plan: Plan, cost: CostEstimate | None = None, violations: Sequence[Violation] | None = None,
              *, summary_only: bool = False, width: int = WIDTH) -> str:
    """The plan as plain text, every line at most ``width`` columns."""
    document = plan_document(plan, cost, violations)
    lines = [*document.header, "", *summary_text_lines(document.summary, width)]
    if not summary_only:
        lines += ["", f"Resources: {document.resource_count} to create", *tree_text_lines(document.root)]
        for section in document.sections:
            lines += ["", *section]
    return "".join(f"{wrapped}\n" for line in lines for wrapped in wrap(line, width))


SUMMARY_LABEL_WIDTH = len("monthly cost  ")


def summary_text_lines(rows: Sequence[SummaryRow], width: int = WIDTH) -> list[str]:
    """The summary as a two-column list; a long row wraps under its text column."""
    text_column = " " * (2 + SUMMARY_LABEL_WIDTH)
    lines = ["Summary:"]
    for row in rows:
        lines += textwrap.wrap(row.text, width=width, initial_indent=f"  {row.label:<{SUMMARY_LABEL_WIDTH}}",
                               subsequent_indent=text_column, break_on_hyphens=False)
        for item in row.items:
            lines += textwrap.wrap(item, width=width, initial_indent=text_column + "  ",
                                   subsequent_indent=text_column + "    ", break_on_hyphens=False)
    return lines


def tree_text_lines(root: TreeNode) -> list[str]:
    """The tree with box-drawing guides; each line wraps later under its own guide (see ``wrap``)."""
    lines = [f"{root.type}  {root.name}"]
    lines += _node_lines(root.children, "")
    return lines


def _node_lines(nodes: Sequence[TreeNode], prefix: str) -> list[str]:
    lines: list[str] = []
    for index, node in enumerate(nodes):
        last = index == len(nodes) - 1
        flag_text = f"  [{'; '.join(node.flags)}]" if node.flags else ""
        lines.append(f"{prefix}{'└─ ' if last else '├─ '}{node.type}  {node.name}{flag_text}")
        detail_prefix = prefix + ("   " if last else "│  ")
        lines += [f"{detail_prefix}    {detail}" for detail in node.details]
        lines += _node_lines(node.children, detail_prefix)
    return lines


GUIDE_CHARACTERS = " │├└─"


def wrap(line: str, width: int = WIDTH) -> list[str]:
    """``line`` cut into lines of at most ``width`` columns; continuations sit under the line's own text
    (after its tree guides and indent) plus two spaces, and keep the tree's vertical guides."""
    if len(line) <= width:
        return [line]
    body = line.lstrip(GUIDE_CHARACTERS)
    guides = line[: len(line) - len(body)]
    continuation = guides.replace("├─", "│ ").replace("└─", "  ") + "  "
    if len(continuation) > width // 2:  # a very deep tree: keep some room for the text
        continuation = " " * 4
    wrapper = textwrap.TextWrapper(width=width, initial_indent=guides, subsequent_indent=continuation,
                                   break_long_words=True, break_on_hyphens=False)
    return wrapper.wrap(body)
