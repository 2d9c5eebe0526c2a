"""Phases side by side, and the runbook for moving a live app from one stack to another.

Everything here is read from the stacks' offline plans (the resources and inputs the program records) and
their cost estimates: the kinds of resource, capacity (from droplet slugs and the catalog's instance
specs), failover (load balancers, ``multiAz``, ``automaticFailoverEnabled``, node groups across zones,
disruption budgets) and the data a migration must carry (the database host, the media bucket, the DNS
record). Nothing is written per phase number, so a stack file with other sizes or counts compares correctly.

Different stacks are different Pulumi stacks: a migration creates the target next to the source and retires
the source afterwards, so resources are matched by kind and role, never by URN.
"""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from components.compose_stack import DB_NAME, DB_USER, POSTGRES_IMAGE, STACK_DIR
from components.droplet_parts import HOST_KEY_SUFFIX
from components.testing import RecordedResource, Recording
from infra.domain import droplet_resources
from infra.errors import ConfigError
from phasekit.cost import CostEstimate, PriceCatalog, cents, estimate, load_catalog, money
from phasekit.plan import Plan
from phasekit.plan_text import WIDTH, wrap

DROPLET = "digitalocean:index/droplet:Droplet"
VOLUME = "digitalocean:index/volume:Volume"
DO_LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
RDS = "aws:rds/instance:Instance"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
ALB = "aws:lb/loadBalancer:LoadBalancer"
SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
ZONE_SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
R2_BUCKET = "cloudflare:index/r2Bucket:R2Bucket"

KEEP_SOURCE_DAYS = 7
"""How long the source stays up after the cutover: one full week of traffic and one weekly backup cycle."""

# --- Kinds ------------------------------------------------------------------------------------------

_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("compute hosts", (DROPLET, NODE_GROUP, "aws:ec2/launchTemplate:LaunchTemplate")),
    ("Kubernetes cluster", ("aws:eks/", "aws:iam/openIdConnectProvider:")),
    ("databases", ("aws:rds/",)),
    ("caches", ("aws:elasticache/",)),
    ("block storage", (VOLUME,)),
    ("load balancers", (DO_LOAD_BALANCER, "aws:lb/", "aws:autoscaling/", "aws:acm/")),
    ("networks", ("digitalocean:index/vpc:", "digitalocean:index/reservedIp", "aws:ec2/vpc:", SUBNET,
                  "aws:ec2/routeTable", "aws:ec2/internetGateway:", NAT, "aws:ec2/eip:", "aws:ec2/flowLog:",
                  "aws:ec2/vpcEndpoint:")),
    ("firewalls / security groups", ("digitalocean:index/firewall:", "aws:ec2/securityGroup:",
                                     "aws:ec2/defaultSecurityGroup:", "aws:vpc/securityGroup")),
    ("alarms and alert topics", ("digitalocean:index/monitorAlert:", "digitalocean:index/uptimeCheck:",
                                 "digitalocean:index/uptimeAlert:", "aws:cloudwatch/metricAlarm:", "aws:sns/")),
    ("logs", ("aws:cloudwatch/logGroup:", "aws:s3/")),  # phasekit's only S3 bucket holds the ALB's access logs
    ("identity and keys", ("aws:iam/", "aws:kms/", "random:", "cloudflare:index/apiToken:")),
    ("DNS / edge", ("cloudflare:index/dnsRecord:", "cloudflare:index/zoneSetting:",
                    "cloudflare:index/originCaCertificate:", "tls:")),
    ("object storage", (R2_BUCKET, "cloudflare:index/r2BucketLifecycle:")),
    ("Kubernetes objects", ("kubernetes:",)),
    ("rollout steps", ("command:",)),
    ("console organisation", ("digitalocean:index/project:", "digitalocean:index/projectResources:",
                              "digitalocean:index/tag:")),
)
KIND_ORDER = (*(kind for kind, _ in _KINDS), "other")
TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"


def kind_of(resource: RecordedResource, recording: Recording) -> str | None:
    """The readable kind of a resource; None for components and providers, which are not cloud objects."""
    if not resource.custom or resource.type.startswith("pulumi:providers:"):
        return None
    if resource.type == DROPLET and resource in _database_droplets(recording) and _app_droplets(recording):
        return "databases"  # a droplet of its own for PostgreSQL is the database tier
    if resource.type == TLS_PRIVATE_KEY and resource.name.endswith(HOST_KEY_SUFFIX):
        return "identity and keys"  # a droplet's SSH host key, not the edge's origin-certificate key
    for kind, prefixes in _KINDS:
        if resource.type.startswith(prefixes):
            return kind
    return "other"


def resources_by_kind(recording: Recording) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for resource in recording.resources:
        kind = kind_of(resource, recording)
        if kind is not None:
            kinds.setdefault(kind, []).append(resource.name)
    return {kind: sorted(kinds[kind]) for kind in KIND_ORDER if kind in kinds}


# --- Capacity and failover ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    vcpus: int | None
    """None when a size's vCPUs are unknown (no spec in the catalog)."""

    memory_gib: Decimal | None

    def __add__(self, other: Capacity) -> Capacity:
        vcpus = None if self.vcpus is None or other.vcpus is None else self.vcpus + other.vcpus
        memory = None if self.memory_gib is None or other.memory_gib is None else self.memory_gib + other.memory_gib
        return Capacity(vcpus, memory)

    def times(self, count: int) -> Capacity:
        return Capacity(None if self.vcpus is None else self.vcpus * count,
                        None if self.memory_gib is None else self.memory_gib * count)

    def text(self) -> str:
        vcpus = "unknown" if self.vcpus is None else str(self.vcpus)
        memory = "unknown" if self.memory_gib is None else f"{self.memory_gib.normalize():f}"
        return f"{vcpus} vCPU / {memory} GiB"

    def json(self) -> dict[str, Any]:
        return {"vcpus": self.vcpus, "memoryGib": None if self.memory_gib is None else str(self.memory_gib.normalize())}


NO_CAPACITY = Capacity(0, Decimal(0))


@dataclass(frozen=True)
class StackProfile:
    plan: Plan
    estimate: CostEstimate
    kinds: dict[str, list[str]]
    app_hosts: str
    app: Capacity
    app_max: Capacity
    database_host: str
    database: Capacity
    database_shares_app_host: bool
    max_app_replicas: int | None
    failover: dict[str, str]

    @property
    def stack(self) -> str:
        return self.plan.stack

    def capacity_rows(self) -> dict[str, str]:
        app = self.app.text() + (f" (up to {self.app_max.text()})" if self.app_max != self.app else "")
        database = self.database.text() + (" (shared with the app)" if self.database_shares_app_host else "")
        return {
            "app hosts": self.app_hosts,
            "app vCPU / RAM": app + (" (shared with the database)" if self.database_shares_app_host else ""),
            "database host": self.database_host,
            "database vCPU / RAM": database,
            "max app replicas": "unknown" if self.max_app_replicas is None else str(self.max_app_replicas),
        }


def _number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        return None
    return int(value)


def _droplet_capacity(resource: RecordedResource) -> Capacity:
    size = resource.inputs.get("size")
    resources = droplet_resources(size) if isinstance(size, str) else None
    if resources is None:
        return Capacity(None, None)
    return Capacity(resources.vcpus, Decimal(resources.memory_mib) / 1024)


def _spec_capacity(specs: dict, name: object) -> Capacity:
    spec = specs.get(name) if isinstance(name, str) else None
    return Capacity(spec.vcpus, spec.memory_gib) if spec is not None else Capacity(None, None)


def _database_droplets(recording: Recording) -> list[RecordedResource]:
    # The droplet that mounts the data volume holds PostgreSQL (and Redis beside it).
    return [droplet for droplet in recording.of_type(DROPLET) if droplet.inputs.get("volumeIds")]


def _app_droplets(recording: Recording) -> list[RecordedResource]:
    databases = _database_droplets(recording)
    return [droplet for droplet in recording.of_type(DROPLET) if droplet not in databases]


def _sizes(resources: Iterable[RecordedResource]) -> str:
    sizes = sorted({str(resource.inputs.get("size")) for resource in resources})
    return ", ".join(sizes)


def _shown(value: object) -> str:
    """A wire-format number as written (the engine turns every number into a float)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _names(names: list[str]) -> str:
    """Names in order, a repeated one once with its count (one name can label several resource types)."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name if count == 1 else f"{name} (x{count})" for name, count in counts.items())


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _zones(recording: Recording) -> list[str]:
    return sorted({zone for subnet in recording.of_type(SUBNET)
                   if isinstance(zone := subnet.inputs.get("availabilityZone"), str)})


def profile(plan: Plan, catalog: PriceCatalog | None = None) -> StackProfile:
    """What a stack provides, read from its recording."""
    catalog = catalog or load_catalog()
    recording = plan.recording
    ec2, rds_specs = catalog.specs.aws_ec2, catalog.specs.aws_rds
    failover: dict[str, str] = {}

    node_groups = recording.of_type(NODE_GROUP)
    database_droplets, app_droplets = _database_droplets(recording), _app_droplets(recording)
    shared = bool(database_droplets) and not app_droplets and not node_groups
    balanced = bool(recording.of_type(DO_LOAD_BALANCER) or recording.of_type(ALB))
    hpas = recording.of_type(HPA)
    max_replicas = _number(hpas[0].inputs.get("spec", {}).get("maxReplicas")) if hpas else None
    min_replicas = _number(hpas[0].inputs.get("spec", {}).get("minReplicas")) if hpas else None

    if node_groups:
        app, app_max, host_parts, tier_parts = NO_CAPACITY, NO_CAPACITY, [], []
        for group in node_groups:
            types = group.inputs.get("instanceTypes") or []
            instance_type = types[0] if types else None
            scaling = group.inputs.get("scalingConfig") or {}
            desired, low, high = (_number(scaling.get(key)) or 0 for key in ("desiredSize", "minSize", "maxSize"))
            spec = _spec_capacity(ec2, instance_type)
            app, app_max = app + spec.times(desired), app_max + spec.times(high)
            host_parts.append(f"{low}-{high} {instance_type} nodes ({desired} desired)")
            tier_parts.append(f"{low}-{high} {instance_type} nodes")
        app_hosts = ", ".join(host_parts)
        pods = f"{min_replicas}-{max_replicas} pods (autoscaled) on " if hpas else "pods on "
        failover["app tier"] = pods + ", ".join(tier_parts) + (" behind a load balancer" if balanced else "")
    else:
        serving = app_droplets or database_droplets
        app = NO_CAPACITY
        for droplet in serving:
            app = app + _droplet_capacity(droplet)
        app_max = app
        app_hosts = f"{_plural(len(serving), 'droplet')} {_sizes(serving)}"
        if len(serving) == 1 and not balanced:
            failover["app tier"] = "a single droplet (no failover)"
        else:
            failover["app tier"] = f"{_plural(len(serving), 'droplet')}" + (
                " behind a load balancer" if balanced else ", no load balancer")
        max_replicas = len(serving)

    databases = recording.of_type(RDS)
    primaries = [db for db in databases if not db.inputs.get("replicateSourceDb")]
    if primaries:
        primary = primaries[0]
        instance_class = primary.inputs.get("instanceClass")
        database = _spec_capacity(rds_specs, instance_class)
        multi_az = primary.inputs.get("multiAz") is True
        database_host = f"RDS PostgreSQL {instance_class}" + (" Multi-AZ" if multi_az else "")
        replicas = len(databases) - len(primaries)
        failover["database"] = (
            ("RDS Multi-AZ: standby in another zone, automatic failover" if multi_az
             else "RDS single-AZ (no standby)")
            + (f", {_plural(replicas, 'read replica')}" if replicas else ""))
    elif database_droplets:
        database = _droplet_capacity(database_droplets[0])
        database_host = "the app droplet" if shared else f"droplet {_sizes(database_droplets)}"
        volume_protected = any(volume.protect for volume in recording.of_type(VOLUME))
        failover["database"] = ("on the app droplet" if shared else "one droplet of its own") + (
            " (no standby; data on a protected volume)" if volume_protected else " (no standby)")
    else:
        database, database_host = Capacity(None, None), "none"
        failover["database"] = "none"

    caches = recording.of_type(CACHE)
    if caches:
        cache = caches[0].inputs
        nodes = _number(cache.get("numCacheClusters"))
        traits = [text for flag, text in (("automaticFailoverEnabled", "automatic failover"),
                                          ("multiAzEnabled", "Multi-AZ")) if cache.get(flag) is True]
        engine = {"valkey": "Valkey", "redis": "Redis OSS"}.get(str(cache.get("engine", "redis")), cache.get("engine"))
        failover["cache"] = (f"ElastiCache {engine}, {_plural(nodes or 0, 'node')}"
                             + (f": {', '.join(traits)}" if traits else " (no failover)"))
    elif database_droplets:
        failover["cache"] = "Redis on " + ("the app droplet" if shared else "the database droplet") + " (no failover)"
    else:
        failover["cache"] = "none"

    zones = _zones(recording)
    if zones:
        failover["zones"] = f"{len(zones)} ({', '.join(zones)})"
        nats = recording.of_type(NAT)
        failover["egress"] = (f"{_plural(len(nats), 'NAT gateway')} for {len(zones)} zones"
                              + (" (egress depends on one zone)" if len(nats) == 1 < len(zones) else ""))
    else:
        regions = sorted({str(droplet.inputs.get("region")) for droplet in recording.of_type(DROPLET)})
        failover["zones"] = f"1 (region {', '.join(regions)})" if regions else "unknown"
        failover["egress"] = "each droplet's own address"

    budgets = recording.of_type(PDB)
    if budgets:
        spec = budgets[0].inputs.get("spec") or {}
        limit = next((f"{key} {_shown(spec[key])}" for key in ("maxUnavailable", "minAvailable") if key in spec), "")
        failover["disruption budget"] = f"PodDisruptionBudget {limit}".rstrip()
    else:
        failover["disruption budget"] = "none"
    failover["backups"] = _backups(recording)

    return StackProfile(
        plan=plan, estimate=estimate(recording, catalog), kinds=resources_by_kind(recording), app_hosts=app_hosts,
        app=app, app_max=app_max, database_host=database_host, database=database,
        database_shares_app_host=shared, max_app_replicas=max_replicas, failover=failover)


def _backups(recording: Recording) -> str:
    parts: list[str] = []
    plans = sorted({str((droplet.inputs.get("backupPolicy") or {}).get("plan", "weekly"))
                    for droplet in recording.of_type(DROPLET) if droplet.inputs.get("backups") is True})
    if plans:
        parts.append(f"droplet backups {'/'.join(plans)}")
    for database in recording.of_type(RDS):
        days = _number(database.inputs.get("backupRetentionPeriod"))
        if days:
            final = ", final snapshot" if database.inputs.get("skipFinalSnapshot") is False else ""
            parts.append(f"RDS backups kept {days} days{final}")
    for cache in recording.of_type(CACHE):
        days = _number(cache.inputs.get("snapshotRetentionLimit"))
        if days:
            parts.append(f"cache snapshots kept {_plural(days, 'day')}")
    return "; ".join(parts) or "none"


# --- Processes and schedules ------------------------------------------------------------------------------
# Read from each stack's config (``Plan.config``): in phases 1 and 2 they live in the rollout bundle (Compose services
# and systemd timers), which is unknown in an offline plan, so the recording cannot show them. Where they run is read
# from the recording like the rest of this module: node groups mean Kubernetes, otherwise the droplets that serve.


def workload_rows(plan: Plan) -> dict[str, str]:
    """One row per process and schedule of the plan's config: how many run and where, as its hosts run them."""
    if plan.config is None:
        return {}
    recording = plan.recording
    app = plan.config.app
    kubernetes = bool(recording.of_type(NODE_GROUP))
    serving = _app_droplets(recording) or _database_droplets(recording)
    rows: dict[str, str] = {}
    for name, process in app.processes.items():
        limit = f"{process.memory} limit each"
        if kubernetes:
            scaled = f" (autoscaled up to {process.max_count} on CPU)" if process.max_count is not None else ""
            rows[f"process {name}"] = (f"Deployment, {_plural(process.count, 'replica')}{scaled}, and a "
                                       f"PodDisruptionBudget ({process.cpu} CPU request, {limit})")
        elif len(serving) == 1:
            rows[f"process {name}"] = f"{_plural(process.count, 'container')} on the droplet ({limit})"
        else:
            rows[f"process {name}"] = (f"{_plural(process.count, 'container')} on each of {len(serving)} app "
                                       f"droplets, {process.count * len(serving)} in all ({limit})")
    first = min((droplet.name for droplet in serving), default="the droplet")
    for name, schedule in app.schedules.items():
        if kubernetes:
            from components.kubernetes_processes import CRONJOB_CONCURRENCY, CRONJOB_TIME_ZONE

            where = f"CronJob (concurrencyPolicy {CRONJOB_CONCURRENCY}, timeZone {CRONJOB_TIME_ZONE})"
        else:
            from components.host_processes import UNIT_PREFIX

            host = "the droplet" if len(serving) == 1 else f"{first} only"
            where = f"systemd timer {UNIT_PREFIX}-{name} on {host}"
        rows[f"schedule {name} ({schedule.cron!r}, UTC)"] = f"{where}, timeout {schedule.timeout_seconds}s"
    return rows


def _workload_lines(plans: list[Plan]) -> list[str]:
    rows = {plan.stack: workload_rows(plan) for plan in plans}
    aspects = list(dict.fromkeys(aspect for found in rows.values() for aspect in found))
    if not aspects:
        return []
    width = max(len(plan.stack) for plan in plans)
    lines = ["", "Processes and schedules (from the stack files)"]
    for aspect in aspects:
        lines.append(f"  {aspect}")
        lines += [f"    {plan.stack:<{width}}  {rows.get(plan.stack, {}).get(aspect, 'none')}" for plan in plans]
    return lines


# --- Comparison ----------------------------------------------------------------------------------------


def _signed(amount: Decimal) -> str:
    return ("+" if amount >= 0 else "-") + money(abs(amount))


def _step(before: StackProfile, after: StackProfile) -> dict[str, Any]:
    capacity = [{"aspect": aspect, "from": old, "to": new}
                for (aspect, old), new in zip(before.capacity_rows().items(), after.capacity_rows().values(),
                                              strict=True) if old != new]
    failover = [{"aspect": aspect, "from": before.failover.get(aspect, "none"), "to": new}
                for aspect, new in after.failover.items() if before.failover.get(aspect) != new]
    return {
        "from": before.stack, "to": after.stack, "capacity": capacity, "failover": failover,
        "costDeltaUsd": str(after.estimate.total_usd - before.estimate.total_usd),
        "unconfirmedLeadDeltaUsd": str(after.estimate.unconfirmed_lead_usd - before.estimate.unconfirmed_lead_usd),
    }


def _profiles(plans: list[Plan]) -> list[StackProfile]:
    stacks = [plan.stack for plan in plans]
    repeated = next((stack for index, stack in enumerate(stacks) if stack in stacks[:index]), None)
    if repeated is not None:
        raise ConfigError(f"--compare: {repeated} is listed twice; allowed: each stack once, e.g. --compare phase1 "
                          "phase2 phase3")
    catalog = load_catalog()
    return [profile(plan, catalog) for plan in plans]


def compare_json(plans: list[Plan]) -> dict[str, Any]:
    """The comparison as JSON; each stack whose config has processes or schedules gets a ``processesAndSchedules``
    object (``workload_rows``)."""
    profiles = _profiles(plans)
    return {
        "catalogDate": profiles[0].estimate.catalog_date.isoformat() if profiles else None,
        "stacks": [{
            "stack": item.stack, "phase": item.plan.phase,
            "resourceCount": sum(len(names) for names in item.kinds.values()),
            "kinds": item.kinds,
            "cost": {"totalUsd": str(item.estimate.total_usd),
                     "unconfirmedLeadUsd": str(item.estimate.unconfirmed_lead_usd),
                     "totalWithLeadsUsd": str(item.estimate.total_with_leads_usd),
                     "unpriced": len(item.estimate.unpriced), "usageBased": len(item.estimate.usage_based)},
            "capacity": {"appHosts": item.app_hosts, "app": item.app.json(), "appMax": item.app_max.json(),
                         "databaseHost": item.database_host, "database": item.database.json(),
                         "databaseSharesAppHost": item.database_shares_app_host,
                         "maxAppReplicas": item.max_app_replicas},
            "failover": item.failover,
            **({"processesAndSchedules": rows} if (rows := workload_rows(item.plan)) else {}),
        } for item in profiles],
        "steps": [_step(before, after) for before, after in zip(profiles, profiles[1:], strict=False)],
    }


def compare_text(plans: list[Plan]) -> str:
    """The phases side by side, with a "Processes and schedules" section when any stack's config has some
    (``workload_rows``)."""
    profiles = _profiles(plans)
    names = [item.stack for item in profiles]
    label_width = max(len(label) for label in (*KIND_ORDER, "total + unconfirmed leads", "unconfirmed leads"))
    column = max(10, *(len(name) for name in names))

    def row(label: str, cells: Iterable[str]) -> str:
        return f"  {label:<{label_width}}" + "".join(f"  {cell:>{column}}" for cell in cells)

    lines = [
        f"phasekit plan --compare: {', '.join(names)}",
        "read from each stack's offline plan; prices from phasekit/prices.yaml"
        + (f" as of {profiles[0].estimate.catalog_date.isoformat()}" if profiles else ""),
        "",
        row("Resources by kind", names).rstrip(),
    ]
    kinds = [kind for kind in KIND_ORDER if any(kind in item.kinds for item in profiles)]
    for kind in kinds:
        lines.append(row(kind, (str(len(item.kinds.get(kind, []))) for item in profiles)))
    lines.append(row("all cloud resources", (str(sum(len(n) for n in item.kinds.values())) for item in profiles)))
    lines += ["", row("Monthly cost (USD)", names).rstrip()]
    lines.append(row("priced total", (money(item.estimate.total_usd) for item in profiles)))
    lines.append(row("unconfirmed leads", (money(item.estimate.unconfirmed_lead_usd) for item in profiles)))
    lines.append(row("total + unconfirmed leads", (money(item.estimate.total_with_leads_usd) for item in profiles)))
    lines.append(row("items with no price", (str(len(item.estimate.unpriced)) for item in profiles)))
    lines.append(row("usage-based items", (str(len(item.estimate.usage_based)) for item in profiles)))

    name_width = max(len(name) for name in names)
    for title, rows in (("Capacity", [item.capacity_rows() for item in profiles]),
                        ("Failover", [item.failover for item in profiles])):
        lines += ["", title]
        for aspect in rows[0]:
            lines.append(f"  {aspect}")
            lines += [f"    {name:<{name_width}}  {values.get(aspect, 'none')}" for name, values in zip(names, rows,
                                                                                                     strict=True)]
    lines += _workload_lines(plans)
    if len(profiles) > 1:
        lines += ["", "What each stack adds over the previous one"]
        for before, after in zip(profiles, profiles[1:], strict=False):
            step = _step(before, after)
            lines.append(f"  {before.stack} -> {after.stack}")
            lines += [f"    {change['aspect']}: {change['from']} -> {change['to']}"
                      for change in (*step["capacity"], *step["failover"])]
            lead_delta = Decimal(step["unconfirmedLeadDeltaUsd"])
            lines.append(f"    monthly cost: {_signed(Decimal(step['costDeltaUsd']))} "
                         f"({money(before.estimate.total_usd)} -> {money(after.estimate.total_usd)})"
                         + (f", unconfirmed leads {_signed(lead_delta)}" if lead_delta else ""))
    return _text(lines)


def _text(lines: Iterable[str]) -> str:
    """Lines as plain text, each prose line wrapped to ``WIDTH`` under its own indent (``plan_text.wrap``)."""
    return "".join(f"{wrapped}\n" for line in lines for wrapped in wrap(line, WIDTH))


# --- Migration -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DatabaseSite:
    """Where a stack's PostgreSQL lives, and how a shell reaches it."""

    kind: str
    """``droplet`` (PostgreSQL in Docker on a droplet, reached over SSH) or ``rds`` (reached from a pod)."""

    resource: RecordedResource
    address_setup: tuple[str, ...]
    """Shell lines that make this site reachable: its host in a shell variable (droplet), or its kubeconfig
    and a Kubernetes Secret holding the database URL for the one-off client pods (RDS)."""

    address_teardown: tuple[str, ...]
    """Shell lines that remove what ``address_setup`` left in a cluster that stays (the URL's Secret)."""

    major: int | None
    """PostgreSQL major version, when the recording states it (RDS)."""

    def describe(self) -> str:
        if self.kind == "rds":
            return f"RDS {self.resource.inputs.get('identifier', self.resource.name)}"
        return f"droplet {self.resource.name}"


def _database_site(plan: Plan, role: str) -> _DatabaseSite | None:
    recording, stack = plan.recording, plan.stack
    variable = role.upper()
    primaries = [db for db in recording.of_type(RDS) if not db.inputs.get("replicateSourceDb")]
    if primaries:
        version = str(primaries[0].inputs.get("engineVersion", ""))
        major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else None
        kubectl, secret = f"kubectl --kubeconfig kubeconfig-{stack}", _client_secret(role)
        # The URL (it holds the password) goes from pulumi to kubectl through a pipe, never through a process's
        # arguments: `kubectl create secret --from-file` reads the file it names with os.ReadFile
        # (kubernetes/kubectl@dee3483 pkg/cmd/create/create_secret.go, addKeyFromFileToSecret), so /dev/stdin
        # works. `pulumi stack output` ends the value with a newline (pulumi/pulumi@1b59498
        # pkg/cmd/pulumi/stack/stack_output.go), which would end up in the URL's sslmode; tr drops it.
        # Deleting first lets a later step (the final backup) run these lines again.
        return _DatabaseSite("rds", primaries[0], (
            f"pulumi stack output --stack {stack} --show-secrets kubeconfig > kubeconfig-{stack}",
            f"{kubectl} delete secret {secret} --namespace default --ignore-not-found",
            f"pulumi stack output --stack {stack} --show-secrets database_url | tr -d '\\n' | {kubectl} create secret "
            f"generic {secret} --namespace default --from-file=DATABASE_URL=/dev/stdin",
        ), (f"{kubectl} delete secret {secret} --namespace default   # the one-off pods are done with the URL",), major)
    droplets = _database_droplets(recording)
    if droplets:
        # The stack exports the database droplet's id (db_droplet_id when it has a droplet of its own).
        output = next((name for name in ("db_droplet_id", "droplet_id") if name in recording.outputs), None)
        droplet_id = f"$(pulumi stack output --stack {stack} {output})" if output else "<database droplet id>"
        return _DatabaseSite("droplet", droplets[0], (
            f"{variable}_DB_HOST=\"$(doctl compute droplet get \"{droplet_id}\" --template '{{{{.PublicIPv4}}}}')\"",
        ), (), None)
    return None


DROPLET_POSTGRES_MAJOR = int(POSTGRES_IMAGE.split(":")[1].split(".")[0])


def _server_major(site: _DatabaseSite) -> int | None:
    return DROPLET_POSTGRES_MAJOR if site.kind == "droplet" else site.major


def _client_image(*sites: _DatabaseSite) -> str:
    # pg_dump and pg_restore must be at least as new as the newest server involved.
    newest = max([DROPLET_POSTGRES_MAJOR, *(site.major for site in sites if site.major is not None)])
    return POSTGRES_IMAGE if newest == DROPLET_POSTGRES_MAJOR else f"postgres:{newest}"


def _compose_exec(host_variable: str, command: str) -> str:
    return (f"ssh root@\"${host_variable}\" "
            f"{shlex.quote(f'docker compose --file {STACK_DIR}/compose.yaml exec -T db {command}')}")


def _client_secret(role: str) -> str:
    """The Kubernetes Secret (in ``default``) holding a site's ``DATABASE_URL`` for the one-off client pods."""
    return f"migration-{role}-database"


def _pod(stack: str, name: str, image: str, secret: str, command: str) -> str:
    """A one-off client pod whose shell runs ``command`` with ``DATABASE_URL`` from ``secret``.

    The app namespace enforces the restricted Pod Security standard; a one-off client runs in default,
    whose pods reach the database through the nodes' security group like the app's do. The URL reaches the
    pod as an environment variable from the Secret (``envFrom``), so neither kubectl's arguments nor the pod
    spec hold it; the single-quoted script is expanded by the pod's shell. Inside the pod the client does
    get the URL as its ``--dbname`` argument (libpq takes a connection URI from nowhere else), visible only
    in the pod and on its node, where the app's own pods hold the same URL in their environment.

    A strategic merge patch merges the container by name into the one ``kubectl run`` generates (named after
    the pod); the default ``merge`` override type would replace the whole containers list
    (kubernetes/kubectl@dee3483 pkg/cmd/util/override_options.go, and pkg/cmd/run/run.go ``createPod``).
    """
    overrides = json.dumps({"spec": {"containers": [{"name": name, "envFrom": [{"secretRef": {"name": secret}}]}]}},
                           separators=(",", ":"))
    return (f"kubectl --kubeconfig kubeconfig-{stack} run {name} --namespace default --rm -i --quiet "
            f"--restart=Never --image {image} --override-type=strategic --overrides {shlex.quote(overrides)} "
            f"--command -- sh -c {shlex.quote(f'exec {command}')}")


def _dump_commands(site: _DatabaseSite, stack: str, image: str, dump_file: str) -> list[str]:
    if site.kind == "rds":
        return [_pod(stack, "pg-dump", image, _client_secret("source"),
                     'pg_dump --format custom --dbname "$DATABASE_URL"')
                + f" > {dump_file}"]
    return [_compose_exec("SOURCE_DB_HOST", f"pg_dump --username {DB_USER} --format custom {DB_NAME}")
            + f" > {dump_file}"]


MIGRATION_PASSFILE = "migration.pgpass"
"""The password file ``phasekit db pgpass`` writes and ``phasekit db migrate`` reads (PGPASSFILE), in the folder
the runbook runs in, removed once the tunnels close."""

TUNNEL_PORTS = {"source": 15432, "target": 25432}
"""Local ends of the tunnels to the source's and the target's PostgreSQL."""

APP_ROLE = "app_user"
"""Phase 3's app role (``RdsPostgresArgs.app_role_name``'s default): with a managed master password the app
connects as this role, into a schema of its name, so ``phasekit db migrate`` restores as the master user and
hands the copy to it (``--target-role``, phasekit/db/adopt.py)."""

MASTER_URL_PYTHON = ('import json, sys; from urllib.parse import quote; s = json.load(sys.stdin); '
                     'print("postgresql://" + quote(s["username"], safe="") + ":" + quote(s["password"], safe="") '
                     '+ "@rds/" + sys.argv[1])')
"""Turns RDS's master secret (``{"username", "password"}`` JSON on stdin) into the URL ``phasekit db pgpass``
reads on stdin: the password travels through pipes only."""

RELAY_IMAGE = "alpine/socat:1.8.0.3"
"""A TCP relay inside the cluster: RDS answers only inside its VPC, and kubectl port-forward reaches pods only."""


@dataclass(frozen=True)
class _Tunnel:
    """How the operator's machine reaches a site's PostgreSQL on 127.0.0.1:<port> for ``phasekit db``."""

    open: list[str]
    close: list[str]
    url: str
    """``"$(cat source.url)"``: the password-free URL that ``phasekit db pgpass`` wrote."""


def managed_master(site: _DatabaseSite | None) -> bool:
    """RDS keeps the master password in Secrets Manager, so the app connects as its own role (``APP_ROLE``)."""
    return site is not None and site.kind == "rds" and bool(site.resource.inputs.get("manageMasterUserPassword"))


def _master_pgpass(site: _DatabaseSite, plan: Plan, port: int, role: str) -> list[str]:
    """The master user's URL from RDS's secret (found by the instance's address: no identifier to type) into
    ``phasekit db pgpass``; docs/phase3-operations.md fetches it the same way. The ARN is no secret."""
    variable = role.upper()
    database = site.resource.inputs.get("dbName") or DB_NAME
    return [
        f'{variable}_DB_ADDRESS="$(pulumi stack output --stack {plan.stack} database_address)"',
        # Unquoted: an assignment is not word-split, and a printed line may then break inside the $(...).
        f'{variable}_MASTER_ARN=$(aws rds describe-db-instances --query '
        f'"DBInstances[?Endpoint.Address==\'${variable}_DB_ADDRESS\'].MasterUserSecret.SecretArn|[0]" '
        '--output text)',
        f'aws secretsmanager get-secret-value --secret-id "${variable}_MASTER_ARN" --query SecretString '
        f"--output text | python3 -c {shlex.quote(MASTER_URL_PYTHON)} {shlex.quote(str(database))} | "
        f"phasekit db pgpass --host 127.0.0.1 --port {port} > {role}.url",
    ]


def _tunnel(site: _DatabaseSite, plan: Plan, role: str) -> _Tunnel:
    """An SSH tunnel to a droplet's PostgreSQL (phase 2's database droplet runs it on the host network, the
    single host inside Compose's network, reached at the container's address), or a relay pod plus ``kubectl
    port-forward`` for RDS. The password travels from ``pulumi stack output`` through a pipe into
    ``phasekit db pgpass``, which writes the private password file and the password-free URL."""
    stack, port, variable = plan.stack, TUNNEL_PORTS[role], role.upper()
    pgpass = (f"pulumi stack output --stack {stack} --show-secrets database_url | phasekit db pgpass --host 127.0.0.1 "
              f"--port {port} > {role}.url")
    if site.kind == "rds":
        kubectl, pod = f"kubectl --kubeconfig kubeconfig-{stack}", f"pg-relay-{role}"
        return _Tunnel(open=[
            f"pulumi stack output --stack {stack} --show-secrets kubeconfig > kubeconfig-{stack}",
            f"{kubectl} run {pod} --namespace default --restart=Never --image {RELAY_IMAGE} -- "
            f"tcp-listen:5432,fork,reuseaddr \"tcp-connect:$(pulumi stack output --stack {stack} database_address)"
            ':5432"',
            f"{kubectl} wait pod/{pod} --namespace default --for=condition=Ready --timeout=120s",
            f"{kubectl} port-forward pod/{pod} --namespace default {port}:5432 > /dev/null &",
            f"{variable}_PORT_FORWARD=$!",
            *(_master_pgpass(site, plan, port, role) if managed_master(site) and role == "target" else [pgpass]),
        ], close=[f'kill "${variable}_PORT_FORWARD"', f"{kubectl} delete pod {pod} --namespace default"],
            url=f'"$(cat {role}.url)"')
    if "db_droplet_id" in plan.recording.outputs:
        address = "127.0.0.1"
        find = []
    else:  # the container's address on Compose's network, from its /etc/hosts
        address = f"${variable}_DB_ADDRESS"
        find = [f'{variable}_DB_ADDRESS="$({_compose_exec(f"{variable}_DB_HOST", "hostname -i")})"']
    return _Tunnel(open=[
        *site.address_setup, *find,
        f'ssh -f -N -M -S {role}-tunnel.sock -o ExitOnForwardFailure=yes -L "127.0.0.1:{port}:{address}:5432" '
        f'root@"${variable}_DB_HOST"',
        pgpass,
    ], close=[f'ssh -S {role}-tunnel.sock -O exit root@"${variable}_DB_HOST"'], url=f'"$(cat {role}.url)"')


def _hostname(recording: Recording) -> str | None:
    records = recording.of_type(DNS_RECORD)
    name = records[0].inputs.get("name") if records else None
    return name if isinstance(name, str) else None


def temporary_hostname(hostname: str, stack: str) -> str:
    """``app.example.com`` → ``phase2-app.example.com``: still one label under the zone, so Cloudflare's
    Universal SSL certificate (which covers one level of subdomain) serves it."""
    labels = hostname.split(".")
    if len(labels) <= 2:
        return f"{stack}.{hostname}"
    return ".".join([f"{stack}-{labels[0]}", *labels[1:]])


def _health_path(*recordings: Recording) -> str:
    for recording in recordings:
        for balancer in recording.of_type(DO_LOAD_BALANCER):
            path = (balancer.inputs.get("healthcheck") or {}).get("path")
            if isinstance(path, str):
                return path
        for group in recording.of_type(TARGET_GROUP):
            path = (group.inputs.get("healthCheck") or {}).get("path")
            if isinstance(path, str):
                return path
    return "<app.healthPath>"


BACKUP_STORE = "phasekit:index:BackupStore$"
"""In a URN: a resource of the stack's backups (its own R2 bucket), which is not the media bucket."""


def _bucket(recording: Recording) -> RecordedResource | None:
    """The media bucket: the stack's R2 bucket that is not its backups bucket."""
    buckets = [bucket for bucket in recording.of_type(R2_BUCKET) if BACKUP_STORE not in bucket.urn]
    return buckets[0] if buckets else None


def _overlap_cost(source: CostEstimate, catalog: PriceCatalog, days: int, *, leads: bool = False) -> Decimal:
    """What keeping the source ``days`` longer costs: DigitalOcean bills hourly up to its monthly cap
    (monthly / 672 h), AWS by the hour (monthly / 730 h)."""
    hours = Decimal(days * 24)
    conventions = catalog.conventions
    return (source.total_by_provider("digitalocean", leads=leads) * hours / conventions.digitalocean_hours_per_month_cap
            + source.total_by_provider("aws", leads=leads) * hours / conventions.aws_hours_per_month)


PROMPTED = "   # no value argument: pulumi prompts for it without echo"
"""The comment on a ``pulumi config set --secret`` line that takes its value from a prompt."""


def _provider_setup(target: Plan, source: Plan) -> list[str]:
    """Credentials and secrets for the target stack, none of them on a command line.

    ``pulumi config set`` given only a key reads the value from stdin when stdin is not a terminal, and
    otherwise prompts for it, without echo under ``--secret`` (pulumi/pulumi@1b59498 pkg/cmd/pulumi/config/config.go,
    ``configSetCmd.Run``: ``case !term.IsTerminal(...)``: ``io.ReadAll(stdin)``, trailing newline removed;
    ``case c.Secret``: ``cmdutil.ReadConsoleNoEcho``). A value copied from the source therefore goes
    through a pipe from ``pulumi config get`` (which prints it decrypted), never through the arguments,
    where ``ps`` and the shell history would show it.
    """
    types = {resource.type.split(":", 1)[0] for resource in target.recording.resources}
    lines = []
    if "digitalocean" in types:
        lines.append(f"pulumi config set --stack {target.stack} --secret digitalocean:token{PROMPTED}")
    if "cloudflare" in types:
        lines.append(f"pulumi config set --stack {target.stack} --secret cloudflare:apiToken{PROMPTED}")
    if "aws" in types:
        lines.append("# AWS credentials come from the environment (AWS_PROFILE, SSO or OIDC); the principal must "
                     "be listed in cluster.adminPrincipalArns")
    source_names = set(_secret_names(source.secrets_to_set))
    for name in _secret_names(target.secrets_to_set):
        key = f"--path 'secrets.{name}'"
        if name in source_names:
            lines.append(f"pulumi config get --stack {source.stack} {key} | pulumi config set --stack {target.stack} "
                         f"--secret {key}   # the source's value through a pipe, so sessions survive the move")
        else:
            lines.append(f"pulumi config set --stack {target.stack} --secret {key}{PROMPTED}")
    return lines


def _secret_names(commands: Iterable[str]) -> list[str]:
    return [match[1] for command in commands if (match := re.search(r"'secrets\.([^']+)'", command))]


@dataclass(frozen=True)
class _Retirement:
    captures: list[str]
    """Shell lines saving the ids of retained resources (the stack's outputs are gone after destroy)."""

    release: list[str]
    """``pulumi state`` steps: drop the shared zone settings, unprotect the protected resources."""

    before_destroy: list[str]
    """Retained hosts and databases, deleted by hand first: they sit in the stack's network, which
    ``pulumi destroy`` cannot delete around them."""

    after_destroy: list[str]
    """Retained volumes and buckets, deleted by hand once nothing uses them."""


def _retire_commands(source: Plan) -> _Retirement:
    recording, stack = source.recording, source.stack
    # Registration order varies between runs: sort, so the runbook reads the same every time.
    release = [f"pulumi state delete --stack {stack} {shlex.quote(urn)} --yes"
               for urn in sorted(setting.urn for setting in recording.of_type(ZONE_SETTING))]
    release += [f"pulumi state unprotect --stack {stack} {shlex.quote(urn)} --yes"
                for urn in sorted(resource.urn for resource in recording.resources if resource.protect)]
    captures: list[str] = []
    deletes: list[tuple[int, str]] = []  # (order, command): droplets before the volumes attached to them

    def capture(variable: str, output: str | None, placeholder: str) -> str:
        if output is None or output not in recording.outputs:
            return placeholder
        captures.append(f"{variable}=\"$(pulumi stack output --stack {stack} {output})\"")
        return f"${variable}"

    for resource in sorted(recording.resources, key=lambda resource: resource.urn):
        if not resource.retain_on_delete:
            continue
        if resource.type == DROPLET:
            droplet = capture("RETIRED_DROPLET_ID", "db_droplet_id" if "db_droplet_id" in recording.outputs
                              else "droplet_id", "<droplet id>")
            deletes.append((0, f"doctl compute droplet delete \"{droplet}\" --force   # {resource.name}"))
        elif resource.type == VOLUME:
            volume = capture("RETIRED_VOLUME_ID", "volume_id", "<volume id>")
            deletes.append((1, f"doctl compute volume delete \"{volume}\" --force   # {resource.name}"))
        elif resource.type == R2_BUCKET and BACKUP_STORE in resource.urn:
            # The retired stack's off-site backups are the way back to any moment before the freeze: kept.
            deletes.append((2, f"# keep s3://{resource.inputs.get('name')} ({stack}'s backups and WAL) until no "
                               f"restore of {stack} can be needed; then delete it like the media bucket"))
        elif resource.type == R2_BUCKET:
            name, account = resource.inputs.get("name"), resource.inputs.get("accountId")
            deletes.append((2, f"aws s3 rb s3://{name} --force --profile r2 "
                               f"--endpoint-url https://{account}.r2.cloudflarestorage.com   # {resource.name}"))
        elif resource.type == RDS:
            identifier = resource.inputs.get("identifier")
            deletes.append((0, f"aws rds modify-db-instance --db-instance-identifier {identifier} "
                               "--no-deletion-protection --apply-immediately"))
            deletes.append((0, f"aws rds delete-db-instance --db-instance-identifier {identifier} "
                               f"--final-db-snapshot-identifier {identifier}-retired"))
            deletes.append((0, f"aws rds wait db-instance-deleted --db-instance-identifier {identifier}"))
        elif resource.type == CACHE:
            group = resource.inputs.get("replicationGroupId")
            deletes.append((0, f"aws elasticache delete-replication-group --replication-group-id {group} "
                               f"--final-snapshot-identifier {group}-retired"))
            deletes.append((0, f"aws elasticache wait replication-group-deleted --replication-group-id {group}"))
        else:
            deletes.append((3, f"# delete {resource.type} {resource.name} in the provider's console"))
    return _Retirement(captures, release, [command for order, command in deletes if order == 0],
                       [command for _, command in sorted(deletes, key=lambda pair: pair[0]) if _ > 0])


def _final_backup(site: _DatabaseSite | None, source: Plan, image: str) -> list[str]:
    if site is None:
        return []
    dump = f"{source.stack}-final.dump"
    commands = list(site.address_setup) + _dump_commands(site, source.stack, image, dump)
    if site.kind == "droplet" and "volume_id" in source.recording.outputs:
        commands.append(f"doctl compute volume snapshot \"$(pulumi stack output --stack {source.stack} volume_id)\" "
                        f"--snapshot-name {source.stack}-final")
    return commands


@dataclass(frozen=True)
class _Migration:
    source: StackProfile
    target: StackProfile
    created: dict[str, list[str]]
    retired: dict[str, list[str]]
    data: list[tuple[str, str]]
    steps: list[tuple[str, list[str], list[str]]]
    """(title, notes, commands) in order."""

    overlap_days: int
    overlap_usd: Decimal
    overlap_lead_usd: Decimal


def _migration(source_plan: Plan, target_plan: Plan) -> _Migration:
    if source_plan.stack == target_plan.stack:
        raise ConfigError(f"--from {source_plan.stack} --to {target_plan.stack}: the same stack; allowed: two "
                          "different stacks, e.g. --from phase1 --to phase2")
    catalog = load_catalog()
    s, t = source_plan.stack, target_plan.stack
    source_site, target_site = _database_site(source_plan, "source"), _database_site(target_plan, "target")
    sites = [site for site in (source_site, target_site) if site is not None]
    if source_site and target_site:
        before, after = _server_major(source_site), _server_major(target_site)
        # A dump restores into the same or a newer PostgreSQL major version, never an older one.
        if before is not None and after is not None and after < before:
            raise ConfigError(f"--to {t}: PostgreSQL {after} is older than {s}'s PostgreSQL {before}; allowed: a "
                              f"target running PostgreSQL {before} or newer")
    image = _client_image(*sites)
    source, target = profile(source_plan, catalog), profile(target_plan, catalog)
    hostname = _hostname(target_plan.recording) or _hostname(source_plan.recording) or "<edge.hostname>"
    temporary = temporary_hostname(hostname, t)
    health = _health_path(target_plan.recording, source_plan.recording)
    source_bucket, target_bucket = _bucket(source_plan.recording), _bucket(target_plan.recording)
    records = source_plan.recording.of_type(DNS_RECORD)

    data: list[tuple[str, str]] = []
    if source_site and target_site:
        data.append(("PostgreSQL", f"{source_site.describe()} ({s}) -> {target_site.describe()} ({t}): "
                                   "phasekit db migrate (write freeze, pg_dump / pg_restore, both sides verified)"))
    if source_bucket and target_bucket:
        data.append(("media", f"R2 bucket {source_bucket.inputs.get('name')} -> {target_bucket.inputs.get('name')}: "
                              "object copy"))
    data.append(("hostname", f"{hostname}: the DNS record moves from {s} to {t} at the cutover"))
    data.append(("Redis", "not copied (cache and queues): drain queues before the freeze; the cache starts cold"))

    copy_media: list[str] = []
    if source_bucket and target_bucket:
        account = target_bucket.inputs.get("accountId")
        copy_media = [f"aws s3 sync s3://{source_bucket.inputs.get('name')} s3://{target_bucket.inputs.get('name')} "
                      f"--profile r2 --endpoint-url https://{account}.r2.cloudflarestorage.com"]

    tunnels = ([_tunnel(source_site, source_plan, "source"), _tunnel(target_site, target_plan, "target")]
               if source_site and target_site else [])
    rehearsal: list[str] = []
    migrate: list[str] = []
    close_tunnels: list[str] = []
    if tunnels:
        command = f"phasekit db migrate --source {tunnels[0].url} --target {tunnels[1].url} --allow-non-empty"
        command += f" --target-role {APP_ROLE}" if managed_master(target_site) else ""
        rehearsal = [f'export PGPASSFILE="$PWD/{MIGRATION_PASSFILE}"', *tunnels[0].open, *tunnels[1].open,
                     f"{command} --no-freeze"]
        migrate = [command]
        close_tunnels = [*tunnels[0].close, *tunnels[1].close, f"rm -f {MIGRATION_PASSFILE} source.url target.url"]

    verify = [f"curl -fsS https://{hostname}{health}",
              f"curl -sS -o /dev/null -w '%{{http_code}}\\n' https://{hostname}/",
              f"dig +short {hostname}   # Cloudflare's addresses: the record is proxied"]
    # The app's rollout, not a cluster add-on's (the Cluster Autoscaler runs in kube-system).
    deployments = [deployment for deployment in target_plan.recording.of_type(DEPLOYMENT)
                   if (deployment.inputs.get("metadata") or {}).get("namespace") != "kube-system"]
    if deployments:
        metadata = deployments[0].inputs.get("metadata") or {}
        verify.append(f"kubectl --kubeconfig kubeconfig-{t} --namespace {metadata.get('namespace')} rollout status "
                      f"deployment/{metadata.get('name')}")
    elif target_plan.recording.of_type(DO_LOAD_BALANCER):
        verify.append("doctl compute load-balancer list --format Name,IP,Status   # status active, droplets healthy")
    if source_bucket and target_bucket:
        endpoint = f"--profile r2 --endpoint-url https://{target_bucket.inputs.get('accountId')}.r2.cloudflarestorage.com"
        verify.append(f"aws s3 ls s3://{source_bucket.inputs.get('name')} --recursive --summarize {endpoint} | tail -2")
        verify.append(f"aws s3 ls s3://{target_bucket.inputs.get('name')} --recursive --summarize {endpoint} | tail -2")
    verify += close_tunnels

    overlap = _overlap_cost(source.estimate, catalog, KEEP_SOURCE_DAYS)
    overlap_lead = _overlap_cost(source.estimate, catalog, KEEP_SOURCE_DAYS, leads=True)
    retirement = _retire_commands(source_plan)
    record_urn = shlex.quote(records[0].urn) if records else "<dns record urn>"
    target_records = target_plan.recording.of_type(DNS_RECORD)
    target_record_urn = shlex.quote(target_records[0].urn) if target_records else f"<{t}'s dns record urn>"
    reopen = f"ALTER DATABASE {DB_NAME} RESET default_transaction_read_only"

    steps: list[tuple[str, list[str], list[str]]] = [
        (f"Create the target stack {t} beside {s}", [
            f"{s} keeps serving {hostname}; {t} comes up on the temporary hostname {temporary} (one label under "
            "the zone, so Cloudflare's Universal SSL covers it), because both stacks declare a DNS record and only "
            f"one may own {hostname}.",
            f"These commands edit Pulumi.{t}.yaml; step 4 sets its hostname back to {hostname}.",
            "No secret goes on a command line, where ps and the shell history would show it: pulumi prompts for "
            "each value (or reads it from a pipe), and phasekit db reads the database passwords from a private "
            "password file.",
        ], [
            f"pulumi stack init {t}",
            *_provider_setup(target_plan, source_plan),
            f"pulumi config set --stack {t} --path 'phasekit:edge.hostname' {temporary}",
            f"pulumi up --stack {t}",
        ]),
        ("Copy the data (a rehearsal: the app keeps writing to the source)", [
            "Tunnels bring both databases to 127.0.0.1; each password goes from pulumi through a pipe into "
            f"`phasekit db pgpass`, which keeps it in {MIGRATION_PASSFILE} (mode 0600), never on a command line.",
            *([f"{t}'s release command has created the schema; --allow-non-empty lets pg_restore --clean "
               "replace it with the source's."] if not managed_master(target_site) else [
                f"{t}'s app connects as its role {APP_ROLE}, into schema {APP_ROLE}: the target URL is RDS's "
                "master user (its password from Secrets Manager, through pipes), which restores into public; "
                f"in the frozen run (step 3), once verified, --target-role {APP_ROLE} renames public to "
                f"{APP_ROLE} and gives it to the role, keeping the release command's empty schema as "
                f"{APP_ROLE}_replaced_<UTC time>. The rehearsal leaves its copy in public."]),
            "Without the freeze, writes the app makes meanwhile show up as differences (exit 1): expected in a "
            "rehearsal, which proves the tunnels and the copy and times it (the freeze lasts about as long).",
            "R2 credentials: an R2 API token with read and write on both buckets, as AWS CLI profile r2.",
        ], [*rehearsal, *copy_media]),
        (f"Freeze writes on {s}, copy and verify", [
            f"phasekit db migrate makes {s}'s database read-only (reads keep working, writes fail with an error "
            "until the cutover), ends its open sessions, copies, compares every table, sequence, large object and "
            "view on both sides, and prints the write-freeze window. Announce the window first.",
            f"Exit 0: the copy is whole and {s} stays read-only for the cutover. A failed copy lifts the freeze by "
            "itself; differences (exit 1) leave it frozen until you settle them. To roll back: "
            f"`phasekit db unfreeze --source {tunnels[0].url if tunnels else '<source url>'}`.",
            *([f"Before the cutover, `phasekit db drill --stack {t}` proves {t}'s backups restore "
               "(docs/migration.md)."] if target_site and target_site.kind == "droplet" else []),
        ], [*migrate, *copy_media]),
        (f"Cut Cloudflare over to {t}", [
            f"{hostname} has no record from the first command until the last one ends (writes are already "
            f"frozen). The last two point {t}'s record at {hostname} and re-issue its origin certificate.",
        ], [
            f"pulumi destroy --stack {s} --target {record_urn} --yes",
            f"pulumi config set --stack {t} --path 'phasekit:edge.hostname' {hostname}",
            f"pulumi up --stack {t} --yes",
        ]),
        ("Verify", [f"The health path {health} answers 200 through Cloudflare; then the tunnels close and the "
                    "password file goes."], verify),
        (f"Keep {s} for {KEEP_SOURCE_DAYS} days", [
            f"{s} still holds the data as it was at the freeze. The way back: `pulumi destroy --stack {t} "
            f"--target {target_record_urn} --yes`, `pulumi up --stack {s}` (recreates its record), then "
            f"`{reopen}` on {s} (or `phasekit db unfreeze` through step 2's tunnel); writes made on {t} meanwhile "
            "stay behind. "
            f"Both stacks bill meanwhile: {KEEP_SOURCE_DAYS} more days of {s} cost about ${money(overlap)}"
            + (f" (+ ${money(overlap_lead)} unconfirmed)" if overlap_lead else "") + ".",
        ], []),
        (f"Retire {s}", [
            "Take a final backup first; delete the old media bucket only after step 5 showed the copy whole. "
            "The zone settings are zone-wide and also managed by "
            f"{t}: drop them from {s}'s state so destroying {s} leaves them alone. Protected resources need "
            "`pulumi state unprotect`; resources retained on delete survive `pulumi destroy` and keep billing "
            "until deleted by hand: hosts and databases before the destroy (the network cannot go around them), "
            "volumes and buckets after.",
        ], [
            *_final_backup(source_site, source_plan, image),
            *retirement.captures,
            *retirement.release,
            *retirement.before_destroy,
            f"pulumi destroy --stack {s}",
            *retirement.after_destroy,
            # --preserve-config keeps the committed Pulumi.<stack>.yaml, the record of what ran.
            f"pulumi stack rm --preserve-config {s}",
        ]),
    ]
    return _Migration(source=source, target=target, created=target.kinds, retired=source.kinds, data=data,
                      steps=steps, overlap_days=KEEP_SOURCE_DAYS, overlap_usd=cents(overlap),
                      overlap_lead_usd=cents(overlap_lead))


def migration_json(source: Plan, target: Plan) -> dict[str, Any]:
    migration = _migration(source, target)
    before, after = migration.source.estimate, migration.target.estimate
    return {
        "from": migration.source.stack, "to": migration.target.stack,
        "retired": migration.retired, "created": migration.created,
        "data": [{"what": what, "how": how} for what, how in migration.data],
        "cost": {
            "beforeUsd": str(before.total_usd), "afterUsd": str(after.total_usd),
            "duringOverlapUsd": str(before.total_usd + after.total_usd),
            "beforeUnconfirmedLeadUsd": str(before.unconfirmed_lead_usd),
            "afterUnconfirmedLeadUsd": str(after.unconfirmed_lead_usd),
            "keepSourceDays": migration.overlap_days, "keepSourceUsd": str(migration.overlap_usd),
            "keepSourceUnconfirmedLeadUsd": str(migration.overlap_lead_usd),
        },
        "runbook": [{"step": index, "title": title, "notes": notes, "commands": commands}
                    for index, (title, notes, commands) in enumerate(migration.steps, start=1)],
    }


def migration_text(source: Plan, target: Plan) -> str:
    migration = _migration(source, target)
    s, t = migration.source.stack, migration.target.stack
    before, after = migration.source.estimate, migration.target.estimate
    lines = [f"phasekit plan --from {s} --to {t}: a second stack beside the first, then a cutover",
             "the stacks are separate Pulumi stacks: resources are matched by kind, not by URN", "",
             f"Resources by kind ({s} retired -> {t} created)"]
    width = max(len(kind) for kind in KIND_ORDER)
    for kind in KIND_ORDER:
        retired, created = migration.retired.get(kind, []), migration.created.get(kind, [])
        if not retired and not created:
            continue
        lines.append(f"  {kind:<{width}}  {len(retired)} -> {len(created)}")
        if retired == created:
            lines.append(f"  {'':<{width}}    same names, new stack: {_names(created)}")
            continue
        if retired:
            lines.append(f"  {'':<{width}}    retire: {_names(retired)}")
        if created:
            lines.append(f"  {'':<{width}}    create: {_names(created)}")
    lines += ["", "Data to move"]
    lines += [f"  {what}: {how}" for what, how in migration.data]

    def with_lead(total: Decimal, lead: Decimal) -> str:
        return money(total) + (f" (+ {money(lead)} unconfirmed)" if lead else "")

    lines += ["", "Monthly cost (USD)",
              f"  before ({s}):  {with_lead(before.total_usd, before.unconfirmed_lead_usd)}",
              f"  after ({t}):  {with_lead(after.total_usd, after.unconfirmed_lead_usd)}",
              f"  during the overlap ({s} + {t}):  "
              + with_lead(before.total_usd + after.total_usd, before.unconfirmed_lead_usd + after.unconfirmed_lead_usd),
              f"  keeping {s} {migration.overlap_days} days after the cutover:  "
              + with_lead(migration.overlap_usd, migration.overlap_lead_usd),
              "", "Runbook"]
    prose = _text(lines)
    for index, (title, notes, commands) in enumerate(migration.steps, start=1):
        prose += _text([f"  {index}. {title}", *(f"     {note}" for note in notes)])
        prose += "".join(f"{line}\n" for command in commands for line in command_lines(command))
    return prose


# --- Commands printed within the width -----------------------------------------------------------------

COMMAND_INDENT = " " * 9
"""Runbook commands sit deeper than the notes (5 columns) and the notes' own continuations (7)."""

CONTINUATION_INDENT = COMMAND_INDENT + " " * 4


def command_lines(command: str, width: int = WIDTH, indent: str = COMMAND_INDENT) -> list[str]:
    """``command`` printed in lines of at most ``width`` columns that bash reads as the same command.

    A long command is cut at a blank between two words with a ``\\`` line continuation (bash removes
    backslash-newline before it splits words: bash manual, "Escape Character"), or at a blank inside a
    ``$(...)``, which bash parses as a command of its own; never inside quotes, where the next line's indent
    would become part of the string. A single-quoted word too long for a line of its own is closed and
    reopened (``'ab'\\`` then ``'cd'`` in column 0), and so is a double-quoted one that holds no ``$``,
    backquote or backslash: adjacent quoted parts form one word, so the argument is unchanged.
    A trailing comment goes last, on a line of its own if need be; a comment-only line wraps as several
    comment lines. Continuations sit 4 columns deeper than ``indent``. Undo: ``joined_command``.
    """
    continuation = indent + " " * 4
    if len(indent) + len(command) <= width:
        return [indent + command]
    if command.startswith("#"):
        return textwrap.wrap(command.removeprefix("#").strip(), width=width, initial_indent=indent + "# ",
                             subsequent_indent=continuation + "# ", break_long_words=False,
                             break_on_hyphens=False)
    room = width - len(continuation) - 1  # one column for the backslash
    words: list[tuple[str, str]] = []
    for separator, word in _shell_words(command):
        quote = word[0]
        if len(word) > room and _plainly_quoted(word):
            pieces = _quoted_pieces(word[1:-1], room - 2)
            words += [(separator, quote + pieces[0] + quote), *(("", quote + piece + quote) for piece in pieces[1:])]
        else:
            words.append((separator, word))
    lines = [indent + words[0][1]]
    for index, (separator, word) in enumerate(words[1:], start=1):
        last = index == len(words) - 1
        glued = not separator  # the parts of a split quoted word always break: joined they would read 'a''b'
        if not glued and len(lines[-1]) + len(separator) + len(word) + (0 if last else 2) <= width:
            lines[-1] += separator + word
        else:
            lines[-1] += separator + "\\"
            # The second part of a cut quoted word starts in column 0: bash would read an indent as a blank
            # between two words.
            lines.append(word if glued else continuation + word)
    return lines


def joined_command(lines: list[str], indent: str = COMMAND_INDENT) -> str:
    """The command ``command_lines`` printed, as one line again."""
    command = lines[0].removeprefix(indent)
    for line in lines[1:]:
        rest = line.removeprefix(indent + " " * 4)
        if command[-2:] in ("'\\", '"\\') and rest.startswith(command[-2]):
            command = command[:-2] + rest[1:]
        elif command.endswith("\\"):
            command = command[:-1] + rest
        else:  # a comment-only line's continuation
            command += " " + rest.removeprefix("# ")
    return command


def _shell_words(command: str) -> list[tuple[str, str]]:
    """(blanks before, word) for each place bash would let a line continuation in: blanks outside quotes,
    at the top level or directly inside a ``$(...)``. A trailing comment is one word."""
    words: list[tuple[str, str]] = []
    separator, word, stack, index = "", "", [], 0
    while index < len(command):
        char, top = command[index], stack[-1] if stack else ""
        if char.isspace() and top in ("", "$("):
            if word:
                words.append((separator, word))
                separator, word = "", ""
            separator += char
            index += 1
            continue
        if char == "#" and not stack and not word:
            words.append((separator, command[index:]))
            return words
        if top == "'":
            if char == "'":
                stack.pop()
        elif char == "\\":
            word += char
            index += 1
            char = command[index]
        elif command.startswith("$(", index):
            stack.append("$(")
            word += "$"
            index += 1
            char = "("
        elif char == '"':
            if top == '"':
                stack.pop()
            else:
                stack.append('"')
        elif char == "'" and top != '"':
            stack.append("'")
        elif char == "(" and top != '"':
            stack.append("(")
        elif char == ")" and top in ("$(", "("):
            stack.pop()
        word += char
        index += 1
    words.append((separator, word))
    return words


def _plainly_quoted(word: str) -> bool:
    """A word that is one quoted string, and in double quotes holds nothing bash expands or escapes: cut
    into adjacent quoted parts, it is the same argument."""
    quote = word[0]
    if quote not in "'\"" or not word.endswith(quote) or word.count(quote) != 2 or len(word) < 2:
        return False
    return quote == "'" or not any(char in word for char in "$`\\")


def _quoted_pieces(text: str, room: int) -> list[str]:
    """``text`` cut into pieces of at most ``room`` characters, each after a blank or a URN or JSON
    separator where one is near, so a reader still sees whole names."""
    pieces = []
    while len(text) > room:
        cut = max((text.rfind(mark, room // 2, room) + len(mark) for mark in (" ", "::", "/", ",", ":")),
                  default=0)
        cut = cut if cut > room // 2 else room
        pieces.append(text[:cut])
        text = text[cut:]
    return [*pieces, text]
