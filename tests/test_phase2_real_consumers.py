"""Phase 2's app-droplet files and both droplets' cloud-init, handed to the real programs that consume them.

Same Debian tools and the same caveat as test_real_consumers.py (older versions than on the droplet). The
database host's own files run in real servers in test_data_host.py.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest
import yaml

from components.compose_stack import (
    app_environment,
    render_deploy_script,
    render_env_file,
    render_public_files,
)
from components.data_host import PgBouncerSpec
from components.proxy_config import render_caddy_json
from components.split_vps import SplitVps
from components.testing import run_recorded
from tests.builders import HOST_STACK, STACK_SECRETS, offsite_args, split_args
from tests.realtools import (
    caddy_validate,
    cloud_init_schema,
    compose_config,
    pinned_caddy,
    self_signed_cert,
    shellcheck,
)

WEB = replace(HOST_STACK, role="web", http_health_route=True)
WEB_SECRETS = replace(STACK_SECRETS, db_password=None, redis_password=None,
                      database_url="postgresql://app:dbpw@10.10.0.5:6432/app",
                      redis_url="redis://:redispw@10.10.0.5:6379/0")


def droplets_user_data(**overrides) -> dict[str, str]:
    recording = run_recorded(lambda: SplitVps("split", split_args(**overrides)))
    return {droplet.name: droplet.inputs["userData"] for droplet in recording.of_type(
        "digitalocean:index/droplet:Droplet")}


@pytest.mark.parametrize("pgbouncer", [None, PgBouncerSpec()])
def test_cloud_init_schema_accepts_what_every_droplet_is_given(pgbouncer):
    user_data = droplets_user_data(pgbouncer=pgbouncer)
    assert sorted(user_data) == ["split-app-0", "split-app-1", "split-db"]
    for name, document in user_data.items():
        assert "Valid cloud-config" in cloud_init_schema(document), name
    database = yaml.safe_load(user_data["split-db"].removeprefix("#cloud-config\n"))
    assert ("pgbouncer" in database["packages"]) is (pgbouncer is not None)
    assert database["mounts"][0][:2] == ["LABEL=phasekit-data", "/mnt/phasekit-data"]
    app = yaml.safe_load(user_data["split-app-0"].removeprefix("#cloud-config\n"))
    assert "mounts" not in app  # nothing on an app droplet waits for a volume


@pytest.mark.parametrize("runs_release", [True, False])
def test_docker_compose_accepts_the_web_stack(runs_release):
    stack = replace(WEB, runs_release=runs_release)
    files = {"secrets/app.env": render_env_file(app_environment(stack, WEB_SECRETS))}
    services = compose_config(render_public_files(stack)["compose.yaml"].content, files)["services"]
    assert set(services) == ({"proxy", "app", "migrate"} if runs_release else {"proxy", "app"})
    assert services["app"]["environment"]["DATABASE_URL"] == "postgresql://app:dbpw@10.10.0.5:6432/app"
    assert "depends_on" not in services["app"]


def test_caddy_validates_the_health_route_for_the_load_balancer(tmp_path):
    cert, key = self_signed_cert(tmp_path, "app.example.com")
    config = render_caddy_json(WEB, cert_file=str(cert), key_file=str(key))
    assert "Valid configuration" in caddy_validate(config)
    http_routes = json.loads(config)["apps"]["http"]["servers"]["http"]["routes"]
    # Draining: the balancer's probe gets 503 while drain/draining exists, so it stops sending new connections.
    assert http_routes[0] == {
        "match": [{"path": ["/healthz"], "file": {"root": "/srv/phasekit-drain", "try_files": ["/draining"]}}],
        "handle": [{"handler": "static_response", "status_code": 503, "body": "draining\n"}], "terminal": True}
    # Otherwise the app answers it under the health-check contract: the hostname and https, which the balancer
    # does not send.
    assert http_routes[1] == {"match": [{"path": ["/healthz"]}], "terminal": True, "handle": [{
        "handler": "reverse_proxy", "upstreams": [{"dial": "app:8000"}],
        "headers": {"request": {"set": {"X-Forwarded-For": ["{http.vars.client_ip}"], "Host": ["app.example.com"],
                                        "X-Forwarded-Proto": ["https"]}}},
        "load_balancing": {"try_duration": "30s", "try_interval": "250ms"}}]}
    assert http_routes[2]["handle"][0]["status_code"] == 308


@pytest.mark.parametrize("runs_release", [True, False])
def test_web_deploy_script_passes_shellcheck_and_skips_the_data_stores(runs_release):
    script = render_deploy_script(replace(WEB, runs_release=runs_release))
    assert "mountpoint" not in script and "db redis" not in script
    assert ("docker compose run --rm -T migrate" in script) is runs_release
    shellcheck(script)


def test_docker_compose_accepts_a_web_stack_that_proxies_the_backup_status():
    stack = replace(WEB, backup_status_upstream=True)
    files = {"secrets/app.env": render_env_file(app_environment(stack, WEB_SECRETS)),
             "proxy.env": render_env_file({"PHASEKIT_BACKUP_STATUS_UPSTREAM": "10.10.0.5:8079"})}
    services = compose_config(render_public_files(stack)["compose.yaml"].content, files)["services"]
    assert services["proxy"]["environment"] == {"PHASEKIT_BACKUP_STATUS_UPSTREAM": "10.10.0.5:8079"}
    assert "PHASEKIT_BACKUP_STATUS_UPSTREAM" not in services["app"]["environment"]


def test_cloud_init_schema_accepts_every_droplet_with_backups():
    user_data = droplets_user_data(offsite_backups=offsite_args())
    for name, document in user_data.items():
        assert "Valid cloud-config" in cloud_init_schema(document), name


def test_a_web_host_passes_on_the_data_hosts_status_and_its_absence(tmp_path):
    """Two real Caddys: the data host's status server as rendered (address and folder moved to the test machine),
    and a web host's proxy config with the data host's address in its environment, as proxy.env gives it."""
    import os
    import socket
    import time

    from components.data_host import DataHostNetwork, DataHostSecrets, DataHostStack, render_data_bundle
    from components.tuning import Machine
    from tests.builders import BACKUP_SECRETS, BACKUP_SPEC
    from tests.test_real_consumers import _free_port, _get_over_tls

    status = tmp_path / "status"
    status.mkdir()
    (status / "backup.txt").write_text("ok\n")
    data_port, https_port, http_port = _free_port(), _free_port(), _free_port()
    bundle = render_data_bundle(DataHostStack(machine=Machine(1, 2048), app_connections=20, backups=BACKUP_SPEC),
                                DataHostNetwork(listen_address="127.0.0.2", client_cidr="127.0.0.0/29"),
                                DataHostSecrets(db_password="dbpw", redis_password="redispw", **BACKUP_SECRETS))
    data = json.loads(bundle["caddy/status.json"].content)
    data["apps"]["http"]["servers"]["status"]["listen"] = [f"127.0.0.2:{data_port}"]
    data["apps"]["http"]["servers"]["status"]["routes"][0]["handle"][0]["root"] = str(status)
    cert, key = self_signed_cert(tmp_path, "app.example.com")
    web = json.loads(render_caddy_json(replace(WEB, backup_status_upstream=True), cert_file=str(cert),
                                       key_file=str(key)))
    servers = web["apps"]["http"]["servers"]
    servers["https"]["listen"], servers["http"]["listen"] = [f"127.0.0.1:{https_port}"], [f"127.0.0.1:{http_port}"]
    (tmp_path / "data.json").write_text(json.dumps(data))
    (tmp_path / "web.json").write_text(json.dumps(web))
    env = {**os.environ, "PHASEKIT_BACKUP_STATUS_UPSTREAM": f"127.0.0.2:{data_port}"}
    caddys = [subprocess.Popen([pinned_caddy(), "run", "--config", str(tmp_path / name)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for name in ("data.json", "web.json")]
    try:
        for _ in range(100):  # the data host's server may start after the web host's
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.2", data_port)) == 0:
                    break
            time.sleep(0.1)
        answer = _get_over_tls(https_port, "/.well-known/phasekit/backup")
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nok\n")
        (status / "backup.txt").unlink()
        assert _get_over_tls(https_port, "/.well-known/phasekit/backup") == b""
    finally:
        for caddy in caddys:
            caddy.terminate()
            caddy.wait(timeout=10)
