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
    render_caddy_json,
    render_deploy_script,
    render_env_file,
    render_public_files,
)
from components.data_host import PgBouncerSpec
from components.split_vps import SplitVps
from components.testing import run_recorded
from tests.builders import HOST_STACK, STACK_SECRETS, split_args
from tests.realtools import caddy_validate, cloud_init_schema, compose_config, self_signed_cert

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
    assert http_routes[0] == {"match": [{"path": ["/healthz"]}], "terminal": True,
                              "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "app:8000"}]}]}
    assert http_routes[1]["handle"][0]["status_code"] == 308


@pytest.mark.parametrize("runs_release", [True, False])
def test_web_deploy_script_passes_shellcheck_and_skips_the_data_stores(tmp_path, runs_release):
    script = render_deploy_script(replace(WEB, runs_release=runs_release))
    assert "mountpoint" not in script and "db redis" not in script
    assert ("docker compose run --rm -T migrate" in script) is runs_release
    path = tmp_path / "deploy.sh"
    path.write_text(script)
    result = subprocess.run(["shellcheck", "--shell=sh", "--severity=style", str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
