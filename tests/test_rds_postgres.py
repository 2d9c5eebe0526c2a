"""RdsPostgres under the recording mock monitor: exact children, security inputs, options, alarms, URLs.

Mocks cannot prove that AWS accepts these inputs (a parameter's apply method, the class supporting
Performance Insights, the replica settings), what RDS computes, or how a change diffs against a live
instance (which changes replace it, which wait for the maintenance window); a real ``pulumi preview``
against an AWS account does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pytest

from components.rds_postgres import (
    BACKUP_WINDOW,
    MAINTENANCE_WINDOW,
    MasterSecretReader,
    RdsPostgres,
    RdsPostgresArgs,
    app_connection_limit,
    connections_alarm_threshold,
    db_parameters,
    final_snapshot_name,
    free_storage_threshold_bytes,
    master_secret_arn,
    monitoring_trust_policy,
    parameter_group_family,
)
from components.testing import INVOKE_RESULTS, UNKNOWN_MASK, run_recorded

TAGS = {"project": "phasekit", "stack": "test", "phase": "3", "managed-by": "phasekit"}
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
COMPONENT = "phasekit:index:RdsPostgres"
INSTANCE = "aws:rds/instance:Instance"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_ID = "random:index/randomId:RandomId"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
MONITORING_ROLE_ARN = ("arn:aws:iam::123456789012:role/db-monitoring-role-"
                       + hashlib.sha256(b"db-monitoring-role").hexdigest()[:7])
FINAL_SUFFIX = hashlib.sha256(b"db-final-snapshot").hexdigest()[:8]
"""The harness's fake RandomId hex for "db-final-snapshot"."""
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
OUTPUTS = ("address", "port", "database_name", "username", "password", "database_url", "replica_addresses",
           "security_group_id", "instance_arn", "master_secret_arn", "master_secret_reader_role_arn", "app_role_name",
           "app_role_password", "app_connection_limit")


def rds_args(**overrides: Any) -> RdsPostgresArgs:
    args = RdsPostgresArgs(
        identifier="phasekit-test",
        vpc_id="vpc-0abc",
        subnet_group_name="phasekit-test-db",
        client_security_group_id="sg-0nodes",
        instance_class="db.t4g.medium",
        max_connections=200,
        alarm_topic_arn=TOPIC,
        tags=TAGS,
    )
    return replace(args, **overrides)


def record(preview: bool = False, **overrides: Any):
    def program() -> None:
        db = RdsPostgres("db", rds_args(**overrides))
        for output in OUTPUTS:
            pulumi.export(output, getattr(db, output))
    return run_recorded(program, preview=preview)


def tagged(name: str) -> dict[str, str]:
    return {**TAGS, "Name": name}


def test_children_are_exactly_the_database_topology():
    recording = record(manage_master_password=False, read_replica_count=2)
    assert recording.type_counts() == {
        COMPONENT: 1, SECURITY_GROUP: 1, PASSWORD: 2, RANDOM_ID: 1, ROLE: 1, ATTACHMENT: 1, PARAMETER_GROUP: 1,
        INSTANCE: 3, ALARM: 3,
    }
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert sorted(child.name for child in children) == [
        "db-app-password", "db-connections-alarm", "db-cpu-alarm", "db-db", "db-final-snapshot",
        "db-free-storage-alarm", "db-monitoring-policy", "db-monitoring-role", "db-params", "db-password", "db-replica-1", "db-replica-2",
        "db-sg",
    ]


def test_without_a_topic_there_are_no_alarms_and_without_replicas_no_replicas():
    recording = record(alarm_topic_arn=None)
    assert recording.of_type(ALARM) == []
    assert [instance.name for instance in recording.of_type(INSTANCE)] == ["db-db"]
    assert recording.outputs["replica_addresses"] == []


def test_security_group_admits_only_postgres_from_the_nodes_and_has_no_egress():
    group = record().one(SECURITY_GROUP)
    assert group.inputs == {
        "vpcId": "vpc-0abc",
        "description": "phasekit: PostgreSQL from the app nodes only",
        "ingress": [{"protocol": "tcp", "fromPort": 5432, "toPort": 5432, "securityGroups": ["sg-0nodes"],
                     "description": "PostgreSQL from the app nodes"}],
        "egress": [],
        "tags": tagged("phasekit-test-postgres"),
    }
    for rule in group.inputs["ingress"]:
        assert "cidrBlocks" not in rule and "ipv6CidrBlocks" not in rule
    assert "0.0.0.0/0" not in json.dumps(group.inputs) and "::/0" not in json.dumps(group.inputs)


def test_primary_is_private_encrypted_protected_by_aws_and_snapshotted_on_delete():
    recording = record()
    primary = recording.named("db-db")
    assert primary.inputs == {
        "identifier": "phasekit-test",
        "engine": "postgres",
        "engineVersion": "16",
        "instanceClass": "db.t4g.medium",
        "allocatedStorage": 20,
        "maxAllocatedStorage": 100,
        "storageType": "gp3",
        "storageEncrypted": True,
        "publiclyAccessible": False,
        "multiAz": True,
        "dbSubnetGroupName": "phasekit-test-db",
        "vpcSecurityGroupIds": [recording.one(SECURITY_GROUP).id],
        "parameterGroupName": f"db-params-{_fake_suffix('db-params')}",
        "port": 5432,
        "dbName": "app",
        "username": "app",
        # RDS generates the master password and keeps it in Secrets Manager: no password input, nothing in state.
        "manageMasterUserPassword": True,
        "backupRetentionPeriod": 7,
        "backupWindow": "03:00-04:00",
        "maintenanceWindow": "sun:04:30-sun:05:30",
        "deleteAutomatedBackups": False,
        "deletionProtection": True,
        "skipFinalSnapshot": False,
        # Unique per instance: a re-created stack's deletion never meets the snapshot an earlier one left.
        "finalSnapshotIdentifier": f"phasekit-test-final-{FINAL_SUFFIX}",
        "monitoringInterval": 60,
        "monitoringRoleArn": MONITORING_ROLE_ARN,
        # Explicit: the provider's default enrols the instance in paid RDS Extended Support.
        "engineLifecycleSupport": "open-source-rds-extended-support-disabled",
        "copyTagsToSnapshot": True,
        "caCertIdentifier": "rds-ca-rsa2048-g1",
        "iamDatabaseAuthenticationEnabled": True,
        "performanceInsightsEnabled": True,
        "performanceInsightsRetentionPeriod": 7,
        "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
        "autoMinorVersionUpgrade": True,
        # Only a change of engine_version's major asks for one, which RDS refuses without the flag.
        "allowMajorVersionUpgrade": True,
        "applyImmediately": False,
        "tags": tagged("phasekit-test"),
    }
    assert primary.secret_inputs == frozenset()
    assert recording.outputs["password"] is None


def test_the_final_snapshot_suffix_is_renewed_with_what_replaces_the_instance():
    recording = record()
    suffix = recording.one(RANDOM_ID)
    assert suffix.name == "db-final-snapshot"
    assert suffix.parent == recording.one(COMPONENT).urn
    # identifier, db_name and username are ForceNew in terraform-provider-aws: each replaces the instance.
    assert suffix.inputs == {"byteLength": 4, "keepers": {
        "identifier": "phasekit-test", "dbName": "app", "username": "app"}}
    renamed = record(database_name="shop", username="owner").one(RANDOM_ID)
    assert renamed.inputs["keepers"] == {"identifier": "phasekit-test", "dbName": "shop", "username": "owner"}
    assert final_snapshot_name("phasekit-test", "0a1b2c3d") == "phasekit-test-final-0a1b2c3d"


def test_enhanced_monitoring_role_is_assumed_by_rds_monitoring_only_and_instances_wait_for_its_policy():
    recording = record(manage_master_password=False, read_replica_count=1)
    role, attachment = recording.one(ROLE), recording.one(ATTACHMENT)
    assert role.inputs == {
        "description": "RDS Enhanced Monitoring of phasekit-test (phasekit)",
        "assumeRolePolicy": monitoring_trust_policy(),
        "tags": tagged("phasekit-test-monitoring"),
    }
    assert json.loads(monitoring_trust_policy()) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    assert attachment.inputs == {"role": "db-monitoring-role-" + hashlib.sha256(b"db-monitoring-role").hexdigest()[:7],
                                 "policyArn": "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"}
    for instance in recording.of_type(INSTANCE):
        assert attachment.urn in instance.dependencies


def test_enhanced_monitoring_off_creates_no_role():
    recording = record(monitoring_interval_seconds=0)
    assert recording.of_type(ROLE) == [] and recording.of_type(ATTACHMENT) == []
    assert recording.one(INSTANCE).inputs["monitoringInterval"] == 0
    assert "monitoringRoleArn" not in recording.one(INSTANCE).inputs


def test_app_role_password_is_generated_long_and_free_of_characters_urls_escape():
    recording = record()
    assert recording.one(PASSWORD).name == "db-app-password"
    assert recording.one(PASSWORD).inputs == {"length": 32, "special": False}
    assert recording.outputs["app_role_password"].isalnum()


def test_unmanaged_master_password_is_generated_as_before_and_the_app_still_has_its_own_role():
    recording = record(manage_master_password=False, read_replica_count=1, master_secret_reader=READER)
    passwords = {password.name: password.inputs for password in recording.of_type(PASSWORD)}
    assert passwords == {"db-password": {"length": 32, "special": False},
                         "db-app-password": {"length": 32, "special": False}}
    primary = recording.named("db-db")
    assert primary.inputs["password"] == recording.outputs["password"]
    assert "manageMasterUserPassword" not in primary.inputs
    assert primary.secret_inputs == frozenset({"password"})
    app_password, address = recording.outputs["app_role_password"], recording_address(recording, "db-db")
    assert app_password != recording.outputs["password"]
    # Least privilege with replicas too: the app never connects as the master user.
    assert recording.outputs["database_url"] == (
        f"postgresql://app_user:{app_password}@{address}:5432/app?sslmode=require")
    assert urlsplit(recording.outputs["database_url"]).username == "app_user"
    assert [recording.outputs[key] for key in ("app_role_name", "app_connection_limit", "username")] == [
        "app_user", 190, "app"]
    # No secret to read, so no IRSA role, even with a reader: the Job gets the master password from Kubernetes.
    assert (recording.outputs["master_secret_arn"], recording.outputs["master_secret_reader_role_arn"]) == (None, None)
    assert [role.name for role in recording.of_type(ROLE)] == ["db-monitoring-role"]
    assert recording.secret_outputs == {"password", "app_role_password", "database_url"}


def test_parameter_group_forces_tls_and_sets_max_connections_exactly():
    group = record(max_connections=350).one(PARAMETER_GROUP)
    assert group.inputs == {
        "family": "postgres16",
        "description": "phasekit: PostgreSQL, TLS only",
        "parameters": [
            {"name": "rds.force_ssl", "value": "1", "applyMethod": "immediate"},
            {"name": "max_connections", "value": "350", "applyMethod": "pending-reboot"},
            {"name": "log_min_duration_statement", "value": "1000", "applyMethod": "immediate"},
        ],
        "tags": tagged("phasekit-test"),
    }


def test_full_engine_version_keeps_the_major_family():
    recording = record(engine_version="15.7")
    assert recording.named("db-db").inputs["engineVersion"] == "15.7"
    assert recording.one(PARAMETER_GROUP).inputs["family"] == "postgres15"


def test_a_major_upgrade_replaces_the_parameter_group_in_the_same_modify_and_never_deletes_the_attached_one():
    before, after = record(engine_version="16"), record(engine_version="17")
    old_group, new_group = before.one(PARAMETER_GROUP), after.one(PARAMETER_GROUP)
    assert (old_group.inputs["family"], new_group.inputs["family"]) == ("postgres16", "postgres17")
    # Same logical resource with a ForceNew family: Pulumi creates the postgres17 group, then drops the postgres16
    # one from its state only (retained: it stays attached until the window; delete it by hand afterwards).
    assert old_group.urn == new_group.urn
    assert (old_group.retain_on_delete, new_group.retain_on_delete) == (True, True)
    assert (new_group.protect, "name" in new_group.inputs) == (False, False)
    primary = after.named("db-db").inputs
    # One ModifyDBInstance: the new major, the new-family group and the permission together.
    assert (primary["engineVersion"], primary["parameterGroupName"], primary["allowMajorVersionUpgrade"],
            primary["applyImmediately"]) == ("17", f"db-params-{_fake_suffix('db-params')}", True, False)
    assert old_group.inputs["parameters"] == new_group.inputs["parameters"]


LIST_INSTANCES = "aws:rds/getInstances:getInstances"
GET_INSTANCE = "aws:rds/getInstance:getInstance"


def running_instance(running: str | None) -> dict[str, dict]:
    """Invoke results where the account runs ``phasekit-test`` on engine version ``running`` (None: not listed, and
    the per-instance lookup is left out, so the harness fails the test if it is made)."""
    if running is None:
        return {**INVOKE_RESULTS, LIST_INSTANCES: {"instanceIdentifiers": [], "instanceArns": [], "id": "us-east-1"}}
    return {**INVOKE_RESULTS,
            LIST_INSTANCES: {"instanceIdentifiers": ["phasekit-test"], "id": "us-east-1",
                             "instanceArns": ["arn:aws:rds:us-east-1:123456789012:db:phasekit-test"]},
            GET_INSTANCE: {"dbInstanceIdentifier": "phasekit-test", "engineVersion": running,
                           "id": "phasekit-test"}}


def record_against(running: str | None, **overrides: Any):
    return run_recorded(lambda: RdsPostgres("db", rds_args(**overrides)), preview=True,
                        invoke_results=running_instance(running))


ONLY_THIS_INSTANCE = [{"filters": [{"name": "db-instance-id", "values": ["phasekit-test"]}]}]


def test_a_first_deploy_lists_no_instance_and_reads_none():
    recording = record_against(None, engine_version="17")
    assert recording.invoked(LIST_INSTANCES) == ONLY_THIS_INSTANCE
    assert recording.invoked(GET_INSTANCE) == []
    assert recording.named("db-db").inputs["engineVersion"] == "17"


def test_the_harness_default_is_a_first_deploy():
    assert record(manage_master_password=False, read_replica_count=2).invoked(GET_INSTANCE) == []


@pytest.mark.parametrize(("running", "configured", "replicas"), [
    ("16.4", "16", 0), ("16.4", "16", 2), ("16.8", "16.4", 2), ("16.4", "17", 0), ("15.7", "16", 0)])
def test_the_same_major_or_an_upgrade_without_replicas_is_a_plain_update(running, configured, replicas):
    recording = record_against(running, engine_version=configured, read_replica_count=replicas,
                               manage_master_password=replicas == 0)
    assert recording.invoked(LIST_INSTANCES) == ONLY_THIS_INSTANCE
    assert recording.invoked(GET_INSTANCE) == [{"dbInstanceIdentifier": "phasekit-test"}]
    assert recording.named("db-db").inputs["engineVersion"] == configured


def test_a_major_downgrade_is_refused_before_any_child():
    with pytest.raises(ValueError) as raised:
        record_against("17.2", engine_version="16")
    assert str(raised.value) == (
        "database.engineVersion '16' is below the running PostgreSQL 17.2 of 'phasekit-test'; allowed: 17 or later "
        "(RDS cannot downgrade a major version: to go back, restore a snapshot taken before the upgrade into a new "
        "instance)")
    assert [resource.type for resource in pulumi.runtime.settings.SETTINGS.monitor.recorded] == [COMPONENT]


def test_a_major_upgrade_with_read_replicas_is_refused_with_the_procedure():
    with pytest.raises(ValueError) as raised:
        record_against("16.4", engine_version="17", read_replica_count=2, manage_master_password=False)
    assert str(raised.value) == (
        "database.engineVersion '17' is a major upgrade of the running PostgreSQL 16.4 of 'phasekit-test' with 2 "
        "read replicas configured: they share its parameter group, and RDS refuses the postgres17 group on them while "
        "they still run 16, leaving pulumi up half-applied; instead set database.readReplicas to 0 (unprotect the "
        "replicas first; docs/phase3-operations.md, data tier) and pulumi up, then raise database.engineVersion and pulumi up (the upgrade happens in the maintenance window), then raise "
        "database.readReplicas again, once the maintenance window has applied the upgrade (until then the instance "
        "still runs the old major, and this check refuses the replicas)")
    assert [resource.type for resource in pulumi.runtime.settings.SETTINGS.monitor.recorded] == [COMPONENT]


def test_storage_autoscaling_can_be_turned_off():
    inputs = record(max_allocated_storage_gib=None, allocated_storage_gib=50).named("db-db").inputs
    assert inputs["allocatedStorage"] == 50
    assert "maxAllocatedStorage" not in inputs


def test_single_az_when_asked():
    assert record(multi_az=False).named("db-db").inputs["multiAz"] is False


def test_replicas_follow_the_primary_privately_and_skip_only_the_final_snapshot():
    recording = record(manage_master_password=False, read_replica_count=2)
    primary_security_group = recording.one(SECURITY_GROUP).id
    for index in (1, 2):
        replica = recording.named(f"db-replica-{index}")
        assert replica.inputs == {
            "identifier": f"phasekit-test-replica-{index}",
            "replicateSourceDb": "phasekit-test",
            "instanceClass": "db.t4g.medium",
            "maxAllocatedStorage": 100,
            "storageType": "gp3",
            "storageEncrypted": True,
            "publiclyAccessible": False,
            "multiAz": False,
            "vpcSecurityGroupIds": [primary_security_group],
            "parameterGroupName": f"db-params-{_fake_suffix('db-params')}",
            "port": 5432,
            "caCertIdentifier": "rds-ca-rsa2048-g1",
            "iamDatabaseAuthenticationEnabled": True,
            "performanceInsightsEnabled": True,
            "performanceInsightsRetentionPeriod": 7,
            "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
            "autoMinorVersionUpgrade": True,
            "allowMajorVersionUpgrade": True,
            "applyImmediately": False,
            "maintenanceWindow": "sun:04:30-sun:05:30",
            "deletionProtection": True,
            "copyTagsToSnapshot": True,
            "skipFinalSnapshot": True,
            "monitoringInterval": 60,
            "monitoringRoleArn": MONITORING_ROLE_ARN,
            "tags": tagged(f"phasekit-test-replica-{index}"),
        }
        assert replica.secret_inputs == frozenset()
    assert recording.outputs["replica_addresses"] == [
        recording_address(recording, "db-replica-1"), recording_address(recording, "db-replica-2")]


def test_instance_and_replicas_are_protected_and_retained_and_nothing_else_is():
    recording = record(manage_master_password=False, read_replica_count=1)
    options = {resource.name: (resource.protect, resource.retain_on_delete) for resource in recording.resources}
    assert options == {
        "db": (False, False),
        "db-sg": (False, False),
        "db-password": (False, False),
        "db-app-password": (False, False),
        "db-final-snapshot": (False, False),
        "db-monitoring-role": (False, False),
        "db-monitoring-policy": (False, False),
        # Retained so a major upgrade completes: RDS keeps the old group attached until the maintenance window.
        "db-params": (False, True),
        "db-db": (True, True),
        "db-replica-1": (True, True),
        "db-cpu-alarm": (False, False),
        "db-free-storage-alarm": (False, False),
        "db-connections-alarm": (False, False),
    }


def test_unprotected_when_asked():
    recording = record(protect=False, manage_master_password=False, read_replica_count=1)
    assert {(instance.protect, instance.retain_on_delete) for instance in recording.of_type(INSTANCE)} == {
        (False, False)}


def test_stateful_urns_are_pinned():
    recording = record(manage_master_password=False, read_replica_count=2)
    prefix = "urn:pulumi:test::phasekit::phasekit:index:RdsPostgres$aws:rds/instance:Instance::"
    assert recording.named("db-db").urn == prefix + "db-db"
    assert recording.named("db-replica-1").urn == prefix + "db-replica-1"
    assert recording.named("db-replica-2").urn == prefix + "db-replica-2"


def test_database_url_is_exact_tls_and_secret():
    recording = record()
    password = recording.outputs["app_role_password"]
    address = recording_address(recording, "db-db")
    assert recording.outputs["database_url"] == (
        f"postgresql://app_user:{password}@{address}:5432/app?sslmode=require")
    assert recording.secret_outputs == {"app_role_password", "database_url"}
    assert recording.outputs["address"] == address
    assert (recording.outputs["port"], recording.outputs["database_name"], recording.outputs["username"]) == (
        5432, "app", "app")
    assert recording.outputs["security_group_id"] == recording.one(SECURITY_GROUP).id
    assert recording.outputs["instance_arn"] == "arn:aws:rds:us-east-1:123456789012:db:db-db"


def test_database_url_carries_custom_names():
    recording = record(database_name="shop_prod", username="shop", app_role_name="shop_web")
    url = urlsplit(recording.outputs["database_url"])
    assert (url.username, url.path, url.query) == ("shop_web", "/shop_prod", "sslmode=require")
    assert recording.outputs["username"] == "shop"


def test_alarms_watch_cpu_storage_and_connections_and_notify_both_ways():
    recording = record(max_connections=203, allocated_storage_gib=50)
    alarms = {alarm.name: alarm.inputs for alarm in recording.of_type(ALARM)}
    common = {
        "namespace": "AWS/RDS",
        "period": 60,
        "evaluationPeriods": 5,
        "dimensions": {"DBInstanceIdentifier": "phasekit-test"},
        "alarmActions": [TOPIC],
        "okActions": [TOPIC],
    }
    assert alarms == {
        "db-cpu-alarm": {
            **common, "name": "phasekit-test-cpu", "metricName": "CPUUtilization", "statistic": "Average",
            "comparisonOperator": "GreaterThanThreshold", "threshold": 70,
            "alarmDescription": "phasekit: phasekit-test CPU above 70% for 5 minutes",
            "tags": tagged("phasekit-test-cpu")},
        "db-free-storage-alarm": {
            **common, "name": "phasekit-test-free-storage", "metricName": "FreeStorageSpace",
            "statistic": "Minimum", "comparisonOperator": "LessThanThreshold", "threshold": 5368709120,
            "alarmDescription": "phasekit: phasekit-test free storage below 10% of 50 GiB for 5 minutes",
            "tags": tagged("phasekit-test-free-storage")},
        "db-connections-alarm": {
            **common, "name": "phasekit-test-connections", "metricName": "DatabaseConnections",
            "statistic": "Maximum", "comparisonOperator": "GreaterThanThreshold", "threshold": 162,
            "alarmDescription": "phasekit: phasekit-test more than 162 connections (80% of max_connections 203) "
                                "for 5 minutes",
            "tags": tagged("phasekit-test-connections")},
    }
    for inputs in alarms.values():
        assert inputs["period"] * inputs["evaluationPeriods"] == 300


def test_alarm_actions_follow_a_topic_output():
    def program() -> None:
        RdsPostgres("db", rds_args(alarm_topic_arn=pulumi.Output.from_input(TOPIC).apply(lambda arn: arn + "-x")))
    for alarm in run_recorded(program).of_type(ALARM):
        assert (alarm.inputs["alarmActions"], alarm.inputs["okActions"]) == ([TOPIC + "-x"], [TOPIC + "-x"])


def test_preview_of_a_fresh_stack_leaves_computed_values_unknown():
    recording = record(preview=True, manage_master_password=False, read_replica_count=1)
    for output in ("address", "password", "database_url", "replica_addresses", "security_group_id", "instance_arn"):
        assert recording.outputs[output] == UNKNOWN_MASK
    assert {"password", "database_url"} <= recording.secret_outputs
    primary = recording.named("db-db")
    assert type(primary.inputs["password"]).__name__ == "Unknown"
    assert primary.inputs["publiclyAccessible"] is False and primary.inputs["storageEncrypted"] is True
    assert recording.type_counts()[INSTANCE] == 2


@pytest.mark.parametrize(("version", "family"), [
    ("16", "postgres16"), ("16.4", "postgres16"), ("15", "postgres15"), ("17.2", "postgres17"),
])
def test_parameter_group_family(version, family):
    assert parameter_group_family(version) == family


@pytest.mark.parametrize(("gib", "threshold"), [(20, 2147483648), (50, 5368709120), (100, 10737418240)])
def test_free_storage_threshold_is_ten_percent_in_bytes(gib, threshold):
    assert free_storage_threshold_bytes(gib) == threshold


@pytest.mark.parametrize(("max_connections", "threshold"), [(100, 80), (203, 162), (1, 0), (5000, 4000)])
def test_connections_threshold_is_eighty_percent_rounded_down(max_connections, threshold):
    assert connections_alarm_threshold(max_connections) == threshold


def test_parameters_are_tls_connections_and_slow_statements():
    assert db_parameters(10) == [
        ("rds.force_ssl", "1", "immediate"),
        ("max_connections", "10", "pending-reboot"),
        ("log_min_duration_statement", "1000", "immediate"),
    ]


def test_backup_and_maintenance_windows_never_overlap():
    backup = _minutes(BACKUP_WINDOW.split("-")[0]), _minutes(BACKUP_WINDOW.split("-")[1])
    start, end = (_weekly_minutes(part) for part in MAINTENANCE_WINDOW.split("-"))
    for day in range(7):
        daily_start, daily_end = day * 1440 + backup[0], day * 1440 + backup[1]
        assert daily_end <= start or end <= daily_start


@pytest.mark.parametrize(("overrides", "message"), [
    ({"identifier": "Phasekit"}, "RdsPostgresArgs.identifier: 'Phasekit' must be 1-53 lowercase letters, digits and "
                                 "single hyphens, starting with a letter and not ending with a hyphen"),
    ({"identifier": "db--x"}, "RdsPostgresArgs.identifier: 'db--x' must be 1-53 lowercase letters, digits and "
                              "single hyphens, starting with a letter and not ending with a hyphen"),
    ({"identifier": "db-"}, "RdsPostgresArgs.identifier: 'db-' must be 1-53 lowercase letters, digits and "
                            "single hyphens, starting with a letter and not ending with a hyphen"),
    ({"identifier": "a" * 54}, f"RdsPostgresArgs.identifier: '{'a' * 54}' must be 1-53 lowercase letters, digits "
                               "and single hyphens, starting with a letter and not ending with a hyphen"),
    ({"engine_version": "latest"},
     "RdsPostgresArgs.engine_version: 'latest' is not a PostgreSQL version such as '16' or '16.4'"),
    ({"instance_class": "t4g.medium"},
     "RdsPostgresArgs.instance_class: 't4g.medium' is not an RDS class such as 'db.t4g.medium'"),
    ({"monitoring_interval_seconds": 120},
     "RdsPostgresArgs.monitoring_interval_seconds: 120; allowed: 0 (off), 1, 5, 10, 15, 30 or 60"),
    ({"engine_lifecycle_support": "disabled"},
     "RdsPostgresArgs.engine_lifecycle_support: 'disabled'; allowed: open-source-rds-extended-support-disabled or "
     "open-source-rds-extended-support"),
    ({"allocated_storage_gib": 19},
     "RdsPostgresArgs.allocated_storage_gib: 19 is outside 20-65536 (gp3 for PostgreSQL)"),
    ({"max_allocated_storage_gib": 20},
     "RdsPostgresArgs.max_allocated_storage_gib: 20 must be greater than allocated_storage_gib (20) and at most "
     "65536, or None to turn storage autoscaling off"),
    ({"backup_retention_days": 6}, "RdsPostgresArgs.backup_retention_days: 6 is outside 7-35"),
    ({"backup_retention_days": 36}, "RdsPostgresArgs.backup_retention_days: 36 is outside 7-35"),
    ({"read_replica_count": -1}, "RdsPostgresArgs.read_replica_count: -1 is outside 0-5"),
    ({"read_replica_count": 6}, "RdsPostgresArgs.read_replica_count: 6 is outside 0-5"),
    ({"database_name": "my-app"}, "RdsPostgresArgs.database_name: 'my-app' must be 1-63 letters, digits and "
                                  "underscores, starting with a letter"),
    ({"username": "1app"}, "RdsPostgresArgs.username: '1app' must be 1-63 letters, digits and underscores, "
                           "starting with a letter"),
    ({"username": "rdsadmin"}, "RdsPostgresArgs.username: 'rdsadmin' is reserved by RDS or PostgreSQL"),
    ({"username": "pg_app"}, "RdsPostgresArgs.username: 'pg_app' is reserved by RDS or PostgreSQL"),
    ({"max_connections": 0}, "RdsPostgresArgs.max_connections: 0 is outside 1-262143"),
    ({"read_replica_count": 1}, "RdsPostgresArgs.read_replica_count: 1 with manage_master_password; RDS cannot "
                                "create a read replica of an instance whose master password Secrets Manager manages: "
                                "set manage_master_password=False or read_replica_count=0"),
    ({"app_role_name": "app"}, "RdsPostgresArgs.app_role_name: 'app' is the master user's name; the app needs a "
                               "role of its own"),
    ({"app_role_name": "app", "manage_master_password": False},
     "RdsPostgresArgs.app_role_name: 'app' is the master user's name; the app needs a role of its own"),
    ({"app_role_name": "App-User"}, "RdsPostgresArgs.app_role_name: 'App-User'; allowed: 1-63 lowercase letters, "
                                    "digits and underscores, starting with a letter, not pg_*, public, postgres, "
                                    "rdsadmin or rds_superuser"),
])
def test_invalid_args_are_refused_with_exact_messages(overrides, message):
    with pytest.raises(ValueError) as raised:
        record(**overrides)
    assert str(raised.value) == message


def recording_address(recording, name: str) -> str:
    """The mock's address for an instance (see components.testing._fake_outputs)."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"{name}.c{digest[:11]}.us-east-1.rds.amazonaws.com"


def _fake_suffix(name: str) -> str:
    """The mock's auto-name suffix (see components.testing._fake_outputs)."""
    return hashlib.sha256(name.encode()).hexdigest()[:7]


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _weekly_minutes(moment: str) -> int:
    day, clock = moment.split(":", 1)
    return ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].index(day) * 1440 + _minutes(clock)


READER = MasterSecretReader(
    oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
    oidc_provider_url="https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
    namespace="shop", service_account="web-database-role")
SECRET_POLICY = "aws:iam/rolePolicy:RolePolicy"


def test_managed_topology_has_the_app_password_and_the_master_secret_reader():
    recording = record(master_secret_reader=READER)
    assert recording.type_counts() == {
        COMPONENT: 1, SECURITY_GROUP: 1, PASSWORD: 1, RANDOM_ID: 1, ROLE: 2, ATTACHMENT: 1, SECRET_POLICY: 1,
        PARAMETER_GROUP: 1, INSTANCE: 1, ALARM: 3,
    }
    assert recording.outputs["app_role_name"] == "app_user"
    # max_connections 200 less PostgreSQL's 5 reserved superuser slots and the 5 operator connections, which
    # ordinary slots must leave to the master user (the role Job, an operator's psql).
    assert recording.outputs["app_connection_limit"] == 190
    secret_arn = recording.outputs["master_secret_arn"]
    assert secret_arn.startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-")


def test_master_secret_reader_is_one_service_account_reading_one_secret():
    recording = record(master_secret_reader=READER)
    reader = recording.named("db-master-secret-reader")
    assert json.loads(reader.inputs["assumeRolePolicy"]) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": READER.oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:shop:web-database-role",
            "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com"}},
    }]}
    policy = recording.one(SECRET_POLICY)
    assert policy.inputs["role"] == reader.id
    assert json.loads(policy.inputs["policy"]) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
        "Resource": recording.outputs["master_secret_arn"]}]}
    assert recording.outputs["master_secret_reader_role_arn"].startswith(
        "arn:aws:iam::123456789012:role/db-master-secret-reader-")


def test_customer_key_encrypts_the_secret_and_the_reader_may_decrypt_through_secrets_manager_only():
    key = "arn:aws:kms:us-east-1:123456789012:key/1111"
    recording = record(master_secret_reader=READER, master_secret_kms_key_id=key)
    assert recording.named("db-db").inputs["masterUserSecretKmsKeyId"] == key
    statements = json.loads(recording.one(SECRET_POLICY).inputs["policy"])["Statement"]
    assert statements[1] == {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key, "Condition": {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}}


def test_without_a_reader_there_is_no_reader_role():
    recording = record()
    assert recording.of_type(SECRET_POLICY) == []
    assert [role.name for role in recording.of_type(ROLE)] == ["db-monitoring-role"]
    assert recording.outputs["master_secret_reader_role_arn"] is None


@pytest.mark.parametrize(("max_connections", "limit"), [(70, 60), (200, 190), (11, 1), (5, 1)])
def test_the_app_roles_limit_leaves_the_reserved_and_operator_slots(max_connections, limit):
    assert app_connection_limit(max_connections) == limit


def test_the_master_secret_arn_of_a_stack_switching_to_a_managed_password_is_empty_not_a_crash():
    """On an existing instance switched to a managed master password, a preview can still carry the old
    state's empty ``master_user_secrets``; the ARN is then empty until ``up`` applies the change."""
    assert master_secret_arn([]) == ""
    assert master_secret_arn([{"secret_arn": "arn:aws:secretsmanager:us-east-1:1:secret:rds!db-1"}]) == (
        "arn:aws:secretsmanager:us-east-1:1:secret:rds!db-1")
