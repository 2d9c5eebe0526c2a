"""The rollout script (``droplet_parts.rollout_script``) run for real by ``sh``, with fake ``cloud-init``,
``dpkg``, ``apt-get``, ``systemctl``, ``docker``, ``mountpoint`` and ``mount`` first on PATH, and the host paths
(``/etc/docker``, ``/etc/fstab``, ``/opt/phasekit``, the data mount) moved under a temporary directory; nothing
else of the script is changed. Each fake logs its arguments, so the tests see what the script asked for.

What this cannot prove: how Ubuntu's real apt, systemd and Docker react (a real droplet does), nor cloud-init's
exit codes on every release (``status --wait`` exits non-zero on an error since 23.4; 2 for a recoverable one).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from components.cloud_init import docker_daemon_json
from components.compose_stack import DATA_MOUNT, STACK_DIR
from components.droplet_parts import host_key_script, rollout_script
from components.host_processes import PAUSED_MARKER
from tests.realtools import shellcheck

LONG_REPORT = "status: error\nerrors:\n\t('package_update_upgrade_install', 'apt-get install docker.io failed')"

FAKES = {
    # status --wait fails when $FAKE_CLOUD_INIT_FAILED is set; status --long prints the report.
    "cloud-init": f"""
echo "cloud-init $*" >> "$LOG"
if [ "$2" = "--long" ]; then printf '%s\\n' "{LONG_REPORT}"; exit 1; fi
[ -z "${{FAKE_CLOUD_INIT_FAILED:-}}" ]
""",
    # A package is installed when $STATE/pkg-<name> exists.
    "dpkg": """
echo "dpkg $*" >> "$LOG"
[ -e "$STATE/pkg-$2" ]
""",
    "apt-get": """
echo "apt-get $*" >> "$LOG"
[ -z "${FAKE_APT_FAILS:-}" ] || exit 100
if [ "$4" = "install" ]; then shift 5; for package in "$@"; do touch "$STATE/pkg-$package"; done; fi
""",
    "systemctl": """
echo "systemctl $*" >> "$LOG"
if [ "$1" = "is-active" ]; then [ -e "$STATE/docker-active" ]; fi
""",
    "docker": """
echo "docker $*" >> "$LOG"
[ -e "$STATE/pkg-docker.io" ]
""",
    "mountpoint": """
echo "mountpoint $*" >> "$LOG"
[ -e "$STATE/mounted" ]
""",
    "mount": """
echo "mount $*" >> "$LOG"
[ -z "${FAKE_MOUNT_FAILS:-}" ] || exit 32
touch "$STATE/mounted"
""",
}

ALL_PACKAGES = ("docker.io", "docker-compose-v2", "docker-buildx")


def bundle() -> str:
    """A bundle whose deploy.sh only says it ran."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        script = b"#!/bin/sh\necho deployed >> \"$LOG\"\n"
        info = tarfile.TarInfo("deploy.sh")
        info.size, info.mode = len(script), 0o755
        archive.addfile(info, io.BytesIO(script))
    return base64.b64encode(data.getvalue()).decode()


class Host:
    def __init__(self, root: Path) -> None:
        self.root, self.state, self.log = root, root / "state", root / "log"
        (root / "bin").mkdir()
        self.state.mkdir()
        (root / "etc").mkdir()
        (root / "etc" / "fstab").write_text("LABEL=cloudimg-rootfs / ext4 defaults 0 1\n")
        for name, body in FAKES.items():
            path = root / "bin" / name
            path.write_text("#!/bin/sh\n" + body.lstrip())
            path.chmod(0o755)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def script(self, *, data_volume: bool) -> str:
        text = rollout_script(data_volume=data_volume)
        for absolute in ("/etc/docker", "/etc/fstab", STACK_DIR, DATA_MOUNT):
            text = text.replace(absolute, str(self.path(absolute)))
        return text

    def run(self, *, data_volume: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}", "LOG": str(self.log),
                       "STATE": str(self.state), **env}
        return subprocess.run(["sh", "-c", self.script(data_volume=data_volume)], input=bundle(), text=True,
                              capture_output=True, env=environment, timeout=60, check=False)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def healthy(self) -> None:
        for package in ALL_PACKAGES:
            (self.state / f"pkg-{package}").touch()
        (self.state / "mounted").touch()
        (self.state / "docker-active").touch()
        self.path("/etc/docker").mkdir(parents=True, exist_ok=True)
        self.path("/etc/docker/daemon.json").write_text(docker_daemon_json() + "\n")


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_a_failed_first_boot_is_reported_and_repaired(host):
    result = host.run(FAKE_CLOUD_INIT_FAILED="1")
    assert result.returncode == 0, result.stderr
    assert LONG_REPORT in result.stderr
    assert "phasekit: cloud-init did not finish cleanly on this droplet" in result.stderr
    assert "phasekit: installing docker.io docker-compose-v2 docker-buildx (missing after the first boot)" in (
        result.stderr)
    calls = host.calls()
    assert calls[:2] == ["cloud-init status --wait", "cloud-init status --long"]
    assert "apt-get -o DPkg::Lock::Timeout=300 -q update" in calls
    assert ("apt-get -o DPkg::Lock::Timeout=300 -q install -y docker.io docker-compose-v2 docker-buildx"
            in calls)
    assert json.loads(host.path("/etc/docker/daemon.json").read_text()) == json.loads(docker_daemon_json())
    assert host.path("/etc/docker/daemon.json").read_text() == docker_daemon_json() + "\n"
    assert host.path("/etc/fstab").read_text().splitlines()[-1] == (
        "LABEL=phasekit-data /mnt/phasekit-data ext4 defaults,nofail,discard,noatime 0 2".replace(
            DATA_MOUNT, str(host.path(DATA_MOUNT))))
    assert f"mount {host.path(DATA_MOUNT)}" in calls
    assert "systemctl enable --now docker.service" in calls
    assert calls[-1] == "deployed"


def test_a_healthy_host_is_left_alone(host):
    host.healthy()
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    calls = host.calls()
    assert "cloud-init status --long" not in calls
    assert not any(call.startswith(("apt-get", "mount ", "systemctl reload")) for call in calls)
    assert calls[-1] == "deployed"


def test_an_older_daemon_json_is_replaced_and_docker_reloaded_without_a_restart(host):
    host.healthy()
    host.path("/etc/docker/daemon.json").write_text('{\n  "live-restore": true\n}\n')
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert host.path("/etc/docker/daemon.json").read_text() == docker_daemon_json() + "\n"
    calls = host.calls()
    assert "systemctl reload docker.service" in calls
    assert not any(call.startswith("systemctl restart") for call in calls)


def test_a_web_host_needs_no_buildx_and_no_volume(host):
    result = host.run(data_volume=False)
    assert result.returncode == 0, result.stderr
    calls = host.calls()
    assert "apt-get -o DPkg::Lock::Timeout=300 -q install -y docker.io docker-compose-v2" in calls
    assert not any(call.startswith(("mountpoint", "mount ")) for call in calls)


def test_an_install_that_keeps_failing_fails_the_rollout_with_a_clear_message(host):
    result = host.run(FAKE_CLOUD_INIT_FAILED="1", FAKE_APT_FAILS="1")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "phasekit: apt-get update failed; see its output above"
    assert "deployed" not in host.calls()


def test_a_missing_volume_fails_the_rollout_before_anything_starts(host):
    host.healthy()
    (host.state / "mounted").unlink()
    result = host.run(FAKE_MOUNT_FAILS="1")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "phasekit: the data volume (label phasekit-data) is not attached or not formatted; PostgreSQL must not "
        "start on the root disk")
    assert "deployed" not in host.calls()


@pytest.mark.parametrize("data_volume", [True, False])
def test_the_rollout_script_passes_shellcheck(data_volume):
    shellcheck(rollout_script(data_volume=data_volume) + "\n")


# --- the one-time host-key step (droplet_parts.host_key_script), with the real ssh-keygen ---------------------


def keypair(directory: Path, name: str) -> tuple[str, str]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(directory / name)],
                   check=True, timeout=30)
    return (directory / name).read_text(), (directory / f"{name}.pub").read_text()


@pytest.fixture
def ssh_host(tmp_path: Path):
    etc_ssh = tmp_path / "etc" / "ssh"
    etc_ssh.mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text('#!/bin/sh\necho "systemctl $*" >> "$LOG"\n')
    (bin_dir / "systemctl").chmod(0o755)
    keys = tmp_path / "keys"
    keys.mkdir()
    return tmp_path, etc_ssh, keys


def run_host_key_step(root: Path, pinned_public: str, stdin: str) -> subprocess.CompletedProcess[str]:
    script = host_key_script(pinned_public).replace("/etc/ssh/", f"{root}/etc/ssh/")
    environment = {**os.environ, "PATH": f"{root / 'bin'}:{os.environ['PATH']}", "LOG": str(root / "log")}
    return subprocess.run(["sh", "-c", script], input=stdin, text=True, capture_output=True, env=environment,
                          timeout=60, check=False)


def test_a_droplet_created_with_the_key_is_left_alone(ssh_host):
    root, etc_ssh, keys = ssh_host
    private, public = keypair(keys, "pinned")
    (etc_ssh / "ssh_host_ed25519_key").write_text(private)
    (etc_ssh / "ssh_host_ed25519_key.pub").write_text(public)
    result = run_host_key_step(root, public, private)
    assert (result.returncode, result.stderr) == (0, "")
    assert not (root / "log").exists()


def test_an_older_droplet_gets_the_pinned_key_and_sshd_rereads_it(ssh_host):
    root, etc_ssh, keys = ssh_host
    old_private, old_public = keypair(keys, "generated-at-boot")
    (etc_ssh / "ssh_host_ed25519_key").write_text(old_private)
    (etc_ssh / "ssh_host_ed25519_key.pub").write_text(old_public)
    private, public = keypair(keys, "pinned")
    result = run_host_key_step(root, public, private)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "phasekit: this droplet now presents the SSH host key the rollouts pin\n"
    assert (etc_ssh / "ssh_host_ed25519_key").read_text() == private
    assert (etc_ssh / "ssh_host_ed25519_key.pub").read_text().split()[:2] == public.split()[:2]
    assert oct((etc_ssh / "ssh_host_ed25519_key").stat().st_mode & 0o777) == "0o600"
    assert (root / "log").read_text() == "systemctl try-reload-or-restart ssh.service\n"
    assert sorted(path.name for path in etc_ssh.iterdir()) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]


def test_a_key_that_is_not_the_pinned_one_is_refused_and_nothing_changes(ssh_host):
    root, etc_ssh, keys = ssh_host
    old_private, old_public = keypair(keys, "generated-at-boot")
    (etc_ssh / "ssh_host_ed25519_key").write_text(old_private)
    (etc_ssh / "ssh_host_ed25519_key.pub").write_text(old_public)
    _, public = keypair(keys, "pinned")
    other_private, _ = keypair(keys, "other")
    result = run_host_key_step(root, public, other_private)
    assert result.returncode == 1
    assert result.stderr == "phasekit: the host key received is not the pinned one\n"
    assert (etc_ssh / "ssh_host_ed25519_key").read_text() == old_private
    assert sorted(path.name for path in etc_ssh.iterdir()) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]


def test_the_host_key_step_passes_shellcheck():
    shellcheck(host_key_script("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA host\n") + "\n")


def test_a_host_that_runs_schedules_is_paused_before_the_new_bundle_lands(host):
    """host_processes.PAUSED_MARKER: written before the tar extraction (deploy.sh, stubbed here, removes it once the
    new version serves); a host without schedule.sh (no timers) gets none."""
    host.healthy()
    assert host.run().returncode == 0
    assert not host.path(f"{STACK_DIR}/{PAUSED_MARKER}").exists()
    host.path(f"{STACK_DIR}/schedule.sh").write_text("#!/bin/sh\n")
    assert host.run().returncode == 0
    assert host.path(f"{STACK_DIR}/{PAUSED_MARKER}").exists()
    lines = rollout_script(data_volume=True).splitlines()
    assert lines.index(f"[ ! -e {STACK_DIR}/schedule.sh ] || touch {STACK_DIR}/{PAUSED_MARKER}") == lines.index(
        f"base64 --decode | tar --extract --touch --directory {STACK_DIR}") - 1
