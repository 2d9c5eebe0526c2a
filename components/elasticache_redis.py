"""ElastiCacheRedis: the app's Redis-compatible cache and queue store on ElastiCache (phase 3).

Creates
- a security group admitting only TCP 6379 from ``client_security_group_id`` (the EKS nodes' group), no
  other ingress and no egress rules (the cache never opens connections). The rules are inline, so
  anything added by hand is removed on the next ``pulumi up``;
- a generated AUTH token (pulumi-random, 64 letters and digits: inside ElastiCache's 16-128 printable
  characters and free of the ``@ " /`` it refuses);
- a parameter group (family from engine and version: ``valkey8``, ``redis7``, ...) setting
  ``maxmemory-policy``;
- a replication group with cluster mode off: ``node_count`` nodes (one primary, the rest replicas) spread
  over zones, automatic failover and Multi-AZ, TLS in transit (required) and encryption at rest (the
  AWS-owned key), the AUTH token, port 6379, daily snapshots kept ``snapshot_retention_days`` days, a
  final snapshot ``<replication_group_id>-final-<8 hex>`` on delete (the suffix is a ``random.RandomId`` renewed
  with the group id, the engine and the subnet group, so a re-created stack's deletion never meets the snapshot
  an earlier one left), minor-version upgrades in the maintenance window;
- with ``alarm_topic_arn``: per node, CloudWatch alarms on ``DatabaseMemoryUsagePercentage`` > 80 % and
  ``EngineCPUUtilization`` > 70 %, each for 5 minutes, notifying on alarm and on recovery.

Does not create the VPC, the cache subnet group, the clients' security group, a KMS key, users/user
groups (RBAC), slow-log delivery, or cluster mode (sharding).

Windows (UTC): snapshots 03:00-04:00 daily, maintenance Sunday 05:00-06:00; they do not overlap.

How changes land: ``apply_immediately`` is off, so node type, engine version and parameter-group
changes wait for the maintenance window. A parameter-group family change (a Valkey major upgrade, or
Redis to Valkey) creates a new group and points the replication group at it; the old group is retained
rather than deleted (AWS keeps it attached until the window, and the provider would give up deleting it
after 3 minutes), so delete it by hand afterwards. In the window AWS upgrades the replicas, fails over and
upgrades the old primary: writes pause for the failover (seconds to a minute; clients reconnect).

A new AUTH token (replacing the RandomPassword) is applied with AWS' default ROTATE strategy: old and new
tokens both work, and the new ``redis_url`` rolls phase 3's pods (KubernetesApp replaces its auto-named
Secret); the old token stays valid until a later update with strategy SET, so after a leak also revoke it by
hand (``modify-replication-group --auth-token-update-strategy SET``). ``node_count`` changes add or remove
replicas in place. Changing ``replication_group_id``, the engine (except upgrading redis to valkey) or the
subnet group replaces the group: the protected group makes ``pulumi up`` stop first. A stack created before the
final snapshot had a suffix changes ``final_snapshot_identifier`` from ``<id>-final`` in place (the provider
reads it only on delete).

Cost: the node type's hourly price times ``node_count``; snapshot storage beyond ElastiCache's free
allowance per GiB-month; each CloudWatch alarm is $0.10 a month (two per node). Valkey nodes cost less
per hour than Redis OSS nodes of the same type.

Stateful: the replication group (queues, sessions and anything the app stores without a TTL). It is
protected and retained on delete when ``protect`` is true (default), on top of the daily snapshots and
the final snapshot. ``maxmemory-policy`` ``volatile-lru`` evicts only keys that carry a TTL; when nothing
is evictable the cache refuses writes instead of dropping data silently.

Clients must connect with TLS: ``redis_url`` is ``rediss://``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.aws_choices import CacheEngine
from components.connection_urls import redis_url
from components.stateful import final_snapshot_name, final_snapshot_suffix, parameter_group_options, stateful_options
from components.tags import aws_tags

PORT = 6379
SNAPSHOT_WINDOW = "03:00-04:00"
MAINTENANCE_WINDOW = "sun:05:00-sun:06:00"
AUTH_TOKEN_LENGTH = 64

ALARM_PERIOD_SECONDS = 60
ALARM_EVALUATION_PERIODS = 5
"""Five consecutive one-minute datapoints: "for 5 minutes"."""

MEMORY_ALARM_PERCENT = 80
ENGINE_CPU_ALARM_PERCENT = 70

MIN_NODES = 2
MAX_NODES = 6
MAX_SNAPSHOT_RETENTION_DAYS = 35
MAX_REPLICATION_GROUP_ID_LENGTH = 40
MAXMEMORY_POLICIES = frozenset({
    "volatile-lru", "allkeys-lru", "volatile-lfu", "allkeys-lfu", "volatile-random", "allkeys-random",
    "volatile-ttl", "noeviction",
})

_REPLICATION_GROUP_ID = re.compile(r"^[a-z](?:-?[a-z0-9])*$")
_ENGINE_VERSION = re.compile(r"^(?P<major>\d+)\.(?:\d+|x)$")


DEFAULT_ENGINE_VERSIONS = {CacheEngine.VALKEY: "8.0", CacheEngine.REDIS: "7.1"}


@dataclass
class ElastiCacheRedisArgs:
    replication_group_id: str
    """Physical id (lowercase letters, digits, single hyphens; at most 40 characters). Node ids, alarm
    dimensions and the final snapshot derive from it. Changing it replaces the group."""

    vpc_id: pulumi.Input[str]
    """VPC of the subnet group; the security group is created in it."""

    subnet_group_name: pulumi.Input[str]
    """Cache subnet group (private subnets in at least two zones)."""

    client_security_group_id: pulumi.Input[str]
    """Security group of the clients (the EKS nodes): the only source admitted on 6379."""

    node_type: str
    """Node type, e.g. ``cache.t4g.small``."""

    engine: CacheEngine = CacheEngine.VALKEY
    """``valkey`` (default) or ``redis`` (Redis OSS)."""

    engine_version: str | None = None
    """``major.minor`` (``"8.0"``, ``"7.2"``; Redis 6 as ``"6.2"``); None picks the engine's default
    (``DEFAULT_ENGINE_VERSIONS``: valkey 8.0, redis 7.1). Valkey 7+ or Redis 6-7."""

    node_count: int = 2
    """Nodes including the primary (2-6): failover needs at least one replica."""

    snapshot_retention_days: int = 1
    """Days daily snapshots are kept (1-35)."""

    maxmemory_policy: str = "volatile-lru"
    """``maxmemory-policy`` in the parameter group; default evicts only keys with a TTL."""

    alarm_topic_arn: pulumi.Input[str] | None = None
    """SNS topic for alarm and recovery notifications (``AlertTopic.topic_arn``); None creates no alarms."""

    protect: bool = True
    """Protect and retain the replication group. Default true."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """AWS tags on every taggable child (``Name`` is added)."""


class ElastiCacheRedis(pulumi.ComponentResource):
    primary_endpoint_address: pulumi.Output[str]
    """Writer endpoint (follows a failover)."""

    reader_endpoint_address: pulumi.Output[str]
    """Endpoint balancing over the replicas."""

    port: pulumi.Output[int]
    auth_token: pulumi.Output[str]
    """AUTH token of the default user; a secret."""

    redis_url: pulumi.Output[str]
    """The app's ``REDIS_URL``: ``rediss://:token@primary:6379/0``; a secret."""

    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: ElastiCacheRedisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_args(args)
        super().__init__("phasekit:index:ElastiCacheRedis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        engine = CacheEngine(args.engine)
        version = args.engine_version or default_engine_version(engine)

        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="phasekit: Redis from the app nodes only",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=PORT, to_port=PORT,
                security_groups=[args.client_security_group_id],
                description="Redis from the app nodes",
            )],
            # Empty, not omitted: the provider then removes the allow-all egress rule AWS adds to every new group.
            egress=[],
            tags=aws_tags(args.tags, Name=f"{args.replication_group_id}-redis"),
            opts=child,
        )

        token = random.RandomPassword(f"{name}-auth-token", length=AUTH_TOKEN_LENGTH, special=False, opts=child)
        # DeleteReplicationGroup fails with SnapshotAlreadyExistsFault when the final snapshot's name exists, as a
        # fixed "<id>-final" does from the second deletion of a re-created cache on. Renewed with the group id and
        # with the inputs that replace the group under the same id (terraform-provider-aws replication_group.go:
        # subnet_group_name is ForceNew; an engine change other than redis to valkey replaces it).
        snapshot_suffix = final_snapshot_suffix(name, final_snapshot_keepers(args, engine), self)

        parameter_group = aws.elasticache.ParameterGroup(
            f"{name}-params",
            family=parameter_group_family(engine, version),
            # Constant: a parameter group's description cannot change without replacing the group.
            description="phasekit: cache settings",
            parameters=[aws.elasticache.ParameterGroupParameterArgs(name="maxmemory-policy",
                                                                   value=args.maxmemory_policy)],
            tags=aws_tags(args.tags, Name=args.replication_group_id),
            opts=parameter_group_options(self),
        )

        group = aws.elasticache.ReplicationGroup(
            f"{name}-cache",
            replication_group_id=args.replication_group_id,
            description=f"phasekit: {args.replication_group_id}",
            engine=engine.value,
            engine_version=version,
            node_type=args.node_type,
            num_cache_clusters=args.node_count,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            parameter_group_name=parameter_group.name,
            subnet_group_name=args.subnet_group_name,
            security_group_ids=[security_group.id],
            port=PORT,
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            auth_token=token.result,
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window=SNAPSHOT_WINDOW,
            final_snapshot_identifier=snapshot_suffix.hex.apply(
                lambda suffix: final_snapshot_name(args.replication_group_id, suffix)),
            maintenance_window=MAINTENANCE_WINDOW,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=aws_tags(args.tags, Name=args.replication_group_id),
            opts=stateful_options(self, args.protect),
        )

        if args.alarm_topic_arn is not None:
            _alarms(name, args, args.alarm_topic_arn, child)

        self.primary_endpoint_address = group.primary_endpoint_address
        self.reader_endpoint_address = group.reader_endpoint_address
        self.port = group.port
        self.auth_token = pulumi.Output.secret(token.result)
        self.redis_url = pulumi.Output.secret(
            pulumi.Output.all(token.result, group.primary_endpoint_address, group.port).apply(_redis_url))
        self.security_group_id = security_group.id
        self.register_outputs({
            "primary_endpoint_address": self.primary_endpoint_address,
            "reader_endpoint_address": self.reader_endpoint_address,
            "port": self.port,
            "auth_token": self.auth_token,
            "redis_url": self.redis_url,
            "security_group_id": self.security_group_id,
        })


def _alarms(name: str, args: ElastiCacheRedisArgs, topic_arn: pulumi.Input[str],
            opts: pulumi.ResourceOptions) -> None:
    for index, member in enumerate(member_cluster_ids(args.replication_group_id, args.node_count), start=1):
        for suffix, metric, threshold, description in ALARMS:
            aws.cloudwatch.MetricAlarm(
                f"{name}-{index:03d}-{suffix}-alarm",
                name=f"{member}-{suffix}",
                alarm_description=f"phasekit: {member} {description}",
                namespace="AWS/ElastiCache",
                metric_name=metric,
                statistic="Average",
                comparison_operator="GreaterThanThreshold",
                threshold=threshold,
                period=ALARM_PERIOD_SECONDS,
                evaluation_periods=ALARM_EVALUATION_PERIODS,
                dimensions={"CacheClusterId": member},
                alarm_actions=[topic_arn],
                ok_actions=[topic_arn],
                tags=aws_tags(args.tags, Name=f"{member}-{suffix}"),
                opts=opts,
            )


ALARMS: list[tuple[str, str, float, str]] = [
    ("memory", "DatabaseMemoryUsagePercentage", float(MEMORY_ALARM_PERCENT),
     f"memory use above {MEMORY_ALARM_PERCENT}% of maxmemory for 5 minutes"),
    ("engine-cpu", "EngineCPUUtilization", float(ENGINE_CPU_ALARM_PERCENT),
     f"engine thread CPU above {ENGINE_CPU_ALARM_PERCENT}% for 5 minutes"),
]
"""(suffix, metric, threshold, description) of the alarms on every node."""


def member_cluster_ids(replication_group_id: str, node_count: int) -> list[str]:
    """The node (cache cluster) ids ElastiCache gives a cluster-mode-disabled group created with
    ``NumCacheClusters``: ``<id>-001``, ``<id>-002``, ... (what CloudWatch's ``CacheClusterId`` dimension
    holds). AWS' API reference lists them (``MemberClusters``) without stating the rule; the rule is what
    the AWS provider relies on (hashicorp/terraform-provider-aws,
    internal/service/elasticache/replication_group.go, e.g. "Cache cluster tf-acc-test-uqhe-003 is not in a
    valid state to be deleted") and what widdix/aws-cf-templates#571 documents for alarms. Ids follow the
    creation order, not the role: after a failover ``-002`` may be the primary; the alarms cover every node
    either way. After ``node_count`` is lowered and raised again AWS may not reuse the freed numbers: compare
    the alarms with the group's ``member_clusters`` then."""
    return [f"{replication_group_id}-{index:03d}" for index in range(1, node_count + 1)]


def final_snapshot_keepers(args: ElastiCacheRedisArgs, engine: CacheEngine) -> dict[str, pulumi.Input[str]]:
    """What renews the final snapshot's suffix: the group id and what replaces the group under that id."""
    return {"replicationGroupId": args.replication_group_id, "engine": CacheEngine(engine).value,
            "subnetGroupName": args.subnet_group_name}


def default_engine_version(engine: CacheEngine) -> str:
    return DEFAULT_ENGINE_VERSIONS[CacheEngine(engine)]


def parameter_group_family(engine: CacheEngine, engine_version: str) -> str:
    """``valkey`` 7.x/8.x -> ``valkey7``/``valkey8``; ``redis`` 7.x -> ``redis7``, 6.x -> ``redis6.x``."""
    match = _ENGINE_VERSION.match(engine_version)
    major = int(match["major"]) if match else None
    engine = CacheEngine(engine)
    if engine is CacheEngine.VALKEY and major is not None and major >= 7:
        return f"valkey{major}"
    if engine is CacheEngine.REDIS and major == 7:
        return "redis7"
    if engine is CacheEngine.REDIS and major == 6:
        return "redis6.x"
    raise ValueError(f"ElastiCacheRedisArgs.engine_version: {engine_version!r} is not a supported {engine.value} "
                     "version (valkey 7.x or later, redis 6.x or 7.x, written major.minor)")


def _redis_url(values: list) -> str:
    token, host, port = values
    return redis_url(password=token, host=host, port=port, tls=True)


def _check_args(args: ElastiCacheRedisArgs) -> None:
    group_id = args.replication_group_id
    if not _REPLICATION_GROUP_ID.match(group_id) or len(group_id) > MAX_REPLICATION_GROUP_ID_LENGTH:
        raise ValueError(
            f"ElastiCacheRedisArgs.replication_group_id: {group_id!r} must be 1-{MAX_REPLICATION_GROUP_ID_LENGTH} "
            "lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen")
    if args.engine not in set(CacheEngine):
        raise ValueError(f"ElastiCacheRedisArgs.engine: {args.engine!r} is not one of 'valkey', 'redis'")
    if args.engine_version is not None:
        parameter_group_family(CacheEngine(args.engine), args.engine_version)
    if not args.node_type.startswith("cache."):
        raise ValueError(f"ElastiCacheRedisArgs.node_type: {args.node_type!r} is not a node type "
                         "such as 'cache.t4g.small'")
    if args.node_count < MIN_NODES:
        raise ValueError(f"ElastiCacheRedisArgs.node_count: {args.node_count} is below {MIN_NODES}: automatic "
                         "failover needs at least one replica")
    if args.node_count > MAX_NODES:
        raise ValueError(f"ElastiCacheRedisArgs.node_count: {args.node_count} is above {MAX_NODES} "
                         "(one primary and at most five replicas)")
    if not 1 <= args.snapshot_retention_days <= MAX_SNAPSHOT_RETENTION_DAYS:
        raise ValueError(f"ElastiCacheRedisArgs.snapshot_retention_days: {args.snapshot_retention_days} is "
                         f"outside 1-{MAX_SNAPSHOT_RETENTION_DAYS}")
    if args.maxmemory_policy not in MAXMEMORY_POLICIES:
        raise ValueError(f"ElastiCacheRedisArgs.maxmemory_policy: {args.maxmemory_policy!r} is not one of "
                         f"{sorted(MAXMEMORY_POLICIES)}")
