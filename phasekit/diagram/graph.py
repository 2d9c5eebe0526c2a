"""The workbench every provider reader shares.

``Graph`` answers questions about the plan's recording (resources of a type, their masked inputs, what a
resource depends on and what depends on it) and collects what the readers draw: boundaries, nodes, edges
and which node stands for which resource URN, so a later reader can draw an edge to an earlier one's node.
``topology()`` then hands back the finished, deterministically ordered ``Topology``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.testing import RecordedResource, Recording
from phasekit.change_risk import data_held
from phasekit.diagram.model import Boundary, BoundaryKind, Edge, EdgeKind, Node, NodeKind, Topology
from phasekit.plan import Plan, masked_inputs


class Graph:
    """One plan's recording, and the picture the readers draw from it."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.config = plan.config
        """The stack's config, when the plan has it: the only source of what a droplet runs besides the web
        process (the processes and schedules travel in the rollout bundle, unknown offline)."""
        self.recording: Recording = plan.recording
        self._by_urn = {resource.urn: resource for resource in self.recording.resources}
        self._inputs: dict[str, dict[str, Any]] = {}
        self.boundaries: dict[str, Boundary] = {}
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        self.node_of: dict[str, str] = {}
        """Resource URN -> the node that stands for it."""
        self.admins: dict[tuple[str, ...], str] = {}

    # Recording access -----------------------------------------------------------------------------

    def resource(self, urn: str) -> RecordedResource | None:
        return self._by_urn.get(urn)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return sorted(self.recording.of_type(type_token), key=lambda resource: resource.name)

    def inputs(self, resource: RecordedResource) -> dict[str, Any]:
        if resource.urn not in self._inputs:
            self._inputs[resource.urn] = masked_inputs(resource)
        return self._inputs[resource.urn]

    def deps(self, resource: RecordedResource, *types: str) -> list[RecordedResource]:
        found = [self._by_urn[urn] for urn in sorted(set(resource.dependencies)) if urn in self._by_urn]
        return sorted((dep for dep in found if not types or dep.type in types), key=lambda dep: dep.name)

    def dependents(self, resource: RecordedResource, *types: str) -> list[RecordedResource]:
        return sorted((other for other in self.recording.resources
                       if resource.urn in other.dependencies and (not types or other.type in types)),
                      key=lambda other: other.name)

    # Model assembly -------------------------------------------------------------------------------

    def boundary(self, id: str, label: str, kind: BoundaryKind, parent: str | None) -> str:
        self.boundaries.setdefault(id, Boundary(id=id, label=label, kind=kind, parent=parent))
        return id

    def node(self, id: str, title: str, details: Sequence[str], kind: NodeKind, boundary: str,
             resources: Sequence[RecordedResource] = (), stateful: bool = False) -> str:
        self.nodes[id] = Node(id=id, title=title, details=tuple(details), kind=kind, boundary=boundary,
                              stateful=stateful)
        for resource in resources:
            self.node_of[resource.urn] = id
        return id

    def edge(self, source: str, target: str, label: str, kind: EdgeKind = "traffic") -> None:
        candidate = Edge(source=source, target=target, label=label, kind=kind)
        if candidate not in self.edges:
            self.edges.append(candidate)

    def admin_node(self, cidrs: Sequence[str]) -> str:
        """One "Admins" actor per distinct allow-list, whichever provider's rule names it."""
        key = tuple(sorted(cidrs))
        if key not in self.admins:
            id = "admins" if not self.admins else f"admins_{len(self.admins) + 1}"
            self.admins[key] = self.node(id, "Admins", [", ".join(key)], "actor", "internet")
        return self.admins[key]

    def topology(self) -> Topology:
        """Nodes in the order drawn, edges by their ends' order, and only the boundaries that hold a node."""
        order = {id: index for index, id in enumerate(self.nodes)}
        edges = sorted(self.edges, key=lambda edge: (order[edge.source], order[edge.target], edge.label))
        used: set[str] = set()
        for node in self.nodes.values():
            boundary: str | None = node.boundary
            while boundary is not None:
                used.add(boundary)
                boundary = self.boundaries[boundary].parent
        return Topology(stack=self.plan.stack, phase=self.plan.phase,
                        boundaries=tuple(b for b in self.boundaries.values() if b.id in used),
                        nodes=tuple(self.nodes.values()), edges=tuple(edges))


def as_int(value: Any) -> int:
    """A wire-format number (the engine sends every number as a float) as the int a label shows."""
    return int(value)


def holds_data(resource: RecordedResource) -> bool:
    """Drawn heavy: the resources whose replace or delete loses data (policy/rules.py's one definition,
    shared with the guardrails and change risk), whether or not the stack protects them."""
    return data_held(resource) is not None
