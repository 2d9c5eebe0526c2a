"""Phase 2: app droplets and a database droplet on a private network, fronted by Cloudflare."""

from __future__ import annotations

import pulumi

from components.backup_store import BackupStore
from components.cloudflare_edge import cloudflare_ip_ranges
from components.data_host import PgBouncerSpec
from components.split_vps import SplitVps, SplitVpsArgs
from components.tags import default_tags
from components.tuning import Machine
from infra.app_spec import app_spec
from infra.backups import offsite_backup_args
from infra.config import Phase2Stack
from infra.edge import build_edge, deferred_origin
from infra.naming import physical_name
from infra.stack_secrets import StackSecretInputs


def build(config: Phase2Stack, secrets: StackSecretInputs, project: str, stack: str, *,
          backup_store: BackupStore) -> None:
    tags = {**config.tags, **default_tags(project, stack, config.phase)}
    edge_config, access, app_tier, database = config.edge, config.droplets, config.app_tier, config.database

    with deferred_origin() as (origin_ip, resolve_origin_ip):
        edge = build_edge(edge_config, origin=origin_ip, record_type="A", project=project, stack=stack,
                          protect=config.protect)

        split = SplitVps("split", SplitVpsArgs(
            region=access.region,
            app=app_spec(config.app, config.worker_count),
            hostname=edge_config.hostname,
            app_size=app_tier.size,
            app_machine=Machine(vcpus=app_tier.vcpus, memory_mib=app_tier.memory_mib),
            app_count=app_tier.count,
            db_size=database.size,
            db_machine=Machine(vcpus=database.vcpus, memory_mib=database.memory_mib),
            ssh_admin_cidrs=list(access.ssh_admin_cidrs),
            ssh_key_fingerprints=list(access.ssh_key_fingerprints),
            alert_emails=list(access.alert_emails),
            alert_slack=list(secrets.alert_slack),
            images=config.services.images(),
            web_source_cidrs=cloudflare_ip_ranges() if edge_config.proxied else ["0.0.0.0/0", "::/0"],
            media_bucket_name=edge.media_bucket_name,
            app_tier_tag=physical_name(project, stack, "app-tier"),
            secret_env=secrets.secret_env,
            tls_mode="origin-certificate" if edge_config.proxied else "acme",
            origin_certificate_pem=edge.origin_certificate_pem,
            origin_private_key_pem=edge.origin_private_key_pem,
            ssh_private_key=secrets.ssh_private_key,
            registry_password=secrets.registry_password,
            volume_size_gib=database.volume_size_gib,
            pgbouncer=PgBouncerSpec(pool_mode=database.pool_mode.value) if database.pgbouncer else None,
            redis_placement=config.redis.placement.value,
            backups=access.backups,
            backup_plan=access.backup_plan.value,
            protect_data=config.protect,
            offsite_backups=offsite_backup_args(config, secrets, backup_store, project, stack),
            project_name=physical_name(project, stack, "app"),
            tags=tags,
        ))
        resolve_origin_ip(split.public_ip)

    pulumi.export("phase", config.phase)
    pulumi.export("app_url", f"https://{edge_config.hostname}")
    pulumi.export("origin_ip", split.public_ip)
    pulumi.export("app_droplet_ids", split.app_droplet_ids)
    pulumi.export("db_droplet_id", split.db_droplet_id)
    pulumi.export("db_private_ip", split.db_private_ip)
    pulumi.export("volume_id", split.volume_id)
    pulumi.export("media_bucket_name", edge.media_bucket_name)
    pulumi.export("database_url", split.database_url)
    pulumi.export("redis_url", split.redis_url)
