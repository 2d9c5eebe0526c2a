"""phasekit's health-check contract: the one request every checker sends, and the scripts that send it.

The contract (docs/app-contract.md is the user-facing version). Every checker in every phase (Caddy's active check,
deploy.sh's gate before a new version goes live, phase 2's load-balancer probe route, phase 3's Kubernetes probes)
sends::

    GET <app.healthPath>
    Host: <the public hostname>
    X-Forwarded-Proto: https

and counts the app healthy on a 2xx answer within ``TIMEOUT_SECONDS``. A redirect is not healthy: it is what an app
behind a proxy answers when it does not see the request as HTTPS, and serving it would loop. Why these headers: a
production app checks the Host (Django's ``ALLOWED_HOSTS``, Rails' ``config.hosts``, a Node host check) and
redirects plain HTTP (``SECURE_SSL_REDIRECT``, ``force_ssl``). Caddy's own active check otherwise sends the
upstream's address as Host and no ``X-Forwarded-Proto`` (caddy v2.11.4, modules/caddyhttp/reverseproxy/
healthchecks.go: the request is built for the upstream's address and only ``health_checks.active.headers`` are
added; a ``Host`` entry there replaces ``req.Host``), so a real Django app answered it 400 or 301 and Caddy served
503 to everyone.

Tolerances: a check runs every ``INTERVAL_SECONDS``; an upstream is down only after ``FAILS`` consecutive failures
(Caddy's ``fails``, default 1, added in v2.8.0; same file), so one slow answer never takes the site down.
"""

from __future__ import annotations

import shlex

INTERVAL_SECONDS = 10
TIMEOUT_SECONDS = 5
FAILS = 3
"""Consecutive failed checks before a checker takes the app out (Caddy, load balancer, readiness probe)."""

PASSES = 1
"""Consecutive passed checks before Caddy sends traffic to an upstream again."""

GATE_SECONDS = 120
"""How long deploy.sh waits for a new version to pass before the rollout fails."""

FORWARDED_PROTO = "https"

DRAIN_ROOT = "/srv/phasekit-drain"
"""Where the proxy container sees ``STACK_DIR/drain``; while ``DRAIN_FILE`` exists there the load balancer's health
route answers 503, so the balancer stops sending new connections to this droplet."""

DRAIN_FILE = "draining"
PROBE_LOG_DIR = "/var/log/phasekit"
"""Where the proxy container writes ``PROBE_LOG`` (``STACK_DIR/log`` on the host)."""

PROBE_LOG = "probes.log"
PROBE_LOGGER = "probes"


def request_headers(hostname: str) -> dict[str, str]:
    """The headers every checker sends besides the path."""
    return {"Host": hostname, "X-Forwarded-Proto": FORWARDED_PROTO}


def caddy_active_check(path: str, hostname: str) -> dict:
    """Caddy's ``health_checks.active`` for the app upstream (JSON config)."""
    return {
        "uri": path,
        "headers": {name: [value] for name, value in request_headers(hostname).items()},
        "interval": f"{INTERVAL_SECONDS}s",
        "timeout": f"{TIMEOUT_SECONDS}s",
        "passes": PASSES,
        "fails": FAILS,
    }


def render_health_script(path: str, hostname: str) -> str:
    """``health.sh BASE_URL [SECONDS]``: the contract's request to ``BASE_URL + path`` until a 2xx answer (exit 0) or
    until SECONDS pass (exit 1, with the last status and the start of the answer). SECONDS defaults to
    ``$PHASEKIT_HEALTH_SECONDS`` (tests shorten the wait with it), else ``GATE_SECONDS``."""
    headers = " ".join(f"--header {shlex.quote(f'{name}: {value}')}"
                       for name, value in request_headers(hostname).items())
    return "\n".join([
        "#!/bin/sh",
        "# phasekit's health-check contract (docs/app-contract.md): GET the health path with the public hostname",
        "# as Host and X-Forwarded-Proto: https; healthy means a 2xx answer. A redirect is not healthy.",
        "# Usage: health.sh BASE_URL [SECONDS]",
        "set -u",
        'base=${1:?usage: health.sh BASE_URL [SECONDS]}',
        f"path={shlex.quote(path)}",
        f"deadline=$(( $(date +%s) + ${{2:-${{PHASEKIT_HEALTH_SECONDS:-{GATE_SECONDS}}}}} ))",
        'answer=$(mktemp)',
        "trap 'rm -f \"$answer\"' EXIT",
        "while :; do",
        f"  status=$(curl --silent --max-time {TIMEOUT_SECONDS} --output \"$answer\" --write-out '%{{http_code}}' "
        f'{headers} "$base$path") || status=000',
        '  case $status in 2??) exit 0 ;; esac',
        '  [ "$(date +%s)" -lt "$deadline" ] || break',
        "  sleep 2",
        "done",
        f'echo "phasekit: health check failed: $base$path answered $status, not 2xx (sent Host: {hostname}, '
        f'X-Forwarded-Proto: {FORWARDED_PROTO}). The start of the answer:" >&2',
        'head -c 500 "$answer" >&2',
        "echo >&2",
        "exit 1",
        "",
    ])


def render_lb_wait_script(path: str, *, probes: int, limit_seconds: int) -> str:
    """``lb-wait.sh drained|serving``: waits until the load balancer's own health checks have seen this droplet
    drained (``probes`` consecutive 503 answers) or serving (``probes`` consecutive 2xx answers).

    Why the log: the balancer's view is not visible from the droplet otherwise (DigitalOcean's API does not give a
    droplet's health per load balancer), but its probes are the only requests that reach the plain-HTTP server's
    health route, which Caddy logs to ``log/PROBE_LOG``. Reading the answers the balancer got is reading its view:
    it marks a droplet down or up after its threshold of consecutive answers."""
    needle = f'"uri":"{path}"'
    return "\n".join([
        "#!/bin/sh",
        "# Waits until the load balancer's health checks have seen this droplet drained (503) or serving (2xx).",
        "# Usage: lb-wait.sh drained|serving   (run from the stack directory)",
        "set -eu",
        'want=${1:?usage: lb-wait.sh drained|serving}',
        f"log=log/{PROBE_LOG}",
        "start=1",
        'if [ -f "$log" ]; then start=$(( $(wc -c < "$log") + 1 )); fi',
        "waited=0",
        f'while [ "$waited" -lt {limit_seconds} ]; do',
        f'  run=$(tail -c +"$start" "$log" 2>/dev/null | grep -F {shlex.quote(needle)} '
        "| grep -o '\"status\":[0-9]*' | cut -d: -f2 \\",
        "    | awk -v want=\"$want\" '{ ok = (want == \"drained\") ? ($1 == 503) : ($1 >= 200 && $1 < 300); "
        "run = ok ? run + 1 : 0 } END { print run + 0 }')",
        f'  if [ "$run" -ge {probes} ]; then echo "phasekit: the load balancer sees this droplet $want"; exit 0; fi',
        "  sleep 1",
        "  waited=$((waited + 1))",
        "done",
        f'echo "phasekit: the load balancer\'s health checks did not see this droplet $want '
        f'within {limit_seconds}s" >&2',
        "exit 1",
        "",
    ])
