"""A recording mock harness for testing Pulumi programs and components offline.

Usage (in your own tests)::

    from components.testing import run_recorded

    def build():
        SingleVps("web", SingleVpsArgs(...))

    recording = run_recorded(build)                 # a fresh monitor per call
    firewall = recording.one("digitalocean:index/firewall:Firewall")
    assert firewall.inputs["inboundRules"][0]["portRange"] == "22"
    assert recording.one("digitalocean:index/volume:Volume").protect

Unlike a bare ``pulumi.runtime.Mocks`` it records what the engine is asked for each resource (parent,
``protect``, ``retainOnDelete``, ``ignoreChanges``, ``deleteBeforeReplace``, dependencies), which inputs
are secret, every provider function (invoke) the program called and with what, what it logged through
``pulumi.log``, and the stack's exports, and it waits for every output to settle before returning, so
assertions never race the program.

Two modes, like the real engine:
- ``preview=True``: computed outputs (ids, addresses, generated passwords) are unknown, exactly as on a
  fresh stack's ``pulumi preview``; ``apply`` callbacks on them do not run.
- ``preview=False``: the mocks invent deterministic values for the outputs phasekit reads, so every
  ``apply`` runs and rendered content (e.g. the rollout bundle) can be inspected.

What mocks cannot prove: that a provider accepts the inputs, what it computes, or how it diffs against
existing state. Only a real ``pulumi preview`` shows those.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import engine_pb2, resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

SECRET_MASK = "[secret]"
UNKNOWN_MASK = "(known after apply)"

CLOUDFLARE_IP_RANGES = {
    # Cloudflare's published ranges (https://www.cloudflare.com/ips/), snapshot for offline runs only;
    # a real run reads them from Cloudflare's API through cloudflare.get_ip_ranges.
    "ipv4Cidrs": [
        "173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18",
        "108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20", "197.234.240.0/22", "198.41.128.0/17",
        "162.158.0.0/15", "104.16.0.0/13", "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
    ],
    "ipv6Cidrs": [
        "2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32", "2405:8100::/32",
        "2a06:98c0::/29", "2c0f:f248::/32",
    ],
}

INVOKE_RESULTS: dict[str, dict] = {
    "cloudflare:index/getIpRanges:getIpRanges": {**CLOUDFLARE_IP_RANGES, "etag": "offline"},
    # EksCluster's lookup of the newest EKS AMI release for its Kubernetes version and architecture.
    "aws:ssm/getParameter:getParameter": {"value": "offline-ami-release", "type": "String"},
    # EksCluster's lookup of a control-plane log group a destroyed stack left behind (none offline).
    "aws:cloudwatch/getLogGroups:getLogGroups": {"logGroupNames": [], "arns": [], "id": "offline"},
    # EksCluster's list of the account's clusters, before it reads the running version (none offline: a first
    # deploy, so the per-cluster lookup aws:eks/getCluster:getCluster is never made and has no default).
    "aws:eks/getClusters:getClusters": {"names": [], "id": "offline"},
    # RdsPostgres's list of the instance it manages, before it reads the running engine version (none offline: a
    # first deploy, so the per-instance lookup aws:rds/getInstance:getInstance is never made and has no default).
    "aws:rds/getInstances:getInstances": {"instanceIdentifiers": [], "instanceArns": [], "id": "offline"},
    # EksCluster's lookup of the default version of an add-on for its Kubernetes version.
    "aws:eks/getAddonVersion:getAddonVersion": {"version": "offline-addon-version", "id": "offline"},
    # BackupStore's lookup of the R2 bucket-item permission group by name (its id as Cloudflare lists it).
    "cloudflare:index/getApiTokenPermissionGroupsList:getApiTokenPermissionGroupsList": {"results": [{
        "id": "2efd5506f9c8494dacb1fa10a3e7d5b6", "name": "Workers R2 Storage Bucket Item Write",
        "category": "developer_platform", "isSelectable": True, "scopes": ["com.cloudflare.edge.r2.bucket"]}]},
}


def mock_openssh_pair(name: str) -> dict[str, str]:
    """The OpenSSH outputs the mocks give the ``tls.PrivateKey`` ``name`` (a droplet's host key): deterministic and
    well-formed-looking, not a usable key."""
    digest = hashlib.sha256(name.encode()).digest()
    blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + digest).decode()
    return {
        "privateKeyOpenssh": (f"-----BEGIN OPENSSH PRIVATE KEY-----\n{digest.hex()}\n"
                              "-----END OPENSSH PRIVATE KEY-----\n"),
        "publicKeyOpenssh": f"ssh-ed25519 {blob}\n",
    }


def _fake_outputs(type_token: str, name: str, resource_id: str) -> dict[str, Any]:
    """Plausible computed outputs for the resources phasekit reads back (``preview=False`` only).

    The droplet host-key read step (``droplet_parts.install_host_key``) prints the key a droplet created with it
    presents: its generated key's public half (an older droplet's own key is an ``output_overrides`` case)."""
    from components.droplet_parts import HOST_KEY_INSTALL_SUFFIX, HOST_KEY_READ_SUFFIX, HOST_KEY_SUFFIX

    read_suffix = f"{HOST_KEY_INSTALL_SUFFIX}{HOST_KEY_READ_SUFFIX}"
    if type_token == "command:remote:Command" and name.endswith(read_suffix):
        key_name = name.removesuffix(read_suffix) + HOST_KEY_SUFFIX
        return {"stdout": mock_openssh_pair(key_name)["publicKeyOpenssh"].strip() + " root@droplet\n"}
    digest = hashlib.sha256(name.encode()).hexdigest()
    octet = int(digest[:2], 16) % 250 + 2
    table: dict[str, dict[str, Any]] = {
        "digitalocean:index/droplet:Droplet": {
            "ipv4Address": f"203.0.113.{octet}", "ipv4AddressPrivate": f"10.10.0.{octet}",
            "dropletUrn": f"do:droplet:{resource_id}"},
        "digitalocean:index/volume:Volume": {"volumeUrn": f"do:volume:{resource_id}"},
        "digitalocean:index/vpc:Vpc": {"ipRange": "10.10.0.0/20"},
        "digitalocean:index/loadBalancer:LoadBalancer": {
            "ip": f"192.0.2.{octet}", "loadBalancerUrn": f"do:loadbalancer:{resource_id}"},
        "digitalocean:index/reservedIp:ReservedIp": {
            "ipAddress": f"198.51.100.{octet}", "reservedIpUrn": f"do:reservedip:198.51.100.{octet}"},
        "random:index/randomPassword:RandomPassword": {"result": digest[:32]},
        "random:index/randomId:RandomId": {"hex": digest[:8]},
        "tls:index/privateKey:PrivateKey": {
            "privateKeyPem": f"-----BEGIN PRIVATE KEY-----\n{digest}\n-----END PRIVATE KEY-----\n",
            **mock_openssh_pair(name)},
        "tls:index/certRequest:CertRequest": {
            "certRequestPem": f"-----BEGIN CERTIFICATE REQUEST-----\n{digest}\n-----END CERTIFICATE REQUEST-----\n"},
        "cloudflare:index/apiToken:ApiToken": {"value": f"offline-token-{digest[:32]}"},
        "cloudflare:index/originCaCertificate:OriginCaCertificate": {
            "certificate": f"-----BEGIN CERTIFICATE-----\n{digest}\n-----END CERTIFICATE-----\n",
            "expiresOn": "2041-01-01T00:00:00Z"},
        "aws:lb/loadBalancer:LoadBalancer": {
            "dnsName": f"{name}-{resource_id}.us-east-1.elb.amazonaws.com", "zoneId": "Z35SXDOTRQ7X7K",
            "arn": f"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/{name}/{digest[:16]}",
            "arnSuffix": f"app/{name}/{digest[:16]}"},
        "aws:lb/targetGroup:TargetGroup": {
            "arn": f"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/{digest[:16]}",
            "arnSuffix": f"targetgroup/{name}/{digest[:16]}"},
        "aws:acm/certificate:Certificate": {
            "arn": f"arn:aws:acm:us-east-1:123456789012:certificate/{digest[:8]}-{digest[8:12]}-{digest[12:16]}"
                   f"-{digest[16:20]}-{digest[20:32]}"},
        # pulumi-kubernetes auto-names a Secret without metadata.name as "<logical name>-<8 random chars>"; only
        # the name is faked (this replaces the whole metadata output, which nothing reads beyond the name).
        "kubernetes:core/v1:Secret": {"metadata": {"name": f"{name}-{digest[:8]}"}},
        # Auto-named AWS resources get "<logical name>-<7 random hex>"; the mock provider skips that step.
        "aws:rds/parameterGroup:ParameterGroup": {"name": f"{name}-{digest[:7]}"},
        "aws:rds/instance:Instance": {
            "address": f"{name}.c{digest[:11]}.us-east-1.rds.amazonaws.com", "port": 5432,
            "endpoint": f"{name}.c{digest[:11]}.us-east-1.rds.amazonaws.com:5432",
            "arn": f"arn:aws:rds:us-east-1:123456789012:db:{name}",
            # RDS's own secret for the master user (manage_master_user_password), named "rds!db-<uuid>".
            "masterUserSecrets": [{
                "secretArn": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-{digest[:8]}-"
                             f"{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}-{digest[32:38]}",
                "secretStatus": "active", "kmsKeyId": ""}]},
        "aws:elasticache/parameterGroup:ParameterGroup": {"name": f"{name}-{digest[:7]}"},
        "aws:elasticache/replicationGroup:ReplicationGroup": {
            "primaryEndpointAddress": f"master.{name}.{digest[:6]}.use1.cache.amazonaws.com",
            "readerEndpointAddress": f"replica.{name}.{digest[:6]}.use1.cache.amazonaws.com",
            "arn": f"arn:aws:elasticache:us-east-1:123456789012:replicationgroup:{name}"},
        "aws:sns/topic:Topic": {"arn": f"arn:aws:sns:us-east-1:123456789012:{name}-{digest[:7]}"},
        # AwsNetwork / EksCluster reads (auto-named ones get "<logical name>-<7 hex>", as above).
        "aws:ec2/vpc:Vpc": {
            "arn": f"arn:aws:ec2:us-east-1:123456789012:vpc/vpc-{digest[:17]}", "ownerId": "123456789012"},
        "aws:cloudwatch/logGroup:LogGroup": {
            "arn": f"arn:aws:logs:us-east-1:123456789012:log-group:{name}-{digest[:7]}"},
        "aws:iam/role:Role": {
            "arn": f"arn:aws:iam::123456789012:role/{name}-{digest[:7]}", "name": f"{name}-{digest[:7]}"},
        "aws:rds/subnetGroup:SubnetGroup": {"name": f"{name}-{digest[:7]}"},
        "aws:s3/bucket:Bucket": {"bucket": f"{name}-{digest[:7]}", "arn": f"arn:aws:s3:::{name}-{digest[:7]}"},
        "aws:elasticache/subnetGroup:SubnetGroup": {"name": f"{name}-{digest[:7]}"},
        "aws:kms/key:Key": {
            "arn": f"arn:aws:kms:us-east-1:123456789012:key/{digest[:8]}-{digest[8:12]}-{digest[12:16]}"
                   f"-{digest[16:20]}-{digest[20:32]}",
            "keyId": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"},
        # Replaces the cluster's whole vpcConfig output (only clusterSecurityGroupId is read back).
        "aws:eks/cluster:Cluster": {
            "arn": f"arn:aws:eks:us-east-1:123456789012:cluster/{name}",
            "endpoint": f"https://{digest[:32].upper()}.gr7.us-east-1.eks.amazonaws.com",
            "certificateAuthority": {"data": digest},
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.us-east-1.amazonaws.com/id/{digest[:32].upper()}"}]}],
            "vpcConfig": {"clusterSecurityGroupId": f"sg-{digest[:17]}"}},
        "aws:eks/nodeGroup:NodeGroup": {
            "arn": f"arn:aws:eks:us-east-1:123456789012:nodegroup/{name}",
            "resources": [{"autoscalingGroups": [{"name": f"eks-{name}-{digest[:8]}"}]}]},
        "aws:ec2/launchTemplate:LaunchTemplate": {"latestVersion": 1},
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider": {
            "arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/"
                   f"{digest[:32].upper()}"},
    }
    return table.get(type_token, {})


@dataclass(frozen=True)
class RecordedResource:
    urn: str
    id: str | None
    """The mock id (None in preview, where creates have no id yet)."""

    type: str
    name: str
    parent: str | None
    """Parent URN; None for children of the stack."""

    inputs: dict[str, Any]
    """Inputs as the provider would receive them (camelCase keys), secrets unwrapped."""

    secret_inputs: frozenset[str]
    """Top-level input keys whose value is, or contains, a secret."""

    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    ignore_changes: tuple[str, ...]
    dependencies: tuple[str, ...]
    custom: bool
    provider: str | None = None
    """The provider reference the engine was asked to use (``"<provider urn>::<provider id>"``), whether
    passed as ``provider=`` or inherited from a parent's ``providers``; None for the default provider."""

    property_dependencies: dict[str, tuple[str, ...]] | None = None
    """For each top-level input, the URNs of the resources its value came from (the engine's
    ``propertyDependencies``); ``phasekit.change_risk`` uses it to tell which inputs a replaced dependency feeds.
    None when not recorded (hand-built records)."""

    import_id: str | None = None
    """The ``import_`` resource option: the id of an existing resource the engine adopts instead of creating."""


@dataclass(frozen=True)
class RecordedInvoke:
    token: str
    """The invoke's type token, e.g. ``aws:eks/getCluster:getCluster``."""

    args: dict[str, Any]
    """Its arguments as the provider would receive them (camelCase keys)."""


@dataclass(frozen=True)
class RecordedLog:
    severity: str
    """``info``, ``warning`` or ``error`` (debug lines are not recorded)."""

    message: str
    urn: str | None
    """The resource the message is attached to (``pulumi.log.warn(..., resource=...)``); None for none."""


@dataclass
class Recording:
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    """Stack exports, resolved; unknown ones are ``UNKNOWN_MASK``."""

    secret_outputs: frozenset[str] = frozenset()
    invokes: list[RecordedInvoke] = field(default_factory=list)
    """Every provider function the program called (data sources: ``aws.eks.get_cluster`` ...), in call order."""

    logs: list[RecordedLog] = field(default_factory=list)
    """What the program logged through ``pulumi.log`` (what ``pulumi preview``/``up`` print), in order."""

    def invoked(self, token: str) -> list[dict[str, Any]]:
        """The arguments of every call of the invoke ``token``; empty when it was never called."""
        return [invoke.args for invoke in self.invokes if invoke.token == token]

    def warnings(self) -> list[RecordedLog]:
        return [log for log in self.logs if log.severity == "warning"]

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [resource for resource in self.resources if resource.type == type_token]

    def one(self, type_token: str) -> RecordedResource:
        found = self.of_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected exactly one {type_token}, found {len(found)}")
        return found[0]

    def named(self, name: str) -> RecordedResource:
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise AssertionError(f"no resource named {name!r}")

    def children_of(self, urn: str) -> list[RecordedResource]:
        return [resource for resource in self.resources if resource.parent == urn]

    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            counts[resource.type] = counts.get(resource.type, 0) + 1
        return counts


OutputOverrides = Callable[[str, str, Mapping[str, Any]], Mapping[str, Any]]
"""``(type token, logical name, inputs) -> outputs`` laid over ``_fake_outputs``' (``preview=False`` only): how
``phasekit.render`` puts generated local secrets (passwords, a self-signed origin certificate) where the fixed
fake values would otherwise be."""


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, preview: bool, invoke_results: Mapping[str, dict] | None = None,
                 output_overrides: OutputOverrides | None = None) -> None:
        self.preview = preview
        self.invoke_results = dict(INVOKE_RESULTS if invoke_results is None else invoke_results)
        self.output_overrides = output_overrides
        self.invokes: list[RecordedInvoke] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        resource_id = str(int(hashlib.sha256(f"{args.typ}::{args.name}".encode()).hexdigest()[:8], 16))
        if self.preview:
            # A create in preview has no id and no computed outputs yet.
            return None, dict(args.inputs)
        outputs = {**args.inputs, **_fake_outputs(args.typ, args.name, resource_id)}
        if self.output_overrides is not None:
            outputs.update(self.output_overrides(args.typ, args.name, args.inputs))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.invokes.append(RecordedInvoke(token=args.token, args=dict(args.args)))
        if args.token not in self.invoke_results:
            raise AssertionError(f"the offline harness has no result for invoke {args.token}")
        return self.invoke_results[args.token]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def RegisterResource(self, request: Any) -> Any:
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        # Mirrors MockMonitor.RegisterResource, plus what the engine does and the mock does not: outputs a
        # provider declares secret (``additionalSecretOutputs``, e.g. RandomPassword.result) come back secret.
        _ensure_event_loop()
        urn = self.make_urn(request.parent, request.type, request.name)
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        resource_id, state = self.mocks.new_resource(pulumi.runtime.MockResourceArgs(
            typ=request.type, name=request.name, inputs=rpc.deserialize_properties(request.object),
            provider=request.provider, resource_id=request.importId, custom=request.custom or False,
        ))
        secret_outputs = set(request.additionalSecretOutputs)
        state = {key: _as_secret(value) if key in secret_outputs else value for key, value in state.items()}
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        self.recorded.append(_record(request, urn, resource_id, inputs))
        return resource_pb2.RegisterResourceResponse(
            urn=urn, id=resource_id, object=_sync_await(rpc.serialize_properties(state, {})))


_SEVERITIES = {engine_pb2.INFO: "info", engine_pb2.WARNING: "warning", engine_pb2.ERROR: "error"}
"""What is recorded: the SDK's own debug lines (one per registration) are left to ``logging`` alone."""


class RecordingEngine(pulumi_mocks.MockEngine):
    """The mock engine, which only hands log messages to Python's ``logging``, plus a record of each with its
    severity and the URN it is attached to (the part ``pulumi preview`` shows under that resource)."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("phasekit.testing"))
        self.logs: list[RecordedLog] = []

    def Log(self, request: Any) -> None:
        if request.severity in _SEVERITIES:
            self.logs.append(RecordedLog(severity=_SEVERITIES[request.severity], message=request.message,
                                         urn=request.urn or None))
        super().Log(request)


def _record(request: Any, urn: str, resource_id: str | None, inputs: dict[str, Any]) -> RecordedResource:
    plain, secret_keys = {}, set()
    for key, value in inputs.items():
        plain[key], is_secret = _unwrap_secrets(value)
        if is_secret:
            secret_keys.add(key)
    return RecordedResource(
        urn=urn,
        id=resource_id or None,
        type=request.type,
        name=request.name,
        parent=None if _is_stack(request.parent) else request.parent,
        inputs=plain,
        secret_inputs=frozenset(secret_keys),
        protect=bool(request.protect),
        retain_on_delete=bool(request.retainOnDelete),
        delete_before_replace=bool(request.deleteBeforeReplace),
        ignore_changes=tuple(request.ignoreChanges),
        dependencies=tuple(request.dependencies),
        custom=bool(request.custom),
        provider=request.provider or None,
        property_dependencies={key: tuple(value.urns) for key, value in request.propertyDependencies.items()},
        import_id=request.importId or None,
    )


def _as_secret(value: Any) -> dict[str, Any]:
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def _is_stack(urn: str) -> bool:
    return not urn or urn.split("::")[2] == "pulumi:pulumi:Stack"


def _unwrap_secrets(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        inner, _ = _unwrap_secrets(value.get("value"))
        return inner, True
    if isinstance(value, dict):
        pairs = {key: _unwrap_secrets(item) for key, item in value.items()}
        return {key: pair[0] for key, pair in pairs.items()}, any(pair[1] for pair in pairs.values())
    if isinstance(value, list):
        pairs_list = [_unwrap_secrets(item) for item in value]
        return [pair[0] for pair in pairs_list], any(pair[1] for pair in pairs_list)
    return value, False


def run_recorded(program: Callable[[], None], *, preview: bool = False, project: str = "phasekit",
                 stack: str = "test", config: Mapping[str, str] | None = None,
                 secret_keys: list[str] | None = None,
                 invoke_results: Mapping[str, dict] | None = None,
                 output_overrides: OutputOverrides | None = None) -> Recording:
    """Run ``program`` under a fresh recording monitor and return everything it registered.

    ``config`` is the runtime form of stack config (``{"phasekit:app": "<json>", ...}``) that
    ``pulumi.Config`` reads; ``secret_keys`` marks which of its keys are secrets. ``output_overrides``
    (``preview=False`` only) replaces chosen computed outputs (see ``OutputOverrides``).
    """
    mocks = RecordingMocks(preview, invoke_results, output_overrides)
    monitor = RecordingMonitor(mocks)
    # A new root stack per run: set_mocks reuses an existing one, whose exports would leak across runs.
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys or []))
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    settings = pulumi.runtime.settings.SETTINGS
    # set_mocks builds a MockEngine that keeps no record; pulumi.log reads the engine from these settings.
    engine = RecordingEngine()
    settings.engine = engine
    settings.rpc_manager.clear()
    settings.outputs.clear()

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    def run() -> None:
        program()
        root = pulumi.runtime.get_root_resource()
        exported = dict(getattr(root, "outputs", {}) or {})
        for name, value in exported.items():
            resolved, known, secret = _resolve(value)
            outputs[name] = resolved if known else UNKNOWN_MASK
            if secret:
                secret_outputs.add(name)

    # The same runner (and private helpers) the SDK's own @pulumi.runtime.test decorator uses.
    _sync_await(run_pulumi_func(run))
    return Recording(resources=list(monitor.recorded), outputs=outputs, secret_outputs=frozenset(secret_outputs),
                     invokes=list(mocks.invokes), logs=list(engine.logs))


def _resolve(value: Any) -> tuple[Any, bool, bool]:
    output = pulumi.Output.from_input(value)
    known = _sync_await(output.is_known())
    secret = _sync_await(output.is_secret())
    resolved = _sync_await(output.future()) if known else None
    return resolved, known, secret

