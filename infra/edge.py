"""The Cloudflare edge every phase puts in front of its origin, built the same way from the ``edge`` config."""

from __future__ import annotations

from typing import Literal

import pulumi

from components.cloudflare_edge import CloudflareEdge, CloudflareEdgeArgs
from infra.config import Edge
from infra.naming import physical_name


def build_edge(edge: Edge, *, origin: pulumi.Input[str], record_type: Literal["A", "CNAME"], project: str,
               stack: str, protect: bool) -> CloudflareEdge:
    """DNS record for ``edge.hostname`` pointing at ``origin``, zone TLS settings, an origin certificate when
    proxied, and the media bucket (protected with ``protect``)."""
    return CloudflareEdge("edge", CloudflareEdgeArgs(
        zone_id=edge.zone_id,
        account_id=edge.account_id,
        hostname=edge.hostname,
        origin=origin,
        origin_record_type=record_type,
        proxied=edge.proxied,
        manage_zone_settings=edge.manage_zone_settings,
        issue_origin_certificate=edge.proxied,
        media_bucket_name=physical_name(project, stack, "media"),
        protect_media=protect,
    ))
