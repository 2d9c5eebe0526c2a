"""A ``Topology`` as a Mermaid flowchart: nested ``subgraph``s for the boundaries, quoted labels with
Mermaid's own entity codes, dashed control nodes and heavy-bordered data stores."""

from __future__ import annotations

from phasekit.diagram.build import topology
from phasekit.diagram.model import NodeKind, Topology
from phasekit.diagram.render.style import BOUNDARY_COLOURS, GENERATED_NOTE
from phasekit.plan import Plan

_MERMAID_SHAPES: dict[NodeKind, tuple[str, str]] = {
    "actor": ("([", "])"), "edge": ("[", "]"), "entry": ("[", "]"), "compute": ("[", "]"),
    "workload": ("[", "]"), "control": ("[", "]"), "store": ("[(", ")]"),
}


def mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: Mermaid's own entity codes for the characters its parser reads."""
    codes = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
    return "".join(codes.get(char, char) for char in text)


def mermaid(plan: Plan) -> str:
    return mermaid_from(topology(plan))


def mermaid_from(model: Topology) -> str:
    lines = ["---", f"title: {model.title}", "---", f"%% {GENERATED_NOTE}", "flowchart TB"]
    lines += _mermaid_boundaries(model, parent=None, indent="  ")
    for edge in model.edges:
        arrow = "-->" if edge.kind == "traffic" else "-.->"
        lines.append(f'  {edge.source} {arrow}|"{mermaid_text(edge.label)}"| {edge.target}')
    for boundary in model.boundaries:
        fill, stroke = BOUNDARY_COLOURS[boundary.kind]
        lines.append(f"  style {boundary.id} fill:{fill},stroke:{stroke}")
    control = [node.id for node in model.nodes if node.kind == "control"]
    if control:
        lines.append("  classDef control stroke-dasharray:5 3")
        lines.append(f"  class {','.join(control)} control")
    stateful = [node.id for node in model.nodes if node.stateful]
    if stateful:
        lines.append("  classDef stateful stroke-width:3px")
        lines.append(f"  class {','.join(stateful)} stateful")
    return "\n".join(lines) + "\n"


def _mermaid_boundaries(model: Topology, parent: str | None, indent: str) -> list[str]:
    lines: list[str] = []
    for boundary in model.boundaries:
        if boundary.parent != parent:
            continue
        lines.append(f'{indent}subgraph {boundary.id}["{mermaid_text(boundary.label)}"]')
        for node in model.nodes:
            if node.boundary == boundary.id:
                opening, closing = _MERMAID_SHAPES[node.kind]
                label = "<br/>".join([f"<b>{mermaid_text(node.title)}</b>", *map(mermaid_text, node.details)])
                lines.append(f'{indent}  {node.id}{opening}"{label}"{closing}')
        lines += _mermaid_boundaries(model, boundary.id, indent + "  ")
        lines.append(f"{indent}end")
    return lines
