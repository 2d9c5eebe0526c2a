"""The droplet's first-boot document (``#cloud-config``), built as Python data and dumped as YAML.

It installs Docker Engine and the Compose plugin from Ubuntu's own archive (signed by Ubuntu, patched by
unattended-upgrades, no third-party apt key), mounts the data volume by its filesystem label, makes
Docker wait for that mount (so PostgreSQL can never initialise an empty cluster on the root disk), sets
log rotation, schedules a nightly ``pg_dump`` to the root disk (which the droplet's own backups cover,
unlike attached volumes), and writes the compose stack as of creation.

Secrets are never in this document: DigitalOcean serves ``user_data`` to anything on the droplet through
its metadata endpoint and shows it in its API. The rollout command delivers them over SSH and starts the
stack. The droplet ignores later changes to ``user_data`` (DigitalOcean would replace the droplet), so
what this document does must stay a one-time bootstrap; everything that changes with the app travels
with the rollout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import yaml

from components.compose_stack import DATA_LABEL, DATA_MOUNT, DB_NAME, DB_USER, STACK_DIR, BundleFile

BACKUP_DIR = "/var/backups/phasekit"
BACKUP_KEEP_DAYS = 7


def docker_daemon_config() -> dict:
    return {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "5"},
        "live-restore": True,
    }


def _unit(sections: Mapping[str, Mapping[str, str]]) -> str:
    blocks = []
    for section, entries in sections.items():
        blocks.append(f"[{section}]\n" + "".join(f"{key}={value}\n" for key, value in entries.items()))
    return "\n".join(blocks)


def cloud_config(stack_files: Mapping[str, BundleFile], *, data_volume: bool = True,
                 extra_packages: Sequence[str] = ()) -> dict:
    """``data_volume``: the host keeps PostgreSQL's data on the attached volume, so it mounts it, makes
    Docker wait for it and dumps the database nightly; a web-only host (phase 2's app tier) does none of it.
    ``extra_packages`` come from Ubuntu's archive too (e.g. ``pgbouncer`` on phase 2's database host)."""
    dump_command = (
        f"/bin/sh -c 'docker compose --file {STACK_DIR}/compose.yaml exec -T db "
        f"pg_dump --username {DB_USER} --format custom {DB_NAME} "
        f"> {BACKUP_DIR}/{DB_NAME}-$$(date +%%Y%%m%%d).dump "
        f"&& find {BACKUP_DIR} -name \"*.dump\" -mtime +{BACKUP_KEEP_DAYS} -delete'"
    )
    docker_config = {"path": "/etc/docker/daemon.json", "permissions": "0644",
                     "content": json.dumps(docker_daemon_config(), indent=2) + "\n"}
    data_files = [
        {"path": "/etc/systemd/system/docker.service.d/10-phasekit-data.conf", "permissions": "0644",
         "content": _unit({"Unit": {"RequiresMountsFor": DATA_MOUNT}})},
        # Redis forks for persistence; without overcommit a busy fork can fail (Redis' own advice).
        {"path": "/etc/sysctl.d/60-phasekit.conf", "permissions": "0644",
         "content": "vm.overcommit_memory = 1\n"},
        {"path": "/etc/systemd/system/phasekit-pg-dump.service", "permissions": "0644",
         "content": _unit({
             "Unit": {"Description": "phasekit nightly pg_dump", "Requires": "docker.service",
                      "After": "docker.service"},
             "Service": {"Type": "oneshot", "UMask": "0077", "ExecStart": dump_command},
         })},
        {"path": "/etc/systemd/system/phasekit-pg-dump.timer", "permissions": "0644",
         "content": _unit({
             "Unit": {"Description": "phasekit nightly pg_dump"},
             "Timer": {"OnCalendar": "*-*-* 03:30:00", "RandomizedDelaySec": "30m", "Persistent": "true"},
             "Install": {"WantedBy": "timers.target"},
         })},
    ]
    write_files = [docker_config, *(data_files if data_volume else [])]
    write_files += [
        {"path": f"{STACK_DIR}/{path}", "permissions": f"0{entry.mode:o}", "content": entry.content}
        for path, entry in sorted(stack_files.items())
    ]
    document: dict = {
        # Keys only: the rollout logs in as root with a key, and nothing should accept a password.
        "ssh_pwauth": False,
        "package_update": True,
        "packages": ["docker.io", "docker-compose-v2", "unattended-upgrades", *extra_packages],
    }
    if data_volume:
        document["mounts"] = [
            [f"LABEL={DATA_LABEL}", DATA_MOUNT, "ext4", "defaults,nofail,discard,noatime", "0", "2"],
        ]
    document["write_files"] = write_files
    document["runcmd"] = [
        ["install", "-d", "-m", "0700", *([BACKUP_DIR] if data_volume else []), f"{STACK_DIR}/secrets",
         f"{STACK_DIR}/tls"],
        *([["sysctl", "--system"]] if data_volume else []),
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "docker.service"],
        ["systemctl", "restart", "docker.service"],
        *([["systemctl", "enable", "--now", "phasekit-pg-dump.timer"]] if data_volume else []),
    ]
    return document


def render_cloud_init(stack_files: Mapping[str, BundleFile], *, data_volume: bool = True,
                      extra_packages: Sequence[str] = ()) -> str:
    document = cloud_config(stack_files, data_volume=data_volume, extra_packages=extra_packages)
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)
