"""Phase 1: the whole app on one droplet, fronted by Cloudflare."""

from __future__ import annotations

import pulumi

from components.backup_store import BackupStore
from components.cloudflare_edge import cloudflare_ip_ranges
from components.droplet_parts import EVERYWHERE
from components.single_vps import SingleVps, SingleVpsArgs
from components.tags import default_tags
from components.tuning import Machine
from infra.app_spec import app_spec
from infra.backups import offsite_backup_args
from infra.config import Phase1Stack
from infra.edge import build_edge, deferred_origin
from infra.naming import physical_name
from infra.stack_secrets import StackSecretInputs


def build(config: Phase1Stack, secrets: StackSecretInputs, project: str, stack: str, *,
          backup_store: BackupStore) -> None:
    # phasekit's own tags win: they are how its resources are found and costed.
    tags = {**config.tags, **default_tags(project, stack, config.phase)}
    edge_config, vps_config = config.edge, config.vps

    # The record needs the droplet's address and the droplet needs the edge's origin certificate:
    # the address is promised here and resolved once the droplet exists.
    with deferred_origin() as (origin_ip, resolve_origin_ip):
        edge = build_edge(edge_config, origin=origin_ip, record_type="A", project=project, stack=stack,
                          protect=config.protect)

        vps = SingleVps("vps", SingleVpsArgs(
            region=vps_config.region,
            size=vps_config.size,
            machine=Machine(vcpus=vps_config.vcpus, memory_mib=vps_config.memory_mib),
            app=app_spec(config.app, config.worker_count),
            hostname=edge_config.hostname,
            ssh_admin_cidrs=list(vps_config.ssh_admin_cidrs),
            ssh_key_fingerprints=list(vps_config.ssh_key_fingerprints),
            alert_emails=list(vps_config.alert_emails),
            alert_slack=list(secrets.alert_slack),
            images=config.services.images(),
            web_source_cidrs=cloudflare_ip_ranges() if edge_config.proxied else EVERYWHERE,
            tls_mode="origin-certificate" if edge_config.proxied else "acme",
            origin_certificate_pem=edge.origin_certificate_pem,
            origin_private_key_pem=edge.origin_private_key_pem,
            media_bucket_name=edge.media_bucket_name,
            secret_env=secrets.secret_env,
            ssh_private_key=secrets.ssh_private_key,
            registry_password=secrets.registry_password,
            volume_size_gib=vps_config.volume_size_gib,
            backups=vps_config.backups,
            backup_plan=vps_config.backup_plan.value,
            protect_data=config.protect,
            offsite_backups=offsite_backup_args(config, secrets, backup_store, project, stack),
            project_name=physical_name(project, stack, "app"),
            tags=tags,
        ))
        resolve_origin_ip(vps.public_ip)

    pulumi.export("phase", config.phase)
    pulumi.export("app_url", f"https://{edge_config.hostname}")
    pulumi.export("origin_ip", vps.public_ip)
    pulumi.export("droplet_id", vps.droplet_id)
    pulumi.export("volume_id", vps.volume_id)
    pulumi.export("media_bucket_name", edge.media_bucket_name)
    pulumi.export("database_url", vps.database_url)
    pulumi.export("redis_url", vps.redis_url)
