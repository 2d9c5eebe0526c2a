"""A ``Topology`` as Graphviz DOT: a ``cluster_`` subgraph per boundary, HTML-like node labels, dashed
control nodes and attachments, heavy-bordered data stores, cylinders for stores."""

from __future__ import annotations

from phasekit.diagram.build import topology
from phasekit.diagram.model import NodeKind, Topology
from phasekit.diagram.render.style import BOUNDARY_COLOURS, GENERATED_NOTE
from phasekit.plan import Plan

_DOT_SHAPES: dict[NodeKind, str] = {
    "actor": "oval", "edge": "box", "entry": "box", "compute": "box", "workload": "box", "control": "box",
    "store": "cylinder",
}
_DOT_STYLES: dict[NodeKind, str] = {"control": "rounded,filled,dashed"}


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def graphviz_dot(plan: Plan) -> str:
    return graphviz_dot_from(topology(plan))


def graphviz_dot_from(model: Topology) -> str:
    lines = [
        f"// {GENERATED_NOTE}",
        f"digraph {_quoted(model.stack)} {{",
        f'  graph [label={_quoted(model.title)}, labelloc=t, fontname="Helvetica", fontsize=16, rankdir=TB, '
        'newrank=true, nodesep=0.35, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#455a64"];',
    ]
    lines += _dot_clusters(model, parent=None, indent="  ")
    for edge in model.edges:
        style = "" if edge.kind == "traffic" else ", style=dashed"
        # Two short lines instead of one long one keep neighbouring labels from overlapping.
        label = edge.label.replace(" (", "\n(")
        lines.append(f"  {edge.source} -> {edge.target} [label={_quoted(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_clusters(model: Topology, parent: str | None, indent: str) -> list[str]:
    lines: list[str] = []
    for boundary in model.boundaries:
        if boundary.parent != parent:
            continue
        fill, stroke = BOUNDARY_COLOURS[boundary.kind]
        lines.append(f"{indent}subgraph cluster_{boundary.id} {{")
        lines.append(f'{indent}  graph [label={_quoted(boundary.label)}, style="rounded,filled", '
                     f'fillcolor="{fill}", color="{stroke}", fontname="Helvetica", fontsize=12];')
        for node in model.nodes:
            if node.boundary == boundary.id:
                label = "<br/>".join([f"<b>{_html(node.title)}</b>", *map(_html, node.details)])
                extra = ", penwidth=2.5" if node.stateful else ""
                if node.kind in _DOT_STYLES:
                    extra += f', style="{_DOT_STYLES[node.kind]}"'
                lines.append(f"{indent}  {node.id} [label=<{label}>, shape={_DOT_SHAPES[node.kind]}{extra}];")
        lines += _dot_clusters(model, boundary.id, indent + "  ")
        lines.append(f"{indent}}}")
    return lines
