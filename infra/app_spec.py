"""The config's ``app`` block as the phase-independent spec every phase's components take."""

from __future__ import annotations

from components.compose_stack import AppSpec
from infra.config import App


def app_spec(app: App, workers: int) -> AppSpec:
    """The config's ``app`` block as the phase-independent spec the components take, with the worker count
    the phase's model derived (``<PhaseStack>.worker_count``)."""
    return AppSpec(
        image=app.image,
        port=app.port,
        health_path=app.health_path,
        workers=workers,
        db_pool_size=app.db_pool_size,
        env=dict(app.env),
        secret_env_names=tuple(app.secret_env),
        release_command=tuple(app.release_command) if app.release_command else None,
        registry_server=app.registry.server if app.registry else None,
        registry_username=app.registry.username if app.registry else None,
        processes=app.process_specs(),
        schedules=app.schedule_specs(),
    )
