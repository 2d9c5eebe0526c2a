"""The stack config: one frozen, typed model tree per phase, loaded from a stack file's ``config:`` mapping.

Users write camelCase keys under the ``phasekit:`` namespace; Python code reads snake_case attributes. Keys of
other namespaces (``digitalocean:``, ``cloudflare:``, ``aws:``, ``kubernetes:``, ``pulumi:``) are ignored, and
the secret-bearing keys ``phasekit:secrets`` and ``phasekit:sshPrivateKey`` never become model fields: the
program reads them with ``require_secret``. ``load_config`` is pure, so tests run without the Pulumi runtime.

Error messages. Every problem is one line::

    <key as the user writes it>: <the bad value, quoted> <what is wrong>; allowed: <what is allowed>

for example ``phasekit:vps.sshAdminCidrs[0]: '0.0.0.0/0' opens SSH to the whole internet; allowed: ...``.
Missing keys read ``<key>: missing; allowed: ...`` and unknown keys ``<key>: unknown key; allowed: <the
keys that level accepts>``. A ``ConfigError`` with one problem is exactly that line; with several, the first
line is ``invalid stack config (<n> problems):`` and each problem follows on its own line, indented by two
spaces. Plain-text secrets are reported by key only, never with their value.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.tuning import RESERVED_DB_CONNECTIONS, db_max_connections
from infra.config_keys import NAMESPACE, SECRET_KEYS, is_secure_value, pulumi_path, show_value
from infra.config_messages import describe_problem, without_consequences
from infra.domain import (
    Allowed,
    ApiAdminCidr,
    AppEnvName,
    AwsRegion,
    BackupPlan,
    CacheEngine,
    CacheNodeType,
    CloudflareId,
    CpuQuantity,
    DbPoolSize,
    DigitalOceanRegion,
    DropletResources,
    DropletSize,
    Ec2InstanceType,
    EksVersion,
    EmailAddress,
    EnvValue,
    Hostname,
    HttpPath,
    IamPrincipalArn,
    ImageRef,
    MemoryQuantity,
    NatStrategy,
    NonEmptyStr,
    PoolMode,
    Port,
    RdsInstanceClass,
    RedisPlacement,
    RedisPlacementValue,
    SshAdminCidr,
    SshKeyFingerprint,
    TagKey,
    TagValue,
    VolumeSizeGib,
    VpcCidr,
    WholeNumber,
    WorkerCount,
    cpu_millicores,
    droplet_resources,
    memory_mib,
    problem,
)
from infra.errors import ConfigError

MAX_POSTGRES_CONNECTIONS = 262143
"""PostgreSQL's own ceiling for ``max_connections``."""

class _Model(BaseModel):
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


class Registry(_Model):
    """A private registry the droplet logs in to before pulling ``app.image``."""

    server: Hostname
    """Registry host, the first part of ``app.image`` (e.g. ``ghcr.io``); ``docker.io`` for Docker Hub."""

    username: NonEmptyStr
    """User the token belongs to; the password is ``phasekit:secrets.REGISTRY_PASSWORD``."""


class App(_Model):
    """The web application: its image, how it is reached and checked, its environment and concurrency."""

    image: ImageRef
    """Container image, pinned by an explicit tag (not ``latest``) or a ``sha256`` digest."""

    port: Port = 8000
    """Port the app listens on inside its container."""

    health_path: HttpPath = "/healthz"
    """Path that answers 200 when the app is healthy; load balancers and the deploy check poll it."""

    env: Annotated[Mapping[AppEnvName, EnvValue], Allowed("a mapping of NAME: value, e.g. {LOG_LEVEL: info}")] = (
        Field(default_factory=dict)
    )
    """Plain environment variables. Names phasekit sets itself (``RESERVED_ENV_NAMES``) are refused."""

    secret_env: Annotated[
        tuple[AppEnvName, ...], Allowed("a list of environment variable names, e.g. [SECRET_KEY_BASE]")
    ] = ()
    """Environment variables whose values come from ``phasekit:secrets.<NAME>``; none may also be in ``env``."""

    release_command: (
        Annotated[
            tuple[NonEmptyStr, ...],
            Field(min_length=1),
            Allowed("an exec-form list of non-empty strings, e.g. [python, manage.py, migrate]"),
        ]
        | None
    ) = None
    """Command run once per release before new workers start (migrations); ``None`` runs nothing."""

    workers: WorkerCount | None = None
    """Web worker processes; ``None`` means one per vCPU of the machine (see ``worker_count``)."""

    db_pool_size: DbPoolSize = 5
    """Database connections each worker holds; PostgreSQL's ``max_connections`` is sized from it."""

    registry: Registry | None = None
    """Credentials for a private image; ``None`` pulls ``image`` anonymously."""

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

    def worker_count(self, vcpus: int) -> int:
        """``workers`` when set, else one worker per vCPU (at least one)."""
        return self.workers if self.workers is not None else max(1, vcpus)


class Edge(_Model):
    """Cloudflare in front of the app: the zone, the account holding the media bucket, the public hostname."""

    zone_id: CloudflareId
    """Zone the hostname's DNS record is created in."""

    account_id: CloudflareId
    """Account the R2 media bucket is created in."""

    hostname: Hostname
    """Public hostname of the app, inside the zone."""

    proxied: bool = True
    """Serve through Cloudflare's proxy (TLS, caching, origin hidden); ``False`` exposes the droplet's address."""

    manage_zone_settings: bool = True
    """Enforce SSL Full (strict), Always Use HTTPS and TLS >= 1.2 on the zone. These are zone-wide: set
    ``false`` when other sites share the zone and you manage its settings elsewhere."""


class DropletAccess(_Model):
    """Where droplets run, how they are backed up, who may SSH to them and who gets their alerts.

    Phase 1's ``vps`` and phase 2's ``droplets`` are this model (phase 1 adds the one droplet's size)."""

    region: DigitalOceanRegion
    """DigitalOcean region (``pulumi_digitalocean.Region``)."""

    backups: bool = True
    """DigitalOcean droplet backups."""

    backup_plan: Annotated[BackupPlan, Allowed("daily or weekly", noun="a backup plan")] = BackupPlan.WEEKLY
    """How often droplets are backed up; only meaningful with ``backups``."""

    ssh_admin_cidrs: Annotated[
        tuple[SshAdminCidr, ...],
        Field(min_length=1),
        Allowed("one or more networks you administer from, e.g. [203.0.113.0/24]"),
    ]
    """Networks the firewalls open SSH to; never the whole internet."""

    ssh_key_fingerprints: Annotated[
        tuple[SshKeyFingerprint, ...],
        Field(min_length=1),
        Allowed("one or more MD5 fingerprints of SSH keys in your DigitalOcean account"),
    ]
    """DigitalOcean SSH keys installed for root, which the rollouts log in as."""

    alert_emails: Annotated[
        tuple[EmailAddress, ...], Field(min_length=1), Allowed("one or more e-mail addresses, e.g. [ops@example.com]")
    ]
    """Who receives the droplets' monitoring alerts."""

    @model_validator(mode="after")
    def _backup_plan_needs_backups(self) -> DropletAccess:
        if not self.backups and "backup_plan" in self.model_fields_set:
            raise problem(
                f"{self.backup_plan.value!r} has no effect while backups is false; "
                "allowed: remove backupPlan, or set backups: true",
                at=("backupPlan",),
            )
        return self


class _Sized(_Model):
    size: DropletSize
    """Droplet size (``pulumi_digitalocean.DropletSlug``) with at least 1 GiB of memory."""

    @property
    def vcpus(self) -> int:
        """vCPUs of ``size``."""
        return self._resources().vcpus

    @property
    def memory_mib(self) -> int:
        """Memory of ``size`` in MiB."""
        return self._resources().memory_mib

    def _resources(self) -> DropletResources:
        resources = droplet_resources(self.size.value)
        assert resources is not None, "DropletSize admits only sizes droplet_resources can read"
        return resources


class Vps(DropletAccess, _Sized):
    """Phase 1's droplet: where, how big, its data volume, its backups, who may SSH and who gets alerts."""

    volume_size_gib: VolumeSizeGib = 10
    """Block-storage volume for PostgreSQL and Redis data, in GiB."""


class AppTier(_Sized):
    """Phase 2's app droplets: each runs the reverse proxy and the app."""

    count: Annotated[int, Field(ge=1, le=10), Allowed("1..10")] = 2
    """App droplets; more than one puts a DigitalOcean load balancer in front of them."""


class Database(_Sized):
    """Phase 2's database droplet: PostgreSQL (and Redis) on the private network only."""

    volume_size_gib: VolumeSizeGib = 20
    """Block-storage volume for PostgreSQL and Redis data, in GiB."""

    pgbouncer: bool = False
    """Pool the app's connections through PgBouncer on the database droplet."""

    pool_mode: Annotated[PoolMode, Allowed("transaction or session", noun="a pool mode")] = PoolMode.TRANSACTION
    """PgBouncer's pool mode; only meaningful with ``pgbouncer``."""

    @model_validator(mode="after")
    def _pool_mode_needs_pgbouncer(self) -> Database:
        if not self.pgbouncer and "pool_mode" in self.model_fields_set:
            raise problem(
                f"{self.pool_mode.value!r} has no effect while pgbouncer is false; "
                "allowed: remove poolMode, or set pgbouncer: true",
                at=("poolMode",),
            )
        return self


class Redis(_Model):
    """Where phase 2's shared Redis runs."""

    placement: RedisPlacementValue = RedisPlacement.DATABASE
    """``database``: on the database droplet, reachable from every app droplet over the VPC."""


class _PhaseStack(_Model):
    """What every phase's top-level model has in common."""

    protect: bool = True
    """Protect and retain stateful resources (data volumes, the database droplet, the RDS instance and the
    cache, the media bucket) against delete and replace."""

    tags: Annotated[
        Mapping[TagKey, TagValue], Allowed("a mapping of tag keys to values, e.g. {team: web}")
    ] = Field(default_factory=dict)
    """Extra tags on the provider resources that take tags (and labels on Kubernetes objects); phasekit's own
    (project, stack, phase, managed-by) take precedence."""

    @classmethod
    def accepted_keys(cls) -> frozenset[str]:
        """Every ``phasekit:`` key (without the namespace) a stack of this phase may set."""
        return frozenset(field.alias or name for name, field in cls.model_fields.items()) | SECRET_KEYS


class Phase1Stack(_PhaseStack):
    """Phase 1: the whole app (web, PostgreSQL, Redis) on one droplet behind Cloudflare, media in R2."""

    phase: Literal[1]
    """The discriminator: which phase's model applies."""

    app: App
    edge: Edge
    vps: Vps

    @property
    def worker_count(self) -> int:
        """Web workers to run: ``app.workers``, or one per vCPU of the droplet."""
        return self.app.worker_count(self.vps.vcpus)


class Phase2Stack(_PhaseStack):
    """Phase 2: app droplets (behind a load balancer when more than one) and a database droplet on a VPC."""

    phase: Literal[2]
    app: App
    edge: Edge
    droplets: DropletAccess
    app_tier: AppTier
    database: Database
    redis: Redis = Field(default_factory=Redis)

    @model_validator(mode="after")
    def _load_balancer_needs_proxied_edge(self) -> Phase2Stack:
        if self.app_tier.count > 1 and not self.edge.proxied:
            raise problem(
                f"{self.app_tier.count} app droplets need edge.proxied: true (the load balancer passes TLS "
                "through, and each droplet would have to win its own ACME challenge); "
                "allowed: appTier.count: 1, or edge.proxied: true",
                at=("appTier", "count"),
            )
        return self

    @property
    def worker_count(self) -> int:
        """Web workers per app droplet: ``app.workers``, or one per vCPU of an app droplet."""
        return self.app.worker_count(self.app_tier.vcpus)


class Aws(_Model):
    """Where phase 3 runs: the region, its availability zones and how private subnets reach the internet."""

    region: AwsRegion
    """AWS region (``pulumi_aws.Region``)."""

    availability_zones: Annotated[
        tuple[NonEmptyStr, ...], Allowed("2 or 3 zones of the region, e.g. [us-east-1a, us-east-1b]")
    ]
    """Zones the VPC, the nodes, the database and the cache span."""

    nat_strategy: Annotated[NatStrategy, Allowed("single or per-az", noun="a NAT strategy")] = NatStrategy.SINGLE
    """``single``: one NAT gateway (about $33/month plus traffic; losing its zone cuts the others' egress, not
    their traffic from users). ``per-az``: one per zone, about $33/month each, egress survives a zone loss."""

    vpc_cidr: VpcCidr = "10.20.0.0/16"
    """The VPC's range; subnets are carved from it."""

    @model_validator(mode="after")
    def _zones_of_the_region(self) -> Aws:
        zones = self.availability_zones
        allowed = f"2 or 3 zones of {self.region}, e.g. [{self.region}a, {self.region}b]"
        for index, zone in enumerate(zones):
            if not re.fullmatch(rf"{re.escape(self.region)}[a-z]", zone):
                raise problem(f"{zone!r} is not a zone of {self.region}; allowed: {allowed}",
                              at=("availabilityZones", index))
            if zone in zones[:index]:
                raise problem(f"{zone!r} is listed twice; allowed: {allowed}", at=("availabilityZones", index))
        if len(zones) < 2:
            raise problem(
                f"{list(zones)!r} is {len(zones)} zone; allowed: {allowed} (the Multi-AZ database, the cache's "
                "failover and the EKS control plane each need a second zone)",
                at=("availabilityZones",))
        if len(zones) > 3:
            raise problem(f"{len(zones)} zones; allowed: {allowed}", at=("availabilityZones",))
        return self


class NodeGroup(_Model):
    """The EKS managed node group."""

    instance_types: Annotated[
        tuple[Ec2InstanceType, ...], Field(min_length=1), Allowed("one or more EC2 instance types, e.g. [t3.large]")
    ] = ("t3.large",)
    min_size: Annotated[WholeNumber, Field(ge=1, le=100), Allowed("1..100")] = 2
    desired_size: Annotated[WholeNumber, Field(ge=1, le=100), Allowed("1..100")] = 2
    max_size: Annotated[WholeNumber, Field(ge=1, le=100), Allowed("1..100")] = 4
    disk_size_gib: Annotated[WholeNumber, Field(ge=20, le=1000), Allowed("20..1000")] = 50

    @model_validator(mode="after")
    def _one_architecture(self) -> NodeGroup:
        from components.eks_cluster import node_ami_type  # imports pulumi-aws: only phase 3 pays for it

        try:
            node_ami_type(self.instance_types)
        except ValueError:
            raise problem(
                f"{list(self.instance_types)!r} mixes Graviton (ARM) and x86 types; allowed: types of one "
                "architecture (one node group runs one AMI)", at=("instanceTypes",)) from None
        return self

    @model_validator(mode="after")
    def _sizes_in_order(self) -> NodeGroup:
        if self.desired_size < self.min_size:
            raise problem(f"{self.desired_size} is below minSize {self.min_size}; allowed: minSize <= desiredSize "
                          "<= maxSize", at=("desiredSize",))
        if self.desired_size > self.max_size:
            raise problem(f"{self.desired_size} is above maxSize {self.max_size}; allowed: minSize <= desiredSize "
                          "<= maxSize", at=("desiredSize",))
        return self


class Cluster(_Model):
    """The EKS cluster: its Kubernetes version, who may reach and administer its API, its nodes."""

    version: EksVersion = "1.34"
    endpoint_public_access_cidrs: Annotated[
        tuple[ApiAdminCidr, ...],
        Allowed("IPv4 networks you administer from, e.g. [203.0.113.0/24], or [] for a private-only endpoint"),
    ]
    """Who may reach the public Kubernetes API endpoint; ``[]`` turns the public endpoint off."""

    admin_principal_arns: Annotated[
        tuple[IamPrincipalArn, ...],
        Field(min_length=1),
        Allowed("one or more IAM role or user ARNs, including the one that runs pulumi up"),
    ]
    """IAM principals given cluster-admin through EKS access entries; ``pulumi up`` deploys the app with
    the credentials it runs with, so that principal must be listed."""

    node_group: NodeGroup = Field(default_factory=NodeGroup)

    @model_validator(mode="after")
    def _each_admin_once(self) -> Cluster:
        from components.eks_cluster import admin_slug  # imports pulumi-aws: only phase 3 pays for it

        first_index: dict[str, int] = {}
        for index, arn in enumerate(self.admin_principal_arns):
            slug = admin_slug(arn)
            if slug in first_index:
                kind, earlier = slug.split("-", 1)[0], first_index[slug]
                raise problem(
                    f"{arn!r} has the same IAM {kind} name as adminPrincipalArns[{earlier}]; "
                    "allowed: each role or user once (its access entry is named after it)",
                    at=("adminPrincipalArns", index))
            first_index[slug] = index
        return self


class RdsDatabase(_Model):
    """Phase 3's database: RDS PostgreSQL."""

    instance_class: RdsInstanceClass = "db.t4g.medium"
    engine_version: Annotated[str, Field(pattern=r"^1[4-7]$"), Allowed("a PostgreSQL major version 14..17")] = "16"
    storage_gib: Annotated[WholeNumber, Field(ge=20, le=65536), Allowed("20..65536")] = 20
    max_storage_gib: Annotated[WholeNumber, Field(ge=21, le=65536), Allowed("21..65536")] = 100
    """Storage autoscaling ceiling; above ``storageGib``."""

    multi_az: bool = True
    """A synchronous standby in a second zone with automatic failover."""

    backup_retention_days: Annotated[WholeNumber, Field(ge=7, le=35), Allowed("7..35")] = 7
    read_replicas: Annotated[WholeNumber, Field(ge=0, le=5), Allowed("0..5")] = 0

    @model_validator(mode="after")
    def _class_runs_performance_insights(self) -> RdsDatabase:
        if self.instance_class.rsplit(".", 1)[-1] in ("micro", "small"):
            raise problem(
                f"{self.instance_class!r} is too small for Performance Insights, which phasekit keeps on; "
                "allowed: a medium or larger class, e.g. db.t4g.medium",
                at=("instanceClass",))
        return self

    @model_validator(mode="after")
    def _storage_can_grow(self) -> RdsDatabase:
        if self.max_storage_gib <= self.storage_gib:
            raise problem(f"{self.max_storage_gib} is not above storageGib {self.storage_gib}; allowed: a ceiling "
                          "above storageGib", at=("maxStorageGib",))
        return self


class Cache(_Model):
    """Phase 3's Redis: an ElastiCache replication group."""

    engine: Annotated[CacheEngine, Allowed("valkey or redis", noun="a cache engine")] = CacheEngine.VALKEY
    node_type: CacheNodeType = "cache.t4g.small"
    node_count: Annotated[WholeNumber, Field(ge=2, le=6),
                          Allowed("2..6 (a primary and at least one replica to fail over to)")] = 2
    snapshot_retention_days: Annotated[WholeNumber, Field(ge=1, le=35), Allowed("1..35")] = 1


class Workload(_Model):
    """How the app runs on Kubernetes: replicas (the HPA's bounds) and each pod's resources."""

    min_replicas: Annotated[WholeNumber, Field(ge=2, le=100),
                            Allowed("2..100 (one pod per zone at least, so a zone or node loss is survived)")] = 2
    max_replicas: Annotated[WholeNumber, Field(ge=2, le=100), Allowed("2..100")] = 6
    cpu_request: CpuQuantity = "250m"
    memory_request: MemoryQuantity = "512Mi"
    memory_limit: MemoryQuantity = "512Mi"

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Workload:
        if self.max_replicas < self.min_replicas:
            raise problem(f"{self.max_replicas} is below minReplicas {self.min_replicas}; allowed: maxReplicas >= "
                          "minReplicas", at=("maxReplicas",))
        if memory_mib(self.memory_limit) < memory_mib(self.memory_request):
            raise problem(f"{self.memory_limit!r} is below memoryRequest {self.memory_request!r}; allowed: a limit "
                          "at least the request", at=("memoryLimit",))
        return self

    @property
    def cpu_millicores(self) -> int:
        return cpu_millicores(self.cpu_request)


class Phase3Stack(_PhaseStack):
    """Phase 3: AWS (VPC across zones, EKS, RDS Multi-AZ, ElastiCache) behind Cloudflare."""

    phase: Literal[3]
    app: App
    edge: Edge
    aws: Aws
    cluster: Cluster
    database: RdsDatabase = Field(default_factory=RdsDatabase)
    cache: Cache = Field(default_factory=Cache)
    workload: Workload = Field(default_factory=Workload)
    alert_emails: Annotated[
        tuple[EmailAddress, ...], Field(min_length=1), Allowed("one or more e-mail addresses, e.g. [ops@example.com]")
    ]
    """Who receives the CloudWatch alarms (through an SNS topic; each address confirms once)."""

    @field_validator("alert_emails")
    @classmethod
    def _each_address_once(cls, emails: tuple[str, ...]) -> tuple[str, ...]:
        from components.alert_topic import subscription_suffix  # imports pulumi-aws: only phase 3 pays for it

        first_index: dict[str, int] = {}
        for index, email in enumerate(emails):
            suffix = subscription_suffix(email)
            if suffix in first_index:
                raise problem(
                    f"{email!r} is the same subscription as alertEmails[{first_index[suffix]}]; allowed: each "
                    "address once (case, dots and dashes aside)", at=(index,))
            first_index[suffix] = index
        return emails

    @model_validator(mode="after")
    def _connections_fit_postgres(self) -> Phase3Stack:
        demand = db_max_connections(self.workload.max_replicas * self.worker_count, self.app.db_pool_size)
        if demand > MAX_POSTGRES_CONNECTIONS:
            raise problem(
                f"{self.workload.max_replicas} pods x {self.worker_count} workers x app.dbPoolSize "
                f"{self.app.db_pool_size} + {RESERVED_DB_CONNECTIONS} reserved need {demand} connections; allowed: "
                f"at most {MAX_POSTGRES_CONNECTIONS} (PostgreSQL's limit; put fewer connections per pod)",
                at=("workload", "maxReplicas"))
        return self

    @model_validator(mode="after")
    def _unprivileged_port(self) -> Phase3Stack:
        if self.app.port < 1024:
            raise problem(
                f"{self.app.port} is a privileged port; allowed: 1024..65535 in phase 3 (pods run as non-root "
                "with every capability dropped, so they cannot bind below 1024)",
                at=("app", "port"))
        return self

    @model_validator(mode="after")
    def _origin_certificate_needs_proxied_edge(self) -> Phase3Stack:
        if not self.edge.proxied:
            raise problem(
                "false is not supported in phase 3: the load balancer presents a Cloudflare Origin CA "
                "certificate, which only Cloudflare's proxy trusts; allowed: true",
                at=("edge", "proxied"))
        return self

    @property
    def worker_count(self) -> int:
        """Web workers per pod: ``app.workers``, or one per whole CPU the pod requests (at least one)."""
        return self.app.worker_count(self.workload.cpu_millicores // 1000)


# pydantic's discriminated union picks the phase's model from `phase`.
StackConfig = Annotated[Union[Phase1Stack, Phase2Stack, Phase3Stack], Field(discriminator="phase")]  # noqa: UP007

_STACK_CONFIG = TypeAdapter(StackConfig)


def _union_members(annotated: Any) -> tuple[type[_PhaseStack], ...]:
    member = typing.get_args(annotated)[0]
    return typing.get_args(member) or (member,)


_MODELS_BY_PHASE: dict[int, type[_PhaseStack]] = {
    typing.get_args(model.model_fields["phase"].annotation)[0]: model for model in _union_members(StackConfig)
}

IMPLEMENTED_PHASES: tuple[int, ...] = tuple(sorted(_MODELS_BY_PHASE))
"""Phases this version can deploy, derived from ``StackConfig``'s members."""


def load_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a stack file's ``config:`` mapping into the model of its phase.

    Raises ``ConfigError`` listing every problem found: plain-text secrets, an unusable phase, and each bad
    key of the phase's model.
    """
    problems = _plain_text_secrets(raw)
    settings = {
        key.removeprefix(f"{NAMESPACE}:"): value
        for key, value in raw.items()
        if key.startswith(f"{NAMESPACE}:") and key.removeprefix(f"{NAMESPACE}:") not in SECRET_KEYS
    }
    phase, phase_problem = _read_phase(settings)
    config = None
    if phase_problem is not None:
        problems.append(phase_problem)
    else:
        try:
            config = _STACK_CONFIG.validate_python({**settings, "phase": phase}, by_name=False)
        except ValidationError as error:
            model = _MODELS_BY_PHASE[phase]
            problems.extend(describe_problem(detail, model) for detail in without_consequences(error.errors()))
    if problems or config is None:
        raise ConfigError(*problems)
    return config


def check_secrets_encrypted(raw: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` if the stack file holds a secret in plain text rather than as ``{secure: ...}``."""
    problems = _plain_text_secrets(raw)
    if problems:
        raise ConfigError(*problems)


def required_secret_names(config: StackConfig) -> list[str]:
    """Entries ``phasekit:secrets`` must hold: every ``app.secretEnv`` name, then the registry password."""
    registry = [REGISTRY_PASSWORD_SECRET] if config.app.registry is not None else []
    return [*config.app.secret_env, *(name for name in registry if name not in config.app.secret_env)]


def secret_env_names_missing(raw: Mapping[str, Any], config: StackConfig) -> list[str]:
    """``required_secret_names`` with no entry under ``phasekit:secrets``, in that order.

    When ``phasekit:secrets`` is encrypted as one value its entries cannot be seen, and none are reported.
    """
    secrets = raw.get(f"{NAMESPACE}:secrets")
    if is_secure_value(secrets):
        return []
    present = set(secrets) if isinstance(secrets, Mapping) else set()
    return [name for name in required_secret_names(config) if name not in present]


def _image_registry(image: str) -> str:
    """The registry host of an image reference, as Docker resolves it (no host means Docker Hub)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first.split(":")[0]
    return "docker.io"


_MISSING = object()


def _read_phase(settings: Mapping[str, Any]) -> tuple[int, None] | tuple[None, str]:
    value = settings.get("phase", _MISSING)
    allowed = ", ".join(str(phase) for phase in IMPLEMENTED_PHASES)
    if value is _MISSING:
        return None, f"{NAMESPACE}:phase: missing; allowed: {allowed}"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        number = int(value)
    if number in _MODELS_BY_PHASE:
        return number, None
    return None, f"{NAMESPACE}:phase: {show_value(value)} is not a phase; allowed: {allowed}"


# --- plain-text secrets ---------------------------------------------------------------------------------------

_PROVIDER_SECRET_KEYS = frozenset(
    {"digitalocean:token", "cloudflare:apiToken", "cloudflare:apiKey", "aws:secretKey", "aws:accessKey"}
)
_SECRET_WORDS = ("password", "token", "secret", "privatekey")
# Paths whose values name secrets rather than hold them.
_SECRET_NAME_LISTS = frozenset({("app", "secretEnv")})


def _looks_secret(key: object) -> bool:
    folded = str(key).lower().replace("_", "").replace("-", "")
    return any(word in folded for word in _SECRET_WORDS)


def _plain_text_secrets(raw: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, value in raw.items():
        if value is None or is_secure_value(value):
            continue
        if key in _PROVIDER_SECRET_KEYS:
            problems.append(_plain_text_secret(key, f"{key} <value>"))
        elif key == f"{NAMESPACE}:secrets":
            problems.extend(_plain_text_in_secrets(value))
        elif key == f"{NAMESPACE}:sshPrivateKey":
            problems.append(_plain_text_secret(key, "sshPrivateKey <value>"))
        elif key.startswith(f"{NAMESPACE}:"):
            for path in _secret_looking_leaves((key.removeprefix(f"{NAMESPACE}:"),), value):
                problems.append(_plain_text_phasekit_secret(path))
    return problems


def _plain_text_in_secrets(secrets: object) -> list[str]:
    how = "pulumi config set --secret --path 'secrets.<NAME>' <value>"
    if not isinstance(secrets, Mapping):
        return [f"{NAMESPACE}:secrets: not a mapping; allowed: a mapping of NAME to a secret set with: {how}"]
    return [
        _plain_text_phasekit_secret(("secrets", name))
        for name, value in secrets.items()
        if value is not None and not is_secure_value(value)
    ]


def _secret_looking_leaves(path: tuple[str | int, ...], value: object) -> Iterator[tuple[str | int, ...]]:
    if value is None or is_secure_value(value) or path in _SECRET_NAME_LISTS:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_looking_leaves((*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_looking_leaves((*path, index), item)
    elif _looks_secret(path[-1]):
        yield path


def _plain_text_phasekit_secret(path: tuple[str | int, ...]) -> str:
    key = f"{NAMESPACE}:{pulumi_path(path)}"
    if path[:2] == ("app", "env") and len(path) == 3:
        name = path[2]
        return _plain_text_secret(
            key, f"--path 'secrets.{name}' <value>, and list {name} in app.secretEnv instead of app.env"
        )
    if len(path) == 1:
        return _plain_text_secret(key, f"{path[0]} <value>")
    return _plain_text_secret(key, f"--path '{pulumi_path(path)}' <value>")


def _plain_text_secret(key: str, set_arguments: str) -> str:
    return f"{key}: plain-text secret in the stack file; set it with: pulumi config set --secret {set_arguments}"
