"""The database host's rendered files, run by the real programs that consume them, on loopback addresses
standing in for the VPC: the droplet's VPC address is 127.0.0.2, the VPC range 127.0.0.0/29 (on Linux all
of 127.0.0.0/8 is local, so a client can come from 127.0.0.4 or 127.0.1.5 without any network setup).

What these tests cannot prove:
- Docker's host networking on the droplet: here PostgreSQL and Redis run directly on the test machine,
  not in containers with ``network_mode: host`` (so that client addresses reach ``pg_hba.conf`` unrewritten
  is an argument in ``components.data_host``, not something run here);
- DigitalOcean's VPC routing: that app droplets' packets arrive from inside the VPC range, and that the
  droplet's VPC address is the one rendered; the cloud firewall in front of it;
- the consumers' versions on the droplet: Debian 12's PostgreSQL 15, Redis 7.0 and PgBouncer 1.18 run
  here, against the postgres:16.15-bookworm and redis:7.4.11-bookworm images and Ubuntu 24.04's (newer) pgbouncer package;
- how the app role comes to exist: the image's entrypoint creates it (as the superuser) from
  ``POSTGRES_PASSWORD_FILE``; here the test creates it over the admin connection;
- ``deploy.sh`` and the systemd units: deploy.sh only passes shellcheck here; volume-check.sh runs with a
  stub ``df``.
"""

from __future__ import annotations

import errno
import http.client
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.data_host import (
    DataHostNetwork,
    DataHostSecrets,
    DataHostStack,
    PgBouncerSpec,
    pgbouncer_settings,
    render_data_bundle,
    render_ini,
)
from components.tuning import Machine
from tests.builders import BACKUP_SECRETS, BACKUP_SPEC
from tests.realtools import (
    compose_config,
    pinned_caddy,
    running_pgbouncer,
    running_postgres,
    running_redis,
    shellcheck,
    tcp_forwarder,
)

VPC_ADDRESS = "127.0.0.2"
NOT_LISTENING = "127.0.0.3"
NETWORK = DataHostNetwork(listen_address=VPC_ADDRESS, client_cidr="127.0.0.0/29")
STACK = DataHostStack(machine=Machine(vcpus=1, memory_mib=2048), app_connections=20, redis=True,
                      pgbouncer=PgBouncerSpec())
# Alphanumeric like the generated ones (droplet_parts.generated_password).
DB_PASSWORD = "Zq7mR2xKp9LwT4vN8cYb3HsJ6dFg1QeA"
REDIS_PASSWORD = "r3DisPw0rd9Xk2Lm7Nq4Vb8Tc1Hy6Jz5"
BUNDLE = render_data_bundle(STACK, NETWORK, DataHostSecrets(db_password=DB_PASSWORD, redis_password=REDIS_PASSWORD))


def connect_errno(host: str, port: int) -> int:
    """0 when a TCP connection to host:port succeeds, else the errno (ECONNREFUSED: nothing listens)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        return sock.connect_ex((host, port))


def replace_line(text: str, old: str, new: str) -> str:
    """``text`` with its one line ``old`` replaced by ``new``; fails if ``old`` is not exactly one line of it."""
    lines = text.split("\n")
    assert lines.count(old) == 1, f"expected exactly one line {old!r} in:\n{text}"
    return "\n".join(new if line == old else line for line in lines)


# --------------------------------------------------------------------------------------------
# PostgreSQL with the rendered postgresql.conf and pg_hba.conf


@pytest.fixture(scope="module")
def postgres():
    """PostgreSQL on the rendered files, keeping their listen_addresses (only the port is random), with the
    app's role and database as the image's entrypoint would create them."""
    with running_postgres(BUNDLE["postgres/postgresql.conf"].content, BUNDLE["postgres/pg_hba.conf"].content,
                          keep_listen_addresses=True) as server:
        server.admin(f"CREATE ROLE app LOGIN PASSWORD '{DB_PASSWORD}'")
        server.admin("CREATE DATABASE app OWNER app")
        yield server


def app_psql(server, sql: str, *, source_ip: str, password: str = DB_PASSWORD, user: str = "app",
             dbname: str = "app") -> subprocess.CompletedProcess[str]:
    """psql to PostgreSQL on the VPC address, arriving from ``source_ip``."""
    with tcp_forwarder(VPC_ADDRESS, server.port, source_ip=source_ip) as port:
        return server.psql(sql, user=user, password=password, dbname=dbname, host="127.0.0.1", port=port)


def test_postgres_listens_on_the_vpc_address_and_loopback_only(postgres):
    assert postgres.show("listen_addresses") == f"{VPC_ADDRESS},127.0.0.1"
    assert connect_errno(VPC_ADDRESS, postgres.port) == 0
    assert connect_errno("127.0.0.1", postgres.port) == 0
    assert connect_errno(NOT_LISTENING, postgres.port) == errno.ECONNREFUSED
    refused = postgres.psql("SELECT 1", user="app", password=DB_PASSWORD, dbname="app", host=NOT_LISTENING)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f'psql: error: connection to server at "{NOT_LISTENING}", '
                                     f"port {postgres.port} failed: Connection refused\n"), refused.stderr


@pytest.mark.parametrize("source_ip", ["127.0.0.4", "127.0.0.7"])  # .7: the last address of the /29
def test_the_app_user_connects_from_inside_the_vpc_range(postgres, source_ip):
    result = app_psql(postgres, "SELECT current_user, current_database(), inet_client_addr()", source_ip=source_ip)
    assert result.returncode == 0, result.stderr
    # The server saw the forwarder's source address: the address pg_hba.conf matched.
    assert result.stdout == f"app|app|{source_ip}\n"


@pytest.mark.parametrize("source_ip", ["127.0.0.8", "127.0.1.5"])  # .8: the first address past the /29
def test_postgres_refuses_the_app_user_from_outside_the_vpc_range(postgres, source_ip):
    result = app_psql(postgres, "SELECT 1", source_ip=source_ip)
    assert result.returncode == 2
    assert result.stderr.endswith(f'FATAL:  no pg_hba.conf entry for host "{source_ip}", user "app", '
                                  'database "app", no encryption\n'), result.stderr


@pytest.mark.parametrize(("user", "dbname"), [("app", "postgres"), ("postgres", "app")])
def test_the_vpc_range_admits_only_the_app_user_to_the_app_database(postgres, user, dbname):
    result = app_psql(postgres, "SELECT 1", source_ip="127.0.0.4", user=user, dbname=dbname)
    assert result.returncode == 2
    assert result.stderr.endswith(f'FATAL:  no pg_hba.conf entry for host "127.0.0.4", user "{user}", '
                                  f'database "{dbname}", no encryption\n'), result.stderr


def test_postgres_refuses_a_wrong_password_from_inside_the_vpc_range(postgres):
    result = app_psql(postgres, "SELECT 1", source_ip="127.0.0.4", password=DB_PASSWORD[:-1] + "x")
    assert result.returncode == 2
    assert result.stderr.endswith('FATAL:  password authentication failed for user "app"\n'), result.stderr


def test_passwords_are_stored_as_scram_verifiers(postgres):
    assert postgres.show("password_encryption") == "scram-sha-256"
    stored = postgres.admin("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'")
    assert re.fullmatch(r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*:[A-Za-z0-9+/]+=*", stored), stored


# --------------------------------------------------------------------------------------------
# PgBouncer with the rendered pgbouncer.ini and userlist, in front of that PostgreSQL


def pgbouncer_ini_naming(directory: Path) -> str:
    """The rendered pgbouncer.ini, its auth_file a copy of the rendered userlist in ``directory``."""
    ini = render_ini(pgbouncer_settings(STACK, NETWORK, auth_file=str(directory / "userlist.txt")))
    # The same file the bundle ships, apart from where the userlist lives.
    assert ini == BUNDLE["pgbouncer/pgbouncer.ini"].content.replace(
        "auth_file = /etc/pgbouncer/userlist.txt", f"auth_file = {directory / 'userlist.txt'}")
    return ini


USERLIST = {"userlist.txt": BUNDLE["secrets/pgbouncer_userlist.txt"].content}


def test_pgbouncer_pools_the_app_into_postgres_over_loopback(postgres):
    with running_pgbouncer(pgbouncer_ini_naming, USERLIST, server_port=postgres.port) as bouncer:
        assert connect_errno(VPC_ADDRESS, bouncer.port) == 0
        assert connect_errno("127.0.0.1", bouncer.port) == 0
        assert connect_errno(NOT_LISTENING, bouncer.port) == errno.ECONNREFUSED

        result = postgres.psql("SELECT current_user, current_database(), inet_client_addr()", user="app",
                               password=DB_PASSWORD, dbname="app", host=VPC_ADDRESS, port=bouncer.port)
        assert result.returncode == 0, result.stderr + bouncer.log()
        # PostgreSQL sees PgBouncer's loopback connection, which the hba's 127.0.0.1/32 line admits.
        assert result.stdout == "app|app|127.0.0.1\n"


def test_pgbouncer_refuses_a_wrong_password_itself(postgres):
    refusals_before = postgres.log().count("password authentication failed")
    with running_pgbouncer(pgbouncer_ini_naming, USERLIST, server_port=postgres.port) as bouncer:
        result = postgres.psql("SELECT 1", user="app", password=DB_PASSWORD[:-1] + "x", dbname="app",
                               host=VPC_ADDRESS, port=bouncer.port)
        log = bouncer.log()
    assert result.returncode == 2
    assert result.stderr == (f'psql: error: connection to server at "{VPC_ADDRESS}", port {bouncer.port} failed: '
                             "FATAL:  SASL authentication failed\n")
    assert re.search(r"ERROR C-0x[0-9a-f]+: app/app@127\.0\.0\.1:\d+ password authentication failed", log), log
    # Refused by PgBouncer against its userlist, never forwarded to PostgreSQL.
    assert postgres.log().count("password authentication failed") == refusals_before


def test_pgbouncer_refuses_a_setting_it_does_not_know(postgres):
    def with_typo(directory: Path) -> str:
        return pgbouncer_ini_naming(directory) + "pool_mod = session\n"  # [pgbouncer] is the last section

    with pytest.raises(AssertionError, match="unknown parameter: pgbouncer/pool_mod"):
        with running_pgbouncer(with_typo, USERLIST, server_port=postgres.port):
            pass


# --------------------------------------------------------------------------------------------
# Redis with the rendered redis.conf and auth include


def test_redis_listens_on_the_vpc_address_and_loopback_only_and_requires_the_password():
    # The container's paths (/data, /run/secrets) do not exist here: point them at the server's temp dir.
    conf = replace_line(BUNDLE["redis/redis.conf"].content, "dir /data", "dir .")
    conf = replace_line(conf, "include /run/secrets/redis_auth.conf", "include redis_auth.conf")
    files = {"redis_auth.conf": BUNDLE["secrets/redis_auth.conf"].content}
    with running_redis(conf, files, password=REDIS_PASSWORD, keep_bind=True) as redis:
        assert redis.config_get("bind") == f"{VPC_ADDRESS} 127.0.0.1"
        assert connect_errno(NOT_LISTENING, redis.port) == errno.ECONNREFUSED
        for host in (VPC_ADDRESS, "127.0.0.1"):
            assert redis.cli("PING", host=host) == "NOAUTH Authentication required."
            assert redis.cli("PING", host=host, password=REDIS_PASSWORD) == "PONG"
        with pytest.raises(AssertionError, match="WRONGPASS"):
            redis.cli("PING", host=VPC_ADDRESS, password=REDIS_PASSWORD[:-1] + "x")


# --------------------------------------------------------------------------------------------
# compose.yaml, deploy.sh, volume-check.sh

COMBINATIONS = [(True, True), (True, False), (False, True), (False, False)]
COMBINATION_IDS = ["redis+pgbouncer", "redis", "pgbouncer", "postgres-only"]


def bundle(redis: bool, pgbouncer: bool):
    stack = DataHostStack(machine=STACK.machine, app_connections=STACK.app_connections, redis=redis,
                          pgbouncer=PgBouncerSpec() if pgbouncer else None)
    return render_data_bundle(stack, NETWORK, DataHostSecrets(db_password=DB_PASSWORD, redis_password=REDIS_PASSWORD))


@pytest.mark.parametrize(("redis", "pgbouncer"), COMBINATIONS, ids=COMBINATION_IDS)
def test_docker_compose_accepts_the_data_host_stack(redis, pgbouncer):
    files = bundle(redis, pgbouncer)
    others = {path: file.content for path, file in files.items() if path != "compose.yaml"}
    services = compose_config(files["compose.yaml"].content, others)["services"]
    assert set(services) == ({"db", "redis"} if redis else {"db"})
    for service in services.values():
        assert service["network_mode"] == "host"
        assert "ports" not in service
    assert services["db"]["command"] == ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf",
                                         "-c", "hba_file=/etc/postgresql/pg_hba.conf"]


@pytest.mark.parametrize(("redis", "pgbouncer"), COMBINATIONS, ids=COMBINATION_IDS)
@pytest.mark.parametrize("script", ["deploy.sh", "volume-check.sh"])
def test_shell_scripts_pass_shellcheck(redis, pgbouncer, script):
    shellcheck(bundle(redis, pgbouncer)[script].content)


def stub_mountpoint(stub_dir: Path, mounted: bool) -> None:
    """A ``mountpoint`` that answers as if the data volume were (not) mounted."""
    stub_dir.mkdir(exist_ok=True)
    stub = stub_dir / "mountpoint"
    stub.write_text(f"#!/bin/sh\nexit {0 if mounted else 1}\n")
    stub.chmod(0o755)


def run_volume_check(tmp_path: Path, df_percent: str,
                     mounted: bool = True) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run volume-check.sh with a ``df`` first on PATH that prints a header and `` <df_percent>``;
    return the result and the arguments the script gave df."""
    stub_dir = tmp_path / "bin"
    stub_mountpoint(stub_dir, mounted)
    stub = stub_dir / "df"
    stub.write_text(f"#!/bin/sh\necho \"$*\" > {tmp_path / 'df-args'}\nprintf '%s\\n' 'Use%' ' {df_percent}'\n")
    stub.chmod(0o755)
    script = tmp_path / "volume-check.sh"
    script.write_text(BUNDLE["volume-check.sh"].content)
    result = subprocess.run(["sh", str(script)], env={"PATH": f"{stub_dir}:/usr/bin:/bin"},
                            capture_output=True, text=True, check=False, timeout=30)
    df_args = tmp_path / "df-args"
    return result, df_args.read_text() if df_args.exists() else ""


STATUS_FILE = "status/volume.txt"


@pytest.mark.parametrize("percent", [81, 85, 100])
def test_volume_check_warns_and_withdraws_the_status_file_above_80_percent(tmp_path, percent):
    (tmp_path / "status").mkdir()
    (tmp_path / STATUS_FILE).write_text("ok: data volume 12% full\n")
    result, df_args = run_volume_check(tmp_path, f"{percent}%")
    assert df_args == "--output=pcent /mnt/phasekit-data\n"
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == f"phasekit: WARNING: data volume /mnt/phasekit-data is {percent}% full\n"
    assert not (tmp_path / STATUS_FILE).exists()  # the uptime check on /.well-known/phasekit/volume fails


@pytest.mark.parametrize("percent", [0, 42, 80])
def test_volume_check_publishes_the_status_file_up_to_80_percent(tmp_path, percent):
    result, _ = run_volume_check(tmp_path, f"{percent}%")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / STATUS_FILE).read_text() == f"ok: data volume {percent}% full\n"


def test_volume_check_fails_loudly_when_the_volume_is_not_mounted(tmp_path):
    (tmp_path / "status").mkdir()
    (tmp_path / STATUS_FILE).write_text("ok: data volume 12% full\n")
    result, df_args = run_volume_check(tmp_path, "10%", mounted=False)
    assert (result.returncode, df_args) == (1, "")
    assert result.stderr == "phasekit: WARNING: data volume not mounted at /mnt/phasekit-data\n"
    assert not (tmp_path / STATUS_FILE).exists()


def test_volume_check_parses_the_real_df(tmp_path):
    """The pipeline after ``df`` reads what the real df prints (header, padding, ``%``), on a directory of
    this machine in place of the volume."""
    real_df = shutil.which("df")
    assert real_df is not None
    percent = int(subprocess.run([real_df, "--output=pcent", str(tmp_path)], capture_output=True, text=True,
                                 check=True).stdout.split("\n")[1].strip().rstrip("%"))
    script = tmp_path / "volume-check.sh"
    script.write_text(BUNDLE["volume-check.sh"].content.replace("/mnt/phasekit-data", str(tmp_path)))
    stub_mountpoint(tmp_path / "bin", mounted=True)
    result = subprocess.run(["sh", str(script)], env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"},
                            capture_output=True, text=True, check=False, timeout=30)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == (f"phasekit: WARNING: data volume {tmp_path} is {percent}% full\n" if percent > 80 else "")


# --- off-site backups -----------------------------------------------------------------------------------------

BACKED_UP_BUNDLE = render_data_bundle(
    DataHostStack(machine=STACK.machine, app_connections=STACK.app_connections, redis=True, backups=BACKUP_SPEC),
    NETWORK, DataHostSecrets(db_password=DB_PASSWORD, redis_password=REDIS_PASSWORD, **BACKUP_SECRETS))


def test_docker_compose_accepts_the_data_host_stack_with_backups():
    others = {path: file.content for path, file in BACKED_UP_BUNDLE.items() if path != "compose.yaml"}
    services = compose_config(BACKED_UP_BUNDLE["compose.yaml"].content, others)["services"]
    assert set(services) == {"db", "redis", "status"}
    assert services["db"]["image"] == "phasekit/postgres-pgbackrest:16.15-bookworm"
    assert all("ports" not in service and service["network_mode"] == "host" for service in services.values())


def test_the_status_server_serves_only_the_status_folder_on_the_vpc_address(tmp_path):
    """Real Caddy (Debian's) runs the rendered status server with the folder swapped for a temp one: it answers
    the status file on the VPC address, drops the connection once the file is gone (no error page an uptime check
    could count as up), and nothing listens on another local address."""
    status = tmp_path / "status"
    status.mkdir()
    (status / "backup.txt").write_text("ok newest-backup=2026-12-03T03:30:00Z\n")
    config = json.loads(BACKED_UP_BUNDLE["caddy/status.json"].content)
    server = config["apps"]["http"]["servers"]["status"]
    assert server["listen"] == ["127.0.0.2:8079"]
    port = _free_port()
    server["listen"] = [f"{VPC_ADDRESS}:{port}"]
    server["routes"][0]["handle"][0]["root"] = str(status)
    (tmp_path / "status.json").write_text(json.dumps(config))
    caddy = subprocess.Popen([pinned_caddy(), "run", "--config", str(tmp_path / "status.json")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://{VPC_ADDRESS}:{port}/backup.txt"
        assert _http_get(url) == (200, "ok newest-backup=2026-12-03T03:30:00Z\n")
        assert connect_errno(NOT_LISTENING, port) == errno.ECONNREFUSED
        (status / "backup.txt").unlink()
        with pytest.raises(http.client.RemoteDisconnected):
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - a loopback test URL
    finally:
        caddy.terminate()
        caddy.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http_get(url: str) -> tuple[int, str]:
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a loopback test URL
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except urllib.error.URLError:  # refused: Caddy is still starting
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


@pytest.mark.parametrize("script", ["deploy.sh"])
def test_the_data_host_deploy_with_backups_passes_shellcheck(script):
    shellcheck(BACKED_UP_BUNDLE[script].content)


def test_postgres_on_the_data_host_starts_with_the_archiving_settings():
    conf = BACKED_UP_BUNDLE["postgres/postgresql.conf"].content
    with running_postgres(conf, BACKED_UP_BUNDLE["postgres/pg_hba.conf"].content,
                          keep_listen_addresses=True) as server:
        assert (server.show("archive_mode"), server.show("archive_timeout")) == ("on", "150s")
