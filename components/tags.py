"""One set of tags, normalised for each provider's rules."""

from __future__ import annotations

import re
from collections.abc import Mapping

_DO_TAG_UNSAFE = re.compile(r"[^a-z0-9:_\-]")


def default_tags(project: str, stack: str, phase: int) -> dict[str, str]:
    """The tags every phasekit resource carries; ``infra`` merges the user's on top."""
    return {"project": project, "stack": stack, "phase": str(phase), "managed-by": "phasekit"}


def digitalocean_tags(tags: Mapping[str, str]) -> list[str]:
    """DigitalOcean tags are flat names (letters, digits, ``:``, ``-``, ``_``): ``key:value``."""
    return [_DO_TAG_UNSAFE.sub("-", f"{key}:{value}".lower()) for key, value in sorted(tags.items())]
