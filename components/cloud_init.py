"""The droplet's first-boot document (``#cloud-config``), built as Python data and dumped as YAML.

It installs Docker Engine and the Compose plugin from Ubuntu's own archive (signed by Ubuntu, patched by
unattended-upgrades, no third-party apt key), mounts the data volume by its filesystem label, makes
Docker wait for that mount (so PostgreSQL can never initialise an empty cluster on the root disk), sets
log rotation, and writes the compose stack as of creation. It schedules no backup: the backup units change
with config, so the rollout installs and enables them (``compose_stack.backup_timer_steps``); the nightly
``pg_dump`` to the root disk that this document used to schedule is replaced by off-site backups.

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

from components.compose_stack import DATA_LABEL, DATA_MOUNT, STACK_DIR, BundleFile


def docker_daemon_config() -> dict:
    return {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "5"},
        "live-restore": True,
    }


def systemd_unit(sections: Mapping[str, Mapping[str, str]]) -> str:
    """A systemd unit file from ``{section: {key: value}}``, sections in order."""
    blocks = []
    for section, entries in sections.items():
        blocks.append(f"[{section}]\n" + "".join(f"{key}={value}\n" for key, value in entries.items()))
    return "\n".join(blocks)


def cloud_config(stack_files: Mapping[str, BundleFile], *, data_volume: bool = True,
                 extra_packages: Sequence[str] = ()) -> dict:
    """``data_volume``: the host keeps PostgreSQL's data on the attached volume, so it mounts it and makes
    Docker wait for it; a web-only host (phase 2's app tier) does neither.
    ``extra_packages`` come from Ubuntu's archive too (e.g. ``pgbouncer`` on phase 2's database host)."""
    docker_config = {"path": "/etc/docker/daemon.json", "permissions": "0644",
                     "content": json.dumps(docker_daemon_config(), indent=2) + "\n"}
    data_files = [
        {"path": "/etc/systemd/system/docker.service.d/10-phasekit-data.conf", "permissions": "0644",
         "content": systemd_unit({"Unit": {"RequiresMountsFor": DATA_MOUNT}})},
        # Redis forks for persistence; without overcommit a busy fork can fail (Redis' own advice).
        {"path": "/etc/sysctl.d/60-phasekit.conf", "permissions": "0644",
         "content": "vm.overcommit_memory = 1\n"},
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
        # docker-buildx: a host that runs PostgreSQL builds its image (the official one plus pgBackRest).
        "packages": ["docker.io", "docker-compose-v2", *(["docker-buildx"] if data_volume else []),
                     "unattended-upgrades", *extra_packages],
    }
    if data_volume:
        document["mounts"] = [
            [f"LABEL={DATA_LABEL}", DATA_MOUNT, "ext4", "defaults,nofail,discard,noatime", "0", "2"],
        ]
    document["write_files"] = write_files
    document["runcmd"] = [
        ["install", "-d", "-m", "0700", f"{STACK_DIR}/secrets", f"{STACK_DIR}/tls"],
        *([["sysctl", "--system"]] if data_volume else []),
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "docker.service"],
        ["systemctl", "restart", "docker.service"],
    ]
    return document


def render_cloud_init(stack_files: Mapping[str, BundleFile], *, data_volume: bool = True,
                      extra_packages: Sequence[str] = ()) -> str:
    document = cloud_config(stack_files, data_volume=data_volume, extra_packages=extra_packages)
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)
