"""Physical names for the few resources whose provider needs a real, stable name."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^a-z0-9-]+")


def physical_name(project: str, stack: str, purpose: str, max_length: int = 63) -> str:
    """``<project>-<stack>-<purpose>``, lowercased, hyphen-safe, trimmed to ``max_length``.

    Built from project and stack so two stacks of one project never collide (R2 bucket names are unique
    per account, DigitalOcean project names per team).
    """
    name = _UNSAFE.sub("-", f"{project}-{stack}-{purpose}".lower()).strip("-")
    return re.sub(r"-{2,}", "-", name)[:max_length].rstrip("-")
