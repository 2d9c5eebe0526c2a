"""Cloudflare's part of the diagram: each DNS record (proxied through the CDN and WAF, or DNS only) with
the zone's SSL/TLS mode and minimum TLS version, and the R2 media bucket.

Nodes come first; the edges come last (``read_edges``), once the DigitalOcean or AWS reader has drawn the
origin each record points at, because who may reach an origin is that provider's firewall's answer.
"""

from __future__ import annotations

from collections.abc import Callable

from components.testing import RecordedResource
from phasekit.diagram.graph import Graph, holds_data
from phasekit.diagram.labels import is_backups_bucket, port_label
from phasekit.diagram.model import diagram_id
from phasekit.diagram.resource_types import (
    ALB,
    DNS_RECORD,
    DO_DROPLET,
    DO_LOAD_BALANCER,
    R2_BUCKET,
    RESERVED_IP,
    ZONE_SETTING,
)

SSL_MODES = {"strict": "Full (strict)", "full": "Full", "flexible": "Flexible", "off": "Off"}
ORIGIN_TYPES = (RESERVED_IP, DO_LOAD_BALANCER, ALB, DO_DROPLET)
"""What a record may point at, in any phase."""

Admission = Callable[[RecordedResource, int], str]
"""Who may reach an origin on a port, in words (``Cloudflare IPs only``): the origin provider's answer."""


def zone_settings(graph: Graph) -> dict[str, str]:
    return {graph.inputs(setting)["settingId"]: str(graph.inputs(setting)["value"])
            for setting in graph.of_type(ZONE_SETTING)}


def read_nodes(graph: Graph) -> None:
    records, buckets = graph.of_type(DNS_RECORD), graph.of_type(R2_BUCKET)
    if not records and not buckets:
        return
    graph.boundary("cloudflare", "Cloudflare", "cloudflare", None)
    settings = zone_settings(graph)
    for record in records:
        inputs = graph.inputs(record)
        details = [f"DNS {inputs['type']}, proxied (CDN, WAF)" if inputs.get("proxied")
                   else f"DNS {inputs['type']}, DNS only"]
        if inputs.get("proxied") and "ssl" in settings:
            details.append(f"SSL/TLS {SSL_MODES.get(settings['ssl'], settings['ssl'])}")
        if inputs.get("proxied") and "min_tls_version" in settings:
            details.append(f"visitors: TLS {settings['min_tls_version']}+")
        graph.node(diagram_id(record.name), inputs["name"], details, "edge", "cloudflare", [record])
    for bucket in buckets:
        name = graph.inputs(bucket)["name"]
        graph.node(diagram_id(bucket.name), "R2 backups bucket" if is_backups_bucket(name) else "R2 bucket", [name],
                   "store", "cloudflare", [bucket], stateful=holds_data(bucket))


def read_edges(graph: Graph, admission: Admission) -> None:
    """Users to each record and on to its origin (proxied), or straight to the origin (DNS only)."""
    settings = zone_settings(graph)
    origin_port = 80 if settings.get("ssl") in ("flexible", "off") else 443
    for record in graph.of_type(DNS_RECORD):
        record_node = graph.node_of[record.urn]
        origins = [dep for dep in graph.deps(record, *ORIGIN_TYPES) if dep.urn in graph.node_of]
        for origin in origins:
            admitted = admission(origin, origin_port)
            if graph.inputs(record).get("proxied"):
                graph.edge("users", record_node, port_label(443))
                graph.edge(record_node, graph.node_of[origin.urn], f"{port_label(origin_port)} ({admitted})")
            else:
                graph.edge("users", graph.node_of[origin.urn], f"{port_label(origin_port)} ({admitted})")
                graph.edge(record_node, graph.node_of[origin.urn], f"DNS {graph.inputs(record)['type']} record",
                           "attachment")
