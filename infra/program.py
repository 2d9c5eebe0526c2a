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

PHASE_MODULES: Mapping[int, str] = {1: "infra.phase1", 2: "infra.phase2", 3: "infra.phase3"}
"""The module whose ``build(config, secrets, project, stack, *, backup_store, **prepared)`` creates each phase's
topology, after its optional ``preflight(config, project, stack) -> prepared``. Imported only for the phase a
stack picks: phase 3's AWS and Kubernetes SDKs take seconds to import, which phases 1 and 2 should not pay."""


def build_stack(raw: Mapping[str, Any], project: str, stack: str) -> None:
    """Validate ``raw`` config and build the phase it names. Raises ConfigError on bad config, and on a change the
    phase's preflight refuses against what already runs."""
    config = load_config(raw)
    secrets = read_secret_inputs(config)
    phase = importlib.import_module(PHASE_MODULES[config.phase])
    # Before the stack's first resource: `pulumi up --skip-preview` (how CI runs it) creates whatever was
    # registered before a refusal, so a refusal must come before anything is.
    preflight: Callable[..., dict[str, Any]] | None = getattr(phase, "preflight", None)
    prepared = preflight(config, project, stack) if preflight is not None else {}
    # One backups bucket per stack, whatever the phase. Moving to another phase is a new stack with a bucket of its
    # own; the old stack's bucket is retained on delete, so its copies outlive the old stack.
    backup_store = build_backup_store(config, project, stack)
    phase.build(config, secrets, project, stack, backup_store=backup_store, **prepared)


def main() -> None:
    """Entry point under the Pulumi engine: a bad config stops the run with one message, no traceback."""
    try:
        build_stack(runtime_raw_config(), pulumi.get_project(), pulumi.get_stack())
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None
