"""ClusterAutoscaler under the recording mock monitor, its IAM policy exactly, and every Kubernetes object it
renders checked against the real API schemas of each EKS version phasekit deploys (tests/k8s_schema.py).

Mocks and schemas cannot prove: that EKS tags the managed node group's ASG as the IAM condition expects (the
EKS managed node group docs say it does), that the controller image exists and starts under this security
context, that auto-discovery finds the group, or that the API server admits the objects. A real ``pulumi up``
and a Pending pod show those.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from components.aws_choices import CLUSTER_AUTOSCALER_VERSIONS, KUBE_PROXY_VERSIONS
from components.cluster_autoscaler import (
    ClusterAutoscaler,
    ClusterAutoscalerArgs,
    autoscaler_command,
    autoscaler_policy,
)
from components.testing import run_recorded
from infra.domain import EKS_VERSIONS
from tests import k8s_schema

COMPONENT = "phasekit:index:ClusterAutoscaler"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
K8S_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
PREFIX = "urn:pulumi:test::phasekit::phasekit:index:ClusterAutoscaler$"
OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"
LABELS = {"phasekit.dev/stack": "test"}


def autoscaler_args(**overrides: Any) -> ClusterAutoscalerArgs:
    args = ClusterAutoscalerArgs(cluster_name="phasekit-test-eks", kubernetes_version="1.35", region="eu-west-1",
                                 oidc_provider_arn=OIDC_ARN, oidc_provider_url=ISSUER,
                                 tags={"stack": "test"}, labels=LABELS)
    return replace(args, **overrides)


def record(preview: bool = False, **overrides: Any):
    def program() -> None:
        autoscaler = ClusterAutoscaler("autoscaler", autoscaler_args(**overrides))
        pulumi.export("role_arn", autoscaler.role_arn)
        pulumi.export("image", autoscaler.image)
    return run_recorded(program, preview=preview)


def test_children_are_the_role_the_rbac_the_deployment_and_its_budget_all_parented_to_the_component():
    recording = record()
    assert recording.type_counts() == {
        COMPONENT: 1, ROLE: 1, ROLE_POLICY: 1, SERVICE_ACCOUNT: 1, CLUSTER_ROLE: 1, CLUSTER_ROLE_BINDING: 1,
        K8S_ROLE: 1, ROLE_BINDING: 1, DEPLOYMENT: 1, PDB: 1,
    }
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert all(child.name.startswith("autoscaler-") for child in children)
    assert recording.one(DEPLOYMENT).urn == f"{PREFIX}{DEPLOYMENT}::autoscaler-deployment"


def test_only_the_controllers_service_account_can_assume_the_role():
    trust = json.loads(record().one(ROLE).inputs["assumeRolePolicy"])
    assert trust == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": OIDC_ARN},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:kube-system:cluster-autoscaler",
            "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
        }},
    }]}


def test_the_role_may_resize_only_this_clusters_tagged_node_groups():
    policy = record().one(ROLE_POLICY)
    assert json.loads(policy.inputs["policy"]) == {"Version": "2012-10-17", "Statement": [
        {"Sid": "DiscoverNodeGroups", "Effect": "Allow", "Resource": "*", "Action": [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
            "eks:DescribeNodegroup"]},
        {"Sid": "ResizeThisClustersNodeGroups", "Effect": "Allow", "Resource": "*",
         "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
         "Condition": {"StringEquals": {
             "aws:ResourceTag/k8s.io/cluster-autoscaler/phasekit-test-eks": "owned",
             "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true"}}},
    ]}
    assert policy.inputs["role"] == record().one(ROLE).id


def test_no_write_action_is_allowed_without_the_tag_condition():
    statements = json.loads(autoscaler_policy("c"))["Statement"]
    unconditioned = [action for statement in statements if "Condition" not in statement
                     for action in statement["Action"]]
    assert all(action.split(":")[1].startswith(("Describe", "Get")) for action in unconditioned)


def test_service_account_carries_the_role_annotation():
    recording = record()
    account = recording.one(SERVICE_ACCOUNT).inputs
    assert account["metadata"] == {
        "name": "cluster-autoscaler", "namespace": "kube-system",
        "labels": {**LABELS, "app": "cluster-autoscaler"},
        "annotations": {"eks.amazonaws.com/role-arn": recording.outputs["role_arn"]},
    }


def test_rbac_follows_the_upstream_autodiscover_example_and_binds_the_service_account():
    recording = record()
    rules = recording.one(CLUSTER_ROLE).inputs["rules"]
    assert {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]} in rules
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update"],
            "resourceNames": ["cluster-autoscaler"]} in rules
    assert len(rules) == 13
    # Write verbs only where the controller needs them: no wildcard, no secrets.
    assert not any("*" in rule["verbs"] or "secrets" in rule["resources"] for rule in rules)
    assert recording.one(K8S_ROLE).inputs["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["delete", "get", "update", "watch"],
         "resourceNames": ["cluster-autoscaler-status", "cluster-autoscaler-priority-expander"]},
    ]
    subject = [{"kind": "ServiceAccount", "name": "cluster-autoscaler", "namespace": "kube-system"}]
    for binding_type, kind in ((CLUSTER_ROLE_BINDING, "ClusterRole"), (ROLE_BINDING, "Role")):
        binding = recording.one(binding_type).inputs
        assert binding["subjects"] == subject
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": kind,
                                      "name": "cluster-autoscaler"}


def test_deployment_runs_the_release_of_the_cluster_minor_with_the_chosen_flags():
    recording = record()
    spec = recording.one(DEPLOYMENT).inputs["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert spec["replicas"] == 1
    assert container["image"] == ("registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.2@sha256:"
                                  "aac369dc283927a623deb1af54696efcc722ae79255aa07788422e495bab887d")
    assert recording.outputs["image"] == container["image"]
    assert container["command"] == [
        "./cluster-autoscaler", "--cloud-provider=aws", "--namespace=kube-system",
        "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
        "k8s.io/cluster-autoscaler/phasekit-test-eks",
        "--balance-similar-node-groups", "--expander=least-waste", "--skip-nodes-with-system-pods=false",
        "--skip-nodes-with-local-storage=false", "--stderrthreshold=info", "--v=2",
    ]
    # Pods cannot reach IMDS (hop limit 1), so the region is given.
    assert container["env"] == [{"name": "AWS_REGION", "value": "eu-west-1"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["serviceAccountName"] == "cluster-autoscaler"
    assert spec["template"]["metadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "600Mi"}, "limits": {"memory": "600Mi"}}
    probe = {"httpGet": {"path": "/health-check", "port": 8085}}
    assert (container["livenessProbe"], container["readinessProbe"]) == (probe, probe)


def test_deployment_runs_restricted_non_root_with_a_read_only_root():
    pod = record().one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                      "fsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def test_deployment_waits_for_its_permissions():
    recording = record()
    dependencies = set(recording.one(DEPLOYMENT).dependencies)
    assert {recording.one(ROLE_POLICY).urn, recording.one(SERVICE_ACCOUNT).urn,
            recording.one(CLUSTER_ROLE_BINDING).urn, recording.one(ROLE_BINDING).urn} <= dependencies


def test_budget_selects_the_controller():
    spec = record().one(PDB).inputs["spec"]
    assert spec == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "cluster-autoscaler"}}}


@pytest.mark.parametrize("version", EKS_VERSIONS)
def test_every_object_validates_against_each_eks_version(version):
    rendered = k8s_schema.manifests(record(kubernetes_version=version))
    assert len(rendered) == 7
    assert [error for manifest in rendered for error in k8s_schema.validate(manifest, version)] == []


@pytest.mark.parametrize("version", EKS_VERSIONS)
def test_the_image_follows_the_cluster_minor(version):
    image = record(kubernetes_version=version).one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"][0]
    assert image["image"].startswith(f"registry.k8s.io/autoscaling/cluster-autoscaler:v{version}.")


def test_the_release_table_covers_every_version_phasekit_deploys():
    assert tuple(CLUSTER_AUTOSCALER_VERSIONS) == EKS_VERSIONS == tuple(KUBE_PROXY_VERSIONS)
    assert all(release.startswith(f"v{minor}.") for minor, release in CLUSTER_AUTOSCALER_VERSIONS.items())


def test_preview_registers_every_child():
    assert len(record(preview=True).resources) == 10


def test_command_names_the_cluster():
    assert "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/x" in (
        autoscaler_command("x"))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"kubernetes_version": "1.32"},
     "ClusterAutoscalerArgs.kubernetes_version: '1.32' has no cluster-autoscaler release in "
     "CLUSTER_AUTOSCALER_VERSIONS; allowed: one of 1.33, 1.34, 1.35, 1.36"),
    ({"cluster_name": ""}, "ClusterAutoscalerArgs.cluster_name: empty; allowed: the EKS cluster's name"),
])
def test_invalid_args_are_refused_with_exact_messages(overrides, message):
    with pytest.raises(ValueError) as error:
        ClusterAutoscaler("autoscaler", autoscaler_args(**overrides))
    assert str(error.value) == message
