"""RdsPostgres: the app's PostgreSQL on Amazon RDS (phase 3).

Creates
- a security group admitting only TCP 5432 from ``client_security_group_id`` (the EKS nodes' group), with
  no other ingress and no egress rules at all (RDS never opens connections to the nodes). The rules are
  inline, so anything added to the group by hand is removed on the next ``pulumi up``;
- the master password: by default (``manage_master_password``) RDS generates it and keeps it in its own Secrets
  Manager secret (``master_secret_arn``, encrypted with ``aws/secretsmanager`` unless
  ``master_secret_kms_key_id``), rotated by RDS every 7 days; it never enters Pulumi state. Otherwise (needed for
  read replicas: RDS cannot create a replica of an instance whose master password it manages) a generated one
  (pulumi-random, 32 letters and digits), which is in the state, encrypted: unavoidable with replicas, and it is
  then also in the Kubernetes Secret the database-role Job reads it from;
- the app's own role ``app_role_name``, always (``database_url`` never connects as the master user): its password
  (pulumi-random, 32 letters and digits) and, with a managed master password and ``master_secret_reader``, the
  IRSA role the in-cluster Job that creates the role (components/database_role.py) assumes:
  ``secretsmanager:GetSecretValue`` on the master secret only. Without a managed master password the Job reads the
  master password (``password``) from a Kubernetes Secret instead, and needs no AWS role;
- a parameter group (family ``postgres<major>``, auto-named) forcing TLS (``rds.force_ssl=1``), setting
  ``max_connections`` and logging statements slower than one second; retained on delete (see "How changes
  land");
- the instance: gp3, encrypted with the account's ``aws/rds`` key, private, Multi-AZ by default,
  deletion protection, a final snapshot ``<identifier>-final-<8 hex>`` on delete (the suffix is a
  ``random.RandomId`` renewed with the database name and the master user name, which replace the instance, and
  with the identifier, which the snapshot name carries anyway, so a re-created stack's deletion never collides
  with the snapshot an earlier one left),
  automated backups kept ``backup_retention_days`` days (and kept after a delete), IAM database
  authentication, Performance Insights (7 days, free tier), the ``postgresql`` and ``upgrade`` logs in
  CloudWatch Logs, the ``rds-ca-rsa2048-g1`` server certificate, minor upgrades in the maintenance window,
  major upgrades allowed (only ever asked for by a change of ``engine_version``'s major);
- ``read_replica_count`` read replicas (same class and parameter group, private, encrypted), named
  ``<identifier>-replica-<n>``;
- with ``alarm_topic_arn``: CloudWatch alarms on the primary (CPU > 70 % for 5 minutes, free storage
  < 10 % of ``allocated_storage_gib``, connections > 80 % of ``max_connections``), notifying on alarm and
  on recovery.

- with ``monitoring_interval_seconds`` above 0 (default 60): Enhanced Monitoring on the primary and the
  replicas, through an IAM role RDS assumes (``monitoring.rds.amazonaws.com``) holding only
  ``AmazonRDSEnhancedMonitoringRole``; the instances wait for the policy attachment.

Does not create the VPC, the DB subnet group, the clients' security group, a KMS key or an RDS Proxy; the app
role itself is created inside PostgreSQL by KubernetesApp's database-role Job, not here.

Windows (UTC): backups 03:00-04:00 daily, maintenance Sunday 04:30-05:30; they do not overlap.

How changes land: ``apply_immediately`` is off, so class, storage type, engine minor version and
parameter-group changes wait for the maintenance window; ``max_connections`` is a static parameter and
takes effect only after a reboot (``aws rds reboot-db-instance``), while the connections alarm follows
the new value at once. With storage autoscaling on (``max_allocated_storage_gib``), a later change of
``allocated_storage_gib`` is ignored by the provider, and the free-storage alarm keeps its threshold
(10 % of ``allocated_storage_gib``): on a volume autoscaling has grown it fires at a smaller fraction,
in practice when autoscaling has reached its ceiling or cannot keep up.

A major upgrade (``engine_version`` ``"16"`` to ``"17"``) completes in one ``pulumi up``: the family
(``postgres17``) replaces the parameter group (a new auto-named group is created first) and the instance is
modified with the new engine version and the new group together, as RDS requires ("For major version upgrades,
if a nondefault DB parameter group is currently in use, a new DB parameter group in the DB parameter group
family for the new engine version must be specified", ModifyDBInstance ``EngineVersion``,
https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBInstance.html) and as the provider sends
them (one ModifyDBInstance per update, with ``AllowMajorVersionUpgrade``, which RDS requires for a new major).
With ``apply_immediately`` off the upgrade waits for the maintenance window and RDS keeps the old group attached
until then, so the old group is retained on delete: Pulumi only drops it from its state (deleting it fails with
InvalidDBParameterGroupState, which the provider retries for 3 minutes only, hashicorp/terraform#15071, then
failing the update). The retention protects a major upgrade only once Pulumi's state holds it: the engine deletes
a replaced resource according to the options saved in the state, not the program's (pulumi/pulumi#13428), so on a
stack created before the group was retained, run one ``pulumi up`` on this release with no engine-version change
first, and raise the major in a later one.
Delete the old ``postgres16`` group by hand after the window (``aws rds delete-db-parameter-group``; parameter
groups are free). The upgrade is downtime: the instance is unavailable until it completes, and Multi-AZ does not
avoid it, as RDS upgrades the primary and the standby at the same time ("Amazon RDS handles Multi-AZ major
version upgrades", https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.PostgreSQL.html;
AWS's blue/green deployments, which shorten it, do not support an instance whose master password Secrets Manager
manages: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html, "Limitations"). Test it on
a restored snapshot first (extensions, ``reg*`` types, prepared transactions:
https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.PostgreSQL.MajorVersion.Process.html).
Read replicas: RDS upgrades them together with the primary ("any read replicas associated with the database are
also upgraded",
https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.PostgreSQL.MajorVersion.html), but
they use the same parameter group, so the same ``pulumi up`` would also ask each replica, still on the old major
until the window, to take the new-family group, which RDS refuses (a group's family must match the instance's
major), leaving the update half-applied. So the program reads the primary's running version first
(``running_engine_version``) and refuses a major upgrade while ``read_replica_count`` is above 0, with the
procedure (replicas to 0, upgrade, replicas back), and a lower major, which RDS cannot apply at all
(``engine_version_problem``); ``pulumi preview`` shows either refusal.

Lowering ``read_replica_count`` deletes the highest-numbered replicas, which are protected and have
deletion protection: unprotect them and turn that off first. Changing ``database_name`` or ``username`` replaces
the instance (ForceNew in terraform-provider-aws, internal/service/rds/instance.go): the protected instance makes
``pulumi up`` stop first. Changing ``identifier`` does not: since terraform-provider-aws v5 it renames the
instance in place (ModifyDBInstance ``NewDBInstanceIdentifier``; hashicorp/terraform-provider-aws#507, #32590;
``phasekit/replacement_rules.yaml`` agrees), which changes its endpoint; with read replicas the rename fails
("cannot elect new source database for replication"). The subnet group is not ForceNew: a new one is a modify.

Cost: the instance class's hourly price, doubled with Multi-AZ (a standby in another zone); gp3 storage
per GiB-month (doubled with Multi-AZ); backup storage up to the database's size is free; each replica
costs a Single-AZ instance plus its storage; Performance Insights at 7 days and the security and
parameter groups are free; each CloudWatch alarm is $0.10 a month; exported logs bill CloudWatch Logs
ingestion and storage; the managed master secret bills Secrets Manager ($0.40 a secret-month plus API calls).

Stateful: the instance and its replicas. Each is protected and retained on delete when ``protect`` is
true (default), on top of deletion protection, the final snapshot and retained automated backups.
Replicas skip the final snapshot because RDS refuses one for a read replica; they hold no data that
the primary lacks. Rotating the app role's password (replacing its RandomPassword) changes ``database_url``;
phase 3's KubernetesApp then reruns the database-role Job (which sets the new password) and replaces its
auto-named Secret, which rolls the pods onto the new URL in the same ``pulumi up`` (connections opened with the
old password keep working; new ones from old pods fail until they roll).

Turning ``manage_master_password`` on for an existing instance is an in-place modify
(``ManageMasterUserPassword``, no reboot): RDS generates a new master password, applied as soon as possible like
any master password change (ModifyDBInstance applies those regardless of ``apply_immediately``), and the old
generated one stops working; the old RandomPassword is deleted from the state.

Before this release a stack with read replicas connected the app as the master user. On upgrading, the app role's
RandomPassword and the database-role Job are created and ``database_url`` switches to ``app_role_name``, whose
``search_path`` is its own new schema: the app's tables in ``public`` stay the master user's, out of the app's
sight, until ``phasekit db adopt --target URL --role ROLE`` (docs/migration.md) gives ``public`` to the role
(setting aside, renamed, the empty tables the release Job's migrations created meanwhile). Run that ``pulumi up``
and the adopt together in a maintenance window. The final snapshot's suffix is also renewed once (its keepers
grew): an in-place change of ``final_snapshot_identifier``.

Clients must connect with TLS (``sslmode=require`` in ``database_url``); verifying the server
(``verify-full``) needs the RDS CA bundle in the app image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.aws_choices import RdsLifecycleSupport
from components.connection_urls import postgres_url
from components.database_role import check_role_name, master_secret_reader_policy
from components.eks_cluster import irsa_trust_policy
from components.stateful import final_snapshot_name, final_snapshot_suffix, parameter_group_options, stateful_options
from components.tags import aws_tags
from components.tuning import OPERATOR_CONNECTIONS, POSTGRES_RESERVED_SLOTS

PORT = 5432
BACKUP_WINDOW = "03:00-04:00"
MAINTENANCE_WINDOW = "sun:04:30-sun:05:30"
CA_CERT_IDENTIFIER = "rds-ca-rsa2048-g1"
LOG_EXPORTS = ["postgresql", "upgrade"]
SLOW_STATEMENT_MS = 1000
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7
PASSWORD_LENGTH = 32
ENHANCED_MONITORING_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
MONITORING_INTERVALS = (0, 1, 5, 10, 15, 30, 60)

ALARM_PERIOD_SECONDS = 60
ALARM_EVALUATION_PERIODS = 5
"""Five consecutive one-minute datapoints: "for 5 minutes"."""

CPU_ALARM_PERCENT = 70
FREE_STORAGE_ALARM_PERCENT = 10
CONNECTIONS_ALARM_PERCENT = 80

MAX_REPLICAS = 5
MIN_BACKUP_RETENTION_DAYS = 7
MAX_BACKUP_RETENTION_DAYS = 35
MIN_STORAGE_GIB = 20
MAX_STORAGE_GIB = 65536
MAX_CONNECTIONS_LIMIT = 262143
MAX_IDENTIFIER_LENGTH = 53
"""63 (RDS' limit) minus the ``-replica-N`` suffix replicas add."""

_IDENTIFIER = re.compile(r"^[a-z](?:-?[a-z0-9])*$")
_PG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_ENGINE_VERSION = re.compile(r"^(?P<major>\d+)(?:\.\d+)?$")
_RESERVED_USERNAMES = frozenset({"rdsadmin", "public"})
"""RDS' own administrator role and PostgreSQL's pseudo-role; names starting ``pg_`` are PostgreSQL's too."""


@dataclass(frozen=True)
class MasterSecretReader:
    """Who may read the master secret: one ServiceAccount of the cluster, through its OIDC provider (IRSA)."""

    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    """The issuer URL with ``https://``."""

    namespace: str
    service_account: str


@dataclass
class RdsPostgresArgs:
    identifier: str
    """Physical DB instance identifier (lowercase letters, digits, single hyphens; at most 53 characters).
    Names the final snapshot (``<identifier>-final-<8 hex>``), the replicas and the alarms' dimension. Changing
    it renames the instance in place (terraform-provider-aws v5+, ``NewDBInstanceIdentifier``), which changes its
    endpoint, and fails with read replicas (RDS: "cannot elect new source database for replication"); the
    replicas' identifiers and the alarms follow it."""

    vpc_id: pulumi.Input[str]
    """VPC of the subnet group; the security group is created in it."""

    subnet_group_name: pulumi.Input[str]
    """DB subnet group (private subnets in at least two zones)."""

    client_security_group_id: pulumi.Input[str]
    """Security group of the clients (the EKS nodes): the only source admitted on 5432."""

    instance_class: str
    """Instance class, e.g. ``db.t4g.medium``. Performance Insights needs a class larger than
    ``db.t4g.small``/``db.t3.small``."""

    max_connections: int
    """PostgreSQL ``max_connections`` (1-262143), set in the parameter group (static: needs a reboot to
    change). The connections alarm fires above 80 % of it, rounded down."""

    engine_version: str = "16"
    """Major version (``"16"``; RDS picks the newest minor and upgrades minors itself) or a full
    ``major.minor``. The parameter group family follows the major; raising the major upgrades the instance in the
    next maintenance window, with downtime (see the module's "How changes land")."""

    allocated_storage_gib: int = 20
    """Initial gp3 storage (20-65536 GiB)."""

    max_allocated_storage_gib: int | None = 100
    """Storage autoscaling ceiling, greater than ``allocated_storage_gib``; None turns autoscaling off."""

    multi_az: bool = True
    """A synchronous standby in a second zone with automatic failover. Default on (doubles the cost)."""

    backup_retention_days: int = 7
    """Days of automated backups and point-in-time recovery (7-35)."""

    read_replica_count: int = 0
    """Read replicas (0-5), same class as the primary, Single-AZ."""

    check_running_instance: bool = True
    """Run ``check_against_the_running_instance`` before any child. False when the program ran it already, before
    its first resource (infra/phase3.py ``preflight``), so the lookups are not made twice."""

    monitoring_interval_seconds: int = 60
    """Enhanced Monitoring granularity (1, 5, 10, 15, 30 or 60 seconds; 0 turns it off). Default 60: OS metrics
    (memory, swap, per-process CPU, disk I/O) the CloudWatch instance metrics lack, written to the
    ``RDSOSMetrics`` log group through a role with ``AmazonRDSEnhancedMonitoringRole``.
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Monitoring.OS.Enabling.html"""

    engine_lifecycle_support: RdsLifecycleSupport = RdsLifecycleSupport.DISABLED
    """The primary's ``engine_lifecycle_support``. Default ``open-source-rds-extended-support-disabled``: at the
    end of the major version's RDS standard support AWS upgrades it rather than billing RDS Extended Support
    (the provider's default, ``open-source-rds-extended-support``, keeps it and bills per vCPU-hour).
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/extended-support.html"""

    database_name: str = "app"
    """Database created with the instance (letters, digits, underscores; starts with a letter)."""

    username: str = "app"
    """Master user name (same rules as ``database_name``; not ``rdsadmin``, ``public`` or ``pg_*``)."""

    manage_master_password: bool = True
    """RDS generates the master password and keeps it in Secrets Manager (never in Pulumi state), and the app gets
    a role of its own (``app_role_name``). Default on. Refused with read replicas: RDS cannot create a read
    replica of an instance whose master password it manages
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html, "Limitations"); off, the
    master password is generated by Pulumi and kept (encrypted) in its state, and the database-role Job reads it from
    a Kubernetes Secret. ``database_url`` is the app role's either way."""

    master_secret_kms_key_id: str | None = None
    """Customer managed KMS key (ARN) for the master secret; None uses Secrets Manager's ``aws/secretsmanager``
    key. With a key, the reader role also gets ``kms:Decrypt`` on it (through Secrets Manager only)."""

    app_role_name: str = "app_user"
    """The app's own PostgreSQL role (and schema): not the master user, no superuser, CREATEROLE or CREATEDB.
    ``database_url`` connects as it, with or without a managed master password."""

    master_secret_reader: MasterSecretReader | None = None
    """The Kubernetes ServiceAccount allowed (through IRSA) to read the master secret: the database-role Job's.
    None creates no reader role; ignored without a managed master password (there is no secret to read)."""

    alarm_topic_arn: pulumi.Input[str] | None = None
    """SNS topic for alarm and recovery notifications (``AlertTopic.topic_arn``); None creates no alarms."""

    protect: bool = True
    """Protect and retain the instance and its replicas. Default true."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """AWS tags on every taggable child (``Name`` is added)."""


class RdsPostgres(pulumi.ComponentResource):
    address: pulumi.Output[str]
    """Primary's DNS name (follows a Multi-AZ failover)."""

    port: pulumi.Output[int]
    database_name: pulumi.Output[str]
    username: pulumi.Output[str]
    password: pulumi.Output[str] | None
    """Master password (a secret) when Pulumi generates it; None when RDS manages it."""

    master_secret_arn: pulumi.Output[str] | None
    """ARN of RDS's secret holding the master user's ``{"username", "password"}``; None when not managed."""

    master_secret_reader_role_arn: pulumi.Output[str] | None
    """The IRSA role that may read the master secret; None without ``master_secret_reader``."""

    app_role_name: str
    """The app's own role, which ``database_url`` connects as."""

    app_role_password: pulumi.Output[str]
    """The app role's password (a secret)."""

    app_connection_limit: int
    """The app role's ``CONNECTION LIMIT`` (``max_connections`` minus the master user's slots)."""

    database_url: pulumi.Output[str]
    """The app's ``DATABASE_URL``: ``postgresql://user:password@address:5432/db?sslmode=require`` as the app role;
    a secret."""

    replica_addresses: pulumi.Output[list[str]]
    """DNS names of the read replicas, in order; empty without replicas."""

    security_group_id: pulumi.Output[str]
    instance_arn: pulumi.Output[str]

    def __init__(self, name: str, args: RdsPostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_args(args)
        super().__init__("phasekit:index:RdsPostgres", name, None, opts)
        # Before any child: a refused engine_version must not leave half a stack behind.
        if args.check_running_instance:
            check_against_the_running_instance(args.identifier, args.engine_version, args.read_replica_count,
                                               pulumi.InvokeOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self)

        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="phasekit: PostgreSQL from the app nodes only",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=PORT, to_port=PORT,
                security_groups=[args.client_security_group_id],
                description="PostgreSQL from the app nodes",
            )],
            # Empty, not omitted: the provider then removes the allow-all egress rule AWS adds to every new group.
            egress=[],
            tags=aws_tags(args.tags, Name=f"{args.identifier}-postgres"),
            opts=child,
        )

        managed = args.manage_master_password
        # Pulumi generates the master password only when RDS cannot manage it (replicas): the same logical name
        # as before, so such a stack keeps its password.
        master_password = None if managed else random.RandomPassword(
            f"{name}-password", length=PASSWORD_LENGTH, special=False, opts=child)
        app_password = random.RandomPassword(
            f"{name}-app-password", length=PASSWORD_LENGTH, special=False, opts=child)
        snapshot_suffix = final_snapshot_suffix(name, final_snapshot_keepers(args), self)

        parameter_group = aws.rds.ParameterGroup(
            f"{name}-params",
            family=parameter_group_family(args.engine_version),
            # Constant: a parameter group's description cannot change without replacing the group.
            description="phasekit: PostgreSQL, TLS only",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name=name_, value=value, apply_method=method)
                for name_, value, method in db_parameters(args.max_connections)
            ],
            tags=aws_tags(args.tags, Name=args.identifier),
            opts=parameter_group_options(self),
        )

        monitoring = _monitoring_role(name, args, child) if args.monitoring_interval_seconds else None
        # RDS checks the role can publish when it turns monitoring on: the instances wait for the attachment.
        monitoring_ready = [monitoring[1]] if monitoring is not None else []
        common = {
            "monitoring_interval": args.monitoring_interval_seconds,
            "monitoring_role_arn": monitoring[0].arn if monitoring is not None else None,
            "instance_class": args.instance_class,
            "storage_type": "gp3",
            "max_allocated_storage": args.max_allocated_storage_gib,
            "storage_encrypted": True,
            "publicly_accessible": False,
            "vpc_security_group_ids": [security_group.id],
            "parameter_group_name": parameter_group.name,
            "port": PORT,
            "ca_cert_identifier": CA_CERT_IDENTIFIER,
            "iam_database_authentication_enabled": True,
            "performance_insights_enabled": True,
            "performance_insights_retention_period": PERFORMANCE_INSIGHTS_RETENTION_DAYS,
            "enabled_cloudwatch_logs_exports": list(LOG_EXPORTS),
            "auto_minor_version_upgrade": True,
            # Only a change of engine_version's major asks for one; RDS refuses it without this flag, and the
            # provider sends it with the new version and the new-family group in one ModifyDBInstance.
            "allow_major_version_upgrade": True,
            "apply_immediately": False,
            "maintenance_window": MAINTENANCE_WINDOW,
            "deletion_protection": True,
            "copy_tags_to_snapshot": True,
        }
        primary = aws.rds.Instance(
            f"{name}-db",
            identifier=args.identifier,
            engine="postgres",
            engine_version=args.engine_version,
            allocated_storage=args.allocated_storage_gib,
            db_subnet_group_name=args.subnet_group_name,
            multi_az=args.multi_az,
            db_name=args.database_name,
            username=args.username,
            password=master_password.result if master_password is not None else None,
            manage_master_user_password=True if managed else None,
            master_user_secret_kms_key_id=args.master_secret_kms_key_id if managed else None,
            backup_retention_period=args.backup_retention_days,
            backup_window=BACKUP_WINDOW,
            delete_automated_backups=False,
            skip_final_snapshot=False,
            final_snapshot_identifier=snapshot_suffix.hex.apply(
                lambda suffix: final_snapshot_name(args.identifier, suffix)),
            # Explicit: left unset, the provider enrols the instance in paid RDS Extended Support.
            engine_lifecycle_support=RdsLifecycleSupport(args.engine_lifecycle_support).value,
            tags=aws_tags(args.tags, Name=args.identifier),
            opts=stateful_options(self, args.protect, depends_on=monitoring_ready),
            **common,
        )

        replicas = [
            aws.rds.Instance(
                f"{name}-replica-{index}",
                identifier=replica_identifier(args.identifier, index),
                # Same region: the source's identifier; the replica inherits its subnet group and engine version.
                replicate_source_db=primary.identifier,
                multi_az=False,
                # RDS refuses a final snapshot of a read replica; the data lives on in the primary.
                skip_final_snapshot=True,
                tags=aws_tags(args.tags, Name=replica_identifier(args.identifier, index)),
                opts=stateful_options(self, args.protect, depends_on=monitoring_ready),
                **common,
            )
            for index in range(1, args.read_replica_count + 1)
        ]

        if args.alarm_topic_arn is not None:
            _alarms(name, args, args.alarm_topic_arn, child)

        self.master_secret_arn = primary.master_user_secrets.apply(master_secret_arn) if managed else None
        reader = args.master_secret_reader
        self.master_secret_reader_role_arn = (
            _master_secret_reader_role(name, args, reader, self.master_secret_arn, child)
            if managed and reader is not None else None)
        self.address = primary.address
        self.port = primary.port
        self.database_name = primary.db_name
        self.username = primary.username
        self.password = pulumi.Output.secret(master_password.result) if master_password is not None else None
        self.app_role_name = args.app_role_name
        self.app_role_password = pulumi.Output.secret(app_password.result)
        self.app_connection_limit = app_connection_limit(args.max_connections)
        self.database_url = pulumi.Output.secret(pulumi.Output.all(
            args.app_role_name, app_password.result, primary.address, primary.port, primary.db_name,
        ).apply(_database_url))
        self.replica_addresses = pulumi.Output.all(*[replica.address for replica in replicas])
        self.security_group_id = security_group.id
        self.instance_arn = primary.arn
        self.register_outputs({
            "address": self.address,
            "port": self.port,
            "database_name": self.database_name,
            "username": self.username,
            "password": self.password,
            "master_secret_arn": self.master_secret_arn,
            "master_secret_reader_role_arn": self.master_secret_reader_role_arn,
            "app_role_name": self.app_role_name,
            "app_role_password": self.app_role_password,
            "app_connection_limit": self.app_connection_limit,
            "database_url": self.database_url,
            "replica_addresses": self.replica_addresses,
            "security_group_id": self.security_group_id,
            "instance_arn": self.instance_arn,
        })


def _master_secret_reader_role(name: str, args: RdsPostgresArgs, reader: MasterSecretReader,
                               secret_arn: pulumi.Output[str], child: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The ARN of the database-role Job's IRSA role: only its ServiceAccount may assume it, and it may read only
    the master secret (``master_secret_reader_policy``). The ARN carries the policy as a dependency too, so
    the Job that uses it starts only once the role may read the secret (a role without its policy answers
    AccessDenied)."""
    role = aws.iam.Role(
        f"{name}-master-secret-reader",
        description=f"Reads the master secret of {args.identifier} to create the app role (phasekit)",
        assume_role_policy=pulumi.Output.all(reader.oidc_provider_arn, reader.oidc_provider_url).apply(
            lambda values: irsa_trust_policy(values[0], values[1], reader.namespace, reader.service_account)),
        tags=aws_tags(args.tags, Name=f"{args.identifier}-master-secret-reader"),
        opts=child,
    )
    policy = aws.iam.RolePolicy(
        f"{name}-master-secret-reader-policy",
        role=role.id,
        policy=secret_arn.apply(lambda arn: master_secret_reader_policy(arn, args.master_secret_kms_key_id)),
        opts=child,
    )
    return pulumi.Output.all(role.arn, policy.id).apply(lambda values: values[0])


def master_secret_arn(secrets: list) -> str:
    """``master_user_secrets[0].secret_arn`` (RDS reports exactly one secret for the master user).

    Empty while there is none: a preview of an existing instance being switched to a managed password can
    still carry the old state's empty list, and indexing it would fail the whole preview. ``up`` modifies the
    instance before its dependents, which then read the real ARN."""
    if not secrets:
        return ""
    return secrets[0].secret_arn if hasattr(secrets[0], "secret_arn") else secrets[0]["secret_arn"]


def app_connection_limit(max_connections: int) -> int:
    """The app role's ``CONNECTION LIMIT``: ``max_connections`` less PostgreSQL's reserved superuser slots
    (``POSTGRES_RESERVED_SLOTS``, which no ordinary role can use anyway) and the operator connections the
    sizing added (``OPERATOR_CONNECTIONS``), which stay free for the master user; at least 1."""
    return max(1, max_connections - POSTGRES_RESERVED_SLOTS - OPERATOR_CONNECTIONS)


def _alarms(name: str, args: RdsPostgresArgs, topic_arn: pulumi.Input[str], opts: pulumi.ResourceOptions) -> None:
    for suffix, metric, statistic, comparison, threshold, description in alarm_specs(args):
        aws.cloudwatch.MetricAlarm(
            f"{name}-{suffix}-alarm",
            name=f"{args.identifier}-{suffix}",
            alarm_description=f"phasekit: {args.identifier} {description}",
            namespace="AWS/RDS",
            metric_name=metric,
            statistic=statistic,
            comparison_operator=comparison,
            threshold=threshold,
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            dimensions={"DBInstanceIdentifier": args.identifier},
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            tags=aws_tags(args.tags, Name=f"{args.identifier}-{suffix}"),
            opts=opts,
        )


def alarm_specs(args: RdsPostgresArgs) -> list[tuple[str, str, str, str, float, str]]:
    """(suffix, metric, statistic, comparison, threshold, description) of each alarm on the primary."""
    connections = connections_alarm_threshold(args.max_connections)
    return [
        ("cpu", "CPUUtilization", "Average", "GreaterThanThreshold", float(CPU_ALARM_PERCENT),
         f"CPU above {CPU_ALARM_PERCENT}% for 5 minutes"),
        ("free-storage", "FreeStorageSpace", "Minimum", "LessThanThreshold",
         float(free_storage_threshold_bytes(args.allocated_storage_gib)),
         f"free storage below {FREE_STORAGE_ALARM_PERCENT}% of {args.allocated_storage_gib} GiB for 5 minutes"),
        ("connections", "DatabaseConnections", "Maximum", "GreaterThanThreshold", float(connections),
         f"more than {connections} connections ({CONNECTIONS_ALARM_PERCENT}% of max_connections "
         f"{args.max_connections}) for 5 minutes"),
    ]


def check_against_the_running_instance(identifier: str, engine_version: str, read_replica_count: int,
                                       lookup: pulumi.InvokeOptions) -> None:
    """Raises ``engine_version_problem``'s reason against the running instance, if any. RdsPostgres runs it
    before any child; a program should run it before any resource of its stack (infra/phase3.py ``preflight``),
    since ``pulumi up --skip-preview`` would otherwise create what the program registered first."""
    running = running_engine_version(identifier, lookup)
    problem = None if running is None else engine_version_problem(identifier, engine_version, read_replica_count,
                                                                  running)
    if problem is not None:
        raise ValueError(problem)


def running_engine_version(identifier: str, lookup: pulumi.InvokeOptions) -> str | None:
    """The engine version (``"16.4"``) the instance ``identifier`` runs in the provider's region, or None when the
    account lists no such instance (a first deploy, or one after the instance was deleted).

    Read at program time, like ``components.eks_cluster.running_version``, so ``pulumi preview`` refuses an engine
    version RDS would refuse (or half-apply) during ``up``. The filtered list (``aws.rds.get_instances`` with the
    ``db-instance-id`` filter of DescribeDBInstances,
    https://www.pulumi.com/registry/packages/aws/api-docs/rds/getinstances) comes first because
    ``aws.rds.get_instance`` fails the program on an instance that does not exist (DBInstanceNotFound) rather than
    answering "none"; ``lookup`` names the provider, directly or through a parent."""
    listed = aws.rds.get_instances(filters=[{"name": "db-instance-id", "values": [identifier]}],
                                   opts=lookup).instance_identifiers
    if identifier not in (listed or []):
        return None
    return aws.rds.get_instance(db_instance_identifier=identifier, opts=lookup).engine_version


def engine_version_problem(identifier: str, engine_version: str, read_replica_count: int, running: str,
                           ) -> str | None:
    """Why ``engine_version`` cannot be applied to the instance ``identifier`` running ``running``, or None (same
    major, or an upgrade without read replicas).

    - A lower major: RDS cannot downgrade (ModifyDBInstance only upgrades; going back means restoring a snapshot
      taken before the upgrade into a new instance).
    - A higher major with read replicas: RDS upgrades the replicas with the primary, but they share its parameter
      group, so the same update asks each replica, still on the old major until the maintenance window, to take the
      new-family group, which RDS refuses (a group's family must match the instance's major): ``up`` stops with the
      primary's upgrade scheduled and the replicas failed. Without replicas during the upgrade it is one plain
      update, hence the three-step procedure in the message."""
    configured_major, running_major = _major(engine_version), _major(running)
    if configured_major < running_major:
        return (f"database.engineVersion {engine_version!r} is below the running PostgreSQL {running} of "
                f"{identifier!r}; allowed: {running_major} or later (RDS cannot downgrade a major version: to go "
                "back, restore a snapshot taken before the upgrade into a new instance)")
    if configured_major > running_major and read_replica_count > 0:
        replicas = "1 read replica" if read_replica_count == 1 else f"{read_replica_count} read replicas"
        return (f"database.engineVersion {engine_version!r} is a major upgrade of the running PostgreSQL "
                f"{running} of {identifier!r} with {replicas} configured: they share its parameter group, and RDS "
                f"refuses the {parameter_group_family(engine_version)} group on them while they still run "
                f"{running_major}, "
                "leaving pulumi up half-applied; instead set database.readReplicas to 0 (unprotect the replicas first; "
                "docs/phase3-operations.md, data tier) and pulumi up, then raise "
                "database.engineVersion and pulumi up (the upgrade happens in the maintenance window), then raise "
                "database.readReplicas again, once the maintenance window has applied the upgrade (until then the "
                "instance still runs the old major, and this check refuses the replicas)")
    return None


def _major(engine_version: str) -> int:
    """``"16"``, ``"16.4"`` -> 16. Lenient on purpose: it also reads what RDS reports for a running instance."""
    return int(engine_version.split(".", 1)[0])


def parameter_group_family(engine_version: str) -> str:
    """``"16"`` or ``"16.4"`` -> ``"postgres16"``."""
    match = _ENGINE_VERSION.match(engine_version)
    if match is None:
        raise ValueError(f"RdsPostgresArgs.engine_version: {engine_version!r} is not a PostgreSQL version "
                         "such as '16' or '16.4'")
    return f"postgres{int(match['major'])}"


def db_parameters(max_connections: int) -> list[tuple[str, str, str]]:
    """(name, value, apply method) of the parameter group."""
    return [
        ("rds.force_ssl", "1", "immediate"),
        ("max_connections", str(max_connections), "pending-reboot"),
        ("log_min_duration_statement", str(SLOW_STATEMENT_MS), "immediate"),
    ]


def free_storage_threshold_bytes(allocated_storage_gib: int, percent: int = FREE_STORAGE_ALARM_PERCENT) -> int:
    """``percent`` of the allocated storage, in bytes (what ``FreeStorageSpace`` reports)."""
    return allocated_storage_gib * 1024**3 * percent // 100


def connections_alarm_threshold(max_connections: int, percent: int = CONNECTIONS_ALARM_PERCENT) -> int:
    """``percent`` of ``max_connections``, rounded down."""
    return max_connections * percent // 100


def _monitoring_role(name: str, args: RdsPostgresArgs,
                     child: pulumi.ResourceOptions) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
    """The role RDS assumes to publish Enhanced Monitoring metrics, with only the AWS-managed policy for it."""
    role = aws.iam.Role(
        f"{name}-monitoring-role",
        description=f"RDS Enhanced Monitoring of {args.identifier} (phasekit)",
        assume_role_policy=monitoring_trust_policy(),
        tags=aws_tags(args.tags, Name=f"{args.identifier}-monitoring"),
        opts=child,
    )
    attachment = aws.iam.RolePolicyAttachment(f"{name}-monitoring-policy", role=role.name,
                                              policy_arn=ENHANCED_MONITORING_POLICY, opts=child)
    return role, attachment


def monitoring_trust_policy() -> str:
    """Trust policy of the Enhanced Monitoring role (the service principal the RDS docs name)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                       "Action": "sts:AssumeRole"}],
    }, sort_keys=True)


def final_snapshot_keepers(args: RdsPostgresArgs) -> dict[str, str]:
    """What renews the final snapshot's suffix: the inputs that replace the instance while its identifier may stay
    the same (ForceNew in terraform-provider-aws, internal/service/rds/instance.go: ``db_name``, ``username``;
    ``engine``, ``storage_encrypted`` and ``kms_key_id`` are ForceNew too but constant here).

    ``identifier`` is not ForceNew (since terraform-provider-aws v5 a change renames the instance in place,
    hashicorp/terraform-provider-aws#507), but it stays a keeper: harmless, since a renamed instance's snapshot
    name changes with the identifier anyway (a new suffix only renames it once more, in place), and removing it
    would renew the suffix of every existing stack for nothing."""
    return {"identifier": args.identifier, "dbName": args.database_name, "username": args.username}


def replica_identifier(identifier: str, index: int) -> str:
    return f"{identifier}-replica-{index}"


def _database_url(values: list) -> str:
    user, password, host, port, database = values
    return postgres_url(user=user, password=password, host=host, port=port, database=database, sslmode="require")


def _check_args(args: RdsPostgresArgs) -> None:
    if not _IDENTIFIER.match(args.identifier) or len(args.identifier) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(
            f"RdsPostgresArgs.identifier: {args.identifier!r} must be 1-{MAX_IDENTIFIER_LENGTH} lowercase letters, "
            "digits and single hyphens, starting with a letter and not ending with a hyphen")
    parameter_group_family(args.engine_version)
    if args.monitoring_interval_seconds not in MONITORING_INTERVALS:
        raise ValueError(f"RdsPostgresArgs.monitoring_interval_seconds: {args.monitoring_interval_seconds}; allowed: "
                         "0 (off), 1, 5, 10, 15, 30 or 60")
    if args.engine_lifecycle_support not in tuple(RdsLifecycleSupport):
        raise ValueError(f"RdsPostgresArgs.engine_lifecycle_support: {args.engine_lifecycle_support!r}; allowed: "
                         + " or ".join(RdsLifecycleSupport))
    if not args.instance_class.startswith("db."):
        raise ValueError(f"RdsPostgresArgs.instance_class: {args.instance_class!r} is not an RDS class "
                         "such as 'db.t4g.medium'")
    if not MIN_STORAGE_GIB <= args.allocated_storage_gib <= MAX_STORAGE_GIB:
        raise ValueError(f"RdsPostgresArgs.allocated_storage_gib: {args.allocated_storage_gib} is outside "
                         f"{MIN_STORAGE_GIB}-{MAX_STORAGE_GIB} (gp3 for PostgreSQL)")
    if args.max_allocated_storage_gib is not None and not (
            args.allocated_storage_gib < args.max_allocated_storage_gib <= MAX_STORAGE_GIB):
        raise ValueError(
            f"RdsPostgresArgs.max_allocated_storage_gib: {args.max_allocated_storage_gib} must be greater than "
            f"allocated_storage_gib ({args.allocated_storage_gib}) and at most {MAX_STORAGE_GIB}, "
            "or None to turn storage autoscaling off")
    if not MIN_BACKUP_RETENTION_DAYS <= args.backup_retention_days <= MAX_BACKUP_RETENTION_DAYS:
        raise ValueError(f"RdsPostgresArgs.backup_retention_days: {args.backup_retention_days} is outside "
                         f"{MIN_BACKUP_RETENTION_DAYS}-{MAX_BACKUP_RETENTION_DAYS}")
    if not 0 <= args.read_replica_count <= MAX_REPLICAS:
        raise ValueError(f"RdsPostgresArgs.read_replica_count: {args.read_replica_count} is outside 0-{MAX_REPLICAS}")
    if not _PG_NAME.match(args.database_name):
        raise ValueError(f"RdsPostgresArgs.database_name: {args.database_name!r} must be 1-63 letters, digits "
                         "and underscores, starting with a letter")
    if not _PG_NAME.match(args.username):
        raise ValueError(f"RdsPostgresArgs.username: {args.username!r} must be 1-63 letters, digits and "
                         "underscores, starting with a letter")
    if args.username.lower() in _RESERVED_USERNAMES or args.username.lower().startswith("pg_"):
        raise ValueError(f"RdsPostgresArgs.username: {args.username!r} is reserved by RDS or PostgreSQL")
    if args.manage_master_password and args.read_replica_count:
        raise ValueError(f"RdsPostgresArgs.read_replica_count: {args.read_replica_count} with manage_master_password; "
                         "RDS cannot create a read replica of an instance whose master password Secrets Manager "
                         "manages: set manage_master_password=False or read_replica_count=0")
    check_role_name(args.app_role_name, args.username, "RdsPostgresArgs.app_role_name")
    if not 1 <= args.max_connections <= MAX_CONNECTIONS_LIMIT:
        raise ValueError(f"RdsPostgresArgs.max_connections: {args.max_connections} is outside "
                         f"1-{MAX_CONNECTIONS_LIMIT}")
