"""Closed sets and limits phase 3's components and the config model share.

Pure (no pulumi-aws import), so the config can validate against the same values the components use
without paying the AWS SDK's import time in phases 1 and 2.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

RFC1918 = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
"""The ranges AWS accepts for a VPC's primary block (Python's ``is_private`` also admits others)."""

NODE_PORT_RANGE = (30000, 32767)
"""Kubernetes' default NodePort range: where the app Service listens on every node and the ALB forwards."""


class NatStrategy(StrEnum):
    SINGLE = "single"
    """One NAT gateway in the first AZ for all private subnets: cheapest, egress fails with that AZ."""

    PER_AZ = "per-az"
    """One NAT gateway per AZ, each private subnet using its own AZ's: survives an AZ loss."""


class CacheEngine(StrEnum):
    VALKEY = "valkey"
    REDIS = "redis"
