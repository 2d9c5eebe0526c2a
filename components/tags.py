"""One set of tags, normalised for each provider's rules."""

from __future__ import annotations

import re
from collections.abc import Mapping

_DO_TAG_UNSAFE = re.compile(r"[^a-z0-9:_\-]")
_K8S_LABEL_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
K8S_LABEL_PREFIX = "phasekit.dev/"


def default_tags(project: str, stack: str, phase: int) -> dict[str, str]:
    """The tags every phasekit resource carries; ``infra`` merges the user's on top."""
    return {"project": project, "stack": stack, "phase": str(phase), "managed-by": "phasekit"}


def digitalocean_tags(tags: Mapping[str, str]) -> list[str]:
    """DigitalOcean tags are flat names (letters, digits, ``:``, ``-``, ``_``): ``key:value``."""
    return [_DO_TAG_UNSAFE.sub("-", f"{key}:{value}".lower()) for key, value in sorted(tags.items())]


def aws_tags(tags: Mapping[str, str], **extra: str) -> dict[str, str]:
    """AWS tags are a map; ``extra`` (e.g. ``Name``) is added on top, sorted for stable diffs."""
    merged = {**tags, **extra}
    return {key: merged[key] for key in sorted(merged)}


def kubernetes_labels(tags: Mapping[str, str]) -> dict[str, str]:
    """Kubernetes labels: each tag under the ``phasekit.dev/`` prefix, values cut to the label rules
    (63 characters of letters, digits, ``-``, ``_``, ``.``, alphanumeric at both ends)."""
    labels = {}
    for key, value in sorted(tags.items()):
        cleaned = _K8S_LABEL_VALUE_UNSAFE.sub("-", value)[:63].strip("-_.")
        labels[f"{K8S_LABEL_PREFIX}{key}"] = cleaned
    return labels
