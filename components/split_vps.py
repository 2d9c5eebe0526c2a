"""SplitVps: app droplets and a database droplet on a private DigitalOcean VPC (phase 2).

Creates
- a VPC; a tag naming this stack's app tier (the database firewall admits the tag, so a new app droplet is
  admitted without editing the rule);
- the database droplet (Ubuntu 24.04) with a protected block-storage volume holding PostgreSQL's data and
  Redis' persistence; PostgreSQL, Redis and optional PgBouncer listen on its VPC address and loopback
  only (``components.data_host``), with generated passwords;
- ``app_count`` app droplets, each running the reverse proxy and the app (``components.compose_stack`` in
  the ``web`` role), receiving the same app contract as phase 1 with ``DATABASE_URL`` and ``REDIS_URL``
  pointing at the database droplet's VPC address;
- firewalls: the database droplet admits 22 from the admin CIDRs and the database/Redis ports from the app
  tier's tag only; app droplets admit 22 from the admin CIDRs and 80/443 from the load balancer (count > 1)
  or from ``web_source_cidrs`` (count = 1); every droplet's egress is DNS, NTP, HTTP(S) and ICMP, plus, for
  the app tier, the database droplet's ports;
- with count > 1, a load balancer passing TLS through to the droplets (their Caddy presents the Cloudflare
  origin certificate, so SSL mode Full (strict) keeps working), health-checking ``app.health_path`` over
  HTTP on port 80, and itself admitting only Cloudflare's IPv4 ranges; with count = 1, a reserved IP;
- CPU, memory and disk alerts for the app tier and for the database droplet (DigitalOcean's disk metric
  is the root disk's; the data volume is checked on the host, see ``data_host``), and an uptime check with a
  ``down`` alert on the public URL, all to the alert recipients (e-mails and Slack channels);
- with count = 1, the reserved IP in the project through a ``ProjectResources`` of its own, which its assignment
  depends on, so that going to a load balancer unassigns it before it leaves the project (``_reserved_ip_entry``);
- an ED25519 SSH host key per droplet, given to it at first boot and pinned by every rollout;
- with ``offsite_backups``: continuous WAL archiving plus scheduled pgBackRest backups and a Redis snapshot from
  the database droplet to the stack's backups bucket (``components.backups``), and a DigitalOcean uptime check on
  ``https://<hostname>/.well-known/phasekit/backup`` whose ``down`` alert mails the alert e-mails, and one on
  ``/.well-known/phasekit/volume``, answered while the data volume is under 80 % full. The database
  droplet has no public proxy, so its status server listens on the VPC only and every app droplet's Caddy
  proxies that path to it (``components.data_host`` says why this route);
- one rollout per droplet: the database host first, then the app droplets one at a time, each waiting for
  its health check before the next starts, so the site is never fully down during a deploy. The first app
  droplet runs the release command before it rolls.

Does not create DNS, certificates or buckets (CloudflareEdge does), nor SSH keys.

How changes land (docs/changes.md is the user-facing version):
- new image, env, secrets, tuning, PgBouncer on/off: rollouts re-run over SSH; no droplet is replaced.
- ``app_count`` up or down: droplets are added or removed from the end; going from 1 to 2 swaps the
  reserved IP for a load balancer (the Cloudflare record follows); the database is untouched.
- app or database size: resized in place with a hard power-off of that droplet (``single_vps`` says what that
  means for PostgreSQL and Redis); the database droplet powers off only for its own size.
- ``user_data`` and ``ssh_keys`` changes are ignored on existing droplets.
- region: would replace everything; the protected volume and database droplet stop ``pulumi up`` first.

Cost: each droplet's monthly price (+20 %/30 % with weekly/daily backups), $0.10/GiB-month for the volume,
$12/month per load balancer node when count > 1; VPC, firewalls, reserved IP and monitoring are free.

Stateful: the data volume and the database droplet are protected and retained on delete when ``protect_data`` is
true (default). The off-site backups (``offsite_backups``) live in the backups bucket, outside DigitalOcean.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_digitalocean as digitalocean

from components.cloud_init import SshHostKey, render_cloud_init
from components.compose_stack import (
    DB_NAME,
    DB_USER,
    AppSpec,
    HostStack,
    ServiceImages,
    TlsMode,
    pack_bundle,
    render_public_files,
)
from components.connection_urls import postgres_url, redis_url
from components.data_host import (
    BACKUP_STATUS_PORT,
    PGBOUNCER_PORT,
    POSTGRES_PORT,
    REDIS_PORT,
    DataHostNetwork,
    DataHostSecrets,
    DataHostStack,
    PgBouncerSpec,
    render_data_bundle,
)
from components.droplet_parts import (
    AlertRecipients,
    OffsiteBackupArgs,
    SlackChannel,
    backup_bundle_inputs,
    backup_watch,
    check_access,
    data_volume,
    droplet,
    egress_rules,
    generated_password,
    host_bundle,
    host_key,
    monitor_alerts,
    pinned_rollout,
    schedule_watch,
    site_watch,
    ssh_rule,
    uptime_alerts,
    user_data_with_host_key,
    volume_watch,
)
from components.host_processes import SCHEDULE_STATUS_PORT
from components.stateful import stateful_options
from components.tags import digitalocean_tags
from components.tuning import Machine

MAX_APP_DROPLETS = 10
LOAD_BALANCER_HEALTH_PORT = 80


@dataclass
class SplitVpsArgs:
    region: str
    """DigitalOcean region slug of every droplet, the volume, the VPC and the load balancer."""

    app: AppSpec
    """The application; ``app.workers`` is per app droplet."""

    hostname: str
    """Public hostname the proxies serve."""

    app_size: str
    """Size slug of each app droplet."""

    app_machine: Machine
    """vCPUs and memory of ``app_size``."""

    db_size: str
    """Size slug of the database droplet."""

    db_machine: Machine
    """vCPUs and memory of ``db_size``; PostgreSQL and Redis are tuned from it."""

    ssh_admin_cidrs: Sequence[str]
    """Networks allowed to reach port 22 on every droplet. No /0. At least one."""

    ssh_key_fingerprints: Sequence[str]
    """DigitalOcean SSH key fingerprints installed for root. At least one."""

    alert_emails: Sequence[str]
    """Recipients of every alert (CPU, memory, disk, site down, data volume full, backups late). At least one.
    DigitalOcean mails only the account's verified address and its team members' (``AlertRecipients``)."""

    web_source_cidrs: pulumi.Input[Sequence[str]]
    """Sources allowed to reach the site: Cloudflare's ranges when proxied, everything otherwise (count = 1
    only). With count = 1 they reach the droplet's 80/443; with count > 1 the load balancer's firewall
    admits their IPv4 part."""

    media_bucket_name: pulumi.Input[str]
    """Handed to the app as ``MEDIA_BUCKET``."""

    app_tier_tag: str
    """Physical DigitalOcean tag marking this stack's app droplets; must be unique to the stack."""

    app_count: int = 2
    """App droplets, 1..10; more than one puts a load balancer in front."""

    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Value of every name in ``app.secret_env_names`` (Pulumi secrets); exactly those names."""

    tls_mode: TlsMode = "origin-certificate"
    """``origin-certificate`` (proxied record, Full (strict)); ``acme`` only with one app droplet, since a
    load balancer would send each ACME challenge to a random droplet."""

    origin_certificate_pem: pulumi.Input[str] | None = None
    origin_private_key_pem: pulumi.Input[str] | None = None
    """Required with ``origin-certificate``; a secret."""

    ssh_private_key: pulumi.Input[str] | None = None
    """Key the rollouts log in with; None uses the SSH agent of whoever runs ``pulumi up``."""

    registry_password: pulumi.Input[str] | None = None
    """Password or token for ``app.registry_server``; required exactly when that is set. A secret."""

    volume_size_gib: int = 20
    """Database data volume size. Growing it is in place (the database rollout, which depends on the volume,
    then grows the filesystem in the same ``pulumi up``)."""

    alert_slack: Sequence[SlackChannel] = ()
    """Slack channels that receive every alert too (each webhook URL a secret)."""

    images: ServiceImages = field(default_factory=ServiceImages)
    """The Caddy, PostgreSQL and Redis images (tag-pinned official images) of every droplet."""

    pgbouncer: PgBouncerSpec | None = None
    """Pool the app's connections through PgBouncer on the database droplet; ``DATABASE_URL`` then points
    at PgBouncer's port."""

    redis_placement: Literal["database"] = "database"
    """Where the shared Redis runs: on the database droplet, reachable from the app tier over the VPC."""

    backups: bool = True
    backup_plan: Literal["daily", "weekly"] = "weekly"

    protect_data: bool = True
    """Protect and retain the data volume and the database droplet. Default true."""

    offsite_backups: OffsiteBackupArgs | None = None
    """Off-site backups of the database droplet's PostgreSQL and Redis, and the uptime alert that reports late
    ones; None: no copy of the database leaves the droplet (not what ``infra`` ever builds)."""

    project_name: str = "phasekit"
    """Name of the DigitalOcean project grouping the resources."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """DigitalOcean ``key:value`` tags on droplets and the volume (not on firewalls or alerts)."""


class SplitVps(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    """What DNS points at: the load balancer's address (count > 1) or the reserved IP (count = 1)."""

    app_droplet_ids: pulumi.Output[list[str]]
    db_droplet_id: pulumi.Output[str]
    db_private_ip: pulumi.Output[str]
    """The database droplet's VPC address, where the app tier reaches PostgreSQL and Redis."""

    volume_id: pulumi.Output[str]
    vpc_id: pulumi.Output[str]
    load_balancer_id: pulumi.Output[str] | None
    """None with one app droplet."""

    database_url: pulumi.Output[str]
    """The app's ``DATABASE_URL`` (VPC address; PgBouncer's port when pooling); a secret."""

    redis_url: pulumi.Output[str]
    """The app's ``REDIS_URL`` (VPC address); a secret."""

    def __init__(self, name: str, args: SplitVpsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_args(args)
        super().__init__("phasekit:index:SplitVps", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = digitalocean_tags(args.tags)
        database_port = PGBOUNCER_PORT if args.pgbouncer is not None else POSTGRES_PORT
        offsite = args.offsite_backups
        # The app tier reaches these database-droplet ports: the database, Redis, and the backup status server.
        app_tier_ports = [database_port, REDIS_PORT, *([BACKUP_STATUS_PORT] if offsite is not None else [])]
        behind_load_balancer = args.app_count > 1

        vpc = digitalocean.Vpc(f"{name}-vpc", region=args.region,
                               description="phasekit app tier and database", opts=child)
        app_tier_tag = digitalocean.Tag(f"{name}-app-tier", name=args.app_tier_tag, opts=child)

        # --- database droplet -------------------------------------------------------------------
        volume = data_volume(f"{name}-db-data", parent=self, region=args.region, size_gib=args.volume_size_gib,
                             tags=tags, protect=args.protect_data)
        db_key = host_key(f"{name}-db", self)
        database = droplet(
            f"{name}-db",
            parent=self,
            region=args.region,
            size=args.db_size,
            vpc_id=vpc.id,
            ssh_key_fingerprints=args.ssh_key_fingerprints,
            backups=args.backups,
            backup_plan=args.backup_plan,
            # The listen address exists only once the droplet does: every config file comes with the rollout.
            user_data=user_data_with_host_key(db_key, lambda pair: render_cloud_init(
                {}, extra_packages=["pgbouncer"] if args.pgbouncer else [], host_key=pair)),
            tags=tags,
            volume_ids=[volume.id],
            opts=stateful_options(self, args.protect_data),
        )
        db_firewall = digitalocean.Firewall(
            f"{name}-db-firewall",
            droplet_ids=[database.id.apply(int)],
            inbound_rules=[
                ssh_rule(args.ssh_admin_cidrs),
                *[digitalocean.FirewallInboundRuleArgs(protocol="tcp", port_range=str(port),
                                                       source_tags=[app_tier_tag.name])
                  for port in app_tier_ports],
            ],
            outbound_rules=egress_rules(),
            opts=child,
        )
        db_password = generated_password(f"{name}-db-password", self)
        redis_password = generated_password(f"{name}-redis-password", self)
        data_stack = DataHostStack(
            machine=args.db_machine,
            # Every app droplet's web workers and process containers, and the schedules on the first one.
            app_connections=(args.app_count * args.app.pools_per_host(with_schedules=False)
                             + len(args.app.schedules)) * args.app.db_pool_size,
            redis=args.redis_placement == "database",
            pgbouncer=args.pgbouncer,
            backups=offsite.spec if offsite is not None else None,
            images=args.images,
            data_volume_gib=args.volume_size_gib,
        )
        db_rollout = pinned_rollout(
            f"{name}-db", f"{name}-db-rollout", parent=self, host=database.ipv4_address, key=db_key,
            bundle=_data_bundle(data_stack, database.ipv4_address_private, vpc.ip_range,
                                db_password.result, redis_password.result, offsite),
            # The volume: a grown volume is resized before the rollout grows its filesystem.
            ssh_private_key=args.ssh_private_key, data_volume=True, firewall=db_firewall, depends_on=[volume])

        self.database_url = pulumi.Output.secret(pulumi.Output.all(db_password.result, database.ipv4_address_private)
                                                 .apply(lambda values: postgres_url(
                                                     user=DB_USER, password=values[0], host=values[1],
                                                     port=database_port, database=DB_NAME)))
        self.redis_url = pulumi.Output.secret(pulumi.Output.all(redis_password.result, database.ipv4_address_private)
                                              .apply(lambda values: redis_url(password=values[0], host=values[1])))

        # --- app tier ---------------------------------------------------------------------------
        web_stacks = [_web_stack(args, index, status_upstream=offsite is not None) for index in range(args.app_count)]
        app_droplets = []
        app_keys = [host_key(f"{name}-app-{index}", self) for index in range(args.app_count)]
        for index, stack in enumerate(web_stacks):
            app_droplets.append(droplet(
                f"{name}-app-{index}",
                parent=self,
                region=args.region,
                size=args.app_size,
                vpc_id=vpc.id,
                ssh_key_fingerprints=args.ssh_key_fingerprints,
                backups=args.backups,
                backup_plan=args.backup_plan,
                user_data=user_data_with_host_key(app_keys[index], _web_user_data(stack)),
                tags=[*tags, app_tier_tag.name],
                # Nothing on an app droplet needs the old one gone first; a replacement comes up beside it.
                delete_before_replace=False,
            ))
        app_droplet_ids = [server.id.apply(int) for server in app_droplets]

        load_balancer: digitalocean.LoadBalancer | None = None
        entry_point: list[pulumi.Resource]
        if behind_load_balancer:
            load_balancer = digitalocean.LoadBalancer(
                f"{name}-lb",
                region=args.region,
                vpc_uuid=vpc.id,
                size_unit=1,
                droplet_ids=app_droplet_ids,
                forwarding_rules=[digitalocean.LoadBalancerForwardingRuleArgs(
                    entry_port=443, entry_protocol="https", target_port=443, target_protocol="https",
                    tls_passthrough=True)],
                healthcheck=digitalocean.LoadBalancerHealthcheckArgs(
                    protocol="http", port=LOAD_BALANCER_HEALTH_PORT, path=args.app.health_path,
                    check_interval_seconds=10, response_timeout_seconds=5,
                    unhealthy_threshold=3, healthy_threshold=3),
                firewall=digitalocean.LoadBalancerFirewallArgs(
                    allows=pulumi.Output.from_input(args.web_source_cidrs).apply(load_balancer_allows)),
                redirect_http_to_https=False,
                disable_lets_encrypt_dns_records=True,
                # PROXY protocol v1 before every connection, health checks included, so each droplet's Caddy
                # knows the client (Cloudflare's edge) behind the TLS passthrough (proxy_protocol_wrapper).
                enable_proxy_protocol=True,
                # Only on a new balancer: Pulumi updates an existing one before the rollouts that teach the
                # droplets' Caddy the header, so turning it on there would fail every health check meanwhile.
                # docs/changes.md says how to turn it on for a balancer made before.
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["enable_proxy_protocol"]),
            )
            web_sources = {"source_load_balancer_uids": [load_balancer.id]}
            public_ip: pulumi.Output[str] = load_balancer.ip
        else:
            reserved_ip = digitalocean.ReservedIp(f"{name}-ip", region=args.region, opts=child)
            web_sources = {"source_addresses": args.web_source_cidrs}
            public_ip = reserved_ip.ip_address

        # The Project lists no resources itself: ProjectResources put them in. The provider reads a Project's
        # `resources` back as every URN in the project (resource_project.go, resourceDigitalOceanProjectRead), so a
        # Project listing some members while a ProjectResources adds another would diff that one out after any
        # refresh and move it to the default project; unset, the list is computed and never diffs.
        project = digitalocean.Project(
            f"{name}-project",
            name=args.project_name,
            description="phasekit: app droplets and a database droplet on a private network",
            purpose="Web Application",
            environment="Production",
            opts=child,
        )
        digitalocean.ProjectResources(
            f"{name}-project-members", project=project.id,
            resources=[database.droplet_urn, volume.volume_urn, *[server.droplet_urn for server in app_droplets],
                       *([load_balancer.load_balancer_urn] if load_balancer is not None else [])],
            opts=child)
        if load_balancer is not None:
            entry_point = [load_balancer]
        else:
            entry_point = _reserved_ip_entry(name, self, reserved_ip, project, app_droplet_ids[0])

        app_firewall = _app_firewall(name, args, app_droplet_ids=app_droplet_ids, web_sources=web_sources,
                                     tier_tag=app_tier_tag.name, database_id=database.id.apply(int),
                                     database_ports=app_tier_ports, opts=child)

        recipients = AlertRecipients(emails=args.alert_emails, slack=args.alert_slack)
        monitor_alerts(f"{name}-app", parent=self, droplet_ids=[server.id for server in app_droplets],
                       recipients=recipients, label=f"{args.project_name} app tier")
        monitor_alerts(f"{name}-db", parent=self, droplet_ids=[database.id], recipients=recipients,
                       label=f"{args.project_name} database")
        # The database droplet's status server (backups, volume fill) exists only with off-site backups; the web
        # hosts proxy both paths to it.
        uptime_alerts(name, parent=self, hostname=args.hostname, recipients=recipients, label=args.project_name,
                      watches=[site_watch(args.app.health_path),
                               *([volume_watch(), backup_watch()] if offsite is not None else []),
                               *([schedule_watch()] if args.app.schedules else [])])
        status_upstream = _status_upstreams(args, database=database, first_app=app_droplets[0],
                                            backups=offsite is not None)

        # One app droplet at a time, each healthy before the next: the others keep serving meanwhile.
        previous: list[pulumi.Resource] = [db_rollout]
        for index, (server, stack, key) in enumerate(zip(app_droplets, web_stacks, app_keys, strict=True)):
            step = pinned_rollout(
                f"{name}-app-{index}", f"{name}-app-{index}-rollout", parent=self, host=server.ipv4_address, key=key,
                bundle=host_bundle(stack, media_bucket_name=args.media_bucket_name,
                                   secret_env=args.secret_env, origin_certificate_pem=args.origin_certificate_pem,
                                   origin_private_key_pem=args.origin_private_key_pem,
                                   registry_password=args.registry_password,
                                   trusted_proxies=args.web_source_cidrs if args.tls_mode == "origin-certificate"
                                   else None,
                                   database_url=self.database_url, redis_url=self.redis_url, **status_upstream),
                ssh_private_key=args.ssh_private_key, data_volume=False, firewall=app_firewall,
                depends_on=[*entry_point, *previous])
            previous = [step]

        self.public_ip = public_ip
        self.app_droplet_ids = pulumi.Output.all(*[server.id for server in app_droplets])
        self.db_droplet_id = database.id
        self.db_private_ip = database.ipv4_address_private
        self.volume_id = volume.id
        self.vpc_id = vpc.id
        self.load_balancer_id = load_balancer.id if load_balancer is not None else None
        self.register_outputs({
            "public_ip": self.public_ip,
            "app_droplet_ids": self.app_droplet_ids,
            "db_droplet_id": self.db_droplet_id,
            "db_private_ip": self.db_private_ip,
            "volume_id": self.volume_id,
            "vpc_id": self.vpc_id,
            "load_balancer_id": self.load_balancer_id,
            "database_url": self.database_url,
            "redis_url": self.redis_url,
        })


def _app_firewall(name: str, args: SplitVpsArgs, *, app_droplet_ids: Sequence[pulumi.Input[int]],
                  web_sources: Mapping[str, Any], tier_tag: pulumi.Input[str], database_id: pulumi.Input[int],
                  database_ports: Sequence[int], opts: pulumi.ResourceOptions) -> digitalocean.Firewall:
    """The app droplets' firewall: SSH from the admins, 80/443 from ``web_sources``, out to the database droplet's
    ports; with schedules, the first app droplet's status server (SCHEDULE_STATUS_PORT) within the tier only."""
    schedule_status = [str(SCHEDULE_STATUS_PORT)] if args.app.schedules else []
    return digitalocean.Firewall(
        f"{name}-app-firewall",
        droplet_ids=list(app_droplet_ids),
        inbound_rules=[
            ssh_rule(args.ssh_admin_cidrs),
            *[digitalocean.FirewallInboundRuleArgs(protocol="tcp", port_range=port, **web_sources)
              for port in ("80", "443")],
            *[digitalocean.FirewallInboundRuleArgs(protocol="tcp", port_range=port, source_tags=[tier_tag])
              for port in schedule_status],
        ],
        outbound_rules=egress_rules(
            *[digitalocean.FirewallOutboundRuleArgs(protocol="tcp", port_range=str(port),
                                                    destination_droplet_ids=[database_id])
              for port in database_ports],
            *[digitalocean.FirewallOutboundRuleArgs(protocol="tcp", port_range=port, destination_tags=[tier_tag])
              for port in schedule_status]),
        opts=opts,
    )


def _status_upstreams(args: SplitVpsArgs, *, database: digitalocean.Droplet, first_app: digitalocean.Droplet,
                      backups: bool) -> dict[str, pulumi.Input[str]]:
    """``StackSecrets`` fields naming the status servers every web host's proxy asks: the database droplet's
    (backups, volume fill; it exists with off-site backups) and, with schedules, the first app droplet's."""
    upstreams: dict[str, pulumi.Input[str]] = {}
    if backups:
        upstreams["backup_status_upstream"] = database.ipv4_address_private.apply(
            lambda address: f"{address}:{BACKUP_STATUS_PORT}")
    if args.app.schedules:
        upstreams["schedule_status_upstream"] = first_app.ipv4_address_private.apply(
            lambda address: f"{address}:{SCHEDULE_STATUS_PORT}")
    return upstreams


def _reserved_ip_entry(name: str, parent: pulumi.Resource, reserved_ip: digitalocean.ReservedIp,
                       project: digitalocean.Project, droplet_id: pulumi.Input[int]) -> list[pulumi.Resource]:
    """The reserved IP's place in the Project and its assignment, ordered so that no change moves the IP while it
    is assigned.

    DigitalOcean refuses to move an assigned reserved IP between projects ("412 Cannot move a Reserved IP with
    an associated Droplet", terraform-provider-digitalocean #445). A URN dropped from a ``Project``'s list is
    moved to the default project during the Project's update (``project/resource_project.go``,
    ``resourceDigitalOceanProjectUpdate``: ``assignResourcesToDefaultProject(client, remove)``), and Pulumi runs
    updates before it deletes removed resources: with the IP in the list, ``appTier.count`` 1 -> 2 would move the
    IP while its assignment still existed. So the IP is never in the Project's list: a ``ProjectResources`` of its
    own puts it there, and the assignment depends on that ``ProjectResources``. Pulumi deletes dependents first,
    so on 1 -> 2 (or a destroy) the assignment goes, then the ``ProjectResources``, whose delete moves the now
    unassigned IP to the default project (``resource_project_resources.go``), then the IP. On create the IP
    joins the project before it is assigned."""
    child = pulumi.ResourceOptions(parent=parent)
    membership = digitalocean.ProjectResources(f"{name}-ip-project", project=project.id,
                                               resources=[reserved_ip.reserved_ip_urn], opts=child)
    assignment = digitalocean.ReservedIpAssignment(
        f"{name}-ip-assignment", ip_address=reserved_ip.ip_address, droplet_id=droplet_id,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[membership]))
    return [reserved_ip, assignment]


def load_balancer_allows(cidrs: Sequence[str]) -> list[str]:
    """The load balancer firewall's allow list: the IPv4 sources (its public address is IPv4 only)."""
    return [f"cidr:{cidr}" for cidr in cidrs if ":" not in cidr]


def _web_user_data(stack: HostStack) -> Callable[[SshHostKey], str]:
    public_files = render_public_files(stack)
    return lambda pair: render_cloud_init(public_files, data_volume=False, host_key=pair)


def _web_stack(args: SplitVpsArgs, index: int, *, status_upstream: bool) -> HostStack:
    return HostStack(app=args.app, machine=args.app_machine, hostname=args.hostname, tls_mode=args.tls_mode,
                     role="web", runs_release=index == 0, runs_schedules=index == 0,
                     http_health_route=args.app_count > 1, proxy_protocol=args.app_count > 1,
                     backup_status_upstream=status_upstream, schedule_status_upstream=bool(args.app.schedules),
                     images=args.images)


def _data_bundle(stack: DataHostStack, listen_address: pulumi.Output[str], vpc_range: pulumi.Output[str],
                 db_password: pulumi.Output[str], redis_password: pulumi.Output[str],
                 offsite: OffsiteBackupArgs | None) -> pulumi.Output[str]:
    backup_inputs = backup_bundle_inputs(offsite)
    backup_fields = list(backup_inputs)

    def encode(values: list) -> str:
        address, cidr, db, redis, *backup_values = values
        files = render_data_bundle(stack, DataHostNetwork(listen_address=address, client_cidr=cidr),
                                   DataHostSecrets(db_password=db, redis_password=redis,
                                                   **dict(zip(backup_fields, backup_values, strict=True))))
        return base64.b64encode(pack_bundle(files)).decode()

    return pulumi.Output.secret(pulumi.Output.all(listen_address, vpc_range, db_password, redis_password,
                                                  *backup_inputs.values()).apply(encode))


def _check_args(args: SplitVpsArgs) -> None:
    check_access("SplitVpsArgs", ssh_admin_cidrs=args.ssh_admin_cidrs,
                 ssh_key_fingerprints=args.ssh_key_fingerprints, alert_emails=args.alert_emails,
                 alert_slack=args.alert_slack)
    if not 1 <= args.app_count <= MAX_APP_DROPLETS:
        raise ValueError(f"SplitVpsArgs.app_count: {args.app_count} is outside 1..{MAX_APP_DROPLETS}")
    if args.app_count > 1 and args.tls_mode != "origin-certificate":
        raise ValueError("SplitVpsArgs.tls_mode: more than one app droplet needs 'origin-certificate' "
                         "(behind a load balancer, ACME challenges would reach a random droplet)")
    if args.redis_placement != "database":
        raise ValueError(f"SplitVpsArgs.redis_placement: {args.redis_placement!r} is not supported; "
                         "allowed: 'database'")
    if set(args.secret_env) != set(args.app.secret_env_names):
        raise ValueError(
            "SplitVpsArgs.secret_env: values must be given for exactly app.secret_env_names "
            f"{sorted(args.app.secret_env_names)}; got {sorted(args.secret_env)}")
    if (args.app.registry_server is None) != (args.registry_password is None):
        raise ValueError("SplitVpsArgs.registry_password: give it exactly when app.registry_server is set")
    if args.tls_mode == "origin-certificate" and (
            args.origin_certificate_pem is None or args.origin_private_key_pem is None):
        raise ValueError("SplitVpsArgs: tls_mode 'origin-certificate' needs origin_certificate_pem "
                         "and origin_private_key_pem")
