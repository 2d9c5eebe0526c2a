"""Closed sets and limits phase 3's components and the config model share.

Pure (no pulumi-aws import), so the config can validate against the same values the components use
without paying the AWS SDK's import time in phases 1 and 2.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum

RFC1918 = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
"""The ranges AWS accepts for a VPC's primary block (Python's ``is_private`` also admits others)."""

SECURITY_GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}")
"""An EC2 security group id: ``sg-`` and 8 (older groups) or 17 lowercase hex digits."""

SECURITY_GROUP_ID_ALLOWED = "'sg-' and 8 to 17 lowercase hex digits, e.g. sg-0123456789abcdef0"

WRITABLE_PATH_ALLOWED = ("an absolute directory path without '.' or '..' segments or a trailing '/', not '/' and "
                         "not in /proc, /sys or /dev (/dev/shm is fine), e.g. /var/cache/nginx")
_WRITABLE_PATH = re.compile(r"/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_RUNTIME_TREES = ("proc", "sys", "dev")
SHARED_MEMORY = "/dev/shm"
"""The one path in the runtime's trees an emptyDir may cover (memory-backed there)."""


def writable_path_allowed(path: str) -> bool:
    """Whether an emptyDir can be mounted at ``path`` in the app's containers (the read-only root's writable
    places). Refused beside malformed paths: ``.``/``..`` segments (the path names another directory than it
    reads), and the trees the container runtime mounts itself. runc refuses any mount inside /proc
    (opencontainers/runc libcontainer/rootfs_linux.go ``checkProcMount``: "cannot be mounted because it is inside
    /proc"), and an emptyDir over /dev or /sys hides the device nodes and sysfs the runtime put there, so the
    pod fails at start or at its first use of /dev/null; ``pulumi up`` would then wait out the Deployment's
    10-minute timeout. ``/dev/shm`` is the exception: the runtime's own tmpfs there is small (64 MiB), and a
    memory-backed emptyDir over it is the usual way to give a browser or a database more shared memory."""
    segments = path.split("/")[1:]
    return (_WRITABLE_PATH.fullmatch(path) is not None and not {".", ".."} & set(segments)
            and (segments[0] not in _RUNTIME_TREES or path == SHARED_MEMORY))


ALB_DEREGISTRATION_DELAY_SECONDS = 30
"""How long the ALB lets in-flight requests finish on a target leaving it (PublicLoadBalancer's target group), and
so how long a stopping web pod keeps serving after its preStop sleep (KubernetesApp): both ways out of the rotation
give a request the same time. Long enough for a web app's requests; short enough not to slow node rollouts."""

NODE_PORT_RANGE = (30000, 32767)
"""Kubernetes' default NodePort range: where the app Service listens on every node and the ALB forwards."""


class NatStrategy(StrEnum):
    SINGLE = "single"
    """One NAT gateway in the first AZ for all private subnets: cheapest, egress fails with that AZ."""

    PER_AZ = "per-az"
    """One NAT gateway per AZ, each private subnet using its own AZ's: survives an AZ loss."""


class CacheEngine(StrEnum):
    VALKEY = "valkey"
    REDIS = "redis"


class SupportType(StrEnum):
    """What EKS does when the cluster's Kubernetes version leaves standard support (``upgrade_policy``)."""

    STANDARD = "STANDARD"
    """AWS upgrades the cluster to the next minor version at the end of standard support: no extended-support
    charge ($0.10/hour stays), but an upgrade you did not schedule (and a version drift Pulumi then reports)."""

    EXTENDED = "EXTENDED"
    """The cluster stays on its version for up to 12 more months at $0.60/hour (six times the standard price)."""


class RdsLifecycleSupport(StrEnum):
    """RDS ``engine_lifecycle_support``: whether a PostgreSQL major past its RDS end of standard support keeps
    running (and billing) under RDS Extended Support."""

    DISABLED = "open-source-rds-extended-support-disabled"
    """AWS upgrades the major version at the end of standard support instead of billing Extended Support."""

    ENABLED = "open-source-rds-extended-support"
    """The provider's default: the instance stays on its major version and RDS Extended Support bills per
    vCPU-hour once standard support ends."""


KUBE_PROXY_VERSIONS = {
    "1.33": "v1.33.10-eksbuild.13",
    "1.34": "v1.34.6-eksbuild.13",
    "1.35": "v1.35.3-eksbuild.13",
    "1.36": "v1.36.0-eksbuild.14",
}
"""The ``kube-proxy`` add-on version for each Kubernetes minor phasekit deploys: kube-proxy must match the
control plane's minor, and an ``aws.eks.Addon`` without ``addon_version`` keeps the version it was created
with, so a cluster upgrade without this table leaves kube-proxy a minor behind (and the next upgrade two).
Source: the "kube-proxy versions" table of https://docs.aws.amazon.com/eks/latest/userguide/managing-kube-proxy.html
(latest Amazon EKS add-on type per Kubernetes version), read 2026-12-03. Refresh with
``aws eks describe-addon-versions --addon-name kube-proxy --kubernetes-version <minor>``."""


CLUSTER_AUTOSCALER_VERSIONS = {
    "1.33": "v1.33.6",
    "1.34": "v1.34.5",
    "1.35": "v1.35.2@sha256:aac369dc283927a623deb1af54696efcc722ae79255aa07788422e495bab887d",
    "1.36": "v1.36.1@sha256:461388d03eb5b55db58941ee7a81d9a619dd15302b01cbab9f5a9946715994b4",
}
"""The Cluster Autoscaler image (tag, and digest where resolved) for each Kubernetes minor phasekit deploys.
Upstream releases one autoscaler minor per Kubernetes minor and tests it only against that minor ("We strongly
recommend using Cluster Autoscaler with version for which it was meant", cluster-autoscaler/README.md
"Releases", https://github.com/kubernetes/autoscaler), so the image follows ``cluster.version``. Tags: the
newest patch of each minor, released 2026-07-23 (cluster-autoscaler-1.33.6, -1.34.5, -1.35.2, -1.36.1 on
https://github.com/kubernetes/autoscaler/releases). Digests: the multi-architecture manifest digests of
v1.35.2 and v1.36.1 as a public record resolved them on 2026-10-07; 1.33 and 1.34 are by tag only (no digest
could be resolved offline), so the advisory ``images-pinned-by-digest`` guardrail names them on a stack that
uses them. Refresh with ``crane digest registry.k8s.io/autoscaling/cluster-autoscaler:<tag>``."""


ELB_LOG_DELIVERY_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
    "us-west-2": "797873946194", "af-south-1": "098369216593", "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580", "ap-south-1": "718504428378", "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887", "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864", "ca-central-1": "985666609251", "eu-central-1": "054676820928",
    "eu-west-1": "156460612806", "eu-west-2": "652711504416", "eu-south-1": "635631232127",
    "eu-west-3": "009996457667", "eu-north-1": "897822967062", "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
}
"""The Elastic Load Balancing account that writes access logs, for each region available before August 2022;
a bucket policy there must allow ``arn:aws:iam::<account>:root``. Regions opened since then deliver through
the service principal ``logdelivery.elasticloadbalancing.amazonaws.com`` instead. Source: "Attach a bucket
policy", https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html (the
same table terraform-provider-aws's ``aws_elb_service_account`` holds), read 2026-12-03."""

ELB_LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"


def version_step_problem(running: str, configured: str) -> str | None:
    """Why moving an EKS cluster from ``running`` to ``configured`` cannot be one ``pulumi up``, or None.

    EKS upgrades the control plane one minor version at a time (UpdateClusterVersion refuses larger steps)
    and never downgrades; a bigger jump fails after the preview has shown it as a plain in-place update.
    https://docs.aws.amazon.com/eks/latest/userguide/update-cluster.html"""
    running_minor, configured_minor = _minor(running), _minor(configured)
    if configured_minor < running_minor:
        return (f"cluster.version {configured!r} is below the running {running!r}; allowed: {running!r} or "
                f"'1.{running_minor + 1}' (EKS cannot downgrade a control plane)")
    if configured_minor > running_minor + 1:
        return (f"cluster.version {configured!r} is {configured_minor - running_minor} minor versions above the "
                f"running {running!r}; allowed: {running!r} or '1.{running_minor + 1}' (EKS upgrades one minor "
                "version at a time: deploy each step, nodes and add-ons included, before the next)")
    return None


def next_minor_version(version: str) -> str:
    """The Kubernetes minor after ``version`` (``'1.34'`` -> ``'1.35'``): where EKS takes a cluster it upgrades."""
    return f"1.{_minor(version) + 1}"


def _minor(version: str) -> int:
    major, _, minor = version.partition(".")
    if major != "1" or not minor.isdigit():
        raise ValueError(f"{version!r} is not a Kubernetes minor version such as '1.35'")
    return int(minor)


# --- What one node can hold -------------------------------------------------------------------------------

NODE_SPECS: dict[str, tuple[int, int, int]] = {
    # type: (vCPUs, memory MiB, max pods with the VPC CNI's default secondary-IP mode)
    "t3.medium": (2, 4096, 17), "t3.large": (2, 8192, 35), "t3.xlarge": (4, 16384, 58),
    "t3.2xlarge": (8, 32768, 58),
    "t3a.medium": (2, 4096, 17), "t3a.large": (2, 8192, 35), "t3a.xlarge": (4, 16384, 58),
    "t4g.medium": (2, 4096, 17), "t4g.large": (2, 8192, 35), "t4g.xlarge": (4, 16384, 58),
    "m5.large": (2, 8192, 29), "m5.xlarge": (4, 16384, 58),
    "m6a.large": (2, 8192, 29), "m6a.xlarge": (4, 16384, 58),
    "m6i.large": (2, 8192, 29), "m6i.xlarge": (4, 16384, 58),
    "m7i.large": (2, 8192, 29), "m7i.xlarge": (4, 16384, 58),
    "m6g.large": (2, 8192, 29), "m6g.xlarge": (4, 16384, 58),
    "m7g.large": (2, 8192, 29), "m7g.xlarge": (4, 16384, 58),
    "c6i.large": (2, 4096, 29), "c6i.xlarge": (4, 8192, 58), "c7g.large": (2, 4096, 29),
    "r6g.large": (2, 16384, 29), "r7g.large": (2, 16384, 29),
}
"""vCPUs and memory from the EC2 instance-type pages
(https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html, co.html); max pods from the EKS AMI's
eni-max-pods.txt (ENIs x (IPv4 addresses per ENI - 1) + 2, https://github.com/awslabs/amazon-eks-ami,
templates/shared/runtime/eni-max-pods.txt; the t3a, m6a and c6i.xlarge rows read there 2026-12-04). A type
missing here is not checked (its capacity is unknown), never guessed: the plan warns about it instead
(``infra.config_phase3.unchecked_fit_warning``)."""

EBS_CSI_CONTAINER_CPU_MILLICORES = 10
EBS_CSI_CONTAINER_MEMORY_MIB = 40
"""The EBS CSI driver's default request per container (kubernetes-sigs/aws-ebs-csi-driver,
charts/aws-ebs-csi-driver/values.yaml): its node DaemonSet runs 3 containers (plugin, registrar, liveness
probe), its controller 2 replicas of 6 (plugin, provisioner, attacher, snapshotter, resizer, liveness probe)."""

DAEMONSET_CPU_MILLICORES = 125 + 3 * EBS_CSI_CONTAINER_CPU_MILLICORES
DAEMONSET_MEMORY_MIB = 3 * EBS_CSI_CONTAINER_MEMORY_MIB
"""Requests of the add-ons that run on every node: aws-node (vpc-cni) 25m, kube-proxy 100m, ebs-csi-node."""

DAEMONSET_PODS = 4
"""aws-node, kube-proxy, eks-pod-identity-agent and ebs-csi-node on every node."""

CLUSTER_ADDON_CPU_MILLICORES = 400 + 2 * 6 * EBS_CSI_CONTAINER_CPU_MILLICORES
CLUSTER_ADDON_MEMORY_MIB = 940 + 2 * 6 * EBS_CSI_CONTAINER_MEMORY_MIB
CLUSTER_ADDON_PODS = 6
"""Requests and pods of the add-ons that run once per cluster: coredns 2 x (100m, 70Mi), metrics-server (100m,
200Mi), the Cluster Autoscaler (100m, 600Mi; components/cluster_autoscaler.py) and the EBS CSI controller's
two replicas. Counted on the first node, pod slots included, so the estimate never runs high."""

CONTAINER_LOGS_NODE_CPU_MILLICORES = 300
CONTAINER_LOGS_NODE_MEMORY_MIB = 153
CONTAINER_LOGS_NODE_PODS = 2
"""With ``cluster.containerLogs`` the amazon-cloudwatch-observability add-on runs two more DaemonSets: Fluent Bit
(50m, 25Mi) and the CloudWatch agent (250m, 128Mi), the default requests in the add-on's Helm chart
(aws-observability/helm-charts, charts/amazon-cloudwatch-observability/values.yaml, ``containerLogs.fluentBit``
and ``agent``)."""

CONTAINER_LOGS_CLUSTER_CPU_MILLICORES = 100
CONTAINER_LOGS_CLUSTER_MEMORY_MIB = 64
"""The same add-on's operator (controller-manager, one replica): 100m, 64Mi (``manager.resources`` there)."""

EVICTION_MEMORY_MIB = 100
"""The kubelet's hard eviction threshold (memory.available < 100Mi), also kept from pods."""


def kube_reserved_cpu_millicores(vcpus: int) -> int:
    """CPU the EKS AMI reserves for the kubelet and container runtime: 6 % of the first core, 1 % of the second,
    0.5 % of the third and fourth, 0.25 % of each further core (amazon-eks-ami's bootstrap formula)."""
    shares = [60, 10, 5, 5] + [2.5] * max(0, vcpus - 4)
    return int(sum(shares[:vcpus]))


def allocatable(instance_type: str, container_logs: bool = False) -> tuple[int, int, int] | None:
    """(CPU millicores, memory MiB, pod slots) one node of ``instance_type`` offers the app's pods after the
    kubelet's reservations and the per-node add-ons (with ``container_logs``, also Fluent Bit and the CloudWatch
    agent); None for a type missing from ``NODE_SPECS``."""
    spec = NODE_SPECS.get(instance_type)
    if spec is None:
        return None
    vcpus, memory, max_pods = spec
    cpu = vcpus * 1000 - kube_reserved_cpu_millicores(vcpus) - DAEMONSET_CPU_MILLICORES
    # EKS reserves 255Mi + 11Mi per pod the node may run for the kubelet (amazon-eks-ami bootstrap).
    memory_free = memory - (255 + 11 * max_pods) - EVICTION_MEMORY_MIB - DAEMONSET_MEMORY_MIB
    if container_logs:
        return (cpu - CONTAINER_LOGS_NODE_CPU_MILLICORES, memory_free - CONTAINER_LOGS_NODE_MEMORY_MIB,
                max_pods - DAEMONSET_PODS - CONTAINER_LOGS_NODE_PODS)
    return cpu, memory_free, max_pods - DAEMONSET_PODS


def node_rooms(instance_type: str, nodes: int, container_logs: bool = False
               ) -> list[tuple[int, int, int]] | None:
    """(CPU millicores, memory MiB, pod slots) each of ``nodes`` nodes of ``instance_type`` offers the app's pods:
    ``allocatable``, the first node less the once-per-cluster add-ons; None when the type's capacity is unknown.
    ``container_logs`` adds the amazon-cloudwatch-observability add-on's DaemonSets and operator."""
    per_node = allocatable(instance_type, container_logs)
    if per_node is None:
        return None
    cpu, memory, slots = per_node
    first = (cpu - CLUSTER_ADDON_CPU_MILLICORES - (CONTAINER_LOGS_CLUSTER_CPU_MILLICORES if container_logs else 0),
             memory - CLUSTER_ADDON_MEMORY_MIB - (CONTAINER_LOGS_CLUSTER_MEMORY_MIB if container_logs else 0),
             slots - CLUSTER_ADDON_PODS - (1 if container_logs else 0))
    return [first, *[per_node] * (nodes - 1)][:nodes]


def pods_that_fit(instance_type: str, nodes: int, cpu_millicores: int, memory_mib: int,
                  container_logs: bool = False) -> int | None:
    """How many pods of the given requests ``nodes`` nodes of ``instance_type`` hold at most (``node_rooms``);
    None when the type's capacity is unknown."""
    rooms = node_rooms(instance_type, nodes, container_logs)
    if rooms is None:
        return None
    return sum(max(0, min(cpu // cpu_millicores, memory // memory_mib, slots)) for cpu, memory, slots in rooms)
