"""The Pulumi program: read the stack's config, pick the phase, build its topology.

Only this package reads config; components receive typed args.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from infra.backups import build_backup_store
from infra.config import ConfigError, load_config
from infra.runtime_config import runtime_raw_config
from infra.stack_secrets import read_secret_inputs

PhaseBuilder = Callable[..., None]
"""``build(config, secrets, project, stack, *, backup_store)`` of a phase module."""

PHASE_MODULES: Mapping[int, str] = {1: "infra.phase1", 2: "infra.phase2", 3: "infra.phase3"}
"""The module whose ``build`` creates each phase's topology. Imported only for the phase a stack picks:
phase 3's AWS and Kubernetes SDKs take seconds to import, which phases 1 and 2 should not pay."""


def phase_builder(phase: int) -> PhaseBuilder:
    return importlib.import_module(PHASE_MODULES[phase]).build


def build_stack(raw: Mapping[str, Any], project: str, stack: str) -> None:
    """Validate ``raw`` config and build the phase it names. Raises ConfigError on bad config."""
    config = load_config(raw)
    secrets = read_secret_inputs(config)
    # One backups bucket per stack, whatever the phase. Moving to another phase is a new stack with a bucket of its
    # own; the old stack's bucket is retained on delete, so its copies outlive the old stack.
    backup_store = build_backup_store(config, project, stack)
    phase_builder(config.phase)(config, secrets, project, stack, backup_store=backup_store)


def main() -> None:
    """Entry point under the Pulumi engine: a bad config stops the run with one message, no traceback."""
    try:
        build_stack(runtime_raw_config(), pulumi.get_project(), pulumi.get_stack())
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None
