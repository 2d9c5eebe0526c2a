"""LogicalBackup: phase 3's scheduled logical copy of the RDS database, encrypted, in the stack's R2 backups bucket.

RDS keeps its own automated backups and point-in-time restore (``backup_retention_days``, at least 7: the config
model refuses less, infra/config_phase3.py ``RdsDatabase.backup_retention_days``), but those live in the same AWS
account as the database. This copy lives outside AWS, at ``logical/<UTC timestamp>.dump.enc`` in the same bucket
and layout the droplet phases use, so one restore path works from any phase.

Creates (in ``namespace``, which the caller owns; KubernetesApp's namespace in phase 3)
- a Secret with the connection pieces of ``database_url`` as libpq's variables (``PGHOST``, ``PGPORT``,
  ``PGDATABASE``, ``PGUSER``, ``PGPASSWORD``, ``PGSSLMODE``), ``BACKUP_PASSPHRASE`` and the bucket's S3 keys;
  each container gets only the keys it needs, as environment variables: nothing secret is ever on a command line;
- a ServiceAccount without an API token (the job needs no Kubernetes or AWS API);
- a NetworkPolicy isolating the backup pods: no ingress; egress to CoreDNS, PostgreSQL (5432) in ``vpc_cidr`` and
  HTTPS (443, R2) anywhere. Policies add up: in KubernetesApp's namespace its namespace-wide rules apply to these
  pods too (the same flows, plus Redis in the VPC); on its own this policy is the whole allow list;
- a ``batch/v1`` CronJob on ``schedule`` (UTC, ``timeZone: Etc/UTC``): ``concurrencyPolicy: Forbid``, a
  starting deadline, an active deadline, ``backoffLimit`` and history limits. Its pod (the app's restricted
  security context: non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp) runs
  1. init container ``dump`` (Debian's PostgreSQL 17 image, whose ``pg_dump`` reads servers 9.2 and newer, and
     whose ``openssl`` comes with postgresql-common -> ssl-cert -> openssl): ``render_dump_script``,
     ``pg_dump --format=custom | openssl enc -aes-256-cbc -pbkdf2 -iter 200000`` into a ``.partial`` file on an
     emptyDir, renamed to ``<UTC timestamp>.dump.enc`` only when both succeeded (``set -o pipefail``);
  2. container ``upload`` (the AWS CLI v2 image phasekit already pins for the database-role Job):
     ``render_upload_script``, ``aws s3 cp`` to ``logical/<stamp>.dump.enc``, then ``head-object`` must report
     the local size, and only then the copies beyond ``keep`` (oldest first, only names of that exact shape)
     are deleted. The CLI v2 sends a CRC64NVME checksum of the whole object by default, which R2 checks before
     storing it (full-object CRC64NVME is supported: https://developers.cloudflare.com/r2/api/s3/api/); region
     ``auto``, path-style requests. ``sh``, ``wc``, ``sort`` and ``tail`` come with the image's Amazon Linux base.
  A failed step fails the Job. No object ever appears truncated under a final name: the init container fails
  before the upload starts, and an S3 PutObject (or multipart upload) becomes visible only once complete.

Database role: the copy connects with ``database_url``, i.e. as the app's own role (phase 3 hands it over only
once the database-role Job has passed, so a refused role Job leaves the previous credentials dumping).
``pg_dump`` must be able to read every table of the
database: what the app's migrations created, the role owns. A table another role created and did not grant
to the app role makes the dump fail (and so the Job), never silently skip it.

Alerting: the CronJob's failed Jobs stay visible (``failedJobsHistoryLimit``, ``kubectl get jobs``). Kubernetes
Job status is not a CloudWatch metric, so the only path to the stack's SNS alert topic goes through the logs:
with the cluster's ``container_logs`` on, Fluent Bit ships the scripts' output to the Container Insights
``application`` log group and ``LogicalBackupAlarms`` (below) counts the scripts' own markers there:
- ``<prefix>-logical-backup-failed``: a ``logical-backup: FAILED`` line (a failed dump, upload, size check or
  prune) within 5 minutes;
- ``<prefix>-logical-backup-stale``, only for a schedule that runs every day (day-of-month, month and
  day-of-week all ``*``): no ``logical-backup: ok`` line in the previous UTC day nor in the current one so far,
  which also catches runs that never start or are killed at their deadline (they print no marker).
Without ``container_logs`` (its default: off, it costs per GB logged) nothing alerts on a failed copy; say so
to whoever watches the stack. A weekly or monthly schedule gets only the failure alarm.

Does not create: the bucket or its credentials (BackupStore), the namespace, the passphrase (the user's
``phasekit:secrets.BACKUP_PASSPHRASE``). Restoring: see docs/backups.md (download, ``openssl enc -d``,
``pg_restore`` 17 or newer, which reads the archive format pg_dump 17 writes).

Cost: the pod's requests while it runs (minutes a day); R2 storage for ``keep`` copies, no egress fees. With the
alarms: CloudWatch bills each metric-filter metric as a custom metric and each alarm monthly (two of each at most).

Stateful: nothing in the cluster. The copies are in the bucket, which outlives this component.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

# The openssl options every copy encrypted with BACKUP_PASSPHRASE uses (the Redis snapshots too), defined once.
from components.backups import OPENSSL_ENC_ARGS
from components.database_role import AWS_CLI_IMAGE, PSQL_IMAGE
from components.kubernetes_app import DNS_SELECTOR, container_security_context, pod_security_context
from components.processes import CronError, read_cron
from components.tags import aws_tags

LOGICAL_PREFIX = "logical/"
"""Where the copies live in the backups bucket (the shared layout: ``pgbackrest/``, ``redis/``, ``logical/``)."""

COPY_SUFFIX = ".dump.enc"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
"""``date -u +...`` format of a copy's name: sorts in time order as text."""

WORK_DIR = "/backup"
"""The emptyDir the dump is written to and uploaded from."""

HOME_DIR = "/tmp"
SCRIPT_FAILURE_MARKER = "logical-backup: FAILED"
SCRIPT_SUCCESS_MARKER = "logical-backup: ok"
COMPONENT_LABEL = "logical-backup"
S3_REGION = "auto"
"""R2's region name for S3 clients (https://developers.cloudflare.com/r2/api/s3/api/)."""

TLS_SSLMODES = ("require", "verify-ca", "verify-full")
DATABASE_KEYS = ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE")
PASSPHRASE_KEY = "BACKUP_PASSPHRASE"
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")


@dataclass
class LogicalBackupArgs:
    namespace: pulumi.Input[str]
    """Namespace the objects go in (it must exist; pass the owner's output so they wait for it)."""

    database_url: pulumi.Input[str]
    """``postgresql://user:password@host:port/database?sslmode=require``; a secret. TLS is required
    (``sslmode`` require, verify-ca or verify-full); its pieces become libpq's variables. The pod holds no CA
    bundle for the server, so verify-ca and verify-full fail unless the image trusts the server's CA; RdsPostgres's
    URL says ``require``."""

    backup_passphrase: pulumi.Input[str]
    """Key the copies are encrypted with (``openssl enc -aes-256-cbc -pbkdf2 -iter 200000``); a secret."""

    bucket: pulumi.Input[str]
    """The backups bucket's name (BackupStore.bucket_name)."""

    endpoint: pulumi.Input[str]
    """The bucket's S3 endpoint host, e.g. ``<account>.r2.cloudflarestorage.com`` (no scheme; HTTPS is used)."""

    access_key_id: pulumi.Input[str]
    """S3 access key id scoped to the bucket."""

    secret_access_key: pulumi.Input[str]
    """S3 secret access key; a secret."""

    schedule: str = "30 3 * * *"
    """Five-field cron schedule, UTC (``config.backups.logical_schedule``)."""

    keep: int = 35
    """Copies kept in ``logical/``; older ones are deleted after each verified upload (1 or more)."""

    vpc_cidr: str | None = None
    """Where PostgreSQL lives (egress to 5432 only there). None: 5432 to any address."""

    run_as_user: int = 10001
    """uid and gid the containers run as; never 0."""

    timeout_seconds: int = 3 * 3600
    """The Job's ``activeDeadlineSeconds``: a dump and upload still running after this fails."""

    starting_deadline_seconds: int = 3600
    """A run that could not start this long after its time (cluster down, Forbid) is counted missed."""

    backoff_limit: int = 1
    """Retries of a failed run: each is a whole new dump with a new timestamp, so retrying is safe."""

    scratch_size: str = "10Gi"
    """emptyDir size limit for the encrypted dump (on the node's disk; the pod is evicted beyond it)."""

    network_policy: bool = True
    """The backup pods' own NetworkPolicy (no ingress; DNS, PostgreSQL and HTTPS egress)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels for every object (``components.tags.kubernetes_labels``)."""

    credentials_after: Sequence[pulumi.Resource] = ()
    """What the credentials Secret waits for: the Job that creates the role ``database_url`` connects as (it may
    refuse; until it passes, the Secret keeps the credentials it had). An ordering, not a data dependency, so a
    preview does not show the Secret changing whenever that Job is replaced."""

    pg_image: str = PSQL_IMAGE
    aws_cli_image: str = AWS_CLI_IMAGE


class LogicalBackup(pulumi.ComponentResource):
    cron_job_name: pulumi.Output[str]
    """The CronJob's name (``kubectl get jobs -l app.kubernetes.io/component=logical-backup``)."""

    def __init__(self, name: str, args: LogicalBackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        check_args(name, args)
        super().__init__("phasekit:index:LogicalBackup", name, None, opts)
        labels = {**args.labels, **selector_labels(name)}
        child = pulumi.ResourceOptions(parent=self)

        def metadata(object_name: str | None = None) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=args.namespace, labels=labels)

        secret = k8s.core.v1.Secret(
            f"{name}-credentials", metadata=metadata(), type="Opaque",
            string_data=pulumi.Output.secret(pulumi.Output.all(
                args.database_url, args.backup_passphrase, args.access_key_id, args.secret_access_key,
            ).apply(lambda values: secret_data(*values))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.credentials_after)))
        account = k8s.core.v1.ServiceAccount(f"{name}-account", metadata=metadata(name),
                                             automount_service_account_token=False, opts=child)
        ready: list[pulumi.Resource] = [secret, account]
        if args.network_policy:
            ready.append(k8s.networking.v1.NetworkPolicy(
                f"{name}-egress", metadata=metadata(name), spec=network_policy_spec(name, args.vpc_cidr),
                opts=child))
        cron_job = k8s.batch.v1.CronJob(
            name, metadata=metadata(name),
            spec=_cron_job_spec(name, args, labels, secret.metadata.apply(lambda meta: meta.name)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready))

        self.cron_job_name = cron_job.metadata.apply(lambda meta: meta.name)
        self.register_outputs({"cron_job_name": self.cron_job_name})


def _cron_job_spec(name: str, args: LogicalBackupArgs, labels: Mapping[str, str],
                   secret_name: pulumi.Output[str]) -> k8s.batch.v1.CronJobSpecArgs:
    def from_secret(key: str) -> k8s.core.v1.EnvVarArgs:
        return k8s.core.v1.EnvVarArgs(name=key, value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret_name, key=key)))

    def plain(key: str, value: pulumi.Input[str]) -> k8s.core.v1.EnvVarArgs:
        return k8s.core.v1.EnvVarArgs(name=key, value=value)

    resources = k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "100m", "memory": "256Mi"},
                                                     limits={"memory": "512Mi"})
    mounts = [k8s.core.v1.VolumeMountArgs(name="work", mount_path=WORK_DIR),
              k8s.core.v1.VolumeMountArgs(name="home", mount_path=HOME_DIR)]
    common = [plain("WORK_DIR", WORK_DIR), plain("HOME", HOME_DIR)]
    dump = k8s.core.v1.ContainerArgs(
        name="dump", image=args.pg_image, command=["bash", "-c", render_dump_script()],
        env=[*common, plain("PGAPPNAME", "phasekit-logical-backup"), plain("PGCONNECT_TIMEOUT", "10"),
             *(from_secret(key) for key in (*DATABASE_KEYS, PASSPHRASE_KEY))],
        resources=resources, security_context=container_security_context(), volume_mounts=mounts)
    upload = k8s.core.v1.ContainerArgs(
        name="upload", image=args.aws_cli_image, command=["sh", "-c", render_upload_script()],
        env=[*common, plain("BACKUP_BUCKET", args.bucket),
             plain("S3_ENDPOINT_URL", pulumi.Output.from_input(args.endpoint).apply(endpoint_url)),
             plain("AWS_DEFAULT_REGION", S3_REGION), plain("LOGICAL_KEEP", str(args.keep)),
             *(from_secret(key) for key in S3_KEYS)],
        resources=resources, security_context=container_security_context(), volume_mounts=mounts)
    pod = k8s.core.v1.PodSpecArgs(
        service_account_name=name,
        automount_service_account_token=False,
        enable_service_links=False,
        restart_policy="Never",
        security_context=pod_security_context(args.run_as_user),
        init_containers=[dump],
        containers=[upload],
        volumes=[
            k8s.core.v1.VolumeArgs(name="work", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                size_limit=args.scratch_size)),
            k8s.core.v1.VolumeArgs(name="home", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi")),
        ],
    )
    return k8s.batch.v1.CronJobSpecArgs(
        schedule=args.schedule,
        time_zone="Etc/UTC",
        # Two copies at once would compete for the database and could prune each other's view of the bucket.
        concurrency_policy="Forbid",
        starting_deadline_seconds=args.starting_deadline_seconds,
        successful_jobs_history_limit=3,
        failed_jobs_history_limit=3,
        job_template=k8s.batch.v1.JobTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=dict(labels)),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=args.backoff_limit,
                active_deadline_seconds=args.timeout_seconds,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=dict(labels)), spec=pod),
            ),
        ),
    )


@dataclass
class LogicalBackupAlarmsArgs:
    log_group_name: pulumi.Input[str]
    """The log group the backup pods' output reaches (Container Insights' ``application`` group); it must exist
    (pass ``depends_on`` to its owner)."""

    topic_arn: pulumi.Input[str]
    """SNS topic the alarms notify (AlertTopic.topic_arn)."""

    name_prefix: str
    """Alarm and metric names start with it (the stack's physical prefix, e.g. the cluster name)."""

    schedule: str = "30 3 * * *"
    """The CronJob's schedule: the staleness alarm exists only when it runs every day (``runs_every_day``)."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """AWS tags for the alarms (``Name`` is added per alarm)."""


ALARM_NAMESPACE = "phasekit/LogicalBackup"
FAILURE_PERIOD_SECONDS = 300
DAY_SECONDS = 86400


class LogicalBackupAlarms(pulumi.ComponentResource):
    """CloudWatch metric filters on the backup pods' log lines and the alarms on them (see the module docstring)."""

    alarm_names: pulumi.Output[list[str]]
    """The CloudWatch alarms' names (``<prefix>-logical-backup-failed`` and, for a daily schedule, ``-stale``)."""

    def __init__(self, name: str, args: LogicalBackupAlarmsArgs, opts: pulumi.ResourceOptions | None = None
                 ) -> None:
        super().__init__("phasekit:index:LogicalBackupAlarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = []
        for suffix, marker, alarm in alarm_specs(args.name_prefix, args.schedule):
            metric_name = f"{args.name_prefix}-logical-backup-{suffix}"
            metric_filter = aws.cloudwatch.LogMetricFilter(
                f"{name}-{suffix}-filter", name=metric_name, log_group_name=args.log_group_name,
                pattern=f'"{marker}"',
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric_name, namespace=ALARM_NAMESPACE, value="1", unit="Count"),
                opts=child)
            names.append(aws.cloudwatch.MetricAlarm(
                f"{name}-{suffix}-alarm", name=metric_name, namespace=ALARM_NAMESPACE, metric_name=metric_name,
                statistic="Sum", alarm_actions=[args.topic_arn], ok_actions=[args.topic_arn],
                tags=aws_tags(args.tags, Name=metric_name), **alarm,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[metric_filter])).name)
        self.alarm_names = pulumi.Output.all(*names).apply(list)
        self.register_outputs({"alarm_names": self.alarm_names})


def runs_every_day(schedule: str) -> bool:
    """Whether a cron schedule (``processes.read_cron``) fires at least once every day: neither day field is
    restricted and every month is in (hour and minute may be anything)."""
    fields = read_cron(schedule)
    return not fields.days_restricted and not fields.weekdays_restricted and fields.months == frozenset(range(1, 13))


def alarm_specs(name_prefix: str, schedule: str) -> list[tuple[str, str, dict]]:
    """(suffix, log marker, MetricAlarm arguments) of each alarm.

    ``failed``: any failure line in 5 minutes; no data (no failure logged) is fine.
    ``stale`` (daily schedules only): daily, clock-aligned buckets; both the previous UTC day and the current
    one so far without a success line, where no data means no success. One empty bucket is not enough: today's
    bucket is empty until today's run finishes. Two one-day periods are allowed: with a period of an hour or more,
    period x evaluation periods may reach 7 days (CloudWatch PutMetricAlarm, ``EvaluationPeriods``)."""
    specs = [("failed", SCRIPT_FAILURE_MARKER, {
        "alarm_description": f"phasekit: {name_prefix} logical backup (pg_dump to R2) failed; see the CronJob's "
                             "failed Job and its logs",
        "comparison_operator": "GreaterThanOrEqualToThreshold", "threshold": 1,
        "period": FAILURE_PERIOD_SECONDS, "evaluation_periods": 1, "treat_missing_data": "notBreaching"})]
    if runs_every_day(schedule):
        specs.append(("stale", SCRIPT_SUCCESS_MARKER, {
            "alarm_description": f"phasekit: {name_prefix} logical backup (pg_dump to R2) has not succeeded "
                                 "since the start of yesterday (UTC)",
            "comparison_operator": "LessThanThreshold", "threshold": 1,
            "period": DAY_SECONDS, "evaluation_periods": 2, "datapoints_to_alarm": 2,
            "treat_missing_data": "breaching"}))
    return specs


# --- Pure helpers (tested without the runtime; the scripts are run for real in tests) -------------------


def selector_labels(name: str) -> dict[str, str]:
    """The backup pods' labels, which the NetworkPolicy selects (distinct from the app's web and release pods)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": COMPONENT_LABEL}


def endpoint_url(endpoint: str) -> str:
    """``https://<host>`` for the AWS CLI's ``--endpoint-url``."""
    return f"https://{endpoint}"


def database_environment(database_url: str) -> dict[str, str]:
    """libpq's variables for ``database_url`` (percent-decoded). Raises without TLS; the message never echoes the
    URL (it holds a password)."""
    parts = urlsplit(database_url)
    sslmode = parse_qs(parts.query).get("sslmode", [""])[-1]
    if parts.scheme not in ("postgres", "postgresql") or sslmode not in TLS_SSLMODES:
        raise ValueError("LogicalBackupArgs.database_url: needs a postgresql:// URL with TLS required "
                         "(sslmode=require, verify-ca or verify-full)")
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not parts.username or not database:
        raise ValueError("LogicalBackupArgs.database_url: needs a user, a host and a database name")
    return {
        "PGHOST": parts.hostname,
        "PGPORT": str(parts.port or 5432),
        "PGDATABASE": database,
        "PGUSER": unquote(parts.username),
        "PGPASSWORD": unquote(parts.password or ""),
        "PGSSLMODE": sslmode,
    }


def secret_data(database_url: str, passphrase: str, access_key_id: str, secret_access_key: str) -> dict[str, str]:
    """The Secret's keys: libpq's variables, the passphrase and the S3 keys."""
    return {**database_environment(database_url), PASSPHRASE_KEY: passphrase,
            "AWS_ACCESS_KEY_ID": access_key_id, "AWS_SECRET_ACCESS_KEY": secret_access_key}


def network_policy_spec(name: str, vpc_cidr: str | None) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """No ingress at all; egress to CoreDNS (UDP/TCP 53), PostgreSQL in the VPC and HTTPS anywhere (R2).
    Selecting the pods with both policy types isolates them whatever else the namespace allows."""
    def port(number: int, protocol: str = "TCP") -> k8s.networking.v1.NetworkPolicyPortArgs:
        return k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=number)

    def cidr(block: str) -> list[k8s.networking.v1.NetworkPolicyPeerArgs]:
        return [k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=block))]

    dns = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels={"kubernetes.io/metadata.name": "kube-system"}),
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=DNS_SELECTOR))],
        ports=[port(53, "UDP"), port(53, "TCP")])
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels(name)),
        policy_types=["Ingress", "Egress"],
        egress=[dns,
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=cidr(vpc_cidr) if vpc_cidr else None,
                                                              ports=[port(5432)]),
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=cidr("0.0.0.0/0"), ports=[port(443)])],
    )


def render_dump_script() -> str:
    """The ``dump`` container's bash script. Reads libpq's variables, ``BACKUP_PASSPHRASE`` and ``WORK_DIR``;
    leaves exactly one ``<UTC stamp>.dump.enc`` in ``WORK_DIR`` or exits non-zero (pipefail: a failing
    ``pg_dump`` fails the pipeline even though ``openssl`` encrypted what it got). The passphrase reaches openssl
    as ``-pass env:`` (its name, not its value, is on the command line)."""
    return "\n".join([
        "set -euo pipefail",
        "umask 077",
        f"trap 'echo \"{SCRIPT_FAILURE_MARKER} (dump)\" >&2' ERR",
        f"stamp=\"$(date -u +{STAMP_FORMAT})\"",
        'partial="$WORK_DIR/$stamp.partial"',
        "pg_dump --format=custom --no-password \\",
        f"  | openssl enc {' '.join(OPENSSL_ENC_ARGS)} -salt -pass env:{PASSPHRASE_KEY} -out \"$partial\"",
        f'mv "$partial" "$WORK_DIR/$stamp{COPY_SUFFIX}"',
        f'echo "logical-backup: dumped $stamp{COPY_SUFFIX} ($(wc -c < "$WORK_DIR/$stamp{COPY_SUFFIX}") bytes)"',
        "",
    ])


def decrypt_argv(encrypted: str, decrypted: str) -> list[str]:
    """The restore side: ``openssl enc -d`` of a copy into a ``pg_restore``-able file, the passphrase read from
    ``$BACKUP_PASSPHRASE`` (never a command-line argument)."""
    return ["openssl", "enc", "-d", *OPENSSL_ENC_ARGS, "-pass", f"env:{PASSPHRASE_KEY}", "-in", encrypted,
            "-out", decrypted]


def render_upload_script() -> str:
    """The ``upload`` container's POSIX sh script (AWS CLI). Reads ``WORK_DIR``, ``BACKUP_BUCKET``,
    ``S3_ENDPOINT_URL``, ``LOGICAL_KEEP``, ``HOME`` and the AWS CLI's own ``AWS_*`` variables.

    Uploads the one finished copy, checks the stored size, then deletes the oldest copies beyond
    ``LOGICAL_KEEP``: only keys shaped exactly like a copy's, never the one just uploaded (it is the newest).
    Any failed command fails the script before anything is deleted."""
    copy_glob = f"{LOGICAL_PREFIX}[0-9]*T[0-9]*Z{COPY_SUFFIX}"
    return "\n".join([
        "set -eu",
        "set -f",
        f"fail() {{ echo \"{SCRIPT_FAILURE_MARKER} (upload): $*\" >&2; exit 1; }}",
        # Path-style requests (<endpoint>/<bucket>/<key>), as R2 documents for S3 clients.
        'mkdir -p "$HOME/.aws"',
        "printf '[default]\\ns3 =\\n  addressing_style = path\\n' > \"$HOME/.aws/config\"",
        's3() { aws --endpoint-url "$S3_ENDPOINT_URL" "$@"; }',
        'cd "$WORK_DIR"',
        "set +f",
        f"set -- *{COPY_SUFFIX}",
        "set -f",
        '[ "$#" -eq 1 ] && [ -f "$1" ] || fail "expected one finished copy in $WORK_DIR"',
        'file="$1"',
        f'key="{LOGICAL_PREFIX}$file"',
        'size="$(wc -c < "$file" | tr -d " ")"',
        's3 s3 cp --only-show-errors "$file" "s3://$BACKUP_BUCKET/$key"',
        'stored="$(s3 s3api head-object --bucket "$BACKUP_BUCKET" --key "$key" --query ContentLength '
        '--output text)"',
        '[ "$stored" = "$size" ] || fail "$key holds $stored bytes, expected $size"',
        'echo "logical-backup: uploaded $key ($size bytes)"',
        f'listing="$(s3 s3api list-objects-v2 --bucket "$BACKUP_BUCKET" --prefix {LOGICAL_PREFIX} '
        "--query 'Contents[].Key' --output text)\"",
        # Newest first (the names sort in time order); keep the first LOGICAL_KEEP, delete the rest.
        f'old="$(for found in $listing; do case "$found" in {copy_glob}) echo "$found";; esac; done '
        '| sort -r | tail -n "+$((LOGICAL_KEEP + 1))")"',
        'for found in $old; do',
        '  s3 s3api delete-object --bucket "$BACKUP_BUCKET" --key "$found" > /dev/null',
        '  echo "logical-backup: deleted $found"',
        "done",
        f'echo "{SCRIPT_SUCCESS_MARKER} $key"',
        "",
    ])


def check_args(name: str, args: LogicalBackupArgs) -> None:
    """Every rule the constructor enforces, with the message it raises."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"LogicalBackup name: {name!r} names the CronJob and its Jobs; allowed: 1-40 lowercase "
                         "letters, digits and hyphens, starting with a letter and not ending with a hyphen")
    try:
        read_cron(args.schedule)
    except CronError as error:
        raise ValueError(f"LogicalBackupArgs.schedule: {error}") from None
    if args.keep < 1:
        raise ValueError(f"LogicalBackupArgs.keep: {args.keep}; allowed: 1 or more")
    if args.run_as_user < 1:
        raise ValueError(f"LogicalBackupArgs.run_as_user: {args.run_as_user}; must be a non-root uid (1 or more)")
    for field_name in ("timeout_seconds", "starting_deadline_seconds"):
        if getattr(args, field_name) < 1:
            raise ValueError(f"LogicalBackupArgs.{field_name}: {getattr(args, field_name)}; allowed: 1 or more")
    if args.backoff_limit < 0:
        raise ValueError(f"LogicalBackupArgs.backoff_limit: {args.backoff_limit}; allowed: 0 or more")
    if isinstance(args.database_url, str):
        database_environment(args.database_url)
    if isinstance(args.endpoint, str) and ("/" in args.endpoint or not args.endpoint):
        raise ValueError(f"LogicalBackupArgs.endpoint: {args.endpoint!r}; allowed: a host name without scheme or "
                         "path, e.g. <account>.r2.cloudflarestorage.com")

