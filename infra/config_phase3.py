"""The config models of phase 3: AWS region and zones, the EKS cluster, RDS, ElastiCache and the workload."""


from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, field_validator, model_validator

from components.aws_choices import (
    SECURITY_GROUP_ID,
    SECURITY_GROUP_ID_ALLOWED,
    WRITABLE_PATH_ALLOWED,
    RdsLifecycleSupport,
    SupportType,
    allocatable,
    next_minor_version,
    node_rooms,
    pods_that_fit,
    writable_path_allowed,
)
from components.tuning import (
    ConnectionDemand,
    kubernetes_connection_demand,
    pods_left_over,
    rollout_surge_pods,
)
from infra.config_base import MAX_POSTGRES_CONNECTIONS, App, ConfigModel, Edge, PhaseStack
from infra.config_keys import NAMESPACE
from infra.domain import (
    Allowed,
    ApiAdminCidr,
    AwsRegion,
    CacheEngine,
    CacheNodeType,
    CpuQuantity,
    Ec2InstanceType,
    EksVersion,
    EmailAddress,
    IamPrincipalArn,
    MemoryQuantity,
    NatStrategy,
    NonEmptyStr,
    PostgresMajorVersion,
    RdsInstanceClass,
    VpcCidr,
    WholeNumber,
    cpu_millicores,
    memory_mib,
    problem,
)

Switch = Annotated[bool, Strict(), Allowed("true or false")]
"""A nested phase-3 on/off key: YAML's true or false only. pydantic's lax bool would read the strings 'yes', 'on',
'1' (which the Pulumi CLI's YAML 1.2 reader leaves as strings) as true, and 'no', 'off', '0' as false. Nested keys
arrive as real booleans: ``pulumi config set --path`` stores true/false as booleans (pulumi/pulumi#5442, and the
rule documented in pulumi/pulumi#18285); only top-level keys are always strings, and no Switch is top-level."""


def _security_group_id(value: str) -> str:
    if not SECURITY_GROUP_ID.fullmatch(value):
        raise problem(f"{value!r} is not a security group id; allowed: {SECURITY_GROUP_ID_ALLOWED}")
    return value


SecurityGroupId = Annotated[str, AfterValidator(_security_group_id), Allowed(SECURITY_GROUP_ID_ALLOWED)]


class Aws(ConfigModel):
    """Where phase 3 runs: the region, its availability zones and how private subnets reach the internet."""

    region: AwsRegion
    """AWS region (``pulumi_aws.Region``). It drives an explicit AWS provider, so an ambient ``aws:region`` or
    ``AWS_REGION`` can never send the stack elsewhere."""

    availability_zones: Annotated[
        tuple[NonEmptyStr, ...], Allowed("2 or 3 zones of the region, e.g. [us-east-1a, us-east-1b]")
    ]
    """Zones the VPC, the nodes, the database and the cache span: 2 or 3 distinct zones of ``aws.region``
    (``<region><letter>``). One zone is refused: the Multi-AZ database, the cache's failover and the EKS control
    plane each need a second."""

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


class NodeGroup(ConfigModel):
    """The EKS managed node group."""

    instance_types: Annotated[
        tuple[Ec2InstanceType, ...], Field(min_length=1), Allowed("one or more EC2 instance types, e.g. [t3.large]")
    ] = ("t3.large",)
    """EC2 instance types of the nodes (``pulumi_aws.ec2.InstanceType``); x86 and Graviton (ARM) types cannot
    be mixed, since one node group runs one AMI."""

    min_size: Annotated[WholeNumber, Field(ge=1, le=100), Allowed("1..100")] = 2
    """Fewest nodes the group scales to; ``minSize <= desiredSize <= maxSize``."""

    desired_size: Annotated[WholeNumber, Field(ge=1, le=100), Allowed("1..100")] = 2
    """Nodes the group starts with; between ``minSize`` and ``maxSize``. Read only when the node group is created:
    afterwards the Cluster Autoscaler sets the size, and a changed value here is ignored."""

    max_size: Annotated[WholeNumber, Field(ge=1, le=100), Allowed("1..100")] = 4
    """Most nodes the group scales to. ``workload.maxReplicas`` pods plus a rollout's surge must fit on
    ``maxSize`` nodes of the smallest instance type, after the kubelet's reservations and the add-ons."""

    disk_size_gib: Annotated[WholeNumber, Field(ge=20, le=1000), Allowed("20..1000")] = 50
    """Root volume of each node in GiB, encrypted gp3."""

    track_latest_ami: Switch = True
    """Follow the newest EKS-optimized AMI release for ``cluster.version`` (read from AWS's SSM parameter at
    every preview): a new release shows as a node group update that replaces the nodes a third at a time."""

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


class Cluster(ConfigModel):
    """The EKS cluster: its Kubernetes version, who may reach and administer its API, its nodes."""

    version: EksVersion = "1.35"
    """Kubernetes minor version. The default is in EKS standard support until 2027-03-27 (1.34's ended
    2026-12-02; ``config_warnings`` flags a version past standard support under ``supportType: STANDARD``).
    Upgrade one minor version per ``pulumi up``: the program reads the running cluster's version, and
    ``pulumi preview`` refuses a larger jump or a downgrade with the reason. Quote it: YAML reads ``1.30`` as
    ``1.3``, so a number is refused."""

    support_type: Annotated[SupportType, Allowed("STANDARD or EXTENDED", noun="an EKS support type")] = (
        SupportType.STANDARD)
    """What happens when ``version`` leaves standard support: ``STANDARD`` (default) lets AWS upgrade the
    cluster one minor version and never bills extended support; ``EXTENDED`` keeps the version up to 12 more
    months at $0.60 instead of $0.10 per cluster-hour."""

    endpoint_public_access_cidrs: Annotated[
        tuple[ApiAdminCidr, ...],
        Allowed("IPv4 networks you administer from, e.g. [203.0.113.0/24], or [] for a private-only endpoint"),
    ]
    """Who may reach the public Kubernetes API endpoint, as IPv4 networks; ``[]`` turns the public endpoint
    off. ``0.0.0.0/0`` is refused."""

    admin_principal_arns: Annotated[
        tuple[IamPrincipalArn, ...],
        Field(min_length=1),
        Allowed("one or more IAM role or user ARNs, including the one that runs pulumi up"),
    ]
    """IAM principals given cluster-admin through EKS access entries; ``pulumi up`` deploys the app with
    the credentials it runs with, so that principal must be listed. Each role or user once; an assumed-role
    session ARN is refused with the role form to use instead."""

    api_access_security_group_ids: Annotated[
        tuple[SecurityGroupId, ...],
        Allowed("security group ids of a CI runner or bastion inside the VPC, e.g. [sg-0123456789abcdef0], or []"),
    ] = ()
    """Security groups whose members may reach the cluster's private API endpoint (tcp 443): a self-hosted CI
    runner or a bastion inside the VPC. EKS's own cluster security group admits nothing else, so without one
    only ``endpointPublicAccessCidrs`` reach the API. The first deploy must run from an address in
    ``endpointPublicAccessCidrs``: the VPC, and so the runner's group, does not exist yet. Each id once."""

    node_group: NodeGroup = Field(default_factory=NodeGroup)
    """The EKS managed node group the app's pods run on."""

    container_logs: Switch = False
    """Ship every container's stdout and stderr to CloudWatch Logs (``/aws/containerinsights/<cluster>/...``,
    kept 90 days) with the ``amazon-cloudwatch-observability`` EKS add-on: Fluent Bit and the CloudWatch agent
    on every node, under their own IAM role. Off by default because it costs money that grows with how much the
    app logs: CloudWatch Logs bills ingestion per GB (and storage), and Container Insights bills the agent's
    metrics; without it, ``kubectl logs`` shows only what the nodes still hold. On, the agents' requests
    (300m CPU and 153Mi per node, 100m and 64Mi once) count in the node-fit check."""

    @field_validator("api_access_security_group_ids")
    @classmethod
    def _each_group_once(cls, group_ids: tuple[str, ...]) -> tuple[str, ...]:
        for index, group_id in enumerate(group_ids):
            if group_id in group_ids[:index]:
                raise problem(f"{group_id!r} is listed twice; allowed: each security group once (its rule is named "
                              "after it)", at=(index,))
        return group_ids

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


class RdsDatabase(ConfigModel):
    """Phase 3's database: RDS PostgreSQL."""

    instance_class: RdsInstanceClass = "db.t4g.medium"
    """RDS instance class; a class ``pulumi_aws.rds.InstanceType`` does not list is refused with the closest
    match. ``micro`` and ``small`` classes are refused: Performance Insights, which phasekit keeps on, needs
    ``medium`` or larger."""

    engine_version: PostgresMajorVersion = "16"
    """PostgreSQL major version; RDS applies minor versions in the maintenance window. A YAML number (``16``)
    is read as the same version."""

    storage_gib: Annotated[WholeNumber, Field(ge=20, le=65536), Allowed("20..65536")] = 20
    """Allocated gp3 storage in GiB; storage autoscaling grows it up to ``maxStorageGib``."""

    max_storage_gib: Annotated[WholeNumber, Field(ge=21, le=65536), Allowed("21..65536")] = 100
    """Storage autoscaling ceiling; above ``storageGib``."""

    multi_az: bool = True
    """A synchronous standby in a second zone with automatic failover."""

    backup_retention_days: Annotated[WholeNumber, Field(ge=7, le=35), Allowed("7..35")] = 7
    """Days RDS keeps automated backups (point-in-time recovery)."""

    read_replicas: Annotated[WholeNumber, Field(ge=0, le=5), Allowed("0..5")] = 0
    """Read replicas of the same class, private and encrypted. Lowering it deletes the highest-numbered
    replicas, which are protected: unprotect them first. Above 0, RDS cannot manage the master password (it
    refuses replicas of such an instance), so the master password is generated into Pulumi state (encrypted);
    the app still connects as its own role, which the database-role Job creates with that password."""

    engine_lifecycle_support: Annotated[
        RdsLifecycleSupport,
        Allowed("open-source-rds-extended-support-disabled or open-source-rds-extended-support",
                noun="an RDS lifecycle support type"),
    ] = RdsLifecycleSupport.DISABLED
    """``open-source-rds-extended-support-disabled`` (default): RDS upgrades the major version at the end of
    its standard support rather than billing RDS Extended Support (the provider's own default enables it)."""

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


class Cache(ConfigModel):
    """Phase 3's Redis: an ElastiCache replication group."""

    engine: Annotated[CacheEngine, Allowed("valkey or redis", noun="a cache engine")] = CacheEngine.VALKEY
    """The replication group's engine: Valkey or Redis OSS."""

    node_type: CacheNodeType = "cache.t4g.small"
    """ElastiCache node type of every node."""

    node_count: Annotated[WholeNumber, Field(ge=2, le=6),
                          Allowed("2..6 (a primary and at least one replica to fail over to)")] = 2
    """Nodes in the replication group: a primary and the replicas it fails over to."""

    snapshot_retention_days: Annotated[WholeNumber, Field(ge=1, le=35), Allowed("1..35")] = 1
    """Days ElastiCache keeps its daily snapshots."""


class LoadBalancer(ConfigModel):
    """The public Application Load Balancer in front of the nodes."""

    access_logs: Switch = True
    """Write the ALB's access logs to an S3 bucket phasekit creates (private, SSE-S3, deleted with the stack)."""

    access_log_retention_days: Annotated[WholeNumber, Field(ge=1, le=3650), Allowed("1..3650")] = 90
    """Days each access log is kept before S3's lifecycle rule deletes it."""


class Workload(ConfigModel):
    """How the app runs on Kubernetes: replicas (the HPA's bounds) and each pod's resources."""

    min_replicas: Annotated[WholeNumber, Field(ge=2, le=100),
                            Allowed("2..100 (one pod per zone at least, so a zone or node loss is survived)")] = 2
    """Fewest pods the HorizontalPodAutoscaler keeps."""

    max_replicas: Annotated[WholeNumber, Field(ge=2, le=100), Allowed("2..100")] = 6
    """Most pods the HorizontalPodAutoscaler runs; at least ``minReplicas``. It sizes RDS's
    ``max_connections``: these pods and a rollout's surge, times the workers per pod, times ``app.dbPoolSize``,
    plus the release Job's pool and headroom, must fit PostgreSQL's 262143. With the surge it must also fit on
    ``cluster.nodeGroup.maxSize`` nodes."""

    cpu_request: CpuQuantity = "250m"
    """CPU each pod requests: millicores (``250m``) or whole cores (``2``); a YAML number of cores (``2``,
    ``0.5``) is read as that quantity. ``app.workers`` defaults to one per whole requested core (at least one).
    No CPU limit is set, so the app is never throttled."""

    memory_request: MemoryQuantity = "512Mi"
    """Memory each pod requests."""

    memory_limit: MemoryQuantity = "512Mi"
    """Memory each pod may use before it is killed; at least ``memoryRequest``."""

    writable_paths: Annotated[
        tuple[NonEmptyStr, ...], Field(min_length=1),
        Allowed("one or more absolute directory paths, e.g. [/tmp, /var/cache/nginx]"),
    ] = ("/tmp",)
    """Directories the app may write under its read-only root filesystem, each an emptyDir (lost with the pod,
    1 GiB each). Images that write outside /tmp (nginx's /var/cache/nginx, /var/run) list those paths."""

    run_as_user: Annotated[WholeNumber, Field(ge=1, le=2147483647),
                           Allowed("1..2147483647 (pods never run as root)")] = 10001
    """uid, gid and fsGroup of the app's pods; set it to the uid the image was built for."""

    @field_validator("writable_paths")
    @classmethod
    def _absolute_directories_once(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for index, path in enumerate(paths):
            if not writable_path_allowed(path):
                raise problem(f"{path!r} is not a directory the pod can mount; allowed: {WRITABLE_PATH_ALLOWED}",
                              at=(index,))
            if path in paths[:index]:
                raise problem(f"{path!r} is listed twice; allowed: each path once", at=(index,))
        return paths

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


class Phase3Stack(PhaseStack):
    """Phase 3: AWS (VPC across zones, EKS, RDS Multi-AZ, ElastiCache) behind Cloudflare."""

    phase: Literal[3]
    """Which phase the stack deploys; it decides which of the other keys the stack may set."""

    app: App
    """The web application: its image, port, health check, environment and workers."""

    edge: Edge
    """Cloudflare in front of the app: the zone, the account of the media bucket, the public hostname."""

    aws: Aws
    """The AWS region, its zones, the VPC's range and its NAT gateways."""

    cluster: Cluster
    """The EKS cluster: version, who may reach and administer its API, its nodes."""

    database: RdsDatabase = Field(default_factory=RdsDatabase)
    """RDS PostgreSQL: class, version, storage, standby, backups and replicas."""

    cache: Cache = Field(default_factory=Cache)
    """ElastiCache: engine, node type and count, snapshots."""

    workload: Workload = Field(default_factory=Workload)
    """How the app runs on Kubernetes: replicas and each pod's resources, writable paths and user."""

    load_balancer: LoadBalancer = Field(default_factory=LoadBalancer)
    """The public Application Load Balancer in front of the nodes: its access logs."""

    alert_emails: Annotated[
        tuple[EmailAddress, ...], Field(min_length=1), Allowed("one or more e-mail addresses, e.g. [ops@example.com]")
    ]
    """Who receives the CloudWatch alarms, subscribed to their SNS topic (each address confirms once). Each
    address once, case, dots and dashes aside, since each names its subscription."""

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
        demand = self.connection_demand
        if demand.max_connections > MAX_POSTGRES_CONNECTIONS:
            fewer = " or run fewer process replicas" if demand.process_pods else ""
            raise problem(
                f"{demand.explain()} connections; allowed: at most {MAX_POSTGRES_CONNECTIONS} (PostgreSQL's "
                f"limit; put fewer connections per pod{fewer})",
                at=("workload", "maxReplicas"))
        return self

    @model_validator(mode="after")
    def _workload_fits_the_nodes(self) -> Phase3Stack:
        """Pods the nodes cannot hold stay Pending, and the Deployment's await then fails ``pulumi up`` after
        10 minutes: the HPA maximum plus a rollout's surge must fit ``maxSize`` nodes of the smallest type, and so
        must the processes' pods at their maximum plus their surge and one pod per schedule, each with its own
        CPU and memory (``tuning.pods_left_over``: first-fit, largest first)."""
        nodes, workload = self.cluster.node_group, self.workload
        memory = memory_mib(workload.memory_request)
        fits = {instance_type: pods_that_fit(instance_type, nodes.max_size, workload.cpu_millicores, memory,
                                             container_logs=self.cluster.container_logs)
                for instance_type in nodes.instance_types}
        known = {instance_type: count for instance_type, count in fits.items() if count is not None}
        if not known:
            return self
        smallest = min(known, key=known.__getitem__)
        surge = rollout_surge_pods(workload.max_replicas)
        if workload.max_replicas + surge > known[smallest]:
            raise problem(
                f"{workload.max_replicas} pods + {surge} rollout surge of {workload.cpu_request} CPU and "
                f"{workload.memory_request} need {workload.max_replicas + surge} pods; allowed: at most "
                f"{known[smallest]}, what {nodes.max_size} x {smallest} (cluster.nodeGroup.maxSize) hold after the "
                "kubelet's reservations and the add-ons (raise maxSize, choose a larger type or request less)",
                at=("workload", "maxReplicas"))
        if self.app.processes or self.app.schedules:
            self._processes_fit_the_nodes(known)
        return self

    def _processes_fit_the_nodes(self, types: Iterable[str]) -> None:
        nodes, workload = self.cluster.node_group, self.workload
        web = workload.max_replicas + rollout_surge_pods(workload.max_replicas)
        pods = [(workload.cpu_millicores, memory_mib(workload.memory_request))] * web
        parts = [f"{web} web pods of {workload.cpu_request} CPU and {workload.memory_request}"]
        for process in self.app.process_specs():
            count = process.most_replicas + rollout_surge_pods(process.most_replicas)
            pods += [(cpu_millicores(process.cpu), process.memory_mib)] * count
            parts.append(f"{count} {process.name} pods ({process.most_replicas} + "
                         f"{rollout_surge_pods(process.most_replicas)} surge) of {process.cpu} CPU and "
                         f"{process.memory_mib}Mi")
        for schedule in self.app.schedule_specs():
            pods.append((cpu_millicores(schedule.cpu), schedule.memory_mib))
            parts.append(f"1 {schedule.name} pod of {schedule.cpu} CPU and {schedule.memory_mib}Mi")
        for instance_type in types:
            left_over = pods_left_over(node_rooms(instance_type, nodes.max_size, self.cluster.container_logs), pods)
            if left_over:
                raise problem(
                    f"{', '.join(parts)} need {len(pods)} pods, and placed largest first they leave {left_over} "
                    f"without room on {nodes.max_size} x {instance_type} (cluster.nodeGroup.maxSize) after the "
                    "kubelet's reservations and the add-ons; allowed: what those nodes hold (raise maxSize, choose "
                    "a larger type, or give processes fewer replicas or smaller requests)",
                    at=("app", "processes"))

    @property
    def connection_demand(self) -> ConnectionDemand:
        """What RDS's ``max_connections`` is sized to (static: a change waits for a reboot): the web pods, the
        release Job, the processes' pods and one pod per schedule (``kubernetes_connection_demand``)."""
        return kubernetes_connection_demand(
            self.workload.max_replicas, self.worker_count, self.app.db_pool_size,
            release_job=bool(self.app.release_command),
            process_replicas=[process.most_replicas for process in self.app.process_specs()],
            schedules=len(self.app.schedules))

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


# --- Warnings: valid, but probably not what was meant ---------------------------------------------------------


def phase3_warnings(config: Phase3Stack, *, today: date | None = None,
                    standard_support_ends: Mapping[str, date] | None = None) -> list[str]:
    """``config_warnings``' phase-3 lines: instance types whose fit nobody checked, a private-only API endpoint
    (``private_only_endpoint_warning``), and a version past EKS standard support under ``supportType: STANDARD``
    (only when the caller hands over the dated table, since the dates live in phasekit's price catalog, which infra
    does not read)."""
    warnings = [unchecked_fit_warning(instance_type) for instance_type in config.cluster.node_group.instance_types
                if allocatable(instance_type) is None]
    if not config.cluster.endpoint_public_access_cidrs:
        warnings.append(private_only_endpoint_warning())
    if standard_support_ends is not None and today is not None:
        support = standard_support_warning(config.cluster, today, standard_support_ends)
        warnings += [support] if support is not None else []
    return warnings


def unchecked_fit_warning(instance_type: str) -> str:
    """The node-fit check (``Phase3Stack._workload_fits_the_nodes``) skips a type whose capacity phasekit does not
    know rather than guess it: say so, instead of passing in silence."""
    return (f"{NAMESPACE}:cluster.nodeGroup.instanceTypes: node fit not checked: {instance_type} is not in "
            "phasekit's node table (components/aws_choices.py NODE_SPECS), so nothing checks that "
            "workload.maxReplicas plus a rollout's surge fit cluster.nodeGroup.maxSize of them; pods that do not "
            "fit stay Pending and pulumi up fails after 10 minutes (add the type's vCPUs, memory and max pods to "
            "NODE_SPECS, or choose a listed type)")


def private_only_endpoint_warning() -> str:
    """``endpointPublicAccessCidrs: []`` is right for a stack whose cluster exists and deploys from inside the VPC,
    and unusable for a first deploy, which cannot reach a private endpoint in a VPC it has not created yet. Whether
    the cluster exists is only known to the program (``components.eks_cluster.private_first_deploy_problem``, which
    makes ``pulumi up`` refuse); the plan, reading config alone, says when that applies."""
    return (f"{NAMESPACE}:cluster.endpointPublicAccessCidrs: [] turns the public API endpoint off: only a stack whose "
            "cluster already exists can deploy with a private-only endpoint (from inside the VPC, with "
            "cluster.apiAccessSecurityGroupIds); a first deploy cannot reach the API, since the VPC does not exist "
            "yet, and pulumi up refuses it: set cluster.endpointPublicAccessCidrs to the address the first deploy runs "
            "from, and remove it once the cluster exists")


def standard_support_warning(cluster: Cluster, today: date, standard_support_ends: Mapping[str, date]) -> str | None:
    """A line when ``cluster.version``'s EKS standard support ended before ``today`` and ``supportType`` is
    ``STANDARD``; None otherwise, and for a version without a known end date (nothing is guessed).

    Under ``STANDARD`` EKS upgrades a cluster to the next minor at the end of standard support on its own
    (https://docs.aws.amazon.com/eks/latest/userguide/view-upgrade-policy.html: "If your upgrade policy is
    STANDARD, it will be automatically upgraded"), after which the program (``components.eks_cluster``'s version
    check) refuses the configured version at ``pulumi preview`` as a downgrade until it is raised, and
    "You cannot disable extended support once your cluster has entered it"
    (https://docs.aws.amazon.com/eks/latest/userguide/disable-extended-support.html), so a cluster that entered
    it under ``EXTENDED`` cannot be moved back to ``STANDARD`` on its old version. ``standard_support_ends``
    maps a minor to its last day of standard support."""
    ends = standard_support_ends.get(cluster.version)
    if cluster.support_type is not SupportType.STANDARD or ends is None or today <= ends:
        return None
    upgrade = next_minor_version(cluster.version)
    return (f"{NAMESPACE}:cluster.version: {cluster.version!r} left EKS standard support on {ends.isoformat()}: "
            f"with supportType STANDARD EKS upgrades the cluster to {upgrade!r} on its own (an upgrade nobody "
            "scheduled, and the next pulumi preview refuses the configured version as a downgrade until you raise "
            "it), and a cluster already in extended support "
            f"cannot be switched back to STANDARD; set cluster.version to {upgrade!r} (one minor at a time), or "
            "choose supportType EXTENDED and pay extended support ($0.60 instead of $0.10 per cluster-hour)")
