"""The files that run PostgreSQL (and optionally Redis and PgBouncer) on a dedicated database host.

Phase 2 moves the data stores off the web host onto their own droplet in a private VPC. Everything here
is rendered from typed data, like ``compose_stack``, whose PostgreSQL and Redis renderers it reuses.

What is different from the single host:
- PostgreSQL and Redis use the host's network (``network_mode: host``) and listen only on the droplet's
  VPC address and loopback. Docker's port publishing would rewrite client addresses on some paths, and
  ``pg_hba.conf`` has to see the app droplets' real VPC addresses to admit them.
- ``pg_hba.conf`` admits the app's user to the app's database from the VPC range only, with
  ``scram-sha-256``; loopback is for PgBouncer and the host's own tools; the Unix socket exists only
  inside the container (health check, nightly ``pg_dump``).
- PgBouncer (optional) comes from Ubuntu's archive, runs under systemd on the host, listens on the VPC
  address and loopback at ``PGBOUNCER_PORT`` and pools into PostgreSQL over loopback.
- The listen address and the VPC range are known only once the droplet exists, so this host's files
  travel only with the rollout; its cloud-init just prepares the machine.
- The data volume's fill level is checked as on the single host (``compose_stack.render_volume_check``): every
  5 minutes and at each rollout, ``status/volume.txt`` exists only while the volume is under
  ``VOLUME_ALERT_PERCENT``; the status server below serves it, so the web hosts' uptime check on
  ``VOLUME_STATUS_PATH`` reaches the alert recipients.
- Off-site backups (``DataHostStack.backups``) work as on the single host (``components.backups``): pgBackRest in
  the db image, continuous WAL archiving, backup.sh and its timers. The status file needs a public URL for the
  uptime check, and this host has no public proxy, so the simplest route that really works is used: a second
  Caddy here (``status`` service, the pinned Caddy image, host network) serves ``status/`` read-only on the VPC
  address at ``BACKUP_STATUS_PORT`` (the firewall admits only the app tier there), and every web host's Caddy
  proxies ``BACKUP_STATUS_PATH`` to it (``proxy_config.status_route``). No status file, or no data host,
  is a failed check either way. Pushing the file to the web hosts instead would need credentials on the data
  host to log in to them; a DigitalOcean metric cannot see a file.

Layout on the host (``STACK_DIR``)::

    compose.yaml, deploy.sh, volume-check.sh
    postgres/postgresql.conf, postgres/pg_hba.conf
    redis/redis.conf                          (when Redis runs here)
    pgbouncer/pgbouncer.ini                   (when PgBouncer is on; installed to /etc/pgbouncer)
    postgres/Dockerfile, postgres/pgbackrest.conf, backup.sh, systemd/phasekit-backup-*, caddy/status.json
                                              (with off-site backups)
    secrets/db_password, redis_password, redis_auth.conf, pgbouncer_userlist.txt
    secrets/pgbackrest.conf, backup_passphrase, r2-curl.conf   (with off-site backups)
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import yaml

from components.backups import BackupSpec
from components.compose_stack import (
    BACKUP_STATUS_ROOT,
    CONFIG_DIGEST_LABEL,
    DATA_MOUNT,
    DB_NAME,
    DB_USER,
    IMAGE_USER_ID,
    LOG_OPTIONS,
    STACK_DIR,
    BundleFile,
    ServiceImages,
    archive_settings,
    backup_build_steps,
    backup_check_steps,
    backup_db_service,
    backup_public_files,
    backup_secret_files,
    backup_timer_steps,
    config_digest,
    data_store_secret_files,
    data_volume_steps,
    redis_settings,
    render_postgresql_conf,
    render_redis_conf,
    volume_check_files,
    volume_check_steps,
)
from components.proxy_config import status_server_config as proxy_status_server
from components.tuning import RESERVED_DB_CONNECTIONS, Machine, postgres_settings

POSTGRES_PORT = 5432
PGBOUNCER_PORT = 6432
REDIS_PORT = 6379
BACKUP_STATUS_PORT = 8079
"""Where the data host's status server listens on its VPC address, for the web hosts' Caddy only."""

PoolMode = Literal["transaction", "session"]


@dataclass(frozen=True)
class PgBouncerSpec:
    """Connection pooling in front of PostgreSQL."""

    pool_mode: PoolMode = "transaction"
    """``transaction`` multiplexes many app connections over few server ones (the point of pooling; session
    state such as ``SET`` or advisory locks does not survive between transactions); ``session`` is safe
    for every app and only caps connections."""


@dataclass(frozen=True)
class DataHostStack:
    """Everything the database host's renderers need besides secrets and its network address."""

    machine: Machine
    app_connections: int
    """Connections the whole app tier may open at once: droplets × workers × pool size."""

    redis: bool = True
    """Run Redis here too (phase 2's default Redis placement)."""

    pgbouncer: PgBouncerSpec | None = None

    backups: BackupSpec | None = None
    """Off-site backups of PostgreSQL and Redis, with the status server the web hosts proxy; None: none."""

    images: ServiceImages = field(default_factory=ServiceImages)
    """PostgreSQL, Redis and (status server) Caddy images (``phasekit:services``)."""

    data_volume_gib: int | None = None
    """Size of the data volume, rendered into deploy.sh so a grown volume re-runs the rollout that grows its
    filesystem (``compose_stack.HostStack.data_volume_gib``)."""

    @property
    def max_connections(self) -> int:
        """PostgreSQL's ``max_connections``: the app tier's demand (or PgBouncer's pool) plus the reserve."""
        return max(20, self.server_pool_size + RESERVED_DB_CONNECTIONS)

    @property
    def server_pool_size(self) -> int:
        """Server connections the app gets: all it asks for directly; through PgBouncer in transaction
        mode, a pool of 4 per vCPU (transactions are short, more would only queue in the CPU)."""
        if self.pgbouncer is not None and self.pgbouncer.pool_mode == "transaction":
            return min(self.app_connections, max(10, 4 * self.machine.vcpus))
        return self.app_connections


@dataclass(frozen=True)
class DataHostNetwork:
    """Where the host listens and whom it admits; known once the droplet and its VPC exist."""

    listen_address: str
    """The droplet's VPC address."""

    client_cidr: str
    """The VPC's range: the only network ``pg_hba.conf`` admits."""

    def __post_init__(self) -> None:
        address = ipaddress.ip_address(self.listen_address)
        network = ipaddress.ip_network(self.client_cidr)
        if address not in network:
            raise ValueError(f"DataHostNetwork: {self.listen_address} is not inside {self.client_cidr}")


@dataclass(frozen=True, kw_only=True)
class DataHostSecrets:
    db_password: str
    redis_password: str
    backup_access_key_id: str | None = None
    """The backups bucket's S3 key pair and the encryption passphrase: required with ``DataHostStack.backups``."""

    backup_secret_access_key: str | None = None
    backup_passphrase: str | None = None


def data_postgres_settings(stack: DataHostStack, network: DataHostNetwork) -> dict[str, str]:
    """``compose_stack``'s sizing for a machine PostgreSQL does not share with the app, listening on the
    VPC address and loopback only."""
    settings = postgres_settings(stack.machine, stack.max_connections)
    settings["listen_addresses"] = f"{network.listen_address},127.0.0.1"
    settings["port"] = str(POSTGRES_PORT)
    if stack.backups is not None:
        settings.update(archive_settings(stack.backups))
    return settings


def render_pg_hba(network: DataHostNetwork) -> str:
    """Who may connect, first match wins; anything not matched is refused."""
    rows = [
        ("local", "all", "all", "", "trust"),
        ("host", "all", "all", "127.0.0.1/32", "scram-sha-256"),
        ("host", DB_NAME, DB_USER, network.client_cidr, "scram-sha-256"),
    ]
    lines = [
        "# Rendered by phasekit. The Unix socket exists only inside the container (health check, pg_dump);",
        "# loopback serves PgBouncer; the app's user reaches the app's database from the VPC range only.",
        *(f"{kind:<6} {database:<10} {user:<10} {address:<18} {method}".rstrip()
          for kind, database, user, address, method in rows),
    ]
    return "\n".join(lines) + "\n"


def data_redis_settings(stack: DataHostStack, network: DataHostNetwork) -> dict[str, str]:
    settings = redis_settings(stack.machine)
    settings["bind"] = f"{network.listen_address} 127.0.0.1"
    settings["port"] = str(REDIS_PORT)
    return settings


def pgbouncer_settings(stack: DataHostStack, network: DataHostNetwork,
                       auth_file: str = "/etc/pgbouncer/userlist.txt") -> dict[str, dict[str, str]]:
    """pgbouncer.ini as sections; the client limit is the app tier's whole demand plus the reserve."""
    spec = stack.pgbouncer
    assert spec is not None, "pgbouncer_settings needs stack.pgbouncer"
    return {
        "databases": {DB_NAME: f"host=127.0.0.1 port={POSTGRES_PORT} dbname={DB_NAME}"},
        "pgbouncer": {
            "listen_addr": f"{network.listen_address},127.0.0.1",
            "listen_port": str(PGBOUNCER_PORT),
            "auth_type": "scram-sha-256",
            "auth_file": auth_file,
            "pool_mode": spec.pool_mode,
            "max_client_conn": str(stack.app_connections + RESERVED_DB_CONNECTIONS),
            "default_pool_size": str(stack.server_pool_size),
            "server_reset_query": "DISCARD ALL",
            # Some drivers send it at connect; PgBouncer would refuse the connection otherwise.
            "ignore_startup_parameters": "extra_float_digits",
        },
    }


def render_ini(sections: Mapping[str, Mapping[str, str]]) -> str:
    blocks = [f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items())
              for section, entries in sections.items()]
    return "; Rendered by phasekit.\n" + "\n".join(blocks)


def render_pgbouncer_userlist(password: str) -> str:
    """PgBouncer's auth file. A plain password (not a SCRAM verifier) lets PgBouncer authenticate both the
    client and, with the same secret, itself to PostgreSQL."""
    return f'"{DB_USER}" "{password}"\n'


def data_compose_config(stack: DataHostStack, config_digests: Mapping[str, str] | None = None) -> dict:
    always = {"restart": "unless-stopped", "logging": LOG_OPTIONS, "network_mode": "host"}
    services: dict = {
        "db": {
            "image": stack.images.postgres,
            "command": ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf",
                        "-c", "hba_file=/etc/postgresql/pg_hba.conf"],
            "environment": {
                "POSTGRES_USER": DB_USER,
                "POSTGRES_DB": DB_NAME,
                "POSTGRES_PASSWORD_FILE": "/run/secrets/db_password",
            },
            "secrets": ["db_password"],
            "volumes": [
                {"type": "bind", "source": f"{DATA_MOUNT}/postgres", "target": "/var/lib/postgresql/data",
                 "read_only": False},
                {"type": "bind", "source": "./postgres", "target": "/etc/postgresql", "read_only": True},
            ],
            "shm_size": "256m",
            "stop_grace_period": "60s",
            "healthcheck": {
                "test": ["CMD", "pg_isready", "--username", DB_USER, "--dbname", DB_NAME],
                "interval": "10s", "timeout": "5s", "retries": 5, "start_period": "60s",
            },
            **always,
        },
    }
    secret_names = ["db_password"]
    if stack.redis:
        services["redis"] = {
            "image": stack.images.redis,
            "command": ["redis-server", "/usr/local/etc/redis/redis.conf"],
            "secrets": ["redis_auth.conf", "redis_password"],
            "volumes": [
                {"type": "bind", "source": f"{DATA_MOUNT}/redis", "target": "/data", "read_only": False},
                {"type": "bind", "source": "./redis/redis.conf", "target": "/usr/local/etc/redis/redis.conf",
                 "read_only": True},
            ],
            "healthcheck": {
                "test": ["CMD-SHELL",
                         'REDISCLI_AUTH="$$(cat /run/secrets/redis_password)" redis-cli -h 127.0.0.1 ping '
                         "| grep -q PONG"],
                "interval": "10s", "timeout": "5s", "retries": 5, "start_period": "20s",
            },
            **always,
        }
        secret_names += ["redis_password", "redis_auth.conf"]
    if stack.backups is not None:
        services["db"].update(backup_db_service(services["db"], DATA_MOUNT, stack.images))
        services["status"] = {
            "image": stack.images.caddy,
            "command": ["caddy", "run", "--config", "/etc/caddy/status.json"],
            "volumes": [
                {"type": "bind", "source": "./caddy/status.json", "target": "/etc/caddy/status.json",
                 "read_only": True},
                {"type": "bind", "source": "./status", "target": BACKUP_STATUS_ROOT, "read_only": True},
            ],
            **always,
        }
    for service, digest in (config_digests or {}).items():
        services[service]["labels"] = {CONFIG_DIGEST_LABEL: digest}
    return {"services": services, "secrets": {name: {"file": f"./secrets/{name}"} for name in secret_names}}


def status_server_config(network: DataHostNetwork) -> dict:
    """The data host's status server: ``status/`` on the VPC address at ``BACKUP_STATUS_PORT``."""
    return proxy_status_server(f"{network.listen_address}:{BACKUP_STATUS_PORT}")


def render_data_deploy_script(stack: DataHostStack) -> str:
    services = "db redis" if stack.redis else "db"
    spool = [f"{DATA_MOUNT}/pgbackrest"] if stack.backups is not None else []
    pgbouncer = [
        "command -v pgbouncer >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install --yes --quiet pgbouncer",
        "install -m 0640 -o root -g postgres pgbouncer/pgbouncer.ini /etc/pgbouncer/pgbouncer.ini",
        "install -m 0640 -o root -g postgres secrets/pgbouncer_userlist.txt /etc/pgbouncer/userlist.txt",
        "systemctl enable pgbouncer.service",
        "systemctl restart pgbouncer.service",
        "systemctl is-active --quiet pgbouncer.service || { echo 'phasekit: pgbouncer did not start' >&2; exit 1; }",
    ] if stack.pgbouncer is not None else [
        "! systemctl is-active --quiet pgbouncer.service || systemctl disable --now pgbouncer.service",
    ]
    return "\n".join([
        "#!/bin/sh",
        "# Rolls the database host in place: the data volume must be mounted; PostgreSQL (and Redis) restart",
        "# only when their config changed; PgBouncer is (re)configured after PostgreSQL is healthy.",
        "set -eu",
        f"cd {STACK_DIR}",
        *data_volume_steps(IMAGE_USER_ID, f"{DATA_MOUNT}/postgres", f"{DATA_MOUNT}/redis", *spool,
                           size_gib=stack.data_volume_gib),
        *(backup_build_steps() if stack.backups is not None else ["docker compose pull --quiet"]),
        f"docker compose up --detach --remove-orphans --wait --wait-timeout 300 {services}"
        + (" status" if stack.backups is not None else ""),
        *(backup_check_steps() if stack.backups is not None else []),
        *pgbouncer,
        *volume_check_steps(),
        *(backup_timer_steps(stack.backups) if stack.backups is not None else []),
        "docker image prune --force --filter until=168h >/dev/null",
        "",
    ])


def render_data_bundle(stack: DataHostStack, network: DataHostNetwork,
                       secrets: DataHostSecrets) -> dict[str, BundleFile]:
    """Every file the database host needs, secrets included; only ever sent over SSH."""
    postgres_conf = render_postgresql_conf(data_postgres_settings(stack, network))
    pg_hba = render_pg_hba(network)
    files = {
        "deploy.sh": BundleFile(render_data_deploy_script(stack), mode=0o755),
        **volume_check_files(),
        "postgres/postgresql.conf": BundleFile(postgres_conf),
        "postgres/pg_hba.conf": BundleFile(pg_hba),
    }
    digests = {"db": config_digest(postgres_conf, pg_hba)}
    if stack.backups is not None:
        backup_files = backup_public_files(stack.backups, stack.images)
        files.update(backup_files)
        files["caddy/status.json"] = BundleFile(json.dumps(status_server_config(network), indent=2,
                                                           sort_keys=True) + "\n")
        digests["db"] = config_digest(postgres_conf, pg_hba, *(backup_files[path].content for path in
                                                              sorted(backup_files) if path.startswith("postgres/")))
        digests["status"] = config_digest(files["caddy/status.json"].content)
    if stack.redis:
        redis_conf = render_redis_conf(data_redis_settings(stack, network))
        files["redis/redis.conf"] = BundleFile(redis_conf)
        digests["redis"] = config_digest(redis_conf)
    if stack.pgbouncer is not None:
        files["pgbouncer/pgbouncer.ini"] = BundleFile(render_ini(pgbouncer_settings(stack, network)))
        files["secrets/pgbouncer_userlist.txt"] = BundleFile(render_pgbouncer_userlist(secrets.db_password),
                                                             mode=0o600)
    files["compose.yaml"] = BundleFile(yaml.safe_dump(data_compose_config(stack, digests), sort_keys=False))
    files.update(data_store_secret_files(secrets.db_password, secrets.redis_password))
    if stack.backups is not None:
        if None in (secrets.backup_access_key_id, secrets.backup_secret_access_key, secrets.backup_passphrase):
            raise ValueError("DataHostSecrets: off-site backups need backup_access_key_id, "
                             "backup_secret_access_key and backup_passphrase")
        files.update(backup_secret_files(access_key_id=secrets.backup_access_key_id or "",
                                         secret_access_key=secrets.backup_secret_access_key or "",
                                         passphrase=secrets.backup_passphrase or ""))
    return files
