"""ElastiCacheRedis under the recording mock monitor: exact children, encryption, failover, options, alarms.

Mocks cannot prove that AWS accepts these inputs (the engine version on the node type, the parameter
group family), that the member nodes really are named ``<id>-001``... (the alarms' dimensions rely on
it), or how a change diffs against a live group; a real ``pulumi preview`` and ``describe-replication-
groups`` after the first ``pulumi up`` do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from components.elasticache_redis import (
    MAINTENANCE_WINDOW,
    SNAPSHOT_WINDOW,
    CacheEngine,
    ElastiCacheRedis,
    ElastiCacheRedisArgs,
    default_engine_version,
    member_cluster_ids,
    parameter_group_family,
)
from components.testing import UNKNOWN_MASK, run_recorded

TAGS = {"project": "phasekit", "stack": "test", "phase": "3", "managed-by": "phasekit"}
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
COMPONENT = "phasekit:index:ElastiCacheRedis"
GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
PARAMETER_GROUP = "aws:elasticache/parameterGroup:ParameterGroup"
TOKEN = "random:index/randomPassword:RandomPassword"
RANDOM_ID = "random:index/randomId:RandomId"
FINAL_SUFFIX = hashlib.sha256(b"cache-final-snapshot").hexdigest()[:8]
"""The harness's fake RandomId hex for "cache-final-snapshot"."""
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
OUTPUTS = ("primary_endpoint_address", "reader_endpoint_address", "port", "auth_token", "redis_url",
           "security_group_id")


def cache_args(**overrides: Any) -> ElastiCacheRedisArgs:
    args = ElastiCacheRedisArgs(
        replication_group_id="phasekit-test",
        vpc_id="vpc-0abc",
        subnet_group_name="phasekit-test-cache",
        client_security_group_id="sg-0nodes",
        node_type="cache.t4g.small",
        alarm_topic_arn=TOPIC,
        tags=TAGS,
    )
    return replace(args, **overrides)


def record(preview: bool = False, **overrides: Any):
    def program() -> None:
        cache = ElastiCacheRedis("cache", cache_args(**overrides))
        for output in OUTPUTS:
            pulumi.export(output, getattr(cache, output))
    return run_recorded(program, preview=preview)


def tagged(name: str) -> dict[str, str]:
    return {**TAGS, "Name": name}


def test_children_are_exactly_the_cache_topology():
    recording = record(node_count=3)
    assert recording.type_counts() == {
        COMPONENT: 1, SECURITY_GROUP: 1, TOKEN: 1, RANDOM_ID: 1, PARAMETER_GROUP: 1, GROUP: 1, ALARM: 6,
    }
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert sorted(child.name for child in children) == [
        "cache-001-engine-cpu-alarm", "cache-001-memory-alarm", "cache-002-engine-cpu-alarm",
        "cache-002-memory-alarm", "cache-003-engine-cpu-alarm", "cache-003-memory-alarm",
        "cache-auth-token", "cache-cache", "cache-final-snapshot", "cache-params", "cache-sg",
    ]


def test_without_a_topic_there_are_no_alarms():
    recording = record(alarm_topic_arn=None)
    assert recording.of_type(ALARM) == []
    assert recording.type_counts()[GROUP] == 1


def test_security_group_admits_only_redis_from_the_nodes_and_has_no_egress():
    group = record().one(SECURITY_GROUP)
    assert group.inputs == {
        "vpcId": "vpc-0abc",
        "description": "phasekit: Redis from the app nodes only",
        "ingress": [{"protocol": "tcp", "fromPort": 6379, "toPort": 6379, "securityGroups": ["sg-0nodes"],
                     "description": "Redis from the app nodes"}],
        "egress": [],
        "tags": tagged("phasekit-test-redis"),
    }
    assert "0.0.0.0/0" not in json.dumps(group.inputs) and "::/0" not in json.dumps(group.inputs)


def test_replication_group_is_encrypted_authenticated_and_fails_over_across_zones():
    recording = record()
    group = recording.one(GROUP)
    inputs = dict(group.inputs)
    token = inputs.pop("authToken")
    assert inputs == {
        "replicationGroupId": "phasekit-test",
        "description": "phasekit: phasekit-test",
        "engine": "valkey",
        "engineVersion": "8.0",
        "nodeType": "cache.t4g.small",
        "numCacheClusters": 2,
        "automaticFailoverEnabled": True,
        "multiAzEnabled": True,
        "parameterGroupName": f"cache-params-{_fake_suffix('cache-params')}",
        "subnetGroupName": "phasekit-test-cache",
        "securityGroupIds": [recording.one(SECURITY_GROUP).id],
        "port": 6379,
        "transitEncryptionEnabled": True,
        "atRestEncryptionEnabled": True,
        "snapshotRetentionLimit": 1,
        "snapshotWindow": "03:00-04:00",
        # Unique per group: DeleteReplicationGroup fails with SnapshotAlreadyExistsFault on an existing name.
        "finalSnapshotIdentifier": f"phasekit-test-final-{FINAL_SUFFIX}",
        "maintenanceWindow": "sun:05:00-sun:06:00",
        "autoMinorVersionUpgrade": True,
        "applyImmediately": False,
        "tags": tagged("phasekit-test"),
    }
    assert group.secret_inputs == frozenset({"authToken"})
    assert token == recording.outputs["auth_token"]


def test_auth_token_is_generated_within_elasticache_rules():
    recording = record()
    assert recording.one(TOKEN).inputs == {"length": 64, "special": False}
    assert recording.outputs["auth_token"].isalnum()


def test_parameter_group_sets_the_eviction_policy_for_the_engine_family():
    group = record(maxmemory_policy="allkeys-lru").one(PARAMETER_GROUP)
    assert group.inputs == {
        "family": "valkey8",
        "description": "phasekit: cache settings",
        "parameters": [{"name": "maxmemory-policy", "value": "allkeys-lru"}],
        "tags": tagged("phasekit-test"),
    }


def test_redis_engine_defaults_to_7_1():
    recording = record(engine=CacheEngine.REDIS)
    assert (recording.one(GROUP).inputs["engine"], recording.one(GROUP).inputs["engineVersion"]) == ("redis", "7.1")
    assert recording.one(PARAMETER_GROUP).inputs["family"] == "redis7"


def test_node_count_and_snapshot_retention_pass_through():
    inputs = record(node_count=4, snapshot_retention_days=7).one(GROUP).inputs
    assert (inputs["numCacheClusters"], inputs["snapshotRetentionLimit"]) == (4, 7)


def test_only_the_replication_group_is_protected_and_it_and_the_parameter_group_are_retained():
    recording = record()
    options = {resource.name: (resource.protect, resource.retain_on_delete) for resource in recording.resources}
    assert options == {
        "cache": (False, False),
        "cache-sg": (False, False),
        "cache-auth-token": (False, False),
        "cache-final-snapshot": (False, False),
        # Retained so a family change completes: AWS keeps the old group attached until the maintenance window.
        "cache-params": (False, True),
        "cache-cache": (True, True),
        "cache-001-memory-alarm": (False, False),
        "cache-001-engine-cpu-alarm": (False, False),
        "cache-002-memory-alarm": (False, False),
        "cache-002-engine-cpu-alarm": (False, False),
    }


def test_the_final_snapshot_suffix_is_renewed_with_what_replaces_the_group_under_its_id():
    recording = record()
    suffix = recording.one(RANDOM_ID)
    assert suffix.name == "cache-final-snapshot"
    assert suffix.parent == recording.one(COMPONENT).urn
    assert suffix.inputs == {"byteLength": 4, "keepers": {
        "replicationGroupId": "phasekit-test", "engine": "valkey", "subnetGroupName": "phasekit-test-cache"}}
    redis = record(engine=CacheEngine.REDIS, replication_group_id="phasekit-other").one(RANDOM_ID)
    assert redis.inputs["keepers"] == {
        "replicationGroupId": "phasekit-other", "engine": "redis", "subnetGroupName": "phasekit-test-cache"}


def test_unprotected_when_asked():
    group = record(protect=False).one(GROUP)
    assert (group.protect, group.retain_on_delete) == (False, False)


def test_a_family_change_replaces_the_parameter_group_but_never_deletes_the_attached_one():
    valkey7 = record(engine="valkey", engine_version="7.2").one(PARAMETER_GROUP)
    valkey8 = record(engine="valkey", engine_version="8.0").one(PARAMETER_GROUP)
    assert (valkey7.inputs["family"], valkey8.inputs["family"]) == ("valkey7", "valkey8")
    assert valkey7.urn == valkey8.urn  # same logical resource: the family change is a replace, not a rename
    assert (valkey8.retain_on_delete, valkey8.protect) == (True, False)


def test_replication_group_urn_is_pinned():
    assert record().one(GROUP).urn == (
        "urn:pulumi:test::phasekit::phasekit:index:ElastiCacheRedis$"
        "aws:elasticache/replicationGroup:ReplicationGroup::cache-cache")


def test_redis_url_is_exact_tls_and_secret():
    recording = record()
    token = recording.outputs["auth_token"]
    primary = f"master.cache-cache.{_fake_digest('cache-cache')[:6]}.use1.cache.amazonaws.com"
    assert recording.outputs["primary_endpoint_address"] == primary
    assert recording.outputs["reader_endpoint_address"] == primary.replace("master.", "replica.", 1)
    assert recording.outputs["redis_url"] == f"rediss://:{token}@{primary}:6379/0"
    assert recording.outputs["port"] == 6379
    assert recording.outputs["security_group_id"] == recording.one(SECURITY_GROUP).id
    assert recording.secret_outputs == {"auth_token", "redis_url"}


def test_alarms_watch_memory_and_engine_cpu_on_every_node():
    recording = record(node_count=3)
    alarms = {alarm.name: alarm.inputs for alarm in recording.of_type(ALARM)}
    expected = {}
    for index in (1, 2, 3):
        member = f"phasekit-test-{index:03d}"
        common = {
            "namespace": "AWS/ElastiCache", "statistic": "Average", "comparisonOperator": "GreaterThanThreshold",
            "period": 60, "evaluationPeriods": 5, "dimensions": {"CacheClusterId": member},
            "alarmActions": [TOPIC], "okActions": [TOPIC],
        }
        expected[f"cache-{index:03d}-memory-alarm"] = {
            **common, "name": f"{member}-memory", "metricName": "DatabaseMemoryUsagePercentage", "threshold": 80,
            "alarmDescription": f"phasekit: {member} memory use above 80% of maxmemory for 5 minutes",
            "tags": tagged(f"{member}-memory")}
        expected[f"cache-{index:03d}-engine-cpu-alarm"] = {
            **common, "name": f"{member}-engine-cpu", "metricName": "EngineCPUUtilization", "threshold": 70,
            "alarmDescription": f"phasekit: {member} engine thread CPU above 70% for 5 minutes",
            "tags": tagged(f"{member}-engine-cpu")}
    assert alarms == expected
    for inputs in alarms.values():
        assert inputs["period"] * inputs["evaluationPeriods"] == 300


def test_preview_of_a_fresh_stack_leaves_computed_values_unknown():
    recording = record(preview=True)
    for output in ("primary_endpoint_address", "reader_endpoint_address", "auth_token", "redis_url",
                   "security_group_id"):
        assert recording.outputs[output] == UNKNOWN_MASK
    assert {"auth_token", "redis_url"} <= recording.secret_outputs
    group = recording.one(GROUP)
    assert type(group.inputs["authToken"]).__name__ == "Unknown"
    assert group.inputs["transitEncryptionEnabled"] is True and group.inputs["atRestEncryptionEnabled"] is True


def test_member_cluster_ids_are_numbered_from_001():
    assert member_cluster_ids("phasekit-test", 3) == ["phasekit-test-001", "phasekit-test-002", "phasekit-test-003"]


@pytest.mark.parametrize(("engine", "version", "family"), [
    (CacheEngine.VALKEY, "8.0", "valkey8"),
    (CacheEngine.VALKEY, "8.1", "valkey8"),
    (CacheEngine.VALKEY, "7.2", "valkey7"),
    (CacheEngine.REDIS, "7.1", "redis7"),
    (CacheEngine.REDIS, "7.0", "redis7"),
    (CacheEngine.REDIS, "6.2", "redis6.x"),
    (CacheEngine.REDIS, "6.x", "redis6.x"),
    ("valkey", "8.0", "valkey8"),
])
def test_parameter_group_family(engine, version, family):
    assert parameter_group_family(engine, version) == family


def test_default_engine_versions():
    assert (default_engine_version(CacheEngine.VALKEY), default_engine_version(CacheEngine.REDIS)) == ("8.0", "7.1")


def test_snapshot_and_maintenance_windows_never_overlap():
    snapshot = [_minutes(part) for part in SNAPSHOT_WINDOW.split("-")]
    start, end = (_weekly_minutes(part) for part in MAINTENANCE_WINDOW.split("-"))
    for day in range(7):
        daily_start, daily_end = day * 1440 + snapshot[0], day * 1440 + snapshot[1]
        assert daily_end <= start or end <= daily_start


ID_RULE = "lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"replication_group_id": "a" * 41},
     f"ElastiCacheRedisArgs.replication_group_id: '{'a' * 41}' must be 1-40 {ID_RULE}"),
    ({"replication_group_id": "Cache"}, f"ElastiCacheRedisArgs.replication_group_id: 'Cache' must be 1-40 {ID_RULE}"),
    ({"replication_group_id": "c--1"}, f"ElastiCacheRedisArgs.replication_group_id: 'c--1' must be 1-40 {ID_RULE}"),
    ({"replication_group_id": "1cache"},
     f"ElastiCacheRedisArgs.replication_group_id: '1cache' must be 1-40 {ID_RULE}"),
    ({"engine": "memcached"}, "ElastiCacheRedisArgs.engine: 'memcached' is not one of 'valkey', 'redis'"),
    ({"engine": CacheEngine.REDIS, "engine_version": "5.0"},
     "ElastiCacheRedisArgs.engine_version: '5.0' is not a supported redis version (valkey 7.x or later, "
     "redis 6.x or 7.x, written major.minor)"),
    ({"engine_version": "6.2"},
     "ElastiCacheRedisArgs.engine_version: '6.2' is not a supported valkey version (valkey 7.x or later, "
     "redis 6.x or 7.x, written major.minor)"),
    ({"engine_version": "8"},
     "ElastiCacheRedisArgs.engine_version: '8' is not a supported valkey version (valkey 7.x or later, "
     "redis 6.x or 7.x, written major.minor)"),
    ({"node_type": "t4g.small"},
     "ElastiCacheRedisArgs.node_type: 't4g.small' is not a node type such as 'cache.t4g.small'"),
    ({"node_count": 1},
     "ElastiCacheRedisArgs.node_count: 1 is below 2: automatic failover needs at least one replica"),
    ({"node_count": 7}, "ElastiCacheRedisArgs.node_count: 7 is above 6 (one primary and at most five replicas)"),
    ({"snapshot_retention_days": 0}, "ElastiCacheRedisArgs.snapshot_retention_days: 0 is outside 1-35"),
    ({"snapshot_retention_days": 36}, "ElastiCacheRedisArgs.snapshot_retention_days: 36 is outside 1-35"),
    ({"maxmemory_policy": "lru"},
     "ElastiCacheRedisArgs.maxmemory_policy: 'lru' is not one of ['allkeys-lfu', 'allkeys-lru', "
     "'allkeys-random', 'noeviction', 'volatile-lfu', 'volatile-lru', 'volatile-random', 'volatile-ttl']"),
])
def test_invalid_args_are_refused_with_exact_messages(overrides, message):
    with pytest.raises(ValueError) as raised:
        record(**overrides)
    assert str(raised.value) == message


def _fake_digest(name: str) -> str:
    """What the mock derives computed values from (see components.testing._fake_outputs)."""
    return hashlib.sha256(name.encode()).hexdigest()


def _fake_suffix(name: str) -> str:
    return _fake_digest(name)[:7]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _weekly_minutes(moment: str) -> int:
    day, clock = moment.split(":", 1)
    return ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].index(day) * 1440 + _minutes(clock)
