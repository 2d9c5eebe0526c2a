"""Offline render: every host's files exactly as they land on it, from a stack file, for review or a local rehearsal.

``phasekit render --stack S --out DIR`` runs the real program under the mock monitor like ``phasekit plan``, but
not in preview: in a preview the rollout bundles are unknown (``apply`` callbacks on unknown outputs never run,
see ``components.testing``), so the mocks compute every output and the bundles render in full. Then, per host:

- the rollout command's ``stdin`` (the base64 tar ``droplet_parts.host_bundle`` / ``split_vps._data_bundle``
  build, secrets included) is unpacked into ``DIR/<host>/`` with the tar's modes, as the rollout's
  ``tar --extract`` as root does into ``/opt/phasekit`` (owners too when render itself runs as root);
- the droplet's cloud-init ``user_data`` is written beside those files as ``cloud-init.yaml``, ``0600``: it holds
  the droplet's SSH host private key, and cloud-init itself keeps user-data ``0600`` on the droplet
  (``Init._store_rawdata`` in canonical/cloud-init's ``cloudinit/stages.py`` writes ``user-data.txt`` so).

Phase 3 runs no hosts: its Kubernetes objects are written as YAML, one file per object, under
``DIR/kubernetes/``, from the recorded ``kubernetes:*`` resources' inputs.

Secrets are local placeholders generated for this run (``secrets.token_urlsafe`` and friends), never the plan's
fixed placeholder and never anything real: every ``phasekit:secrets`` entry and every other ``secure:`` stack
value, the generated passwords (``random:RandomPassword``), the backups bucket's API token (so its S3 secret key),
each ``tls:PrivateKey`` after its ``algorithm`` (``LocalSecrets.private_key``): every droplet's ED25519 SSH host
key its own pair from ``ssh-keygen``, the origin key an ECDSA P-256 key from ``openssl``, and the origin
certificate a self-signed certificate for its hostnames over that key, so Caddy loads the pair (the
``cryptography`` package is only a test dependency here). Other computed values (addresses, ids, names) are the
mocks' (``components.testing``).

A render is all or nothing: it writes into a staging folder inside ``--out`` and moves what it wrote into place
only once every file is written; a failure leaves ``--out`` as empty as it found it (``render_stack``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import shutil
import string
import subprocess
import tarfile
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi.runtime import rpc

from components.compose_stack import STACK_DIR
from components.droplet_parts import ROLLOUT_SUFFIX
from components.testing import INVOKE_RESULTS, RecordedResource, Recording, run_recorded
from infra.config import Phase3Stack, StackConfig, load_config, required_secret_names
from infra.errors import ConfigError
from phasekit.plan import SECRET_PLACEHOLDER, runtime_form
from phasekit.project import project_name, stack_file_of
from phasekit.stack_file import read_stack_file

DROPLET = "digitalocean:index/droplet:Droplet"
ROLLOUT = "command:remote:Command"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
ORIGIN_CERTIFICATE = "cloudflare:index/originCaCertificate:OriginCaCertificate"
API_TOKEN = "cloudflare:index/apiToken:ApiToken"

CLOUD_INIT_FILE = "cloud-init.yaml"
KUBERNETES_DIR = "kubernetes"
README_FILE = "README.txt"
CERTIFICATE_DAYS = 30
"""Validity of the stand-in origin certificate: long enough for a rehearsal, short enough to stay a stand-in."""

ALPHANUMERIC = string.ascii_letters + string.digits

STAGING_PREFIX = ".phasekit-render-"
"""The staging folder ``render_stack`` writes into, inside ``--out``, before it moves the result into place."""

ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
"""DER of a PKCS#8 ``PrivateKeyInfo`` for Ed25519 up to its 32-byte seed (RFC 8410, section 7's example)."""


@dataclass(frozen=True)
class HostFolder:
    folder: str
    """The folder under ``--out``: the rollout's name without its component's name and ``-rollout`` (the host's
    role: ``db``, ``app-0``), or the component's name for a component with one host (phase 1's ``vps``)."""

    droplet: str
    """The droplet's logical name (``vps-droplet``, ``split-app-0``)."""

    component: str
    files: dict[str, tarfile.TarInfo]
    """Bundle path (relative to ``STACK_DIR``) -> its tar entry (mode, owner)."""


@dataclass
class Rendered:
    stack: str
    phase: int
    hosts: list[HostFolder] = field(default_factory=list)
    kubernetes: list[str] = field(default_factory=list)
    """File names written under ``kubernetes/``."""

    written: list[Path] = field(default_factory=list)
    """The folders (and README) written, for the CLI to list."""


class LocalSecrets:
    """The mock outputs that carry secrets, generated fresh for one run (``components.testing.OutputOverrides``).

    Keys are made when the program registers them, so a stack without them never needs openssl or ssh-keygen. The
    mocks register resources from a thread pool: the shared tables are guarded by one lock."""

    def __init__(self) -> None:
        self.generated: list[str] = []
        """Every secret value handed out, so a test (or a reviewer) can find each in the files."""

        self._lock = threading.Lock()
        self._ecdsa_keys: dict[str, str] = {}
        """``tls.PrivateKey`` name -> its ECDSA key (PEM): one per resource, however often it is asked for."""

        self._csr_keys: dict[str, str] = {}
        """A certificate request render made -> the key it was made over, for the certificate it leads to."""

        self.kubernetes_names: dict[str, str] = {}
        """Logical name -> ``metadata.name`` the provider would auto-name (objects given none)."""

    def _keep(self, value: str) -> str:
        with self._lock:
            self.generated.append(value)
        return value

    def token(self) -> str:
        return self._keep(secrets.token_urlsafe(24))

    def password(self, length: int) -> str:
        # Alphanumeric, like droplet_parts.generated_password asks of random.RandomPassword (special=False).
        return self._keep("".join(secrets.choice(ALPHANUMERIC) for _ in range(length)))

    def private_key(self, name: str, inputs: Mapping[str, Any]) -> dict[str, str]:
        """The outputs pulumi-tls gives the key ``name``, after its ``algorithm`` (what phasekit asks for)."""
        algorithm = inputs.get("algorithm")
        if algorithm == "ED25519":
            return ssh_host_key(self._keep)
        if algorithm == "ECDSA" and inputs.get("ecdsaCurve") == "P256":
            return {"privateKeyPem": self.ecdsa_key(name)}
        raise RuntimeError(f"render: no stand-in for the tls PrivateKey {name} (algorithm {algorithm!r})")

    def ecdsa_key(self, name: str) -> str:
        with self._lock:
            if name not in self._ecdsa_keys:
                # SEC1 "EC PRIVATE KEY", the form pulumi-tls gives ECDSA keys in private_key_pem.
                self._ecdsa_keys[name] = _run("openssl", OPENSSL_PURPOSE,
                                              ["ecparam", "-name", "prime256v1", "-genkey", "-noout"])
                self.generated.append(self._ecdsa_keys[name])
            return self._ecdsa_keys[name]

    def cert_request(self, inputs: Mapping[str, Any]) -> dict[str, str]:
        """A real CSR over the key the request names (one render made), remembered so that the certificate
        issued for it is signed by that key."""
        key_pem = str(_revealed(inputs.get("privateKeyPem")) or "")
        subject = dict(inputs.get("subject") or {})
        names = list(inputs.get("dnsNames") or [])
        organization, common_name = subject.get("organization") or "phasekit", subject.get("commonName") or "localhost"
        with _key_file(key_pem) as key_file:
            request = _run("openssl", OPENSSL_PURPOSE, [
                "req", "-new", "-key", str(key_file), "-sha256", "-subj", f"/O={organization}/CN={common_name}",
                *(["-addext", "subjectAltName=" + ",".join(f"DNS:{host}" for host in names)] if names else [])])
        with self._lock:
            self._csr_keys[request] = key_pem
        return {"certRequestPem": request}

    def origin_certificate(self, name: str, inputs: Mapping[str, Any]) -> dict[str, str]:
        with self._lock:
            key_pem = self._csr_keys.get(str(_revealed(inputs.get("csr")) or ""))
        if key_pem is None:
            raise RuntimeError(f"render: the certificate {name} is requested with a CSR render did not make")
        return {"certificate": self_signed_certificate(key_pem, list(inputs.get("hostnames") or []))}

    def __call__(self, type_token: str, name: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        if type_token == RANDOM_PASSWORD:
            return {"result": self.password(int(inputs.get("length") or 32))}
        if type_token == API_TOKEN:
            return {"value": self.token()}
        if type_token == PRIVATE_KEY:
            return self.private_key(name, inputs)
        if type_token == CERT_REQUEST:
            return self.cert_request(inputs)
        if type_token == ORIGIN_CERTIFICATE:
            return self.origin_certificate(name, inputs)
        if type_token.startswith("kubernetes:") and isinstance(inputs.get("metadata"), Mapping):
            metadata = dict(inputs["metadata"])
            if not metadata.get("name"):
                # pulumi-kubernetes auto-names "<logical name>-<8 random characters>"; a Secret keeps the mock's
                # name (components.testing), which the objects that reference it already carry.
                metadata["name"] = _mock_kubernetes_name(name)
                with self._lock:
                    self.kubernetes_names[name] = metadata["name"]
                return {"metadata": metadata}
        return {}


def _revealed(value: Any) -> Any:
    """``value`` without the secret wrapper the mocks' inputs keep around an input that is an Output marked secret
    (``pulumi.runtime.rpc``'s ``{<signature key>: <secret signature>, "value": ...}``)."""
    if isinstance(value, Mapping) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return _revealed(value.get("value"))
    return value


def _mock_kubernetes_name(name: str) -> str:
    """The suffix ``components.testing`` fakes for a Secret's auto-name, so references to it agree."""
    return f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


OPENSSL_PURPOSE = "the stand-in origin certificate"
SSH_KEYGEN_PURPOSE = "the stand-in SSH host keys"


def _run(tool: str, purpose: str, argv: list[str]) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ConfigError(f"render: {purpose} needs the {tool} command, and it is not on PATH")
    result = subprocess.run([path, *argv], capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{tool} {argv[0]} failed: {result.stderr.strip()}")
    return result.stdout


@contextmanager
def _key_file(private_key_pem: str) -> Iterator[Path]:
    """``private_key_pem`` in a ``0600`` file of its own, for a command that reads keys only from files."""
    with tempfile.TemporaryDirectory(prefix="phasekit-render-") as scratch:
        key_file = Path(scratch) / "key.pem"
        key_file.touch(mode=0o600)
        key_file.write_text(private_key_pem)
        yield key_file


def self_signed_certificate(private_key_pem: str, hostnames: list[str]) -> str:
    """A self-signed certificate for ``hostnames`` (CN the first, every one a DNS subjectAltName) over the key."""
    names = hostnames or ["localhost"]
    with _key_file(private_key_pem) as key_file:
        return _run("openssl", OPENSSL_PURPOSE, [
            "req", "-x509", "-key", str(key_file), "-sha256", "-days", str(CERTIFICATE_DAYS),
            "-subj", f"/O=phasekit rehearsal/CN={names[0]}",
            "-addext", "subjectAltName=" + ",".join(f"DNS:{host}" for host in names)])


def ssh_host_key(keep: Callable[[str], str]) -> dict[str, str]:
    """A fresh ED25519 pair in the three forms pulumi-tls gives an ED25519 ``tls.PrivateKey``
    (hashicorp/terraform-provider-tls ``internal/provider/resource_private_key.go``): ``privateKeyOpenssh``
    (``ssh.MarshalPrivateKey``), ``publicKeyOpenssh`` (``ssh.MarshalAuthorizedKey``: ``<type> <base64>`` and a
    newline, no comment) and ``privateKeyPem`` (PKCS#8). ``keep`` records each private form as generated."""
    with tempfile.TemporaryDirectory(prefix="phasekit-render-") as scratch:
        key_file = Path(scratch) / "ssh_host_ed25519_key"
        _run("ssh-keygen", SSH_KEYGEN_PURPOSE, ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key_file)])
        private_openssh = key_file.read_text()
        public_openssh = " ".join(Path(f"{key_file}.pub").read_text().split()[:2]) + "\n"
    return {"privateKeyOpenssh": keep(private_openssh), "publicKeyOpenssh": public_openssh,
            "privateKeyPem": keep(ed25519_pkcs8_pem(private_openssh))}


def ed25519_pkcs8_pem(private_openssh: str) -> str:
    """The unencrypted OpenSSH ED25519 key ``private_openssh`` as PKCS#8 PEM, the form pulumi-tls gives an
    ED25519 key's ``private_key_pem``. OpenSSH 9's ssh-keygen cannot export ED25519 keys as PKCS#8, so this
    reads the key format (openssh/openssh-portable ``PROTOCOL.key``) for the 32-byte seed."""
    blob = base64.b64decode("".join(line for line in private_openssh.splitlines() if not line.startswith("-----")))
    magic = b"openssh-key-v1\0"
    if not blob.startswith(magic):
        raise RuntimeError("render: ssh-keygen wrote a key that is not in the OpenSSH format")
    cipher, kdf, _kdf_options, rest = _ssh_strings(blob[len(magic):], 3)
    if (cipher, kdf) != (b"none", b"none") or int.from_bytes(rest[:4], "big") != 1:
        raise RuntimeError("render: ssh-keygen wrote an encrypted key, or more than one")
    _public, private_section, _ = _ssh_strings(rest[4:], 2)
    # The private section: two check integers, then the key type, its public half and seed || public half.
    key_type, _public_half, private_half, _ = _ssh_strings(private_section[8:], 3)
    if key_type != b"ssh-ed25519" or len(private_half) != 64:
        raise RuntimeError(f"render: ssh-keygen wrote a {key_type.decode(errors='replace')} key, not ssh-ed25519")
    der = base64.b64encode(ED25519_PKCS8_PREFIX + private_half[:32]).decode()
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(textwrap.wrap(der, 64)) + "\n-----END PRIVATE KEY-----\n"


def _ssh_strings(data: bytes, count: int) -> list[bytes]:
    """The first ``count`` SSH wire-format strings (a 4-byte big-endian length, then the bytes) of ``data``,
    then what follows them."""
    values = []
    for _ in range(count):
        length = int.from_bytes(data[:4], "big")
        if len(data) < 4 + length:
            raise RuntimeError("render: ssh-keygen wrote a truncated key")
        values.append(data[4:4 + length])
        data = data[4 + length:]
    return [*values, data]


# --- Running the program ----------------------------------------------------------------------------


def local_runtime_config(raw: Mapping[str, Any], local: LocalSecrets) -> tuple[dict[str, str], list[str]]:
    """``plan.runtime_form`` with every ``phasekit:secrets`` entry (given or not) and every ``secure:`` value
    replaced by a fresh token instead of the plan's fixed placeholder."""
    config, secret_keys = runtime_form(raw, required_secret_names(load_config(raw)))
    return {key: _localise(value, local) if key in secret_keys else value
            for key, value in config.items()}, secret_keys


def _localise(value: str, local: LocalSecrets) -> str:
    if value == SECRET_PLACEHOLDER:
        return local.token()
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value
    if not isinstance(decoded, dict | list):
        return value
    return json.dumps(_replace_placeholders(decoded, local))


def _replace_placeholders(value: Any, local: LocalSecrets) -> Any:
    if value == SECRET_PLACEHOLDER:
        return local.token()
    if isinstance(value, dict):
        return {key: _replace_placeholders(item, local) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_placeholders(item, local) for item in value]
    return value


def record_stack(stack: str, project_dir: Path, local: LocalSecrets) -> tuple[int, Recording]:
    """(the stack's phase, the program's recording with every output computed and secrets from ``local``)."""
    from infra.program import build_stack
    from infra.runtime_config import runtime_raw_config

    project = project_name(project_dir)
    raw = read_stack_file(stack_file_of(stack, project_dir))
    phase = load_config(raw).phase
    config, secret_keys = local_runtime_config(raw, local)
    recording = run_recorded(lambda: build_stack(runtime_raw_config(), project, stack),
                             preview=False, project=project, stack=stack, config=config, secret_keys=secret_keys,
                             invoke_results=_deployed_lookups(project, stack, load_config(raw)),
                             output_overrides=local)
    return phase, recording


def _deployed_lookups(project: str, stack: str, config: StackConfig) -> dict[str, dict]:
    """The offline lookups, with a phase-3 cluster that already runs the configured version: render shows what
    lands on a deployed stack, so the checks only a first ``pulumi up`` makes (a private-only API endpoint cannot
    be reached before the VPC exists) do not stop it."""
    if not isinstance(config, Phase3Stack):
        return dict(INVOKE_RESULTS)
    from infra.phase3 import eks_cluster_name

    name = eks_cluster_name(project, stack)
    return {**INVOKE_RESULTS, "aws:eks/getClusters:getClusters": {"names": [name], "id": "offline"},
            "aws:eks/getCluster:getCluster": {"name": name, "version": config.cluster.version, "id": name}}


# --- Hosts ----------------------------------------------------------------------------------------


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def host_folder_name(rollout_name: str, component: str) -> str:
    role = rollout_name.removesuffix(ROLLOUT_SUFFIX).removeprefix(f"{component}-")
    return role or component


def _droplet_of(rollout: RecordedResource, droplets: Mapping[str, RecordedResource]) -> RecordedResource:
    """The droplet the rollout connects to: the engine records which resource its ``connection`` came from."""
    sources = set((rollout.property_dependencies or {}).get("connection", ()))
    found = [droplets[urn] for urn in sorted(sources) if urn in droplets]
    if len(found) != 1:
        raise RuntimeError(f"render: rollout {rollout.name} connects to {len(found)} droplets, not one")
    return found[0]


def bundle_members(rollout: RecordedResource) -> tarfile.TarFile:
    stdin = rollout.inputs.get("stdin")
    if not isinstance(stdin, str):
        raise RuntimeError(f"render: the bundle of {rollout.name} is not known (a preview run?)")
    return tarfile.open(fileobj=io.BytesIO(base64.b64decode(stdin)), mode="r:")


def write_host(rollout: RecordedResource, droplet: RecordedResource, folder: Path) -> HostFolder:
    """Unpack the rollout's bundle into ``folder`` with its modes, and the droplet's ``user_data`` beside it."""
    files: dict[str, tarfile.TarInfo] = {}
    as_root = os.geteuid() == 0
    with bundle_members(rollout) as archive:
        for member in archive.getmembers():
            target = _inside(folder, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = archive.extractfile(member)
                assert extracted is not None
                _write(target, extracted.read(), member.mode)
                files[member.name] = member
            else:
                raise RuntimeError(f"render: {rollout.name}'s bundle holds {member.name}, neither file nor folder")
            os.chmod(target, member.mode)
            if as_root:  # tar --extract as root keeps the owners (e.g. 999, the images' postgres/redis user)
                os.chown(target, member.uid, member.gid)
    user_data = droplet.inputs.get("userData")
    if not isinstance(user_data, str):
        raise RuntimeError(f"render: droplet {droplet.name} has no user_data")
    # 0600: it carries the droplet's SSH host private key (cloud-init keeps its own copy 0600 too).
    _write(folder / CLOUD_INIT_FILE, user_data.encode(), 0o600)
    component = _name_of(rollout.parent or "")
    return HostFolder(folder=folder.name, droplet=droplet.name, component=component, files=files)


def _inside(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise RuntimeError(f"render: bundle path {name!r} leaves its folder")
    return target


def _write(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it


def write_hosts(recording: Recording, out_dir: Path) -> list[HostFolder]:
    droplets = {droplet.urn: droplet for droplet in recording.of_type(DROPLET)}
    hosts = []
    for rollout in recording.of_type(ROLLOUT):
        if not rollout.name.endswith(ROLLOUT_SUFFIX):  # another remote command (the one-time host-key step)
            continue
        droplet = _droplet_of(rollout, droplets)
        folder = out_dir / host_folder_name(rollout.name, _name_of(rollout.parent or ""))
        if folder.exists():
            raise RuntimeError(f"render: two hosts would share the folder {folder.name}")
        folder.mkdir()
        hosts.append(write_host(rollout, droplet, folder))
    return hosts


# --- Kubernetes -----------------------------------------------------------------------------------


def kubernetes_objects(recording: Recording, names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """File name -> object, for every recorded ``kubernetes:*`` resource (not the provider): its inputs, whole
    numbers as ints (the wire format has only floats), ``metadata.name`` filled in where the provider
    auto-names (``names``), and ``apiVersion``, ``kind``, ``metadata`` first as ``kubectl`` writes them."""
    objects: dict[str, dict[str, Any]] = {}
    for resource in recording.resources:
        if not resource.type.startswith("kubernetes:"):
            continue
        inputs = _whole_numbers(resource.inputs)
        metadata = dict(inputs.get("metadata") or {})
        if not metadata.get("name") and resource.name in names:
            metadata = {"name": names[resource.name], **metadata}
        document = {"apiVersion": inputs.get("apiVersion"), "kind": inputs.get("kind"), "metadata": metadata,
                    **{key: value for key, value in inputs.items() if key not in ("apiVersion", "kind", "metadata")}}
        file_name = f"{resource.name}.yaml"
        if file_name in objects:
            file_name = f"{resource.name}-{str(document['kind']).lower()}.yaml"
        objects[file_name] = document
    return objects


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def write_kubernetes(recording: Recording, out_dir: Path, names: Mapping[str, str]) -> list[str]:
    objects = kubernetes_objects(recording, names)
    if not objects:
        return []
    folder = out_dir / KUBERNETES_DIR
    folder.mkdir()
    for file_name, document in objects.items():
        # A Secret's data is a placeholder, but still only its owner's to read, as secrets/ is on a host.
        mode = 0o600 if document["kind"] == "Secret" else 0o644
        _write(folder / file_name, yaml.safe_dump(document, sort_keys=False).encode(), mode)
    return sorted(objects)


# --- The whole render -----------------------------------------------------------------------------


def render_stack(stack: str, project_dir: Path, out_dir: Path) -> Rendered:
    """Render ``stack`` into the empty folder ``out_dir`` (checked by the caller). Raises ConfigError on bad config.

    All or nothing, so a failure never leaves a half-written folder that looks like a render: everything is
    written into a staging folder inside ``out_dir`` and moved up (``rename``, same file system) once complete;
    on any failure what was written is removed, leaving ``out_dir`` empty as it was. The staging folder lives
    inside ``out_dir``, not beside it, so this works where the parent is not writable, ``out_dir`` is a mount
    point or the working directory (``--out .``), and the folder the caller made keeps its owner and mode."""
    if any(out_dir.iterdir()):
        raise RuntimeError(f"render: {out_dir} is not empty")  # the cleanup below relies on it
    local = LocalSecrets()
    phase, recording = record_stack(stack, project_dir, local)
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
        rendered = Rendered(stack=stack, phase=phase)
        rendered.hosts = write_hosts(recording, staging)
        rendered.kubernetes = write_kubernetes(recording, staging, local.kubernetes_names)
        _write(staging / README_FILE, readme_text(rendered).encode(), 0o644)
        for entry in sorted(staging.iterdir()):
            entry.rename(out_dir / entry.name)
        staging.rmdir()
    except BaseException:
        _empty(out_dir)
        raise
    rendered.written = [out_dir / host.folder for host in rendered.hosts]
    if rendered.kubernetes:
        rendered.written.append(out_dir / KUBERNETES_DIR)
    rendered.written.append(out_dir / README_FILE)
    return rendered


def _empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def render_json(rendered: Rendered) -> dict[str, Any]:
    """``render --json``: the folders written, each host's droplet and files (with octal modes), the objects."""
    return {
        "stack": rendered.stack,
        "phase": rendered.phase,
        "hosts": {host.folder: {"droplet": host.droplet, "component": host.component,
                                "files": {path: f"{member.mode:04o}" for path, member in sorted(host.files.items())}}
                  for host in rendered.hosts},
        "kubernetes": rendered.kubernetes,
        "written": [str(path) for path in rendered.written],
    }


def readme_text(rendered: Rendered) -> str:
    lines = [f"phasekit render --stack {rendered.stack} (phase {rendered.phase}): what each folder is.", ""]
    for host in rendered.hosts:
        lines += [
            f"{host.folder}/",
            f"    The droplet {host.droplet} of {host.component}: its bundle's files at their paths under "
            f"{STACK_DIR}, with the bundle's modes,",
            f"    plus {CLOUD_INIT_FILE} (0600: it holds the droplet's SSH host private key), the droplet's "
            "cloud-init user_data,",
            "    applied at its first boot, before the rollout.",
        ]
        for uid in sorted({member.uid for member in host.files.values()} - {0}):
            owned = sorted(path for path, member in host.files.items() if member.uid == uid)
            lines += [f"    Owned by uid {uid} on the droplet (the images' postgres/redis user), as render run",
                      f"    as root leaves them: {', '.join(owned)}."]
    if rendered.kubernetes:
        lines += [f"{KUBERNETES_DIR}/",
                  "    Each Kubernetes object the program applies, one YAML file per object (file name: its "
                  "Pulumi resource name).",
                  "    Auto-named objects carry the offline harness' stand-in suffix; a real cluster picks its "
                  "own."]
    lines += [
        "",
        "Secrets are placeholders generated for this run: the stack's secrets, generated passwords, the",
        "backups bucket's key, each droplet's SSH host key and the origin certificate (a self-signed pair",
        "for the hostname, not Cloudflare's). Nothing here is a real credential, and nothing here should be",
        "deployed.",
        "Computed values (IP addresses, ids, endpoint names) are the offline harness' mock values, from",
        "documentation ranges such as 203.0.113.0/24 and 10.10.0.0/20; on a real stack they come from the cloud.",
        "",
        "Rehearse a host locally with Docker (docs/rehearse.md): in a host folder, point /mnt/phasekit-data",
        "at a scratch folder, then run deploy.sh's Compose steps in its order: `docker compose up -d --wait",
        "db redis` (a host that runs them), `docker compose run --rm -T migrate` (the host that runs the",
        "release command), then `docker compose up -d --wait`. Kubernetes objects: `kubectl apply",
        "--dry-run=server -f kubernetes/` against a scratch cluster.",
    ]
    return "\n".join(lines) + "\n"
