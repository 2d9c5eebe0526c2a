"""Phase 3: the app on EKS, PostgreSQL on RDS Multi-AZ, Redis on ElastiCache, behind Cloudflare and an ALB.

Backups: RDS keeps its automated backups with point-in-time restore for ``database.backupRetentionDays`` (the
config model refuses fewer than 7, infra/config_phase3.py), and a CronJob (components/logical_backup.py) writes an
encrypted ``pg_dump`` to ``logical/`` in the stack's R2 backups bucket on ``backups.logicalSchedule``, keeping
``backups.logicalKeep`` copies: a copy outside AWS, in the layout every phase shares. With
``cluster.containerLogs`` the copy's failures (and, for a daily schedule, a day without a copy) reach the alert
topic through CloudWatch alarms on its log lines; without it, only the CronJob's failed Jobs show them.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.alert_topic import AlertTopic, AlertTopicArgs
from components.aws_network import AwsNetwork, AwsNetworkArgs
from components.backup_store import BackupStore
from components.cloudflare_edge import CloudflareEdge, cloudflare_ip_ranges
from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.database_role import DatabaseRoleJobArgs, role_job_service_account
from components.eks_cluster import (
    EksCluster,
    EksClusterArgs,
    check_against_the_running_cluster,
    container_log_group_name,
)
from components.elasticache_redis import ElastiCacheRedis, ElastiCacheRedisArgs
from components.kubernetes_app import KubernetesApp, KubernetesAppArgs
from components.logical_backup import (
    LogicalBackup,
    LogicalBackupAlarms,
    LogicalBackupAlarmsArgs,
    LogicalBackupArgs,
)
from components.public_load_balancer import PublicLoadBalancer, PublicLoadBalancerArgs
from components.rds_postgres import (
    MasterSecretReader,
    RdsPostgres,
    RdsPostgresArgs,
    check_against_the_running_instance,
)
from components.tags import default_tags, kubernetes_labels
from infra.app_spec import app_spec
from infra.config import Phase3Stack
from infra.edge import build_edge, deferred_origin
from infra.errors import ConfigError
from infra.naming import physical_name
from infra.stack_secrets import StackSecretInputs

APP_NODE_PORT = 30080
"""The Service's fixed NodePort, which the load balancer's target group forwards to."""

APP_NAMESPACE = "app"
APP_NAME = "app"
"""The KubernetesApp's name (its logical names and the database-role ServiceAccount derive from it)."""

APP_DATABASE = "app"
"""The database RDS creates and the app role may connect to (RdsPostgresArgs' default, written once here)."""


LOGICAL_BACKUP_NAME = "logical-backup"


def eks_cluster_name(project: str, stack: str) -> str:
    """The stack's EKS cluster name (also what the deploy job and ``phasekit render`` look the cluster up by)."""
    return physical_name(project, stack, "eks", max_length=100)


def preflight(config: Phase3Stack, project: str, stack: str) -> dict[str, Any]:
    """Checks against what already runs in the account, before any resource of the stack is registered (then
    nothing is created when one refuses, even under ``pulumi up --skip-preview``): the EKS version step and a
    private-only first deploy (``check_against_the_running_cluster``), and the PostgreSQL major
    (``check_against_the_running_instance``). Returns ``build``'s ``aws_provider``: the explicit provider for
    ``phasekit:aws.region`` the lookups ran with (a provider is no cloud resource). ``build`` turns the components'
    own copies of these checks off, so each lookup is made once."""
    # An explicit provider for phasekit:aws.region: the ambient aws:region (or AWS_REGION) can never send the
    # stack to another region than the one its zones and kubeconfig name.
    aws_provider = aws.Provider("aws", region=config.aws.region)
    lookup = pulumi.InvokeOptions(provider=aws_provider)
    try:
        check_against_the_running_cluster(eks_cluster_name(project, stack), config.cluster.version,
                                          config.cluster.endpoint_public_access_cidrs, lookup)
        check_against_the_running_instance(rds_identifier(project, stack), config.database.engine_version,
                                           config.database.read_replicas, lookup)
    except ValueError as refused:
        raise ConfigError(str(refused)) from None
    return {"aws_provider": aws_provider}


def rds_identifier(project: str, stack: str) -> str:
    return physical_name(project, stack, "db", max_length=53)


def build(config: Phase3Stack, secrets: StackSecretInputs, project: str, stack: str, *,
          backup_store: BackupStore, aws_provider: aws.Provider) -> None:
    """``backup_store``: the stack's R2 backups bucket and its scoped credentials (infra/program.py creates it
    for every phase); the logical copy goes there. ``aws_provider``: ``preflight``'s."""
    tags = {**config.tags, **default_tags(project, stack, config.phase)}
    region, cluster_config, workload = config.aws, config.cluster, config.workload
    nodes, database_config, cache_config = cluster_config.node_group, config.database, config.cache
    cluster_name = eks_cluster_name(project, stack)
    database_id = rds_identifier(project, stack)
    app = app_spec(config.app, config.worker_count)

    on_aws = pulumi.ResourceOptions(providers=[aws_provider])

    alerts = AlertTopic("alerts", AlertTopicArgs(emails=list(config.alert_emails), tags=tags), opts=on_aws)

    network = AwsNetwork("network", AwsNetworkArgs(
        availability_zones=list(region.availability_zones),
        cidr_block=region.vpc_cidr,
        nat_strategy=region.nat_strategy.value,
        cluster_name=cluster_name,
        tags=tags,
    ), opts=on_aws)

    cluster = EksCluster("cluster", EksClusterArgs(
        cluster_name=cluster_name,
        version=cluster_config.version,
        support_type=cluster_config.support_type,
        region=region.region,
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        endpoint_public_access_cidrs=list(cluster_config.endpoint_public_access_cidrs),
        api_access_security_group_ids=list(cluster_config.api_access_security_group_ids),
        admin_principal_arns=list(cluster_config.admin_principal_arns),
        node_instance_types=list(nodes.instance_types),
        node_min_size=nodes.min_size,
        node_desired_size=nodes.desired_size,
        node_max_size=nodes.max_size,
        node_disk_size_gib=nodes.disk_size_gib,
        track_latest_ami=nodes.track_latest_ami,
        container_logs=cluster_config.container_logs,
        check_running_cluster=False,  # preflight did, before the stack's first resource
        alarm_topic_arn=alerts.topic_arn,
        tags=tags,
    ), opts=on_aws)

    ClusterAutoscaler("autoscaler", ClusterAutoscalerArgs(
        cluster_name=cluster_name,
        kubernetes_version=cluster_config.version,
        region=region.region,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_provider_url=cluster.oidc_provider_url,
        tags=tags,
        labels=kubernetes_labels(tags),
    ), opts=pulumi.ResourceOptions(providers=[aws_provider, cluster.provider]))

    database = RdsPostgres("database", RdsPostgresArgs(
        identifier=database_id,
        vpc_id=network.vpc_id,
        subnet_group_name=network.db_subnet_group_name,
        client_security_group_id=cluster.node_security_group_id,
        instance_class=database_config.instance_class,
        # The HPA maximum plus a rollout's surge, each worker's whole pool, the release Job, operators,
        # headroom and PostgreSQL's reserved slots (Phase3Stack.connection_demand).
        max_connections=config.connection_demand.max_connections,
        engine_version=database_config.engine_version,
        allocated_storage_gib=database_config.storage_gib,
        max_allocated_storage_gib=database_config.max_storage_gib,
        multi_az=database_config.multi_az,
        backup_retention_days=database_config.backup_retention_days,
        read_replica_count=database_config.read_replicas,
        engine_lifecycle_support=database_config.engine_lifecycle_support,
        check_running_instance=False,  # preflight did, before the stack's first resource
        database_name=APP_DATABASE,
        # RDS keeps the master password in Secrets Manager (never in state); it cannot create read replicas of
        # such an instance, so with replicas the master password is generated (in state, encrypted). The app
        # connects as its own role either way.
        manage_master_password=database_config.read_replicas == 0,
        master_secret_reader=MasterSecretReader(
            oidc_provider_arn=cluster.oidc_provider_arn, oidc_provider_url=cluster.oidc_provider_url,
            namespace=APP_NAMESPACE, service_account=role_job_service_account(APP_NAME)),
        alarm_topic_arn=alerts.topic_arn,
        protect=config.protect,
        tags=tags,
    ), opts=on_aws)

    cache = ElastiCacheRedis("cache", ElastiCacheRedisArgs(
        replication_group_id=physical_name(project, stack, "cache", max_length=40),
        vpc_id=network.vpc_id,
        subnet_group_name=network.cache_subnet_group_name,
        client_security_group_id=cluster.node_security_group_id,
        engine=cache_config.engine.value,
        node_type=cache_config.node_type,
        node_count=cache_config.node_count,
        snapshot_retention_days=cache_config.snapshot_retention_days,
        alarm_topic_arn=alerts.topic_arn,
        protect=config.protect,
        tags=tags,
    ), opts=on_aws)

    # The record needs the load balancer's name and the load balancer needs the edge's origin certificate.
    with deferred_origin() as (origin, resolve_origin):
        edge = build_edge(config.edge, origin=origin, record_type="CNAME", project=project, stack=stack,
                          protect=config.protect)

        ingress = PublicLoadBalancer("ingress", PublicLoadBalancerArgs(
            vpc_id=network.vpc_id,
            public_subnet_ids=network.public_subnet_ids,
            source_cidrs=cloudflare_ip_ranges(),
            certificate_pem=edge.origin_certificate_pem,
            private_key_pem=edge.origin_private_key_pem,
            target_node_port=APP_NODE_PORT,
            node_security_group_id=cluster.node_security_group_id,
            target_autoscaling_group_name=cluster.node_autoscaling_group_name,
            health_path=config.app.health_path,
            access_logs=config.load_balancer.access_logs,
            access_log_retention_days=config.load_balancer.access_log_retention_days,
            region=region.region,
            alarm_topic_arn=alerts.topic_arn,
            tags=tags,
        ), opts=on_aws)
        resolve_origin(ingress.dns_name)

    workload_app = KubernetesApp(APP_NAME, KubernetesAppArgs(
        app=app,
        namespace=APP_NAMESPACE,
        database_url=database.database_url,
        redis_url=cache.redis_url,
        media_bucket=edge.media_bucket_name,
        secret_env=secrets.secret_env,
        registry_password=secrets.registry_password,
        min_replicas=workload.min_replicas,
        max_replicas=workload.max_replicas,
        cpu_request=workload.cpu_request,
        memory_request=workload.memory_request,
        memory_limit=workload.memory_limit,
        node_port=APP_NODE_PORT,
        run_as_user=workload.run_as_user,
        writable_paths=list(workload.writable_paths),
        vpc_cidr=region.vpc_cidr,
        database_role=_database_role(database, region.region),
        labels=kubernetes_labels(tags),
        hostname=config.edge.hostname,
    ), opts=pulumi.ResourceOptions(provider=cluster.provider))

    _logical_backup(config, secrets, backup_store, database=database, app=workload_app, cluster=cluster,
                    cluster_name=cluster_name, alert_topic_arn=alerts.topic_arn, aws_provider=aws_provider,
                    tags=tags, database_identifier=database_id)

    _export(config, ingress=ingress, cluster=cluster, app=workload_app, database=database, cache=cache,
            alerts=alerts, edge=edge)


def _database_role(database: RdsPostgres, region: str) -> DatabaseRoleJobArgs:
    """The app role's Job: it reads the master credentials from RDS's secret when RDS manages them, otherwise
    (read replicas) from the generated password, which KubernetesApp hands to it through a Kubernetes Secret."""
    managed = database.master_secret_arn is not None
    return DatabaseRoleJobArgs(
        role_name=database.app_role_name,
        role_password=database.app_role_password,
        master_secret_arn=database.master_secret_arn,
        iam_role_arn=database.master_secret_reader_role_arn,
        aws_region=region if managed else None,
        master_username=None if managed else database.username,
        master_password=database.password,
        host=database.address,
        database=APP_DATABASE,
        connection_limit=database.app_connection_limit,
    )


def _export(config: Phase3Stack, *, ingress: PublicLoadBalancer, cluster: EksCluster, app: KubernetesApp,
            database: RdsPostgres, cache: ElastiCacheRedis, alerts: AlertTopic, edge: CloudflareEdge) -> None:
    pulumi.export("phase", config.phase)
    pulumi.export("app_url", f"https://{config.edge.hostname}")
    pulumi.export("origin_hostname", ingress.dns_name)
    pulumi.export("cluster_name", cluster.cluster_name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("namespace", app.namespace)
    pulumi.export("database_address", database.address)
    pulumi.export("cache_primary_address", cache.primary_endpoint_address)
    pulumi.export("alert_topic_arn", alerts.topic_arn)
    pulumi.export("media_bucket_name", edge.media_bucket_name)
    pulumi.export("database_url", database.database_url)
    pulumi.export("redis_url", cache.redis_url)


def _logical_backup(config: Phase3Stack, secrets: StackSecretInputs, backup_store: BackupStore, *,
                    database: RdsPostgres, app: KubernetesApp, cluster: EksCluster, cluster_name: str,
                    alert_topic_arn: pulumi.Output[str], aws_provider: aws.Provider, tags: dict[str, str],
                    database_identifier: str) -> None:
    """The encrypted pg_dump CronJob into the backups bucket, and its alarms when container logs reach CloudWatch."""
    LogicalBackup(LOGICAL_BACKUP_NAME, LogicalBackupArgs(
        # The app's namespace output: the CronJob and its Secret wait until the namespace exists.
        namespace=app.namespace,
        database_url=database.database_url,
        backup_passphrase=secrets.backup_passphrase,
        bucket=backup_store.bucket_name,
        endpoint=backup_store.endpoint,
        access_key_id=backup_store.access_key_id,
        secret_access_key=backup_store.secret_access_key,
        schedule=config.backups.logical_schedule,
        keep=config.backups.logical_keep,
        vpc_cidr=config.aws.vpc_cidr,
        run_as_user=config.workload.run_as_user,
        labels=kubernetes_labels(tags),
        # The role Job refuses while the app's data is still the master user's in public (stranded_data_guard):
        # until it passes, the copy keeps the credentials it had instead of dumping as a role that cannot read them.
        credentials_after=[app.database_role_job] if app.database_role_job is not None else [],
    ), opts=pulumi.ResourceOptions(provider=cluster.provider))
    if config.cluster.container_logs:
        # Only shipped logs can reach the alert topic (Job status is no CloudWatch metric); see
        # components/logical_backup.py. The log group is EksCluster's, hence the dependency.
        LogicalBackupAlarms(f"{LOGICAL_BACKUP_NAME}-alarms", LogicalBackupAlarmsArgs(
            log_group_name=container_log_group_name(cluster_name, "application"),
            topic_arn=alert_topic_arn,
            # Beside the database's own alarms (RdsPostgres names them "<identifier>-<what>").
            name_prefix=database_identifier,
            schedule=config.backups.logical_schedule,
            tags=tags,
        ), opts=pulumi.ResourceOptions(providers=[aws_provider], depends_on=[cluster]))
