"""phasekit's guardrails as pure Python: what every stack must keep true, whatever its config.

Each rule looks at a neutral view of resources (``ResourceView``: type token, name, URN, the input
properties under Pulumi's camelCase wire names, the ``protect`` option, the parent URN) and returns
violation messages. Two adapters feed it: ``phasekit.guardrails`` from the offline plan's recording, and
``policy/__main__.py`` from what the Pulumi engine sends a CrossGuard policy pack. This module imports
neither Pulumi nor the rest of phasekit, because the Pulumi CLI runs the pack from this directory in
its own virtualenv.

Unknown values: during a preview, computed values (ids, addresses, ARNs) are not known yet. Adapters
turn them into ``UNKNOWN``, and every rule treats a value it cannot see as "cannot tell", never as a
violation. CrossGuard itself would turn a read of an unknown value into an advisory "can't run policy
during preview" note for the whole policy; reading through the adapter keeps the rest of the checks
running.

Enforcement: a mandatory rule fails ``phasekit plan`` (exit 3) and blocks ``pulumi preview``/``up`` with the
pack; an advisory one is reported only. Every rule but ``images-pinned-by-digest`` is mandatory: phasekit's
own stacks satisfy all of them, so a violation means a hand edit or a bug. An image pinned by tag only is a
choice a stack may make (the config accepts it), so that rule warns. An operator who must ship a fix past an
availability rule (probes, HPA floor, disruption budgets) lowers that one rule with a ``--policy-pack-config``
file, which ``phasekit plan --policy-pack-config`` reads too; the lowering is then written down in the repo.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Enforcement = Literal["mandatory", "advisory"]


class _Unknown:
    """A value the engine computes later (known after apply)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

# --- Resource types ---------------------------------------------------------------------------------

DO_DROPLET = "digitalocean:index/droplet:Droplet"
DO_FIREWALL = "digitalocean:index/firewall:Firewall"
DO_VOLUME = "digitalocean:index/volume:Volume"
R2_BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
RDS_INSTANCE = "aws:rds/instance:Instance"
ELASTICACHE_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
K8S_PVC = "kubernetes:core/v1:PersistentVolumeClaim"
K8S_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
K8S_JOB = "kubernetes:batch/v1:Job"
K8S_PDB = "kubernetes:policy/v1:PodDisruptionBudget"
K8S_HPAS = frozenset({
    "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
})
SPLIT_VPS = "phasekit:index:SplitVps"

POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    K8S_DEPLOYMENT: ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    K8S_JOB: ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
"""Workloads whose pods the security-context rule checks, and where their pod spec sits."""

DATA_PORTS: Mapping[int, str] = {5432: "PostgreSQL", 6432: "PgBouncer", 6379: "Redis"}
"""The data stores phasekit runs, by port: never reachable from an address, only from the app tier."""

SSH_PORT = 22
MIN_RDS_BACKUP_DAYS = 7
MIN_CACHE_SNAPSHOT_DAYS = 1
MIN_HPA_REPLICAS = 2
IMDS_HOP_LIMIT = 1


@dataclass(frozen=True)
class ResourceView:
    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    """Input properties, camelCase wire names; computed values are ``UNKNOWN``."""

    protect: bool = False
    parent: str | None = None
    """The parent's URN; None for a child of the stack."""


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    enforcement: Enforcement
    resource_types: frozenset[str]
    check: Callable[[ResourceView], list[str]]

    def violations(self, resource: ResourceView) -> list[str]:
        return self.check(resource) if resource.type in self.resource_types else []


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    enforcement: Enforcement
    resource_types: frozenset[str]
    """The types the rule reads; ``check`` sees the stack's resources of these types only."""

    check: Callable[[Sequence[ResourceView]], list[tuple[ResourceView, str]]]

    def violations(self, resources: Sequence[ResourceView]) -> list[tuple[ResourceView, str]]:
        return self.check([resource for resource in resources if resource.type in self.resource_types])


Rule = ResourceRule | StackRule

# --- Reading values ---------------------------------------------------------------------------------


def lookup(value: Any, *path: str | int) -> Any:
    """The value at ``path``; ``UNKNOWN`` when it or anything on the way is unknown; None when absent."""
    for key in path:
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(key, int):
            if not _is_list(value) or not -len(value) <= key < len(value):
                return None
            value = value[key]
        elif isinstance(value, Mapping):
            value = value.get(key)
        else:
            return None
    return value


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _is_true(value: Any) -> bool:
    # Some AWS types are strings on the wire (a launch template's ``ebs.encrypted`` is "true").
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _show(value: Any) -> str:
    if value is UNKNOWN:
        return "(unknown)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    """The known entries of a list of objects (an unknown list or entry: nothing to judge)."""
    if not _is_list(value):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _is_world(cidr: Any) -> bool:
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def _type_chain(urn: str) -> list[str]:
    """``urn:pulumi:<stack>::<project>::<parent types $ type>::<name>`` -> the types, outermost first."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


# --- Ports ------------------------------------------------------------------------------------------

PortSpan = tuple[int, int]
ALL_PORTS: PortSpan = (0, 65535)


def _covered(span: PortSpan, ports: Sequence[int]) -> list[int]:
    return [port for port in ports if span[0] <= port <= span[1]]


def _do_port_span(rule: Mapping[str, Any]) -> PortSpan | _Unknown | None:
    """TCP ports a DigitalOcean firewall rule admits; None for other protocols or a malformed range."""
    protocol, port_range = rule.get("protocol"), rule.get("portRange")
    if protocol is UNKNOWN or port_range is UNKNOWN:
        return UNKNOWN
    if protocol != "tcp":
        return None
    if port_range in (None, "", "all"):
        return ALL_PORTS
    low, _, high = str(port_range).partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        return None


def _aws_port_span(protocol: Any, from_port: Any, to_port: Any) -> PortSpan | _Unknown | None:
    """TCP ports an AWS security group rule admits; None for UDP, ICMP and the like."""
    if any(value is UNKNOWN for value in (protocol, from_port, to_port)):
        return UNKNOWN
    if str(protocol).lower() in ("-1", "all"):
        return ALL_PORTS
    if str(protocol).lower() not in ("tcp", "6"):
        return None
    low, high = _number(from_port), _number(to_port)
    if low is None or high is None:
        return ALL_PORTS
    return int(low), int(high)


@dataclass(frozen=True)
class _Ingress:
    label: str
    span: PortSpan
    sources: list[Any]
    """Address sources (CIDRs, prefix lists); their elements may be ``UNKNOWN``."""


def _do_ingress(firewall: ResourceView) -> list[_Ingress]:
    found = []
    for rule in _mappings(firewall.props.get("inboundRules")):
        span = _do_port_span(rule)
        addresses = rule.get("sourceAddresses")
        if not isinstance(span, tuple) or addresses is UNKNOWN:
            continue
        port_range = rule.get("portRange") or "all"
        found.append(_Ingress(f"inbound tcp {port_range}", span, list(addresses) if _is_list(addresses) else []))
    return found


def _aws_label(protocol: Any, span: PortSpan) -> str:
    if str(protocol).lower() in ("-1", "all"):
        return "ingress all traffic"
    return f"ingress tcp {span[0]}" if span[0] == span[1] else f"ingress tcp {span[0]}-{span[1]}"


def _aws_ingress(resource: ResourceView) -> list[_Ingress]:
    props = resource.props
    if resource.type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        entries = [(entry, entry.get("protocol"), ("cidrBlocks", "ipv6CidrBlocks", "prefixListIds"))
                   for entry in _mappings(props.get("ingress"))]
    elif resource.type == SECURITY_GROUP_RULE:
        if props.get("type") != "ingress":
            return []
        entries = [(props, props.get("protocol"), ("cidrBlocks", "ipv6CidrBlocks", "prefixListIds"))]
    elif resource.type == SECURITY_GROUP_INGRESS_RULE:
        entries = [(props, props.get("ipProtocol"), ("cidrIpv4", "cidrIpv6", "prefixListId"))]
    else:
        return []
    found = []
    for entry, protocol, source_keys in entries:
        span = _aws_port_span(protocol, entry.get("fromPort"), entry.get("toPort"))
        values = [entry.get(key) for key in source_keys]
        if not isinstance(span, tuple) or any(value is UNKNOWN for value in values):
            continue
        sources: list[Any] = []
        for value in values:
            if _is_list(value):
                sources.extend(value)
            elif value is not None:
                sources.append(value)
        found.append(_Ingress(_aws_label(protocol, span), span, sources))
    return found


def _ingress(resource: ResourceView) -> list[_Ingress]:
    return _do_ingress(resource) if resource.type == DO_FIREWALL else _aws_ingress(resource)


# --- 1. No public database or cache -----------------------------------------------------------------


def _no_public_data_stores(resource: ResourceView) -> list[str]:
    props = resource.props
    if resource.type == RDS_INSTANCE:
        found = []
        if _is_true(props.get("publiclyAccessible")):
            found.append("publiclyAccessible is true: the instance gets a public address")
        if props.get("replicateSourceDb") is None and props.get("dbSubnetGroupName") is None:
            found.append("no dbSubnetGroupName: the instance would land in the default VPC, whose subnets are public")
        return found
    if resource.type == ELASTICACHE_GROUP:
        if props.get("subnetGroupName") is None:
            return ["no subnetGroupName: the cache would land in the default VPC, whose subnets are public"]
        return []
    found = []
    admit = ("admit the app tier by tag or droplet id only" if resource.type == DO_FIREWALL
             else "admit only the clients' security group")
    for ingress in _ingress(resource):
        stores = _covered(ingress.span, list(DATA_PORTS))
        if stores and ingress.sources:
            names = ", ".join(DATA_PORTS[port] for port in stores)
            sources = ", ".join(_show(source) for source in ingress.sources)
            found.append(f"{ingress.label} ({names}) admits addresses {sources}: {admit}")
    return found


# --- 2. Encryption ----------------------------------------------------------------------------------


def _not_true(props: Mapping[str, Any], key: str) -> bool:
    value = props.get(key)
    return value is not UNKNOWN and not _is_true(value)


def _data_encrypted(resource: ResourceView) -> list[str]:
    props = resource.props
    if resource.type == RDS_INSTANCE:
        return ["storageEncrypted is not true"] if _not_true(props, "storageEncrypted") else []
    if resource.type == ELASTICACHE_GROUP:
        return [f"{key} is not true" for key in ("atRestEncryptionEnabled", "transitEncryptionEnabled")
                if _not_true(props, key)]
    if resource.type == EKS_CLUSTER:
        return _eks_secrets_encrypted(props.get("encryptionConfig"))
    if resource.type == LAUNCH_TEMPLATE:
        return _launch_template_volumes_encrypted(props.get("blockDeviceMappings"))
    return []


def _eks_secrets_encrypted(config: Any) -> list[str]:
    if config is UNKNOWN:
        return []
    # One object in current pulumi-aws; a one-element list in older versions.
    if _is_list(config):
        config = lookup(config, 0)
    if not isinstance(config, Mapping):
        return ["no encryptionConfig: Kubernetes Secrets are not encrypted with a KMS key"]
    found = []
    resources = config.get("resources")
    if resources is not UNKNOWN and not (_is_list(resources) and "secrets" in resources):
        found.append("encryptionConfig does not cover secrets")
    if lookup(config, "provider", "keyArn") is None:
        found.append("encryptionConfig names no KMS key (provider.keyArn)")
    return found


def _launch_template_volumes_encrypted(mappings: Any) -> list[str]:
    if mappings is UNKNOWN:
        return []
    if not _is_list(mappings) or not mappings:
        return ["no blockDeviceMappings: the root volume follows the AMI's snapshot, unencrypted unless the "
                "account encrypts EBS by default"]
    found = []
    for index, mapping in enumerate(mappings):
        ebs = lookup(mapping, "ebs")
        if not isinstance(ebs, Mapping):  # unknown, or an instance-store (ephemeral) mapping
            continue
        if _not_true(ebs, "encrypted"):
            device = _show(lookup(mapping, "deviceName"))
            found.append(f"blockDeviceMappings[{index}] ({device}): ebs.encrypted is not true")
    return found


# --- 3. Stateful resources protected ----------------------------------------------------------------


def _volume_attached(droplet: ResourceView) -> bool:
    volume_ids = droplet.props.get("volumeIds")
    return _is_list(volume_ids) and len(volume_ids) > 0


def _is_database_droplet(resource: ResourceView) -> bool:
    """Phase 2's database droplet: it holds the data volume and the nightly dumps. Phase 1's droplet also
    has the volume attached but is not stateful by design: a replacement deletes it first and attaches
    the same (protected) volume to the new one."""
    return (resource.type == DO_DROPLET and SPLIT_VPS in _type_chain(resource.urn)[:-1]
            and _volume_attached(resource))


# What each stateful resource holds: the one definition of "stateful" that this rule and `phasekit risk`
# (phasekit/change_risk.py) share. By type, never by `protect`: a stack may turn protection off.
DATA_HELD: Mapping[str, str] = {
    DO_VOLUME: "PostgreSQL's data and Redis' persistence (phases 1 and 2)",
    RDS_INSTANCE: "the PostgreSQL database (phase 3)",
    ELASTICACHE_GROUP: "Redis data (phase 3)",
    K8S_PVC: "a persistent volume's data",
    R2_BUCKET: "user-uploaded media",
}
DATABASE_DROPLET_HOLDS = "the database host's droplet backups"
BACKUPS_BUCKET_HOLDS = "the database's off-site backups and WAL archive (the copies a restore starts from)"


def data_held(resource: ResourceView) -> str | None:
    """What data a replace or delete of ``resource`` would destroy, or None for a stateless resource."""
    if resource.type == DO_DROPLET:
        return DATABASE_DROPLET_HOLDS if _is_database_droplet(resource) else None
    # The stack's backups bucket is named <project>-<stack>-backups (infra.backups), the media bucket -media.
    if resource.type == R2_BUCKET and str(resource.props.get("name", "")).endswith("-backups"):
        return BACKUPS_BUCKET_HOLDS
    return DATA_HELD.get(resource.type)


def _stateful_protected(resource: ResourceView) -> list[str]:
    if data_held(resource) is None:
        return []
    if resource.protect:
        return []
    return ["protect is off: a delete or replace would destroy its data (phasekit:protect: true sets it)"]


# --- 4. Backups and retention -----------------------------------------------------------------------


def _minimum(props: Mapping[str, Any], key: str, minimum: int, what: str) -> list[str]:
    value = props.get(key)
    if value is UNKNOWN:
        return []
    number = _number(value)
    if number is None or number < minimum:
        shown = "not set" if value is None else _show(value)
        return [f"{key} is {shown}; keep at least {minimum} {what}"]
    return []


def _backups_kept(resource: ResourceView) -> list[str]:
    props = resource.props
    if resource.type == DO_DROPLET:
        backups = props.get("backups")
        if _volume_attached(resource) and backups is not UNKNOWN and not _is_true(backups):
            return ["a data volume is attached but backups is not true: the nightly pg_dump on the root disk would "
                    "have no copy"]
        return []
    if resource.type == RDS_INSTANCE:
        found = []
        primary = props.get("replicateSourceDb") is None
        if primary:
            found += _minimum(props, "backupRetentionPeriod", MIN_RDS_BACKUP_DAYS, "days of backups")
        if _not_true(props, "deletionProtection"):
            found.append("deletionProtection is not true")
        # RDS refuses a final snapshot of a read replica; the primary's holds the same data.
        if primary and _is_true(props.get("skipFinalSnapshot")):
            found.append("skipFinalSnapshot is true: a delete would keep no final snapshot")
        return found
    if resource.type == ELASTICACHE_GROUP:
        return _minimum(props, "snapshotRetentionLimit", MIN_CACHE_SNAPSHOT_DAYS, "day of snapshots")
    return []


# --- 5. SSH not open to the world -------------------------------------------------------------------


def _ssh_not_open_to_world(resource: ResourceView) -> list[str]:
    found = []
    for ingress in _ingress(resource):
        world = [source for source in ingress.sources if _is_world(source)]
        if _covered(ingress.span, [SSH_PORT]) and world:
            found.append(f"{ingress.label} (SSH) admits {', '.join(world)}: allow only admin networks")
    return found


# --- 6. Kubernetes API not open to the world --------------------------------------------------------


def _kubernetes_api_not_public(resource: ResourceView) -> list[str]:
    vpc = resource.props.get("vpcConfig")
    # One object in current pulumi-aws; a one-element list in older versions (as encryptionConfig).
    if _is_list(vpc):
        vpc = lookup(vpc, 0)
    # Unknown, or absent (EKS requires vpcConfig, so the provider refuses the cluster): nothing to judge.
    if not isinstance(vpc, Mapping):
        return []
    public = vpc.get("endpointPublicAccess")
    # AWS's default is a public endpoint.
    if public is UNKNOWN or _is_false(public):
        return []
    cidrs = vpc.get("publicAccessCidrs")
    if cidrs is UNKNOWN:
        return []
    if not _is_list(cidrs) or not cidrs:
        return ["the public endpoint lists no publicAccessCidrs: AWS opens it to 0.0.0.0/0"]
    world = [cidr for cidr in cidrs if _is_world(cidr)]
    return [f"the public endpoint admits {', '.join(world)}"] if world else []


# --- 7. IMDSv2 on the nodes -------------------------------------------------------------------------


def _imdsv2_required(resource: ResourceView) -> list[str]:
    options = resource.props.get("metadataOptions")
    if options is UNKNOWN:
        return []
    if not isinstance(options, Mapping):
        return ["no metadataOptions: instances accept IMDSv1 and pods may reach the node role's credentials"]
    if options.get("httpEndpoint") == "disabled":
        return []
    found = []
    tokens = options.get("httpTokens")
    if tokens is not UNKNOWN and tokens != "required":
        found.append(f"metadataOptions.httpTokens is {_show(tokens) if tokens is not None else 'not set'}, "
                     "not required: IMDSv1 answers any request on the node")
    hops = options.get("httpPutResponseHopLimit")
    if hops is not UNKNOWN and _number(hops) != IMDS_HOP_LIMIT:
        found.append(f"metadataOptions.httpPutResponseHopLimit is {_show(hops) if hops is not None else 'not set'}"
                     f": pods can reach the node role's credentials; set {IMDS_HOP_LIMIT}")
    return found


# --- 8. Pod security context ------------------------------------------------------------------------


def _containers(pod_spec: Any, keys: Sequence[str]) -> list[Mapping[str, Any]]:
    return [container for key in keys for container in _mappings(lookup(pod_spec, key))]


def _effective(container_context: Any, pod_context: Any, key: str) -> Any:
    """A container's setting, or the pod's when the container leaves it unset (Kubernetes' precedence)."""
    if container_context is UNKNOWN:
        return UNKNOWN
    if isinstance(container_context, Mapping) and container_context.get(key) is not None:
        return container_context[key]
    return lookup(pod_context, key)


def _pods_restricted(resource: ResourceView) -> list[str]:
    pod_spec = lookup(resource.props, *POD_SPEC_PATHS[resource.type])
    if not isinstance(pod_spec, Mapping):
        return []
    pod_context = pod_spec.get("securityContext")
    found = []
    for container in _containers(pod_spec, ("initContainers", "containers")):
        name = _show(container.get("name"))
        context = container.get("securityContext")
        non_root = _effective(context, pod_context, "runAsNonRoot")
        if non_root is not UNKNOWN and not _is_true(non_root):
            found.append(f"container {name}: runAsNonRoot is not true")
        escalation = lookup(context, "allowPrivilegeEscalation")
        if escalation is not UNKNOWN and not _is_false(escalation):
            found.append(f"container {name}: allowPrivilegeEscalation is not false")
        drop = lookup(context, "capabilities", "drop")
        if drop is not UNKNOWN and not (_is_list(drop) and ("ALL" in drop or UNKNOWN in drop)):
            found.append(f"container {name}: capabilities.drop does not include ALL")
        read_only = lookup(context, "readOnlyRootFilesystem")
        if read_only is not UNKNOWN and not _is_true(read_only):
            found.append(f"container {name}: readOnlyRootFilesystem is not true")
        seccomp = lookup(_effective(context, pod_context, "seccompProfile"), "type")
        if seccomp is not UNKNOWN and seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"container {name}: seccompProfile is not RuntimeDefault")
    return found


# --- 9. Probes --------------------------------------------------------------------------------------


def _probes(resource: ResourceView) -> list[str]:
    pod_spec = lookup(resource.props, *POD_SPEC_PATHS[K8S_DEPLOYMENT])
    found = []
    for container in _containers(pod_spec, ("containers",)):
        for probe in ("readinessProbe", "livenessProbe"):
            if container.get(probe) is None:
                found.append(f"container {_show(container.get('name'))} has no {probe}")
    return found


# --- 9b. Images pinned by digest (advisory) ----------------------------------------------------------


def _images_pinned(resource: ResourceView) -> list[str]:
    """A tag can be re-pushed: the Deployment's template does not change, so no pod rolls and no release Job
    (named after the image reference) runs the new image's migrations; nodes that already pulled the tag
    keep the old image. A digest names one image for good."""
    pod_spec = lookup(resource.props, *POD_SPEC_PATHS[resource.type])
    if not isinstance(pod_spec, Mapping):
        return []
    found = []
    for container in _containers(pod_spec, ("initContainers", "containers")):
        image = container.get("image")
        if isinstance(image, str) and "@sha256:" not in image:
            found.append(f"container {_show(container.get('name'))}: image {image!r} is not pinned by digest: a "
                         "re-pushed tag rolls no pod and runs no release Job; use <image>@sha256:<digest>")
    return found


# --- 10. HPA floor ----------------------------------------------------------------------------------


def _hpa_min_replicas(resource: ResourceView) -> list[str]:
    spec = resource.props.get("spec")
    if spec is UNKNOWN:
        return []
    return _minimum(spec if isinstance(spec, Mapping) else {}, "minReplicas", MIN_HPA_REPLICAS,
                    "replicas so a restarting pod leaves the app serving")


# --- 11. Every Deployment has a PodDisruptionBudget (stack) -----------------------------------------

Verdict = bool | _Unknown


def _label_matches(labels: Mapping[str, Any], key: Any, expected: Any) -> Verdict:
    if key is UNKNOWN or expected is UNKNOWN or labels.get(key) is UNKNOWN:
        return UNKNOWN
    return key in labels and labels[key] == expected


def _expression_matches(labels: Mapping[str, Any], expression: Mapping[str, Any]) -> Verdict:
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values")
    if UNKNOWN in (key, operator, values) or labels.get(key) is UNKNOWN:
        return UNKNOWN
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    values = list(values) if _is_list(values) else []
    if UNKNOWN in values:
        return UNKNOWN
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    return False


def _selects(selector: Any, labels: Mapping[str, Any]) -> Verdict:
    """Whether a policy/v1 label selector selects pods with ``labels`` (null selects none, {} selects all)."""
    if selector is UNKNOWN:
        return UNKNOWN
    if not isinstance(selector, Mapping):
        return False
    match_labels, expressions = selector.get("matchLabels"), selector.get("matchExpressions")
    if match_labels is UNKNOWN or expressions is UNKNOWN:
        return UNKNOWN
    verdicts: list[Verdict] = []
    if isinstance(match_labels, Mapping):
        verdicts += [_label_matches(labels, key, value) for key, value in match_labels.items()]
    verdicts += [_expression_matches(labels, expression) if isinstance(expression, Mapping) else UNKNOWN
                 for expression in (expressions if _is_list(expressions) else [])]
    if False in verdicts:
        return False
    return UNKNOWN if UNKNOWN in verdicts else True


def _namespace(resource: ResourceView) -> Any:
    namespace = lookup(resource.props, "metadata", "namespace")
    return "default" if namespace is None else namespace


def _budget_selects(budget: ResourceView, namespace: str, labels: Mapping[str, Any]) -> Verdict:
    budget_namespace = _namespace(budget)
    if budget_namespace is UNKNOWN:
        return UNKNOWN
    return budget_namespace == namespace and _selects(lookup(budget.props, "spec", "selector"), labels)


def _deployments_have_pdb(resources: Sequence[ResourceView]) -> list[tuple[ResourceView, str]]:
    budgets = [resource for resource in resources if resource.type == K8S_PDB]
    found = []
    for deployment in (resource for resource in resources if resource.type == K8S_DEPLOYMENT):
        namespace = _namespace(deployment)
        labels = lookup(deployment.props, "spec", "template", "metadata", "labels")
        if namespace is UNKNOWN or labels is UNKNOWN:
            continue
        labels = labels if isinstance(labels, Mapping) else {}
        verdicts = [_budget_selects(budget, namespace, labels) for budget in budgets]
        if True in verdicts or UNKNOWN in verdicts:
            continue
        shown = ", ".join(f"{key}={_show(value)}" for key, value in sorted(labels.items())) or "no labels"
        found.append((deployment, f"no PodDisruptionBudget in namespace {namespace} selects its pods ({shown}): "
                                  "a node drain may evict every replica at once"))
    return found


# --- The rules --------------------------------------------------------------------------------------

FIREWALL_TYPES = frozenset({DO_FIREWALL, SECURITY_GROUP, DEFAULT_SECURITY_GROUP, SECURITY_GROUP_RULE,
                            SECURITY_GROUP_INGRESS_RULE})

RULES: tuple[Rule, ...] = (
    ResourceRule(
        name="no-public-data-stores",
        description="PostgreSQL, PgBouncer and Redis are never reachable from an address: firewalls and security "
                    "groups admit their ports only from tags, droplets or security groups, and RDS and "
                    "ElastiCache stay private.",
        enforcement="mandatory",
        resource_types=FIREWALL_TYPES | {RDS_INSTANCE, ELASTICACHE_GROUP},
        check=_no_public_data_stores,
    ),
    ResourceRule(
        name="data-encrypted",
        description="Data is encrypted: RDS storage, ElastiCache at rest and in transit, EKS Secrets with a KMS key, "
                    "and the node volumes.",
        enforcement="mandatory",
        resource_types=frozenset({RDS_INSTANCE, ELASTICACHE_GROUP, EKS_CLUSTER, LAUNCH_TEMPLATE}),
        check=_data_encrypted,
    ),
    ResourceRule(
        name="stateful-resources-protected",
        description="Resources holding data (volumes, the R2 bucket, RDS, ElastiCache, PVCs, the phase-2 database "
                    "droplet) are protected, so pulumi up stops before deleting or replacing them.",
        enforcement="mandatory",
        resource_types=frozenset({*DATA_HELD, DO_DROPLET}),
        check=_stateful_protected,
    ),
    ResourceRule(
        name="backups-kept",
        description="Data has backups: droplets holding a data volume are backed up, RDS keeps 7 days of backups, "
                    "deletion protection and a final snapshot, ElastiCache keeps daily snapshots.",
        enforcement="mandatory",
        resource_types=frozenset({DO_DROPLET, RDS_INSTANCE, ELASTICACHE_GROUP}),
        check=_backups_kept,
    ),
    ResourceRule(
        name="ssh-not-open-to-world",
        description="SSH (port 22) is never open to 0.0.0.0/0 or ::/0.",
        enforcement="mandatory",
        resource_types=FIREWALL_TYPES,
        check=_ssh_not_open_to_world,
    ),
    ResourceRule(
        name="kubernetes-api-not-public",
        description="The EKS API endpoint is either private or public only to listed networks, never to the "
                    "whole internet.",
        enforcement="mandatory",
        resource_types=frozenset({EKS_CLUSTER}),
        check=_kubernetes_api_not_public,
    ),
    ResourceRule(
        name="imdsv2-required",
        description="Nodes require IMDSv2 with a hop limit of 1, so pods cannot read the node role's credentials.",
        enforcement="mandatory",
        resource_types=frozenset({LAUNCH_TEMPLATE}),
        check=_imdsv2_required,
    ),
    ResourceRule(
        name="pods-restricted-security-context",
        description="Containers run as non-root, without privilege escalation, with every capability dropped, a "
                    "read-only root filesystem and the RuntimeDefault seccomp profile.",
        enforcement="mandatory",
        resource_types=frozenset(POD_SPEC_PATHS),
        check=_pods_restricted,
    ),
    ResourceRule(
        name="containers-have-probes",
        description="Every Deployment container has a readiness and a liveness probe.",
        enforcement="mandatory",
        resource_types=frozenset({K8S_DEPLOYMENT}),
        check=_probes,
    ),
    ResourceRule(
        name="images-pinned-by-digest",
        description="Container images are pinned by sha256 digest, not only by a tag that can be re-pushed.",
        enforcement="advisory",
        resource_types=frozenset(POD_SPEC_PATHS),
        check=_images_pinned,
    ),
    ResourceRule(
        name="hpa-min-replicas",
        description=f"Horizontal pod autoscalers keep at least {MIN_HPA_REPLICAS} replicas.",
        enforcement="mandatory",
        resource_types=K8S_HPAS,
        check=_hpa_min_replicas,
    ),
    StackRule(
        name="deployments-have-pdb",
        description="A PodDisruptionBudget in its namespace selects every Deployment's pods.",
        enforcement="mandatory",
        resource_types=frozenset({K8S_DEPLOYMENT, K8S_PDB}),
        check=_deployments_have_pdb,
    ),
)
