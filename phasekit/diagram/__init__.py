"""Topology diagrams of a stack's offline plan: Mermaid, Graphviz DOT and SVG, grouped by network boundary.

``topology(plan)`` reads the plan's recording, never the phase number: which resources exist, how they
depend on each other, and the inputs that decide who may talk to whom (firewall rules, security groups,
load-balancer forwarding rules, route tables, node-group sizes, ``multiAz``). Phase 2 with one app droplet
therefore draws a reserved IP in front of one droplet, and with three a load balancer in front of three.

The recording is a preview, so ids and addresses are unknown: a reference such as a firewall's
``dropletIds`` or a security group's ``securityGroups`` is resolved through the resource's dependencies.

How it is laid out:

- ``model``: the picture as frozen data (``Boundary``, ``Node``, ``Edge``, ``Topology``) and ``diagram_id``.
- ``graph``: the workbench the readers share (recording look-ups, and the nodes drawn so far).
- ``readers/``: one module per provider (``cloudflare``, ``digitalocean``, ``aws``, ``kubernetes``), each
  drawing its own resources; ``build.topology`` runs them in order.
- ``render/``: ``mermaid``, ``dot`` and ``files`` (writes ``.mmd``, ``.dot`` and, with Graphviz's ``dot``,
  ``.svg``).
- ``labels`` and ``resource_types``: the wording and the type tokens the readers share.

Left out on purpose, to keep the pictures readable: IAM roles and policies, KMS keys, log groups, route
tables, EKS add-ons and access entries, the release Job, the PodDisruptionBudget, generated passwords and
certificates (the ALB's certificate shows as a detail), and each alarm (one node per provider counts them).
"""

from phasekit.diagram.build import topology
from phasekit.diagram.labels import describe_sources, port_label
from phasekit.diagram.model import Boundary, Edge, Node, Topology, diagram_id
from phasekit.diagram.render.dot import graphviz_dot, graphviz_dot_from
from phasekit.diagram.render.files import GRAPHVIZ_MISSING, write_diagrams
from phasekit.diagram.render.mermaid import mermaid, mermaid_from, mermaid_text
from phasekit.diagram.render.style import BOUNDARY_COLOURS, GENERATED_NOTE

__all__ = [
    "BOUNDARY_COLOURS", "GENERATED_NOTE", "GRAPHVIZ_MISSING", "Boundary", "Edge", "Node", "Topology",
    "describe_sources", "diagram_id", "graphviz_dot", "graphviz_dot_from", "mermaid", "mermaid_from",
    "mermaid_text", "port_label", "topology", "write_diagrams",
]
