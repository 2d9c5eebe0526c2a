"""The rendered health-check contract, run for real: ``health.sh`` against a local app, deploy.sh's gate that keeps a
failing version from going live, and phase 2's drain against the real Caddy (the droplets' version) with a stand-in
for the load balancer's probes.

What runs: the rendered scripts under /bin/sh with the real curl, and the rendered Caddy config in the pinned Caddy,
rewritten for loopback (listen and dial addresses, and the container paths of the certificate, drain folder and
probe log; nothing else). What is a stand-in: ``docker`` (no daemon here: a script that records its arguments and
answers ``docker port`` with the local app's address) and the balancer (a thread probing the plain-HTTP health route
every 0.2 s, as DigitalOcean's probes do every 10 s, sending the droplet's address as Host).
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from components import health
from components.compose_stack import render_bundle
from tests.apphosts import free_port, free_ports, loopback_caddy_config, proxy_binds, write_bundle
from tests.builders import APP, HOST_STACK, STACK_SECRETS
from tests.realtools import pinned_caddy, self_signed_cert

HOSTNAME = "app.example.com"


class ContractApp(http.server.BaseHTTPRequestHandler):
    """Answers like a production app behind a proxy: 400 for another Host, 301 to https without
    ``X-Forwarded-Proto: https``, else 200 (or ``broken_status`` on the health path)."""

    broken_status: int | None = None
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).seen.append({name.lower(): value for name, value in self.headers.items()})
        if self.headers.get("Host") != HOSTNAME:
            self._answer(400, b"Invalid HTTP_HOST header")
        elif self.headers.get("X-Forwarded-Proto") != "https":
            self._answer(301, b"", {"Location": f"https://{HOSTNAME}{self.path}"})
        elif self.path == APP.health_path and self.broken_status:
            self._answer(self.broken_status, b"database unreachable")
        else:
            self._answer(200, b"ok")

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def contract_app(broken_status: int | None = None, seen: list[dict[str, str]] | None = None) -> Iterator[int]:
    """The app on a free loopback port; ``seen`` collects the headers of every request it gets."""
    handler = type("App", (ContractApp,), {"broken_status": broken_status, "seen": [] if seen is None else seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# --- health.sh --------------------------------------------------------------------------------------------------


def run_health(tmp_path: Path, port: int, seconds: int = 4) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "health.sh"
    script.write_text(health.render_health_script(APP.health_path, HOSTNAME))
    return subprocess.run(["sh", str(script), f"http://127.0.0.1:{port}", str(seconds)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_health_sh_passes_an_app_that_checks_its_host_and_https(tmp_path):
    with contract_app() as port:
        result = run_health(tmp_path, port)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(("status", "answer"), [(500, "database unreachable"), (503, "database unreachable")])
def test_health_sh_fails_with_the_status_and_the_answer(tmp_path, status, answer):
    with contract_app(broken_status=status) as port:
        started = time.monotonic()
        result = run_health(tmp_path, port, seconds=2)
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert result.stderr == (
        f"phasekit: health check failed: http://127.0.0.1:{port}/healthz answered {status}, not 2xx "
        f"(sent Host: {HOSTNAME}, X-Forwarded-Proto: https). The start of the answer:\n{answer}\n")


def test_health_sh_counts_a_redirect_and_a_refused_connection_as_unhealthy(tmp_path):
    script = tmp_path / "health.sh"
    script.write_text(health.render_health_script(APP.health_path, "other.example.com"))  # the app answers 400
    with contract_app() as port:
        result = subprocess.run(["sh", str(script), f"http://127.0.0.1:{port}", "1"], capture_output=True,
                                text=True, timeout=60, check=False)
    assert result.returncode == 1 and "answered 400, not 2xx" in result.stderr
    refused = run_health(tmp_path, free_port(), seconds=1)
    assert refused.returncode == 1 and "answered 000, not 2xx" in refused.stderr


# --- deploy.sh's gate -------------------------------------------------------------------------------------------

FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$DOCKER_CALLS"
case "$*" in
  "port phasekit-candidate "*) echo "127.0.0.1:$APP_PORT" ;;
  "logs "*) echo "candidate log line" ;;
  "compose ps "*) echo "${PROXY_ID:-}" ;;
  "inspect "*) printf '%s\\n' ${PROXY_MOUNTS:-} ;;
  "compose up --detach --remove-orphans"*)
    # From now on the new proxy logs the balancer's probes, as Caddy does with the rendered config.
    if [ -n "${PROBES:-}" ]; then
      ( for _ in $(seq 1 40); do sleep 0.2; echo '{"request":{"uri":"/healthz"},"status":200}' >> log/probes.log;
        done ) >/dev/null 2>&1 &
    fi ;;
esac
exit 0
"""


def run_web_deploy(tmp_path: Path, app_port: int, *, behind_balancer: bool = False,
                   **docker_env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The phase 2 web host's deploy.sh, rendered for an app on ``app_port``, with the stand-in docker."""
    stack = replace(HOST_STACK, role="web", app=replace(APP, port=app_port), http_health_route=behind_balancer)
    secrets = replace(STACK_SECRETS, db_password=None, redis_password=None, database_url="postgresql://x",
                      redis_url="redis://x")
    write_bundle(render_bundle(stack, secrets), tmp_path / "stack")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    calls = tmp_path / "docker-calls"
    result = subprocess.run(["sh", str(tmp_path / "stack" / "deploy.sh")], capture_output=True, text=True,
                            timeout=300, check=False,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "DOCKER_CALLS": str(calls),
                                 "APP_PORT": str(app_port), "PHASEKIT_HEALTH_SECONDS": "3", **docker_env})
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_a_version_that_fails_its_health_check_never_replaces_the_running_one(tmp_path):
    with contract_app(broken_status=500) as port:
        result, calls = run_web_deploy(tmp_path, port)
    assert result.returncode == 1
    assert not any(call.startswith("compose up") for call in calls)
    assert calls[-2:] == ["logs --tail 50 phasekit-candidate", "rm --force phasekit-candidate"]
    assert result.stderr.endswith(
        "candidate log line\nphasekit: the new version failed its health check; the running version keeps serving\n")


def test_a_healthy_version_is_checked_then_goes_live_and_is_checked_again(tmp_path):
    with contract_app() as port:
        result, calls = run_web_deploy(tmp_path, port)
    assert result.returncode == 0, result.stderr
    assert [call for call in calls if not call.startswith("image prune")] == [
        "compose pull --quiet",
        "compose run --rm -T migrate",
        "rm --force phasekit-candidate",
        f"compose run --detach --no-deps --name phasekit-candidate --publish 127.0.0.1::{port} app",
        f"port phasekit-candidate {port}/tcp",
        "rm --force phasekit-candidate",
        "compose up --detach --remove-orphans --wait --wait-timeout 300",
    ]


def test_a_proxy_from_before_draining_is_replaced_without_a_drain_instead_of_waiting_forever(tmp_path):
    """An existing droplet's proxy runs the old caddy.json (no drain route, no probe log) until this rollout's
    `docker compose up`: waiting for its drain would time out on every rollout. It is skipped with a warning; the new
    proxy's probes then show the balancer's view."""
    with contract_app() as port:
        result, calls = run_web_deploy(tmp_path, port, behind_balancer=True, PROXY_ID="0123abcd",
                                       PROXY_MOUNTS="/etc/caddy/caddy.json /etc/caddy/tls /data", PROBES="1")
    assert result.returncode == 0, result.stderr
    assert "phasekit: WARNING: the running proxy predates draining; this droplet is replaced without it\n" in (
        result.stderr)
    assert result.stdout.splitlines()[-1] == "phasekit: the load balancer sees this droplet serving"
    assert "drained" not in result.stdout
    assert "compose ps --quiet --status running proxy" in calls
    assert not (tmp_path / "stack" / "drain" / "draining").exists()


# --- phase 2: drain from the load balancer and wait for its view --------------------------------------------------


WEB_SECRETS = replace(STACK_SECRETS, db_password=None, redis_password=None, database_url="postgresql://x",
                      redis_url="redis://x")


@contextmanager
def running_proxy(tmp_path: Path, stack, app_port: int,
                  edit: Callable[[dict], None] | None = None) -> Iterator[tuple[int, int, Path]]:
    """The pinned Caddy with ``stack``'s rendered caddy.json for an app on ``app_port`` (addresses and the proxy's
    bind mounts rewritten for loopback by ``apphosts.loopback_caddy_config``; ``edit`` may change the config
    further), presenting a self-signed certificate for ``HOSTNAME`` at ``tmp_path/HOSTNAME.crt``. Yields the
    plain-HTTP and HTTPS ports and the stack folder."""
    stack = replace(stack, app=replace(stack.app, port=app_port))
    cert, key = self_signed_cert(tmp_path, HOSTNAME)
    bundle = render_bundle(stack, replace(WEB_SECRETS if stack.role == "web" else STACK_SECRETS,
                                          origin_certificate_pem=cert.read_text(),
                                          origin_private_key_pem=key.read_text()))
    root = tmp_path / "stack"
    write_bundle(bundle, root)
    compose = yaml.safe_load(bundle["compose.yaml"].content)
    http_port, https_port = free_ports(2, taken=frozenset({app_port}))
    listen = {":80": http_port, ":443": https_port}
    config = loopback_caddy_config(json.loads(bundle["caddy/caddy.json"].content), app_port=app_port,
                                   listen=listen, paths=proxy_binds(compose, root))
    if edit is not None:
        edit(config)
    (tmp_path / "caddy.json").write_text(json.dumps(config))
    with open(tmp_path / "caddy.err", "w") as errors:
        caddy = subprocess.Popen([pinned_caddy(), "run", "--config", str(tmp_path / "caddy.json")],
                                 env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
                                      "XDG_CONFIG_HOME": str(tmp_path / "config")},
                                 stdout=subprocess.DEVNULL, stderr=errors)
        try:
            yield listen[":80"], listen[":443"], root
        finally:
            caddy.terminate()
            caddy.wait(timeout=20)


class StandInBalancer:
    """Probes the droplet's plain-HTTP health route like DigitalOcean's health check, only faster; records what
    it got and whether it would route to the droplet (``health.FAILS`` consecutive answers flip it)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}{APP.health_path}"
        self.answers: list[int] = []
        self.in_rotation = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StandInBalancer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            request = urllib.request.Request(self.url, headers={"Host": "10.10.0.7"})
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    status = answer.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            self.answers.append(status)
            recent = self.answers[-health.FAILS:]
            if len(recent) == health.FAILS and all(200 <= code < 300 for code in recent):
                self.in_rotation = True
            elif len(recent) == health.FAILS and not any(200 <= code < 300 for code in recent):
                self.in_rotation = False


def run_lb_wait(root: Path, state: str, script: str = "lb-wait.sh") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", script, state], cwd=root, capture_output=True, text=True, timeout=240, check=False)


def test_the_droplet_drains_from_the_balancer_and_rejoins_once_the_balancer_sees_it_serving(tmp_path):
    web = replace(HOST_STACK, role="web", http_health_route=True)
    with contract_app() as app_port, running_proxy(tmp_path, web, app_port) as (http_port, _, root):
        with StandInBalancer(http_port) as balancer:
            serving = run_lb_wait(root, "serving")
            assert serving.returncode == 0, serving.stderr + (tmp_path / "caddy.err").read_text()
            assert serving.stdout == "phasekit: the load balancer sees this droplet serving\n"
            assert balancer.in_rotation and balancer.answers[-1] == 200  # Host and https were set for the app

            (root / "drain" / "draining").touch()
            drained = run_lb_wait(root, "drained")
            assert drained.returncode == 0, drained.stderr
            assert not balancer.in_rotation  # out of rotation before deploy.sh touches the app
            assert balancer.answers[-1] == 503

            (root / "drain" / "draining").unlink()
            rejoined = run_lb_wait(root, "serving")
            assert rejoined.returncode == 0, rejoined.stderr
            assert balancer.in_rotation
        # No probes, no view: the wait is bounded and fails the rollout instead of guessing.
        (root / "quick-wait.sh").write_text(health.render_lb_wait_script(APP.health_path, probes=6, limit_seconds=2))
        stalled = run_lb_wait(root, "drained", "quick-wait.sh")
        assert (stalled.returncode, stalled.stderr) == (
            1, "phasekit: the load balancer's health checks did not see this droplet drained within 2s\n")


# --- the visitor's address ----------------------------------------------------------------------------------------


def get_over_tls(port: int, cert: Path, headers: dict[str, str], prefix: bytes = b"", deadline: float = 20) -> int:
    """GET / over TLS (SNI and certificate checked) after ``prefix`` in plain text (a PROXY protocol header),
    retrying a refused connection while Caddy starts, for up to ``deadline`` seconds."""
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(cert))
    give_up = time.monotonic() + deadline
    while True:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < give_up, "caddy did not start"
            time.sleep(0.2)
    raw.sendall(prefix)
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    connection.sock = context.wrap_socket(raw, server_hostname=HOSTNAME)
    connection.request("GET", "/", headers={"Host": HOSTNAME, **headers})
    return connection.getresponse().status


@pytest.mark.parametrize(("trusted", "seen"), [
    (("127.0.0.0/8",), "203.0.113.9"),  # the loopback client stands in for Cloudflare's edge
    (("10.0.0.0/8",), "127.0.0.1"),  # anyone else's CF-Connecting-IP and X-Forwarded-For are ignored
])
def test_the_app_sees_the_visitor_named_by_a_trusted_proxy_only(tmp_path, trusted, seen):
    requests: list[dict[str, str]] = []
    stack = replace(HOST_STACK, role="web", trusted_proxies=trusted)
    with contract_app(seen=requests) as app_port, running_proxy(tmp_path, stack, app_port) as (_, https_port, _):
        status = get_over_tls(https_port, tmp_path / f"{HOSTNAME}.crt",
                              {"CF-Connecting-IP": "203.0.113.9", "X-Forwarded-For": "198.51.100.1"})
    assert status == 200
    page = [headers for headers in requests if headers.get("cf-connecting-ip")][-1]
    assert page["x-forwarded-for"] == seen
    assert (page["host"], page["x-forwarded-proto"]) == (HOSTNAME, "https")


def test_behind_the_balancer_the_proxy_protocol_header_names_the_client_and_plain_connections_still_work(tmp_path):
    """DigitalOcean's balancer prepends PROXY protocol v1 (its health checks too); Caddy takes the client from it.
    The allowed sources are rewritten to loopback (the balancer's stand-in); the Cloudflare range stays."""
    stack = replace(HOST_STACK, role="web", http_health_route=True, proxy_protocol=True,
                    trusted_proxies=("173.245.48.0/20",))

    def balancer_on_loopback(config: dict) -> None:
        for server in config["apps"]["http"]["servers"].values():
            assert server["listener_wrappers"][0] == {
                "wrapper": "proxy_protocol", "timeout": "5s",
                "allow": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}
            server["listener_wrappers"][0]["allow"] = ["127.0.0.0/8"]

    requests: list[dict[str, str]] = []
    with contract_app(seen=requests) as app_port, running_proxy(
            tmp_path, stack, app_port, balancer_on_loopback) as (http_port, https_port, _):
        cert = tmp_path / f"{HOSTNAME}.crt"
        header = b"PROXY TCP4 173.245.48.5 10.10.0.9 40000 443\r\n"
        assert get_over_tls(https_port, cert, {"CF-Connecting-IP": "203.0.113.9"}, prefix=header) == 200
        assert requests[-1]["x-forwarded-for"] == "203.0.113.9"  # Cloudflare's address came from the header
        assert get_over_tls(https_port, cert, {"CF-Connecting-IP": "203.0.113.9"}) == 200
        assert requests[-1]["x-forwarded-for"] == "127.0.0.1"  # no header: the peer, untrusted
        # The balancer's health check, with and without the header, on the plain-HTTP port.
        for prefix in (b"PROXY TCP4 10.10.0.2 10.10.0.9 40001 80\r\n", b""):
            with socket.create_connection(("127.0.0.1", http_port), timeout=10) as probe:
                probe.sendall(prefix + b"GET /healthz HTTP/1.1\r\nHost: 10.10.0.9\r\nConnection: close\r\n\r\n")
                assert probe.recv(64).startswith(b"HTTP/1.1 200 ")
