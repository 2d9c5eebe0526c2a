"""The files that run the app on one host: Compose, Caddy, PostgreSQL, Redis, the deploy script.

Everything is rendered from typed Python data with ``yaml``/``json`` dumpers, never by pasting strings
into templates, so a value can't break the syntax of the file it lands in. The renderers are pure: the
same inputs give byte-identical output, which is what lets the rollout command compare bundles instead
of redeploying on every ``pulumi up``.

Layout on the host (``STACK_DIR``)::

    compose.yaml            the services (proxy, app, db, redis; migrate in the "release" profile)
    deploy.sh               pulls, runs the release command before touching the app, rolls, waits for health
    caddy/caddy.json        reverse proxy, TLS from the Cloudflare origin certificate (or ACME)
    postgres/postgresql.conf
    postgres/Dockerfile, postgres/pgbackrest.conf   with off-site backups (``HostStack.backups``)
    backup.sh, systemd/phasekit-backup-*            with off-site backups: installed and enabled by deploy.sh
    status/backup.txt       written by ``backup.sh status`` while backups are in order; Caddy serves it
    redis/redis.conf
    secrets/                0700; delivered only over SSH by the rollout command, never in user_data
      app.env               the app contract: DATABASE_URL, REDIS_URL, PORT, ... plus env and secret_env
      db_password, redis_password, redis_auth.conf
      pgbackrest.conf, backup_passphrase, r2-curl.conf   with off-site backups
    tls/origin.pem, tls/origin.key

Off-site backups (``components.backups``): the db service is built from ``postgres/Dockerfile`` (the pinned image
plus pgBackRest), archives WAL continuously to the stack's backups bucket, and deploy.sh creates the pgBackRest
stanza and runs ``pgbackrest check`` after PostgreSQL is up, so a rollout whose archiving does not reach the bucket
fails loudly. Caddy serves ``status/`` read-only at ``BACKUP_STATUS_PATH`` and drops the connection while backups
are not in order (no status file), which a DigitalOcean uptime check watches.

PostgreSQL and Redis keep their data on the attached volume (``DATA_MOUNT``); nothing but the proxy
publishes a port beyond loopback.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import yaml

from components import connection_urls, health
from components.connection_urls import postgres_url
from components.host_processes import (
    SCHEDULE_STATUS_PORT,
    process_services,
    render_schedule_script,
    schedule_services,
    schedule_steps,
    schedule_units,
)
from components.processes import ProcessSpec, ScheduleSpec
from components.proxy_config import (
    BACKUP_STATUS_ROOT,
    BACKUP_STATUS_UPSTREAM_ENV,
    SCHEDULE_STATUS_UPSTREAM_ENV,
    render_caddy_json,
    status_server_config,
)
from components.tuning import Machine, db_max_connections, postgres_settings, redis_maxmemory_mib

if TYPE_CHECKING:
    from components.backups import BackupSpec

STACK_DIR = "/opt/phasekit"
DATA_MOUNT = "/mnt/phasekit-data"
DATA_LABEL = "phasekit-data"
"""ext4 label DigitalOcean writes when it formats the volume; the mount finds the volume by it."""

CADDY_IMAGE = "caddy:2.11.4"
POSTGRES_IMAGE = "postgres:16.15-bookworm"
REDIS_IMAGE = "redis:7.4.11-bookworm"
"""The default service images: the newest patch releases of the official images as of docker-library's
``library/{caddy,postgres,redis}`` (2026-08). PostgreSQL and Redis stay on the Debian release (bookworm) the earlier
defaults ran: the official ``postgres:16.x`` tag moved to trixie, whose newer glibc changes text collation, and
indexes built under the old one can silently return wrong answers until reindexed
(wiki.postgresql.org/wiki/Locale_data_changes). Users move them with ``phasekit:services``; docs/changes.md says
when and how."""

BACKUP_IMAGE_REPOSITORY = "phasekit/postgres-pgbackrest"
"""The name deploy.sh builds ``postgres/Dockerfile`` under (the postgres image plus pgBackRest); never pulled."""
IMAGE_USER_ID = 999
"""uid/gid of the ``postgres`` and ``redis`` users inside the official images (Debian variants)."""

DB_NAME = "app"
DB_USER = "app"
LOG_OPTIONS = {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}}

RELEASE_PROFILE = "release"
CONFIG_DIGEST_LABEL = "phasekit.config-digest"

TlsMode = Literal["origin-certificate", "acme"]

DOCKER_CONFIG_DIR = "secrets/docker"
"""Where the registry credentials live on the host (``DOCKER_CONFIG`` for deploy.sh), relative to STACK_DIR."""

VOLUME_STATUS_PATH = "/.well-known/phasekit/volume"
"""Answered only while the data volume is below ``VOLUME_ALERT_PERCENT`` full; an uptime check watches it."""

VOLUME_STATUS_FILE = "volume.txt"
VOLUME_ALERT_PERCENT = 80


@dataclass(frozen=True)
class ServiceImages:
    """The images of the services phasekit runs beside the app on a droplet: tag-pinned official images."""

    caddy: str = CADDY_IMAGE
    postgres: str = POSTGRES_IMAGE
    redis: str = REDIS_IMAGE

    @property
    def backup_postgres(self) -> str:
        """The image deploy.sh builds from ``postgres`` plus pgBackRest, tagged after it."""
        return f"{BACKUP_IMAGE_REPOSITORY}:{self.postgres.rpartition(':')[2]}"


CONTRACT_NAMES = ("DATABASE_URL", "REDIS_URL", "PORT", "WEB_CONCURRENCY", "MEDIA_BUCKET")
"""Variables phasekit always sets for the app, with these names in every phase."""


@dataclass(frozen=True)
class AppSpec:
    """The application as the user described it once, independent of phase."""

    image: str
    port: int
    health_path: str
    workers: int
    db_pool_size: int
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env_names: Sequence[str] = ()
    release_command: Sequence[str] | None = None
    registry_server: str | None = None
    """Private registry to log in to before pulling ``image``; None pulls anonymously."""

    registry_username: str | None = None
    processes: Sequence[ProcessSpec] = ()
    """Named processes besides the web one (queue workers), in the order the user listed them."""

    schedules: Sequence[ScheduleSpec] = ()
    """Named scheduled commands."""

    def pools_per_host(self, *, with_schedules: bool) -> int:
        """Database pools one app host holds at most: one per web worker and per process container, plus one per
        schedule (they may all run at once) on the host that runs them."""
        pools = self.workers + sum(process.count for process in self.processes)
        return pools + (len(self.schedules) if with_schedules else 0)


HostRole = Literal["all-in-one", "web"]
"""``all-in-one``: proxy, app, PostgreSQL and Redis on one host (phase 1). ``web``: proxy and app only, the
data stores on another host reached through ``StackSecrets.database_url``/``redis_url`` (phase 2)."""


@dataclass(frozen=True)
class HostStack:
    """Everything the host renderers need besides secrets."""

    app: AppSpec
    machine: Machine
    hostname: str
    tls_mode: TlsMode
    role: HostRole = "all-in-one"
    runs_release: bool = True
    """Whether this host's deploy.sh runs the release command; in a tier exactly one host does."""

    runs_schedules: bool = True
    """Whether this host runs ``app.schedules`` (systemd timers); in a tier exactly one host does."""

    http_health_route: bool = False
    """Serve ``app.health_path`` over plain HTTP on port 80 (everything else still redirects), for a load
    balancer whose health check cannot send the hostname over TLS."""

    backups: BackupSpec | None = None
    """Off-site backups of the data stores this host runs (``all-in-one`` only); None: none."""

    backup_status_upstream: bool = False
    """A ``web`` host: proxy ``BACKUP_STATUS_PATH`` to the data host's status server, whose address arrives with
    the rollout (``StackSecrets.backup_status_upstream``), so the uptime check sees the data host's status."""

    schedule_status_upstream: bool = False
    """A ``web`` host in a tier with schedules: proxy ``SCHEDULE_STATUS_PATH`` to the status server of the host that
    runs them (``StackSecrets.schedule_status_upstream``), which that host (``runs_schedules``) then runs."""

    images: ServiceImages = field(default_factory=ServiceImages)
    """Caddy, PostgreSQL and Redis images (``phasekit:services``)."""

    proxy_protocol: bool = False
    """Behind a DigitalOcean load balancer that prepends a PROXY protocol v1 header to every connection (health
    checks included), so Caddy reads the client's address from it; without it the app would see the balancer."""

    trusted_proxies: tuple[str, ...] = ()
    """Networks whose ``CF-Connecting-IP`` names the visitor (Cloudflare's ranges when the record is proxied), so the
    app sees the visitor's address in ``X-Forwarded-For``; empty: the peer's address."""

    data_volume_gib: int | None = None
    """Size of the attached data volume (``all-in-one``); rendered into deploy.sh so that growing the volume
    changes the bundle and the rollout, which grows the filesystem, re-runs in the same ``pulumi up``."""

    def __post_init__(self) -> None:
        if self.backups is not None and self.role != "all-in-one":
            raise ValueError("HostStack.backups: only a host that runs the data stores backs them up")
        if self.backup_status_upstream and self.role != "web":
            raise ValueError("HostStack.backup_status_upstream: only a web host proxies another host's status")
        if self.schedule_status_upstream and self.role != "web":
            raise ValueError("HostStack.schedule_status_upstream: only a web host proxies another host's status")

    @property
    def runs_data_stores(self) -> bool:
        return self.role == "all-in-one"

    @property
    def runs_schedule_status_server(self) -> bool:
        """A web host that runs the schedules serves their status to the tier (``SCHEDULE_STATUS_PORT``)."""
        return self.schedule_status_upstream and bool(self.schedules)

    @property
    def schedules(self) -> Sequence[ScheduleSpec]:
        """The schedules this host runs."""
        return self.app.schedules if self.runs_schedules else ()

    @property
    def db_max_connections(self) -> int:
        return db_max_connections(self.app.pools_per_host(with_schedules=self.runs_schedules), self.app.db_pool_size)


@dataclass(frozen=True, kw_only=True)
class StackSecrets:
    """Secret values, resolved inside an ``apply``; rendered only into ``secrets/`` and ``tls/``.

    An ``all-in-one`` host needs the passwords of the data stores it runs; a ``web`` host needs the URLs
    of the ones it reaches."""

    secret_env: Mapping[str, str]
    media_bucket: str
    db_password: str | None = None
    redis_password: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    origin_certificate_pem: str | None = None
    origin_private_key_pem: str | None = None
    registry_password: str | None = None
    backup_access_key_id: str | None = None
    """S3 access key id of the backups bucket (with ``HostStack.backups``)."""

    backup_secret_access_key: str | None = None
    backup_passphrase: str | None = None
    """The key backups are encrypted with (``secrets.BACKUP_PASSPHRASE``)."""

    schedule_status_upstream: str | None = None
    """``host:port`` of the schedules host's status server (with ``HostStack.schedule_status_upstream``)."""

    backup_status_upstream: str | None = None
    """``host:port`` of the data host's status server (with ``HostStack.backup_status_upstream``); not secret,
    but known only once the data host exists."""


@dataclass(frozen=True)
class BundleFile:
    content: str
    mode: int = 0o644
    owner_id: int = 0


# --- PostgreSQL and Redis -------------------------------------------------------------------------


def render_postgresql_conf(settings: Mapping[str, str]) -> str:
    lines = ["# Rendered by phasekit; sized from the droplet's RAM and vCPUs and the app's pool."]
    lines += [f"{name} = {_pg_quote(value)}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def _pg_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def redis_settings(machine: Machine, data_dir: str = "/data",
                   auth_include: str = "/run/secrets/redis_auth.conf") -> dict[str, str]:
    """redis.conf directives; ``auth_include`` holds ``requirepass`` so the password stays out of this file."""
    return {
        "bind": "0.0.0.0",
        "port": "6379",
        "protected-mode": "yes",
        "maxmemory": f"{redis_maxmemory_mib(machine)}mb",
        # Evict only keys that carry a TTL (cache entries); queue and session keys without one are never
        # dropped silently: when nothing is evictable Redis refuses writes instead.
        "maxmemory-policy": "volatile-lru",
        "appendonly": "yes",
        "appendfsync": "everysec",
        "aof-use-rdb-preamble": "yes",
        "save": "3600 1 300 100 60 10000",
        "dir": data_dir,
        "include": auth_include,
    }


def render_redis_conf(settings: Mapping[str, str]) -> str:
    lines = ["# Rendered by phasekit."]
    lines += [f"{name} {value}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def render_redis_auth(password: str) -> str:
    return f"requirepass {password}\n"


# --- Compose --------------------------------------------------------------------------------------


def compose_config(stack: HostStack, config_digests: Mapping[str, str] | None = None,
                   data_mount: str = DATA_MOUNT) -> dict:
    """The compose project. ``config_digests`` (service -> digest of the files it reads) become labels, so
    a change to a mounted config file changes the service definition and Compose recreates the container;
    without them an edited caddy.json or postgresql.conf would sit unread until a manual restart."""
    app = stack.app
    always = {"restart": "unless-stopped", "logging": LOG_OPTIONS}
    db_healthy = ({"db": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
                  if stack.runs_data_stores else {})

    services: dict = {
        "proxy": {
            "image": stack.images.caddy,
            "command": ["caddy", "run", "--config", "/etc/caddy/caddy.json"],
            "ports": ["80:80", "443:443"],
            "volumes": [
                _bind("./caddy/caddy.json", "/etc/caddy/caddy.json"),
                _bind("./tls", "/etc/caddy/tls"),
                {"type": "volume", "source": "caddy-data", "target": "/data"},
            ],
            # No depends_on the app: Compose stops a service's dependents while it recreates it (with `restart:
            # true`, compose-go's default for the short form; pkg/compose/reconcile.go planStopDependents), which
            # would drop every connection the proxy holds at each app rollout. Caddy needs no started app: it
            # holds requests for the app for up to try_duration and health-checks it.
            **always,
        },
        "app": {
            "image": app.image,
            "env_file": ["./secrets/app.env"],
            # Loopback only: lets deploy.sh health-check the new version from the host.
            "ports": [f"127.0.0.1:{app.port}:{app.port}"],
            **({"depends_on": dict(db_healthy)} if db_healthy else {}),
            **always,
        },
    }
    if stack.runs_data_stores:
        services["proxy"]["volumes"].append(_bind("./status", BACKUP_STATUS_ROOT))
    if stack.http_health_route:
        services["proxy"]["volumes"] += [_bind("./drain", health.DRAIN_ROOT),
                                         _bind("./log", health.PROBE_LOG_DIR, read_only=False)]
    if stack.backup_status_upstream or stack.schedule_status_upstream:
        services["proxy"]["env_file"] = [f"./{PROXY_ENV_FILE}"]
    if stack.runs_schedule_status_server:
        services["status"] = schedule_status_service(stack.images, always)
    if stack.runs_data_stores:
        services.update(_data_store_services(stack.images, data_mount, always))
        if stack.backups is not None:
            services["db"].update(backup_db_service(services["db"], data_mount, stack.images))
    app_shared = {"env_file": ["./secrets/app.env"], **({"depends_on": dict(db_healthy)} if db_healthy else {}),
                  **always}
    services.update(process_services(app.processes, app.image, app_shared))
    services.update(schedule_services(stack.schedules, app.image, app_shared))
    if app.release_command and stack.runs_release:
        # Outside `up` (a profile): deploy.sh runs it with `compose run` against the new image while the
        # current version keeps serving. As a `depends_on` of the app it would run only after Compose had
        # already removed the old app container, so a failing migration would leave the site down.
        services["migrate"] = {
            "image": app.image,
            "command": list(app.release_command),
            "env_file": ["./secrets/app.env"],
            **({"depends_on": dict(db_healthy)} if db_healthy else {}),
            "profiles": [RELEASE_PROFILE],
            "restart": "no",
            "logging": LOG_OPTIONS,
        }
    for service, digest in (config_digests or {}).items():
        services[service]["labels"] = {CONFIG_DIGEST_LABEL: digest}

    # No top-level `name:` (docker-compose 1.x rejects it): the project is named after STACK_DIR, "phasekit".
    project: dict = {"services": services}
    if stack.runs_data_stores:
        project["secrets"] = {
            name: {"file": f"./secrets/{name}"}
            for name in ("db_password", "redis_password", "redis_auth.conf")
        }
    project["volumes"] = {"caddy-data": {}}
    return project


def schedule_status_service(images: ServiceImages, always: Mapping[str, object]) -> dict:
    """Phase 2's first app droplet: a Caddy serving ``status/`` to the other web hosts' proxies. On the VPC address
    only (Docker's published ports bypass the host's own firewall: its DNAT happens before INPUT, moby/moby#4737, so
    the cloud firewall would otherwise be the one layer); the address arrives with the rollout, in .env, and without
    it the ``${VAR:?}`` interpolation fails every ``docker compose`` command of the project, not only this service's
    (the test runs ``docker-compose config`` without .env and asserts the refusal)."""
    return {
        "image": images.caddy,
        "command": ["caddy", "run", "--config", "/etc/caddy/status.json"],
        "ports": [f"${{{SCHEDULE_STATUS_ADDRESS_ENV}:?the droplet's VPC address, from .env}}:"
                  f"{SCHEDULE_STATUS_PORT}:{SCHEDULE_STATUS_PORT}"],
        "volumes": [_bind("./caddy/status.json", "/etc/caddy/status.json"), _bind("./status", BACKUP_STATUS_ROOT)],
        **always,
    }


def _data_store_services(images: ServiceImages, data_mount: str, always: Mapping[str, object]) -> dict:
    return {
        "db": {
            "image": images.postgres,
            "command": ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"],
            "environment": {
                "POSTGRES_USER": DB_USER,
                "POSTGRES_DB": DB_NAME,
                "POSTGRES_PASSWORD_FILE": "/run/secrets/db_password",
            },
            "secrets": ["db_password"],
            "volumes": [
                _bind(f"{data_mount}/postgres", "/var/lib/postgresql/data", read_only=False),
                _bind("./postgres/postgresql.conf", "/etc/postgresql/postgresql.conf"),
            ],
            "shm_size": "256m",
            "stop_grace_period": "60s",
            "healthcheck": {
                "test": ["CMD", "pg_isready", "--username", DB_USER, "--dbname", DB_NAME],
                "interval": "10s", "timeout": "5s", "retries": 5, "start_period": "60s",
            },
            **always,
        },
        "redis": {
            "image": images.redis,
            "command": ["redis-server", "/usr/local/etc/redis/redis.conf"],
            "secrets": ["redis_auth.conf", "redis_password"],
            "volumes": [
                _bind(f"{data_mount}/redis", "/data", read_only=False),
                _bind("./redis/redis.conf", "/usr/local/etc/redis/redis.conf"),
            ],
            "healthcheck": {
                "test": ["CMD-SHELL",
                         'REDISCLI_AUTH="$$(cat /run/secrets/redis_password)" redis-cli ping | grep -q PONG'],
                "interval": "10s", "timeout": "5s", "retries": 5, "start_period": "20s",
            },
            **always,
        },
    }


COMPOSE_ENV_FILE = ".env"
"""Compose reads it for the ``${...}`` in compose.yaml (docs.docker.com/compose/how-tos/environment-variables/
variable-interpolation/): values known only once the droplets exist."""

SCHEDULE_STATUS_ADDRESS_ENV = "PHASEKIT_SCHEDULE_STATUS_ADDRESS"
"""The VPC address the schedules' status server publishes its port on (phase 2's first app droplet)."""

PROXY_ENV_FILE = "proxy.env"
"""The proxy's environment on a web host that proxies the data host's backup status (not secret)."""


def backup_db_service(db: Mapping[str, object], data_mount: str, images: ServiceImages) -> dict:
    """What off-site backups change in a db service: built from ``postgres/Dockerfile`` (deploy.sh builds it,
    ``pull`` skips it), pgBackRest's public config and secrets mounted read-only, its spool on the data volume."""
    from components.backups import PGBACKREST_CONF_PATH, PGBACKREST_SECRETS_PATH  # imports this module

    volumes = list(db["volumes"])  # type: ignore[call-overload]
    return {
        "image": images.backup_postgres,
        "build": {"context": "./postgres"},
        "volumes": [
            *volumes,
            _bind("./postgres/pgbackrest.conf", PGBACKREST_CONF_PATH),
            _bind("./secrets/pgbackrest.conf", PGBACKREST_SECRETS_PATH),
            _bind(f"{data_mount}/pgbackrest", "/var/spool/pgbackrest", read_only=False),
        ],
    }


def _bind(source: str, target: str, read_only: bool = True) -> dict:
    return {"type": "bind", "source": source, "target": target, "read_only": read_only}


def render_compose(stack: HostStack, config_digests: Mapping[str, str] | None = None) -> str:
    return yaml.safe_dump(compose_config(stack, config_digests), sort_keys=False)


# --- The app contract -----------------------------------------------------------------------------


def app_environment(stack: HostStack, secrets: StackSecrets) -> dict[str, str]:
    """What the app receives on this host (see ``contract_environment``)."""
    if stack.runs_data_stores:
        urls = database_url(_required(secrets.db_password, "db_password")), redis_url(
            _required(secrets.redis_password, "redis_password"))
    else:
        urls = _required(secrets.database_url, "database_url"), _required(secrets.redis_url, "redis_url")
    return contract_environment(
        stack.app,
        database_url=urls[0],
        redis_url=urls[1],
        media_bucket=secrets.media_bucket,
        secret_env=secrets.secret_env,
    )


def contract_environment(app: AppSpec, *, database_url: str, redis_url: str, media_bucket: str,
                         secret_env: Mapping[str, str]) -> dict[str, str]:
    """What the app receives in every phase: its own env and secret_env, plus phasekit's contract
    (``CONTRACT_NAMES``), which wins."""
    contract = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PORT": str(app.port),
        "WEB_CONCURRENCY": str(app.workers),
        "MEDIA_BUCKET": media_bucket,
    }
    return {**app.env, **{name: secret_env[name] for name in app.secret_env_names}, **contract}


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise ValueError(f"StackSecrets.{name} is required on this host")
    return value


def database_url(password: str) -> str:
    """``DATABASE_URL`` inside the host's compose network (``db`` resolves only there)."""
    return postgres_url(user=DB_USER, password=password, host="db", database=DB_NAME)


def redis_url(password: str) -> str:
    """``REDIS_URL`` inside the host's compose network."""
    return connection_urls.redis_url(password=password, host="redis")


def render_env_file(variables: Mapping[str, str]) -> str:
    """Compose env-file syntax; values are single-quoted so ``$`` and ``#`` arrive literally."""
    return "".join(f"{name}='{_env_quote(value)}'\n" for name, value in variables.items())


def _env_quote(value: str) -> str:
    if "'" in value or "\n" in value:
        raise ValueError("env values may not contain single quotes or newlines")
    return value


# --- Deploy script and bundle ---------------------------------------------------------------------


LOAD_BALANCER_PROBES = 2 * health.FAILS
"""Consecutive probe answers deploy.sh waits to see: twice the balancer's threshold (``split_vps`` sets it to
``health.FAILS``), because a DigitalOcean load balancer may run more than one node, each probing on its own."""

LOAD_BALANCER_WAIT_SECONDS = 180

CANDIDATE = "phasekit-candidate"
"""The container deploy.sh starts the new version in, beside the running one, to check it before it goes live."""

DRAIN_GRACE_SECONDS = 10
"""After the load balancer stops sending new connections: time for the requests already sent to finish."""


def render_deploy_script(stack: HostStack) -> str:
    release = (["docker compose run --rm -T migrate"]
               if stack.app.release_command and stack.runs_release else [])
    registry_login = [f"export DOCKER_CONFIG={STACK_DIR}/{DOCKER_CONFIG_DIR}"] if stack.app.registry_server else []
    spool = [f"{DATA_MOUNT}/pgbackrest"] if stack.backups is not None else []
    data_stores = [
        *data_volume_steps(IMAGE_USER_ID, f"{DATA_MOUNT}/postgres", f"{DATA_MOUNT}/redis", *spool,
                           size_gib=stack.data_volume_gib),
        # The proxy mounts status/ (the volume's status file); with backups backup_build_steps makes it.
        *([f"install -d -m 0755 {BACKUP_STATUS_DIR_NAME}"] if stack.backups is None else []),
    ] if stack.runs_data_stores else []
    drain, rejoin = balancer_steps() if stack.http_health_route else ([], [])
    pause_schedules, resume_schedules = schedule_steps(stack.schedules)
    return "\n".join([
        "#!/bin/sh",
        "# Rolls the stack in place: pull, start the data stores, run the release command while the current",
        "# version keeps serving (a failure stops here and changes nothing else), check the new version beside the",
        "# running one (it goes live only if it passes the health-check contract), then replace what changed and",
        "# check again.",
        "set -eu",
        'cd "$(dirname "$0")"',
        *pause_schedules,
        *data_stores,
        *registry_login,
        *(backup_build_steps() if stack.backups is not None else ["docker compose pull --quiet"]),
        *(["docker compose up --detach --wait --wait-timeout 300 db redis"] if stack.runs_data_stores else []),
        *(backup_check_steps() if stack.backups is not None else []),
        *release,
        *candidate_steps(stack.app.port),
        *drain,
        "docker compose up --detach --remove-orphans --wait --wait-timeout 300",
        f"./health.sh http://127.0.0.1:{stack.app.port}",
        *rejoin,
        *(volume_check_steps() if stack.runs_data_stores else []),
        *(backup_timer_steps(stack.backups) if stack.backups is not None else []),
        "docker image prune --force --filter until=168h >/dev/null",
        *resume_schedules,
        "",
    ])


def candidate_steps(port: int) -> list[str]:
    """deploy.sh lines that start the new version as a one-off container beside the running one (same image, env
    and network; no service alias, so the proxy never routes to it: ``docker compose run`` adds the service's
    aliases only with ``--use-aliases``, docs.docker.com/reference/cli/docker/compose/run/), publish its port on a
    free loopback port and check it with ``health.sh``. A version that fails never replaces the running one."""
    return [
        f"docker rm --force {CANDIDATE} >/dev/null 2>&1 || true",
        f"docker compose run --detach --no-deps --name {CANDIDATE} --publish 127.0.0.1::{port} app >/dev/null",
        f"candidate=$(docker port {CANDIDATE} {port}/tcp | head -n 1)",
        'if ! ./health.sh "http://$candidate"; then',
        f"  docker logs --tail 50 {CANDIDATE} >&2 || true",
        f"  docker rm --force {CANDIDATE} >/dev/null",
        "  echo 'phasekit: the new version failed its health check; the running version keeps serving' >&2",
        "  exit 1",
        "fi",
        f"docker rm --force {CANDIDATE} >/dev/null",
    ]


def balancer_steps() -> tuple[list[str], list[str]]:
    """deploy.sh lines of a droplet behind the load balancer: before the swap, drain it (the health route answers
    503) and wait until the balancer has seen that, then let requests in flight finish; after it, rejoin and wait
    until the balancer sends traffic again, so the next droplet drains only once this one serves.

    The drain needs the running proxy to have the drain route and the probe log: a new droplet (no proxy yet) is
    not in rotation, and a proxy started from an older config (before draining existed, or a droplet that served
    alone on a reserved IP) cannot drain; both skip it, the second with a warning. The traps rejoin on any exit,
    signals included (dash runs an EXIT trap on ``exit`` but not when a signal kills it); the balancer's own checks
    still keep a broken version out."""
    drain_file = f"drain/{health.DRAIN_FILE}"
    return [
        "install -d -m 0755 drain log",
        f"trap 'rm -f {drain_file}' EXIT",
        "trap 'exit 129' HUP INT TERM PIPE",
        'proxy=$(docker compose ps --quiet --status running proxy 2>/dev/null || true)',
        'if [ -n "$proxy" ] && [ -s log/' + health.PROBE_LOG + ' ] && docker inspect --format '
        "'{{range .Mounts}}{{println .Destination}}{{end}}' \"$proxy\" | grep -qx " + health.DRAIN_ROOT + "; then",
        f"  touch {drain_file}",
        "  ./lb-wait.sh drained",
        f"  sleep {DRAIN_GRACE_SECONDS}",
        'elif [ -n "$proxy" ]; then',
        "  echo 'phasekit: WARNING: the running proxy predates draining; this droplet is replaced without it' >&2",
        "fi",
    ], [
        f"rm -f {drain_file}",
        "./lb-wait.sh serving",
    ]


OLD_DUMP_TIMER = "phasekit-pg-dump.timer"
"""The nightly ``pg_dump`` to the root disk that off-site backups replace; deploy.sh switches it off (the dumps
already in /var/backups/phasekit stay where they are)."""


def backup_build_steps() -> list[str]:
    """deploy.sh lines before the data stores start: pull what is pulled, build the database image (pgBackRest on
    the pinned postgres image; ``--pull`` refreshes that base), and make sure Compose can build.

    ``pull --ignore-buildable`` skips the built ``db`` image (docs.docker.com/reference/cli/docker/compose/pull/;
    added in Compose 2.15.0, Ubuntu 24.04's docker-compose-v2 is newer); without it the pull would ask a registry
    for an image that exists only on the host and fail."""
    return [
        "# Compose builds through buildx; Ubuntu's docker.io does not bring it. cloud-init installs it on new",
        "# droplets; this covers droplets made before. The lock timeout waits out unattended-upgrades.",
        "dpkg -s docker-buildx >/dev/null 2>&1 || { apt-get -o DPkg::Lock::Timeout=300 update --quiet "
        "&& DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install --yes --quiet docker-buildx; }",
        "docker compose pull --quiet --ignore-buildable",
        "docker compose build --pull db",
        f"install -d -m 0755 {BACKUP_STATUS_DIR_NAME}",
    ]


def backup_check_steps() -> list[str]:
    """deploy.sh lines once PostgreSQL is up: create the pgBackRest stanza (idempotent) and check that a WAL
    segment reaches the bucket. A failure stops the rollout before the app changes: archiving that does not work
    would otherwise go unnoticed until a restore."""
    return [
        f"{STACK_DIR}/backup.sh init || {{ echo 'phasekit: WAL archiving to the backups bucket does not work "
        "(see pgbackrest check above)' >&2; exit 1; }",
    ]


def backup_timer_steps(spec: BackupSpec) -> list[str]:
    """deploy.sh lines that install the backup units (they change with config, so they travel with every rollout),
    start their timers, retire the old nightly dump, and start a first full backup when the repository has none."""
    from components.backups import REDIS_STAMP_FILE, UNIT_PREFIX, backup_units  # backups imports this module

    timers = sorted(unit for unit in backup_units(spec) if unit.endswith(".timer"))
    return [
        f"! systemctl is-enabled --quiet {OLD_DUMP_TIMER} 2>/dev/null || systemctl disable --now {OLD_DUMP_TIMER}",
        f"rm -f /etc/systemd/system/{OLD_DUMP_TIMER} /etc/systemd/system/phasekit-pg-dump.service",
        f"install -m 0644 systemd/{UNIT_PREFIX}-* /etc/systemd/system/",
        "systemctl daemon-reload",
        f"systemctl enable --now {' '.join(timers)}",
        # A new stack gets its first backups now, in the background: a full backup can take long on a big
        # database, and the status check alerts until both a backup and a Redis snapshot exist.
        f"{STACK_DIR}/backup.sh has-backup || systemctl start --no-block {UNIT_PREFIX}-full.service",
        *([f"[ -s {STACK_DIR}/{BACKUP_STATUS_DIR_NAME}/{REDIS_STAMP_FILE} ] "
           f"|| systemctl start --no-block {UNIT_PREFIX}-redis.service"] if spec.redis_schedule else []),
    ]


def data_volume_steps(owner_id: int, *directories: str, size_gib: int | None = None) -> list[str]:
    """deploy.sh lines that refuse to run without the data volume, grow its filesystem and make the data
    directories (owned by ``owner_id``, the image's service user).

    ``size_gib`` is written into the script so a grown volume changes the bundle and this rollout re-runs in the
    same ``pulumi up`` (pulumi-command re-runs only on changed inputs). DigitalOcean's guide to increasing a volume
    has the filesystem grown online with ``resize2fs`` once the volume is resized; the kernel may still see the old
    size for a moment, so the script waits (bounded) for the device to reach the size before growing it."""
    grow = [
        f"# The data volume is {size_gib} GiB; wait until the kernel sees that size (a resize shows up online).",
        f'device=$(findmnt --noheadings --output SOURCE {DATA_MOUNT})',
        "waited=0",
        f'while [ "$(blockdev --getsize64 "$device")" -lt {size_gib * 1024 ** 3} ] && [ "$waited" -lt 60 ]; do',
        '  rescan=/sys/class/block/"$(basename "$(readlink -f "$device")")"/device/rescan',
        '  if [ -w "$rescan" ]; then echo 1 > "$rescan"; fi',
        "  sleep 2",
        "  waited=$((waited + 2))",
        "done",
        f'[ "$(blockdev --getsize64 "$device")" -ge {size_gib * 1024 ** 3} ] || {{ echo "phasekit: the data volume is '
        f'still smaller than {size_gib} GiB after 60 s; run pulumi up again once DigitalOcean shows the new size" '
        ">&2; exit 1; }",
    ] if size_gib is not None else []
    return [
        f"mountpoint -q {DATA_MOUNT} || {{ echo 'phasekit: data volume not mounted at {DATA_MOUNT}' >&2; exit 1; }}",
        *grow,
        "# A grown volume needs its filesystem grown too; ext4 grows online and this is a no-op otherwise.",
        f"resize2fs \"$(findmnt --noheadings --output SOURCE {DATA_MOUNT})\" >/dev/null 2>&1 "
        f"|| {{ echo 'phasekit: could not grow the filesystem on {DATA_MOUNT}' >&2; exit 1; }}",
        f"install -d -m 0700 -o {owner_id} -g {owner_id} {' '.join(directories)}",
    ]


VOLUME_CHECK_UNIT = "phasekit-volume-check"


def render_volume_check() -> str:
    """``volume-check.sh``: ``status/VOLUME_STATUS_FILE`` exists only while the data volume is mounted and at most
    ``VOLUME_ALERT_PERCENT`` full (the same "greater than" as DigitalOcean's disk alert); the proxy serves it at
    ``VOLUME_STATUS_PATH`` for an uptime check, because DigitalOcean's disk metric watches only the root disk. A
    warning also goes to the journal (or the rollout's output)."""
    status = f"{BACKUP_STATUS_DIR_NAME}/{VOLUME_STATUS_FILE}"
    return "\n".join([
        "#!/bin/sh",
        f"# Publishes {status} while the data volume is at most {VOLUME_ALERT_PERCENT}% full; removes it otherwise.",
        "# Grow the volume (volumeSizeGib) before PostgreSQL runs out of space.",
        "set -eu",
        'cd "$(dirname "$0")"',
        "# Unmounted, df would report the root disk's fill level instead: fail loudly.",
        f"if ! mountpoint -q {DATA_MOUNT}; then",
        f"  rm -f {status}",
        f"  echo 'phasekit: WARNING: data volume not mounted at {DATA_MOUNT}' >&2",
        "  exit 1",
        "fi",
        f"used=$(df --output=pcent {DATA_MOUNT} | tail -n 1 | tr -dc '0-9')",
        f'if [ "$used" -gt {VOLUME_ALERT_PERCENT} ]; then',
        f"  rm -f {status}",
        f'  echo "phasekit: WARNING: data volume {DATA_MOUNT} is ${{used}}% full" >&2',
        "  exit 0",
        "fi",
        f"install -d -m 0755 {BACKUP_STATUS_DIR_NAME}",
        f'echo "ok: data volume ${{used}}% full" > {status}.new',
        f"mv {status}.new {status}",
        "",
    ])


def volume_check_files() -> dict[str, BundleFile]:
    """volume-check.sh and the systemd units that run it every 5 minutes."""
    from components.cloud_init import systemd_unit  # components.cloud_init imports this module

    description = {"Description": "phasekit data volume fill check"}
    return {
        "volume-check.sh": BundleFile(render_volume_check(), mode=0o755),
        f"systemd/{VOLUME_CHECK_UNIT}.service": BundleFile(systemd_unit({
            "Unit": description, "Service": {"Type": "oneshot", "ExecStart": f"{STACK_DIR}/volume-check.sh"}})),
        f"systemd/{VOLUME_CHECK_UNIT}.timer": BundleFile(systemd_unit({
            "Unit": description, "Timer": {"OnBootSec": "5min", "OnUnitActiveSec": "5min"},
            "Install": {"WantedBy": "timers.target"}})),
    }


def volume_check_steps() -> list[str]:
    """deploy.sh lines that install and start the volume check's timer and run it once now."""
    return [
        f"install -m 0644 systemd/{VOLUME_CHECK_UNIT}.service systemd/{VOLUME_CHECK_UNIT}.timer /etc/systemd/system/",
        "systemctl daemon-reload",
        f"systemctl enable --now {VOLUME_CHECK_UNIT}.timer",
        f"{STACK_DIR}/volume-check.sh",
    ]


def render_public_files(stack: HostStack, origin_certificate_pem: str | None = None) -> dict[str, BundleFile]:
    """Files without secrets: cloud-init writes these at first boot, the rollout rewrites them.

    ``origin_certificate_pem`` (public) joins the proxy's config digest, so a new certificate restarts it.
    """
    files = {
        "deploy.sh": BundleFile(render_deploy_script(stack), mode=0o755),
        "health.sh": BundleFile(health.render_health_script(stack.app.health_path, stack.hostname), mode=0o755),
        "caddy/caddy.json": BundleFile(render_caddy_json(stack)),
    }
    if stack.http_health_route:
        files["lb-wait.sh"] = BundleFile(health.render_lb_wait_script(
            stack.app.health_path, probes=LOAD_BALANCER_PROBES, limit_seconds=LOAD_BALANCER_WAIT_SECONDS), mode=0o755)
    if stack.schedules:
        files["schedule.sh"] = BundleFile(render_schedule_script(), mode=0o755)
        files.update({f"systemd/{unit}": BundleFile(content)
                      for unit, content in schedule_units(stack.schedules, STACK_DIR).items()})
    digests = {"proxy": config_digest(files["caddy/caddy.json"].content, origin_certificate_pem or "")}
    if stack.runs_schedule_status_server:
        files["caddy/status.json"] = BundleFile(json.dumps(status_server_config(f":{SCHEDULE_STATUS_PORT}"),
                                                           indent=2, sort_keys=True) + "\n")
        digests["status"] = config_digest(files["caddy/status.json"].content)
    if stack.runs_data_stores:
        settings = postgres_settings(stack.machine, stack.db_max_connections)
        if stack.backups is not None:
            settings.update(archive_settings(stack.backups))
            files.update(backup_public_files(stack.backups, stack.images))
        files["postgres/postgresql.conf"] = BundleFile(render_postgresql_conf(settings))
        files["redis/redis.conf"] = BundleFile(render_redis_conf(redis_settings(stack.machine)))
        files.update(volume_check_files())
        digests["db"] = config_digest(*(files[path].content for path in sorted(files) if path.startswith("postgres/")))
        digests["redis"] = config_digest(files["redis/redis.conf"].content)
    return {"compose.yaml": BundleFile(render_compose(stack, digests)), **files}


BACKUP_STATUS_DIR_NAME = "status"
"""``components.backups.BACKUP_STATUS_DIR``, spelled here too because that module imports this one."""


def archive_settings(spec: BackupSpec) -> dict[str, str]:
    """postgresql.conf's continuous-archiving settings (``components.backups.postgres_archive_settings``)."""
    from components.backups import postgres_archive_settings  # components.backups imports this module

    return postgres_archive_settings(spec)


def backup_public_files(spec: BackupSpec, images: ServiceImages) -> dict[str, BundleFile]:
    """The backup files without secrets, for any host that runs PostgreSQL: the database image's Dockerfile,
    pgBackRest's public config, backup.sh and its systemd units (installed by deploy.sh)."""
    from components import backups  # components.backups imports this module

    return {
        "postgres/Dockerfile": BundleFile(backups.render_postgres_dockerfile(images.postgres)),
        "postgres/pgbackrest.conf": BundleFile(backups.render_pgbackrest_conf(spec)),
        "backup.sh": BundleFile(backups.render_backup_script(spec), mode=0o755),
        **{f"systemd/{unit}": BundleFile(content) for unit, content in backups.backup_units(spec).items()},
    }


def backup_secret_files(*, access_key_id: str, secret_access_key: str, passphrase: str) -> dict[str, BundleFile]:
    """The backup credentials: pgBackRest's (read in the container as the image's postgres user) and the host's
    (root only, for backup.sh's Redis upload). Only ever in the SSH-delivered bundle, never in user_data."""
    from components import backups  # components.backups imports this module

    return {
        "secrets/pgbackrest.conf": BundleFile(backups.render_pgbackrest_secrets(
            access_key_id=access_key_id, secret_access_key=secret_access_key, cipher_pass=passphrase),
            mode=0o400, owner_id=IMAGE_USER_ID),
        "secrets/backup_passphrase": BundleFile(passphrase, mode=0o400),
        "secrets/r2-curl.conf": BundleFile(backups.render_r2_curl_config(access_key_id, secret_access_key),
                                           mode=0o400),
    }


def config_digest(*contents: str) -> str:
    """Short digest of the files a service reads, for its ``CONFIG_DIGEST_LABEL``."""
    return hashlib.sha256("\0".join(contents).encode()).hexdigest()[:16]


def render_bundle(stack: HostStack, secrets: StackSecrets) -> dict[str, BundleFile]:
    """Every file the host needs, secrets included; only ever sent over SSH."""
    files = render_public_files(stack, secrets.origin_certificate_pem)
    files["secrets/app.env"] = BundleFile(render_env_file(app_environment(stack, secrets)), mode=0o600)
    if stack.runs_data_stores:
        files.update(data_store_secret_files(_required(secrets.db_password, "db_password"),
                                             _required(secrets.redis_password, "redis_password")))
    if stack.backups is not None:
        files.update(backup_secret_files(
            access_key_id=_required(secrets.backup_access_key_id, "backup_access_key_id"),
            secret_access_key=_required(secrets.backup_secret_access_key, "backup_secret_access_key"),
            passphrase=_required(secrets.backup_passphrase, "backup_passphrase")))
    upstreams = {}
    if stack.backup_status_upstream:
        upstreams[BACKUP_STATUS_UPSTREAM_ENV] = _required(secrets.backup_status_upstream, "backup_status_upstream")
    if stack.schedule_status_upstream:
        upstreams[SCHEDULE_STATUS_UPSTREAM_ENV] = _required(secrets.schedule_status_upstream,
                                                            "schedule_status_upstream")
    if upstreams:
        files[PROXY_ENV_FILE] = BundleFile(render_env_file(upstreams))
    if stack.runs_schedule_status_server:
        # This host is the one every web host asks: its own VPC address is the upstream's host part.
        address = upstreams[SCHEDULE_STATUS_UPSTREAM_ENV].rpartition(":")[0]
        files[COMPOSE_ENV_FILE] = BundleFile(render_env_file({SCHEDULE_STATUS_ADDRESS_ENV: address}))
    if stack.app.registry_server:
        if secrets.registry_password is None:
            raise ValueError("app.registry_server needs the registry password")
        files[f"{DOCKER_CONFIG_DIR}/config.json"] = BundleFile(
            render_docker_config(stack.app.registry_server, stack.app.registry_username or "",
                                 secrets.registry_password), mode=0o600)
    if stack.tls_mode == "origin-certificate":
        if secrets.origin_certificate_pem is None or secrets.origin_private_key_pem is None:
            raise ValueError("tls_mode 'origin-certificate' needs the origin certificate and its key")
        files["tls/origin.pem"] = BundleFile(secrets.origin_certificate_pem)
        files["tls/origin.key"] = BundleFile(secrets.origin_private_key_pem, mode=0o600)
    return files


def data_store_secret_files(db_password: str, redis_password: str) -> dict[str, BundleFile]:
    """The password files PostgreSQL and Redis read (through compose secrets)."""
    return {
        "secrets/db_password": BundleFile(db_password, mode=0o600),
        # Redis reads its include and the health check reads the password as the image's redis user.
        "secrets/redis_password": BundleFile(redis_password, mode=0o400, owner_id=IMAGE_USER_ID),
        "secrets/redis_auth.conf": BundleFile(render_redis_auth(redis_password), mode=0o400, owner_id=IMAGE_USER_ID),
    }


def render_docker_config(server: str, username: str, password: str) -> str:
    """The Docker CLI's credentials file for one registry (Docker Hub's key is its v1 index URL)."""
    key = "https://index.docker.io/v1/" if server == "docker.io" else server
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {key: {"auth": auth}}}, indent=2) + "\n"


def pack_bundle(files: Mapping[str, BundleFile]) -> bytes:
    """A deterministic tar (fixed mtime, sorted) so an unchanged bundle never triggers a rollout."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directories = sorted({parent for path in files for parent in _parents(path)})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o700 if directory.split("/")[0] in ("secrets", "tls") else 0o755
            info.mtime = 0
            archive.addfile(info)
        for path in sorted(files):
            entry = files[path]
            data = entry.content.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = entry.mode
            info.uid = info.gid = entry.owner_id
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
