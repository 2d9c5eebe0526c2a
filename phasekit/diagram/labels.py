"""Wording every provider reader shares: who an allow-list admits, and a port's name."""

from __future__ import annotations

from collections.abc import Iterable

from components.testing import CLOUDFLARE_IP_RANGES

PORT_NAMES = {22: "SSH", 80: "HTTP", 443: "HTTPS", 5432: "PostgreSQL", 6379: "Redis", 6432: "PgBouncer",
              8079: "backup status"}
EVERYONE = frozenset({"0.0.0.0/0", "::/0"})
CLOUDFLARE_CIDRS = frozenset(CLOUDFLARE_IP_RANGES["ipv4Cidrs"] + CLOUDFLARE_IP_RANGES["ipv6Cidrs"])
MEDIA_ACCESS = "HTTPS 443 (S3 API: media)"
"""The edge from whatever serves the app to the R2 media bucket (droplets in phases 1-2, pods in phase 3)."""
BACKUPS_ACCESS = "HTTPS 443 (S3 API: backups, WAL)"
"""The edge from the host that runs PostgreSQL to the stack's R2 backups bucket (phases 1-2)."""


def is_backups_bucket(name: str) -> bool:
    """The stack's backups bucket, named ``<project>-<stack>-backups`` by ``infra.backups``."""
    return name.endswith("-backups")


def describe_sources(cidrs: Iterable[str]) -> str:
    """Who an address allow-list admits, in words: the diagrams' ``(... only)`` suffix."""
    addresses = sorted(set(cidrs))
    if not addresses:
        return "nobody"
    if EVERYONE & set(addresses):
        return "anyone"
    if set(addresses) <= CLOUDFLARE_CIDRS:
        return "Cloudflare IPs only"
    if len(addresses) <= 2:
        return f"{', '.join(addresses)} only"
    return f"{len(addresses)} CIDRs only"


def port_label(port: int) -> str:
    name = PORT_NAMES.get(port)
    return f"{name} {port}" if name else f"TCP {port}"
