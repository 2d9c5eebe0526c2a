"""The config models every phase shares: the app, the Cloudflare edge, and what each phase's top level has."""


from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.processes import ProcessSpec, ScheduleSpec
from infra.config_keys import NAMESPACE, SECRET_KEYS
from infra.domain import (
    Allowed,
    AppEnvName,
    CloudflareId,
    CpuQuantity,
    CronSchedule,
    DbPoolSize,
    EnvValue,
    Hostname,
    HttpPath,
    ImageRef,
    MemoryQuantity,
    NonEmptyStr,
    OnCalendar,
    Port,
    ProcessCron,
    ProcessName,
    TagKey,
    TagValue,
    WholeNumber,
    WorkerCount,
    memory_mib,
    problem,
)

MAX_POSTGRES_CONNECTIONS = 262143
"""PostgreSQL's own ceiling for ``max_connections``."""


class ConfigModel(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        # Python callers may use snake_case names; load_config passes by_name=False so stack files may not.
        validate_by_name=True,
        validate_by_alias=True,
    )


REGISTRY_PASSWORD_SECRET = "REGISTRY_PASSWORD"
"""The ``phasekit:secrets`` entry holding the password (or token) for ``app.registry``."""

BACKUP_PASSPHRASE_SECRET = "BACKUP_PASSPHRASE"
"""The ``phasekit:secrets`` entry every phase requires: the key the off-site backups are encrypted with.
It is the user's, not generated into Pulumi state, because a key kept only in the state dies with the state."""

BACKUP_PASSPHRASE_MIN_LENGTH = 16
"""Shortest ``BACKUP_PASSPHRASE`` accepted; ``openssl rand -base64 32`` gives 44 characters."""


class Registry(ConfigModel):
    """A private registry the droplet logs in to before pulling ``app.image``."""

    server: Hostname
    """Registry host; must be the registry of ``app.image``, its first part (e.g. ``ghcr.io``), or
    ``docker.io`` for a Docker Hub image."""

    username: NonEmptyStr
    """User the token belongs to; the password is ``phasekit:secrets.REGISTRY_PASSWORD``."""


def _exec_command(example: str) -> object:
    """A command in exec form; like Compose's ``command`` and a pod's ``args``, it keeps the image's entrypoint."""
    return Annotated[tuple[NonEmptyStr, ...], Field(min_length=1),
                     Allowed(f"an exec-form list of non-empty strings, e.g. {example}")]


ExecCommand = _exec_command("[celery, -A, shop, worker]")
ScheduleCommand = _exec_command("[python, manage.py, clearsessions]")
ReleaseCommand = _exec_command("[python, manage.py, migrate]")


class Process(ConfigModel):
    """A long-running process besides the web one (a queue worker): same image, environment and app contract, its
    own command, no traffic. Each replica is assumed to hold one pool of ``app.dbPoolSize`` connections."""

    command: ExecCommand
    """What the process runs, in exec form, e.g. ``[celery, -A, shop, worker]``."""

    count: Annotated[WholeNumber, Field(ge=1, le=50), Allowed("1..50")] = 1
    """How many run: containers on each app droplet in phases 1 and 2, replicas in phase 3 (the autoscaler's floor
    with ``maxCount``). To stop a process, remove it from ``processes``; zero is refused."""

    max_count: Annotated[WholeNumber, Field(ge=1, le=100), Allowed("1..100")] | None = None
    """Phase 3 only: let a CPU autoscaler run up to this many replicas (at least ``count``). ``null``: exactly
    ``count``. Phases 1 and 2 refuse it: a droplet's containers do not autoscale."""

    cpu: CpuQuantity = "250m"
    """CPU each replica requests in phase 3 (never a limit); the autoscaler's percentages are relative to it."""

    memory: MemoryQuantity = "512Mi"
    """Memory each replica may use, in every phase: the container's limit (and phase 3's request), so a leaking
    worker is restarted before it starves PostgreSQL on the same droplet."""

    stop_timeout_seconds: Annotated[WholeNumber, Field(ge=1, le=3600), Allowed("1..3600")] = 30
    """Seconds between SIGTERM and SIGKILL when the process is stopped (a rollout, a scale-in): time to finish or
    hand back the job in hand."""

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Process:
        if self.max_count is not None and self.max_count < self.count:
            raise problem(f"{self.max_count} is below count {self.count}; allowed: maxCount >= count",
                          at=("maxCount",))
        return self


class Schedule(ConfigModel):
    """A command run on a cron schedule in UTC: once per tick across the whole tier, never beside its own previous
    run (a tick that finds it still running is skipped), stopped after ``timeoutSeconds``; a failure alerts."""

    cron: ProcessCron
    """When it runs: five-field cron in UTC, e.g. ``'*/15 * * * *'``."""

    command: ScheduleCommand
    """What it runs, in exec form, e.g. ``[python, manage.py, refresh_trending]``."""

    timeout_seconds: Annotated[WholeNumber, Field(ge=60, le=86400), Allowed("60..86400")] = 3600
    """A run still going after this many seconds is stopped and counts as a failure."""

    cpu: CpuQuantity = "250m"
    """CPU the run requests in phase 3."""

    memory: MemoryQuantity = "512Mi"
    """Memory the run may use, in every phase (the container's limit)."""


class App(ConfigModel):
    """The web application: its image, how it is reached and checked, its environment and concurrency."""

    image: ImageRef
    """Container image, pinned by an explicit tag other than ``latest`` or by a ``sha256`` digest, with a
    lower-case repository path. A registry port (``localhost:5000/shop``) is not a tag."""

    port: Port = 8000
    """Port the app listens on inside its container. In phase 3 it must be 1024 or above: pods run as non-root
    with every capability dropped, so they cannot bind a privileged port."""

    health_path: HttpPath = "/healthz"
    """Path that answers with a 2xx status when the app is healthy, at most 1024 characters (the load
    balancers' limit). Caddy's active health check, ``deploy.sh``, the load balancers and phase 3's pod probes
    poll it."""

    env: Annotated[Mapping[AppEnvName, EnvValue], Allowed("a mapping of NAME: value, e.g. {LOG_LEVEL: info}")] = (
        Field(default_factory=dict)
    )
    """Plain environment variables; values are strings, so quote numbers and booleans. Refused: the names
    phasekit sets itself, a name that looks like a secret, and an encrypted value;
    secrets go in ``secretEnv``."""

    secret_env: Annotated[
        tuple[AppEnvName, ...], Allowed("a list of environment variable names, e.g. [SECRET_KEY_BASE]")
    ] = ()
    """Environment variables whose values come from ``phasekit:secrets.<NAME>``, each set with
    ``pulumi config set --secret --path 'secrets.<NAME>'``. Each name once, not also in ``env``, and not a name
    phasekit sets itself."""

    release_command: ReleaseCommand | None = None
    """Command run once per release before the new workers start (migrations), in exec form such as
    ``[python, manage.py, migrate]``; a shell string is refused. ``null`` runs nothing."""

    workers: WorkerCount | None = None
    """Web worker processes per droplet or pod, passed as ``WEB_CONCURRENCY``. ``null``: one per vCPU of the
    droplet size in phases 1 and 2, one per whole core of ``workload.cpuRequest`` in phase 3 (at least
    one)."""

    db_pool_size: DbPoolSize = 5
    """Database connections each worker holds; PostgreSQL's ``max_connections`` is sized from it."""

    registry: Registry | None = None
    """Credentials for a private image, e.g. ``{server: ghcr.io, username: acme}``; the password or token is
    ``phasekit:secrets.REGISTRY_PASSWORD``, never in the app's environment (a droplet keeps it in
    ``/opt/phasekit/secrets/docker/config.json``, 0600, for ``deploy.sh`` alone; in phase 3 it is the
    ``kubernetes.io/dockerconfigjson`` Secret the pods pull with). ``null`` pulls ``image`` anonymously."""

    processes: Annotated[
        Mapping[ProcessName, Process],
        Allowed("a mapping of process names to processes, e.g. {worker: {command: [celery, -A, shop, worker]}}"),
    ] = Field(default_factory=dict)
    """Named processes besides the web one, e.g. ``{worker: {command: [celery, -A, shop, worker], count: 2}}``.
    Phases 1 and 2 run each as Compose service(s) on every app droplet, phase 3 as a Deployment."""

    schedules: Annotated[
        Mapping[ProcessName, Schedule],
        Allowed("a mapping of schedule names to schedules, e.g. {refresh: {cron: '*/15 * * * *', "
                "command: [python, manage.py, refresh]}}"),
    ] = Field(default_factory=dict)
    """Named scheduled commands, e.g. ``{refresh-trending: {cron: '*/15 * * * *', command: [...]}}``. Phases 1 and 2
    run them as systemd timers on one droplet (the one that runs the release command), phase 3 as CronJobs."""

    @field_validator("secret_env")
    @classmethod
    def _each_secret_once(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for index, name in enumerate(names):
            if name in names[:index]:
                raise problem(f"{name!r} is listed twice; allowed: each name once", at=(index,))
        return names

    @model_validator(mode="after")
    def _env_or_secret_env(self) -> App:
        both = [name for name in self.secret_env if name in self.env]
        if both:
            names = ", ".join(repr(name) for name in both)
            verb = "is" if len(both) == 1 else "are"
            raise problem(
                f"{names} {verb} also set in {NAMESPACE}:app.env; allowed: each name in env or secretEnv, not both",
                at=("secretEnv",),
            )
        return self

    @model_validator(mode="after")
    def _registry_serves_the_image(self) -> App:
        if self.registry is None:
            return self
        image_host = _image_registry(self.image)
        if image_host != self.registry.server:
            raise problem(
                f"{self.registry.server!r} is not the registry of app.image ({image_host}); "
                f"allowed: {image_host}",
                at=("registry", "server"),
            )
        return self

    @model_validator(mode="after")
    def _process_and_schedule_names_apart(self) -> App:
        for name in self.schedules:
            if name in self.processes:
                raise problem(f"{name!r} is also a process; allowed: a name used by one process or one schedule",
                              at=("schedules", name))
        return self

    def process_specs(self) -> tuple[ProcessSpec, ...]:
        return tuple(ProcessSpec(name=name, command=process.command, count=process.count,
                                 max_count=process.max_count, cpu=process.cpu,
                                 memory_mib=memory_mib(process.memory),
                                 stop_timeout_seconds=process.stop_timeout_seconds)
                     for name, process in self.processes.items())

    def schedule_specs(self) -> tuple[ScheduleSpec, ...]:
        return tuple(ScheduleSpec(name=name, cron=schedule.cron, command=schedule.command,
                                  timeout_seconds=schedule.timeout_seconds, cpu=schedule.cpu,
                                  memory_mib=memory_mib(schedule.memory))
                     for name, schedule in self.schedules.items())

    def refuse_autoscaled_processes(self, phase: int) -> None:
        """Phases 1 and 2: a droplet's containers do not autoscale."""
        for name, process in self.processes.items():
            if process.max_count is not None:
                raise problem(
                    f"{process.max_count} autoscales, which phase {phase} cannot: a droplet runs a fixed number of "
                    "containers; allowed: null (count sets how many run on each app droplet)",
                    at=("app", "processes", name, "maxCount"))

    def worker_count(self, vcpus: int) -> int:
        """``workers`` when set, else one worker per vCPU (at least one)."""
        return self.workers if self.workers is not None else max(1, vcpus)


class Edge(ConfigModel):
    """Cloudflare in front of the app: the zone, the account holding the media bucket, the public hostname."""

    zone_id: CloudflareId
    """Zone the hostname's DNS record is created in."""

    account_id: CloudflareId
    """Account the R2 media bucket is created in."""

    hostname: Hostname
    """Public hostname of the app, inside the zone; not an IP address, at most 253 characters."""

    proxied: bool = True
    """Serve through Cloudflare's proxy (TLS, caching, origin hidden); ``false`` exposes the droplet's address
    and Caddy gets a public certificate by ACME. Phase 3, and phase 2 with more than one app droplet, need
    ``true``."""

    manage_zone_settings: bool = True
    """Enforce SSL Full (strict), Always Use HTTPS, minimum TLS 1.2 and TLS 1.3 on the zone. These are
    zone-wide: set ``false`` when other sites share the zone and you manage its settings elsewhere."""


class Backups(ConfigModel):
    """Off-site backups to the stack's private R2 backups bucket, encrypted with
    ``phasekit:secrets.BACKUP_PASSPHRASE``. Phases 1 and 2: pgBackRest full and differential backups plus
    continuous WAL archiving, and a Redis snapshot; phase 3: a scheduled logical copy beside RDS's own backups."""

    retention_full: Annotated[WholeNumber, Field(ge=1, le=52), Allowed("1..52")] = 4
    """Full backups kept (phases 1 and 2, pgBackRest's ``repo1-retention-full``): with the weekly
    ``fullSchedule``, 4 keeps four weeks. WAL is kept as far back as the oldest full backup needs."""

    retention_diff: Annotated[WholeNumber, Field(ge=1, le=365), Allowed("1..365")] = 7
    """Differential backups kept (phases 1 and 2, pgBackRest's ``repo1-retention-diff``): with the daily
    ``diffSchedule``, 7 keeps a week of them."""

    recovery_point_minutes: Annotated[WholeNumber, Field(ge=1, le=60), Allowed("1..60")] = 5
    """Most minutes of committed writes a restore may lose (phases 1 and 2). PostgreSQL's ``archive_timeout``
    is half of it, so a quiet database still ships a WAL segment that often; the backup alert fires when the
    newest archived segment is older than this."""

    full_schedule: OnCalendar = "Sun *-*-* 03:30:00"
    """When a full backup runs (phases 1 and 2): a systemd ``OnCalendar`` expression in the droplet's time
    zone (UTC)."""

    diff_schedule: OnCalendar = "Mon..Sat *-*-* 03:30:00"
    """When a differential backup runs (phases 1 and 2): a systemd ``OnCalendar`` expression (UTC). The backup
    alert expects a full or differential backup at least every 30 hours, so together the two schedules must run
    one at least daily."""

    redis_schedule: OnCalendar = "*-*-* 04:00:00"
    """When Redis's snapshot is encrypted and copied to the bucket (phases 1 and 2): a systemd ``OnCalendar``
    expression (UTC)."""

    redis_keep_days: Annotated[WholeNumber, Field(ge=1, le=3650), Allowed("1..3650")] = 30
    """Days a Redis snapshot is kept in the bucket (phases 1 and 2); R2's object lifecycle deletes older ones.
    PostgreSQL's backups are never expired by the lifecycle, only by pgBackRest's retention."""

    logical_schedule: CronSchedule = "30 3 * * *"
    """When phase 3's logical copy (``pg_dump``, encrypted) of the RDS database runs: a five-field cron schedule
    (UTC). RDS's own point-in-time backups run as well."""

    logical_keep: Annotated[WholeNumber, Field(ge=1, le=1000), Allowed("1..1000")] = 35
    """Logical copies phase 3 keeps in the bucket; older ones are deleted after each new copy."""


class PhaseStack(ConfigModel):
    """What every phase's top-level model has in common."""

    protect: bool = True
    """Protect and retain stateful resources (data volumes, the database droplet, the RDS instance and the
    cache, the media bucket) against delete and replace, with Pulumi's ``protect`` and ``retainOnDelete``."""

    tags: Annotated[
        Mapping[TagKey, TagValue], Allowed("a mapping of tag keys to values, e.g. {team: web}")
    ] = Field(default_factory=dict)
    """Extra tags on the provider resources that take tags (and labels on Kubernetes objects); phasekit's own
    (project, stack, phase, managed-by) take precedence. On DigitalOcean they are ``key:value`` tags on the
    droplets and volumes, not on firewalls or alerts, where a tag would select other droplets. A whole-number
    value (``cost-center: 1234``) is read as its digits."""

    backups: Backups = Field(default_factory=Backups)
    """Off-site backups to the stack's private R2 backups bucket: schedules, retention and the recovery point.
    Every phase requires ``phasekit:secrets.BACKUP_PASSPHRASE``, the key they are encrypted with."""

    @classmethod
    def accepted_keys(cls) -> frozenset[str]:
        """Every ``phasekit:`` key (without the namespace) a stack of this phase may set."""
        return frozenset(field.alias or name for name, field in cls.model_fields.items()) | SECRET_KEYS


def _image_registry(image: str) -> str:
    """The registry host of an image reference, as Docker resolves it (no host means Docker Hub)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first.split(":")[0]
    return "docker.io"
