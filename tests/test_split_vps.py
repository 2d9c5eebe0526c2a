"""SplitVps under the recording mock monitor: the phase-2 topology, its firewalls, options and bundles.

Mocks cannot prove that DigitalOcean accepts these inputs (e.g. a load balancer firewall's ``cidr:`` rules),
that its firewalls filter VPC traffic as documented, or how it diffs a live stack; a real ``pulumi preview``
and ``pulumi up`` do. The rendered database-host files are run by their real consumers in test_data_host.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile

import pulumi
import pytest
import yaml
from pulumi.output import Unknown

from components.data_host import PgBouncerSpec
from components.droplet_parts import EGRESS, EVERYWHERE, SlackChannel, rollout_script
from components.split_vps import SplitVps, load_balancer_allows
from components.testing import mock_openssh_pair as openssh_pair
from components.testing import run_recorded
from tests.builders import BACKUP_PASSPHRASE, CLOUDFLARE_CIDRS, offsite_args, split_args

DROPLET = "digitalocean:index/droplet:Droplet"
VOLUME = "digitalocean:index/volume:Volume"
FIREWALL = "digitalocean:index/firewall:Firewall"
ALERT = "digitalocean:index/monitorAlert:MonitorAlert"
LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"
ROLLOUT = "command:remote:Command"
UPTIME_CHECK = "digitalocean:index/uptimeCheck:UptimeCheck"
UPTIME_ALERT = "digitalocean:index/uptimeAlert:UptimeAlert"
PROJECT = "digitalocean:index/project:Project"
ADMINS = ["203.0.113.0/24"]
CLOUDFLARE_V4 = [cidr for cidr in CLOUDFLARE_CIDRS if ":" not in cidr]


def record(preview: bool = False, **overrides):
    return run_recorded(lambda: SplitVps("split", split_args(**overrides)), preview=preview)


def bundle(recording, name: str) -> dict[str, tuple[tarfile.TarInfo, str]]:
    archive = tarfile.open(fileobj=io.BytesIO(base64.b64decode(recording.named(name).inputs["stdin"])))
    return {member.name: (member, archive.extractfile(member).read().decode())
            for member in archive.getmembers() if member.isfile()}


def expected_egress(*extra: dict) -> list[dict]:
    return [
        *[{"protocol": protocol, "portRange": port, "destinationAddresses": EVERYWHERE} for protocol, port in EGRESS],
        {"protocol": "icmp", "destinationAddresses": EVERYWHERE},
        *extra,
    ]


def test_two_app_droplets_get_a_load_balancer_and_a_database_droplet():
    recording = record()
    assert recording.type_counts() == {
        "phasekit:index:SplitVps": 1,
        "digitalocean:index/vpc:Vpc": 1,
        "digitalocean:index/tag:Tag": 1,
        VOLUME: 1,
        "random:index/randomPassword:RandomPassword": 2,
        DROPLET: 3,
        ALERT: 6,
        FIREWALL: 2,
        LOAD_BALANCER: 1,
        ROLLOUT: 9,
        "tls:index/privateKey:PrivateKey": 3,
        "digitalocean:index/project:Project": 1,
        "digitalocean:index/projectResources:ProjectResources": 1,
        UPTIME_CHECK: 1,
        UPTIME_ALERT: 1,
    }
    component = recording.one("phasekit:index:SplitVps")
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert all(child.name.startswith("split-") for child in children)


def test_one_app_droplet_gets_a_reserved_ip_instead_of_a_load_balancer():
    counts = record(app_count=1).type_counts()
    assert counts[DROPLET] == 2
    assert LOAD_BALANCER not in counts
    assert counts["digitalocean:index/reservedIp:ReservedIp"] == 1
    assert counts["digitalocean:index/reservedIpAssignment:ReservedIpAssignment"] == 1


def test_database_firewall_admits_only_the_app_tier_tag_on_the_data_ports():
    recording = record()
    firewall = recording.named("split-db-firewall").inputs
    assert firewall["dropletIds"] == [int(recording.named("split-db").id)]
    assert firewall["inboundRules"] == [
        {"protocol": "tcp", "portRange": "22", "sourceAddresses": ADMINS},
        {"protocol": "tcp", "portRange": "5432", "sourceTags": ["phasekit-test-app-tier"]},
        {"protocol": "tcp", "portRange": "6379", "sourceTags": ["phasekit-test-app-tier"]},
    ]
    assert firewall["outboundRules"] == expected_egress()
    assert "tags" not in firewall
    assert recording.named("split-app-tier").inputs == {"name": "phasekit-test-app-tier"}


def test_with_pgbouncer_the_database_firewall_opens_its_port_instead_of_postgres():
    inbound = record(pgbouncer=PgBouncerSpec()).named("split-db-firewall").inputs["inboundRules"]
    assert [rule["portRange"] for rule in inbound] == ["22", "6432", "6379"]


def test_no_rule_anywhere_opens_a_data_port_to_an_address():
    for firewall in record().of_type(FIREWALL):
        for rule in firewall.inputs["inboundRules"]:
            if rule["portRange"] in ("5432", "6432", "6379"):
                assert set(rule) == {"protocol", "portRange", "sourceTags"}


def test_app_firewall_admits_web_only_from_the_load_balancer_and_reaches_only_the_database_privately():
    recording = record()
    firewall = recording.named("split-app-firewall").inputs
    lb_id = recording.one(LOAD_BALANCER).id
    db_id = int(recording.named("split-db").id)
    assert firewall["dropletIds"] == [int(recording.named("split-app-0").id), int(recording.named("split-app-1").id)]
    assert firewall["inboundRules"] == [
        {"protocol": "tcp", "portRange": "22", "sourceAddresses": ADMINS},
        {"protocol": "tcp", "portRange": "80", "sourceLoadBalancerUids": [lb_id]},
        {"protocol": "tcp", "portRange": "443", "sourceLoadBalancerUids": [lb_id]},
    ]
    assert firewall["outboundRules"] == expected_egress(
        {"protocol": "tcp", "portRange": "5432", "destinationDropletIds": [db_id]},
        {"protocol": "tcp", "portRange": "6379", "destinationDropletIds": [db_id]},
    )


def test_a_single_app_droplet_admits_web_from_cloudflare():
    inbound = record(app_count=1).named("split-app-firewall").inputs["inboundRules"]
    assert inbound[1:] == [
        {"protocol": "tcp", "portRange": "80", "sourceAddresses": CLOUDFLARE_CIDRS},
        {"protocol": "tcp", "portRange": "443", "sourceAddresses": CLOUDFLARE_CIDRS},
    ]


def test_load_balancer_passes_tls_through_health_checks_the_app_and_admits_cloudflare_only():
    recording = record()
    lb = recording.one(LOAD_BALANCER).inputs
    assert lb["forwardingRules"] == [{"entryPort": 443, "entryProtocol": "https", "targetPort": 443,
                                      "targetProtocol": "https", "tlsPassthrough": True}]
    assert lb["healthcheck"] == {"protocol": "http", "port": 80, "path": "/healthz", "checkIntervalSeconds": 10,
                                 "responseTimeoutSeconds": 5, "unhealthyThreshold": 3, "healthyThreshold": 3}
    assert lb["firewall"] == {"allows": [f"cidr:{cidr}" for cidr in CLOUDFLARE_V4]}
    assert lb["dropletIds"] == [int(recording.named("split-app-0").id), int(recording.named("split-app-1").id)]
    assert lb["redirectHttpToHttps"] is False


def test_a_new_load_balancer_sends_the_proxy_protocol_header_and_the_droplets_read_it():
    recording = record()
    lb = recording.one(LOAD_BALANCER)
    assert lb.inputs["enableProxyProtocol"] is True
    # An existing balancer is left alone: turning it on before the rollouts would fail every health check.
    assert lb.ignore_changes == ("enableProxyProtocol",)
    for droplet in ("split-app-0", "split-app-1"):
        servers = json.loads(bundle(recording, f"{droplet}-rollout")["caddy/caddy.json"][1])["apps"]["http"]["servers"]
        assert servers["https"]["listener_wrappers"][0]["wrapper"] == "proxy_protocol"
        assert servers["http"]["listener_wrappers"][0]["wrapper"] == "proxy_protocol"
        assert servers["https"]["trusted_proxies"] == {"source": "static", "ranges": CLOUDFLARE_CIDRS}
    alone = json.loads(bundle(record(app_count=1), "split-app-0-rollout")["caddy/caddy.json"][1])
    assert "listener_wrappers" not in alone["apps"]["http"]["servers"]["https"]
    assert alone["apps"]["http"]["servers"]["https"]["trusted_proxies"]["ranges"] == CLOUDFLARE_CIDRS


def test_load_balancer_allows_are_the_ipv4_ranges_only():
    assert load_balancer_allows(["198.51.100.0/24", "2400:cb00::/32"]) == ["cidr:198.51.100.0/24"]


def test_volume_and_database_droplet_are_protected_and_app_droplets_are_not():
    recording = record()
    for name in ("split-db-data", "split-db"):
        resource = recording.named(name)
        assert (resource.protect, resource.retain_on_delete) == (True, True), name
    for name in ("split-app-0", "split-app-1", "split-lb", "split-db-firewall", "split-vpc"):
        resource = recording.named(name)
        assert (resource.protect, resource.retain_on_delete) == (False, False), name
    database = recording.named("split-db")
    assert database.ignore_changes == ("userData", "sshKeys")
    assert database.delete_before_replace is True
    assert database.inputs["volumeIds"] == [recording.named("split-db-data").id]
    assert recording.named("split-app-0").delete_before_replace is False


def test_protect_false_unprotects_the_data():
    recording = record(protect_data=False)
    assert not recording.named("split-db-data").protect
    assert not recording.named("split-db").protect


def test_stateful_urns_are_pinned():
    recording = record()
    assert recording.named("split-db-data").urn == (
        "urn:pulumi:test::phasekit::phasekit:index:SplitVps$digitalocean:index/volume:Volume::split-db-data")
    assert recording.named("split-db").urn == (
        "urn:pulumi:test::phasekit::phasekit:index:SplitVps$digitalocean:index/droplet:Droplet::split-db")


def test_alerts_watch_each_tier_without_tags():
    recording = record()
    app_ids = [recording.named("split-app-0").id, recording.named("split-app-1").id]
    alerts = {alert.name: alert.inputs for alert in recording.of_type(ALERT)}
    assert {name: (inputs["type"], inputs["value"], inputs["window"], inputs["entities"])
            for name, inputs in alerts.items()} == {
        "split-app-cpu-alert": ("v1/insights/droplet/cpu", 70, "5m", app_ids),
        "split-app-memory-alert": ("v1/insights/droplet/memory_utilization_percent", 80, "5m", app_ids),
        "split-app-disk-alert": ("v1/insights/droplet/disk_utilization_percent", 80, "5m", app_ids),
        "split-db-cpu-alert": ("v1/insights/droplet/cpu", 70, "5m", [recording.named("split-db").id]),
        "split-db-memory-alert": ("v1/insights/droplet/memory_utilization_percent", 80, "5m",
                                  [recording.named("split-db").id]),
        "split-db-disk-alert": ("v1/insights/droplet/disk_utilization_percent", 80, "5m",
                                [recording.named("split-db").id]),
    }
    assert all("tags" not in inputs and inputs["alerts"] == {"emails": ["ops@example.com"]}
               for inputs in alerts.values())


def test_rollouts_go_database_first_then_one_app_droplet_at_a_time():
    recording = record()
    db_rollout = recording.named("split-db-rollout")
    first, second = recording.named("split-app-0-rollout"), recording.named("split-app-1-rollout")
    assert db_rollout.urn in first.dependencies
    assert first.urn in second.dependencies
    assert db_rollout.urn not in second.dependencies  # ordered through the first, not around it
    assert recording.named("split-app-firewall").urn in second.dependencies
    assert db_rollout.inputs["create"] == rollout_script(data_volume=True) == db_rollout.inputs["update"]
    for rollout in (first, second):
        assert rollout.inputs["create"] == rollout_script(data_volume=False) == rollout.inputs["update"]
    for rollout in (db_rollout, first, second):
        assert "stdin" in rollout.secret_inputs


def test_app_droplets_get_the_contract_pointing_at_the_database_private_address():
    recording = record()
    files = bundle(recording, "split-app-1-rollout")
    env = dict(line.split("=", 1) for line in files["secrets/app.env"][1].splitlines())
    db_private = _private_ip(recording, "split-db")
    assert env["DATABASE_URL"].startswith("'postgresql://app:")
    assert env["DATABASE_URL"].endswith(f"@{db_private}:5432/app'")
    assert env["REDIS_URL"].startswith("'redis://:") and env["REDIS_URL"].endswith(f"@{db_private}:6379/0'")
    assert set(env) == {"LOG_LEVEL", "SECRET_KEY_BASE", "DATABASE_URL", "REDIS_URL", "PORT", "WEB_CONCURRENCY",
                        "MEDIA_BUCKET"}
    compose = yaml.safe_load(files["compose.yaml"][1])
    assert set(compose["services"]) == {"proxy", "app"}  # the release runs on the first droplet only
    assert set(yaml.safe_load(bundle(recording, "split-app-0-rollout")["compose.yaml"][1])["services"]) == {
        "proxy", "app", "migrate"}


def test_pgbouncer_moves_database_url_to_its_port():
    recording = record(pgbouncer=PgBouncerSpec())
    files = bundle(recording, "split-app-0-rollout")
    assert f"@{_private_ip(recording, 'split-db')}:6432/app'" in files["secrets/app.env"][1]
    assert "pgbouncer/pgbouncer.ini" in bundle(recording, "split-db-rollout")


def test_database_bundle_binds_the_vpc_address_and_admits_the_vpc_range():
    recording = record()
    files = bundle(recording, "split-db-rollout")
    db_private = _private_ip(recording, "split-db")
    assert f"listen_addresses = '{db_private},127.0.0.1'" in files["postgres/postgresql.conf"][1]
    assert "host   app        app        10.10.0.0/20       scram-sha-256" in files["postgres/pg_hba.conf"][1]
    assert f"bind {db_private} 127.0.0.1" in files["redis/redis.conf"][1]
    for path in ("secrets/db_password", "secrets/redis_password", "secrets/redis_auth.conf"):
        assert files[path][0].mode in (0o600, 0o400), path


def test_outputs_are_secret_connection_strings():
    recording = run_recorded(lambda: _export(SplitVps("split", split_args())))
    assert {"database_url", "redis_url"} <= recording.secret_outputs


def test_a_fresh_stack_previews_with_unknowns():
    recording = record(preview=True)
    assert recording.type_counts() == record().type_counts()
    # The bundles need the droplets' addresses: unknown in a fresh preview, and still secret.
    assert isinstance(recording.named("split-db-rollout").inputs["stdin"], Unknown)
    assert "stdin" in recording.named("split-db-rollout").secret_inputs


@pytest.mark.parametrize(("overrides", "message"), [
    ({"app_count": 0}, "SplitVpsArgs.app_count: 0 is outside 1..10"),
    ({"app_count": 11}, "SplitVpsArgs.app_count: 11 is outside 1..10"),
    ({"tls_mode": "acme"}, "SplitVpsArgs.tls_mode: more than one app droplet needs 'origin-certificate' "
                           "(behind a load balancer, ACME challenges would reach a random droplet)"),
    ({"redis_placement": "app"}, "SplitVpsArgs.redis_placement: 'app' is not supported; allowed: 'database'"),
    ({"ssh_admin_cidrs": ["0.0.0.0/0"]}, "SplitVpsArgs.ssh_admin_cidrs: 0.0.0.0/0 would open SSH to the internet"),
    ({"alert_emails": []}, "SplitVpsArgs.alert_emails: at least one recipient is required"),
    ({"secret_env": {}}, "SplitVpsArgs.secret_env: values must be given for exactly app.secret_env_names "
                         "['SECRET_KEY_BASE']; got []"),
])
def test_bad_args_are_refused_with_an_exact_message(overrides, message):
    with pytest.raises(ValueError) as caught:
        SplitVps("split", split_args(**overrides))
    assert str(caught.value) == message


def _private_ip(recording, name: str) -> str:
    from components.testing import _fake_outputs

    resource = recording.named(name)
    return _fake_outputs(resource.type, resource.name, resource.id)["ipv4AddressPrivate"]


def _export(split: SplitVps) -> None:
    import pulumi

    pulumi.export("database_url", split.database_url)
    pulumi.export("redis_url", split.redis_url)


# --- off-site backups -------------------------------------------------------------------------------------


def test_with_backups_the_app_tier_and_only_it_reaches_the_status_server():
    recording = record(offsite_backups=offsite_args())
    db_id = int(recording.named("split-db").id)
    assert recording.named("split-db-firewall").inputs["inboundRules"][1:] == [
        {"protocol": "tcp", "portRange": "5432", "sourceTags": ["phasekit-test-app-tier"]},
        {"protocol": "tcp", "portRange": "6379", "sourceTags": ["phasekit-test-app-tier"]},
        {"protocol": "tcp", "portRange": "8079", "sourceTags": ["phasekit-test-app-tier"]},
    ]
    assert recording.named("split-app-firewall").inputs["outboundRules"] == expected_egress(
        {"protocol": "tcp", "portRange": "5432", "destinationDropletIds": [db_id]},
        {"protocol": "tcp", "portRange": "6379", "destinationDropletIds": [db_id]},
        {"protocol": "tcp", "portRange": "8079", "destinationDropletIds": [db_id]},
    )


def test_with_backups_the_database_host_gets_the_credentials_and_every_web_host_proxies_its_status():
    recording = record(offsite_backups=offsite_args())
    database = bundle(recording, "split-db-rollout")
    assert database["secrets/backup_passphrase"][1] == BACKUP_PASSPHRASE
    assert (database["secrets/pgbackrest.conf"][0].mode, database["secrets/pgbackrest.conf"][0].uid) == (0o400, 999)
    # The recording mocks' private address for the droplet named split-db (components.testing._fake_outputs).
    private_ip = f"10.10.0.{int(hashlib.sha256(b'split-db').hexdigest()[:2], 16) % 250 + 2}"
    assert json.loads(database["caddy/status.json"][1])["apps"]["http"]["servers"]["status"]["listen"] == [
        f"{private_ip}:8079"]
    for index in (0, 1):
        web = bundle(recording, f"split-app-{index}-rollout")
        assert web["proxy.env"][1] == f"PHASEKIT_BACKUP_STATUS_UPSTREAM='{private_ip}:8079'\n"
        assert not any("pgbackrest" in path or "backup_passphrase" in path for path in web)
        caddy = json.loads(web["caddy/caddy.json"][1])
        assert caddy["apps"]["http"]["servers"]["https"]["routes"][0]["match"] == [
            {"host": ["app.example.com"], "path": ["/.well-known/phasekit/backup"]}]
    for droplet in recording.of_type(DROPLET):
        assert BACKUP_PASSPHRASE not in droplet.inputs["userData"]
    check = recording.named("split-backup-check")
    assert check.inputs["target"] == "https://app.example.com/.well-known/phasekit/backup"
    assert recording.named("split-backup-alert").inputs["notifications"] == [{"emails": ["ops@example.com"]}]


def test_without_backups_nothing_about_them_is_created():
    recording = record()
    assert [check.name for check in recording.of_type(UPTIME_CHECK)] == ["split-site-check"]
    assert "proxy.env" not in bundle(recording, "split-app-0-rollout")


# --- issue 11 -----------------------------------------------------------------------------------------------


def test_the_public_url_and_with_backups_the_volume_have_uptime_alerts_to_the_recipients():
    recording = record(offsite_backups=offsite_args())
    targets = {check.name: check.inputs["target"] for check in recording.of_type(UPTIME_CHECK)}
    assert targets == {"split-site-check": "https://app.example.com/healthz",
                       "split-volume-check": "https://app.example.com/.well-known/phasekit/volume",
                       "split-backup-check": "https://app.example.com/.well-known/phasekit/backup"}
    alerts = {alert.name: alert.inputs for alert in recording.of_type(UPTIME_ALERT)}
    assert {name: (inputs["type"], inputs["period"], inputs["notifications"]) for name, inputs in alerts.items()} == {
        "split-site-alert": ("down", "5m", [{"emails": ["ops@example.com"]}]),
        "split-volume-alert": ("down", "10m", [{"emails": ["ops@example.com"]}]),
        "split-backup-alert": ("down", "10m", [{"emails": ["ops@example.com"]}]),
    }


def test_slack_channels_receive_the_alerts_of_both_tiers():
    slack = SlackChannel(channel="#ops", url=pulumi.Output.secret("https://hooks.slack.com/services/T0/B0/x"))
    recording = record(alert_slack=[slack])
    expected = [{"channel": "#ops", "url": "https://hooks.slack.com/services/T0/B0/x"}]
    assert len(recording.of_type(ALERT)) == 6
    assert all(alert.inputs["alerts"]["slacks"] == expected for alert in recording.of_type(ALERT))
    assert recording.named("split-site-alert").inputs["notifications"][0]["slacks"] == expected


def test_growing_the_database_volume_changes_its_rollout_which_waits_for_the_resize():
    small, large = record(), record(volume_size_gib=60)
    assert small.named("split-db-rollout").inputs["stdin"] != large.named("split-db-rollout").inputs["stdin"]
    assert large.one(VOLUME).urn in large.named("split-db-rollout").dependencies
    assert small.named("split-app-0-rollout").inputs["stdin"] == large.named("split-app-0-rollout").inputs["stdin"]


def test_the_reserved_ip_is_never_in_the_project_list_and_is_unassigned_before_it_leaves_the_project():
    """appTier.count 1 -> 2 drops the reserved IP. DigitalOcean refuses to move an assigned IP between projects (412,
    terraform-provider-digitalocean #445). Its own ProjectResources, which the assignment depends on, is deleted only
    after the assignment. The Project itself lists nothing: the provider reads its `resources` back as every URN in
    the project, so a listed subset beside a ProjectResources would diff the IP out after a refresh."""
    one = record(app_count=1)
    project = one.one(PROJECT)
    assert "resources" not in project.inputs
    members, ip_membership = (one.named("split-project-members"), one.named("split-ip-project"))
    assert members.inputs["project"] == ip_membership.inputs["project"] == project.id
    assert not any(urn.startswith("do:reservedip:") for urn in members.inputs["resources"])
    [ip_urn] = ip_membership.inputs["resources"]
    assert ip_urn.startswith("do:reservedip:198.51.100.")
    assignment = one.one("digitalocean:index/reservedIpAssignment:ReservedIpAssignment")
    assert ip_membership.urn in assignment.dependencies
    assert assignment.urn in one.named("split-app-0-rollout").dependencies
    # With two droplets the members are the same droplets plus the load balancer: only additions.
    two = record(app_count=2)
    before, after = set(members.inputs["resources"]), set(two.named("split-project-members").inputs["resources"])
    assert before <= after
    assert {urn.split(":")[1] for urn in after - before} == {"droplet", "loadbalancer"}
    assert "resources" not in two.one(PROJECT).inputs
    assert [resource.name for resource in two.of_type("digitalocean:index/projectResources:ProjectResources")] == [
        "split-project-members"]


def test_every_droplet_may_take_ten_minutes_to_shut_down_on_delete():
    """The provider's delete waits for a graceful shutdown under the delete timeout, 60 s by default
    (resource_droplet.go). The mocks do not record custom timeouts, so the constructor's options are captured."""
    import pulumi_digitalocean

    seen: dict[str, pulumi.ResourceOptions] = {}
    real = pulumi_digitalocean.Droplet

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, name, *args, **kwargs):
            seen[name] = kwargs["opts"]
            super().__init__(name, *args, **kwargs)

    from unittest import mock
    with mock.patch("components.droplet_parts.digitalocean.Droplet", Spy):
        record()
    assert sorted(seen) == ["split-app-0", "split-app-1", "split-db"]
    for opts in seen.values():
        assert opts.custom_timeouts is not None and opts.custom_timeouts.delete == "10m"
        assert opts.custom_timeouts.create is None and opts.custom_timeouts.update is None


def test_each_droplet_has_its_own_host_key_which_its_rollout_pins():
    recording = record()
    for droplet in ("split-db", "split-app-0", "split-app-1"):
        pair = openssh_pair(f"{droplet}-host-key")
        user_data = yaml.safe_load(recording.named(droplet).inputs["userData"])
        assert user_data["ssh_keys"] == {"ed25519_private": pair["privateKeyOpenssh"],
                                         "ed25519_public": pair["publicKeyOpenssh"]}
        assert "userData" in recording.named(droplet).secret_inputs
        rollout, install = recording.named(f"{droplet}-rollout"), recording.named(f"{droplet}-host-key-install")
        assert rollout.inputs["connection"]["hostKey"] == pair["publicKeyOpenssh"]
        assert install.inputs["connection"]["hostKey"] == pair["publicKeyOpenssh"].strip() + " root@droplet"
        assert install.inputs["stdin"] == ""  # a droplet created with its key is sent no secret
        assert "hostKey" not in recording.named(f"{droplet}-host-key-install-read").inputs["connection"]
        assert install.urn in rollout.dependencies
