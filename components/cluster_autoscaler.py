"""ClusterAutoscaler: the Kubernetes Cluster Autoscaler for an EKS cluster's managed node group.

Creates
- an IAM role for service accounts (IRSA) that only ``kube-system/cluster-autoscaler`` can assume through the
  cluster's OIDC provider, with an inline policy (``autoscaler_policy``): the read-only describes auto-discovery
  needs on any resource, and ``autoscaling:SetDesiredCapacity`` / ``TerminateInstanceInAutoScalingGroup`` only
  on Auto Scaling groups tagged ``k8s.io/cluster-autoscaler/<cluster_name> = owned`` and
  ``k8s.io/cluster-autoscaler/enabled = true``: EKS puts exactly those tags on every managed node group's ASG
  (https://docs.aws.amazon.com/eks/latest/userguide/managed-node-groups.html), so the role can resize this
  cluster's node groups and no other ASG of the account;
- in ``kube-system``: the ServiceAccount (annotated with the role), the ClusterRole/Role and their bindings
  (the rules of the upstream ``cloudprovider/aws/examples/cluster-autoscaler-autodiscover.yaml``,
  https://github.com/kubernetes/autoscaler), a one-replica Deployment of
  ``registry.k8s.io/autoscaling/cluster-autoscaler`` at the release matching the Kubernetes minor
  (``CLUSTER_AUTOSCALER_VERSIONS``; upstream supports only the matching minor), and a PodDisruptionBudget.

The controller discovers the node group's ASG by those tags, adds nodes while pods are Pending for lack of
room (up to the node group's ``max_size``) and removes nodes that stay under half used for 10 minutes (down
to ``min_size``), choosing the node group that wastes least (``--expander=least-waste``). Its pod runs as
``system-cluster-critical`` (it must run to add the room other pods need), non-root, read-only root, no
capabilities, and is marked not safe to evict so it never drains itself away mid-decision. ``AWS_REGION`` is
set explicitly: the nodes' IMDS hop limit of 1 keeps pods from reading the region from instance metadata.

Does not create or change the node group: EksCluster leaves the group's desired size to this controller
(``ignore_changes`` on ``scalingConfig.desiredSize``). Cost: the pod's requests (100m CPU, 600Mi, on a node you
already pay for); the nodes it adds bill as EC2. Stateless: deleting it leaves the node group at its current
size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws_choices import CLUSTER_AUTOSCALER_VERSIONS
from components.eks_cluster import irsa_trust_policy
from components.tags import aws_tags

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"
"""Fixed (not auto-named): the IRSA trust policy names it, and the RBAC rules name the lease and status
ConfigMap the controller uses."""

IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler"
METRICS_PORT = 8085
RUN_AS_USER = 65534
"""``nobody``, as the upstream example runs it."""

CPU_REQUEST = "100m"
MEMORY = "600Mi"
"""Requests and memory limit of the upstream example manifest."""

SCALING_ACTIONS = ("autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup")
DESCRIBE_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",
)
"""The actions of the upstream AWS README's recommended policy
(cluster-autoscaler/cloudprovider/aws/README.md, "IAM Policy"): the describes work only on ``*``."""

CLUSTER_ROLE_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    # (apiGroups, resources, verbs, resourceNames), as in cluster-autoscaler-autodiscover.yaml.
    (("",), ("events", "endpoints"), ("create", "patch"), ()),
    (("",), ("pods/eviction",), ("create",), ()),
    (("",), ("pods/status",), ("update",), ()),
    (("",), ("endpoints",), ("get", "update"), ("cluster-autoscaler",)),
    (("",), ("nodes",), ("watch", "list", "get", "update"), ()),
    (("",), ("namespaces", "pods", "services", "replicationcontrollers", "persistentvolumeclaims",
             "persistentvolumes"), ("watch", "list", "get"), ()),
    (("extensions",), ("replicasets", "daemonsets"), ("watch", "list", "get"), ()),
    (("policy",), ("poddisruptionbudgets",), ("watch", "list"), ()),
    (("apps",), ("statefulsets", "replicasets", "daemonsets"), ("watch", "list", "get"), ()),
    (("storage.k8s.io",), ("storageclasses", "csinodes", "csidrivers", "csistoragecapacities"),
     ("watch", "list", "get"), ()),
    (("batch", "extensions"), ("jobs",), ("get", "list", "watch", "patch"), ()),
    (("coordination.k8s.io",), ("leases",), ("create",), ()),
    (("coordination.k8s.io",), ("leases",), ("get", "update"), ("cluster-autoscaler",)),
)
ROLE_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (("",), ("configmaps",), ("create", "list", "watch"), ()),
    (("",), ("configmaps",), ("delete", "get", "update", "watch"),
     ("cluster-autoscaler-status", "cluster-autoscaler-priority-expander")),
)


@dataclass
class ClusterAutoscalerArgs:
    cluster_name: str
    """Physical EKS cluster name: the ASG tags the controller discovers and the IAM condition name it."""

    kubernetes_version: str
    """The cluster's Kubernetes minor (``"1.35"``), one of ``CLUSTER_AUTOSCALER_VERSIONS``; picks the image."""

    region: str
    """AWS region of the cluster (the controller's ``AWS_REGION``)."""

    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider (EksCluster's ``oidc_provider_arn``)."""

    oidc_provider_url: pulumi.Input[str]
    """The cluster's issuer URL with ``https://`` (EksCluster's ``oidc_provider_url``)."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on the IAM role."""

    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels on every Kubernetes object (merged with the ``app: cluster-autoscaler`` selector label)."""


def autoscaler_image(kubernetes_version: str) -> str:
    """The controller image for a Kubernetes minor (pinned by digest where the table has one); the release
    must match the cluster's minor."""
    return f"{IMAGE}:{CLUSTER_AUTOSCALER_VERSIONS[kubernetes_version]}"


def autoscaler_policy(cluster_name: str) -> str:
    """The role's inline policy: describes anywhere, resizing only this cluster's tagged node group ASGs."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DiscoverNodeGroups", "Effect": "Allow", "Action": list(DESCRIBE_ACTIONS), "Resource": "*"},
            {"Sid": "ResizeThisClustersNodeGroups", "Effect": "Allow", "Action": list(SCALING_ACTIONS),
             "Resource": "*",
             "Condition": {"StringEquals": {
                 f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned",
                 "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
             }}},
        ],
    }, sort_keys=True)


def autoscaler_command(cluster_name: str) -> list[str]:
    """The controller's flags: auto-discovery by the EKS tags, least-waste expander, similar node groups
    balanced across zones, and nodes running kube-system pods (coredns, metrics-server) or pods with emptyDir
    volumes (the app's writable paths) still removable: otherwise no node would ever scale down."""
    return [
        "./cluster-autoscaler",
        "--cloud-provider=aws",
        f"--namespace={NAMESPACE}",
        f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/"
        f"{cluster_name}",
        "--balance-similar-node-groups",
        "--expander=least-waste",
        "--skip-nodes-with-system-pods=false",
        "--skip-nodes-with-local-storage=false",
        "--stderrthreshold=info",
        "--v=2",
    ]


def _rules(table: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...],
           ) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    return [k8s.rbac.v1.PolicyRuleArgs(api_groups=list(groups), resources=list(resources), verbs=list(verbs),
                                       resource_names=list(names) or None)
            for groups, resources, verbs, names in table]


def _check_args(args: ClusterAutoscalerArgs) -> None:
    if args.kubernetes_version not in CLUSTER_AUTOSCALER_VERSIONS:
        raise ValueError(f"ClusterAutoscalerArgs.kubernetes_version: {args.kubernetes_version!r} has no "
                         "cluster-autoscaler release in CLUSTER_AUTOSCALER_VERSIONS; allowed: one of "
                         f"{', '.join(CLUSTER_AUTOSCALER_VERSIONS)}")
    if not args.cluster_name:
        raise ValueError("ClusterAutoscalerArgs.cluster_name: empty; allowed: the EKS cluster's name")


class ClusterAutoscaler(pulumi.ComponentResource):
    role_arn: pulumi.Output[str]
    """The controller's IRSA role."""

    image: str
    """The controller image it runs."""

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """``opts`` must carry both providers (``providers=[aws_provider, cluster.provider]``): the role is an
        AWS resource, everything else goes into the cluster."""
        _check_args(args)
        super().__init__("phasekit:index:ClusterAutoscaler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, "app": SERVICE_ACCOUNT}
        selector = {"app": SERVICE_ACCOUNT}

        role, role_policy = _role(name, args, child)

        def metadata(namespaced: bool = True, **extra: object) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=SERVICE_ACCOUNT, namespace=NAMESPACE if namespaced else None,
                                              labels=labels, **extra)

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=metadata(annotations={"eks.amazonaws.com/role-arn": role.arn}),
            opts=child,
        )
        cluster_role = k8s.rbac.v1.ClusterRole(f"{name}-cluster-role", metadata=metadata(namespaced=False),
                                               rules=_rules(CLUSTER_ROLE_RULES), opts=child)
        namespaced_role = k8s.rbac.v1.Role(f"{name}-role", metadata=metadata(), rules=_rules(ROLE_RULES), opts=child)
        subjects = [k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=SERVICE_ACCOUNT, namespace=NAMESPACE)]
        bindings = [
            k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-cluster-role-binding", metadata=metadata(namespaced=False), subjects=subjects,
                role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                                  name=SERVICE_ACCOUNT),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster_role])),
            k8s.rbac.v1.RoleBinding(
                f"{name}-role-binding", metadata=metadata(), subjects=subjects,
                role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                                  name=SERVICE_ACCOUNT),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[namespaced_role])),
        ]

        self.image = autoscaler_image(args.kubernetes_version)
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels,
                        # Upstream's advice for EKS: the node it runs on is never drained by itself.
                        annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}),
                    spec=_pod_spec(args, self.image),
                ),
            ),
            # The controller needs its permissions (AWS and Kubernetes) from its first loop.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service_account, role_policy, *bindings]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=metadata(),
            # One replica: a drain may evict it (it restarts elsewhere), but never two at once if scaled up.
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
            opts=child,
        )

        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn, "image": self.image})


def _role(name: str, args: ClusterAutoscalerArgs, child: pulumi.ResourceOptions,
          ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    role = aws.iam.Role(
        f"{name}-irsa-role",
        description=f"Cluster Autoscaler of EKS cluster {args.cluster_name} (phasekit)",
        assume_role_policy=pulumi.Output.all(args.oidc_provider_arn, args.oidc_provider_url).apply(
            lambda values: irsa_trust_policy(values[0], values[1], NAMESPACE, SERVICE_ACCOUNT)),
        tags=aws_tags(args.tags, Name=f"{args.cluster_name}-cluster-autoscaler"),
        opts=child,
    )
    policy = aws.iam.RolePolicy(f"{name}-irsa-scaling", role=role.id, policy=autoscaler_policy(args.cluster_name),
                                opts=child)
    return role, policy


def _pod_spec(args: ClusterAutoscalerArgs, image: str) -> k8s.core.v1.PodSpecArgs:
    """The restricted Pod Security profile: non-root, no privilege escalation, no capabilities, RuntimeDefault
    seccomp, read-only root (the controller writes nothing to disk)."""
    return k8s.core.v1.PodSpecArgs(
        service_account_name=SERVICE_ACCOUNT,
        priority_class_name="system-cluster-critical",
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, fs_group=RUN_AS_USER,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        containers=[k8s.core.v1.ContainerArgs(
            name=SERVICE_ACCOUNT,
            image=image,
            command=autoscaler_command(args.cluster_name),
            env=[k8s.core.v1.EnvVarArgs(name="AWS_REGION", value=args.region)],
            ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=METRICS_PORT)],
            # /health-check answers 200 once the controller loop runs (the upstream chart probes it too).
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path="/health-check", port=METRICS_PORT)),
            readiness_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path="/health-check", port=METRICS_PORT)),
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": CPU_REQUEST, "memory": MEMORY}, limits={"memory": MEMORY}),
            security_context=k8s.core.v1.SecurityContextArgs(
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            ),
        )],
    )
