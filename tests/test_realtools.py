"""The helpers in tests/realtools.py must be able to fail as well as pass: each real tool gets a
small hand-written valid input and inputs it has to reject."""

from __future__ import annotations

import json
import socket

import pytest

from tests.realtools import (
    caddy_validate,
    cloud_init_schema,
    compose_config,
    running_postgres,
    running_redis,
    self_signed_cert,
)

# --------------------------------------------------------------------------------------------
# cloud-init

VALID_CLOUD_CONFIG = """\
#cloud-config
package_update: true
packages: [docker.io, docker-compose]
users:
  - name: deploy
    groups: [docker]
    shell: /bin/bash
    ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4VnVb0k7e5PVa5HnsSfXWqStJj0xU5oP3Hn6P6O2pm deploy"]
write_files:
  - path: /opt/app/compose.yaml
    permissions: "0644"
    content: |
      services: {}
runcmd:
  - [systemctl, enable, --now, docker]
"""


def test_cloud_init_accepts_a_valid_cloud_config():
    assert "Valid cloud-config" in cloud_init_schema(VALID_CLOUD_CONFIG)


@pytest.mark.parametrize(
    ("user_data", "complaint"),
    [
        pytest.param("#cloud-config\nruncmd: 5\n", "is not of type 'array'", id="wrong-type"),
        pytest.param("#cloud-config\nbogus_key: 1\npackages: [x]\n", "in no cloud-init module's schema.*: bogus_key", id="unknown-top-level-key"),
        pytest.param("#cloud-config\nusers:\n  - name: x\n    bogus: 1\n", "users.0", id="unknown-key-in-user"),
        pytest.param("#cloud-config\nwrite_files:\n  - path: /x\n    contnet: y\n", "write_files.0", id="unknown-key-in-write-files"),
        pytest.param("packages: [x]\n", 'needs to begin with "#cloud-config"', id="no-header"),
        pytest.param("#cloud-config\npackages: [x\n", "not valid yaml", id="broken-yaml"),
        pytest.param("#cloud-config\napt_upgrade: true\n", "DEPRECATED", id="deprecated-key"),
    ],
)
def test_cloud_init_rejects_an_invalid_cloud_config(user_data, complaint):
    with pytest.raises(AssertionError, match=complaint):
        cloud_init_schema(user_data)


def test_cloud_init_deprecations_can_be_allowed():
    assert "DEPRECATED" in cloud_init_schema("#cloud-config\napt_upgrade: true\n", allow_deprecated=True)


# --------------------------------------------------------------------------------------------
# docker-compose

VALID_COMPOSE = """\
services:
  migrate:
    image: ghcr.io/example/app:${APP_TAG}
    command: [python, manage.py, migrate]
  web:
    image: ghcr.io/example/app:${APP_TAG}
    ports: ["127.0.0.1:8000:8000"]
    depends_on:
      migrate:
        condition: service_completed_successfully
    secrets: [db_password]
    volumes:
      - type: bind
        source: ./static
        target: /srv/static
        read_only: true
    healthcheck:
      test: [CMD, curl, -fsS, http://127.0.0.1:8000/healthz]
      interval: 10s
      timeout: 3s
      retries: 3
      start_period: 30s
    logging:
      driver: json-file
      options: {max-size: 10m, max-file: "3"}
    deploy:
      resources:
        limits: {memory: 256M}
    read_only: true
    security_opt: [no-new-privileges:true]
    cap_drop: [ALL]
    pids_limit: 200
    restart: unless-stopped
secrets:
  db_password:
    file: ./secrets/db_password
"""
COMPOSE_FILES = {".env": "APP_TAG=1.2.3\n", "secrets/db_password": "s3cret\n", "static/index.html": "hi\n"}


def test_compose_accepts_a_valid_compose_file_and_returns_the_normalised_config():
    config = compose_config(VALID_COMPOSE, COMPOSE_FILES)
    web = config["services"]["web"]
    assert web["image"] == "ghcr.io/example/app:1.2.3"  # interpolated from the given .env
    assert web["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert web["read_only"] is True and web["cap_drop"] == ["ALL"] and web["pids_limit"] == 200
    assert web["deploy"]["resources"]["limits"]["memory"] == "256M"
    assert config["secrets"]["db_password"]["file"].endswith("/secrets/db_password")


@pytest.mark.parametrize(
    ("compose_yaml", "complaint"),
    [
        pytest.param("services:\n  web:\n    image: nginx\n    bogus: 1\n",
                     "Unsupported config option for services.web: 'bogus'", id="unknown-service-key"),
        pytest.param("services:\n  web:\n    image: nginx\nbogus_top: 1\n", "'bogus_top' does not match any of the regexes", id="unknown-top-level-key"),
        pytest.param("services:\n  web:\n    image: nginx\n    depends_on: [db]\n", "depends on service 'db' which is undefined", id="undefined-dependency"),
        pytest.param("services:\n  web:\n    image: nginx:${TAG}\n", "TAG variable is not set", id="unset-variable"),
        # Compose-spec features docker-compose 1.29 does not know:
        pytest.param("services:\n  web:\n    image: nginx\n    volumes:\n      - type: bind\n        source: .\n"
                     "        target: /x\n        bind: {create_host_path: false}\n",
                     "unsupported option: 'create_host_path'", id="v1-lacks-bind-create_host_path"),
        pytest.param("name: app\nservices:\n  web:\n    image: nginx\n", "'name' does not match", id="v1-lacks-top-level-name"),
    ],
)
def test_compose_rejects_an_invalid_compose_file(compose_yaml, complaint):
    with pytest.raises(AssertionError, match=complaint):
        compose_config(compose_yaml)


def test_a_missing_tool_fails_with_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssertionError, match="install-test-tools.sh"):
        compose_config("services:\n  web:\n    image: nginx\n")


# --------------------------------------------------------------------------------------------
# Caddy

HOST = "app.example.test"


def caddy_reverse_proxy(handler: dict | None = None, **top_level) -> str:
    handler = handler or {"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:8000"}]}
    config = {
        "admin": {"disabled": True},
        "apps": {
            "http": {"servers": {"https": {
                "listen": [":443"],
                "routes": [{"match": [{"host": [HOST]}], "handle": [handler], "terminal": True}],
                "tls_connection_policies": [{"match": {"sni": [HOST]}}],
            }}},
            "tls": {"certificates": {"load_files": [
                {"certificate": "tls/origin.crt", "key": "tls/origin.key", "tags": ["origin"]},
            ]}},
        },
        **top_level,
    }
    return json.dumps(config, indent=2)


@pytest.fixture
def origin_cert(tmp_path):
    cert, key = self_signed_cert(tmp_path, HOST)
    return {"tls/origin.crt": cert.read_bytes(), "tls/origin.key": key.read_bytes()}


def test_caddy_accepts_a_reverse_proxy_with_tls_from_files(origin_cert):
    assert "Valid configuration" in caddy_validate(caddy_reverse_proxy(), origin_cert)


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        pytest.param(caddy_reverse_proxy({"handler": "reverse_prox", "upstreams": [{"dial": "127.0.0.1:8000"}]}),
                     "unknown module: http.handlers.reverse_prox", id="unknown-handler"),
        pytest.param(caddy_reverse_proxy({"handler": "reverse_proxy", "upstream": [{"dial": "127.0.0.1:8000"}]}),
                     'unknown field "upstream"', id="unknown-field-in-module"),
        pytest.param(caddy_reverse_proxy(appz={}), 'unknown field "appz"', id="unknown-top-level-key"),
        pytest.param('{"apps": {', "not JSON", id="not-json"),
    ],
)
def test_caddy_rejects_an_invalid_config(origin_cert, config, complaint):
    with pytest.raises(AssertionError, match=complaint):
        caddy_validate(config, origin_cert)


def test_caddy_rejects_tls_files_that_do_not_exist():
    with pytest.raises(AssertionError, match="no such file or directory"):
        caddy_validate(caddy_reverse_proxy())


# --------------------------------------------------------------------------------------------
# PostgreSQL


def refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_postgres_runs_with_the_rendered_settings():
    with running_postgres("shared_buffers = '64MB'\nmax_connections = 20\n") as pg:
        assert pg.show("shared_buffers") == "64MB"
        assert pg.show("max_connections") == "20"
        assert pg.show("listen_addresses") == "127.0.0.1"
        assert pg.psql("SELECT 40 + 2").stdout.strip() == "42"  # default hba: trust on 127.0.0.1


@pytest.mark.parametrize(
    ("conf", "complaint"),
    [
        pytest.param("shared_buffers = 'lots'\n", 'invalid value for parameter "shared_buffers"', id="bad-value"),
        pytest.param("shared_bufers = '64MB'\n", 'unrecognized configuration parameter "shared_bufers"', id="unknown-setting"),
    ],
)
def test_postgres_refuses_a_bad_setting(conf, complaint):
    with pytest.raises(AssertionError, match=complaint):
        with running_postgres(conf):
            pass


def test_postgres_hba_admits_only_scram_over_127_0_0_1():
    hba = "host all all 127.0.0.1/32 scram-sha-256\n"
    with running_postgres("password_encryption = 'scram-sha-256'\n", hba) as pg:
        pg.admin("CREATE ROLE app LOGIN PASSWORD 'right-horse'")
        assert pg.show("password_encryption") == "scram-sha-256"

        ok = pg.psql("SELECT current_user", user="app", password="right-horse")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "app"

        wrong = pg.psql("SELECT 1", user="app", password="wrong")
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
        assert pg.psql("SELECT 1", user="app").returncode != 0  # no password, never prompts
        socket_login = pg.psql("SELECT 1", user="app", password="right-horse", host=str(pg.socket_dir))
        assert "no pg_hba.conf entry" in socket_login.stderr


def test_postgres_is_stopped_and_removed_when_the_test_fails():
    with pytest.raises(RuntimeError):
        with running_postgres("") as pg:
            port, tmpdir = pg.port, pg.tmpdir
            raise RuntimeError("test body failed")
    assert refuses_connections(port)
    assert not tmpdir.exists()


# --------------------------------------------------------------------------------------------
# Redis

REDIS_CONF = "maxmemory 64mb\nmaxmemory-policy allkeys-lru\ninclude auth.conf\n"


def test_redis_runs_with_the_rendered_settings_and_requires_auth():
    with running_redis(REDIS_CONF, {"auth.conf": "requirepass s3cret\n"}, password="s3cret") as redis:
        assert redis.config_get("maxmemory") == "67108864"
        assert redis.config_get("maxmemory-policy") == "allkeys-lru"
        assert redis.config_get("bind") == "127.0.0.1"
        assert "NOAUTH" in redis.cli("SET", "k", "v")
        assert redis.cli("SET", "k", "v", password="s3cret") == "OK"
        with pytest.raises(AssertionError, match="WRONGPASS"):
            redis.cli("GET", "k", password="wrong")


def test_redis_refuses_a_bad_config():
    with pytest.raises(AssertionError, match="FATAL CONFIG FILE ERROR"):
        with running_redis("maxmemory lots\n"):
            pass


def test_redis_refuses_a_missing_include():
    with pytest.raises(AssertionError, match="can't open config file 'auth.conf'"):
        with running_redis(REDIS_CONF):
            pass


def test_redis_is_stopped_and_removed_when_the_test_fails():
    with pytest.raises(RuntimeError):
        with running_redis("maxmemory 64mb\n") as redis:
            port, tmpdir = redis.port, redis.tmpdir
            raise RuntimeError("test body failed")
    assert refuses_connections(port)
    assert not tmpdir.exists()
