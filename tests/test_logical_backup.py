"""LogicalBackup under the recording mock monitor: exact inputs of every object, the rendered objects checked against
the real Kubernetes API schemas of every EKS version phasekit deploys (tests/k8s_schema.py), the argument rules'
exact messages, and phase 3's wiring of it (infra/phase3.py) with a backups bucket.

What mocks and schemas cannot prove: that the API server admits the objects (Pod Security Admission ``restricted``,
CronJob name length), that the CronJob controller runs the Job on time, that the images run under this security
context, or that the NetworkPolicy is enforced (the vpc-cni agent does that); for the alarms, that Fluent Bit's
events reach the log group and that CloudWatch's quoted-term pattern matches them. The scripts themselves run for
real in tests/test_logical_backup_real.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.database_role import AWS_CLI_IMAGE, PSQL_IMAGE
from components.logical_backup import (
    DATABASE_KEYS,
    LogicalBackup,
    LogicalBackupAlarms,
    LogicalBackupAlarmsArgs,
    LogicalBackupArgs,
    check_args,
    database_environment,
    render_dump_script,
    render_upload_script,
    runs_every_day,
)
from components.tags import kubernetes_labels
from components.testing import run_recorded
from infra.domain import EKS_VERSIONS
from tests import k8s_schema
from tests.test_program_phases import PASSPHRASE as PHASE3_PASSPHRASE

COMPONENT = "phasekit:index:LogicalBackup"
PROVIDER = "pulumi:providers:kubernetes"
SECRET = "kubernetes:core/v1:Secret"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CRON_JOB = "kubernetes:batch/v1:CronJob"

LABELS = kubernetes_labels({"project": "phasekit", "stack": "test", "phase": "3", "managed-by": "phasekit"})
SELECTOR = {"app.kubernetes.io/name": "backup", "app.kubernetes.io/component": "logical-backup"}
PASSWORD = "p@ss:w/rd%"
DATABASE_URL = ("postgresql://app_user:p%40ss%3Aw%2Frd%25@shop.abc.us-east-1.rds.amazonaws.com:5432/app"
                "?sslmode=require")
PASSPHRASE = "a passphrase of more than sixteen characters"
SECRET_KEY = "0123456789abcdef" * 4
ENDPOINT = "0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com"
CREDENTIALS_SECRET_NAME = f"backup-credentials-{hashlib.sha256(b'backup-credentials').hexdigest()[:8]}"
"""The name the harness gives the auto-named Secret (pulumi-kubernetes appends random characters)."""


def backup_args(**overrides: Any) -> LogicalBackupArgs:
    args = LogicalBackupArgs(
        namespace="app",
        database_url=pulumi.Output.secret(DATABASE_URL),
        backup_passphrase=pulumi.Output.secret(PASSPHRASE),
        bucket="phasekit-test-backups",
        endpoint=ENDPOINT,
        access_key_id="token-id-1234",
        secret_access_key=pulumi.Output.secret(SECRET_KEY),
        vpc_cidr="10.20.0.0/16",
        labels=LABELS,
    )
    return replace(args, **overrides)


def record(**overrides: Any):
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        backup = LogicalBackup("backup", backup_args(**overrides), opts=pulumi.ResourceOptions(provider=provider))
        pulumi.export("cron_job_name", backup.cron_job_name)
    return run_recorded(program)


def pod_spec(recording) -> dict:
    return recording.one(CRON_JOB).inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def env_names(container: dict) -> list[str]:
    return [variable["name"] for variable in container["env"]]


def from_secret(key: str) -> dict:
    return {"name": key, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET_NAME, "key": key}}}


# --- Topology ------------------------------------------------------------------------------------------------


def test_children_are_the_secret_account_policy_and_cron_job():
    recording = record()
    assert recording.type_counts() == {PROVIDER: 1, COMPONENT: 1, SECRET: 1, ACCOUNT: 1, NETPOL: 1, CRON_JOB: 1}
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource.type not in (COMPONENT, PROVIDER)]
    assert sorted(child.name for child in children) == [
        "backup", "backup-account", "backup-credentials", "backup-egress"]
    assert {child.parent for child in children} == {component.urn}
    assert {(child.protect, child.retain_on_delete) for child in children} == {(False, False)}
    provider = recording.one(PROVIDER)
    assert all(child.provider.startswith(provider.urn + "::") for child in children)
    # The CronJob exists only after its Secret, ServiceAccount and NetworkPolicy.
    cron_job = recording.one(CRON_JOB)
    assert set(cron_job.dependencies) >= {recording.named(name).urn for name in (
        "backup-credentials", "backup-account", "backup-egress")}
    assert recording.outputs["cron_job_name"] == "backup"


def test_without_a_network_policy_there_is_none():
    assert NETPOL not in record(network_policy=False).type_counts()


# --- The Secret and what each container sees --------------------------------------------------------------------


def test_the_secret_holds_the_decoded_connection_pieces_the_passphrase_and_the_s3_keys():
    secret = record().one(SECRET)
    assert secret.inputs["type"] == "Opaque"
    assert secret.inputs["metadata"] == {"namespace": "app", "labels": {**LABELS, **SELECTOR}}
    assert secret.inputs["stringData"] == {
        "PGHOST": "shop.abc.us-east-1.rds.amazonaws.com", "PGPORT": "5432", "PGDATABASE": "app",
        "PGUSER": "app_user", "PGPASSWORD": PASSWORD, "PGSSLMODE": "require", "BACKUP_PASSPHRASE": PASSPHRASE,
        "AWS_ACCESS_KEY_ID": "token-id-1234", "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    assert "stringData" in secret.secret_inputs


def test_no_secret_value_appears_in_the_cron_job():
    text = json.dumps(record().one(CRON_JOB).inputs)
    for value in (PASSWORD, "p%40ss", PASSPHRASE, SECRET_KEY):
        assert value not in text


def test_each_container_gets_only_its_own_credentials_and_runs_the_rendered_script():
    spec = pod_spec(record())
    [dump] = spec["initContainers"]
    [upload] = spec["containers"]
    assert (dump["name"], dump["image"], dump["command"]) == ("dump", PSQL_IMAGE, ["bash", "-c", render_dump_script()])
    assert (upload["name"], upload["image"], upload["command"]) == (
        "upload", AWS_CLI_IMAGE, ["sh", "-c", render_upload_script()])
    assert dump["env"] == [
        {"name": "WORK_DIR", "value": "/backup"}, {"name": "HOME", "value": "/tmp"},
        {"name": "PGAPPNAME", "value": "phasekit-logical-backup"}, {"name": "PGCONNECT_TIMEOUT", "value": "10"},
        *(from_secret(key) for key in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE",
                                       "BACKUP_PASSPHRASE"))]
    assert upload["env"] == [
        {"name": "WORK_DIR", "value": "/backup"}, {"name": "HOME", "value": "/tmp"},
        {"name": "BACKUP_BUCKET", "value": "phasekit-test-backups"},
        {"name": "S3_ENDPOINT_URL", "value": f"https://{ENDPOINT}"},
        {"name": "AWS_DEFAULT_REGION", "value": "auto"}, {"name": "LOGICAL_KEEP", "value": "35"},
        from_secret("AWS_ACCESS_KEY_ID"), from_secret("AWS_SECRET_ACCESS_KEY")]


# --- The CronJob and its pod ------------------------------------------------------------------------------------


def test_the_cron_job_runs_one_copy_at_a_time_with_deadlines_and_history():
    cron_job = record(schedule="15 2 * * 0", keep=7).one(CRON_JOB).inputs
    assert cron_job["metadata"] == {"name": "backup", "namespace": "app", "labels": {**LABELS, **SELECTOR}}
    spec = cron_job["spec"]
    assert {key: value for key, value in spec.items() if key != "jobTemplate"} == {
        "schedule": "15 2 * * 0", "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 3600, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3}
    job = spec["jobTemplate"]
    assert job["metadata"] == {"labels": {**LABELS, **SELECTOR}}
    assert {key: value for key, value in job["spec"].items() if key != "template"} == {
        "backoffLimit": 1, "activeDeadlineSeconds": 10800}
    assert job["spec"]["template"]["metadata"] == {"labels": {**LABELS, **SELECTOR}}
    assert pod_spec(record(keep=7))["containers"][0]["env"][5] == {"name": "LOGICAL_KEEP", "value": "7"}


def test_the_pod_runs_restricted_without_a_token_on_a_read_only_root():
    spec = pod_spec(record(run_as_user=2000, scratch_size="4Gi"))
    assert {key: spec[key] for key in (
        "serviceAccountName", "automountServiceAccountToken", "enableServiceLinks", "restartPolicy",
        "securityContext", "volumes")} == {
        "serviceAccountName": "backup", "automountServiceAccountToken": False, "enableServiceLinks": False,
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 2000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "4Gi"}},
                    {"name": "home", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    for container in [*spec["initContainers"], *spec["containers"]]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}
        assert container["volumeMounts"] == [{"name": "work", "mountPath": "/backup"},
                                             {"name": "home", "mountPath": "/tmp"}]
        assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"},
                                          "limits": {"memory": "512Mi"}}


def test_the_service_account_has_no_api_token():
    account = record().one(ACCOUNT).inputs
    assert account == {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
                       "metadata": {"name": "backup", "namespace": "app", "labels": {**LABELS, **SELECTOR}}}


@pytest.mark.parametrize(("vpc_cidr", "database_peer"), [
    ("10.20.0.0/16", [{"ipBlock": {"cidr": "10.20.0.0/16"}}]),
    (None, None),
])
def test_the_network_policy_isolates_the_backup_pods(vpc_cidr, database_peer):
    spec = record(vpc_cidr=vpc_cidr).one(NETPOL).inputs["spec"]
    database_rule = {"ports": [{"protocol": "TCP", "port": 5432}]}
    if database_peer is not None:
        database_rule["to"] = database_peer
    assert spec == {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress", "Egress"],
        "egress": [
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            database_rule,
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]},
        ],
    }


@pytest.mark.parametrize("version", EKS_VERSIONS)
def test_every_object_validates_against_every_eks_version_phasekit_deploys(version):
    rendered = k8s_schema.manifests(record())
    assert sorted(manifest["kind"] for manifest in rendered) == ["CronJob", "NetworkPolicy", "Secret",
                                                                 "ServiceAccount"]
    assert [error for manifest in rendered for error in k8s_schema.validate(manifest, version)] == []


# --- Pure rules --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    (DATABASE_URL, {"PGHOST": "shop.abc.us-east-1.rds.amazonaws.com", "PGPORT": "5432", "PGDATABASE": "app",
                    "PGUSER": "app_user", "PGPASSWORD": PASSWORD, "PGSSLMODE": "require"}),
    ("postgres://u:pw@db.internal/my%20db?sslmode=verify-full",
     {"PGHOST": "db.internal", "PGPORT": "5432", "PGDATABASE": "my db", "PGUSER": "u", "PGPASSWORD": "pw",
      "PGSSLMODE": "verify-full"}),
    ("postgresql://u:pw@db.internal:6543/app?sslmode=verify-ca",
     {"PGHOST": "db.internal", "PGPORT": "6543", "PGDATABASE": "app", "PGUSER": "u", "PGPASSWORD": "pw",
      "PGSSLMODE": "verify-ca"}),
])
def test_database_environment_decodes_the_url(url, expected):
    assert database_environment(url) == expected


NO_TLS = ("LogicalBackupArgs.database_url: needs a postgresql:// URL with TLS required (sslmode=require, "
          "verify-ca or verify-full)")


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://u:pw@db.internal/app", NO_TLS),
    ("postgresql://u:pw@db.internal/app?sslmode=prefer", NO_TLS),
    ("mysql://u:pw@db.internal/app?sslmode=require", NO_TLS),
    ("postgresql://u:pw@db.internal/?sslmode=require",
     "LogicalBackupArgs.database_url: needs a user, a host and a database name"),
    ("postgresql://db.internal/app?sslmode=require",
     "LogicalBackupArgs.database_url: needs a user, a host and a database name"),
])
def test_database_urls_without_tls_or_parts_are_refused_without_echoing_them(url, message):
    with pytest.raises(ValueError) as raised:
        database_environment(url)
    assert str(raised.value) == message
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(("name", "overrides", "message"), [
    ("Backup", {}, "LogicalBackup name: 'Backup' names the CronJob and its Jobs; allowed: 1-40 lowercase letters, "
                   "digits and hyphens, starting with a letter and not ending with a hyphen"),
    ("backup", {"schedule": "@daily"},
     "LogicalBackupArgs.schedule: '@daily' has 1 field; allowed: five fields (minute hour day-of-month month "
     "day-of-week, UTC) of numbers, *, ranges a-b, steps /n and lists a,b, e.g. '*/15 * * * *'"),
    # robfig/cron v3 (the API server's parser) bounds day-of-week to 0-6
    ("backup", {"schedule": "30 3 * * 7"},
     "LogicalBackupArgs.schedule: '30 3 * * 7': day-of-week 7 is out of range; allowed: 0-6"),
    ("backup", {"keep": 0}, "LogicalBackupArgs.keep: 0; allowed: 1 or more"),
    ("backup", {"run_as_user": 0}, "LogicalBackupArgs.run_as_user: 0; must be a non-root uid (1 or more)"),
    ("backup", {"timeout_seconds": 0}, "LogicalBackupArgs.timeout_seconds: 0; allowed: 1 or more"),
    ("backup", {"starting_deadline_seconds": 0},
     "LogicalBackupArgs.starting_deadline_seconds: 0; allowed: 1 or more"),
    ("backup", {"backoff_limit": -1}, "LogicalBackupArgs.backoff_limit: -1; allowed: 0 or more"),
    ("backup", {"database_url": "postgresql://u:pw@h/app"}, NO_TLS),
    ("backup", {"endpoint": "https://x.r2.cloudflarestorage.com"},
     "LogicalBackupArgs.endpoint: 'https://x.r2.cloudflarestorage.com'; allowed: a host name without scheme or "
     "path, e.g. <account>.r2.cloudflarestorage.com"),
])
def test_bad_arguments_are_refused_with_exact_messages(name, overrides, message):
    with pytest.raises(ValueError) as raised:
        check_args(name, backup_args(**overrides))
    assert str(raised.value) == message


def test_the_scripts_put_no_secret_on_a_command_line():
    # The passphrase reaches openssl by the name of its variable; pg_dump reads PGPASSWORD from its environment.
    dump = render_dump_script()
    assert "-pass env:BACKUP_PASSPHRASE" in dump and "$BACKUP_PASSPHRASE" not in dump
    assert "PGPASSWORD" not in dump and "set -euo pipefail" in dump
    assert "AWS_SECRET_ACCESS_KEY" not in render_upload_script()


# --- Phase 3's wiring (infra/phase3.py) -------------------------------------------------------------------------


def record_phase3(container_logs: bool = False):
    """Phase 3 from the committed stack file through the program's own path (infra/program.py, which creates the
    stack's backups bucket and passes it on), as tests/test_program_phases.py runs it."""
    from infra.config import load_config
    from tests.test_program_phases import PHASE3, run

    raw = {**PHASE3, "phasekit:cluster": {**PHASE3["phasekit:cluster"], "containerLogs": container_logs}}
    return load_config(raw), run(raw, "phase3")


def test_phase3_copies_the_app_database_to_the_backups_bucket_on_the_configured_schedule():
    config, recording = record_phase3()
    component = recording.one(COMPONENT)
    assert component.urn.endswith("$phasekit:index:LogicalBackup::logical-backup")
    cluster_provider = recording.one(PROVIDER)
    children = [resource for resource in recording.resources if resource.parent == component.urn]
    assert sorted(child.type for child in children) == sorted([CRON_JOB, ACCOUNT, SECRET, NETPOL])
    assert all(child.provider.startswith(cluster_provider.urn + "::") for child in children)

    cron_job = recording.one(CRON_JOB).inputs
    assert cron_job["metadata"]["namespace"] == "app"
    assert (cron_job["spec"]["schedule"], config.backups.logical_schedule) == ("30 3 * * *", "30 3 * * *")
    upload_env = {variable["name"]: variable.get("value") for variable in
                  cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert upload_env["BACKUP_BUCKET"] == recording.named("backups-bucket").inputs["name"] == "phasekit-phase3-backups"
    assert upload_env["S3_ENDPOINT_URL"] == f"https://{config.edge.account_id}.r2.cloudflarestorage.com"
    assert upload_env["LOGICAL_KEEP"] == str(config.backups.logical_keep) == "35"

    # The copy connects as the app (the RDS database_url) and carries the user's passphrase.
    secret = recording.named("logical-backup-credentials").inputs["stringData"]
    app_database_url = recording.named("app-env").inputs["stringData"]["DATABASE_URL"]
    assert {key: secret[key] for key in DATABASE_KEYS} == database_environment(app_database_url)
    assert secret["PGDATABASE"] == "app" and secret["PGSSLMODE"] == "require"
    assert secret["PGHOST"].startswith("database-db.") and secret["PGHOST"].endswith(".rds.amazonaws.com")
    assert secret["BACKUP_PASSPHRASE"] == PHASE3_PASSPHRASE
    assert secret["AWS_ACCESS_KEY_ID"] == recording.named("backups-token").id
    assert recording.named("logical-backup-egress").inputs["spec"]["egress"][1]["to"] == [
        {"ipBlock": {"cidr": config.aws.vpc_cidr}}]
    # RDS's own point-in-time backups stay on, at least a week.
    assert recording.one("aws:rds/instance:Instance").inputs["backupRetentionPeriod"] >= 7


def test_phase3_alerts_on_the_copy_only_when_container_logs_reach_cloudwatch():
    _, without_logs = record_phase3()
    assert ALARMS not in without_logs.type_counts() and METRIC_FILTER not in without_logs.type_counts()

    _, recording = record_phase3(container_logs=True)
    filters = {item.inputs["name"]: item.inputs for item in recording.of_type(METRIC_FILTER)}
    assert sorted(filters) == ["phasekit-phase3-db-logical-backup-failed", "phasekit-phase3-db-logical-backup-stale"]
    assert {item["logGroupName"] for item in filters.values()} == {
        "/aws/containerinsights/phasekit-phase3-eks/application"}
    alarms = [alarm for alarm in recording.of_type(ALARM) if "logical-backup" in alarm.name]
    assert {alarm.inputs["name"] for alarm in alarms} == set(filters)
    # The same alert topic as every other alarm of the stack (RDS, cache, cluster, load balancer).
    assert len({tuple(alarm.inputs["alarmActions"]) for alarm in recording.of_type(ALARM)}) == 1
    # The filters need EksCluster's log group: the alarms' component waits for the cluster (and so for it).
    component = recording.one(ALARMS)
    assert recording.named("cluster-container-logs-application").urn in component.dependencies
    aws_provider = recording.one("pulumi:providers:aws")
    assert all(item.provider.startswith(aws_provider.urn + "::") for item in recording.of_type(METRIC_FILTER))


# --- The alarms ------------------------------------------------------------------------------------------------


ALARMS = "phasekit:index:LogicalBackupAlarms"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:alerts"


def record_alarms(schedule: str):
    def program() -> None:
        LogicalBackupAlarms("backup-alarms", LogicalBackupAlarmsArgs(
            log_group_name="/aws/containerinsights/shop-eks/application", topic_arn=TOPIC_ARN,
            name_prefix="shop-db", schedule=schedule, tags={"stack": "prod"}))
    return run_recorded(program)


@pytest.mark.parametrize(("schedule", "daily"), [
    ("30 3 * * *", True), ("0 */6 * * *", True), ("*/15 * * * *", True),
    ("30 3 * * 0", False), ("30 3 1 * *", False), ("30 3 * 1 *", False), ("30 3 * * 1-5", False),
    ("30 3 * 1-12 *", True), ("30 3 */2 * *", False),
])
def test_only_schedules_that_run_every_day_count_as_daily(schedule, daily):
    assert runs_every_day(schedule) is daily


def test_a_logged_failure_and_a_day_without_success_both_alarm():
    recording = record_alarms("30 3 * * *")
    filters = sorted((item.inputs for item in recording.of_type(METRIC_FILTER)), key=lambda item: item["name"])
    assert filters == [
        {"name": f"shop-db-logical-backup-{suffix}", "logGroupName": "/aws/containerinsights/shop-eks/application",
         "pattern": f'"{marker}"', "metricTransformation": {
             "name": f"shop-db-logical-backup-{suffix}", "namespace": "phasekit/LogicalBackup", "value": "1",
             "unit": "Count"}}
        for suffix, marker in (("failed", "logical-backup: FAILED"), ("stale", "logical-backup: ok"))]
    alarms = {alarm.inputs["name"]: alarm for alarm in recording.of_type(ALARM)}
    common = {"namespace": "phasekit/LogicalBackup", "statistic": "Sum", "threshold": 1,
              "alarmActions": [TOPIC_ARN], "okActions": [TOPIC_ARN]}
    failed = alarms["shop-db-logical-backup-failed"].inputs
    assert failed == {**common, "name": "shop-db-logical-backup-failed",
                      "metricName": "shop-db-logical-backup-failed",
                      "alarmDescription": "phasekit: shop-db logical backup (pg_dump to R2) failed; see the CronJob's "
                                          "failed Job and its logs",
                      "comparisonOperator": "GreaterThanOrEqualToThreshold", "period": 300, "evaluationPeriods": 1,
                      "treatMissingData": "notBreaching",
                      "tags": {"Name": "shop-db-logical-backup-failed", "stack": "prod"}}
    stale = alarms["shop-db-logical-backup-stale"].inputs
    assert stale == {**common, "name": "shop-db-logical-backup-stale", "metricName": "shop-db-logical-backup-stale",
                     "alarmDescription": "phasekit: shop-db logical backup (pg_dump to R2) has not succeeded since "
                                         "the start of yesterday (UTC)",
                     "comparisonOperator": "LessThanThreshold", "period": 86400, "evaluationPeriods": 2,
                     "datapointsToAlarm": 2, "treatMissingData": "breaching",
                     "tags": {"Name": "shop-db-logical-backup-stale", "stack": "prod"}}
    # Within CloudWatch's limit for periods of an hour or more: period x evaluation periods <= 7 days.
    assert stale["period"] * stale["evaluationPeriods"] <= 7 * 86400
    component = recording.one(ALARMS)
    assert {item.parent for item in [*recording.of_type(METRIC_FILTER), *recording.of_type(ALARM)]} == {
        component.urn}
    # Each alarm is created after its filter, so its metric exists.
    filter_urns = {item.inputs["name"]: item.urn for item in recording.of_type(METRIC_FILTER)}
    assert all(filter_urns[name] in alarm.dependencies for name, alarm in alarms.items())


def test_a_weekly_schedule_gets_only_the_failure_alarm():
    recording = record_alarms("30 3 * * 0")
    assert [alarm.inputs["name"] for alarm in recording.of_type(ALARM)] == ["shop-db-logical-backup-failed"]
    assert [item.inputs["name"] for item in recording.of_type(METRIC_FILTER)] == ["shop-db-logical-backup-failed"]
