"""``phasekit render``: the committed stacks' host files, written as they land on each host, handed to the real
programs that consume them (caddy, docker-compose, cloud-init, PostgreSQL, shellcheck, openssl, kubernetes-validate
where installed).

What this cannot prove: that the rendered stack runs on a droplet (no Docker engine here; docs/rehearse.md is how to
try it), that cloud-init installs the rendered SSH host key (no cloud-init run here: ``ssh-keygen`` checks the key
and the schema check the document), or that the mocks' computed values (addresses, ids) look like the cloud's.
Phase 2's database host listens on a mock private address, so its PostgreSQL is started on 127.0.0.1 instead.
"""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

import phasekit.render as render_module
from components.compose_stack import STACK_DIR
from components.droplet_parts import HOST_KEY_SUFFIX, ROLLOUT_SUFFIX
from components.testing import CLOUDFLARE_IP_RANGES, Recording, _fake_outputs
from infra.config import load_config
from phasekit.cli import main
from phasekit.plan import SECRET_PLACEHOLDER
from phasekit.render import (
    DROPLET,
    ROLLOUT,
    HostFolder,
    LocalSecrets,
    ed25519_pkcs8_pem,
    record_stack,
    render_stack,
    ssh_host_key,
    write_hosts,
)
from phasekit.stack_file import read_stack_file
from tests.apphosts import parse_env_file
from tests.realtools import caddy_validate, cloud_init_schema, compose_config, running_postgres, shellcheck

ROOT = Path(__file__).resolve().parents[1]
CERT_DIR = "/etc/caddy/tls"
"""Where compose.yaml binds the host's ``tls/`` into the proxy container."""


def render(out: Path, stack: str, *extra: str) -> tuple[int, str, str]:
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(["render", "--stack", stack, "--out", str(out), "--project-dir", str(ROOT), *extra])
        except SystemExit as exit_info:
            status = exit_info.code
    return status, stdout.getvalue(), stderr.getvalue()


def tree(folder: Path) -> dict[str, int]:
    """Relative path -> permission bits, for every file and folder under ``folder``."""
    return {str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode) for path in sorted(folder.rglob("*"))}


def files_of(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): path.read_text() for path in sorted(folder.rglob("*")) if path.is_file()}


class Renders(dict):
    """Each committed stack rendered once through the CLI, when a test first asks: stack -> (folder, stdout)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, stack: str) -> tuple[Path, str]:
        out = self.tmp_path_factory.mktemp(stack) / "out"
        status, stdout, stderr = render(out, stack)
        assert (status, stderr) == (0, ""), stderr
        self[stack] = (out, stdout)
        return self[stack]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return Renders(tmp_path_factory)


@dataclasses.dataclass
class RecordedRender:
    recording: Recording
    folder: Path
    hosts: list[HostFolder]


class Recordings(dict):
    """Each stack's program run as render runs it, its hosts written from that same run, so a test can hold the
    files against the recording (the rollouts' inputs are not in any file): stack -> RecordedRender."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, stack: str) -> RecordedRender:
        _, recording = record_stack(stack, ROOT, LocalSecrets())
        folder = self.tmp_path_factory.mktemp(f"{stack}-recorded")
        self[stack] = RecordedRender(recording, folder, write_hosts(recording, folder))
        return self[stack]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return Recordings(tmp_path_factory)


def cloud_init_files(document: str) -> dict[str, tuple[str, str]]:
    """The files cloud-init writes under STACK_DIR: relative path -> (permissions, content)."""
    parsed = yaml.safe_load(document.removeprefix("#cloud-config\n"))
    return {entry["path"][len(STACK_DIR) + 1:]: (entry["permissions"], entry["content"])
            for entry in parsed.get("write_files", []) if entry["path"].startswith(f"{STACK_DIR}/")}


# --- What is written --------------------------------------------------------------------------------


def test_phase1_is_one_host_folder_with_the_bundle_and_cloud_init(rendered):
    out, stdout = rendered["phase1"]
    assert sorted(path.name for path in out.iterdir()) == ["README.txt", "vps"]
    assert stdout == f"wrote {out / 'vps'}\nwrote {out / 'README.txt'}\n"
    modes = tree(out / "vps")
    important = {
        "cloud-init.yaml": 0o600, "compose.yaml": 0o644, "deploy.sh": 0o755, "caddy/caddy.json": 0o644,
        "postgres/postgresql.conf": 0o644, "redis/redis.conf": 0o644, "backup.sh": 0o755,
        "secrets": 0o700, "secrets/app.env": 0o600, "secrets/db_password": 0o600, "secrets/redis_password": 0o400,
        "secrets/redis_auth.conf": 0o400, "secrets/pgbackrest.conf": 0o400, "secrets/backup_passphrase": 0o400,
        "secrets/r2-curl.conf": 0o400, "tls": 0o700, "tls/origin.pem": 0o644, "tls/origin.key": 0o600,
    }
    assert {path: modes.get(path) for path in important} == important
    # Every file cloud-init writes at first boot is in the folder, with its permissions; what the folder adds
    # beyond them is what only the rollout delivers: secrets/ and tls/.
    first_boot = cloud_init_files((out / "vps" / "cloud-init.yaml").read_text())
    written = {path for path in modes if (out / "vps" / path).is_file()}
    assert set(first_boot) <= written
    assert {path: f"0{modes[path]:o}" for path in first_boot} == {path: mode for path, (mode, _) in first_boot.items()}
    assert {path.split("/")[0] for path in written - set(first_boot) - {"cloud-init.yaml"}} == {"secrets", "tls"}
    for path, (_, content) in first_boot.items():
        # compose.yaml: its proxy label digests the origin certificate, which cloud-init never has. caddy.json: the
        # rollout's copy trusts Cloudflare's ranges (trusted_proxies), known only once read from Cloudflare at
        # deploy; the first-boot copy goes without, by design, since the rollout replaces it before the stack starts.
        if path not in ("compose.yaml", "caddy/caddy.json"):
            assert (out / "vps" / path).read_text() == content, path
    ranges = [*CLOUDFLARE_IP_RANGES["ipv4Cidrs"], *CLOUDFLARE_IP_RANGES["ipv6Cidrs"]]
    bundle_servers = json.loads((out / "vps" / "caddy" / "caddy.json").read_text())["apps"]["http"]["servers"]
    assert bundle_servers["https"]["trusted_proxies"] == {"source": "static", "ranges": ranges}
    first_boot_servers = json.loads(first_boot["caddy/caddy.json"][1])["apps"]["http"]["servers"]
    assert "trusted_proxies" not in first_boot_servers["https"]


def test_phase2_has_the_database_host_and_both_app_hosts(rendered):
    out, _ = rendered["phase2"]
    assert sorted(path.name for path in out.iterdir()) == ["README.txt", "app-0", "app-1", "db"]
    db = tree(out / "db")
    for path, mode in {"compose.yaml": 0o644, "deploy.sh": 0o755, "postgres/postgresql.conf": 0o644,
                       "postgres/pg_hba.conf": 0o644, "redis/redis.conf": 0o644, "cloud-init.yaml": 0o600,
                       "secrets/db_password": 0o600, "secrets/redis_password": 0o400, "secrets": 0o700}.items():
        assert db.get(path) == mode, path
    assert not any(path.startswith("tls") for path in db)  # the database host serves no app traffic
    for host in ("app-0", "app-1"):
        app = tree(out / host)
        for path, mode in {"compose.yaml": 0o644, "deploy.sh": 0o755, "caddy/caddy.json": 0o644,
                           "cloud-init.yaml": 0o600, "secrets/app.env": 0o600, "tls/origin.key": 0o600, "tls/origin.pem": 0o644}.items():
            assert app.get(path) == mode, (host, path)
        assert "postgres/postgresql.conf" not in app
        assert set(cloud_init_files((out / host / "cloud-init.yaml").read_text())) <= set(app)
    readme = (out / "README.txt").read_text()
    for text in ("db/\n    The droplet split-db of split", "app-0/\n    The droplet split-app-0 of split",
                 "app-1/\n    The droplet split-app-1 of split", "mock values", "docs/rehearse.md"):
        assert text in readme, text


def test_only_the_release_host_runs_migrations(rendered):
    out, _ = rendered["phase2"]
    assert "migrate" in (out / "app-0" / "compose.yaml").read_text()
    assert "migrate" not in (out / "app-1" / "compose.yaml").read_text()


def test_json_lists_hosts_and_modes(tmp_path):
    status, stdout, _ = render(tmp_path / "out", "phase1", "--json")
    assert status == 0
    document = json.loads(stdout)
    assert (document["stack"], document["phase"], list(document["hosts"])) == ("phase1", 1, ["vps"])
    assert document["hosts"]["vps"]["droplet"] == "vps-droplet"
    assert document["hosts"]["vps"]["files"]["secrets/app.env"] == "0600"
    assert document["kubernetes"] == []


# --- Secrets --------------------------------------------------------------------------------------


def secret_values(folder: Path) -> dict[str, str]:
    values = {path: content for path, content in files_of(folder).items()
              if path.startswith(("secrets/", "tls/origin.key"))}
    assert values
    return values


MOCKED_SECRETS = {
    "random:index/randomPassword:RandomPassword": ("result",),
    "cloudflare:index/apiToken:ApiToken": ("value",),
    "tls:index/privateKey:PrivateKey": ("privateKeyPem", "privateKeyOpenssh", "publicKeyOpenssh"),
    "cloudflare:index/originCaCertificate:OriginCaCertificate": ("certificate",),
}
"""The outputs render must replace, per type: the mocks' values of these are fixed (a digest of the name)."""


def fixed_mock_values(recording: Recording) -> set[str]:
    """Every distinctive piece of what the mocks alone would give the recorded secret-bearing resources (passwords,
    API tokens, private keys in every form, ``mock_openssh_pair`` included, the origin certificate): each word of
    16 characters or more that is not a PEM armour line."""
    values = set()
    for resource in recording.resources:
        outputs = _fake_outputs(resource.type, resource.name, resource.id or "0")
        for value in (outputs[key] for key in MOCKED_SECRETS.get(resource.type, ())):
            values |= {word for word in str(value).split() if len(word) >= 16 and "-----" not in word}
    return values


@pytest.mark.parametrize("stack", ["phase1", "phase2", "phase3"])
def test_no_secret_is_the_plans_placeholder_or_a_fixed_mock_value(rendered, recorded, stack):
    fixed = fixed_mock_values(recorded[stack].recording)
    # Two passwords, the API token and the certificate; per key its hex digest (the PEM's and the OpenSSH
    # private key's body) and its public blob: the origin key and each droplet's host key. Not vacuous.
    assert len(fixed) == {"phase1": 4 + 2 * 2, "phase2": 4 + 2 * 4, "phase3": 4 + 2}[stack]
    out, _ = rendered[stack]
    for path, content in files_of(out).items():
        assert SECRET_PLACEHOLDER not in content, (stack, path)
        assert not [value for value in fixed if value in content], (stack, path)


def test_two_runs_give_different_secrets(rendered, tmp_path):
    first, _ = rendered["phase1"]
    assert render(tmp_path / "again", "phase1")[0] == 0
    before, after = secret_values(first / "vps"), secret_values(tmp_path / "again" / "vps")
    assert sorted(before) == sorted(after)
    for path in before:
        assert before[path] != after[path], path
    assert (first / "vps" / "tls" / "origin.pem").read_text() != (tmp_path / "again" / "vps" / "tls" /
                                                                    "origin.pem").read_text()


@pytest.mark.parametrize(("stack", "host"), [("phase1", "vps"), ("phase2", "app-0"), ("phase2", "app-1")])
def test_app_env_has_every_secret_env_name(rendered, stack, host):
    out, _ = rendered[stack]
    names = load_config(read_stack_file(ROOT / f"Pulumi.{stack}.yaml")).app.secret_env
    assert names
    env = parse_env_file((out / host / "secrets" / "app.env").read_text())
    for name in names:
        assert len(env[name]) >= 32, name
    if host == "vps":
        password = (out / host / "secrets" / "db_password").read_text()
        assert env["DATABASE_URL"] == f"postgresql://app:{password}@db:5432/app"


@pytest.mark.parametrize(("stack", "host"), [("phase1", "vps"), ("phase2", "app-0"), ("phase2", "app-1")])
def test_the_origin_certificate_is_self_signed_for_the_hostname_and_matches_its_key(rendered, stack, host):
    """Every host folder with a tls/ (phase 2's database host has none: test_phase2_has_the_database_host...)."""
    out, _ = rendered[stack]
    tls = out / host / "tls"

    def openssl(*args: str) -> str:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=True)
        return result.stdout

    assert openssl("x509", "-in", str(tls / "origin.pem"), "-noout", "-pubkey") == \
        openssl("pkey", "-in", str(tls / "origin.key"), "-pubout")
    assert "DNS:app.example.com" in openssl("x509", "-in", str(tls / "origin.pem"), "-noout", "-ext",
                                            "subjectAltName")
    subject = openssl("x509", "-in", str(tls / "origin.pem"), "-noout", "-subject", "-issuer")
    assert subject == ("subject=O = phasekit rehearsal, CN = app.example.com\n"
                       "issuer=O = phasekit rehearsal, CN = app.example.com\n")


def host_keys(cloud_init: str) -> dict[str, str]:
    return yaml.safe_load(cloud_init.removeprefix("#cloud-config\n"))["ssh_keys"]


def public_half(private_openssh: str, scratch: Path) -> str:
    """``ssh-keygen -y``'s verdict on the key: its public half (type and key), or the test fails."""
    key_file = scratch / "key"
    key_file.touch(mode=0o600)
    key_file.write_text(private_openssh)
    result = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True, check=False)
    key_file.unlink()
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split()[:2])


@pytest.mark.parametrize("stack", ["phase1", "phase2"])
def test_each_droplet_gets_its_own_ed25519_host_key_which_its_rollout_pins(recorded, rendered, stack, tmp_path):
    run = recorded[stack]
    droplets = {droplet.urn: droplet for droplet in run.recording.of_type(DROPLET)}
    pinned = {render_module._droplet_of(rollout, droplets).name: rollout.inputs["connection"]["hostKey"]
              for rollout in run.recording.of_type(ROLLOUT) if rollout.name.endswith(ROLLOUT_SUFFIX)}
    publics = {}
    for host in run.hosts:
        assert run.recording.named(f"{host.droplet}{HOST_KEY_SUFFIX}").inputs["algorithm"] == "ED25519"
        keys = host_keys((run.folder / host.folder / "cloud-init.yaml").read_text())
        publics[host.folder] = public_half(keys["ed25519_private"], tmp_path)
        # pulumi-tls' public_key_openssh, as cloud-init gets it and as the rollout pins it: "<type> <key>\n".
        assert keys["ed25519_public"] == f"{publics[host.folder]}\n" == pinned[host.droplet], host.folder
        assert publics[host.folder].startswith("ssh-ed25519 ")
    assert sorted(publics) == {"phase1": ["vps"], "phase2": ["app-0", "app-1", "db"]}[stack]
    assert len(set(publics.values())) == len(publics)  # one key per droplet
    # Another run (the CLI's) gives every droplet another key.
    out, _ = rendered[stack]
    for folder, public in publics.items():
        assert public_half(host_keys((out / folder / "cloud-init.yaml").read_text())["ed25519_private"],
                           tmp_path) != public, folder


def test_the_host_keys_pem_form_is_the_same_ed25519_key():
    """``privateKeyPem`` (PKCS#8, as pulumi-tls gives an ED25519 key) holds the key ``privateKeyOpenssh`` does."""
    from cryptography.hazmat.primitives import serialization

    kept: list[str] = []
    key = ssh_host_key(lambda value: kept.append(value) or value)
    assert kept == [key["privateKeyOpenssh"], key["privateKeyPem"]]
    assert key["privateKeyPem"].startswith("-----BEGIN PRIVATE KEY-----\n")
    from_pem = serialization.load_pem_private_key(key["privateKeyPem"].encode(), password=None)
    from_openssh = serialization.load_ssh_private_key(key["privateKeyOpenssh"].encode(), password=None)
    raw = (serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    assert from_pem.private_bytes(*raw) == from_openssh.private_bytes(*raw)
    public = from_pem.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert key["publicKeyOpenssh"] == public.decode() + "\n"
    assert ed25519_pkcs8_pem(key["privateKeyOpenssh"]) == key["privateKeyPem"]


def test_a_tls_key_of_another_algorithm_is_refused():
    with pytest.raises(RuntimeError) as error:
        LocalSecrets()("tls:index/privateKey:PrivateKey", "signing-key", {"algorithm": "RSA", "rsaBits": 4096})
    assert str(error.value) == "render: no stand-in for the tls PrivateKey signing-key (algorithm 'RSA')"


def test_the_origin_key_is_one_per_resource_name():
    local = LocalSecrets()
    inputs = {"algorithm": "ECDSA", "ecdsaCurve": "P256"}
    first = local("tls:index/privateKey:PrivateKey", "edge-origin-key", inputs)["privateKeyPem"]
    assert first.startswith("-----BEGIN EC PRIVATE KEY-----\n")
    assert local.ecdsa_key("edge-origin-key") == first
    assert local("tls:index/privateKey:PrivateKey", "other-origin-key", inputs)["privateKeyPem"] != first
    assert local.generated.count(first) == 1


# --- Real consumers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "host"), [("phase1", "vps"), ("phase2", "app-0"), ("phase2", "app-1")])
def test_caddy_validates_the_rendered_config_with_the_rendered_tls_files(rendered, stack, host):
    out, _ = rendered[stack]
    folder = out / host
    config = (folder / "caddy" / "caddy.json").read_text()
    assert f'"{CERT_DIR}/origin.pem"' in config
    # The proxy sees ./tls at CERT_DIR; caddy_validate's folder stands in for it (relative paths).
    local = config.replace(f"{CERT_DIR}/", "tls/")
    tls_files = {f"tls/{name}": (folder / "tls" / name).read_text() for name in ("origin.pem", "origin.key")}
    assert "Valid configuration" in caddy_validate(local, tls_files)


@pytest.mark.parametrize(("stack", "host", "services"), [
    ("phase1", "vps", {"proxy", "app", "db", "redis", "migrate"}),
    ("phase2", "db", None),
    ("phase2", "app-0", {"proxy", "app", "migrate"}),
    ("phase2", "app-1", {"proxy", "app"}),
])
def test_docker_compose_accepts_each_hosts_folder(rendered, stack, host, services):
    out, _ = rendered[stack]
    folder = out / host
    files = {path: content for path, content in files_of(folder).items() if path != "compose.yaml"}
    config = compose_config((folder / "compose.yaml").read_text(), files)
    if services is not None:
        assert set(config["services"]) == services
    else:
        assert {"db", "redis"} <= set(config["services"])


@pytest.mark.parametrize(("stack", "host"), [("phase1", "vps"), ("phase2", "db"), ("phase2", "app-0"),
                                             ("phase2", "app-1")])
def test_cloud_init_yaml_passes_cloud_inits_schema(rendered, stack, host):
    out, _ = rendered[stack]
    assert "Valid cloud-config" in cloud_init_schema((out / host / "cloud-init.yaml").read_text())


@pytest.mark.parametrize(("stack", "host"), [("phase1", "vps"), ("phase2", "db")])
def test_postgresql_starts_on_the_rendered_conf(rendered, stack, host):
    conf = (rendered[stack][0] / host / "postgres" / "postgresql.conf").read_text()
    expected = {line.split(" = ")[0]: line.split(" = ")[1].strip("'")
                for line in conf.splitlines() if " = " in line and not line.startswith("#")}
    with running_postgres(conf) as server:
        assert server.show("archive_mode") == expected["archive_mode"] == "on"
        assert server.show("max_connections") == expected["max_connections"]


@pytest.mark.parametrize(("stack", "host"), [("phase1", "vps"), ("phase2", "db"), ("phase2", "app-0"),
                                             ("phase2", "app-1")])
def test_deploy_script_passes_shellcheck(rendered, stack, host):
    shellcheck((rendered[stack][0] / host / "deploy.sh").read_text())


# --- Phase 3 --------------------------------------------------------------------------------------


PHASE3_OBJECTS = {
    "app-database-role-account.yaml": "ServiceAccount", "app-database-role-password.yaml": "Secret",
    "app-database-role-sql.yaml": "ConfigMap", "app-database-role.yaml": "Job",
    "app-default-deny.yaml": "NetworkPolicy", "app-deployment.yaml": "Deployment", "app-egress.yaml": "NetworkPolicy",
    "app-env.yaml": "Secret", "app-hpa.yaml": "HorizontalPodAutoscaler", "app-namespace.yaml": "Namespace",
    "app-pdb.yaml": "PodDisruptionBudget", "app-release.yaml": "Job", "app-service.yaml": "Service",
    "app-web-ingress.yaml": "NetworkPolicy", "autoscaler-cluster-role-binding.yaml": "ClusterRoleBinding",
    "autoscaler-cluster-role.yaml": "ClusterRole", "autoscaler-deployment.yaml": "Deployment",
    "autoscaler-pdb.yaml": "PodDisruptionBudget", "autoscaler-role-binding.yaml": "RoleBinding",
    "autoscaler-role.yaml": "Role", "autoscaler-sa.yaml": "ServiceAccount", "cluster-gp3.yaml": "StorageClass",
    "logical-backup-account.yaml": "ServiceAccount", "logical-backup-credentials.yaml": "Secret",
    "logical-backup-egress.yaml": "NetworkPolicy", "logical-backup.yaml": "CronJob",
}


def test_phase3_writes_each_kubernetes_object_as_yaml(rendered):
    out, _ = rendered["phase3"]
    assert sorted(path.name for path in out.iterdir()) == ["README.txt", "kubernetes"]
    folder = out / "kubernetes"
    documents = {path.name: yaml.safe_load(path.read_text()) for path in folder.iterdir()}
    assert {name: document["kind"] for name, document in documents.items()} == PHASE3_OBJECTS
    modes = tree(folder)
    assert {name for name, mode in modes.items() if mode == 0o600} == {
        name for name, kind in PHASE3_OBJECTS.items() if kind == "Secret"}
    for name, document in documents.items():
        assert list(document)[:3] == ["apiVersion", "kind", "metadata"], name
        assert document["metadata"].get("name"), name
    deployment = documents["app-deployment.yaml"]
    assert deployment["apiVersion"] == "apps/v1" and deployment["spec"]["replicas"] == 2
    # The Deployment reads its environment from the Secret rendered beside it, by the name written there.
    env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env_from == [{"secretRef": {"name": documents["app-env.yaml"]["metadata"]["name"]}}]
    env = documents["app-env.yaml"]["stringData"]
    assert len(env["SECRET_KEY_BASE"]) >= 32 and SECRET_PLACEHOLDER not in env.values()
    password = documents["app-database-role-password.yaml"]["stringData"]["APP_ROLE_PASSWORD"]
    assert f":{password}@" in env["DATABASE_URL"]


def test_phase3_objects_pass_the_kubernetes_schema(rendered):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    out, _ = rendered["phase3"]
    for path in sorted((out / "kubernetes").iterdir()):
        document = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(document, "1.31", strict=True)


# --- Bad input ------------------------------------------------------------------------------------


def test_a_folder_that_is_not_empty_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n")
    assert render(out, "phase1") == (1, "", f"error: --out {out}: not empty; render writes into a new or empty "
                                             "folder\n")
    assert sorted(path.name for path in out.iterdir()) == ["keep.txt"]


def test_an_empty_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert render(out, "phase1")[0] == 0
    assert (out / "vps" / "compose.yaml").is_file()


def test_an_unknown_stack_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    assert render(out, "phase9") == (1, "", "error: --stack: no stack file Pulumi.phase9.yaml; allowed: phase1, "
                                            "phase2, phase3 (did you mean 'phase3'?)\n")
    assert not out.exists()


@pytest.mark.parametrize("step", ["write_kubernetes", "readme_text"])
@pytest.mark.parametrize("failure", [RuntimeError("forced failure"), KeyboardInterrupt()])
def test_a_failed_render_leaves_the_folder_as_empty_as_it_found_it(tmp_path, monkeypatch, step, failure):
    """Both steps come after the host folders are written: nothing of them may stay, nor the staging folder."""
    out = tmp_path / "out"
    out.mkdir(mode=0o750)
    out.chmod(0o750)

    def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(render_module, step, fail)
    with pytest.raises(type(failure)) as raised:
        render_stack("phase1", ROOT, out)
    assert raised.value is failure
    assert list(out.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o750


def test_a_render_keeps_the_folder_it_was_given(tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o750)
    out.chmod(0o750)
    inode = out.stat().st_ino
    rendered = render_stack("phase1", ROOT, out)
    assert sorted(path.name for path in out.iterdir()) == ["README.txt", "vps"]  # no staging folder left
    assert (out.stat().st_ino, stat.S_IMODE(out.stat().st_mode)) == (inode, 0o750)
    assert rendered.written == [out / "vps", out / "README.txt"]


def test_only_the_rollouts_are_host_folders(recorded, tmp_path):
    """Another remote command on a droplet (here a copy of the host-key step under another name) is no host."""
    recording = recorded["phase1"].recording
    step = recording.named(f"vps-droplet{HOST_KEY_SUFFIX}-install")
    other = dataclasses.replace(step, name="vps-droplet-tune", urn=step.urn.replace(step.name, "vps-droplet-tune"))
    hosts = write_hosts(Recording(resources=[*recording.resources, other]), tmp_path)
    assert [(host.folder, host.droplet) for host in hosts] == [("vps", "vps-droplet")]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["vps"]


REHEARSAL = ["docker compose up -d --wait db redis", "docker compose run --rm -T migrate",
             "docker compose up -d --wait"]
"""The Compose steps of a rehearsal, in deploy.sh's order (its long forms: DEPLOY_STEPS)."""

DEPLOY_STEPS = ["docker compose up --detach --wait --wait-timeout 300 db redis",
                "docker compose run --rm -T migrate",
                "docker compose up --detach --remove-orphans --wait --wait-timeout 300"]


def test_the_rehearsal_follows_deploy_sh(rendered):
    out, _ = rendered["phase1"]
    deploy = (out / "vps" / "deploy.sh").read_text().splitlines()
    assert [deploy.index(step) for step in DEPLOY_STEPS] == sorted(deploy.index(step) for step in DEPLOY_STEPS)
    readme = " ".join((out / "README.txt").read_text().split())
    docs = (ROOT / "docs" / "rehearse.md").read_text()
    for text in (readme, docs):
        positions = [text.find(f"{step}`" if text is readme else f"{step}\n") for step in REHEARSAL]
        assert -1 not in positions and positions == sorted(positions), positions
    assert "docker compose up`" not in readme and "sudo docker compose up -d\n" not in docs


def test_render_needs_both_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--stack", "phase1"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


def test_a_preview_would_leave_the_bundles_unknown():
    """Why render runs the mocks outside preview: there, apply never runs on unknown outputs, so no bundle."""
    from phasekit.plan import run_plan

    stdin = run_plan("phase1", ROOT).recording.named("vps-rollout").inputs["stdin"]
    assert type(stdin).__name__ == "Unknown"


def test_render_help_fits_and_shows_its_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "phasekit render --stack phase1 --out /tmp/phase1" in out and "exit status:" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_a_private_only_phase3_stack_renders_as_the_deployed_stack_it_describes(tmp_path):
    """``pulumi up`` refuses a private-only endpoint on a first deploy (nothing could reach the API); render shows
    what lands on a stack that already runs, so the cluster is looked up as running the configured version."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    stack = (ROOT / "Pulumi.phase3.yaml").read_text()
    public = "    endpointPublicAccessCidrs:\n      - 203.0.113.0/24\n"
    assert public in stack
    (project / "Pulumi.phase3.yaml").write_text(stack.replace(public, "    endpointPublicAccessCidrs: []\n"))
    (tmp_path / "out").mkdir()
    rendered = render_stack("phase3", project, tmp_path / "out")
    assert (rendered.phase, len(rendered.kubernetes) > 20) == (3, True)
