"""The pieces every phasekit droplet shares, whichever component owns it.

One Ubuntu image, one way to create a droplet that survives config drift, one egress policy, one set of
monitoring alerts and one SSH rollout, so a fix to any of them lands in every phase that runs droplets.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import pulumi
import pulumi_command as command
import pulumi_digitalocean as digitalocean
import pulumi_random as random
import pulumi_tls as tls

from components.backups import BACKUP_STATUS_PATH, BackupSpec
from components.cloud_init import DOCKER_DAEMON_JSON, SshHostKey, docker_daemon_json
from components.compose_stack import (
    DATA_LABEL,
    DATA_MOUNT,
    STACK_DIR,
    VOLUME_ALERT_PERCENT,
    VOLUME_STATUS_PATH,
    HostStack,
    StackSecrets,
    pack_bundle,
    render_bundle,
)
from components.host_processes import PAUSED_MARKER, SCHEDULE_STATUS_PATH
from components.stateful import stateful_options

UBUNTU_IMAGE = "ubuntu-24-04-x64"
ALERT_WINDOW = "5m"
ALERT_THRESHOLDS: dict[str, tuple[str, float]] = {
    "cpu": ("v1/insights/droplet/cpu", 70),
    "memory": ("v1/insights/droplet/memory_utilization_percent", 80),
    "disk": ("v1/insights/droplet/disk_utilization_percent", 80),
}
"""Alert name -> (DigitalOcean metric, percent). Also phasekit's triggers for moving to the next phase.
DigitalOcean's disk metric is the root disk's; attached volumes are watched on the host (see data_host)."""

EVERYWHERE = ["0.0.0.0/0", "::/0"]
EGRESS: list[tuple[str, str]] = [("tcp", "53"), ("udp", "53"), ("udp", "123"), ("tcp", "80"), ("tcp", "443")]
"""Outbound (protocol, port): DNS, NTP, and HTTP(S) for packages, images and the app's API calls."""

DOCKER_PACKAGES = ("docker.io", "docker-compose-v2")
"""Docker Engine and the Compose plugin from Ubuntu's archive: what every host needs (``cloud_init``)."""

BUILD_PACKAGES = ("docker-buildx",)
"""What a host that builds the PostgreSQL image (the official one plus pgBackRest) needs besides."""

APT_LOCK_TIMEOUT = 300
"""Seconds apt waits for the dpkg lock (unattended-upgrades may hold it) before failing."""


def rollout_script(*, data_volume: bool) -> str:
    """The script every rollout runs as root over SSH; the bundle (a tar, base64) arrives on stdin, so secrets
    never appear in argv, in ``user_data`` or in Pulumi's logs. On the droplet they are written to
    ``/opt/phasekit/secrets`` and ``/opt/phasekit/tls`` (root only), and the app's environment is, as with any
    container, visible to root through ``docker inspect``.

    Before the bundle it makes sure the first boot's work is there, because cloud-init runs once and a droplet
    ignores later ``user_data``: a failed ``apt-get install docker.io`` at first boot would otherwise fail every
    later ``up`` at ``docker: not found``. It waits for cloud-init; when cloud-init reports a failure it prints
    ``cloud-init status --long`` to stderr (``logging: stdoutAndStderr`` shows it in ``pulumi up``), then
    installs what is missing, enables and starts Docker, writes ``daemon.json`` (reloading Docker when it
    changed: ``registry-mirrors``, ``live-restore`` and the log defaults for new containers are reloadable on
    SIGHUP, moby ``daemon/reload.go``; docs.docker.com/engine/daemon/live-restore/ uses ``systemctl reload
    docker``) and, on a host with a data volume, mounts it by label. Each step is a no-op when its work is
    done, so a healthy droplet pays a few ``dpkg -s`` calls. Anything it cannot repair fails the rollout with
    a message saying what."""
    packages = [*DOCKER_PACKAGES, *(BUILD_PACKAGES if data_volume else ())]
    apt = f"apt-get -o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT} -q"
    lines = [
        "set -eu",
        "fail() { echo \"phasekit: $*\" >&2; exit 1; }",
        "if ! cloud-init status --wait >/dev/null 2>&1; then",
        "  echo 'phasekit: cloud-init did not finish cleanly on this droplet; its report follows, then phasekit "
        "repairs what the first boot should have set up' >&2",
        "  cloud-init status --long >&2 || true",
        "fi",
        "set --",
        f"for package in {' '.join(packages)}; do",
        "  dpkg -s \"$package\" >/dev/null 2>&1 || set -- \"$@\" \"$package\"",
        "done",
        "if [ \"$#\" -gt 0 ]; then",
        "  echo \"phasekit: installing $* (missing after the first boot)\" >&2",
        f"  {apt} update || fail 'apt-get update failed; see its output above'",
        f"  DEBIAN_FRONTEND=noninteractive {apt} install -y \"$@\" || fail \"could not install $*; see apt's output "
        "above\"",
        "fi",
        "install -d -m 0755 /etc/docker",
        f"wanted={shell_quote(docker_daemon_json())}",
        f"if [ \"$(cat {DOCKER_DAEMON_JSON} 2>/dev/null || true)\" != \"$wanted\" ]; then",
        f"  printf '%s\\n' \"$wanted\" > {DOCKER_DAEMON_JSON}",
        "  ! systemctl is-active --quiet docker.service || systemctl reload docker.service "
        "|| fail 'docker did not reload its daemon.json'",
        "fi",
    ]
    if data_volume:
        lines += [
            f"if ! mountpoint -q {DATA_MOUNT}; then",
            f"  install -d -m 0755 {DATA_MOUNT}",
            # cloud-init's mounts module joins an fstab entry's fields with tabs (cc_mounts.py).
            f"  grep -Eq '^LABEL={DATA_LABEL}[[:space:]]' /etc/fstab || echo 'LABEL={DATA_LABEL} {DATA_MOUNT} ext4 "
            "defaults,nofail,discard,noatime 0 2' >> /etc/fstab",
            f"  mount {DATA_MOUNT} || fail 'the data volume (label {DATA_LABEL}) is not attached or not formatted; "
            "PostgreSQL must not start on the root disk'",
            "fi",
        ]
    lines += [
        "systemctl enable --now docker.service || fail 'docker.service does not start; see: journalctl -u docker'",
        "if ! command -v docker >/dev/null || ! docker compose version >/dev/null; then",
        "  fail 'docker or its compose plugin is still missing'",
        "fi",
        f"install -d -m 0755 {STACK_DIR}",
        # A host that runs schedules pauses them before the new bundle lands (host_processes.PAUSED_MARKER).
        f"[ ! -e {STACK_DIR}/schedule.sh ] || touch {STACK_DIR}/{PAUSED_MARKER}",
        f"base64 --decode | tar --extract --touch --directory {STACK_DIR}",
        f"{STACK_DIR}/deploy.sh",
    ]
    return "\n".join(lines)


def shell_quote(text: str) -> str:
    """``text`` as one single-quoted sh word."""
    return "'" + text.replace("'", "'\\''") + "'"


DROPLET_DELETE_TIMEOUT = "10m"
"""How long deleting a droplet may take. The provider's delete first asks for a graceful shutdown and waits for
the droplet to be off under the delete timeout, whose default is 60 s (terraform-provider-digitalocean
``digitalocean/droplet/resource_droplet.go``: ``Timeouts.Delete: schema.DefaultTimeout(60 * time.Second)``,
l. 59-63; ``resourceDigitalOceanDropletDelete`` waits with ``schema.TimeoutDelete``, l. 845-878). Docker stops
its containers on shutdown and PostgreSQL's clean shutdown alone can pass a minute, after which the replacement
would fail half-way."""


def droplet(name: str, *, parent: pulumi.Resource, region: str, size: str, vpc_id: pulumi.Input[str],
            ssh_key_fingerprints: Sequence[str], backups: bool, backup_plan: str, user_data: pulumi.Input[str],
            tags: Sequence[pulumi.Input[str]], volume_ids: Sequence[pulumi.Input[str]] | None = None,
            delete_before_replace: bool = True,
            opts: pulumi.ResourceOptions | None = None) -> digitalocean.Droplet:
    """An Ubuntu droplet with monitoring, IPv6 and (optionally) backups that ``pulumi up`` never replaces
    for a changed ``user_data`` or SSH key list: what changes with the app travels with the rollout."""
    return digitalocean.Droplet(
        name,
        image=UBUNTU_IMAGE,
        region=region,
        size=size,
        vpc_uuid=vpc_id,
        ssh_keys=list(ssh_key_fingerprints),
        backups=backups,
        backup_policy=(digitalocean.DropletBackupPolicyArgs(plan=backup_plan, weekday="SUN", hour=4)
                       if backups else None),
        monitoring=True,
        ipv6=True,
        graceful_shutdown=True,
        resize_disk=False,
        volume_ids=list(volume_ids) if volume_ids is not None else None,
        user_data=user_data,
        tags=list(tags),
        opts=droplet_options(parent, delete_before_replace=delete_before_replace, opts=opts),
    )


def droplet_options(parent: pulumi.Resource, *, delete_before_replace: bool,
                    opts: pulumi.ResourceOptions | None = None) -> pulumi.ResourceOptions:
    """The options of every droplet (a pure function, because the mocks do not record custom timeouts)."""
    return pulumi.ResourceOptions.merge(pulumi.ResourceOptions(
        parent=parent,
        # DigitalOcean replaces a droplet when either changes; the rollout carries app changes.
        ignore_changes=["user_data", "ssh_keys"],
        # A volume attaches to one droplet at a time, so a droplet holding one must go first.
        delete_before_replace=delete_before_replace,
        custom_timeouts=pulumi.CustomTimeouts(delete=DROPLET_DELETE_TIMEOUT),
    ), opts)


def data_volume(name: str, *, parent: pulumi.Resource, region: str, size_gib: int,
                tags: Sequence[str], protect: bool) -> digitalocean.Volume:
    """The block volume holding PostgreSQL's data and Redis' persistence: ext4 labelled ``DATA_LABEL`` (the
    host mounts it by label), protected and retained on delete when ``protect``."""
    return digitalocean.Volume(
        name,
        region=region,
        size=size_gib,
        initial_filesystem_type="ext4",
        initial_filesystem_label=DATA_LABEL,
        description="PostgreSQL data and Redis persistence",
        tags=list(tags),
        opts=stateful_options(parent, protect),
    )


def egress_rules(*extra: digitalocean.FirewallOutboundRuleArgs) -> list[digitalocean.FirewallOutboundRuleArgs]:
    """``EGRESS`` and ICMP to anywhere, then ``extra`` (e.g. the app tier's way to its database)."""
    return [
        *[digitalocean.FirewallOutboundRuleArgs(protocol=protocol, port_range=port, destination_addresses=EVERYWHERE)
          for protocol, port in EGRESS],
        digitalocean.FirewallOutboundRuleArgs(protocol="icmp", destination_addresses=EVERYWHERE),
        *extra,
    ]


def ssh_rule(admin_cidrs: Sequence[str]) -> digitalocean.FirewallInboundRuleArgs:
    return digitalocean.FirewallInboundRuleArgs(protocol="tcp", port_range="22", source_addresses=list(admin_cidrs))


@dataclass(frozen=True)
class SlackChannel:
    """A Slack channel DigitalOcean posts alerts to, through an incoming webhook."""

    channel: str
    """The channel's name as Slack shows it, e.g. ``#ops`` (DigitalOcean requires it non-empty)."""

    url: pulumi.Input[str]
    """The incoming webhook's ``https://`` URL; a secret (whoever has it can post to the channel)."""


@dataclass(frozen=True)
class AlertRecipients:
    """Who hears about trouble: every monitoring alert and uptime alert of a component goes to all of them.

    DigitalOcean sends alert e-mails only to addresses it knows: the account's verified e-mail address and, on a
    team, the team members' addresses (docs.digitalocean.com/products/monitoring/how-to/set-up-alerts/: "the
    verified email address of the account", "select any of your teammates as email recipients"). A shared mailbox
    such as ``ops@`` that is not a member's address may be refused when the alert is created; reach a shared
    place through a Slack channel instead."""

    emails: Sequence[str]
    slack: Sequence[SlackChannel] = ()

    def monitor_alerts_args(self) -> digitalocean.MonitorAlertAlertsArgs:
        return digitalocean.MonitorAlertAlertsArgs(
            emails=list(self.emails),
            slacks=[digitalocean.MonitorAlertAlertsSlackArgs(channel=slack.channel, url=slack.url)
                    for slack in self.slack] or None)

    def uptime_notifications(self) -> list[digitalocean.UptimeAlertNotificationArgs]:
        return [digitalocean.UptimeAlertNotificationArgs(
            emails=list(self.emails),
            slacks=[digitalocean.UptimeAlertNotificationSlackArgs(channel=slack.channel, url=slack.url)
                    for slack in self.slack] or None)]


def monitor_alerts(name: str, *, parent: pulumi.Resource, droplet_ids: Sequence[pulumi.Input[str]],
                   recipients: AlertRecipients, label: str) -> list[digitalocean.MonitorAlert]:
    """One alert per ``ALERT_THRESHOLDS`` metric; DigitalOcean evaluates it for each droplet listed.

    No ``tags``: on an alert policy (as on a firewall) tags select droplets to watch, so phasekit's shared
    tags would pull every other stack's droplets in."""
    return [
        digitalocean.MonitorAlert(
            f"{name}-{alert}-alert",
            type=metric,
            compare="GreaterThan",
            value=percent,
            window=ALERT_WINDOW,
            entities=list(droplet_ids),
            alerts=recipients.monitor_alerts_args(),
            description=f"{label}: {alert} above {percent:g}% for {ALERT_WINDOW}",
            enabled=True,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for alert, (metric, percent) in ALERT_THRESHOLDS.items()
    ]


@dataclass
class OffsiteBackupArgs:
    """Off-site backups of a droplet's PostgreSQL (pgBackRest, continuous WAL archiving) and Redis to a bucket."""

    spec: BackupSpec
    """The bucket, endpoint, schedules, retention and recovery point (``infra.backups.backup_spec``)."""

    access_key_id: pulumi.Input[str]
    """S3 access key id of the bucket (``BackupStore.access_key_id``)."""

    secret_access_key: pulumi.Input[str]
    """S3 secret access key (``BackupStore.secret_access_key``); a secret."""

    passphrase: pulumi.Input[str]
    """The key backups are encrypted with (``secrets.BACKUP_PASSPHRASE``); a secret. Delivered only with the
    SSH rollout, never in ``user_data``."""


STATUS_ALERT_PERIOD = "10m"
"""How long a status URL must fail before its alert goes out: two runs of the five-minute status timers."""

SITE_ALERT_PERIOD = "5m"
"""How long the public URL must be down before its alert goes out: long enough to ride out a rolling deploy's
restart of the one app container in phase 1 (``deploy.sh`` waits up to a few minutes for health)."""

UPTIME_REGIONS = ["us_east", "eu_west"]
"""Where DigitalOcean checks from (two regions, so one region's trouble is not an alert)."""


@dataclass(frozen=True)
class UptimeWatch:
    """One DigitalOcean uptime check on a URL of the site, with a ``down`` alert."""

    key: str
    """Child names: ``<component>-<key>-check`` and ``<component>-<key>-alert``."""

    path: str
    """Path under ``https://<hostname>`` the check requests."""

    title: str
    """The check's name after the label: ``<label> <title>``."""

    alert: str
    """The alert's name after the label: ``<label>: <alert>``."""

    period: str
    """How long the URL must fail before the alert goes out (an uptime alert ``period``)."""


def backup_watch() -> UptimeWatch:
    """The off-site backups' status URL. The status file exists only while the newest backup is fresh and WAL
    archiving keeps the recovery point (``backup.sh status``, every 5 minutes); otherwise Caddy drops the
    connection on that path (``proxy_config.backup_status_error_route``), which reaches the check as Cloudflare's
    5xx when proxied, or as a failed connection."""
    return UptimeWatch("backup", BACKUP_STATUS_PATH, "backups", "backups late or WAL archiving failing",
                       STATUS_ALERT_PERIOD)


def volume_watch() -> UptimeWatch:
    """The data volume's fill status: Caddy answers ``VOLUME_STATUS_PATH`` only while the volume is under
    ``VOLUME_ALERT_PERCENT`` full (``compose_stack``, ``data_host``). DigitalOcean's disk alert sees only the root
    disk, so this is how a filling volume reaches the recipients rather than only the droplet's journal."""
    return UptimeWatch("volume", VOLUME_STATUS_PATH, "data volume",
                       f"data volume {VOLUME_ALERT_PERCENT}% full or more", STATUS_ALERT_PERIOD)


def schedule_watch() -> UptimeWatch:
    """The schedules' status: Caddy answers ``SCHEDULE_STATUS_PATH`` only while no schedule's last run failed and
    the timers are not paused by a rollout that did not finish (``components.host_processes``)."""
    return UptimeWatch("schedules", SCHEDULE_STATUS_PATH, "schedules", "a scheduled job failed or schedules paused",
                       STATUS_ALERT_PERIOD)


def site_watch(health_path: str) -> UptimeWatch:
    """The public site: the app's health path through Cloudflare and the proxy, as a visitor reaches it. The
    name ``site`` keeps the children's names stable when the health path changes."""
    return UptimeWatch("site", health_path, "site", "site down", SITE_ALERT_PERIOD)


def uptime_alerts(name: str, *, parent: pulumi.Resource, hostname: str, watches: Sequence[UptimeWatch],
                  recipients: AlertRecipients,
                  label: str) -> list[tuple[digitalocean.UptimeCheck, digitalocean.UptimeAlert]]:
    """For each watch, an uptime check on ``https://<hostname><path>`` and a ``down`` alert to ``recipients``.

    A dead droplet fails every check, which the CPU/memory alerts would not report. Unverified here: how
    DigitalOcean classifies each failure; a real ``down`` alert is the only proof."""
    pairs = []
    for watch in watches:
        check = digitalocean.UptimeCheck(
            f"{name}-{watch.key}-check",
            name=f"{label} {watch.title}",
            target=f"https://{hostname}{watch.path}",
            type="https",
            regions=list(UPTIME_REGIONS),
            enabled=True,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        alert = digitalocean.UptimeAlert(
            f"{name}-{watch.key}-alert",
            check_id=check.id,
            name=f"{label}: {watch.alert}",
            type="down",
            period=watch.period,
            notifications=recipients.uptime_notifications(),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        pairs.append((check, alert))
    return pairs


def backup_bundle_inputs(backups: OffsiteBackupArgs | None) -> dict[str, pulumi.Input[str]]:
    """``host_bundle``'s data-store keywords for the backup credentials (none without off-site backups)."""
    if backups is None:
        return {}
    return {"backup_access_key_id": backups.access_key_id, "backup_secret_access_key": backups.secret_access_key,
            "backup_passphrase": backups.passphrase}


def generated_password(name: str, parent: pulumi.Resource) -> random.RandomPassword:
    # Alphanumeric only: the value lands in URLs and config files where symbols would need escaping.
    return random.RandomPassword(name, length=32, special=False, opts=pulumi.ResourceOptions(parent=parent))


HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key"
HOST_KEY_SUFFIX = "-host-key"
"""A droplet's host key is the ``tls.PrivateKey`` named ``<droplet>-host-key``."""

HOST_KEY_INSTALL_SUFFIX = f"{HOST_KEY_SUFFIX}-install"
"""The one-time step installing it (``install_host_key``) is the ``command:remote:Command`` named
``<droplet>-host-key-install``; the rollouts are the ones named ``...-rollout`` (``ROLLOUT_SUFFIX``)."""

HOST_KEY_READ_SUFFIX = "-read"
"""The install step's first half, ``<droplet>-host-key-install-read``, reads the key the droplet presents."""

ROLLOUT_SUFFIX = "-rollout"
"""Every host's bundle rollout (``rollout``) is the ``command:remote:Command`` named ``<component>[-<role>]-rollout``:
how ``phasekit render`` tells rollouts from the other remote commands."""


def host_key(name: str, parent: pulumi.Resource) -> tls.PrivateKey:
    """The ED25519 SSH host key of the droplet ``name``, generated into Pulumi's state (a secret).

    The droplet gets it at first boot (``cloud_init``'s ``ssh_keys``) and every rollout pins its public half
    (pulumi-command's ``connection.hostKey``, an authorized_keys line, checked with ``ssh.FixedHostKey`` since
    1.1.0: ``provider/pkg/provider/remote/connection.go``), so the database password, every secret env value and
    the origin key are never sent to whoever answers on the droplet's address."""
    return tls.PrivateKey(f"{name}{HOST_KEY_SUFFIX}", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=parent))


def openssh_pair(key: tls.PrivateKey) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """``key``'s private and public halves in OpenSSH formats (pulumi-tls sets both for an ED25519 key)."""
    return key.private_key_openssh, key.public_key_openssh


def user_data_with_host_key(key: tls.PrivateKey, render: Callable[[SshHostKey], str]) -> pulumi.Output[str]:
    """``render``'s cloud-init document with ``key`` in it, as a secret (the host private key is in it)."""
    return pulumi.Output.secret(pulumi.Output.all(*openssh_pair(key)).apply(
        lambda pair: render(SshHostKey(private_openssh=pair[0], public_openssh=pair[1]))))


def host_key_script(public_openssh: str) -> str:
    """Installs the pinned host key (private half on stdin) unless the droplet presents it already.

    A droplet created before phasekit pinned host keys ignores the new ``user_data`` and presents the key
    it generated at its own first boot, which a pinned rollout would refuse. This step connects the way every
    rollout used to, trusting the first answer, once per droplet; on a droplet created with the key it finds
    the key in place and changes nothing. It checks that what it received is the pinned key before it swaps
    the files, then reloads sshd (``systemctl try-reload-or-restart``: SIGHUP makes sshd re-read its keys;
    the running session is kept)."""
    pinned = shell_quote(" ".join(public_openssh.split()[:2]))
    key = HOST_KEY_PATH
    return "\n".join([
        "set -eu",
        f"pinned={pinned}",
        f"if [ \"$(cut -d' ' -f1,2 {key}.pub 2>/dev/null || true)\" = \"$pinned\" ]; then",
        "  cat >/dev/null",
        "  exit 0",
        "fi",
        "umask 077",
        f"cat > {key}.phasekit",
        f"ssh-keygen -y -f {key}.phasekit > {key}.pub.phasekit",
        f"if [ \"$(cut -d' ' -f1,2 {key}.pub.phasekit)\" != \"$pinned\" ]; then",
        f"  rm -f {key}.phasekit {key}.pub.phasekit",
        "  echo 'phasekit: the host key received is not the pinned one' >&2",
        "  exit 1",
        "fi",
        f"chmod 0644 {key}.pub.phasekit",
        f"mv {key}.phasekit {key}",
        f"mv {key}.pub.phasekit {key}.pub",
        "systemctl try-reload-or-restart ssh.service",
        "echo 'phasekit: this droplet now presents the SSH host key the rollouts pin' >&2",
    ])


def install_host_key(name: str, *, parent: pulumi.Resource, host: pulumi.Input[str], key: tls.PrivateKey,
                     ssh_private_key: pulumi.Input[str] | None,
                     depends_on: Sequence[pulumi.Resource]) -> command.remote.Command:
    """Two steps, so that no secret goes to a host nobody verified:

    1. ``<name>-read`` (``HOST_KEY_READ_SUFFIX``) connects without pinning, the only connection that trusts the first
       answer, sends nothing and prints the host key the droplet presents;
    2. ``<name>`` runs ``host_key_script`` pinned to that key, so it talks to the host step 1 saw. The private key
       travels on its stdin (a secret, never in argv) only when the droplet presents another key than the generated
       one: a droplet created with the key (every droplet from this version on) is sent nothing.

    Both re-run when the droplet's address changes (a replacement). Step 2's pin is step 1's reading: after a key
    is installed, only a new reading (a new address) changes step 2's inputs."""
    private_openssh, public_openssh = openssh_pair(key)
    connection = {"host": host, "user": "root", "private_key": ssh_private_key, "dial_error_limit": 30}
    read = command.remote.Command(
        f"{name}{HOST_KEY_READ_SUFFIX}",
        connection=command.remote.ConnectionArgs(**connection),
        create=f"cat {HOST_KEY_PATH}.pub",
        update=f"cat {HOST_KEY_PATH}.pub",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
    presented = read.stdout.apply(lambda line: (line or "").strip())
    script = public_openssh.apply(host_key_script)
    return command.remote.Command(
        name,
        connection=command.remote.ConnectionArgs(**connection, host_key=presented),
        create=script,
        update=script,
        stdin=pulumi.Output.secret(pulumi.Output.all(presented, public_openssh, private_openssh).apply(
            lambda keys: "" if _same_key(keys[0], keys[1]) else keys[2])),
        logging="stderr",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[read]),
    )


def _same_key(presented: str, pinned: str | None) -> bool:
    """Whether two OpenSSH public key lines name the same key (type and key; comments differ)."""
    return pinned is not None and presented.split()[:2] == pinned.split()[:2]


def rollout(name: str, *, parent: pulumi.Resource, host: pulumi.Input[str], bundle: pulumi.Input[str],
            ssh_private_key: pulumi.Input[str] | None, data_volume: bool, host_key: pulumi.Input[str],
            depends_on: Sequence[pulumi.Resource]) -> command.remote.Command:
    """Delivers a base64 tar bundle over SSH (stdin) and runs its ``deploy.sh`` (``rollout_script``); re-runs when
    the bundle changes. ``host_key``: the droplet's public host key (``host_key``), which the connection pins."""
    script = rollout_script(data_volume=data_volume)
    return command.remote.Command(
        name,
        connection=command.remote.ConnectionArgs(host=host, user="root", private_key=ssh_private_key,
                                                 dial_error_limit=30, host_key=host_key),
        create=script,
        update=script,
        stdin=bundle,
        # The release command's output is how a failed migration gets diagnosed; deploy.sh prints no secret.
        logging="stdoutAndStderr",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def pinned_rollout(droplet_name: str, rollout_name: str, *, parent: pulumi.Resource, host: pulumi.Input[str],
                   key: tls.PrivateKey, bundle: pulumi.Input[str], ssh_private_key: pulumi.Input[str] | None,
                   data_volume: bool, firewall: pulumi.Resource,
                   depends_on: Sequence[pulumi.Resource]) -> command.remote.Command:
    """The droplet's ``install_host_key`` step (once the firewall admits SSH), then its ``rollout``, pinned to
    ``key``, after the firewall, that step and ``depends_on``."""
    step = install_host_key(f"{droplet_name}{HOST_KEY_INSTALL_SUFFIX}", parent=parent, host=host, key=key,
                            ssh_private_key=ssh_private_key, depends_on=[firewall])
    return rollout(rollout_name, parent=parent, host=host, bundle=bundle, ssh_private_key=ssh_private_key,
                   data_volume=data_volume, host_key=openssh_pair(key)[1],
                   depends_on=[firewall, *depends_on, step])


def host_bundle(stack: HostStack, *, media_bucket_name: pulumi.Input[str],
                secret_env: Mapping[str, pulumi.Input[str]],
                origin_certificate_pem: pulumi.Input[str] | None,
                origin_private_key_pem: pulumi.Input[str] | None,
                registry_password: pulumi.Input[str] | None,
                trusted_proxies: pulumi.Input[Sequence[str]] | None = None,
                **data_stores: pulumi.Input[str]) -> pulumi.Output[str]:
    """Every file a host running the app needs, secrets included, as a base64 tar in a secret Output (what
    ``rollout`` sends). ``data_stores`` are ``StackSecrets``' data-store fields: the passwords on a host
    that runs PostgreSQL and Redis, the URLs on one that reaches them elsewhere. ``trusted_proxies`` (Cloudflare's
    ranges when the record is proxied, known only once read from Cloudflare) become ``HostStack.trusted_proxies``:
    the first-boot copy in ``user_data`` goes without them, the rollout's copy replaces it before the stack starts."""
    names, store_fields = list(secret_env), list(data_stores)

    def encode(values: list) -> str:
        bucket, cert, key, registry, proxies, *rest = values
        host = replace(stack, trusted_proxies=tuple(proxies)) if proxies else stack
        secrets = StackSecrets(
            media_bucket=bucket, origin_certificate_pem=cert, origin_private_key_pem=key, registry_password=registry,
            secret_env=dict(zip(names, rest[len(store_fields):], strict=True)),
            **dict(zip(store_fields, rest[:len(store_fields)], strict=True)),
        )
        return base64.b64encode(pack_bundle(render_bundle(host, secrets))).decode()

    return pulumi.Output.secret(pulumi.Output.all(
        media_bucket_name, origin_certificate_pem, origin_private_key_pem, registry_password, trusted_proxies,
        *data_stores.values(), *[secret_env[name] for name in names],
    ).apply(encode))


def check_access(owner: str, *, ssh_admin_cidrs: Sequence[str], ssh_key_fingerprints: Sequence[str],
                 alert_emails: Sequence[str], alert_slack: Sequence[SlackChannel] = ()) -> None:
    """Constructor checks every droplet component makes on who may log in and who hears about trouble."""
    if not ssh_admin_cidrs:
        raise ValueError(f"{owner}.ssh_admin_cidrs: at least one admin network is required")
    open_cidrs = [cidr for cidr in ssh_admin_cidrs if cidr.endswith("/0")]
    if open_cidrs:
        raise ValueError(f"{owner}.ssh_admin_cidrs: {open_cidrs[0]} would open SSH to the internet")
    if not ssh_key_fingerprints:
        raise ValueError(f"{owner}.ssh_key_fingerprints: at least one SSH key is required")
    if not alert_emails:
        raise ValueError(f"{owner}.alert_emails: at least one recipient is required")
    for index, slack in enumerate(alert_slack):
        problem = slack_channel_problem(slack.channel, slack.url)
        if problem is not None:
            raise ValueError(f"{owner}.alert_slack[{index}]: {problem}")


SLACK_WEBHOOK_SCHEME = "https://"


def slack_channel_problem(channel: str, url: object) -> str | None:
    """What is wrong with a Slack channel and its webhook URL, never quoting the URL (a secret); None when fine.
    A URL that is not yet known (an Output) is checked where it is read (``infra.stack_secrets``)."""
    if not channel.strip():
        return "channel is empty; allowed: the channel's name, e.g. '#ops'"
    if isinstance(url, str):
        return webhook_url_problem(url)
    return None


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Slack webhook DigitalOcean posts to (never quoting it), or None.

    Refused: an empty value and any scheme but ``https://`` (a webhook over plain HTTP would carry alerts, and
    the URL that authorises posting, in clear). A value without a scheme passes: it cannot be told from the
    offline plan's and ``phasekit render``'s stand-in values, and DigitalOcean refuses it when the alert is
    created."""
    if not url.strip():
        return "the webhook URL is empty; allowed: an https:// Slack incoming-webhook URL"
    if "://" in url and not url.startswith(SLACK_WEBHOOK_SCHEME):
        scheme = url.split("://", 1)[0]
        return (f"the webhook URL uses {scheme}://; allowed: an https:// Slack incoming-webhook URL "
                "(e.g. https://hooks.slack.com/services/...)")
    return None
