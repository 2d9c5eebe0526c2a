"""The Pulumi program: read the stack's config, pick the phase, build its topology.

Only this package reads config; components receive typed args.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from infra.config import ConfigError, load_config
from infra.runtime_config import runtime_raw_config
from infra.stack_secrets import StackSecretInputs, read_secret_inputs

PhaseBuilder = Callable[[Any, StackSecretInputs, str, str], None]

PHASE_MODULES: Mapping[int, str] = {1: "infra.phase1", 2: "infra.phase2", 3: "infra.phase3"}
"""The module whose ``build`` creates each phase's topology. Imported only for the phase a stack picks:
phase 3's AWS and Kubernetes SDKs take seconds to import, which phases 1 and 2 should not pay."""


def phase_builder(phase: int) -> PhaseBuilder:
    return importlib.import_module(PHASE_MODULES[phase]).build


def build_stack(raw: Mapping[str, Any], project: str, stack: str) -> None:
    """Validate ``raw`` config and build the phase it names. Raises ConfigError on bad config."""
    config = load_config(raw)
    secrets = read_secret_inputs(config)
    phase_builder(config.phase)(config, secrets, project, stack)


def main() -> None:
    """Entry point under the Pulumi engine: a bad config stops the run with one message, no traceback."""
    try:
        build_stack(runtime_raw_config(), pulumi.get_project(), pulumi.get_stack())
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None
