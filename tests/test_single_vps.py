"""SingleVps under the recording mock monitor: exact children, security inputs and options.

Mocks cannot prove that DigitalOcean accepts these inputs or how it diffs them against a live droplet;
a real ``pulumi preview`` does. The cloud-init and compose contents are checked by their real consumers
in test_real_consumers.py.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile

import pulumi
import pytest
import yaml

from components.droplet_parts import SlackChannel, host_key_script, rollout_script
from components.single_vps import SingleVps
from components.testing import mock_openssh_pair as openssh_pair
from components.testing import run_recorded
from tests.builders import BACKUP_PASSPHRASE, CLOUDFLARE_CIDRS, offsite_args, vps_args

DROPLET = "digitalocean:index/droplet:Droplet"
VOLUME = "digitalocean:index/volume:Volume"
FIREWALL = "digitalocean:index/firewall:Firewall"
ALERT = "digitalocean:index/monitorAlert:MonitorAlert"
ROLLOUT = "command:remote:Command"
UPTIME_CHECK = "digitalocean:index/uptimeCheck:UptimeCheck"
UPTIME_ALERT = "digitalocean:index/uptimeAlert:UptimeAlert"
EVERYWHERE = ["0.0.0.0/0", "::/0"]


def record(preview: bool = False, **overrides):
    return run_recorded(lambda: SingleVps("web", vps_args(**overrides)), preview=preview)


def bundle_files(recording) -> dict[str, tarfile.TarInfo | bytes]:
    stdin = recording.named("web-rollout").inputs["stdin"]
    archive = tarfile.open(fileobj=io.BytesIO(base64.b64decode(stdin)))
    return {member.name: (member, archive.extractfile(member).read() if member.isfile() else b"")
            for member in archive.getmembers()}


def test_caddy_trusts_cloudflare_for_the_visitor_address_only_when_proxied():
    caddy = json.loads(bundle_files(record())["caddy/caddy.json"][1])["apps"]["http"]["servers"]["https"]
    assert caddy["trusted_proxies"] == {"source": "static", "ranges": list(CLOUDFLARE_CIDRS)}
    assert caddy["client_ip_headers"] == ["CF-Connecting-IP"]
    direct = record(tls_mode="acme", origin_certificate_pem=None, origin_private_key_pem=None,
                    web_source_cidrs=EVERYWHERE)
    assert "trusted_proxies" not in json.loads(bundle_files(direct)["caddy/caddy.json"][1])[
        "apps"]["http"]["servers"]["https"]


def test_children_are_exactly_the_phase1_topology():
    recording = record()
    assert recording.type_counts() == {
        "phasekit:index:SingleVps": 1,
        "digitalocean:index/vpc:Vpc": 1,
        VOLUME: 1,
        DROPLET: 1,
        "digitalocean:index/reservedIp:ReservedIp": 1,
        "digitalocean:index/reservedIpAssignment:ReservedIpAssignment": 1,
        FIREWALL: 1,
        ALERT: 3,
        UPTIME_CHECK: 2,
        UPTIME_ALERT: 2,
        "digitalocean:index/project:Project": 1,
        "random:index/randomPassword:RandomPassword": 2,
        "tls:index/privateKey:PrivateKey": 1,
        ROLLOUT: 3,
    }
    component = recording.one("phasekit:index:SingleVps")
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert all(child.name.startswith("web-") for child in children)


def test_firewall_admits_only_ssh_from_admins_and_web_from_cloudflare():
    firewall = record().one(FIREWALL).inputs
    assert firewall["inboundRules"] == [
        {"protocol": "tcp", "portRange": "22", "sourceAddresses": ["203.0.113.0/24"]},
        {"protocol": "tcp", "portRange": "80", "sourceAddresses": CLOUDFLARE_CIDRS},
        {"protocol": "tcp", "portRange": "443", "sourceAddresses": CLOUDFLARE_CIDRS},
    ]
    assert firewall["outboundRules"] == [
        {"protocol": "tcp", "portRange": "53", "destinationAddresses": EVERYWHERE},
        {"protocol": "udp", "portRange": "53", "destinationAddresses": EVERYWHERE},
        {"protocol": "udp", "portRange": "123", "destinationAddresses": EVERYWHERE},
        {"protocol": "tcp", "portRange": "80", "destinationAddresses": EVERYWHERE},
        {"protocol": "tcp", "portRange": "443", "destinationAddresses": EVERYWHERE},
        {"protocol": "icmp", "destinationAddresses": EVERYWHERE},
    ]
    exposed_ports = {rule["portRange"] for rule in firewall["inboundRules"]}
    assert "5432" not in exposed_ports and "6379" not in exposed_ports


def test_firewall_and_alerts_target_the_droplet_by_id_and_never_by_tag():
    """On DigitalOcean a firewall's or alert policy's tags select droplets: shared tags would widen them."""
    recording = record()
    firewall = recording.one(FIREWALL).inputs
    assert firewall["dropletIds"] == [int(recording.one(DROPLET).id)]
    assert "tags" not in firewall
    for alert in recording.of_type(ALERT):
        assert alert.inputs["entities"] == [recording.one(DROPLET).id]
        assert "tags" not in alert.inputs


def test_droplet_has_backups_monitoring_and_survives_user_data_changes():
    droplet = record().one(DROPLET)
    inputs = droplet.inputs
    assert inputs["image"] == "ubuntu-24-04-x64"
    assert inputs["region"] == "nyc3"
    assert inputs["size"] == "s-2vcpu-4gb"
    assert inputs["backups"] is True
    assert inputs["backupPolicy"] == {"plan": "weekly", "weekday": "SUN", "hour": 4}
    assert inputs["monitoring"] is True
    assert inputs["resizeDisk"] is False
    assert inputs["sshKeys"] == ["3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"]
    assert inputs["userData"].startswith("#cloud-config\n")
    assert droplet.ignore_changes == ("userData", "sshKeys")
    assert droplet.delete_before_replace is True
    assert droplet.protect is False


def test_backups_can_be_turned_off_and_plan_changed():
    assert record(backup_plan="daily").one(DROPLET).inputs["backupPolicy"]["plan"] == "daily"
    inputs = record(backups=False).one(DROPLET).inputs
    assert inputs["backups"] is False and "backupPolicy" not in inputs


def test_user_data_carries_no_secret_but_the_droplets_own_host_key():
    """The SSH host private key is the one secret in user_data (docs/security.md says what that exposes)."""
    recording = record()
    droplet = recording.one(DROPLET)
    assert droplet.secret_inputs == frozenset({"userData"})
    key = recording.one("tls:index/privateKey:PrivateKey")
    assert (key.name, key.inputs) == ("web-droplet-host-key", {"algorithm": "ED25519"})
    document = yaml.safe_load(droplet.inputs["userData"])
    pair = openssh_pair("web-droplet-host-key")
    assert document.pop("ssh_keys") == {"ed25519_private": pair["privateKeyOpenssh"],
                                        "ed25519_public": pair["publicKeyOpenssh"]}
    rest = yaml.safe_dump(document)
    for secret_marker in ("s3cr3t-base", "PRIVATE KEY", "requirepass", "DATABASE_URL"):
        assert secret_marker not in rest


def test_every_rollout_pins_the_host_key_the_droplet_was_given():
    """pulumi-command >= 1.1 checks ``connection.hostKey`` (an authorized_keys line) with ssh.FixedHostKey."""
    recording = record()
    pair = openssh_pair("web-droplet-host-key")
    rollout = recording.named("web-rollout")
    assert rollout.inputs["connection"]["hostKey"] == pair["publicKeyOpenssh"]
    # A droplet first shows which key it presents (the one unpinned connection, which sends nothing); the install
    # step is pinned to that, and a droplet created with the key (the mocks' default) is sent no secret.
    read = recording.named("web-droplet-host-key-install-read")
    assert "hostKey" not in read.inputs["connection"] and "stdin" not in read.inputs
    assert read.inputs["create"] == read.inputs["update"] == "cat /etc/ssh/ssh_host_ed25519_key.pub"
    install = recording.named("web-droplet-host-key-install")
    assert install.inputs["connection"]["hostKey"] == pair["publicKeyOpenssh"].strip() + " root@droplet"
    assert install.inputs["create"] == host_key_script(pair["publicKeyOpenssh"]) == install.inputs["update"]
    assert install.inputs["stdin"] == "" and "stdin" in install.secret_inputs
    assert read.urn in install.dependencies and install.urn in rollout.dependencies
    assert recording.named("web-firewall").urn in read.dependencies


def test_a_droplet_from_before_pinning_gets_the_key_only_over_a_connection_pinned_to_what_it_showed():
    older = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLDERKEYOLDERKEYOLDERKEYOLDERKEYOLDERKEYOLDE root@old"

    def presents_its_own_key(type_token: str, name: str, inputs: dict) -> dict:
        return {"stdout": older + "\n"} if name == "web-droplet-host-key-install-read" else {}

    recording = run_recorded(lambda: SingleVps("web", vps_args()), output_overrides=presents_its_own_key)
    install = recording.named("web-droplet-host-key-install")
    assert install.inputs["connection"]["hostKey"] == older
    assert install.inputs["stdin"] == openssh_pair("web-droplet-host-key")["privateKeyOpenssh"]
    assert "stdin" in install.secret_inputs


def test_volume_is_protected_retained_and_formatted_by_label():
    volume = record().one(VOLUME)
    assert volume.protect is True
    assert volume.retain_on_delete is True
    assert volume.inputs["size"] == 10
    assert volume.inputs["initialFilesystemType"] == "ext4"
    assert volume.inputs["initialFilesystemLabel"] == "phasekit-data"
    assert volume.urn == ("urn:pulumi:test::phasekit::phasekit:index:SingleVps$"
                          "digitalocean:index/volume:Volume::web-data")


def test_unprotected_when_asked():
    volume = record(protect_data=False).one(VOLUME)
    assert (volume.protect, volume.retain_on_delete) == (False, False)


def test_droplet_boots_with_the_volume_attached():
    recording = record()
    assert recording.one(DROPLET).inputs["volumeIds"] == [recording.one(VOLUME).id]


def test_alerts_cpu_memory_disk_to_the_alert_emails():
    alerts = {alert.name: alert.inputs for alert in record().of_type(ALERT)}
    expected = {
        "web-cpu-alert": ("v1/insights/droplet/cpu", 70),
        "web-memory-alert": ("v1/insights/droplet/memory_utilization_percent", 80),
        "web-disk-alert": ("v1/insights/droplet/disk_utilization_percent", 80),
    }
    assert {name: (inputs["type"], inputs["value"]) for name, inputs in alerts.items()} == expected
    for inputs in alerts.values():
        assert inputs["compare"] == "GreaterThan"
        assert inputs["window"] == "5m"
        assert inputs["enabled"] is True
        assert inputs["alerts"] == {"emails": ["ops@example.com"]}


def test_rollout_ships_the_bundle_as_a_secret_over_ssh():
    recording = record()
    rollout = recording.named("web-rollout")
    assert "stdin" in rollout.secret_inputs
    assert rollout.inputs["create"] == rollout_script(data_volume=True) == rollout.inputs["update"]
    assert rollout.inputs["connection"]["user"] == "root"
    assert rollout.inputs["logging"] == "stdoutAndStderr"
    assert "s3cr3t-base" not in rollout.inputs["create"]
    files = bundle_files(recording)
    info, env_file = files["secrets/app.env"]
    assert info.mode == 0o600
    assert b"SECRET_KEY_BASE='s3cr3t-base'\n" in env_file
    info, _ = files["secrets/redis_auth.conf"]
    assert (info.mode, info.uid) == (0o400, 999)
    info, _ = files["tls/origin.key"]
    assert info.mode == 0o600
    assert files["secrets"][0].mode == 0o700


def test_connection_strings_are_secret_and_point_inside_the_host():
    def program():
        vps = SingleVps("web", vps_args())
        pulumi.export("database_url", vps.database_url)
        pulumi.export("redis_url", vps.redis_url)

    recording = run_recorded(program)
    assert recording.secret_outputs == {"database_url", "redis_url"}
    assert recording.outputs["database_url"].startswith("postgresql://app:")
    assert recording.outputs["database_url"].endswith("@db:5432/app")
    assert recording.outputs["redis_url"].startswith("redis://:")
    assert recording.outputs["redis_url"].endswith("@redis:6379/0")


def test_passwords_are_long_and_url_safe():
    for password in record().of_type("random:index/randomPassword:RandomPassword"):
        assert password.inputs == {"length": 32, "special": False}


def test_tags_are_flattened_for_digitalocean():
    recording = record()
    expected = ["managed-by:phasekit", "phase:1", "project:phasekit", "stack:test"]
    assert recording.one(DROPLET).inputs["tags"] == expected
    assert recording.one(VOLUME).inputs["tags"] == expected


def test_cloud_init_mounts_by_label_and_writes_the_stack():
    document = yaml.safe_load(record().one(DROPLET).inputs["userData"])
    assert document["mounts"] == [
        ["LABEL=phasekit-data", "/mnt/phasekit-data", "ext4", "defaults,nofail,discard,noatime", "0", "2"]]
    paths = {entry["path"] for entry in document["write_files"]}
    assert {"/opt/phasekit/compose.yaml", "/opt/phasekit/caddy/caddy.json",
            "/opt/phasekit/postgres/postgresql.conf", "/opt/phasekit/redis/redis.conf"} <= paths
    assert not any("/secrets/" in path or "/tls/" in path for path in paths)


def test_preview_of_a_fresh_stack_leaves_computed_values_unknown():
    rollout = record(preview=True).named("web-rollout")
    assert type(rollout.inputs["stdin"]).__name__ == "Unknown"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"ssh_admin_cidrs": []}, "SingleVpsArgs.ssh_admin_cidrs: at least one admin network is required"),
    ({"ssh_admin_cidrs": ["10.0.0.0/8", "::/0"]},
     "SingleVpsArgs.ssh_admin_cidrs: ::/0 would open SSH to the internet"),
    ({"ssh_key_fingerprints": []}, "SingleVpsArgs.ssh_key_fingerprints: at least one SSH key is required"),
    ({"alert_emails": []}, "SingleVpsArgs.alert_emails: at least one recipient is required"),
    ({"secret_env": {}},
     "SingleVpsArgs.secret_env: values must be given for exactly app.secret_env_names "
     "['SECRET_KEY_BASE']; got []"),
    ({"registry_password": pulumi.Output.secret("tok")},
     "SingleVpsArgs.registry_password: give it exactly when app.registry_server is set"),
    ({"origin_private_key_pem": None},
     "SingleVpsArgs: tls_mode 'origin-certificate' needs origin_certificate_pem and origin_private_key_pem"),
])
def test_invalid_args_are_refused_with_exact_messages(overrides, message):
    with pytest.raises(ValueError) as raised:
        record(**overrides)
    assert str(raised.value) == message


# --- off-site backups -------------------------------------------------------------------------------------

def test_offsite_backups_add_exactly_an_uptime_check_and_its_alert():
    with_backups = record(offsite_backups=offsite_args()).type_counts()
    without = record().type_counts()
    assert {token: count - without.get(token, 0) for token, count in with_backups.items()
            if count != without.get(token, 0)} == {UPTIME_CHECK: 1, UPTIME_ALERT: 1}


def test_the_backup_alert_mails_the_alert_recipients_when_the_status_url_is_down():
    recording = record(offsite_backups=offsite_args())
    check = recording.named("web-backup-check")
    assert check.inputs == {"name": "phasekit-test-app backups",
                            "target": "https://app.example.com/.well-known/phasekit/backup",
                            "type": "https", "regions": ["us_east", "eu_west"], "enabled": True}
    assert recording.named("web-backup-alert").inputs == {
        "checkId": check.id, "name": "phasekit-test-app: backups late or WAL archiving failing", "type": "down",
        "period": "10m", "notifications": [{"emails": ["ops@example.com"]}]}
    component = recording.one("phasekit:index:SingleVps")
    assert recording.named("web-backup-alert").parent == component.urn


def test_backup_credentials_travel_only_in_the_bundle_with_private_modes():
    recording = record(offsite_backups=offsite_args())
    files = bundle_files(recording)
    modes = {path: (member.mode, member.uid) for path, (member, _) in files.items()
             if path in ("secrets/pgbackrest.conf", "secrets/backup_passphrase", "secrets/r2-curl.conf",
                         "backup.sh", "postgres/pgbackrest.conf")}
    assert modes == {"secrets/pgbackrest.conf": (0o400, 999), "secrets/backup_passphrase": (0o400, 0),
                     "secrets/r2-curl.conf": (0o400, 0), "backup.sh": (0o755, 0),
                     "postgres/pgbackrest.conf": (0o644, 0)}
    assert files["secrets/pgbackrest.conf"][1].decode() == (
        f"[global]\nrepo1-s3-key=token-id\nrepo1-s3-key-secret={'a' * 64}\nrepo1-cipher-pass={BACKUP_PASSPHRASE}\n")
    assert files["secrets/r2-curl.conf"][1].decode() == f'user = "token-id:{"a" * 64}"\n'
    user_data = recording.one(DROPLET).inputs["userData"]
    assert BACKUP_PASSPHRASE not in user_data and "a" * 64 not in user_data
    assert recording.one(DROPLET).secret_inputs == frozenset({"userData"})  # the host key only
    assert "rollout" in recording.named("web-rollout").name and "stdin" in recording.named("web-rollout").secret_inputs


def test_the_nightly_dump_to_the_root_disk_is_gone_and_deploy_retires_it_on_old_droplets():
    user_data = record(offsite_backups=offsite_args()).one(DROPLET).inputs["userData"]
    document = yaml.safe_load(user_data.removeprefix("#cloud-config\n"))
    assert [entry["path"] for entry in document["write_files"] if "pg-dump" in entry["path"]] == []
    assert not any("pg-dump" in " ".join(command) for command in document["runcmd"])
    deploy = next(entry["content"] for entry in document["write_files"] if entry["path"].endswith("/deploy.sh"))
    assert ("! systemctl is-enabled --quiet phasekit-pg-dump.timer 2>/dev/null || systemctl disable --now "
            "phasekit-pg-dump.timer") in deploy.splitlines()


# --- issue 11: uptime of the site and the volume, Slack, volume growth, project order ---------------------------

SLACK = SlackChannel(channel="#ops", url=pulumi.Output.secret("https://hooks.slack.com/services/T0/B0/x"))


def test_the_site_and_the_data_volume_each_have_an_uptime_check_whose_down_alert_reaches_the_recipients():
    recording = record()
    site, volume = recording.named("web-site-check"), recording.named("web-volume-check")
    assert site.inputs == {"name": "phasekit-test-app site", "target": "https://app.example.com/healthz",
                           "type": "https", "regions": ["us_east", "eu_west"], "enabled": True}
    assert volume.inputs == {"name": "phasekit-test-app data volume",
                             "target": "https://app.example.com/.well-known/phasekit/volume",
                             "type": "https", "regions": ["us_east", "eu_west"], "enabled": True}
    assert recording.named("web-site-alert").inputs == {
        "checkId": site.id, "name": "phasekit-test-app: site down", "type": "down", "period": "5m",
        "notifications": [{"emails": ["ops@example.com"]}]}
    assert recording.named("web-volume-alert").inputs == {
        "checkId": volume.id, "name": "phasekit-test-app: data volume 80% full or more", "type": "down",
        "period": "10m", "notifications": [{"emails": ["ops@example.com"]}]}


def test_slack_channels_receive_every_monitoring_and_uptime_alert_and_their_webhooks_stay_secret():
    recording = record(alert_slack=[SLACK], offsite_backups=offsite_args())
    slack = [{"channel": "#ops", "url": "https://hooks.slack.com/services/T0/B0/x"}]
    alerts = recording.of_type(ALERT)
    assert len(alerts) == 3
    for alert in alerts:
        assert alert.inputs["alerts"] == {"emails": ["ops@example.com"], "slacks": slack}
        assert "alerts" in alert.secret_inputs
    uptime = recording.of_type(UPTIME_ALERT)
    assert len(uptime) == 3
    for alert in uptime:
        assert alert.inputs["notifications"] == [{"emails": ["ops@example.com"], "slacks": slack}]
        assert "notifications" in alert.secret_inputs


@pytest.mark.parametrize(("slack", "message"), [
    (SlackChannel(channel="", url="https://hooks.slack.com/services/T0/B0/x"),
     "SingleVpsArgs.alert_slack[0]: channel is empty; allowed: the channel's name, e.g. '#ops'"),
    (SlackChannel(channel="  ", url="https://hooks.slack.com/services/T0/B0/x"),
     "SingleVpsArgs.alert_slack[0]: channel is empty; allowed: the channel's name, e.g. '#ops'"),
    (SlackChannel(channel="#ops", url="http://hooks.slack.com/services/T0/B0/x"),
     "SingleVpsArgs.alert_slack[0]: the webhook URL uses http://; allowed: an https:// Slack incoming-webhook URL "
     "(e.g. https://hooks.slack.com/services/...)"),
    (SlackChannel(channel="#ops", url=""),
     "SingleVpsArgs.alert_slack[0]: the webhook URL is empty; allowed: an https:// Slack incoming-webhook URL"),
])
def test_bad_slack_channels_are_refused_without_quoting_the_webhook(slack, message):
    with pytest.raises(ValueError) as raised:
        record(alert_slack=[slack])
    assert str(raised.value) == message
    assert "/T0/B0/x" not in message


def test_growing_the_volume_changes_the_rollout_which_waits_for_the_resize():
    """pulumi-command re-runs a Command only when its inputs change: the size must reach the bundle."""
    small, large = record(), record(volume_size_gib=40)
    assert large.one(VOLUME).inputs["size"] == 40
    assert small.named("web-rollout").inputs["stdin"] != large.named("web-rollout").inputs["stdin"]
    assert large.one(VOLUME).urn in large.named("web-rollout").dependencies


def test_the_reserved_ip_is_unassigned_before_the_project_lets_go_of_it():
    """A Project hands its resources to the default project when deleted, and DigitalOcean refuses to move an
    assigned reserved IP (412): the assignment depends on the Project, so Pulumi deletes it first."""
    recording = record()
    project = recording.one("digitalocean:index/project:Project")
    droplet_urn, volume_urn, ip_urn = project.inputs["resources"]
    assert (droplet_urn, volume_urn) == (f"do:droplet:{recording.one(DROPLET).id}", f"do:volume:{recording.one(VOLUME).id}")
    assert ip_urn.startswith("do:reservedip:198.51.100.")
    assignment = recording.one("digitalocean:index/reservedIpAssignment:ReservedIpAssignment")
    assert project.urn in assignment.dependencies
