"""Every file phasekit renders for the droplet, handed to the real program that will consume it.

The tools come from Debian (scripts/install-test-tools.sh); their versions differ from what runs on the
droplet (cloud-init 22.4 vs Ubuntu 24.04's, docker-compose 1.29 vs Compose v2, caddy 2.6 vs the 2.8
image, PostgreSQL 15 vs 16, Redis 7.0 vs 7.4), so a pass here means the file is valid for the older
consumer: phasekit renders nothing that only a newer version would accept.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from dataclasses import replace

import pytest
import yaml

from components.backups import postgres_archive_settings
from components.cloud_init import render_cloud_init
from components.compose_stack import (
    app_environment,
    redis_settings,
    render_deploy_script,
    render_env_file,
    render_postgresql_conf,
    render_public_files,
    render_redis_auth,
    render_redis_conf,
)
from components.droplet_parts import rollout_script
from components.proxy_config import render_caddy_json
from components.single_vps import SingleVps
from components.testing import run_recorded
from components.tuning import Machine, postgres_settings
from tests.builders import APP, BACKUP_SPEC, HOST_STACK, STACK_SECRETS, offsite_args, vps_args
from tests.realtools import (
    caddy_validate,
    cloud_init_schema,
    compose_config,
    pinned_caddy,
    running_postgres,
    running_redis,
    self_signed_cert,
    shellcheck,
)

STACK = replace(HOST_STACK, machine=Machine(vcpus=1, memory_mib=2048))
SECRETS = STACK_SECRETS


@pytest.mark.parametrize("tls_mode", ["origin-certificate", "acme"])
def test_cloud_init_schema_accepts_the_user_data(tls_mode):
    user_data = render_cloud_init(render_public_files(replace(STACK, tls_mode=tls_mode)))
    assert "Valid cloud-config" in cloud_init_schema(user_data)


def test_docker_pulls_docker_hub_images_through_google_mirror_on_first_boot():
    """Docker Hub limits anonymous pulls per IPv6 /64, which droplets share; mirror.gcr.io caches Docker Hub."""
    document = yaml.safe_load(render_cloud_init(render_public_files(STACK)).removeprefix("#cloud-config\n"))
    daemon = next(entry for entry in document["write_files"] if entry["path"] == "/etc/docker/daemon.json")
    assert daemon["content"] == (
        '{\n  "log-driver": "json-file",\n  "log-opts": {\n    "max-size": "10m",\n    "max-file": "5"\n  },\n'
        '  "live-restore": true,\n  "registry-mirrors": [\n    "https://mirror.gcr.io"\n  ]\n}\n')


def test_cloud_init_schema_accepts_what_the_droplet_is_given():
    user_data = run_recorded(lambda: SingleVps("web", vps_args())).one(
        "digitalocean:index/droplet:Droplet").inputs["userData"]
    assert "Valid cloud-config" in cloud_init_schema(user_data)


@pytest.mark.parametrize("release_command", [("python", "manage.py", "migrate"), None])
def test_docker_compose_accepts_the_stack(release_command):
    stack = replace(STACK, app=replace(APP, release_command=release_command))
    files = {
        "secrets/app.env": render_env_file(app_environment(stack, SECRETS)),
        "secrets/db_password": "dbpw",
        "secrets/redis_password": "redispw",
        "secrets/redis_auth.conf": render_redis_auth("redispw"),
    }
    normalised = compose_config(render_public_files(stack)["compose.yaml"].content, files)
    services = normalised["services"]
    assert set(services) == ({"proxy", "app", "db", "redis", "migrate"} if release_command
                             else {"proxy", "app", "db", "redis"})
    # The env file is read as the app will see it: the contract arrives with literal values.
    assert services["app"]["environment"]["DATABASE_URL"] == "postgresql://app:dbpw@db:5432/app"
    assert services["app"]["environment"]["REDIS_URL"] == "redis://:redispw@redis:6379/0"
    # docker-compose 1.29 normalises host-bound ports to strings, the others to mappings.
    assert services["proxy"]["ports"] == [{"published": 80, "target": 80}, {"published": 443, "target": 443}]
    assert services["app"]["ports"] == ["127.0.0.1:8000:8000/tcp"]
    assert [name for name, service in services.items() if "ports" in service] == ["app", "proxy"]


@pytest.mark.parametrize("tls_mode", ["origin-certificate", "acme"])
def test_caddy_validates_the_proxy_config(tmp_path, tls_mode):
    cert, key = self_signed_cert(tmp_path, "app.example.com")
    config = render_caddy_json(replace(STACK, tls_mode=tls_mode), cert_file=str(cert), key_file=str(key))
    assert "Valid configuration" in caddy_validate(config)


def test_caddy_refuses_the_config_when_the_origin_certificate_is_missing(tmp_path):
    config = render_caddy_json(STACK, cert_file=str(tmp_path / "absent.pem"), key_file=str(tmp_path / "absent.key"))
    with pytest.raises(AssertionError, match="caddy rejected the config"):
        caddy_validate(config)


@pytest.mark.parametrize(("machine", "connections"), [(Machine(1, 2048), 20), (Machine(2, 4096), 30)])
def test_postgres_runs_with_the_rendered_settings(machine, connections):
    settings = postgres_settings(machine, connections)
    with running_postgres(render_postgresql_conf(settings)) as server:
        shown = {name: server.show(name) for name in settings if name != "listen_addresses"}
    assert shown == {name: value for name, value in settings.items() if name != "listen_addresses"}


def test_postgres_refuses_a_setting_it_does_not_know():
    with pytest.raises(AssertionError):
        with running_postgres(render_postgresql_conf({"shared_bufers": "128MB"})):
            pass


def test_redis_runs_with_the_rendered_config_and_requires_the_password():
    # The droplet's paths (/data, /run/secrets) exist only in the container: point them at the temp dir.
    settings = redis_settings(STACK.machine, data_dir=".", auth_include="redis_auth.conf")
    files = {"redis_auth.conf": render_redis_auth("redispw")}
    with running_redis(render_redis_conf(settings), files, password="redispw") as server:
        assert server.config_get("maxmemory") == str(256 * 1024 * 1024)
        assert server.config_get("maxmemory-policy") == "volatile-lru"
        assert server.config_get("appendonly") == "yes"
        assert server.config_get("appendfsync") == "everysec"
        assert server.config_get("save") == "3600 1 300 100 60 10000"
        assert "NOAUTH" in server.cli("PING")
        assert server.cli("PING", password="redispw") == "PONG"


@pytest.mark.parametrize(("name", "script"), [
    ("deploy.sh", render_deploy_script(STACK)),
    ("deploy.sh with a registry", render_deploy_script(
        replace(STACK, app=replace(APP, registry_server="ghcr.io", registry_username="acme")))),
    ("rollout", "#!/bin/sh\n" + rollout_script(data_volume=True) + "\n"),
    ("rollout of a web host", "#!/bin/sh\n" + rollout_script(data_volume=False) + "\n"),
])
def test_shell_scripts_pass_shellcheck(name, script):
    shellcheck(script)


def test_public_caddy_json_is_what_the_droplet_reads():
    """The droplet's file uses the in-container paths; only the test above swaps them for temp files."""
    caddy = json.loads(render_public_files(STACK)["caddy/caddy.json"].content)
    assert caddy["apps"]["tls"]["certificates"]["load_files"][0]["certificate"] == "/etc/caddy/tls/origin.pem"


# --- off-site backups -----------------------------------------------------------------------------------------

BACKED_UP = replace(STACK, backups=BACKUP_SPEC)


def test_docker_compose_accepts_the_stack_with_backups():
    public = render_public_files(BACKED_UP)
    files = {
        "secrets/app.env": render_env_file(app_environment(BACKED_UP, SECRETS)),
        "secrets/db_password": "dbpw",
        "secrets/redis_password": "redispw",
        "secrets/redis_auth.conf": render_redis_auth("redispw"),
        # docker-compose checks that the build context exists.
        "postgres/Dockerfile": public["postgres/Dockerfile"].content,
    }
    services = compose_config(public["compose.yaml"].content, files)["services"]
    assert services["db"]["image"] == "phasekit/postgres-pgbackrest:16.15-bookworm"
    assert services["db"]["build"]["context"].endswith("/postgres")
    assert [name for name, service in services.items() if "ports" in service] == ["app", "proxy"]


@pytest.mark.parametrize("stack", [BACKED_UP, replace(STACK, role="web", backup_status_upstream=True)],
                         ids=["serves-its-own-status", "proxies-the-data-host"])
def test_caddy_validates_the_status_route(tmp_path, stack):
    cert, key = self_signed_cert(tmp_path, "app.example.com")
    config = render_caddy_json(stack, cert_file=str(cert), key_file=str(key))
    assert "Valid configuration" in caddy_validate(config)


def test_cloud_init_schema_accepts_the_user_data_with_backups():
    user_data = run_recorded(lambda: SingleVps("web", vps_args(offsite_backups=offsite_args()))).one(
        "digitalocean:index/droplet:Droplet").inputs["userData"]
    assert "Valid cloud-config" in cloud_init_schema(user_data)


def test_deploy_sh_with_backups_passes_shellcheck():
    shellcheck(render_deploy_script(BACKED_UP))


def test_postgres_starts_with_the_archiving_settings():
    """No repository exists here, so each archive attempt fails and is retried; the server must still start
    and run with exactly these settings."""
    settings = {**postgres_settings(STACK.machine, 20), **postgres_archive_settings(BACKUP_SPEC)}
    with running_postgres(render_postgresql_conf(settings)) as server:
        assert {name: server.show(name) for name in ("wal_level", "archive_mode", "archive_command",
                                                       "archive_timeout")} == {
            "wal_level": "replica", "archive_mode": "on",
            "archive_command": "pgbackrest --stanza=app archive-push %p", "archive_timeout": "150s"}


def _get_over_tls(port: int, path: str, hostname: str = "app.example.com") -> bytes:
    """One HTTP/1.1 GET with SNI and Host ``hostname`` to 127.0.0.1:port (certificate not checked); the raw
    answer, or b"" when the server closes the connection without one."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    for _ in range(100):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except ConnectionRefusedError:  # Caddy is still starting
            time.sleep(0.1)
    else:
        raise AssertionError(f"nothing listens on 127.0.0.1:{port}")
    with context.wrap_socket(raw, server_hostname=hostname) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        try:
            while chunk := tls.recv(65536):
                answer += chunk
        except (ConnectionResetError, ssl.SSLError):
            pass
    return answer


def test_caddy_serves_the_status_file_and_drops_the_connection_without_it(tmp_path):
    """Real Caddy runs the rendered proxy config, with the ports, certificate and status folder moved to the test
    machine: the status file comes back uncached, and without it the connection closes with no answer."""
    cert, key = self_signed_cert(tmp_path, "app.example.com")
    config = json.loads(render_caddy_json(BACKED_UP, cert_file=str(cert), key_file=str(key)))
    status = tmp_path / "status"
    status.mkdir()
    (status / "backup.txt").write_text("ok newest-backup=2026-12-03T03:30:00Z\n")
    servers = config["apps"]["http"]["servers"]
    https_port, http_port = (_free_port() for _ in range(2))
    servers["https"]["listen"], servers["http"]["listen"] = [f"127.0.0.1:{https_port}"], [f"127.0.0.1:{http_port}"]
    servers["https"]["routes"][0]["handle"][2]["root"] = str(status)
    (tmp_path / "caddy.json").write_text(json.dumps(config))
    caddy = subprocess.Popen([pinned_caddy(), "run", "--config", str(tmp_path / "caddy.json")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        answer = _get_over_tls(https_port, "/.well-known/phasekit/backup")
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nCache-Control: no-store\r\n" in answer
        assert answer.endswith(b"\r\n\r\nok newest-backup=2026-12-03T03:30:00Z\n")
        (status / "backup.txt").unlink()
        assert _get_over_tls(https_port, "/.well-known/phasekit/backup") == b""
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
