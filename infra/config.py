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

import os
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from components.tuning import RESERVED_DB_CONNECTIONS, db_max_connections
from infra.domain import (
    PROBLEM_TYPE,
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
    closest_match,
    cpu_millicores,
    did_you_mean,
    droplet_resources,
    memory_mib,
    problem,
)

MAX_POSTGRES_CONNECTIONS = 262143
"""PostgreSQL's own ceiling for ``max_connections``."""

NAMESPACE = "phasekit"
"""The Pulumi config namespace (the project name) phasekit's own keys live under."""

SECRET_KEYS = frozenset({"secrets", "sshPrivateKey"})
"""phasekit keys the program reads as secrets; they are accepted but never model fields."""



class ConfigError(Exception):
    """A stack config phasekit refuses; ``str()`` is the whole message for the user (format: module docstring)."""

    problems: tuple[str, ...]
    """One line per problem, each starting with the key it concerns."""

    def __init__(self, *problems: str) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        super().__init__(*problems)
        self.problems = problems

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        lines = "\n".join(f"  {line}" for line in self.problems)
        return f"invalid stack config ({len(self.problems)} problems):\n{lines}"


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
            problems.extend(_describe(detail, model) for detail in _without_consequences(error.errors()))
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


def read_yaml(path: Path, what: str, shown: str | None = None) -> Any:
    """The YAML document in ``path`` (a stack file, the price catalog, the replacement rules); anything
    unreadable stops with one line naming the file as ``shown`` (default: the path) and, for bad YAML, the
    line and column."""
    shown = str(path) if shown is None else shown
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{shown}: cannot read {what}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not a UTF-8 text file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
        reason = getattr(error, "problem", None) or " ".join(str(error).split())
        raise ConfigError(f"{where}: not valid YAML: {reason}") from None


def read_stack_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config:`` mapping of a ``Pulumi.<stack>.yaml`` file (``{}`` when it has none)."""
    path = Path(path)
    document = read_yaml(path, "the stack file")
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a Pulumi stack file: the top level is not a mapping")
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: config: {_show(config)} is not a mapping; allowed: a mapping of config keys")
    return config


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
    return None, f"{NAMESPACE}:phase: {_show(value)} is not a phase; allowed: {allowed}"


# --- plain-text secrets ---------------------------------------------------------------------------------------

_PROVIDER_SECRET_KEYS = frozenset(
    {"digitalocean:token", "cloudflare:apiToken", "cloudflare:apiKey", "aws:secretKey", "aws:accessKey"}
)
_SECRET_WORDS = ("password", "token", "secret", "privatekey")
# Paths whose values name secrets rather than hold them.
_SECRET_NAME_LISTS = frozenset({("app", "secretEnv")})


def is_secure_value(value: object) -> bool:
    """A stack-file value Pulumi encrypted: ``{secure: <ciphertext>}``."""
    return isinstance(value, Mapping) and set(value) == {"secure"} and isinstance(value["secure"], str)


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
    key = f"{NAMESPACE}:{_pulumi_path(path)}"
    if path[:2] == ("app", "env") and len(path) == 3:
        name = path[2]
        return _plain_text_secret(
            key, f"--path 'secrets.{name}' <value>, and list {name} in app.secretEnv instead of app.env"
        )
    if len(path) == 1:
        return _plain_text_secret(key, f"{path[0]} <value>")
    return _plain_text_secret(key, f"--path '{_pulumi_path(path)}' <value>")


def _plain_text_secret(key: str, set_arguments: str) -> str:
    return f"{key}: plain-text secret in the stack file; set it with: pulumi config set --secret {set_arguments}"


# --- translating pydantic errors ------------------------------------------------------------------------------

_SIMPLE_PATH_PART = re.compile(r'[^.\[\]"]+')

_TYPE_FAULTS = {
    "int_type": "is not an integer",
    "int_parsing": "is not an integer",
    "int_from_float": "is not an integer",
    "int_parsing_size": "is out of range",
    "bool_type": "is not true or false",
    "bool_parsing": "is not true or false",
    "string_type": "is not a string",
    "list_type": "is not a list",
    "tuple_type": "is not a list",
    "dict_type": "is not a mapping",
    "mapping_type": "is not a mapping",
    "model_type": "is not a mapping",
    "model_attributes_type": "is not a mapping",
    "greater_than": "is out of range",
    "greater_than_equal": "is out of range",
    "less_than": "is out of range",
    "less_than_equal": "is out of range",
    "too_long": "is too long",
}


def _without_consequences(details: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop a list's "too short" when it only follows from its own items being refused."""
    return [
        detail
        for detail in details
        if detail["type"] != "too_short"
        or not any(other["loc"][: len(detail["loc"])] == detail["loc"] and other is not detail for other in details)
    ]


def _describe(detail: ErrorDetails, model: type[_PhaseStack]) -> str:
    """One phasekit problem line for one pydantic error of ``model`` (validated through the tagged union)."""
    loc = tuple(detail["loc"][1:])  # the first element is the union's tag, the phase
    kind = detail["type"]
    context = detail.get("ctx") or {}
    if kind == PROBLEM_TYPE:
        return f"{_key((*loc, *context['at']))}: {context['message']}"
    if kind == "extra_forbidden":
        return _unknown_key(loc, model)
    allowed, noun = _allowed_at(model, loc)
    if kind == "missing":
        return f"{_key(loc)}: missing; allowed: {allowed}"
    value = detail["input"]
    if is_secure_value(value):
        return (
            f"{_key(loc)}: an encrypted value cannot be used here; allowed: {allowed} "
            f"(app secrets go under {NAMESPACE}:secrets, named in app.secretEnv)"
        )
    if kind == "too_short":
        fault = "is empty" if not value else "is too short"
    elif kind in ("enum", "literal_error"):
        fault = f"is not {noun or 'an allowed value'}"
    else:
        fault = _TYPE_FAULTS.get(kind, "is not valid")
    return f"{_key(loc)}: {_show(value)} {fault}; allowed: {allowed}"


def _unknown_key(loc: tuple[str | int, ...], model: type[_PhaseStack]) -> str:
    parent = _model_at(model, loc[:-1])
    name = str(loc[-1])
    if not loc[:-1]:
        keys = model.accepted_keys()
        known = sorted(f"{NAMESPACE}:{key}" for key in keys)
        # Matched without the namespace, which every candidate shares and would make anything look close.
        match = closest_match(name, keys)
        hint = f" (did you mean '{NAMESPACE}:{match}'?)" if match is not None else ""
    else:
        known = sorted(_aliases(parent)) if parent is not None else []
        hint = did_you_mean(name, known)
    return f"{_key(loc)}: unknown key; allowed: {', '.join(known)}{hint}"


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    annotation, _ = _annotation_at(model, loc)
    return annotation if _is_model(annotation) else None


def _allowed_at(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[str, str | None]:
    """The ``allowed:`` text and set noun for the value at ``loc``, from the ``Allowed`` markers on the types."""
    annotation, metadata = _annotation_at(model, loc)
    for marker in reversed(metadata):
        if isinstance(marker, Allowed):
            return marker.text, marker.noun
    if _is_model(annotation):
        return f"a mapping with keys {', '.join(sorted(_aliases(annotation)))}", None
    if annotation is bool:
        return "true or false", None
    return "see the README's config reference", None


def _annotation_at(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[Any, list[Any]]:
    """Walk the model's type annotations along an error location; returns the type there and its metadata."""
    annotation: Any = model
    metadata: list[Any] = []
    index = 0
    while index < len(loc):
        part = loc[index]
        annotation, metadata = _unwrap(annotation, metadata)
        origin = typing.get_origin(annotation)
        arguments = typing.get_args(annotation)
        if _is_model(annotation) and isinstance(part, str):
            field = next(
                (field for name, field in annotation.model_fields.items() if part in (field.alias, name)), None
            )
            if field is None:
                return None, []
            annotation, metadata = field.annotation, list(field.metadata)
        elif origin in (tuple, list) and isinstance(part, int):
            annotation, metadata = arguments[0], []
        elif origin in (dict, Mapping) and index + 1 < len(loc) and loc[index + 1] == "[key]":
            annotation, metadata = arguments[0], []
            index += 1
        elif origin in (dict, Mapping):
            annotation, metadata = arguments[1], []
        else:
            return None, []
        index += 1
    return _unwrap(annotation, metadata)


def _unwrap(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` (collecting its metadata) and ``| None`` until a plain type is left."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            metadata = [*metadata, *annotation.__metadata__]
            annotation = typing.get_args(annotation)[0]
            continue
        arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        if typing.get_origin(annotation) in (Union, types.UnionType) and len(arguments) == 1:
            annotation = arguments[0]
            continue
        return annotation, metadata


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _key(loc: Sequence[str | int]) -> str:
    """The key as the user writes it: ``phasekit:vps.sshAdminCidrs[0]``."""
    return f"{NAMESPACE}:{_pulumi_path([part for part in loc if part != '[key]'])}"


def _pulumi_path(parts: Sequence[str | int]) -> str:
    """A ``pulumi config --path`` path: ``app.env.LOG_LEVEL``, ``vps.alertEmails[0]``, ``tags["a.b"]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _SIMPLE_PATH_PART.fullmatch(part):
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else part
    return text


_MAX_SHOWN = 80


def _show(value: object) -> str:
    """A value as the user wrote it in YAML, strings quoted, cut short when long."""
    text = _render(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _render(value: object) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if is_secure_value(value):
        return "{secure: ...}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {_render(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    return repr(value)
