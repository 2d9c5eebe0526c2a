"""The app's own least-privilege PostgreSQL role, created by a Kubernetes Job with the RDS master credentials.

The master credentials come from one of two places, whichever the instance allows:

- RDS keeps the master password in Secrets Manager (``manage_master_user_password``, the default), so neither
  Pulumi nor the pod spec ever holds it: ``master_secret_arn`` with ``iam_role_arn``;
- with read replicas RDS cannot manage it (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/
  rds-secrets-manager.html, "Limitations"), so Pulumi generates it and it is in Pulumi's state anyway (encrypted):
  ``master_username`` with ``master_password``, which this module writes into a Kubernetes Secret of the app's
  namespace (``<app>-database-role-master-...``) the Job mounts. The password is then also in that Secret (etcd,
  encrypted with the cluster's KMS key when EksCluster's secrets encryption is on), readable by whoever may read
  Secrets in the namespace; the app still never connects as the master user.

Each ``pulumi up`` whose inputs changed runs a Job (before the release Job) that:

1. with Secrets Manager, an init container (the AWS CLI image) reads the master secret, ``{"username": ...,
   "password": ...}`` (the JSON RDS writes, https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/
   rds-secrets-manager.html), through IRSA into a memory-backed emptyDir (``--secret-id`` is the ARN, not a
   secret); with a Kubernetes Secret, the same JSON (``master_credentials_json``) is mounted at the same path from
   the Secret (a Secret volume is memory-backed too) and there is no init container;
2. the main container (the PostgreSQL image) parses it with Perl's JSON::PP, deletes the file (on the read-only
   Secret volume the delete fails, unchecked, and the file goes with the pod), puts user and
   password into ``PGUSER``/``PGPASSWORD`` of psql's own environment (never its command line) and runs
   ``app_role_sql``; the app role's password reaches psql as ``APP_ROLE_PASSWORD`` from a Kubernetes Secret and
   enters the SQL through ``\\getenv`` (psql 15 or later), again never on a command line.

The SQL is idempotent: it creates the role if missing, then sets its password (so a new password rotates it),
its connection limit and ``NOCREATEDB NOCREATEROLE``; creates a schema of the same name owned by the role (so
``"$user"`` in the default ``search_path`` finds it and migrations run as the role own what they create),
grants ``CONNECT``/``TEMPORARY`` on the database and takes the database's default privileges from ``PUBLIC``.
The role is never superuser, cannot create roles or databases, and cannot read ``pg_authid`` (tested against a
real PostgreSQL in tests/test_database_role.py).

The IAM side (``master_secret_reader_policy``): ``secretsmanager:GetSecretValue`` on exactly the master secret's
ARN, plus ``kms:Decrypt`` on the key only when the secret uses a customer managed key; RDS encrypts it by default
with the AWS managed ``aws/secretsmanager`` key, whose key policy already lets any principal of the account that
may read the secret decrypt through Secrets Manager.

Does not create: the IAM role (RdsPostgres creates it, as it owns the secret), the namespace or its
NetworkPolicies (KubernetesApp; the egress policy already allows PostgreSQL in the VPC and HTTPS for Secrets
Manager and STS).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

AWS_CLI_IMAGE = ("public.ecr.aws/aws-cli/aws-cli:2.37.4"
                 "@sha256:fdd8d1fcbea9c371678dee5a40df8b178c7a781b4586605756ee28114c97ead6")
"""The AWS CLI v2 image (Amazon Linux, with ``sh``); reads the master secret through IRSA. Pinned by digest (the
multi-architecture manifest list), like every image phasekit runs, so a re-pushed tag changes nothing."""

PSQL_IMAGE = "postgres:17-bookworm@sha256:4f736ae292687621d4dbe0d499ffd024a36bd2ee7d8ca6f2ccd4c800f047b394"
"""Debian's PostgreSQL image, pinned by digest: psql 17 (``\\getenv`` needs 15+; it talks to servers back to 9.2)
and Perl with JSON::PP (postgresql-common depends on perl and libjson-perl)."""

CREDENTIALS_DIR = "/run/database-master"
CREDENTIALS_FILE_NAME = "master.json"
CREDENTIALS_FILE = f"{CREDENTIALS_DIR}/{CREDENTIALS_FILE_NAME}"
CREDENTIALS_FILE_MODE = 0o440
"""Owner and group read: the kubelet makes the pod's ``fsGroup`` (the Job's uid's group) the file's group."""
SQL_DIR = "/etc/database-role"
SQL_FILE_NAME = "app-role.sql"
HOME_DIR = "/tmp"
PASSWORD_ENV = "APP_ROLE_PASSWORD"
JOB_COMPONENT = "database-role"
JOB_DEADLINE_SECONDS = 300
JOB_BACKOFF_LIMIT = 2
"""Retrying is safe: every statement is idempotent (unlike a migration)."""

AWAIT_MARGIN_SECONDS = 120

_PG_ROLE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_RESERVED_ROLES = frozenset({"public", "rdsadmin", "rds_superuser", "postgres"})


def role_job_service_account(app_name: str) -> str:
    """The ServiceAccount the Job runs as; the IAM role trusts exactly ``system:serviceaccount:<ns>:<this>``."""
    return f"{app_name}-database-role"


def role_sql_config_map(app_name: str) -> str:
    """The ConfigMap holding ``app_role_sql`` (no secret in it)."""
    return f"{app_name}-database-role-sql"


def check_role_name(role: str, master_username: str | None = None, label: str = "app role name") -> None:
    """Raise unless ``role`` can be the app's role (lowercase, so it needs no quoting anywhere); ``label`` names
    the argument in the message."""
    if not _PG_ROLE.fullmatch(role) or role.startswith("pg_") or role in _RESERVED_ROLES:
        raise ValueError(f"{label}: {role!r}; allowed: 1-63 lowercase letters, digits and underscores, "
                         "starting with a letter, not pg_*, public, postgres, rdsadmin or rds_superuser")
    if master_username is not None and role == master_username.lower():
        raise ValueError(f"{label}: {role!r} is the master user's name; the app needs a role of its own")


def app_role_sql(role: str, database: str, connection_limit: int) -> str:
    """The psql script that creates or updates the app role (run as the RDS master user, twice is a no-op
    apart from setting the password again). The password comes from ``$APP_ROLE_PASSWORD``.

    The master user on RDS is not a superuser (it holds ``rds_superuser``, ``CREATEROLE`` and ``CREATEDB``), so
    the script never names ``SUPERUSER``/``REPLICATION``/``BYPASSRLS`` (only a superuser may, even to turn them
    off; ``CREATE ROLE`` leaves them off), and makes the master a member of the role, which ``CREATE SCHEMA ...
    AUTHORIZATION`` requires (https://www.postgresql.org/docs/current/sql-createschema.html)."""
    check_role_name(role)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", database):
        raise ValueError(f"database name: {database!r}; allowed: 1-63 letters, digits and underscores")
    if connection_limit < 1:
        raise ValueError(f"connection limit: {connection_limit}; allowed: 1 or more")
    return "\n".join([
        "\\set ON_ERROR_STOP on",
        f"\\getenv app_password {PASSWORD_ENV}",
        "\\if :{?app_password}",
        "\\else",
        f"DO $$ BEGIN RAISE EXCEPTION '{PASSWORD_ENV} is not set'; END $$;",
        "\\endif",
        "BEGIN;",
        # \gexec runs the generated statement only when the role does not exist yet (CREATE ROLE has no IF NOT
        # EXISTS).
        f"SELECT 'CREATE ROLE \"{role}\"' WHERE NOT EXISTS "
        f"(SELECT FROM pg_catalog.pg_roles WHERE rolname = '{role}') \\gexec",
        f"ALTER ROLE \"{role}\" WITH LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT {connection_limit} "
        "PASSWORD :'app_password';",
        f"GRANT \"{role}\" TO CURRENT_USER;",
        f"CREATE SCHEMA IF NOT EXISTS \"{role}\" AUTHORIZATION \"{role}\";",
        f"ALTER SCHEMA \"{role}\" OWNER TO \"{role}\";",
        f"REVOKE ALL ON DATABASE \"{database}\" FROM PUBLIC;",
        f"GRANT CONNECT, TEMPORARY ON DATABASE \"{database}\" TO \"{role}\";",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        f"ALTER ROLE \"{role}\" IN DATABASE \"{database}\" SET search_path = \"{role}\";",
        "COMMIT;",
        stranded_data_guard(role),
        "",
    ])


def stranded_data_guard(role: str) -> str:
    """A statement that fails the Job when the app's data would be left out of its sight: tables in ``public``
    (the master user's, from before the app had a role of its own) and none in the role's schema. The app connects
    with ``search_path`` = its schema, so it would start on empty tables that its release command creates, and
    every write from then on would split from the data. Failing here, before the release Job and the rollout
    (which wait for this Job), keeps the old pods serving; the role already exists (committed above), so
    ``phasekit db adopt --role <role>`` can move ``public`` to it at once, and the next ``pulumi up`` passes.
    Tables of extensions (``pg_depend`` type ``e``, e.g. PostGIS's ``spatial_ref_sys``) are not the app's data."""
    check_role_name(role)
    tables_in = ("SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p') AND NOT EXISTS (SELECT FROM "
                 "pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid "
                 "AND d.deptype = 'e')")
    return "\n".join([
        "DO $$",
        "DECLARE stranded bigint;",
        "BEGIN",
        f"  SELECT ({tables_in.format(schema=repr('public'))}) INTO stranded;",
        f"  IF stranded > 0 AND ({tables_in.format(schema=repr(role))}) = 0 THEN",
        f"    RAISE EXCEPTION 'schema public holds % table(s) and schema {role} none: the app connects as {role} "
        f"and would start on empty tables while its data stays in public. Move the data first: phasekit db adopt "
        f"--target <master URL> --role {role} (docs/phase3-operations.md, data tier), then pulumi up again; if "
        f"public holds a phasekit db migrate --no-freeze rehearsal, finish with the real phasekit db migrate "
        f"--target-role {role} instead, which adopts', stranded;",
        "  END IF;",
        "END $$;",
    ])


def fetch_master_secret_command() -> list[str]:
    """The init container's command: the secret's JSON into the memory-backed volume, readable by its owner only.
    The ARN comes from ``$MASTER_SECRET_ARN`` (not a secret; the shell quotes it)."""
    return ["sh", "-ec", "umask 077; aws secretsmanager get-secret-value --secret-id \"$MASTER_SECRET_ARN\" "
            f"--query SecretString --output text > {CREDENTIALS_FILE}"]


RUN_SQL_PERL = (
    "use strict; use warnings; use JSON::PP;"
    " my ($file, $sql) = @ARGV;"
    " open(my $fh, '<', $file) or die \"cannot read $file: $!\\n\";"
    " my $secret = JSON::PP::decode_json(do { local $/; <$fh> }); close($fh); unlink($file);"
    " $ENV{PGUSER} = $secret->{username}; $ENV{PGPASSWORD} = $secret->{password};"
    " exec('psql', '-X', '-v', 'ON_ERROR_STOP=1', '-f', $sql) or die \"cannot run psql: $!\\n\";"
)
"""Parses the master secret, deletes its file and execs psql with the credentials in psql's environment only."""


def run_sql_command() -> list[str]:
    """The main container's command (no secret in it: the credentials come from the file, the app password
    from the environment)."""
    return ["perl", "-e", RUN_SQL_PERL, CREDENTIALS_FILE, f"{SQL_DIR}/{SQL_FILE_NAME}"]


def connection_environment(port: int, database: str) -> dict[str, str]:
    """libpq's variables for the master connection besides ``PGHOST``: TLS required (the parameter group forces
    it anyway)."""
    return {"PGPORT": str(port), "PGDATABASE": database, "PGSSLMODE": "require",
            "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "phasekit-database-role", "HOME": HOME_DIR}


def master_credentials_json(username: str, password: str) -> str:
    """The master credentials as RDS writes them into its Secrets Manager secret (``{"username", "password"}``), so
    the Job parses a Kubernetes Secret exactly as it parses RDS's secret."""
    return json.dumps({"username": username, "password": password})


def master_secret_reader_policy(secret_arn: str, kms_key_arn: str | None = None) -> str:
    """The Job's IAM policy: read exactly this secret; decrypt only with a customer managed key (the default
    ``aws/secretsmanager`` key needs no grant: Secrets Manager decrypts on the caller's behalf)."""
    statements: list[dict] = [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn}]
    if kms_key_arn:
        statements.append({
            "Effect": "Allow", "Action": "kms:Decrypt", "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{secret_arn.split(':')[3]}"
                                                             ".amazonaws.com"}},
        })
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def role_job_name(app_name: str, payload: Mapping[str, object]) -> str:
    """``<app>-db-role-<10 hex>``: a new Job (so it runs again) exactly when the SQL, images, target or password
    change. The password enters only as a SHA-256, truncated."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"{app_name}-db-role-{digest[:10]}"


@dataclass
class DatabaseRoleJobArgs:
    role_name: str
    """The app's PostgreSQL role (and schema) name; not the master user's."""

    role_password: pulumi.Input[str]
    """The app role's password; a secret (a ``random.RandomPassword``)."""

    host: pulumi.Input[str]
    """The primary's address."""

    database: str
    """The database the role may connect to."""

    connection_limit: int
    """The role's ``CONNECTION LIMIT``: at most what the app's pods and jobs open, below ``max_connections`` so
    the master user keeps slots."""

    master_secret_arn: pulumi.Input[str] | None = None
    """ARN of RDS's master-user secret (``RdsPostgres.master_secret_arn``) when RDS manages the master password;
    needs ``iam_role_arn`` and ``aws_region``. Exclusive with ``master_password``."""

    iam_role_arn: pulumi.Input[str] | None = None
    """IRSA role allowed to read only that secret (``RdsPostgres.master_secret_reader_role_arn``)."""

    aws_region: str | None = None
    """Region of the secret (the AWS CLI needs it; the IRSA webhook may not set it)."""

    master_username: pulumi.Input[str] | None = None
    """The master user (``RdsPostgres.username``) when Pulumi generated the master password; with
    ``master_password``."""

    master_password: pulumi.Input[str] | None = None
    """The generated master password (``RdsPostgres.password``, a secret) when RDS cannot manage it (read replicas):
    written into a Kubernetes Secret the Job mounts. Exclusive with ``master_secret_arn``."""

    port: int = 5432
    aws_cli_image: str = AWS_CLI_IMAGE
    psql_image: str = PSQL_IMAGE


def check_master_credentials(args: DatabaseRoleJobArgs) -> None:
    """Raise unless the Job gets the master credentials from exactly one place, with what that place needs."""
    if args.master_secret_arn is not None and args.master_password is not None:
        raise ValueError("DatabaseRoleJobArgs: master_secret_arn (RDS manages the master password) and "
                         "master_password (Pulumi generated it) are exclusive; pass one")
    if args.master_secret_arn is not None:
        for field_name in ("iam_role_arn", "aws_region"):
            if getattr(args, field_name) is None:
                raise ValueError(f"DatabaseRoleJobArgs.{field_name}: required with master_secret_arn (the Job reads "
                                 "the secret through IRSA)")
    elif args.master_password is None:
        raise ValueError("DatabaseRoleJobArgs: no master credentials; pass master_secret_arn, iam_role_arn and "
                         "aws_region (RDS manages the master password) or master_username and master_password")
    elif args.master_username is None:
        raise ValueError("DatabaseRoleJobArgs.master_username: required with master_password")


def database_role_job(name: str, args: DatabaseRoleJobArgs, *, namespace: pulumi.Input[str],
                      labels: Mapping[str, str], security: tuple[k8s.core.v1.PodSecurityContextArgs,
                                                                 k8s.core.v1.SecurityContextArgs],
                      depends_on: Sequence[pulumi.Resource], parent: pulumi.Resource) -> k8s.batch.v1.Job:
    """The ServiceAccount (annotated with the IAM role when the secret is in Secrets Manager), the app password's
    Secret, the master credentials' Secret (when Pulumi generated the password), the SQL's ConfigMap and the Job
    that runs it, all in ``namespace``; returns the Job so the release Job can wait for it."""
    check_role_name(args.role_name)
    check_master_credentials(args)
    sql = app_role_sql(args.role_name, args.database, args.connection_limit)
    child = pulumi.ResourceOptions(parent=parent)
    account_name = role_job_service_account(name)

    def metadata(object_name: pulumi.Input[str] | None = None, **extra) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=namespace, labels=dict(labels), **extra)

    in_secrets_manager = args.master_secret_arn is not None
    account = k8s.core.v1.ServiceAccount(
        f"{name}-database-role-account", metadata=metadata(account_name, annotations={
            "eks.amazonaws.com/role-arn": args.iam_role_arn} if in_secrets_manager else None),
        # No Kubernetes API token: the IRSA webhook adds its own projected ServiceAccountToken volume (audience
        # sts.amazonaws.com) whatever automountServiceAccountToken says (aws/amazon-eks-pod-identity-webhook,
        # pkg/handler/handler.go updatePodSpec).
        automount_service_account_token=False, opts=child)
    password_secret = k8s.core.v1.Secret(
        f"{name}-database-role-password", metadata=metadata(), type="Opaque",
        string_data=pulumi.Output.secret(pulumi.Output.from_input(args.role_password).apply(
            lambda password: {PASSWORD_ENV: password})), opts=child)
    script = k8s.core.v1.ConfigMap(f"{name}-database-role-sql", metadata=metadata(role_sql_config_map(name)),
                                   data={SQL_FILE_NAME: sql}, opts=child)
    # Auto-named, so new credentials give a new Secret the Job then mounts.
    master = None if in_secrets_manager else k8s.core.v1.Secret(
        f"{name}-database-role-master", metadata=metadata(), type="Opaque",
        string_data=pulumi.Output.secret(pulumi.Output.all(args.master_username, args.master_password).apply(
            lambda values: {CREDENTIALS_FILE_NAME: master_credentials_json(values[0], values[1])})), opts=child)
    # The master secret's ARN, or a SHA-256 of the Kubernetes Secret's credentials: either way a new source reruns
    # the Job, and no password enters the name.
    source = args.master_secret_arn if in_secrets_manager else pulumi.Output.all(
        args.master_username, args.master_password).apply(
        lambda values: hashlib.sha256(master_credentials_json(values[0], values[1]).encode()).hexdigest())
    job_name = pulumi.Output.unsecret(pulumi.Output.all(
        args.role_password, source, args.host, args.iam_role_arn if in_secrets_manager else "").apply(
        lambda values: role_job_name(name, {
            "sql": sql, "images": [args.aws_cli_image, args.psql_image], "password": hashlib.sha256(
                values[0].encode()).hexdigest(), "secret": values[1], "host": values[2], "role": values[3]})))
    return k8s.batch.v1.Job(
        f"{name}-database-role",
        metadata=metadata(job_name, annotations={
            "pulumi.com/timeoutSeconds": str(JOB_DEADLINE_SECONDS + AWAIT_MARGIN_SECONDS),
            "pulumi.com/replaceUnready": "true"}),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=JOB_BACKOFF_LIMIT,
            active_deadline_seconds=JOB_DEADLINE_SECONDS,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels={
                    **labels, "app.kubernetes.io/name": name, "app.kubernetes.io/component": JOB_COMPONENT}),
                spec=_role_pod_spec(args, name, password_secret.metadata.apply(lambda meta: meta.name),
                                    master.metadata.apply(lambda meta: meta.name) if master is not None else None,
                                    security),
            ),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[
            *depends_on, account, password_secret, script, *([master] if master is not None else [])]),
    )


def _role_pod_spec(args: DatabaseRoleJobArgs, app_name: str, password_secret_name: pulumi.Output[str],
                   master_secret_name: pulumi.Output[str] | None,
                   security: tuple[k8s.core.v1.PodSecurityContextArgs, k8s.core.v1.SecurityContextArgs],
                   ) -> k8s.core.v1.PodSpecArgs:
    """The pod: with ``master_secret_name`` (a Kubernetes Secret holding the master credentials) the file is that
    Secret's projection and there is no init container; otherwise the init container fetches it from Secrets
    Manager."""
    pod_security, container_security = security
    resources = k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "100m", "memory": "128Mi"},
                                                     limits={"memory": "256Mi"})
    credentials = k8s.core.v1.VolumeMountArgs(name="credentials", mount_path=CREDENTIALS_DIR)
    home = k8s.core.v1.VolumeMountArgs(name="tmp", mount_path=HOME_DIR)
    connection = [k8s.core.v1.EnvVarArgs(name="PGHOST", value=args.host)] + [
        k8s.core.v1.EnvVarArgs(name=key, value=value)
        for key, value in connection_environment(args.port, args.database).items()]
    return k8s.core.v1.PodSpecArgs(
        service_account_name=role_job_service_account(app_name),
        restart_policy="Never",
        enable_service_links=False,
        security_context=pod_security,
        init_containers=None if master_secret_name is not None else [k8s.core.v1.ContainerArgs(
            name="fetch-master-secret",
            image=args.aws_cli_image,
            command=fetch_master_secret_command(),
            env=[k8s.core.v1.EnvVarArgs(name="MASTER_SECRET_ARN", value=args.master_secret_arn),
                 k8s.core.v1.EnvVarArgs(name="AWS_REGION", value=args.aws_region),
                 k8s.core.v1.EnvVarArgs(name="HOME", value=HOME_DIR)],
            resources=resources, security_context=container_security, volume_mounts=[credentials, home],
        )],
        containers=[k8s.core.v1.ContainerArgs(
            name="create-app-role",
            image=args.psql_image,
            command=run_sql_command(),
            env=[*connection, k8s.core.v1.EnvVarArgs(
                name=PASSWORD_ENV, value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=password_secret_name, key=PASSWORD_ENV)))],
            resources=resources, security_context=container_security,
            volume_mounts=[credentials, home, k8s.core.v1.VolumeMountArgs(name="sql", mount_path=SQL_DIR,
                                                                          read_only=True)],
        )],
        volumes=[
            # Memory-backed either way (Secret volumes are tmpfs): the master credentials never touch the node's
            # disk, and vanish with the pod.
            k8s.core.v1.VolumeArgs(name="credentials", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                medium="Memory", size_limit="1Mi")) if master_secret_name is None else k8s.core.v1.VolumeArgs(
                name="credentials", secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name=master_secret_name, default_mode=CREDENTIALS_FILE_MODE,
                    items=[k8s.core.v1.KeyToPathArgs(key=CREDENTIALS_FILE_NAME, path=CREDENTIALS_FILE_NAME)])),
            k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi")),
            k8s.core.v1.VolumeArgs(name="sql", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=role_sql_config_map(app_name))),
        ],
    )
