"""Pure renderers and sizing rules, without the Pulumi runtime.

The same files are handed to their real consumers in test_real_consumers.py; here the exact values.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile

import pytest
import yaml

from components.cloud_init import cloud_config
from components.compose_stack import (
    app_environment,
    compose_config,
    pack_bundle,
    redis_settings,
    render_bundle,
    render_deploy_script,
    render_env_file,
    render_postgresql_conf,
    render_public_files,
)
from components.proxy_config import caddy_config
from components.tuning import Machine, db_max_connections, postgres_settings, redis_maxmemory_mib
from tests.builders import APP, BACKUP_SECRETS, BACKUP_SPEC, HOST_STACK, STACK_SECRETS

STACK, SECRETS = HOST_STACK, STACK_SECRETS


@pytest.mark.parametrize(("machine", "connections", "expected"), [
    (Machine(1, 2048), 20, {"shared_buffers": "512MB", "effective_cache_size": "1536MB",
                            "maintenance_work_mem": "128MB", "work_mem": "25MB",
                            "max_parallel_workers_per_gather": "0", "max_worker_processes": "2"}),
    (Machine(2, 4096), 20, {"shared_buffers": "1GB", "effective_cache_size": "3GB",
                            "maintenance_work_mem": "256MB", "work_mem": "51MB",
                            "max_parallel_workers_per_gather": "1", "max_worker_processes": "2"}),
    (Machine(4, 8192), 50, {"shared_buffers": "2GB", "effective_cache_size": "6GB",
                            "maintenance_work_mem": "512MB", "work_mem": "40MB",
                            "max_parallel_workers_per_gather": "2", "max_worker_processes": "4"}),
])
def test_postgres_is_sized_from_the_machine(machine, connections, expected):
    settings = postgres_settings(machine, connections)
    assert {key: settings[key] for key in expected} == expected
    assert settings["max_connections"] == str(connections)
    assert settings["password_encryption"] == "scram-sha-256"


@pytest.mark.parametrize(("workers", "pool", "expected"), [(1, 5, 20), (2, 5, 20), (4, 10, 50), (8, 5, 50)])
def test_max_connections_covers_every_pool_plus_reserve(workers, pool, expected):
    assert db_max_connections(workers, pool) == expected


@pytest.mark.parametrize(("memory_mib", "expected"), [(512, 64), (1024, 128), (2048, 256), (8192, 1024)])
def test_redis_maxmemory_is_an_eighth_of_ram(memory_mib, expected):
    assert redis_maxmemory_mib(Machine(1, memory_mib)) == expected


def test_postgresql_conf_quotes_values():
    assert render_postgresql_conf({"listen_addresses": "*", "x": "it's"}).splitlines()[1:] == [
        "listen_addresses = '*'", "x = 'it''s'"]


def test_redis_persists_with_a_ttl_only_eviction_policy_and_external_password():
    settings = redis_settings(Machine(1, 2048))
    assert settings["maxmemory"] == "256mb"
    assert settings["maxmemory-policy"] == "volatile-lru"
    assert settings["appendonly"] == "yes"
    assert settings["include"] == "/run/secrets/redis_auth.conf"
    assert "requirepass" not in settings


def test_only_the_proxy_publishes_ports_beyond_loopback():
    services = compose_config(STACK)["services"]
    published = {name: service.get("ports", []) for name, service in services.items()}
    assert published == {"proxy": ["80:80", "443:443"], "app": ["127.0.0.1:8000:8000"],
                         "db": [], "redis": [], "migrate": []}


def test_release_command_is_run_by_deploy_before_the_app_is_touched():
    services = compose_config(STACK)["services"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate"]
    assert services["migrate"]["profiles"] == ["release"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == services["app"]["depends_on"] == {
        "db": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
    steps = [line for line in render_deploy_script(STACK).splitlines() if line.startswith("docker compose")]
    assert steps == [
        "docker compose pull --quiet",
        "docker compose up --detach --wait --wait-timeout 300 db redis",
        "docker compose run --rm -T migrate",
        "docker compose run --detach --no-deps --name phasekit-candidate --publish 127.0.0.1::8000 app >/dev/null",
        "docker compose up --detach --remove-orphans --wait --wait-timeout 300",
    ]


def test_the_new_version_is_checked_beside_the_running_one_before_it_replaces_it():
    lines = render_deploy_script(STACK).splitlines()
    start = lines.index("docker rm --force phasekit-candidate >/dev/null 2>&1 || true")
    assert lines[start:start + 11] == [
        "docker rm --force phasekit-candidate >/dev/null 2>&1 || true",
        "docker compose run --detach --no-deps --name phasekit-candidate --publish 127.0.0.1::8000 app >/dev/null",
        "candidate=$(docker port phasekit-candidate 8000/tcp | head -n 1)",
        'if ! ./health.sh "http://$candidate"; then',
        "  docker logs --tail 50 phasekit-candidate >&2 || true",
        "  docker rm --force phasekit-candidate >/dev/null",
        "  echo 'phasekit: the new version failed its health check; the running version keeps serving' >&2",
        "  exit 1",
        "fi",
        "docker rm --force phasekit-candidate >/dev/null",
        "docker compose up --detach --remove-orphans --wait --wait-timeout 300",
    ]
    assert lines[start + 11] == "./health.sh http://127.0.0.1:8000"
    assert lines.index("docker compose run --rm -T migrate") < start


def test_caddy_checks_the_app_under_the_health_contract_with_tolerances():
    proxy = caddy_config(STACK)["apps"]["http"]["servers"]["https"]["routes"][-1]["handle"][0]
    assert proxy["health_checks"] == {"active": {
        "uri": "/healthz", "headers": {"Host": ["app.example.com"], "X-Forwarded-Proto": ["https"]},
        "interval": "10s", "timeout": "5s", "passes": 1, "fails": 3}}
    assert proxy["headers"] == {"request": {"set": {"X-Forwarded-For": ["{http.vars.client_ip}"]}}}
    assert proxy["load_balancing"] == {"try_duration": "30s", "try_interval": "250ms"}


def test_caddy_trusts_only_the_given_proxies_for_the_visitor_address():
    from dataclasses import replace
    assert "trusted_proxies" not in caddy_config(STACK)["apps"]["http"]["servers"]["https"]
    https = caddy_config(replace(STACK, trusted_proxies=("173.245.48.0/20", "2400:cb00::/32")))[
        "apps"]["http"]["servers"]["https"]
    assert https["trusted_proxies"] == {"source": "static", "ranges": ["173.245.48.0/20", "2400:cb00::/32"]}
    assert https["client_ip_headers"] == ["CF-Connecting-IP"]


def test_the_deploy_script_names_the_volume_size_so_a_grown_volume_reruns_it():
    from dataclasses import replace
    sized = render_deploy_script(replace(STACK, data_volume_gib=20)).splitlines()
    assert "# The data volume is 20 GiB; wait until the kernel sees that size (a resize shows up online)." in sized
    assert ('while [ "$(blockdev --getsize64 "$device")" -lt 21474836480 ] && [ "$waited" -lt 60 ]; do'
            in sized)
    assert render_deploy_script(replace(STACK, data_volume_gib=30)) != render_deploy_script(
        replace(STACK, data_volume_gib=20))
    assert sized.index("mountpoint -q /mnt/phasekit-data || { echo 'phasekit: data volume not mounted at "
                       "/mnt/phasekit-data' >&2; exit 1; }") < sized.index(
        "# The data volume is 20 GiB; wait until the kernel sees that size (a resize shows up online).") < next(
        index for index, line in enumerate(sized) if line.startswith("resize2fs "))


def test_a_changed_config_file_changes_its_service_so_compose_recreates_it():
    from dataclasses import replace
    before = yaml.safe_load(render_public_files(STACK)["compose.yaml"].content)["services"]
    resized = replace(STACK, machine=Machine(vcpus=4, memory_mib=8192))
    after = yaml.safe_load(render_public_files(resized)["compose.yaml"].content)["services"]
    label = "phasekit.config-digest"
    assert after["db"]["labels"][label] != before["db"]["labels"][label]
    assert after["redis"]["labels"][label] != before["redis"]["labels"][label]
    assert after["proxy"]["labels"] == before["proxy"]["labels"]
    renewed = yaml.safe_load(render_public_files(STACK, "NEW CERT")["compose.yaml"].content)["services"]
    assert renewed["proxy"]["labels"][label] != before["proxy"]["labels"][label]
    assert renewed["db"]["labels"] == before["db"]["labels"]


def test_without_release_command_there_is_no_migrate_service():
    from dataclasses import replace
    stack = replace(STACK, app=replace(APP, release_command=None))
    services = compose_config(stack)["services"]
    assert "migrate" not in services
    assert "docker compose run --rm -T migrate" not in render_deploy_script(stack)


def test_a_droplet_behind_the_balancer_closes_client_connections_while_it_drains():
    web = dataclasses.replace(STACK, role="web", http_health_route=True)
    routes = caddy_config(web)["apps"]["http"]["servers"]["https"]["routes"]
    assert routes[-2] == {"match": [{"file": {"root": "/srv/phasekit-drain", "try_files": ["/draining"]}}],
                          "handle": [{"handler": "headers", "response": {"set": {"Connection": ["close"]}}}]}
    assert routes[-1]["handle"][0]["handler"] == "reverse_proxy"
    assert all(route["match"][0].get("file") is None for route in caddy_config(STACK)["apps"]["http"]["servers"][
        "https"]["routes"])


def test_the_proxy_does_not_depend_on_the_app_so_an_app_rollout_never_restarts_it():
    assert "depends_on" not in compose_config(STACK)["services"]["proxy"]


def test_every_long_running_service_restarts_rotates_logs_and_data_lives_on_the_volume():
    services = compose_config(STACK)["services"]
    for name in ("proxy", "app", "db", "redis"):
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}}
    assert services["db"]["volumes"][0] == {"type": "bind", "source": "/mnt/phasekit-data/postgres",
                                            "target": "/var/lib/postgresql/data", "read_only": False}
    assert services["redis"]["volumes"][0]["source"] == "/mnt/phasekit-data/redis"
    assert services["db"]["healthcheck"]["test"] == ["CMD", "pg_isready", "--username", "app", "--dbname", "app"]


def test_caddy_presents_the_origin_certificate_with_tls12_minimum():
    config = caddy_config(STACK)
    https = config["apps"]["http"]["servers"]["https"]
    assert https["tls_connection_policies"] == [{"match": {"sni": ["app.example.com"]}, "protocol_min": "tls1.2"}]
    assert https["automatic_https"] == {"disable": True}
    assert config["apps"]["tls"]["certificates"]["load_files"] == [
        {"certificate": "/etc/caddy/tls/origin.pem", "key": "/etc/caddy/tls/origin.key",
         "tags": ["cloudflare-origin"]}]
    upstream = https["routes"][-1]["handle"][0]
    assert upstream["upstreams"] == [{"dial": "app:8000"}]
    assert upstream["health_checks"]["active"]["uri"] == "/healthz"
    assert config["admin"] == {"disabled": True}


def test_caddy_uses_acme_when_not_behind_cloudflare():
    from dataclasses import replace
    config = caddy_config(replace(STACK, tls_mode="acme"))
    assert "tls" not in config["apps"]
    assert "automatic_https" not in config["apps"]["http"]["servers"]["https"]


def test_app_contract_names_are_fixed_and_win_over_user_env():
    from dataclasses import replace
    stack = replace(STACK, app=replace(APP, env={"LOG_LEVEL": "info", "PORT": "1"}))
    environment = app_environment(stack, SECRETS)
    assert environment == {
        "LOG_LEVEL": "info",
        "PORT": "8000",
        "SECRET_KEY_BASE": "skb",
        "DATABASE_URL": "postgresql://app:dbpw@db:5432/app",
        "REDIS_URL": "redis://:redispw@redis:6379/0",
        "WEB_CONCURRENCY": "2",
        "MEDIA_BUCKET": "phasekit-test-media",
    }


def test_env_file_quotes_values_literally():
    assert render_env_file({"A": "x$y #z"}) == "A='x$y #z'\n"
    with pytest.raises(ValueError):
        render_env_file({"A": "it's"})


def test_bundle_is_deterministic_and_keeps_modes_and_owners():
    packed = pack_bundle(render_bundle(STACK, SECRETS))
    assert packed == pack_bundle(render_bundle(STACK, SECRETS))
    members = {member.name: member for member in tarfile.open(fileobj=io.BytesIO(packed)).getmembers()}
    assert {name: (member.mode, member.uid) for name, member in members.items()
            if name.startswith(("secrets", "tls"))} == {
        "secrets": (0o700, 0), "tls": (0o700, 0),
        "secrets/app.env": (0o600, 0), "secrets/db_password": (0o600, 0),
        "secrets/redis_auth.conf": (0o400, 999), "secrets/redis_password": (0o400, 999),
        "tls/origin.key": (0o600, 0), "tls/origin.pem": (0o644, 0)}
    assert members["deploy.sh"].mode == 0o755


def test_public_files_hold_no_secret():
    public = render_public_files(STACK)
    assert set(public) == {"compose.yaml", "deploy.sh", "health.sh", "caddy/caddy.json", "postgres/postgresql.conf",
                           "redis/redis.conf", "volume-check.sh", "systemd/phasekit-volume-check.service",
                           "systemd/phasekit-volume-check.timer"}
    for entry in public.values():
        assert "dbpw" not in entry.content and "redispw" not in entry.content


def test_cloud_init_installs_docker_and_waits_for_the_volume():
    document = cloud_config(render_public_files(STACK))
    assert document["ssh_pwauth"] is False
    assert document["packages"] == ["docker.io", "docker-compose-v2", "docker-buildx", "unattended-upgrades"]
    assert cloud_config(render_public_files(STACK), data_volume=False)["packages"] == [
        "docker.io", "docker-compose-v2", "unattended-upgrades"]
    drop_in = next(entry for entry in document["write_files"]
                   if entry["path"] == "/etc/systemd/system/docker.service.d/10-phasekit-data.conf")
    assert drop_in["content"] == "[Unit]\nRequiresMountsFor=/mnt/phasekit-data\n"
    daemon = next(entry for entry in document["write_files"] if entry["path"] == "/etc/docker/daemon.json")
    assert json.loads(daemon["content"])["log-opts"] == {"max-size": "10m", "max-file": "5"}
    compose = next(entry for entry in document["write_files"] if entry["path"] == "/opt/phasekit/compose.yaml")
    assert compose["content"] == render_public_files(STACK)["compose.yaml"].content


@pytest.mark.parametrize(("server", "key"), [("ghcr.io", "ghcr.io"), ("docker.io", "https://index.docker.io/v1/")])
def test_registry_credentials_go_to_a_private_docker_config(server, key):
    from dataclasses import replace
    stack = replace(STACK, app=replace(APP, registry_server=server, registry_username="acme"))
    files = render_bundle(stack, replace(SECRETS, registry_password="tok"))
    config = files["secrets/docker/config.json"]
    assert config.mode == 0o600
    assert json.loads(config.content) == {"auths": {key: {"auth": "YWNtZTp0b2s="}}}  # base64("acme:tok")
    steps = render_deploy_script(stack).splitlines()
    assert steps.index("export DOCKER_CONFIG=/opt/phasekit/secrets/docker") < steps.index("docker compose pull --quiet")
    assert "DOCKER_CONFIG" not in render_deploy_script(STACK)
    with pytest.raises(ValueError, match="needs the registry password"):
        render_bundle(stack, SECRETS)


def test_connection_urls_encode_credentials_and_name_tls():
    from components.connection_urls import postgres_url, redis_url

    assert postgres_url(user="app", password="p@ss/w:rd", host="10.0.0.5", database="app", sslmode="require") == (
        "postgresql://app:p%40ss%2Fw%3Ard@10.0.0.5:5432/app?sslmode=require"
    )
    assert redis_url(password="a b", host="cache.internal", tls=True) == "rediss://:a%20b@cache.internal:6379/0"
    assert redis_url(password="x", host="redis") == "redis://:x@redis:6379/0"


# --- off-site backups on the host that runs PostgreSQL -------------------------------------------------------

BACKED_UP = dataclasses.replace(STACK, backups=BACKUP_SPEC)
BACKED_UP_SECRETS = dataclasses.replace(SECRETS, **BACKUP_SECRETS)


def test_the_db_service_is_built_with_pgbackrest_and_mounts_its_config_secrets_and_spool():
    services = compose_config(BACKED_UP)["services"]
    db = services["db"]
    assert (db["image"], db["build"]) == ("phasekit/postgres-pgbackrest:16.15-bookworm", {"context": "./postgres"})
    assert db["volumes"] == [
        {"type": "bind", "source": "/mnt/phasekit-data/postgres", "target": "/var/lib/postgresql/data",
         "read_only": False},
        {"type": "bind", "source": "./postgres/postgresql.conf", "target": "/etc/postgresql/postgresql.conf",
         "read_only": True},
        {"type": "bind", "source": "./postgres/pgbackrest.conf", "target": "/etc/pgbackrest/pgbackrest.conf",
         "read_only": True},
        {"type": "bind", "source": "./secrets/pgbackrest.conf", "target": "/etc/pgbackrest/conf.d/secrets.conf",
         "read_only": True},
        {"type": "bind", "source": "/mnt/phasekit-data/pgbackrest", "target": "/var/spool/pgbackrest",
         "read_only": False},
    ]
    assert services["proxy"]["volumes"][-1] == {"type": "bind", "source": "./status",
                                                 "target": "/srv/phasekit-status", "read_only": True}
    assert {name: service.get("ports", []) for name, service in services.items()}["db"] == []
    assert "build" not in compose_config(STACK)["services"]["db"]


def test_caddy_serves_the_status_files_uncached_before_the_app_route():
    routes = caddy_config(BACKED_UP)["apps"]["http"]["servers"]["https"]["routes"]
    assert routes[:2] == [{
        "match": [{"host": ["app.example.com"], "path": [path]}],
        "handle": [{"handler": "headers", "response": {"set": {"Cache-Control": ["no-store"]}}},
                   {"handler": "rewrite", "uri": f"/{file}"},
                   {"handler": "file_server", "root": "/srv/phasekit-status"}],
        "terminal": True,
    } for path, file in (("/.well-known/phasekit/backup", "backup.txt"),
                         ("/.well-known/phasekit/volume", "volume.txt"))]
    assert routes[2]["handle"][0]["handler"] == "reverse_proxy"
    # Without off-site backups the host still answers its data volume's status.
    assert [route["match"][0].get("path") for route in caddy_config(STACK)["apps"]["http"]["servers"]["https"][
        "routes"]] == [["/.well-known/phasekit/volume"], None]
    # Without the status file (or, on a web host, the data host's status server) the connection is dropped.
    assert caddy_config(BACKED_UP)["apps"]["http"]["servers"]["https"]["errors"] == {"routes": [{
        "match": [{"path": ["/.well-known/phasekit/backup", "/.well-known/phasekit/volume"],
                   "host": ["app.example.com"]}],
        "handle": [{"handler": "static_response", "abort": True}], "terminal": True}]}
    assert caddy_config(STACK)["apps"]["http"]["servers"]["https"]["errors"]["routes"][0]["match"][0]["path"] == [
        "/.well-known/phasekit/volume"]
    web = dataclasses.replace(STACK, role="web")
    assert "errors" not in caddy_config(web)["apps"]["http"]["servers"]["https"]  # nothing to report here


def test_a_web_host_proxies_the_status_path_to_the_data_host_named_in_its_environment():
    web = dataclasses.replace(STACK, role="web", backup_status_upstream=True)
    route = caddy_config(web)["apps"]["http"]["servers"]["https"]["routes"][0]
    assert route["handle"][1:] == [{"handler": "rewrite", "uri": "/backup.txt"},
                                   {"handler": "reverse_proxy",
                                    "upstreams": [{"dial": "{env.PHASEKIT_BACKUP_STATUS_UPSTREAM}"}]}]
    assert compose_config(web)["services"]["proxy"]["env_file"] == ["./proxy.env"]
    secrets = dataclasses.replace(SECRETS, db_password=None, redis_password=None, database_url="postgresql://x",
                                  redis_url="redis://x", backup_status_upstream="10.10.0.5:8079")
    assert render_bundle(web, secrets)["proxy.env"].content == "PHASEKIT_BACKUP_STATUS_UPSTREAM='10.10.0.5:8079'\n"
    with pytest.raises(ValueError, match="StackSecrets.backup_status_upstream is required on this host"):
        render_bundle(web, dataclasses.replace(secrets, backup_status_upstream=None))


@pytest.mark.parametrize(("changes", "message"), [
    ({"role": "web", "backups": BACKUP_SPEC}, "HostStack.backups: only a host that runs the data stores backs them up"),
    ({"backup_status_upstream": True},
     "HostStack.backup_status_upstream: only a web host proxies another host's status"),
])
def test_backups_belong_to_the_host_that_runs_the_data_stores(changes, message):
    with pytest.raises(ValueError) as caught:
        dataclasses.replace(STACK, **changes)
    assert str(caught.value) == message


def test_deploy_builds_the_database_image_checks_archiving_and_enables_the_backup_timers_in_order():
    lines = render_deploy_script(BACKED_UP).splitlines()
    start = lines.index("docker compose pull --quiet --ignore-buildable")
    assert lines[start - 4] == (
        "install -d -m 0700 -o 999 -g 999 /mnt/phasekit-data/postgres /mnt/phasekit-data/redis "
        "/mnt/phasekit-data/pgbackrest")
    # unattended-upgrades holds the dpkg lock on a young droplet: apt waits for it instead of failing the rollout
    assert lines[start - 1] == (
        "dpkg -s docker-buildx >/dev/null 2>&1 || { apt-get -o DPkg::Lock::Timeout=300 update --quiet "
        "&& DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install --yes --quiet docker-buildx; }")
    assert lines[start:start + 5] == [
        "docker compose pull --quiet --ignore-buildable",
        "docker compose build --pull db",
        "install -d -m 0755 status",
        "docker compose up --detach --wait --wait-timeout 300 db redis",
        "/opt/phasekit/backup.sh init || { echo 'phasekit: WAL archiving to the backups bucket does not work "
        "(see pgbackrest check above)' >&2; exit 1; }",
    ]
    assert lines.index("docker compose run --rm -T migrate") == start + 5  # the app changes only after the check
    health = lines.index("./health.sh http://127.0.0.1:8000")
    assert lines[health + 1:health + 5] == [
        "install -m 0644 systemd/phasekit-volume-check.service systemd/phasekit-volume-check.timer "
        "/etc/systemd/system/",
        "systemctl daemon-reload",
        "systemctl enable --now phasekit-volume-check.timer",
        "/opt/phasekit/volume-check.sh",
    ]
    assert lines[health + 5:health + 13] == [
        "! systemctl is-enabled --quiet phasekit-pg-dump.timer 2>/dev/null || systemctl disable --now "
        "phasekit-pg-dump.timer",
        "rm -f /etc/systemd/system/phasekit-pg-dump.timer /etc/systemd/system/phasekit-pg-dump.service",
        "install -m 0644 systemd/phasekit-backup-* /etc/systemd/system/",
        "systemctl daemon-reload",
        "systemctl enable --now phasekit-backup-diff.timer phasekit-backup-full.timer phasekit-backup-redis.timer "
        "phasekit-backup-status.timer",
        # the first backups of a new stack start in the background, never inside the rollout
        "/opt/phasekit/backup.sh has-backup || systemctl start --no-block phasekit-backup-full.service",
        "[ -s /opt/phasekit/status/redis-last-success ] || systemctl start --no-block phasekit-backup-redis.service",
        "docker image prune --force --filter until=168h >/dev/null",
    ]
    assert "docker compose pull --quiet" in render_deploy_script(STACK).splitlines()


def test_postgresql_archives_continuously_within_half_the_recovery_point():
    conf = render_public_files(BACKED_UP)["postgres/postgresql.conf"].content.splitlines()
    assert conf[-4:] == ["wal_level = 'replica'", "archive_mode = 'on'",
                         "archive_command = 'pgbackrest --stanza=app archive-push %p'", "archive_timeout = '150s'"]
    assert not any(line.startswith("archive") for line in
                   render_public_files(STACK)["postgres/postgresql.conf"].content.splitlines())


def test_backup_files_are_public_or_secret_as_they_should_be():
    public = render_public_files(BACKED_UP)
    assert set(public) == {
        "compose.yaml", "deploy.sh", "health.sh", "caddy/caddy.json", "postgres/postgresql.conf", "redis/redis.conf",
        "postgres/Dockerfile", "postgres/pgbackrest.conf", "backup.sh", "volume-check.sh",
        "systemd/phasekit-volume-check.service", "systemd/phasekit-volume-check.timer",
        *(f"systemd/phasekit-backup-{kind}.{unit}" for kind in ("full", "diff", "redis", "status")
          for unit in ("service", "timer"))}
    assert public["postgres/Dockerfile"].content.splitlines()[1] == "FROM postgres:16.15-bookworm"
    for entry in public.values():
        assert BACKUP_SECRETS["backup_passphrase"] not in entry.content
        assert BACKUP_SECRETS["backup_secret_access_key"] not in entry.content
    bundle = render_bundle(BACKED_UP, BACKED_UP_SECRETS)
    without_backups = render_bundle(STACK, SECRETS)
    assert {path: (entry.mode, entry.owner_id) for path, entry in bundle.items()
            if path not in public and path not in without_backups} == {
        "secrets/pgbackrest.conf": (0o400, 999), "secrets/backup_passphrase": (0o400, 0),
        "secrets/r2-curl.conf": (0o400, 0)}
    assert bundle["secrets/backup_passphrase"].content == BACKUP_SECRETS["backup_passphrase"]
    with pytest.raises(ValueError, match="StackSecrets.backup_passphrase is required on this host"):
        render_bundle(BACKED_UP, dataclasses.replace(BACKED_UP_SECRETS, backup_passphrase=None))


def test_a_changed_backup_config_restarts_the_database():
    label = "phasekit.config-digest"
    before = yaml.safe_load(render_public_files(BACKED_UP)["compose.yaml"].content)["services"]["db"]["labels"]
    changed = dataclasses.replace(BACKED_UP, backups=dataclasses.replace(BACKUP_SPEC, retention_full=2))
    after = yaml.safe_load(render_public_files(changed)["compose.yaml"].content)["services"]["db"]["labels"]
    assert before[label] != after[label]


def test_cloud_init_schedules_no_dump_to_the_root_disk():
    document = cloud_config(render_public_files(BACKED_UP))
    assert not any("pg-dump" in entry["path"] or entry["path"].startswith("/var/backups")
                   for entry in document["write_files"])
    assert document["runcmd"][0] == ["install", "-d", "-m", "0700", "/opt/phasekit/secrets", "/opt/phasekit/tls"]


def test_the_status_folder_is_spelled_the_same_in_both_modules():
    from components.backups import BACKUP_STATUS_DIR
    from components.compose_stack import BACKUP_STATUS_DIR_NAME

    assert BACKUP_STATUS_DIR_NAME == BACKUP_STATUS_DIR
