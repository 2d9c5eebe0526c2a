"""The Cloudflare edge every phase puts in front of its origin, built the same way from the ``edge`` config."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def deferred_origin() -> Iterator[tuple[pulumi.Output[str], Callable[[pulumi.Input[str]], None]]]:
    """The origin the edge's record points at, promised before the origin exists (the origin needs the edge's
    certificate), and the function that resolves it.

    If building the origin fails, the promise is resolved with a placeholder before the error propagates:
    an unresolved promise would leave the DNS record, and with it the whole ``pulumi up`` or preview, waiting
    forever instead of stopping with the error."""
    origin, resolve = pulumi.deferred_output()
    resolved = False

    def resolve_once(value: pulumi.Input[str]) -> None:
        nonlocal resolved
        resolved = True
        resolve(pulumi.Output.from_input(value))

    try:
        yield origin, resolve_once
    finally:
        if not resolved:
            resolve(pulumi.Output.from_input("unresolved.invalid"))
