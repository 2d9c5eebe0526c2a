"""``topology(plan)``: the readers in the order the picture needs them.

Cloudflare's nodes first (the edge sits at the top), then DigitalOcean, AWS and Kubernetes (which draws
into the EKS cluster AWS drew), and Cloudflare's edges last, because each record's edge names who its
origin admits and only the origin's provider knows that.
"""

from __future__ import annotations

from components.testing import RecordedResource
from phasekit.diagram.graph import Graph
from phasekit.diagram.model import Topology
from phasekit.diagram.readers import aws, cloudflare, digitalocean, kubernetes
from phasekit.plan import Plan


def topology(plan: Plan) -> Topology:
    """The stack's significant resources, grouped by network boundary, with who-talks-to-whom edges. With the
    stack's config (``Plan.config``), the app droplets also list the processes and schedules they run (phases 1 and
    2 carry them in the rollout bundle, which the recording cannot show); phase 3's are read from the recording."""
    graph = Graph(plan)
    graph.boundary("internet", "Internet", "internet", None)
    graph.node("users", "Users", ["browsers, API clients"], "actor", "internet")
    cloudflare.read_nodes(graph)
    droplets = digitalocean.read(graph)
    aws.read(graph)
    kubernetes.read(graph)

    def admission(origin: RecordedResource, port: int) -> str:
        if origin.type in digitalocean.ORIGIN_TYPES:
            return digitalocean.admission(graph, droplets, origin, port)
        return aws.security_group_sources(graph, origin, port)

    cloudflare.read_edges(graph, admission)
    return graph.topology()
