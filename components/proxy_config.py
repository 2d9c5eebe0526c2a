"""Caddy's JSON config for a host that runs the app (``compose_stack.HostStack``): the reverse proxy, TLS, the checks
of the app (``components.health``'s contract), phase 2's load-balancer probe route and drain, the visitor's address,
and the status URLs uptime checks watch.

Built as Python data and dumped with ``json``, like every host file (``components.compose_stack`` says why).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from components import health

if TYPE_CHECKING:
    from components.compose_stack import HostStack


def caddy_config(stack: HostStack, cert_file: str = "/etc/caddy/tls/origin.pem",
                 key_file: str = "/etc/caddy/tls/origin.key") -> dict:
    """Caddy's native JSON config: HTTPS for ``hostname`` proxied to the app, HTTP redirected.

    With ``origin-certificate`` Caddy presents the Cloudflare Origin CA certificate (what SSL mode
    Full (strict) accepts) and never talks to an ACME CA; with ``acme`` (record not proxied) it obtains a
    publicly trusted certificate itself. Every check of the app follows ``components.health``'s contract.
    """
    proxy_route = {
        "match": [{"host": [stack.hostname]}],
        "handle": [app_proxy(stack)],
        "terminal": True,
    }
    https_server: dict = {
        "listen": [":443"],
        "routes": [*status_routes(stack), proxy_route],
        "tls_connection_policies": [{"match": {"sni": [stack.hostname]}, "protocol_min": "tls1.2"}],
    }
    if stack.proxy_protocol:
        https_server["listener_wrappers"] = [proxy_protocol_wrapper(), {"wrapper": "tls"}]
    if stack.trusted_proxies:
        # Cloudflare connects from its ranges and names the visitor in CF-Connecting-IP
        # (developers.cloudflare.com/fundamentals/reference/http-headers/); trusted only from those ranges.
        https_server["trusted_proxies"] = {"source": "static", "ranges": list(stack.trusted_proxies)}
        https_server["client_ip_headers"] = ["CF-Connecting-IP"]
    status_paths = list(status_files(stack))
    if status_paths:
        https_server["errors"] = {"routes": [backup_status_error_route(status_paths, stack.hostname)]}
    if stack.http_health_route:
        # While draining, ask every client to close its connection after its answer: behind the TLS passthrough,
        # Cloudflare's keep-alive connections would otherwise stay on this droplet past the drain.
        https_server["routes"].insert(-1, {"match": [draining()], "handle": [
            {"handler": "headers", "response": {"set": {"Connection": ["close"]}}}]})
    config: dict = {
        "admin": {"disabled": True},
        "logging": {"logs": {"default": {"level": "INFO"}}},
        "apps": {"http": {"servers": {"https": https_server}}},
    }
    if stack.tls_mode == "origin-certificate":
        https_server["automatic_https"] = {"disable": True}
        config["apps"]["http"]["servers"]["http"] = http_server(stack)
        if stack.http_health_route:
            config["logging"]["logs"].update(probe_logs())
        config["apps"]["tls"] = {"certificates": {"load_files": [
            {"certificate": cert_file, "key": key_file, "tags": ["cloudflare-origin"]},
        ]}}
    return config


BALANCER_SOURCES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
"""Where a DigitalOcean load balancer connects from: its address in the VPC, which is always private (RFC 1918).
The droplets' firewall admits only the balancer on 80/443 anyway."""


def proxy_protocol_wrapper() -> dict:
    """Caddy's ``proxy_protocol`` listener wrapper (caddy v2.11.4 modules/caddyhttp/proxyprotocol): a header from
    ``BALANCER_SOURCES`` names the client; a connection without one is still served (policy USE), so nothing breaks
    while the balancer's setting and the droplets' config change in either order. DigitalOcean sends the header
    on its health checks too (docs.digitalocean.com/products/networking/load-balancers/support/: backends that do
    not accept it fail the checks)."""
    return {"wrapper": "proxy_protocol", "timeout": "5s", "allow": list(BALANCER_SOURCES)}


def app_proxy(stack: HostStack, *, checked: bool = True) -> dict:
    """The reverse proxy to the app. ``X-Forwarded-For`` is set to the one client address Caddy trusts (the visitor
    behind Cloudflare, else the peer), so an app that trusts one proxy hop logs the visitor. Header operations run
    after Caddy's own X-Forwarded-* handling (caddy v2.11.4 reverseproxy.go: prepareRequest, then the request
    header ops), so these values are the ones the app sees."""
    proxy: dict = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"app:{stack.app.port}"}],
        "headers": {"request": {"set": {"X-Forwarded-For": ["{http.vars.client_ip}"]}}},
        # While the app container is being replaced, requests wait for the new one instead of failing: Caddy
        # retries the upstream for up to try_duration when it cannot connect (nothing was sent yet).
        "load_balancing": {"try_duration": "30s", "try_interval": "250ms"},
    }
    if checked:
        proxy["health_checks"] = {"active": health.caddy_active_check(stack.app.health_path, stack.hostname)}
    return proxy


def http_server(stack: HostStack) -> dict:
    """Port 80: a redirect to HTTPS, and with ``http_health_route`` the load balancer's probe of the health path.

    The probe is answered by the app under the health-check contract (its Host and X-Forwarded-Proto set here, since
    the balancer sends neither), or 503 while the droplet drains (``health.DRAIN_FILE``), and logged to
    ``health.PROBE_LOG`` so deploy.sh can read the balancer's view (``health.render_lb_wait_script``)."""
    routes: list[dict] = []
    server: dict = {"listen": [":80"], "routes": routes}
    if stack.proxy_protocol:
        server["listener_wrappers"] = [proxy_protocol_wrapper()]
    if stack.http_health_route:
        path = stack.app.health_path
        probe = app_proxy(stack, checked=False)
        probe["headers"]["request"]["set"].update(
            {name: [value] for name, value in health.request_headers(stack.hostname).items()})
        routes += [
            {"match": [{"path": [path], **draining()}],
             "handle": [{"handler": "static_response", "status_code": 503, "body": "draining\n"}],
             "terminal": True},
            {"match": [{"path": [path]}], "handle": [probe], "terminal": True},
        ]
        server["logs"] = {"default_logger_name": health.PROBE_LOGGER}
    routes.append({"handle": [{
        "handler": "static_response",
        "status_code": 308,
        "headers": {"Location": ["https://{http.request.host}{http.request.uri}"]},
    }]})
    return server


def draining() -> dict:
    """A request matcher that holds while ``health.DRAIN_FILE`` exists (Caddy's ``file`` matcher checks per request)."""
    return {"file": {"root": health.DRAIN_ROOT, "try_files": [f"/{health.DRAIN_FILE}"]}}


def probe_logs() -> dict:
    """Caddy loggers: the plain-HTTP server's access log (the balancer's probes) to a small rolled file, kept out
    of the default log."""
    access = f"http.log.access.{health.PROBE_LOGGER}"
    return {
        "default": {"level": "INFO", "exclude": [access]},
        health.PROBE_LOGGER: {
            "writer": {"output": "file", "filename": f"{health.PROBE_LOG_DIR}/{health.PROBE_LOG}",
                       "roll_size_mb": 5, "roll_keep": 2},
            "encoder": {"format": "json"},
            "include": [access],
        },
    }


BACKUP_STATUS_ROOT = "/srv/phasekit-status"
"""Where the proxy container sees ``STACK_DIR/status`` (read-only)."""

BACKUP_STATUS_UPSTREAM_ENV = "PHASEKIT_BACKUP_STATUS_UPSTREAM"
"""The proxy's environment variable holding the data host's status server (phase 2's web hosts)."""

SCHEDULE_STATUS_UPSTREAM_ENV = "PHASEKIT_SCHEDULE_STATUS_UPSTREAM"
"""The proxy's environment variable holding the status server of the app droplet that runs the schedules (phase 2's
web hosts, that one included)."""


def status_routes(stack: HostStack) -> list[dict]:
    """The status URLs uptime checks watch (``status_files``) that this host answers."""
    return [status_route(stack, path, file) for path, file in status_files(stack).items()]


def status_files(stack: HostStack) -> dict[str, str]:
    """Status URL path -> the file in ``status/`` that exists only while all is well, for the paths this host answers:
    the data volume's on a host that runs the data stores, the backups' with off-site backups; a web host answers
    both from the data host's status server (which exists with off-site backups). The schedules' status comes from the
    host that runs them: its own file in phase 1, the schedules host's status server for phase 2's web hosts."""
    # Both import this module (through compose_stack): read at call time.
    from components.backups import BACKUP_STATUS_FILE, BACKUP_STATUS_PATH
    from components.compose_stack import VOLUME_STATUS_FILE, VOLUME_STATUS_PATH
    from components.host_processes import SCHEDULE_STATUS_FILE, SCHEDULE_STATUS_PATH

    files = {}
    if (stack.runs_data_stores and stack.schedules) or stack.schedule_status_upstream:
        files[SCHEDULE_STATUS_PATH] = SCHEDULE_STATUS_FILE
    if stack.backups is not None or stack.backup_status_upstream:
        files[BACKUP_STATUS_PATH] = BACKUP_STATUS_FILE
    if stack.runs_data_stores or stack.backup_status_upstream:
        files[VOLUME_STATUS_PATH] = VOLUME_STATUS_FILE
    return files


def status_route(stack: HostStack, path: str, file: str) -> dict:
    """``path`` on the app's hostname: the status ``file``, or (through ``backup_status_error_route``) a dropped
    connection while it is missing. Never cached: Cloudflare and browsers must see the current answer."""
    upstream_env = status_upstream_env(stack, path)
    if upstream_env is None:
        serve: list[dict] = [{"handler": "rewrite", "uri": f"/{file}"},
                             {"handler": "file_server", "root": BACKUP_STATUS_ROOT}]
    else:
        # Caddy replaces placeholders in `dial` per request, so the address can come from the environment.
        serve = [{"handler": "rewrite", "uri": f"/{file}"},
                 {"handler": "reverse_proxy", "upstreams": [{"dial": f"{{env.{upstream_env}}}"}]}]
    return {
        "match": [{"host": [stack.hostname], "path": [path]}],
        "handle": [{"handler": "headers", "response": {"set": {"Cache-Control": ["no-store"]}}}, *serve],
        "terminal": True,
    }


def status_upstream_env(stack: HostStack, path: str) -> str | None:
    """The proxy's environment variable naming the status server that answers ``path``; None: this host's file."""
    from components.host_processes import SCHEDULE_STATUS_PATH

    if path == SCHEDULE_STATUS_PATH:
        return SCHEDULE_STATUS_UPSTREAM_ENV if stack.schedule_status_upstream else None
    return None if stack.runs_data_stores else BACKUP_STATUS_UPSTREAM_ENV


def status_server_config(listen: str) -> dict:
    """A host's status server (Caddy's JSON config): ``status/`` read-only at ``listen``, plain HTTP (on the VPC,
    firewalled to the app tier; the web hosts' Caddy adds TLS towards users)."""
    return {
        "admin": {"disabled": True},
        "apps": {"http": {"servers": {"status": {
            "listen": [listen],
            "routes": [{"handle": [{"handler": "file_server", "root": BACKUP_STATUS_ROOT}]}],
            # No status file: drop the connection, which the web hosts' proxy passes on as a dropped connection.
            "errors": {"routes": [{"handle": [dict(ABORT)]}]},
            "automatic_https": {"disable": True},
        }}}},
    }


ABORT = {"handler": "static_response", "abort": True}
"""Caddy closes the connection without an answer: what every uptime checker counts as down."""


def backup_status_error_route(paths: list[str], hostname: str | None = None) -> dict:
    """The status paths' errors (no status file: file_server's 404; no status server: reverse_proxy's 502) close
    the connection instead of answering an error page. Why: DigitalOcean's uptime documentation read for this does
    not say which status codes its checks count as down, and some checkers count any answer as up. A dropped
    connection is down for every checker; behind Cloudflare's proxy the checker gets Cloudflare's 5xx for it
    (520/52x), a server error rather than a 404. Only a real alert proves the end-to-end path."""
    match: dict = {"path": paths}
    if hostname is not None:
        match["host"] = [hostname]
    return {"match": [match], "handle": [dict(ABORT)], "terminal": True}


def render_caddy_json(stack: HostStack, **paths: str) -> str:
    return json.dumps(caddy_config(stack, **paths), indent=2, sort_keys=True) + "\n"
