"""The whole phase-1 program, from the committed stack file, under the recording mock monitor.

This is the path ``pulumi up`` takes (runtime config -> load_config -> phase builder), with the engine
replaced by mocks. Mocks cannot prove what the providers accept or compute; ``pulumi preview`` does.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import pytest

from components.testing import run_recorded
from infra.errors import ConfigError
from infra.program import build_stack
from infra.runtime_config import runtime_raw_config
from phasekit.plan import runtime_form
from phasekit.stack_file import read_stack_file
from tests.builders import CLOUDFLARE_CIDRS

ROOT = Path(__file__).resolve().parents[1]
PHASE1 = read_stack_file(ROOT / "Pulumi.phase1.yaml")
PASSPHRASE = "correct-horse-battery-staple"
SECRETS = {"phasekit:secrets": json.dumps({"SECRET_KEY_BASE": "from-pulumi-secret", "BACKUP_PASSPHRASE": PASSPHRASE})}


def run_phase1(raw=PHASE1, extra_config=SECRETS, secret_keys=("phasekit:secrets",), preview=False):
    config, _ = runtime_form(raw, [])
    return run_recorded(lambda: build_stack(runtime_raw_config(), "phasekit", "phase1"),
                        preview=preview, stack="phase1", config={**config, **extra_config},
                        secret_keys=list(secret_keys))


def bundle(recording) -> dict[str, str]:
    stdin = recording.named("vps-rollout").inputs["stdin"]
    archive = tarfile.open(fileobj=io.BytesIO(base64.b64decode(stdin)))
    return {member.name: archive.extractfile(member).read().decode()
            for member in archive.getmembers() if member.isfile()}


def test_phase1_builds_the_whole_topology():
    assert run_phase1().type_counts() == {
        "phasekit:index:CloudflareEdge": 1,
        "cloudflare:index/dnsRecord:DnsRecord": 1,
        "cloudflare:index/zoneSetting:ZoneSetting": 4,
        "tls:index/privateKey:PrivateKey": 2,
        "tls:index/certRequest:CertRequest": 1,
        "cloudflare:index/originCaCertificate:OriginCaCertificate": 1,
        "cloudflare:index/r2Bucket:R2Bucket": 2,
        "phasekit:index:BackupStore": 1,
        "cloudflare:index/apiToken:ApiToken": 1,
        "cloudflare:index/r2BucketLifecycle:R2BucketLifecycle": 1,
        "phasekit:index:SingleVps": 1,
        "digitalocean:index/vpc:Vpc": 1,
        "digitalocean:index/volume:Volume": 1,
        "digitalocean:index/droplet:Droplet": 1,
        "digitalocean:index/reservedIp:ReservedIp": 1,
        "digitalocean:index/reservedIpAssignment:ReservedIpAssignment": 1,
        "digitalocean:index/firewall:Firewall": 1,
        "digitalocean:index/monitorAlert:MonitorAlert": 3,
        "digitalocean:index/uptimeCheck:UptimeCheck": 3,
        "digitalocean:index/uptimeAlert:UptimeAlert": 3,
        "digitalocean:index/project:Project": 1,
        "random:index/randomPassword:RandomPassword": 2,
        "command:remote:Command": 3,
    }


def test_stateful_urns_are_pinned():
    """Renaming or re-parenting these would replace the data they hold: this test must fail first."""
    recording = run_phase1()
    stateful = {resource.urn for resource in recording.resources if resource.protect}
    assert stateful == {
        "urn:pulumi:phase1::phasekit::phasekit:index:SingleVps$digitalocean:index/volume:Volume::vps-data",
        "urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/r2Bucket:R2Bucket::edge-media",
        "urn:pulumi:phase1::phasekit::phasekit:index:BackupStore$cloudflare:index/r2Bucket:R2Bucket::backups-bucket",
    }
    assert all(resource.retain_on_delete for resource in recording.resources if resource.protect)


def test_protect_false_unprotects_data():
    raw = {**PHASE1, "phasekit:protect": False}
    assert not any(resource.protect for resource in run_phase1(raw).resources)


def test_dns_points_at_the_reserved_ip_and_web_ports_admit_only_cloudflare():
    recording = run_phase1()
    record = recording.one("cloudflare:index/dnsRecord:DnsRecord").inputs
    assert record["content"] == recording.outputs["origin_ip"]
    assert record["proxied"] is True
    rules = recording.one("digitalocean:index/firewall:Firewall").inputs["inboundRules"]
    assert [rule["sourceAddresses"] for rule in rules] == [["203.0.113.0/24"], CLOUDFLARE_CIDRS, CLOUDFLARE_CIDRS]


def test_unproxied_record_opens_web_ports_and_uses_acme():
    raw = {**PHASE1, "phasekit:edge": {**PHASE1["phasekit:edge"], "proxied": False}}
    recording = run_phase1(raw)
    rules = recording.one("digitalocean:index/firewall:Firewall").inputs["inboundRules"]
    assert [rule["sourceAddresses"] for rule in rules[1:]] == [["0.0.0.0/0", "::/0"]] * 2
    assert recording.of_type("cloudflare:index/originCaCertificate:OriginCaCertificate") == []
    caddy = json.loads(bundle(recording)["caddy/caddy.json"])
    assert "tls" not in caddy["apps"]


def test_the_app_receives_the_contract_and_its_secret_env():
    recording = run_phase1()
    env_file = bundle(recording)["secrets/app.env"]
    names = [line.split("=", 1)[0] for line in env_file.splitlines()]
    assert names == ["LOG_LEVEL", "SECRET_KEY_BASE", "DATABASE_URL", "REDIS_URL", "PORT", "WEB_CONCURRENCY",
                     "MEDIA_BUCKET"]
    assert "SECRET_KEY_BASE='from-pulumi-secret'" in env_file.splitlines()
    assert "WEB_CONCURRENCY='1'" in env_file.splitlines()
    assert "MEDIA_BUCKET='phasekit-phase1-media'" in env_file.splitlines()
    assert f"DATABASE_URL='{recording.outputs['database_url']}'" in env_file.splitlines()


def test_outputs_mask_connection_strings():
    recording = run_phase1()
    assert recording.secret_outputs == {"database_url", "redis_url", "backupCredentials"}
    assert recording.outputs["app_url"] == "https://app.example.com"
    assert recording.outputs["media_bucket_name"] == "phasekit-phase1-media"


def test_a_fresh_stack_previews_with_unknowns():
    recording = run_phase1(preview=True)
    assert recording.outputs["origin_ip"] == "(known after apply)"
    assert len(recording.resources) == 37


def test_missing_secret_value_stops_with_the_command_to_set_it():
    with pytest.raises(ConfigError) as raised:
        run_phase1(extra_config={}, secret_keys=())
    assert str(raised.value) == (
        "invalid stack config (2 problems):\n"
        "  phasekit:secrets.SECRET_KEY_BASE: missing; app.secretEnv lists it, so set it with: "
        "pulumi config set --secret --path 'secrets.SECRET_KEY_BASE'\n"
        "  phasekit:secrets.BACKUP_PASSPHRASE: missing; the off-site backups are encrypted with it (keep a copy "
        "outside Pulumi: restores need it), so set it with: pulumi config set --secret --path "
        "'secrets.BACKUP_PASSPHRASE'")


def test_a_short_backup_passphrase_is_refused_without_showing_it():
    short = {"phasekit:secrets": json.dumps({"SECRET_KEY_BASE": "skb", "BACKUP_PASSPHRASE": "hunter2-hunter2"})}
    with pytest.raises(ConfigError) as raised:
        run_phase1(extra_config=short)
    assert str(raised.value) == (
        "phasekit:secrets.BACKUP_PASSPHRASE: 15 characters is too short to encrypt backups with; allowed: at least "
        "16 characters, e.g. openssl rand -base64 32 | pulumi config set --secret --path 'secrets.BACKUP_PASSPHRASE'")


def test_backups_reach_the_droplet_only_through_the_ssh_bundle():
    recording = run_phase1()
    files = bundle(recording)
    credentials = recording.outputs["backupCredentials"]
    token = recording.one("cloudflare:index/apiToken:ApiToken")
    assert credentials == {
        "endpoint": "01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com",
        "bucket": "phasekit-phase1-backups",
        "accessKeyId": token.id,
        "secretAccessKey": credentials["secretAccessKey"],
    }
    assert len(credentials["secretAccessKey"]) == 64
    assert files["secrets/pgbackrest.conf"] == (
        f"[global]\nrepo1-s3-key={token.id}\nrepo1-s3-key-secret={credentials['secretAccessKey']}\n"
        f"repo1-cipher-pass={PASSPHRASE}\n")
    assert files["secrets/backup_passphrase"] == PASSPHRASE
    assert "repo1-s3-bucket=phasekit-phase1-backups" in files["postgres/pgbackrest.conf"].splitlines()
    user_data = recording.one("digitalocean:index/droplet:Droplet").inputs["userData"]
    for secret in (PASSPHRASE, credentials["secretAccessKey"]):
        assert secret not in user_data
    assert "backup.sh" in user_data  # the public part is there from the first boot


def test_the_backup_alert_watches_the_status_url_and_mails_the_alert_recipients():
    recording = run_phase1()
    check = recording.named("vps-backup-check")
    assert check.inputs == {"name": "phasekit-phase1-app backups", "target":
                            "https://app.example.com/.well-known/phasekit/backup", "type": "https",
                            "regions": ["us_east", "eu_west"], "enabled": True}
    alert = recording.named("vps-backup-alert")
    assert alert.inputs == {"checkId": check.id, "name": "phasekit-phase1-app: backups late or WAL archiving failing",
                            "type": "down", "period": "10m", "notifications": [{"emails": ["ops@example.com"]}]}


def test_backup_schedules_and_retention_come_from_config():
    raw = {**PHASE1, "phasekit:backups": {"retentionFull": 2, "recoveryPointMinutes": 2,
                                          "fullSchedule": "Sat *-*-* 01:00:00"}}
    files = bundle(run_phase1(raw))
    assert "repo1-retention-full=2" in files["postgres/pgbackrest.conf"].splitlines()
    assert "archive_timeout = '60s'" in files["postgres/postgresql.conf"].splitlines()
    assert "OnCalendar=Sat *-*-* 01:00:00" in files["systemd/phasekit-backup-full.timer"].splitlines()


def test_plain_text_secret_config_is_refused():
    with pytest.raises(ConfigError) as raised:
        run_phase1(secret_keys=())
    assert str(raised.value) == "phasekit:secrets: set in plain text; set it again with --secret"


def test_under_the_engine_bad_config_is_one_run_error_without_traceback():
    import pulumi

    from infra.program import main

    raw = {**PHASE1, "phasekit:vps": {**PHASE1["phasekit:vps"], "volumeSizeGib": 0}}
    config, _ = runtime_form(raw, [])
    with pytest.raises(pulumi.RunError) as raised:
        run_recorded(main, stack="phase1", config={**config, **SECRETS}, secret_keys=["phasekit:secrets"])
    assert str(raised.value) == "phasekit:vps.volumeSizeGib: 0 is out of range; allowed: 1..16384"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


PRIVATE_IMAGE = {**PHASE1, "phasekit:app": {**PHASE1["phasekit:app"], "image": "ghcr.io/acme/shop:2.0.0",
                                            "registry": {"server": "ghcr.io", "username": "acme"}}}


def test_a_private_image_needs_the_registry_password():
    with pytest.raises(ConfigError) as raised:
        run_phase1(PRIVATE_IMAGE)
    assert str(raised.value) == (
        "phasekit:secrets.REGISTRY_PASSWORD: missing; app.registry needs it, so set it with: "
        "pulumi config set --secret --path 'secrets.REGISTRY_PASSWORD'")


def test_a_private_image_is_pulled_with_credentials_that_stay_out_of_the_app():
    secrets = {"phasekit:secrets": json.dumps({"SECRET_KEY_BASE": "skb", "REGISTRY_PASSWORD": "ghp_tok",
                                                "BACKUP_PASSPHRASE": PASSPHRASE})}
    files = bundle(run_phase1(PRIVATE_IMAGE, extra_config=secrets))
    assert json.loads(files["secrets/docker/config.json"]) == {
        "auths": {"ghcr.io": {"auth": base64.b64encode(b"acme:ghp_tok").decode()}}}
    assert "ghp_tok" not in files["secrets/app.env"]


def test_backup_spec_is_the_stacks_bucket_endpoint_and_backups_config():
    from components.backups import BackupSpec
    from infra.backups import backup_spec
    from infra.config import load_config

    raw = {**PHASE1, "phasekit:backups": {"retentionFull": 3, "retentionDiff": 14, "recoveryPointMinutes": 10,
                                          "fullSchedule": "Sat 01:00", "diffSchedule": "Sun..Fri 01:00",
                                          "redisSchedule": "hourly"}}
    assert backup_spec(load_config(raw), "Shop", "prod") == BackupSpec(
        bucket="shop-prod-backups", endpoint="01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com",
        retention_full=3, retention_diff=14, recovery_point_seconds=600, full_schedule="Sat 01:00",
        diff_schedule="Sun..Fri 01:00", redis_schedule="hourly")
    phase3 = load_config(read_stack_file(ROOT / "Pulumi.phase3.yaml"))
    assert backup_spec(phase3, "phasekit", "phase3").redis_schedule is None  # ElastiCache keeps its own


# --- issue 11: alert recipients on Slack, service images ------------------------------------------------------

WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXX"
SLACK_STACK = {**PHASE1, "phasekit:vps": {**PHASE1["phasekit:vps"],
                                          "alertSlack": [{"channel": "#ops", "webhook": "OPS_SLACK_WEBHOOK"}]}}


def with_secrets(**extra: str) -> dict[str, str]:
    return {"phasekit:secrets": json.dumps({"SECRET_KEY_BASE": "skb", "BACKUP_PASSPHRASE": PASSPHRASE, **extra})}


def test_slack_webhooks_come_from_the_secrets_and_reach_every_alert_as_secrets():
    recording = run_phase1(SLACK_STACK, extra_config=with_secrets(OPS_SLACK_WEBHOOK=WEBHOOK))
    expected = [{"channel": "#ops", "url": WEBHOOK}]
    monitor = recording.of_type("digitalocean:index/monitorAlert:MonitorAlert")
    uptime = recording.of_type("digitalocean:index/uptimeAlert:UptimeAlert")
    assert (len(monitor), len(uptime)) == (3, 3)
    assert all(alert.inputs["alerts"]["slacks"] == expected and "alerts" in alert.secret_inputs for alert in monitor)
    assert all(alert.inputs["notifications"][0]["slacks"] == expected and "notifications" in alert.secret_inputs
               for alert in uptime)


def test_a_named_slack_webhook_must_be_set():
    with pytest.raises(ConfigError) as raised:
        run_phase1(SLACK_STACK, extra_config=with_secrets())
    assert str(raised.value) == (
        "phasekit:secrets.OPS_SLACK_WEBHOOK: missing; vps.alertSlack names it as the webhook URL of a Slack channel, "
        "so set it with: pulumi config set --secret --path 'secrets.OPS_SLACK_WEBHOOK'")


@pytest.mark.parametrize(("url", "message"), [
    ("http://hooks.slack.com/services/T000/B000/XXXX",
     "phasekit:secrets.OPS_SLACK_WEBHOOK: the webhook URL uses http://; allowed: an https:// Slack incoming-webhook "
     "URL (e.g. https://hooks.slack.com/services/...)"),
    ("ftp://hooks.slack.com/x",
     "phasekit:secrets.OPS_SLACK_WEBHOOK: the webhook URL uses ftp://; allowed: an https:// Slack incoming-webhook "
     "URL (e.g. https://hooks.slack.com/services/...)"),
])
def test_a_slack_webhook_that_is_not_https_is_refused_without_showing_it(url, message):
    with pytest.raises(ConfigError) as raised:
        run_phase1(SLACK_STACK, extra_config=with_secrets(OPS_SLACK_WEBHOOK=url))
    assert str(raised.value) == message
    assert "XXXX" not in str(raised.value) and "hooks.slack.com/x" not in str(raised.value)


def test_a_slack_webhook_may_not_be_a_secret_that_something_else_reads():
    shared = {**PHASE1, "phasekit:vps": {**PHASE1["phasekit:vps"],
                                         "alertSlack": [{"channel": "#ops", "webhook": "SECRET_KEY_BASE"}]}}
    with pytest.raises(ConfigError) as raised:
        run_phase1(shared, extra_config=with_secrets())
    assert str(raised.value) == (
        "phasekit:secrets.SECRET_KEY_BASE: app.secretEnv lists it too, and a webhook URL is sent to DigitalOcean and "
        "shown in its control panel; allowed: a secrets entry of its own for the webhook URL")


def test_service_images_come_from_config_and_reach_the_compose_file():
    raw = {**PHASE1, "phasekit:services": {"caddy": "caddy:2.11.5", "postgres": "postgres:16.16-bookworm",
                                           "redis": "redis:7.4.12-bookworm"}}
    import yaml

    files = bundle(run_phase1(raw))
    services = yaml.safe_load(files["compose.yaml"])["services"]
    assert (services["proxy"]["image"], services["redis"]["image"]) == ("caddy:2.11.5", "redis:7.4.12-bookworm")
    assert services["db"]["image"] == "phasekit/postgres-pgbackrest:16.16-bookworm"
    assert "FROM postgres:16.16-bookworm" in files["postgres/Dockerfile"].splitlines()
    assert "FROM postgres:16.15-bookworm" in bundle(run_phase1())["postgres/Dockerfile"].splitlines()
