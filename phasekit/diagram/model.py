"""What a diagram shows, as plain frozen data: boundaries (network zones, nested), the nodes inside them
(a resource, or a group of resources drawn as one) and the edges between nodes (traffic, or an attachment
such as a mounted volume). The readers build a ``Topology``; the renderers draw it. Nothing here reads a
plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

BoundaryKind = Literal["internet", "cloudflare", "digitalocean", "aws", "vpc", "public", "private", "kubernetes"]
NodeKind = Literal["actor", "edge", "entry", "compute", "workload", "control", "store"]
EdgeKind = Literal["traffic", "attachment"]


@dataclass(frozen=True)
class Boundary:
    id: str
    label: str
    kind: BoundaryKind
    parent: str | None
    """Enclosing boundary's id; None at the top level."""


@dataclass(frozen=True)
class Node:
    id: str
    title: str
    details: tuple[str, ...]
    kind: NodeKind
    boundary: str
    stateful: bool = False
    """Protected in the plan (holds data): drawn with a heavy border."""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    kind: EdgeKind = "traffic"


@dataclass(frozen=True)
class Topology:
    """What a diagram shows; ``mermaid_from`` and ``graphviz_dot_from`` render it, in this order."""

    stack: str
    phase: int
    boundaries: tuple[Boundary, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def __post_init__(self) -> None:
        ids = [boundary.id for boundary in self.boundaries] + [node.id for node in self.nodes]
        duplicates = sorted({item for item in ids if ids.count(item) > 1})
        if duplicates:
            raise ValueError(f"diagram ids must be unique across boundaries and nodes: {', '.join(duplicates)}")

    @property
    def title(self) -> str:
        return f"phasekit stack {self.stack} (phase {self.phase})"


# Words Mermaid's flowchart grammar or DOT's reads as keywords when they stand alone as an id.
_RESERVED_IDS = frozenset({"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click",
                           "linkstyle", "direction", "default", "node", "edge", "digraph", "strict"})


def diagram_id(name: str) -> str:
    """A resource's logical name as an identifier both Mermaid and DOT accept unquoted."""
    id = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "unnamed"
    if id[0].isdigit() or id.lower() in _RESERVED_IDS:
        id = f"r_{id}"
    return id
