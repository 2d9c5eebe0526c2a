"""EksCluster: an EKS control plane and one managed node group, built from plain pulumi-aws resources.

Creates
- the cluster IAM role (``AmazonEKSClusterPolicy``; its use of the secrets key comes from the key policy alone);
- a KMS key (rotation on, 30-day deletion window, an explicit key policy: the admin principals administer
  it, only the cluster role encrypts and decrypts with it, grants only for AWS resources; no statement enables
  IAM policies, so only the listed admins can ever manage it) and alias ``alias/eks/<cluster_name>`` that
  envelope-encrypt Kubernetes Secrets;
- the control-plane log group ``/aws/eks/<cluster_name>/cluster`` with ``log_retention_days`` retention,
  created before the cluster so EKS writes into a group Pulumi manages instead of an unmanaged one that never
  expires; retained on delete (EKS keeps writing, and re-creating it, after the cluster is gone) and adopted
  (``import_``) by a re-created stack that finds it, read at program time (``log_group_import_id``);
- the cluster: all five control-plane log types, private endpoint always on, public endpoint only when
  ``endpoint_public_access_cidrs`` is non-empty (and then only from those networks), authentication mode
  ``API`` (access entries only, no ``aws-auth`` ConfigMap) and no implicit admin for whoever created it;
  before any child, the running cluster's version is read (``running_version``) and a jump of more than one
  minor, or a downgrade, is refused; with no running cluster and no public CIDRs
  (``private_first_deploy_problem``) ``pulumi up`` is refused, and ``pulumi preview`` warns on the component
  (``check_against_the_running_cluster``, which a program should also run before its first resource: infra/
  phase3.py ``preflight``);
- with ``api_access_security_group_ids``: one rule per group on EKS's cluster security group admitting that
  group on 443, so a CI runner or bastion inside the VPC reaches the private API endpoint;
- an IAM OIDC provider for the cluster's issuer (audience ``sts.amazonaws.com``) for IAM roles for service
  accounts;
- a node security group (all traffic between nodes, all egress; the NAT gateways carry image pulls) whose id
  is exported so RDS, ElastiCache and the ALB can admit the nodes;
- the node IAM role (``AmazonEKSWorkerNodePolicy``, ``AmazonEC2ContainerRegistryReadOnly``; not the CNI policy,
  which the vpc-cni add-on's own IRSA role holds) and a launch template: IMDSv2 required with a hop limit of 1,
  so pods (which sit one network hop behind the node) cannot read the node role's credentials from instance
  metadata and must use IRSA or EKS Pod Identity instead (in-cluster tools that read the region or VPC from
  IMDS, e.g. the AWS Load Balancer Controller, need them passed explicitly); an encrypted gp3 root volume (the
  account's default EBS key); the node security group plus the cluster's own security group (EKS stops adding
  the latter once a launch template names security groups, and the control plane talks to kubelets through it);
- one managed node group (Amazon Linux 2023, ARM when every instance type is Graviton, on-demand, a third of
  the nodes replaced at a time during updates) in the given private subnets; its desired size is set at
  creation and then left to the Cluster Autoscaler (``ignore_changes``), between ``node_min_size`` and
  ``node_max_size``;
- managed add-ons ``vpc-cni`` (with its network policy agent on, so NetworkPolicies are enforced, and its own
  IRSA role holding ``AmazonEKS_CNI_Policy``, created before the node group), ``kube-proxy``, ``coredns``,
  ``eks-pod-identity-agent``, the community ``metrics-server`` (the HorizontalPodAutoscaler needs it) and
  ``aws-ebs-csi-driver`` (PersistentVolumeClaims get encrypted gp3 volumes from the default StorageClass
  ``gp3``, reclaim policy Retain; its own IRSA role holds
  ``AmazonEBSCSIDriverPolicy``); ``vpc-cni``, ``kube-proxy`` and ``coredns`` take over the self-managed
  copies EKS installs at creation (conflicts resolved with ``OVERWRITE``), and ``coredns``/``metrics-server``
  wait for the node group because their pods need nodes;
- with ``container_logs``: the ``amazon-cloudwatch-observability`` add-on (Fluent Bit ships container logs, the
  CloudWatch agent Container Insights metrics) with its own IRSA role holding ``CloudWatchAgentServerPolicy``
  for ``amazon-cloudwatch:cloudwatch-agent``, after the node group and after the four Container Insights log
  groups it writes to, which phasekit creates with ``log_retention_days``;
- one access entry with ``AmazonEKSClusterAdminPolicy`` (cluster scope) per admin principal;
- a kubeconfig (secret output) that authenticates with ``aws eks get-token`` (no static credentials), and a
  Kubernetes provider built from it, exposed as ``provider`` for everything deployed into the cluster;
- with ``alarm_topic_arn``: a CloudWatch alarm when the nodes' average CPU exceeds ``node_cpu_alarm_percent``
  for 5 minutes (one 300-second period, which matches EC2's basic 5-minute monitoring; a 60-second period would
  need paid detailed monitoring).

Does not create the VPC (AwsNetwork does), the Cluster Autoscaler (ClusterAutoscaler does, with this
component's OIDC provider and provider), the AWS Load Balancer Controller, IRSA roles for workloads, or
an SSM agent policy for shell access to nodes. Add-on versions follow ``version``: ``kube-proxy`` is pinned
per Kubernetes minor (``KUBE_PROXY_VERSIONS``, from the EKS docs' table), the others take the version EKS
marks default for that minor, looked up at every preview (``addon_version_lookup``).

Who can deploy: ``pulumi up`` must run as one of ``admin_principal_arns`` (nobody else is admin), with the
AWS CLI installed (the kubeconfig runs it), from a network that reaches the API endpoint: an address in
``endpoint_public_access_cidrs``, or inside the VPC from a member of one of ``api_access_security_group_ids``
(EKS's cluster security group admits only itself otherwise). The first deploy has to come from a public CIDR:
the VPC, and so any runner inside it, does not exist yet; without one ``pulumi up`` refuses to start.

Cost: the control plane is $0.10/hour (~$73/month) in standard support and $0.60/hour (~$438/month) once the
Kubernetes version enters extended support, which only happens with ``support_type="EXTENDED"`` (the default
``STANDARD`` lets AWS upgrade the cluster instead); keep ``version`` current. Nodes bill their EC2 on-demand
price plus gp3 storage ($0.08/GB-month each). The KMS key and the control-plane logs' CloudWatch ingestion and
storage (the audit log is the chatty one) also bill, at prices the catalog has not confirmed yet (``phasekit
plan`` lists them as unconfirmed and usage-based). With ``container_logs`` the Container Insights log groups
bill CloudWatch Logs ingestion per GB (as much as the app logs) and storage, and Container Insights bills the
agent's metrics; the plan lists the groups as usage-based. The alarm is $0.10/month. Figures:
``phasekit/prices.yaml``.

Stateful: the cluster's etcd holds every Kubernetes object, but phasekit recreates those from code; the data
lives in RDS and ElastiCache. Replacing the KMS key or renaming the cluster replaces the cluster (EKS cannot
change either in place). The KMS key is kept for its 30-day deletion window after a destroy.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as kubernetes
import yaml

from components.aws_choices import (
    KUBE_PROXY_VERSIONS,
    SECURITY_GROUP_ID,
    SECURITY_GROUP_ID_ALLOWED,
    SupportType,
    version_step_problem,
)
from components.aws_network import CLOUDWATCH_RETENTION_DAYS, CLOUDWATCH_RETENTION_TEXT
from components.tags import aws_tags

MANAGED_POLICY = "arn:aws:iam::aws:policy/"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly")
"""No ``AmazonEKS_CNI_Policy``: the vpc-cni add-on has its own role (``ADDON_ROLES``), so a pod that reached the
node's credentials could not rewrite the node's network interfaces."""
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
ADDONS = ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent", "metrics-server", "aws-ebs-csi-driver")
ADDON_CONFIGURATION = {"vpc-cni": json.dumps({"enableNetworkPolicy": "true"})}
"""``configuration_values`` per add-on. vpc-cni: run its network policy agent, so the NetworkPolicies
KubernetesApp creates are enforced (without it they are accepted and ignored).
https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure.html"""

ADDONS_NEEDING_NODES = frozenset({"coredns", "metrics-server", "aws-ebs-csi-driver"})
"""Add-ons that run Deployments: EKS reports them degraded until nodes exist, so they wait for the node group."""

ADDONS_BEFORE_NODES = frozenset({"vpc-cni"})
"""Nodes become Ready only once aws-node can assign pod addresses, which now needs the add-on's own role: the
node group waits for it (terraform-aws-modules' ``before_compute``)."""

ADDON_ROLES = {
    "vpc-cni": ("aws-node", "AmazonEKS_CNI_Policy"),
    "aws-ebs-csi-driver": ("ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy"),
}
"""Add-on -> (its ServiceAccount in kube-system, the AWS-managed policy its IRSA role holds). The EBS CSI
driver provisions gp3 volumes for PersistentVolumeClaims (without it a PVC stays Pending);
https://docs.aws.amazon.com/eks/latest/userguide/cni-iam-role.html,
https://docs.aws.amazon.com/eks/latest/userguide/ebs-csi.html"""

CONTAINER_LOGS_ADDON = "amazon-cloudwatch-observability"
CONTAINER_LOGS_NAMESPACE = "amazon-cloudwatch"
CONTAINER_LOGS_SERVICE_ACCOUNT = "cloudwatch-agent"
CONTAINER_LOGS_POLICY = "CloudWatchAgentServerPolicy"
"""With ``container_logs``: the add-on, and its IRSA role, which only ``amazon-cloudwatch:cloudwatch-agent`` may
assume (both the CloudWatch agent and Fluent Bit run as that ServiceAccount; the Helm chart's
templates/linux/fluent-bit-daemonset.yaml) and which holds ``CloudWatchAgentServerPolicy`` (logs:CreateLogGroup,
CreateLogStream, PutLogEvents, Describe*; cloudwatch:PutMetricData).
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Observability-EKS-addon.html"""

CONTAINER_LOGS_CONFIGURATION = json.dumps({"containerLogs": {"enabled": True}})
"""The add-on's ``configuration_values``: Fluent Bit ships every container's stdout/stderr. It is the add-on's
default, written out so a reader (and a later default change upstream) cannot turn log shipping off silently.
The CloudWatch agent (Container Insights metrics) stays on: the Helm chart has an ``agent.enabled`` value, but
whether the EKS add-on's configuration schema (``aws eks describe-addon-configuration``) accepts it is
unverified, and a key the schema refuses fails the add-on's create."""

CONTAINER_LOG_GROUPS = ("application", "dataplane", "host", "performance")
"""The groups ``/aws/containerinsights/<cluster>/<kind>`` Fluent Bit (application, dataplane, host) and the
CloudWatch agent (performance) write to. They would create them with no retention (kept forever); phasekit
creates them first with ``log_retention_days``, and the add-on waits for them, so its writers find them."""

NODE_GROUP_IGNORED_CHANGES = ("scalingConfig.desiredSize",)
"""The Cluster Autoscaler changes the ASG's desired size; without this every ``pulumi up`` would reset it to
``node_desired_size`` and undo a scale-out under load."""

AMI_X86 = "AL2023_x86_64_STANDARD"
AMI_ARM = "AL2023_ARM_64_STANDARD"
ROOT_DEVICE = "/dev/xvda"
MAX_UNAVAILABLE_PERCENT = 33
KMS_DELETION_WINDOW_DAYS = 30
ALARM_PERIOD_SECONDS = 300
ALARM_EVALUATION_PERIODS = 1
OIDC_AUDIENCE = "sts.amazonaws.com"
KUBECONFIG_EXEC_API = "client.authentication.k8s.io/v1beta1"

_CLUSTER_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}")
_VERSION = re.compile(r"1\.\d{2,}")
_PRINCIPAL_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)")
_GRAVITON_FAMILY = re.compile(r"[a-z-]+\d+g[a-z]*")
"""Graviton families have a ``g`` right after the generation digit: t4g, m7g, c7gd, c6gn, r8g, x2gd, im4gn."""


@dataclass
class EksClusterArgs:
    cluster_name: str
    """Physical EKS cluster name (1-100 letters, digits, ``-``, ``_``; starts alphanumeric). Needed up front for
    the log group ``/aws/eks/<name>/cluster``; changing it replaces the cluster."""

    version: str
    """Kubernetes minor version, e.g. ``"1.35"``, one of ``KUBE_PROXY_VERSIONS`` (the kube-proxy add-on is
    pinned to the matching build). Upgrades go one minor version at a time; the node group and add-ons
    follow. Against a running cluster (``running_version``) a bigger jump or a downgrade is refused when the
    program runs, so ``pulumi preview`` fails with the reason instead of ``up`` failing half-way."""

    region: str
    """AWS region of the cluster, written into the kubeconfig's ``aws eks get-token`` call."""

    vpc_id: pulumi.Input[str]
    """The VPC the node security group is created in (AwsNetwork's ``vpc_id``)."""

    subnet_ids: pulumi.Input[Sequence[str]]
    """Private subnets for the control-plane ENIs and the nodes (AwsNetwork's ``private_subnet_ids``)."""

    endpoint_public_access_cidrs: Sequence[str]
    """IPv4 networks allowed to reach the public API endpoint. Empty: no public endpoint, private only, which only a
    running cluster can use (deploys then run inside the VPC, see ``api_access_security_group_ids``): on a first
    deploy ``pulumi up`` refuses it and ``pulumi preview`` warns (``private_first_deploy_problem``). Never a /0."""

    admin_principal_arns: Sequence[str]
    """IAM role or user ARNs given cluster admin through access entries. At least one; the principal running
    ``pulumi up`` must be among them (the creator gets no implicit admin)."""

    node_instance_types: Sequence[str]
    """EC2 instance types for the node group, e.g. ``["t3.large"]``; all x86 or all Graviton (``*g.*``)."""

    api_access_security_group_ids: Sequence[str] = ()
    """Security groups (``sg-`` ids, each once) whose members may reach the private API endpoint on 443: a
    self-hosted CI runner or a bastion in the VPC. EKS's cluster security group, which guards the private
    endpoint, admits only itself (https://docs.aws.amazon.com/eks/latest/userguide/sec-group-reqs.html,
    "Default cluster security group"), so without a rule here nothing else in the VPC reaches the API. Each
    group gets one ingress rule on that security group (tcp 443). The first deploy must still come from an
    address in ``endpoint_public_access_cidrs``: the VPC these groups live in does not exist yet. Default:
    none."""

    node_min_size: int = 2
    """Minimum nodes; at least 1. Default 2."""

    node_desired_size: int = 2
    """Nodes to start with; between min and max. Default 2. Only read at creation: afterwards the Cluster
    Autoscaler sets the size, and a changed value here is not applied."""

    node_max_size: int = 4
    """Maximum nodes. Default 4."""

    track_latest_ami: bool = True
    """Pin the node group's ``release_version`` to the newest EKS-optimized AMI release for ``version``, read from
    AWS's public SSM parameter at each ``pulumi up``/``preview``: a new AMI (security patches) shows as a node
    group update and rolls the nodes a third at a time. False: the release the group was created with stays
    (the provider treats an unset ``release_version`` as computed, so new AMIs never show as a diff)."""

    node_disk_size_gib: int = 50
    """Encrypted gp3 root volume per node, GiB (20 or more). Default 50."""

    support_type: SupportType = SupportType.STANDARD
    """``upgrade_policy.support_type``: ``STANDARD`` (default) lets AWS upgrade the cluster when its version
    leaves standard support instead of billing extended support ($0.60 instead of $0.10 per hour);
    ``EXTENDED`` keeps the version and pays."""

    log_retention_days: int = 90
    """Days CloudWatch keeps control-plane logs; one of the values CloudWatch accepts. Default 90."""

    container_logs: bool = False
    """Ship every container's stdout/stderr to CloudWatch Logs with the ``amazon-cloudwatch-observability``
    add-on (Fluent Bit plus the CloudWatch agent's Container Insights metrics) under its own IRSA role, into
    log groups kept ``log_retention_days``. Default False: CloudWatch Logs bills ingestion per GB, which follows
    how much the app logs, and Container Insights bills its metrics. Both DaemonSets run with host networking,
    so the launch template's IMDS hop limit of 1 does not stop them; EKS passes them the region."""

    alarm_topic_arn: pulumi.Input[str] | None = None
    """SNS topic notified (alarm and OK) when node CPU is high. None (default): no alarm."""

    node_cpu_alarm_percent: float = 70
    """Average node CPU (percent, over 5 minutes) above which the alarm fires; only with ``alarm_topic_arn``.
    Default 70."""

    check_running_cluster: bool = True
    """Run ``check_against_the_running_cluster`` before any child. False when the program ran it already, before
    its first resource (infra/phase3.py ``preflight``), so the lookups are not made twice."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every taggable child (merged with a ``Name`` where AWS shows one)."""


def node_ami_type(instance_types: Sequence[str]) -> str:
    """``AL2023_ARM_64_STANDARD`` when every type is Graviton, ``AL2023_x86_64_STANDARD`` when none is;
    a mix cannot share one AMI, so it is refused."""
    arm = [_is_graviton(instance_type) for instance_type in instance_types]
    if not arm:
        raise ValueError("EksClusterArgs.node_instance_types: at least one instance type is required")
    if all(arm):
        return AMI_ARM
    if not any(arm):
        return AMI_X86
    raise ValueError("EksClusterArgs.node_instance_types: "
                     f"{list(instance_types)} mixes Graviton (ARM) and x86 types; one node group runs one AMI")


AMI_SSM_PATHS = {AMI_X86: "amazon-linux-2023/x86_64/standard", AMI_ARM: "amazon-linux-2023/arm64/standard"}


def ami_release_parameter(kubernetes_version: str, ami_type: str) -> str:
    """AWS's public SSM parameter naming the newest recommended EKS AMI release for a version and AMI type
    (https://docs.aws.amazon.com/eks/latest/userguide/retrieve-ami-id.html; terraform-aws-modules' node group
    reads the same path for ``use_latest_ami_release_version``)."""
    return f"/aws/service/eks/optimized-ami/{kubernetes_version}/{AMI_SSM_PATHS[ami_type]}/recommended/release_version"


def addon_version(addon: str, kubernetes_version: str) -> str | None:
    """The version of ``addon`` pinned in a dated table for ``kubernetes_version``, or None when the add-on's
    version is looked up instead (``addon_version_lookup``).

    An ``aws.eks.Addon`` without ``addon_version`` keeps the version it was created with, so a cluster upgrade
    would leave every add-on behind. kube-proxy is pinned from the EKS docs' table (``KUBE_PROXY_VERSIONS``): it
    must match the control plane's minor. The EKS docs publish no current per-minor table for the others (the
    CoreDNS page's table stops at 1.34, the vpc-cni, Pod Identity agent, metrics-server and EBS CSI pages
    give one "latest" build for every version), so they follow EKS's own answer instead."""
    return KUBE_PROXY_VERSIONS[kubernetes_version] if addon == "kube-proxy" else None


def addon_version_lookup(addon: str, kubernetes_version: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The version EKS marks default for ``addon`` on ``kubernetes_version`` (``DescribeAddonVersions``, the
    ``aws_eks_addon_version`` data source terraform-aws-modules/eks uses; default rather than ``most_recent``,
    since the default is the build AWS validated for that minor). Read at every preview and ``up`` (an input
    value, never a resource count), so a version bump or a new default build shows as an in-place add-on
    update."""
    return aws.eks.get_addon_version_output(addon_name=addon, kubernetes_version=kubernetes_version,
                                            opts=pulumi.InvokeOutputOptions(parent=parent)).version


def container_log_group_name(cluster_name: str, kind: str) -> str:
    """The Container Insights log group of ``kind`` (``CONTAINER_LOG_GROUPS``) for ``cluster_name``."""
    return f"/aws/containerinsights/{cluster_name}/{kind}"


def control_plane_log_group_name(cluster_name: str) -> str:
    """The group EKS writes control-plane logs to; the name is EKS's, not ours to choose."""
    return f"/aws/eks/{cluster_name}/cluster"


def log_group_import_id(log_group_name: str, existing_names: Sequence[str]) -> str | None:
    """The ``import_`` option of the control-plane log group: its name when it already exists, else None.

    EKS keeps writing control-plane logs for a while after the cluster is deleted and re-creates the group if it
    is gone, so a destroyed stack used to leave ``/aws/eks/<cluster>/cluster`` behind and the next create
    failed with ``ResourceAlreadyExistsException`` (terraform-aws-modules/terraform-aws-eks#920, #2486, #2763).
    Now the group is retained on delete (it keeps its retention, so the late logs expire) and a re-created
    stack adopts it. When the group is already in the stack's state the engine treats the same import id as a
    plain resource (pulumi/pulumi developer-docs/architecture/import.md, "import resource option", case 2)."""
    return log_group_name if log_group_name in existing_names else None


def running_version(cluster_name: str, lookup: pulumi.InvokeOptions) -> str | None:
    """The Kubernetes version the cluster ``cluster_name`` runs in the provider's region, or None when the
    account lists no such cluster (a first deploy, or one after a destroy).

    Read at program time, so ``pulumi preview`` refuses a version step EKS would refuse half-way through
    ``up``. The list comes first because ``aws.eks.get_cluster`` fails the program on a cluster that does
    not exist (``DescribeCluster``'s ``ResourceNotFoundException``) rather than answering "none"; ``lookup``
    names the provider (phasekit's explicit region), directly or through a parent."""
    if cluster_name not in (aws.eks.get_clusters(opts=lookup).names or []):
        return None
    return aws.eks.get_cluster(name=cluster_name, opts=lookup).version


def _is_graviton(instance_type: str) -> bool:
    family = instance_type.split(".", 1)[0]
    return family == "a1" or _GRAVITON_FAMILY.fullmatch(family) is not None


def render_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig for one cluster that gets a short-lived token from ``aws eks get-token`` with the caller's
    AWS credentials each time; it holds no credentials itself."""
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name,
                      "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "preferences": {},
        "users": [{"name": cluster_name, "user": {"exec": {
            "apiVersion": KUBECONFIG_EXEC_API,
            "command": "aws",
            # --output json: a user whose AWS CLI defaults to text or yaml output would otherwise break kubectl.
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
        }}}],
    }, sort_keys=False)


def assume_role_policy(service: str) -> str:
    """Trust policy letting one AWS service principal assume the role."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }, sort_keys=True)


def irsa_trust_policy(provider_arn: str, issuer_url: str, namespace: str, service_account: str) -> str:
    """Trust policy letting exactly one Kubernetes ServiceAccount assume the role through the cluster's OIDC
    provider (IRSA): ``sub`` names the account, ``aud`` is STS."""
    issuer = issuer_url.removeprefix("https://")
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{issuer}:aud": OIDC_AUDIENCE,
            }},
        }],
    }, sort_keys=True)


KEY_ADMIN_ACTIONS = ("kms:CancelKeyDeletion", "kms:Create*", "kms:Delete*", "kms:Describe*", "kms:Disable*",
                     "kms:Enable*", "kms:Get*", "kms:List*", "kms:Put*", "kms:Revoke*", "kms:ScheduleKeyDeletion",
                     "kms:TagResource", "kms:UntagResource", "kms:Update*")
"""Administration without use: the key administrators' statement of the AWS console's key policy, which
cannot decrypt a Secret (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html)."""

KEY_USER_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*")
KEY_GRANT_ACTIONS = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")


def secrets_key_document(cluster_role_arn: str, admin_principal_arns: Sequence[str]) -> str:
    """The secrets key's own policy, instead of the default that hands ``kms:*`` to every principal of the
    account with an IAM policy allowing it: the cluster admins administer the key (they run ``pulumi up``,
    and KMS refuses a policy that would lock the caller out), only the cluster role uses it, and grants only
    for AWS resources (EKS's own).

    There is no statement enabling IAM policies, so no IAM policy can grant anything on this key ("Unless the
    key policy explicitly allows it, you cannot use IAM policies to allow access to a KMS key",
    https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html): the cluster role's use comes
    from here alone, and only the principals listed here can ever manage the key. Deleting all of them (or
    removing them from the policy outside Pulumi) leaves the key unmanageable; regaining access then needs
    AWS Support (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html)."""
    admins = sorted(admin_principal_arns)
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ClusterAdminsAdministerTheKey", "Effect": "Allow", "Principal": {"AWS": admins},
             "Action": list(KEY_ADMIN_ACTIONS), "Resource": "*"},
            {"Sid": "ClusterRoleEncryptsSecrets", "Effect": "Allow", "Principal": {"AWS": cluster_role_arn},
             "Action": list(KEY_USER_ACTIONS), "Resource": "*"},
            {"Sid": "ClusterRoleGrantsToAwsResources", "Effect": "Allow", "Principal": {"AWS": cluster_role_arn},
             "Action": list(KEY_GRANT_ACTIONS), "Resource": "*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
        ],
    }, sort_keys=True)


def oidc_issuer(identities: Sequence[Any]) -> str:
    """The cluster's OIDC issuer URL (``https://oidc.eks.<region>.amazonaws.com/id/<id>``)."""
    return identities[0].oidcs[0].issuer


def autoscaling_group_name(resources: Sequence[Any]) -> str:
    """Name of the Auto Scaling group EKS created for the managed node group."""
    return resources[0].autoscaling_groups[0].name


def admin_slug(principal_arn: str) -> str:
    """Stable, readable part of an admin's logical names (``role-platform-admins``): list order never
    renames (and so never recreates) an access entry."""
    match = _PRINCIPAL_ARN.fullmatch(principal_arn)
    if match is None:
        raise ValueError(f"EksClusterArgs.admin_principal_arns: {principal_arn!r} is not an IAM role or user ARN; "
                         "allowed: arn:aws:iam::<account>:role/<name> or arn:aws:iam::<account>:user/<name> "
                         "(for an assumed-role session use its role's ARN)")
    kind, resource_name = match.group(1), match.group(2)
    return f"{kind}-" + re.sub(r"[^a-z0-9-]", "-", resource_name.lower())


class EksCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    cluster_endpoint: pulumi.Output[str]
    cluster_certificate_authority: pulumi.Output[str]
    """Base64 PEM of the cluster CA (``certificate-authority-data``)."""

    cluster_security_group_id: pulumi.Output[str]
    """The security group EKS created for the control plane and attached to the nodes."""

    node_security_group_id: pulumi.Output[str]
    """phasekit's node security group: what RDS, ElastiCache and the ALB admit."""

    node_role_arn: pulumi.Output[str]
    node_autoscaling_group_name: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]
    """The issuer URL including ``https://``; IRSA trust conditions use it without the scheme."""

    kubeconfig: pulumi.Output[str]
    """A secret. Uses ``aws eks get-token``; holds no credentials."""

    provider: kubernetes.Provider
    """Kubernetes provider for this cluster; pass it (``opts=ResourceOptions(provider=...)``) to k8s resources."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        ami_type = _check_args(args)
        super().__init__("phasekit:index:EksCluster", name, None, opts)
        if args.check_running_cluster:
            check_against_the_running_cluster(args.cluster_name, args.version, args.endpoint_public_access_cidrs,
                                              pulumi.InvokeOptions(parent=self), warn_on=self)

        cluster_role, cluster_attachments = _service_role(name, args, "cluster", "eks.amazonaws.com", "control plane",
                                                          CLUSTER_POLICIES, self)
        secrets_key = _secrets_key(name, args, cluster_role, self)
        log_group = _control_plane_log_group(name, args, self)
        cluster = _cluster(name, args, cluster_role, secrets_key, [log_group, *cluster_attachments], self)
        issuer = cluster.identities.apply(oidc_issuer)
        oidc_provider = _oidc_provider(name, args, issuer, self)

        node_sg = _node_security_group(name, args, self)
        node_role, node_attachments = _service_role(name, args, "node", "ec2.amazonaws.com", "nodes", NODE_POLICIES,
                                                    self)
        cluster_sg_id = cluster.vpc_config.apply(lambda config: config.cluster_security_group_id)
        _api_access_rules(name, args, cluster_sg_id, self)
        launch_template = _launch_template(name, args, [node_sg.id, cluster_sg_id], self)

        addon_roles = {addon: _addon_role(name, addon, args, oidc_provider, issuer, pulumi.ResourceOptions(parent=self))
                       for addon in ADDON_ROLES}
        if args.container_logs:
            addon_roles[CONTAINER_LOGS_ADDON] = _addon_role(name, CONTAINER_LOGS_ADDON, args, oidc_provider, issuer,
                                                            pulumi.ResourceOptions(parent=self))
        early_addons = [_addon(name, addon, args, cluster, addon_roles.get(addon), [], self)
                        for addon in ADDONS if addon in ADDONS_BEFORE_NODES]
        node_group = _node_group(name, args, ami_type, cluster, node_role, launch_template,
                                 [*node_attachments, *early_addons], self)
        later_addons = {addon: _addon(name, addon, args, cluster, addon_roles.get(addon),
                                      [node_group] if addon in ADDONS_NEEDING_NODES else [], self)
                        for addon in ADDONS if addon not in ADDONS_BEFORE_NODES}
        if args.container_logs:
            log_groups = _container_log_groups(name, args, self)
            _addon(name, CONTAINER_LOGS_ADDON, args, cluster, addon_roles[CONTAINER_LOGS_ADDON],
                   [node_group, *log_groups], self)

        admin_policies = _admin_access(name, args, cluster, self)
        kubeconfig, provider = _kubernetes_provider(name, args, cluster, [*admin_policies, node_group], self)
        _default_storage_class(name, provider, [later_addons[EBS_CSI_ADDON]], self)
        node_asg_name = node_group.resources.apply(autoscaling_group_name)
        if args.alarm_topic_arn is not None:
            _node_cpu_alarm(name, args, node_asg_name, self)

        self.cluster_name = cluster.name
        self.cluster_endpoint = cluster.endpoint
        self.cluster_certificate_authority = cluster.certificate_authority.apply(lambda authority: authority.data)
        self.cluster_security_group_id = cluster_sg_id
        self.node_security_group_id = node_sg.id
        self.node_role_arn = node_role.arn
        self.node_autoscaling_group_name = node_asg_name
        self.oidc_provider_arn = oidc_provider.arn
        self.oidc_provider_url = issuer
        self.kubeconfig = kubeconfig
        self.provider = provider
        self.register_outputs({
            "cluster_name": self.cluster_name,
            "cluster_endpoint": self.cluster_endpoint,
            "cluster_certificate_authority": self.cluster_certificate_authority,
            "cluster_security_group_id": self.cluster_security_group_id,
            "node_security_group_id": self.node_security_group_id,
            "node_role_arn": self.node_role_arn,
            "node_autoscaling_group_name": self.node_autoscaling_group_name,
            "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_provider_url": self.oidc_provider_url,
            "kubeconfig": self.kubeconfig,
            "provider": self.provider,
        })


# --- Builders (each creates its children under ``parent``; names derive from the component name) ----------


def _service_role(name: str, args: EksClusterArgs, part: str, service: str, what: str, policies: tuple[str, ...],
                  parent: pulumi.Resource) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """The IAM role an AWS service assumes for one ``part`` of the cluster (``cluster``: the control plane,
    ``node``: the nodes), with AWS's managed ``policies`` attached; names ``<name>-<part>-role`` and
    ``<name>-<part>-<policy>``."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-{part}-role",
        description=f"EKS {what} of {args.cluster_name} (phasekit)",
        assume_role_policy=assume_role_policy(service),
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-{part}"),
        opts=child,
    )
    attachments = [
        aws.iam.RolePolicyAttachment(f"{name}-{part}-{_policy_slug(policy)}", role=role.name,
                                     policy_arn=MANAGED_POLICY + policy, opts=child)
        for policy in policies
    ]
    return role, attachments


def check_against_the_running_cluster(cluster_name: str, version: str, endpoint_public_access_cidrs: Sequence[str],
                                      lookup: pulumi.InvokeOptions, warn_on: pulumi.Resource | None = None) -> None:
    """Refuses a ``version`` EKS cannot move the running cluster to in one ``up`` (``version_step_problem``: more
    than one minor up, or down), and a first deploy nothing could reach (``private_first_deploy_problem``): refused
    by ``pulumi up``, a warning on ``warn_on`` (None: on the stack) in ``pulumi preview`` (which creates nothing,
    and should still show the rest of the plan). EksCluster runs it before any child unless told the program did:
    a program should run it before any resource of its stack (infra/phase3.py ``preflight``), since ``pulumi up
    --skip-preview``, as CI runs it, would otherwise create what the program registered first."""
    running = running_version(cluster_name, lookup)
    step = None if running is None else version_step_problem(running, version)
    if step is not None:
        raise ValueError(step)
    unreachable = private_first_deploy_problem(cluster_name, running, endpoint_public_access_cidrs)
    if unreachable is None:
        return
    if not pulumi.runtime.is_dry_run():
        raise ValueError(unreachable)
    pulumi.log.warn(unreachable, resource=warn_on)


def private_first_deploy_problem(cluster_name: str, running: str | None,
                                 endpoint_public_access_cidrs: Sequence[str]) -> str | None:
    """Why a first deploy (``running`` None: the account lists no such cluster) with no public API endpoint cannot
    finish, or None.

    The private endpoint admits only EKS's cluster security group and ``api_access_security_group_ids``, all inside
    a VPC this same ``up`` creates, so the machine running it cannot reach the API: Pulumi would create everything
    before the first Kubernetes object (the network, the cluster, the database, the cache and the load balancer,
    30-40 minutes) and only then fail. With a private-only endpoint, kubectl and everything like it "must be run
    within the cluster VPC" (https://docs.aws.amazon.com/eks/latest/eksctl/vpc-cluster-access.html; eksctl refuses a
    private-only endpoint at creation for this reason). A running cluster is fine: its later deploys may run from
    inside the VPC."""
    if running is not None or list(endpoint_public_access_cidrs):
        return None
    return (f"cluster.endpointPublicAccessCidrs is empty and the account has no EKS cluster {cluster_name!r} yet: a "
            "first deploy cannot reach a private-only API endpoint (the VPC, and so any runner inside it, does not "
            "exist yet), so pulumi up would build the network, the cluster, the database, the cache and the load "
            "balancer (30-40 minutes) and then fail at the first Kubernetes object; set "
            "cluster.endpointPublicAccessCidrs to the address the first deploy runs from; later deploys may run "
            "from inside the VPC with cluster.apiAccessSecurityGroupIds and the CIDRs removed")


def _secrets_key(name: str, args: EksClusterArgs, cluster_role: aws.iam.Role, parent: pulumi.Resource,
                 ) -> aws.kms.Key:
    """The key envelope-encrypting Secrets and its alias. Only its key policy (``secrets_key_document``) grants
    anything on it, to the cluster role and the admins: an IAM policy could not (no statement enables them)."""
    child = pulumi.ResourceOptions(parent=parent)
    secrets_key = aws.kms.Key(
        f"{name}-secrets-key",
        description=f"Envelope encryption of Kubernetes Secrets in EKS cluster {args.cluster_name}",
        enable_key_rotation=True,
        deletion_window_in_days=KMS_DELETION_WINDOW_DAYS,
        policy=cluster_role.arn.apply(lambda role_arn: secrets_key_document(role_arn, args.admin_principal_arns)),
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-secrets"),
        opts=child,
    )
    aws.kms.Alias(f"{name}-secrets-key", name=f"alias/eks/{args.cluster_name}",
                  target_key_id=secrets_key.key_id, opts=child)
    return secrets_key


def _control_plane_log_group(name: str, args: EksClusterArgs, parent: pulumi.Resource) -> aws.cloudwatch.LogGroup:
    log_group_name = control_plane_log_group_name(args.cluster_name)
    # A lookup at program time (not inside an apply): it decides a resource option, never how many exist.
    existing_groups = aws.cloudwatch.get_log_groups(log_group_name_prefix=log_group_name,
                                                    opts=pulumi.InvokeOptions(parent=parent)).log_group_names
    return aws.cloudwatch.LogGroup(
        f"{name}-control-plane-logs",
        name=log_group_name,
        retention_in_days=args.log_retention_days,
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-control-plane"),
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True,
                                    import_=log_group_import_id(log_group_name, existing_groups or [])),
    )


def _cluster(name: str, args: EksClusterArgs, cluster_role: aws.iam.Role, secrets_key: aws.kms.Key,
             depends_on: list[pulumi.Resource], parent: pulumi.Resource) -> aws.eks.Cluster:
    public_cidrs = list(args.endpoint_public_access_cidrs)
    return aws.eks.Cluster(
        f"{name}-cluster",
        name=args.cluster_name,
        version=args.version,
        role_arn=cluster_role.arn,
        vpc_config=aws.eks.ClusterVpcConfigArgs(
            subnet_ids=args.subnet_ids,
            endpoint_private_access=True,
            endpoint_public_access=bool(public_cidrs),
            # Omitted when private-only: AWS would otherwise report its 0.0.0.0/0 default back.
            public_access_cidrs=public_cidrs or None,
        ),
        access_config=aws.eks.ClusterAccessConfigArgs(
            authentication_mode="API",
            bootstrap_cluster_creator_admin_permissions=False,
        ),
        encryption_config=aws.eks.ClusterEncryptionConfigArgs(
            provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
            resources=["secrets"],
        ),
        enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
        # Explicit, so the bill does not depend on the provider's default (EXTENDED when unset).
        upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=SupportType(args.support_type).value),
        tags=aws_tags(args.tags, Name=args.cluster_name),
        # The log group and the role's policies must exist before the control plane starts (the key is an input).
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )


def _oidc_provider(name: str, args: EksClusterArgs, issuer: pulumi.Output[str],
                   parent: pulumi.Resource) -> aws.iam.OpenIdConnectProvider:
    return aws.iam.OpenIdConnectProvider(
        f"{name}-oidc",
        url=issuer,
        client_id_lists=[OIDC_AUDIENCE],
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-oidc"),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _node_security_group(name: str, args: EksClusterArgs, parent: pulumi.Resource) -> aws.ec2.SecurityGroup:
    child = pulumi.ResourceOptions(parent=parent)
    node_sg = aws.ec2.SecurityGroup(
        f"{name}-node-sg",
        description=f"EKS nodes of {args.cluster_name} (phasekit)",
        vpc_id=args.vpc_id,
        # No kubernetes.io/cluster tag: the load balancer controller needs exactly one tagged group per
        # node ENI, and EKS's cluster security group already carries it.
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-node"),
        opts=child,
    )
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-node-sg-self",
        security_group_id=node_sg.id,
        referenced_security_group_id=node_sg.id,
        ip_protocol="-1",
        description="Node to node, all traffic (pod networking)",
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-node-self"),
        opts=child,
    )
    aws.vpc.SecurityGroupEgressRule(
        f"{name}-node-sg-egress",
        security_group_id=node_sg.id,
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="-1",
        description="All egress: image pulls and AWS APIs through the NAT gateways",
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-node-egress"),
        opts=child,
    )
    return node_sg


API_ACCESS_DESCRIPTION = "Kubernetes API (HTTPS) from an admitted group, e.g. a CI runner or bastion in the VPC"


def _api_access_rules(name: str, args: EksClusterArgs, cluster_sg_id: pulumi.Output[str],
                      parent: pulumi.Resource) -> list[aws.vpc.SecurityGroupIngressRule]:
    """One rule per ``api_access_security_group_ids`` entry on EKS's cluster security group (the one on the
    control plane's ENIs, which admits only itself): tcp 443 from that group. Named after the group id, so
    the list's order never renames (and so never replaces) a rule."""
    return [aws.vpc.SecurityGroupIngressRule(
        f"{name}-api-from-{group_id}",
        security_group_id=cluster_sg_id,
        referenced_security_group_id=group_id,
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
        description=API_ACCESS_DESCRIPTION,
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-api-from-{group_id}"),
        opts=pulumi.ResourceOptions(parent=parent),
    ) for group_id in args.api_access_security_group_ids]


def _launch_template(name: str, args: EksClusterArgs, security_group_ids: list[pulumi.Input[str]],
                     parent: pulumi.Resource) -> aws.ec2.LaunchTemplate:
    node_tags = aws_tags(args.tags, Name=f"{args.cluster_name}-node")
    return aws.ec2.LaunchTemplate(
        f"{name}-node-template",
        description=f"EKS nodes of {args.cluster_name}: IMDSv2 only, encrypted gp3 root (phasekit)",
        update_default_version=True,
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            # 1 hop: the node itself reaches IMDS, pods (one hop further) cannot take the node role.
            http_put_response_hop_limit=1,
        ),
        block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
            device_name=ROOT_DEVICE,
            ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                volume_size=args.node_disk_size_gib,
                volume_type="gp3",
                encrypted="true",
                delete_on_termination="true",
            ),
        )],
        # The node security group plus the cluster's own (the control plane reaches kubelets through it).
        vpc_security_group_ids=security_group_ids,
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=resource_type, tags=node_tags)
            for resource_type in ("instance", "volume")
        ],
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-node"),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _node_group(name: str, args: EksClusterArgs, ami_type: str, cluster: aws.eks.Cluster, node_role: aws.iam.Role,
                launch_template: aws.ec2.LaunchTemplate, depends_on: list[pulumi.Resource],
                parent: pulumi.Resource) -> aws.eks.NodeGroup:
    # A lookup at program time (not inside an apply): it decides an input, never how many resources exist.
    release_version = (aws.ssm.get_parameter_output(name=ami_release_parameter(args.version, ami_type),
                                                    opts=pulumi.InvokeOutputOptions(parent=parent)).value
                       if args.track_latest_ami else None)
    return aws.eks.NodeGroup(
        f"{name}-nodes",
        cluster_name=cluster.name,
        version=cluster.version,
        release_version=release_version,
        node_role_arn=node_role.arn,
        subnet_ids=args.subnet_ids,
        instance_types=list(args.node_instance_types),
        ami_type=ami_type,
        capacity_type="ON_DEMAND",
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=args.node_min_size,
            desired_size=args.node_desired_size,
            max_size=args.node_max_size,
        ),
        update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable_percentage=MAX_UNAVAILABLE_PERCENT),
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
            id=launch_template.id,
            version=launch_template.latest_version.apply(str),
        ),
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-nodes"),
        # The role must hold its policies before nodes join and until the last one is gone; aws-node must be
        # able to assign addresses (the vpc-cni add-on and its role) before any node can turn Ready.
        # The Cluster Autoscaler owns the desired size once the group exists (terraform-aws-modules' node
        # group ignores it the same way); min and max stay Pulumi's.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on,
                                    ignore_changes=list(NODE_GROUP_IGNORED_CHANGES)),
    )


def _admin_access(name: str, args: EksClusterArgs, cluster: aws.eks.Cluster,
                  parent: pulumi.Resource) -> list[aws.eks.AccessPolicyAssociation]:
    """One access entry with cluster-wide ``AmazonEKSClusterAdminPolicy`` per admin, named after the principal
    (so list order never renames one)."""
    admin_policies: list[aws.eks.AccessPolicyAssociation] = []
    for principal_arn in args.admin_principal_arns:
        slug = admin_slug(principal_arn)
        entry = aws.eks.AccessEntry(
            f"{name}-admin-{slug}",
            cluster_name=cluster.name,
            principal_arn=principal_arn,
            type="STANDARD",
            tags=aws_tags(args.tags),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        admin_policies.append(aws.eks.AccessPolicyAssociation(
            f"{name}-admin-{slug}",
            cluster_name=cluster.name,
            principal_arn=entry.principal_arn,
            policy_arn=CLUSTER_ADMIN_POLICY,
            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[entry]),
        ))
    return admin_policies


def _kubernetes_provider(name: str, args: EksClusterArgs, cluster: aws.eks.Cluster,
                         depends_on: list[pulumi.Resource], parent: pulumi.Resource,
                         ) -> tuple[pulumi.Output[str], kubernetes.Provider]:
    kubeconfig = pulumi.Output.secret(pulumi.Output.all(
        cluster.endpoint, cluster.certificate_authority.apply(lambda authority: authority.data),
    ).apply(lambda values: render_kubeconfig(args.cluster_name, values[0], values[1], args.region)))
    provider = kubernetes.Provider(
        f"{name}-k8s",
        kubeconfig=kubeconfig,
        # Until an admin's access policy and the nodes exist, nothing deployed through it could succeed.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
    return kubeconfig, provider


EBS_CSI_ADDON = "aws-ebs-csi-driver"
DEFAULT_STORAGE_CLASS = "gp3"


def default_storage_class_spec() -> dict[str, object]:
    """The cluster's default StorageClass, as the Kubernetes API takes it.

    phasekit does not rely on whatever class EKS may or may not mark as the default on a new cluster (the
    in-tree ``gp2`` class; reported not to be the default on clusters created on 1.30 or later, which this
    machine could not check against the EKS release notes): a claim that names no class gets this one.
    ``Retain``: deleting a claim (or the namespace) keeps its volume, so no ordinary change destroys data;
    ``WaitForFirstConsumer``: the volume is created in the zone of the node its pod lands on; gp3 encrypted
    at rest, growable in place (the EBS CSI driver's parameters ``type`` and ``encrypted``)."""
    return {
        "metadata": {"name": DEFAULT_STORAGE_CLASS,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3", "encrypted": "true"},
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


def _default_storage_class(name: str, provider: kubernetes.Provider, depends_on: list[pulumi.Resource],
                           parent: pulumi.Resource) -> kubernetes.storage.v1.StorageClass:
    spec = default_storage_class_spec()
    return kubernetes.storage.v1.StorageClass(
        f"{name}-{DEFAULT_STORAGE_CLASS}",
        metadata=kubernetes.meta.v1.ObjectMetaArgs(**spec["metadata"]),
        provisioner=spec["provisioner"],
        parameters=spec["parameters"],
        reclaim_policy=spec["reclaimPolicy"],
        volume_binding_mode=spec["volumeBindingMode"],
        allow_volume_expansion=spec["allowVolumeExpansion"],
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=depends_on),
    )


def _node_cpu_alarm(name: str, args: EksClusterArgs, node_asg_name: pulumi.Output[str],
                    parent: pulumi.Resource) -> aws.cloudwatch.MetricAlarm:
    return aws.cloudwatch.MetricAlarm(
        f"{name}-node-cpu-alarm",
        alarm_description=(f"EKS {args.cluster_name}: node CPU above {args.node_cpu_alarm_percent:g}% "
                           f"for {ALARM_PERIOD_SECONDS * ALARM_EVALUATION_PERIODS // 60} minutes"),
        namespace="AWS/EC2",
        metric_name="CPUUtilization",
        dimensions={"AutoScalingGroupName": node_asg_name},
        statistic="Average",
        period=ALARM_PERIOD_SECONDS,
        evaluation_periods=ALARM_EVALUATION_PERIODS,
        comparison_operator="GreaterThanThreshold",
        threshold=args.node_cpu_alarm_percent,
        alarm_actions=[args.alarm_topic_arn],
        ok_actions=[args.alarm_topic_arn],
        tags=aws_tags(args.tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _addon_role(name: str, addon: str, args: EksClusterArgs, oidc_provider: aws.iam.OpenIdConnectProvider,
                issuer: pulumi.Output[str], child: pulumi.ResourceOptions,
                ) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
    """The IRSA role of one add-on: only its ServiceAccount may assume it, and it holds one managed policy."""
    namespace, service_account, policy = _addon_identity(addon)
    role = aws.iam.Role(
        f"{name}-{addon}-role",
        description=f"EKS add-on {addon} of {args.cluster_name} (phasekit)",
        assume_role_policy=pulumi.Output.all(oidc_provider.arn, issuer).apply(
            lambda values: irsa_trust_policy(values[0], values[1], namespace, service_account)),
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-{addon}"),
        opts=child,
    )
    attachment = aws.iam.RolePolicyAttachment(f"{name}-{addon}-{_policy_slug(policy.rsplit('/', 1)[-1])}",
                                              role=role.name, policy_arn=MANAGED_POLICY + policy, opts=child)
    return role, attachment


def _addon_identity(addon: str) -> tuple[str, str, str]:
    """(namespace, ServiceAccount, managed policy) of an add-on that has its own role."""
    if addon == CONTAINER_LOGS_ADDON:
        return CONTAINER_LOGS_NAMESPACE, CONTAINER_LOGS_SERVICE_ACCOUNT, CONTAINER_LOGS_POLICY
    return "kube-system", *ADDON_ROLES[addon]


def _container_log_groups(name: str, args: EksClusterArgs, parent: pulumi.Resource) -> list[aws.cloudwatch.LogGroup]:
    """Deleted with the stack: the add-on (their only writer) depends on them, so it is deleted first."""
    return [aws.cloudwatch.LogGroup(f"{name}-container-logs-{kind}",
                                    name=container_log_group_name(args.cluster_name, kind),
                                    retention_in_days=args.log_retention_days,
                                    tags=aws_tags(args.tags, Name=f"{args.cluster_name}-containers-{kind}"),
                                    opts=pulumi.ResourceOptions(parent=parent))
            for kind in CONTAINER_LOG_GROUPS]


def _addon(name: str, addon: str, args: EksClusterArgs, cluster: aws.eks.Cluster,
           role: tuple[aws.iam.Role, aws.iam.RolePolicyAttachment] | None, depends_on: list[pulumi.Resource],
           parent: pulumi.Resource) -> aws.eks.Addon:
    """One managed add-on, taking over EKS's self-managed copy (``OVERWRITE``), with its IRSA role if it has one
    (and only after that role holds its policy)."""
    pinned = addon_version(addon, args.version)
    return aws.eks.Addon(
        f"{name}-{addon}",
        cluster_name=cluster.name,
        addon_name=addon,
        addon_version=pinned if pinned is not None else addon_version_lookup(addon, args.version, parent),
        configuration_values=(CONTAINER_LOGS_CONFIGURATION if addon == CONTAINER_LOGS_ADDON
                              else ADDON_CONFIGURATION.get(addon)),
        service_account_role_arn=role[0].arn if role is not None else None,
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        tags=aws_tags(args.tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[*depends_on, *([role[1]] if role else [])]),
    )


def _policy_slug(policy: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", policy.lower()).strip("-")


def _check_args(args: EksClusterArgs) -> str:
    """Validates the args and returns the node group's AMI type."""
    if not _CLUSTER_NAME.fullmatch(args.cluster_name):
        raise ValueError(f"EksClusterArgs.cluster_name: {args.cluster_name!r}; allowed: 1-100 letters, digits, "
                         "'-' and '_', starting with a letter or digit")
    if not _VERSION.fullmatch(args.version):
        raise ValueError(f"EksClusterArgs.version: {args.version!r}; allowed: a Kubernetes minor version such as "
                         "'1.35'")
    if args.version not in KUBE_PROXY_VERSIONS:
        raise ValueError(f"EksClusterArgs.version: {args.version!r} has no kube-proxy add-on version in "
                         f"KUBE_PROXY_VERSIONS; allowed: one of {', '.join(KUBE_PROXY_VERSIONS)}")
    if args.support_type not in tuple(SupportType):
        raise ValueError(f"EksClusterArgs.support_type: {args.support_type!r}; allowed: STANDARD or EXTENDED")
    for cidr in args.endpoint_public_access_cidrs:
        _check_public_cidr(cidr)
    _check_api_access_groups(args.api_access_security_group_ids)
    if not args.admin_principal_arns:
        raise ValueError("EksClusterArgs.admin_principal_arns: at least one admin is required, and it must "
                         "include the principal running pulumi up (the creator gets no implicit access)")
    slugs = [admin_slug(arn) for arn in args.admin_principal_arns]
    for slug in slugs:
        if slugs.count(slug) > 1:
            raise ValueError(f"EksClusterArgs.admin_principal_arns: two principals are named {slug!r}; "
                             "list each IAM role or user once")
    ami_type = node_ami_type(args.node_instance_types)
    if args.node_min_size < 1:
        raise ValueError(f"EksClusterArgs.node_min_size: {args.node_min_size}; at least 1 node is required")
    if args.node_min_size > args.node_desired_size:
        raise ValueError(f"EksClusterArgs.node_desired_size: {args.node_desired_size} is below node_min_size "
                         f"{args.node_min_size}")
    if args.node_desired_size > args.node_max_size:
        raise ValueError(f"EksClusterArgs.node_desired_size: {args.node_desired_size} is above node_max_size "
                         f"{args.node_max_size}")
    if args.node_disk_size_gib < 20:
        raise ValueError(f"EksClusterArgs.node_disk_size_gib: {args.node_disk_size_gib}; at least 20 GiB "
                         "(the AMI and container images live there)")
    if args.log_retention_days not in CLOUDWATCH_RETENTION_DAYS:
        raise ValueError(f"EksClusterArgs.log_retention_days: {args.log_retention_days} is not a CloudWatch "
                         f"retention period; allowed: {CLOUDWATCH_RETENTION_TEXT}")
    if not isinstance(args.container_logs, bool):
        raise ValueError(f"EksClusterArgs.container_logs: {args.container_logs!r}; allowed: True or False (a string "
                         "such as 'false' would turn log shipping on)")
    if not 0 < args.node_cpu_alarm_percent <= 100:
        raise ValueError(f"EksClusterArgs.node_cpu_alarm_percent: {args.node_cpu_alarm_percent:g}; allowed: "
                         "above 0, at most 100")
    return ami_type


def _check_api_access_groups(group_ids: Sequence[str]) -> None:
    prefix = "EksClusterArgs.api_access_security_group_ids"
    for index, group_id in enumerate(group_ids):
        if not isinstance(group_id, str) or not SECURITY_GROUP_ID.fullmatch(group_id):
            raise ValueError(f"{prefix}: {group_id!r} is not a security group id; allowed: {SECURITY_GROUP_ID_ALLOWED}")
        if group_id in group_ids[:index]:
            raise ValueError(f"{prefix}: {group_id!r} is listed twice; allowed: each security group once")


def _check_public_cidr(cidr: str) -> None:
    prefix = "EksClusterArgs.endpoint_public_access_cidrs"
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        raise ValueError(f"{prefix}: {cidr!r} is not an IPv4 network without host bits, e.g. "
                         "203.0.113.0/24") from None
    if network.version != 4:
        raise ValueError(f"{prefix}: {cidr!r} is IPv6; EKS public access CIDRs are IPv4 only")
    if network.prefixlen == 0:
        raise ValueError(f"{prefix}: {cidr!r} would open the Kubernetes API to the internet; list the "
                         "networks you administer from, or none for a private-only endpoint")
