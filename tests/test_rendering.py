"""Pure renderers and sizing rules, without the Pulumi runtime.

The same files are handed to their real consumers in test_real_consumers.py; here the exact values.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import yaml

from components.cloud_init import cloud_config
from components.compose_stack import (
    app_environment,
    caddy_config,
    compose_config,
    pack_bundle,
    redis_settings,
    render_bundle,
    render_deploy_script,
    render_env_file,
    render_postgresql_conf,
    render_public_files,
)
from components.tuning import Machine, db_max_connections, postgres_settings, redis_maxmemory_mib
from tests.builders import APP, HOST_STACK, STACK_SECRETS

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
        "docker compose up --detach --remove-orphans --wait --wait-timeout 300",
    ]


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
    assert "docker compose run" not in render_deploy_script(stack)


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
    upstream = https["routes"][0]["handle"][0]
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
    assert set(public) == {"compose.yaml", "deploy.sh", "caddy/caddy.json", "postgres/postgresql.conf",
                           "redis/redis.conf"}
    for entry in public.values():
        assert "dbpw" not in entry.content and "redispw" not in entry.content


def test_cloud_init_installs_docker_and_waits_for_the_volume():
    document = cloud_config(render_public_files(STACK))
    assert document["ssh_pwauth"] is False
    assert document["packages"] == ["docker.io", "docker-compose-v2", "unattended-upgrades"]
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
