"""EksCluster under the recording mock monitor, and its pure helpers (kubeconfig, AMI choice, policies).

Mocks cannot prove that AWS accepts these inputs (that the Kubernetes version and add-ons exist, that the
node group joins with this launch template, that EKS can use the KMS key through the cluster role), that
``aws eks get-token`` works on the deploying machine, or how a change diffs against a live cluster (e.g.
which changes replace it); a real ``pulumi preview``/``up`` shows those. The ids, ARNs, endpoint and CA
below are the harness's deterministic fakes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
import yaml

from components.aws_choices import allocatable, kube_reserved_cpu_millicores, pods_that_fit, version_step_problem
from components.eks_cluster import (
    EksCluster,
    EksClusterArgs,
    admin_slug,
    autoscaling_group_name,
    control_plane_log_group_name,
    irsa_trust_policy,
    log_group_import_id,
    node_ami_type,
    render_kubeconfig,
    secrets_key_document,
)
from components.testing import INVOKE_RESULTS, UNKNOWN_MASK, run_recorded

TAGS = {"project": "phasekit", "stack": "test", "phase": "3", "managed-by": "phasekit"}
ADMIN = "arn:aws:iam::123456789012:role/platform-admin"
CI_ADMIN = "arn:aws:iam::123456789012:user/ci/deployer"
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"

COMPONENT = "phasekit:index:EksCluster"
CLUSTER = "aws:eks/cluster:Cluster"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ADDON = "aws:eks/addon:Addon"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
K8S_PROVIDER = "pulumi:providers:kubernetes"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
PREFIX = "urn:pulumi:test::phasekit::phasekit:index:EksCluster$"
OUTPUTS = ("cluster_name", "cluster_endpoint", "cluster_certificate_authority", "cluster_security_group_id",
           "node_security_group_id", "node_role_arn", "node_autoscaling_group_name", "oidc_provider_arn",
           "oidc_provider_url", "kubeconfig")

# The harness's fakes for the cluster "eks-cluster" (sha256 of the logical name).
ENDPOINT = "https://9076B5AA2C3A198CE4F9098E5BF63223.gr7.us-east-1.eks.amazonaws.com"
CA_DATA = "9076b5aa2c3a198ce4f9098e5bf632232c64d5a300dc3f7f660a63fbbdd84056"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/9076B5AA2C3A198CE4F9098E5BF63223"
CLUSTER_SG = "sg-9076b5aa2c3a198ce"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/e300535c-8524-0ce9-4c00-8636576f37b0"
OIDC_ARN = ("arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/"
            "2885329478CC31D1BBABA0CFF2B1ED27")


def eks_args(**overrides: Any) -> EksClusterArgs:
    args = EksClusterArgs(
        cluster_name="phasekit-test",
        version="1.35",
        region="us-east-1",
        vpc_id="vpc-0abc",
        subnet_ids=["subnet-a", "subnet-b"],
        endpoint_public_access_cidrs=["203.0.113.0/24"],
        admin_principal_arns=[ADMIN],
        node_instance_types=["t3.large"],
        tags=TAGS,
    )
    return replace(args, **overrides)


def record(preview: bool = False, **overrides: Any):
    def program() -> None:
        cluster = EksCluster("eks", eks_args(**overrides))
        for output in OUTPUTS:
            pulumi.export(output, getattr(cluster, output))
    return run_recorded(program, preview=preview)


def by_name(recording, type_token: str) -> dict[str, Any]:
    return {resource.name: resource for resource in recording.of_type(type_token)}


def expected_counts(admins: int = 1, alarm: int = 0) -> dict[str, int]:
    counts = {
        COMPONENT: 1, ROLE: 4, ATTACHMENT: 5, KEY: 1, ALIAS: 1, LOG_GROUP: 1, CLUSTER: 1,
        OIDC: 1, SG: 1, INGRESS: 1, EGRESS: 1, LAUNCH_TEMPLATE: 1, NODE_GROUP: 1, ADDON: 6,
        ACCESS_ENTRY: admins, ACCESS_POLICY: admins, K8S_PROVIDER: 1, STORAGE_CLASS: 1,
    }
    if alarm:
        counts[ALARM] = alarm
    return counts


# --- topology ------------------------------------------------------------------------------------------

def test_children_are_exactly_the_cluster_topology_all_parented_to_the_component():
    recording = record()
    assert recording.type_counts() == expected_counts()
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert all(child.name.startswith("eks-") for child in children)


def test_cluster_inputs_exact():
    recording = record()
    cluster = recording.one(CLUSTER)
    assert cluster.inputs == {
        "name": "phasekit-test",
        "version": "1.35",
        "roleArn": "arn:aws:iam::123456789012:role/eks-cluster-role-3b586c2",
        "vpcConfig": {
            "subnetIds": ["subnet-a", "subnet-b"],
            "endpointPrivateAccess": True,
            "endpointPublicAccess": True,
            "publicAccessCidrs": ["203.0.113.0/24"],
        },
        "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False},
        "encryptionConfig": {"provider": {"keyArn": KEY_ARN}, "resources": ["secrets"]},
        "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
        # Explicit, not the provider's default: STANDARD never bills the $0.60/hour extended support.
        "upgradePolicy": {"supportType": "STANDARD"},
        "tags": {**TAGS, "Name": "phasekit-test"},
    }
    # EKS must find the log group Pulumi manages (with retention), and its role ready, when it starts.
    assert {f"{PREFIX}aws:cloudwatch/logGroup:LogGroup::eks-control-plane-logs",
            f"{PREFIX}aws:iam/rolePolicyAttachment:RolePolicyAttachment::eks-cluster-amazoneksclusterpolicy",
            f"{PREFIX}aws:kms/key:Key::eks-secrets-key"} <= set(cluster.dependencies)
    assert cluster.urn == f"{PREFIX}aws:eks/cluster:Cluster::eks-cluster"


def test_no_public_cidrs_means_a_private_only_endpoint():
    # Against a running cluster: a first deploy without public CIDRs is refused (see the first-deploy tests below).
    recording = run_recorded(lambda: EksCluster("eks", eks_args(endpoint_public_access_cidrs=[])),
                             invoke_results=running_cluster("1.35"))
    assert recording.one(CLUSTER).inputs["vpcConfig"] == {
        "subnetIds": ["subnet-a", "subnet-b"],
        "endpointPrivateAccess": True,
        "endpointPublicAccess": False,
    }


def test_control_plane_log_group_is_named_for_the_cluster_with_retention():
    recording = record(log_retention_days=365)
    group = recording.one(LOG_GROUP)
    assert group.inputs == {"name": "/aws/eks/phasekit-test/cluster", "retentionInDays": 365,
                            "tags": {**TAGS, "Name": "phasekit-test-control-plane"}}


def test_control_plane_log_group_survives_a_destroy_and_a_new_stack_creates_it_when_none_is_left():
    group = record().one(LOG_GROUP)
    # EKS writes (and would re-create the group) after the cluster is gone: the group stays, with retention.
    assert group.retain_on_delete is True
    assert group.import_id is None
    assert group.urn == f"{PREFIX}aws:cloudwatch/logGroup:LogGroup::eks-control-plane-logs"


def test_a_re_created_stack_adopts_the_log_group_its_predecessor_left():
    left_behind = {"logGroupNames": ["/aws/eks/phasekit-test/cluster"], "arns": [], "id": "us-east-1"}

    def program() -> None:
        EksCluster("eks", eks_args())
    recording = run_recorded(program, invoke_results={
        **INVOKE_RESULTS, "aws:cloudwatch/getLogGroups:getLogGroups": left_behind})
    group = recording.one(LOG_GROUP)
    assert group.import_id == "/aws/eks/phasekit-test/cluster"
    assert group.retain_on_delete is True


@pytest.mark.parametrize(("existing", "import_id"), [
    ([], None),
    (["/aws/eks/phasekit-test/cluster"], "/aws/eks/phasekit-test/cluster"),
    # The lookup is by prefix: a longer name is another group, never adopted.
    (["/aws/eks/phasekit-test/cluster-old"], None),
    (["/aws/eks/phasekit-test/cluster-old", "/aws/eks/phasekit-test/cluster"], "/aws/eks/phasekit-test/cluster"),
])
def test_log_group_import_id_only_for_exactly_that_group(existing, import_id):
    assert log_group_import_id(control_plane_log_group_name("phasekit-test"), existing) == import_id


def test_secrets_key_rotates_has_a_30_day_window_and_an_alias():
    recording = record()
    key = recording.one(KEY)
    assert key.inputs == {
        "description": "Envelope encryption of Kubernetes Secrets in EKS cluster phasekit-test",
        "enableKeyRotation": True,
        "deletionWindowInDays": 30,
        "policy": secrets_key_document("arn:aws:iam::123456789012:role/eks-cluster-role-3b586c2", [ADMIN]),
        "tags": {**TAGS, "Name": "phasekit-test-secrets"},
    }
    assert key.urn == f"{PREFIX}aws:kms/key:Key::eks-secrets-key"
    assert recording.one(ALIAS).inputs == {"name": "alias/eks/phasekit-test",
                                           "targetKeyId": "e300535c-8524-0ce9-4c00-8636576f37b0"}


def test_only_the_key_policy_grants_the_cluster_role_its_use_no_inert_iam_policy():
    # The key policy has no statement enabling IAM policies, so an IAM policy granting the key would have no
    # effect (AWS KMS "Key policies"): the cluster role's use comes from the key policy alone.
    recording = record()
    assert recording.of_type(ROLE_POLICY) == []
    assert f"{PREFIX}aws:iam/rolePolicy:RolePolicy::eks-cluster-kms" not in recording.one(CLUSTER).dependencies


def test_roles_trust_their_service_and_carry_exactly_the_managed_policies():
    recording = record()
    roles = by_name(recording, ROLE)
    trust = {name: json.loads(role.inputs["assumeRolePolicy"]) for name, role in roles.items()}
    assert trust == {
        "eks-cluster-role": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "eks-node-role": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        # IRSA: only the add-on's own ServiceAccount, through the cluster's OIDC provider, for STS.
        "eks-vpc-cni-role": json.loads(irsa_trust_policy(OIDC_ARN, ISSUER, "kube-system", "aws-node")),
        "eks-aws-ebs-csi-driver-role": json.loads(
            irsa_trust_policy(OIDC_ARN, ISSUER, "kube-system", "ebs-csi-controller-sa")),
    }
    attached = sorted((attachment.inputs["role"], attachment.inputs["policyArn"])
                      for attachment in recording.of_type(ATTACHMENT))
    # The node role no longer carries the CNI policy: a pod reaching the node's credentials gets less.
    assert attached == [
        ("eks-aws-ebs-csi-driver-role-916e7fb", "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"),
        ("eks-cluster-role-3b586c2", "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"),
        ("eks-node-role-020d809", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"),
        ("eks-node-role-020d809", "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"),
        ("eks-vpc-cni-role-0ee485c", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"),
    ]


def test_the_secrets_key_policy_lets_admins_administer_and_only_the_cluster_role_use_it():
    role = "arn:aws:iam::123456789012:role/eks-cluster-role-3b586c2"
    assert json.loads(secrets_key_document(role, [CI_ADMIN, ADMIN])) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ClusterAdminsAdministerTheKey", "Effect": "Allow", "Principal": {"AWS": [ADMIN, CI_ADMIN]},
             "Action": ["kms:CancelKeyDeletion", "kms:Create*", "kms:Delete*", "kms:Describe*", "kms:Disable*",
                        "kms:Enable*", "kms:Get*", "kms:List*", "kms:Put*", "kms:Revoke*", "kms:ScheduleKeyDeletion",
                        "kms:TagResource", "kms:UntagResource", "kms:Update*"],
             "Resource": "*"},
            {"Sid": "ClusterRoleEncryptsSecrets", "Effect": "Allow", "Principal": {"AWS": role},
             "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
             "Resource": "*"},
            {"Sid": "ClusterRoleGrantsToAwsResources", "Effect": "Allow", "Principal": {"AWS": role},
             "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
        ],
    }
    # No account-wide "kms:*" for the root principal: admins cannot decrypt, and nobody else is named.
    statements = json.loads(secrets_key_document(role, [ADMIN]))["Statement"]
    assert not any("kms:*" in statement["Action"] or "kms:Decrypt" in statement["Action"]
                   for statement in statements if statement["Principal"]["AWS"] != role)


def test_irsa_trust_names_one_service_account_and_sts():
    assert json.loads(irsa_trust_policy("arn:aws:iam::1:oidc-provider/oidc.eks/id/X", "https://oidc.eks/id/X",
                                        "kube-system", "aws-node")) == {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/oidc.eks/id/X"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"oidc.eks/id/X:sub": "system:serviceaccount:kube-system:aws-node",
                                           "oidc.eks/id/X:aud": "sts.amazonaws.com"}},
        }],
    }


def test_oidc_provider_trusts_the_cluster_issuer_for_sts():
    recording = record()
    assert recording.one(OIDC).inputs == {"url": ISSUER, "clientIdLists": ["sts.amazonaws.com"],
                                          "tags": {**TAGS, "Name": "phasekit-test-oidc"}}


def test_node_security_group_admits_only_itself_and_egresses_everywhere():
    recording = record()
    node_sg = recording.one(SG)
    assert node_sg.inputs == {"vpcId": "vpc-0abc", "description": "EKS nodes of phasekit-test (phasekit)",
                              "tags": {**TAGS, "Name": "phasekit-test-node"}}
    assert recording.one(INGRESS).inputs == {
        "securityGroupId": node_sg.id, "referencedSecurityGroupId": node_sg.id, "ipProtocol": "-1",
        "description": "Node to node, all traffic (pod networking)",
        "tags": {**TAGS, "Name": "phasekit-test-node-self"},
    }
    assert recording.one(EGRESS).inputs == {
        "securityGroupId": node_sg.id, "cidrIpv4": "0.0.0.0/0", "ipProtocol": "-1",
        "description": "All egress: image pulls and AWS APIs through the NAT gateways",
        "tags": {**TAGS, "Name": "phasekit-test-node-egress"},
    }


RUNNER_SG = "sg-0123456789abcdef0"
BASTION_SG = "sg-0fedcba9"


def test_api_access_groups_reach_the_private_endpoint_on_443_through_the_cluster_security_group():
    # EKS's cluster security group admits only itself (EKS user guide, sec-group-reqs): a runner in the VPC
    # reaches the private endpoint only through a rule like these.
    recording = record(api_access_security_group_ids=[RUNNER_SG, BASTION_SG])
    rules = {name: rule for name, rule in by_name(recording, INGRESS).items() if name != "eks-node-sg-self"}
    assert {name: rule.inputs for name, rule in rules.items()} == {
        f"eks-api-from-{group}": {
            "securityGroupId": CLUSTER_SG, "referencedSecurityGroupId": group, "ipProtocol": "tcp",
            "fromPort": 443, "toPort": 443,
            "description": "Kubernetes API (HTTPS) from an admitted group, e.g. a CI runner or bastion in the VPC",
            "tags": {**TAGS, "Name": f"phasekit-test-api-from-{group}"},
        } for group in (RUNNER_SG, BASTION_SG)}
    component = recording.one(COMPONENT)
    assert {rule.parent for rule in rules.values()} == {component.urn}


def test_by_default_no_group_but_the_cluster_s_own_reaches_the_api():
    assert [rule.name for rule in record().of_type(INGRESS)] == ["eks-node-sg-self"]


def test_launch_template_requires_imdsv2_with_one_hop_and_an_encrypted_gp3_root():
    recording = record(node_disk_size_gib=80)
    template = recording.one(LAUNCH_TEMPLATE).inputs
    assert template["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                           "httpPutResponseHopLimit": 1}
    assert template["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "ebs": {
        "volumeSize": 80, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"}}]
    assert template["vpcSecurityGroupIds"] == [recording.one(SG).id, CLUSTER_SG]
    node_tags = {**TAGS, "Name": "phasekit-test-node"}
    assert template["tagSpecifications"] == [{"resourceType": "instance", "tags": node_tags},
                                             {"resourceType": "volume", "tags": node_tags}]
    assert "imageId" not in template and "userData" not in template and "iamInstanceProfile" not in template


def test_node_group_scaling_updates_and_launch_template():
    recording = record(node_min_size=3, node_desired_size=4, node_max_size=6, node_instance_types=["m7g.large"])
    node_group = recording.one(NODE_GROUP)
    assert node_group.inputs == {
        "clusterName": "phasekit-test",
        "version": "1.35",
        # The newest EKS AMI release (the harness's fake SSM value): a new AMI shows as a node group update.
        "releaseVersion": "offline-ami-release",
        "nodeRoleArn": "arn:aws:iam::123456789012:role/eks-node-role-020d809",
        "subnetIds": ["subnet-a", "subnet-b"],
        "instanceTypes": ["m7g.large"],
        "amiType": "AL2023_ARM_64_STANDARD",
        "capacityType": "ON_DEMAND",
        "scalingConfig": {"minSize": 3, "desiredSize": 4, "maxSize": 6},
        "updateConfig": {"maxUnavailablePercentage": 33},
        "launchTemplate": {"id": recording.one(LAUNCH_TEMPLATE).id, "version": "1"},
        "tags": {**TAGS, "Name": "phasekit-test-nodes"},
    }
    policies = {attachment.urn for attachment in recording.of_type(ATTACHMENT) if "eks-node-" in attachment.name}
    assert len(policies) == 2 and policies <= set(node_group.dependencies)
    # Nodes turn Ready only once aws-node can assign addresses through its own role.
    vpc_cni = next(addon for addon in recording.of_type(ADDON) if addon.inputs["addonName"] == "vpc-cni")
    assert vpc_cni.urn in node_group.dependencies
    # The Cluster Autoscaler owns the desired size: a pulumi up must not undo its scale-out.
    assert node_group.ignore_changes == ("scalingConfig.desiredSize",)


@pytest.mark.parametrize(("instance_types", "parameter"), [
    (["t3.large"], "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/standard/recommended/release_version"),
    (["m7g.large"], "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/arm64/standard/recommended/release_version"),
])
def test_nodes_track_the_newest_ami_release_of_their_version_and_architecture(monkeypatch, instance_types, parameter):
    asked = []
    lookup = aws.ssm.get_parameter_output

    def recording_lookup(name, **kwargs):
        asked.append(name)
        return lookup(name=name, **kwargs)

    monkeypatch.setattr(aws.ssm, "get_parameter_output", recording_lookup)
    assert record(node_instance_types=instance_types).one(NODE_GROUP).inputs["releaseVersion"] == "offline-ami-release"
    assert asked == [parameter]


def test_without_ami_tracking_the_release_is_left_to_the_provider():
    assert "releaseVersion" not in record(track_latest_ami=False).one(NODE_GROUP).inputs


@pytest.mark.parametrize(("instance_types", "ami_type"), [
    (["t3.large"], "AL2023_x86_64_STANDARD"),
    (["m7i.xlarge", "m6a.large", "c5n.large", "g5.xlarge", "g4ad.xlarge"], "AL2023_x86_64_STANDARD"),
    (["t4g.medium"], "AL2023_ARM_64_STANDARD"),
    (["m7g.large", "c7gd.xlarge", "c6gn.large", "r8g.large", "x2gd.large", "a1.large"], "AL2023_ARM_64_STANDARD"),
])
def test_ami_type_follows_the_instance_architecture(instance_types, ami_type):
    assert node_ami_type(instance_types) == ami_type


def test_addons_take_over_the_defaults_and_pod_running_ones_wait_for_nodes():
    recording = record()
    addons = {addon.inputs["addonName"]: addon for addon in recording.of_type(ADDON)}
    assert sorted(addons) == ["aws-ebs-csi-driver", "coredns", "eks-pod-identity-agent", "kube-proxy",
                              "metrics-server", "vpc-cni"]
    roles = {"vpc-cni": "eks-vpc-cni-role-0ee485c", "aws-ebs-csi-driver": "eks-aws-ebs-csi-driver-role-916e7fb"}
    for name, addon in addons.items():
        # kube-proxy from the dated table, the others EKS's default for the version (the harness's fake lookup).
        pinned = {"addonVersion": "v1.35.3-eksbuild.13" if name == "kube-proxy" else "offline-addon-version"}
        # The network policy agent: without it KubernetesApp's NetworkPolicies are accepted and ignored.
        configured = {"configurationValues": '{"enableNetworkPolicy": "true"}'} if name == "vpc-cni" else {}
        role = {"serviceAccountRoleArn": f"arn:aws:iam::123456789012:role/{roles[name]}"} if name in roles else {}
        assert addon.inputs == {"clusterName": "phasekit-test", "addonName": name, **pinned, **configured, **role,
                                "resolveConflictsOnCreate": "OVERWRITE", "resolveConflictsOnUpdate": "OVERWRITE",
                                "tags": TAGS}
    node_group = recording.one(NODE_GROUP).urn
    waiting = {name for name, addon in addons.items() if node_group in addon.dependencies}
    assert waiting == {"coredns", "metrics-server", "aws-ebs-csi-driver"}
    # An add-on with a role waits until the role holds its policy.
    attachments = {attachment.name: attachment.urn for attachment in recording.of_type(ATTACHMENT)}
    assert attachments["eks-vpc-cni-amazoneks-cni-policy"] in addons["vpc-cni"].dependencies
    assert attachments["eks-aws-ebs-csi-driver-amazonebscsidriverpolicy"] in addons["aws-ebs-csi-driver"].dependencies


def test_without_container_logs_there_is_no_log_shipping_add_on_role_or_group():
    recording = record()
    assert "amazon-cloudwatch-observability" not in {addon.inputs["addonName"] for addon in recording.of_type(ADDON)}
    assert [group.inputs["name"] for group in recording.of_type(LOG_GROUP)] == ["/aws/eks/phasekit-test/cluster"]


def test_container_logs_add_the_cloudwatch_add_on_with_its_own_role_after_nodes_and_retained_groups():
    recording = record(container_logs=True)
    assert recording.type_counts() == {**expected_counts(), ROLE: 5, ATTACHMENT: 6, ADDON: 7, LOG_GROUP: 5}
    addon = next(addon for addon in recording.of_type(ADDON)
                 if addon.inputs["addonName"] == "amazon-cloudwatch-observability")
    assert addon.name == "eks-amazon-cloudwatch-observability"
    assert addon.inputs == {
        "clusterName": "phasekit-test", "addonName": "amazon-cloudwatch-observability",
        "addonVersion": "offline-addon-version",
        "configurationValues": '{"containerLogs": {"enabled": true}}',
        "serviceAccountRoleArn": "arn:aws:iam::123456789012:role/eks-amazon-cloudwatch-observability-role-3c5eb3c",
        "resolveConflictsOnCreate": "OVERWRITE", "resolveConflictsOnUpdate": "OVERWRITE", "tags": TAGS}
    role = by_name(recording, ROLE)["eks-amazon-cloudwatch-observability-role"]
    # Only the agent's ServiceAccount (Fluent Bit runs as it too), through the cluster's OIDC provider, for STS.
    assert json.loads(role.inputs["assumeRolePolicy"]) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": OIDC_ARN}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            "oidc.eks.us-east-1.amazonaws.com/id/9076B5AA2C3A198CE4F9098E5BF63223:sub":
                "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent",
            "oidc.eks.us-east-1.amazonaws.com/id/9076B5AA2C3A198CE4F9098E5BF63223:aud": "sts.amazonaws.com"}}}]}
    assert role.inputs["description"] == "EKS add-on amazon-cloudwatch-observability of phasekit-test (phasekit)"
    attachment = by_name(recording, ATTACHMENT)["eks-amazon-cloudwatch-observability-cloudwatchagentserverpolicy"]
    assert attachment.inputs == {"role": "eks-amazon-cloudwatch-observability-role-3c5eb3c",
                                 "policyArn": "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"}
    groups = {group.name: group for group in recording.of_type(LOG_GROUP) if group.name != "eks-control-plane-logs"}
    assert {name: group.inputs for name, group in groups.items()} == {
        f"eks-container-logs-{kind}": {"name": f"/aws/containerinsights/phasekit-test/{kind}",
                                       "retentionInDays": 90,
                                       "tags": {**TAGS, "Name": f"phasekit-test-containers-{kind}"}}
        for kind in ("application", "dataplane", "host", "performance")}
    # Its DaemonSets need nodes; its writers must find the groups (with retention) before creating their own.
    assert {recording.one(NODE_GROUP).urn, attachment.urn, *(group.urn for group in groups.values())} <= set(
        addon.dependencies)


def test_container_log_groups_follow_the_retention_setting():
    recording = record(container_logs=True, log_retention_days=30)
    assert {group.inputs["retentionInDays"] for group in recording.of_type(LOG_GROUP)} == {30}


@pytest.mark.parametrize(("version", "kube_proxy"), [
    ("1.33", "v1.33.10-eksbuild.13"), ("1.34", "v1.34.6-eksbuild.13"), ("1.35", "v1.35.3-eksbuild.13"),
    ("1.36", "v1.36.0-eksbuild.14"),
])
def test_kube_proxy_moves_with_the_cluster_version(version, kube_proxy):
    # Without addon_version an upgraded control plane keeps the old kube-proxy: it must follow the minor.
    recording = record(version=version)
    assert recording.one(CLUSTER).inputs["version"] == version
    addons = {addon.inputs["addonName"]: addon.inputs for addon in recording.of_type(ADDON)}
    assert addons["kube-proxy"]["addonVersion"] == kube_proxy
    assert all("addonVersion" in inputs for inputs in addons.values())


@pytest.mark.parametrize("version", ["1.35", "1.36"])
def test_every_other_addon_takes_eks_default_version_for_the_cluster_version(monkeypatch, version):
    """An add-on without a version keeps the one it was created with: a cluster upgrade would leave it behind."""
    asked = []
    lookup = aws.eks.get_addon_version_output

    def recording_lookup(**kwargs):
        asked.append((kwargs["addon_name"], kwargs["kubernetes_version"], kwargs.get("most_recent")))
        return lookup(**kwargs)
    monkeypatch.setattr(aws.eks, "get_addon_version_output", recording_lookup)
    addons = {addon.inputs["addonName"]: addon.inputs for addon in record(version=version).of_type(ADDON)}
    assert sorted(asked) == [(name, version, None) for name in (
        "aws-ebs-csi-driver", "coredns", "eks-pod-identity-agent", "metrics-server", "vpc-cni")]
    assert {name: inputs["addonVersion"] for name, inputs in addons.items() if name != "kube-proxy"} == {
        name: "offline-addon-version" for name, _, _ in asked}


def test_extended_support_is_an_explicit_choice():
    assert record(support_type="EXTENDED").one(CLUSTER).inputs["upgradePolicy"] == {"supportType": "EXTENDED"}


def test_every_admin_gets_an_access_entry_and_cluster_admin_policy():
    recording = record(admin_principal_arns=[ADMIN, CI_ADMIN])
    assert recording.type_counts() == expected_counts(admins=2)
    entries = by_name(recording, ACCESS_ENTRY)
    policies = by_name(recording, ACCESS_POLICY)
    expected = {"eks-admin-role-platform-admin": ADMIN, "eks-admin-user-deployer": CI_ADMIN}
    assert {name: entry.inputs for name, entry in entries.items()} == {
        name: {"clusterName": "phasekit-test", "principalArn": arn, "type": "STANDARD", "tags": TAGS}
        for name, arn in expected.items()}
    assert {name: policy.inputs for name, policy in policies.items()} == {
        name: {"clusterName": "phasekit-test", "principalArn": arn,
               "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
               "accessScope": {"type": "cluster"}}
        for name, arn in expected.items()}
    for name, policy in policies.items():
        assert entries[name].urn in policy.dependencies


def test_admin_names_do_not_depend_on_list_order():
    first = {entry.urn for entry in record(admin_principal_arns=[ADMIN, CI_ADMIN]).of_type(ACCESS_ENTRY)}
    second = {entry.urn for entry in record(admin_principal_arns=[CI_ADMIN, ADMIN]).of_type(ACCESS_ENTRY)}
    assert first == second


@pytest.mark.parametrize(("arn", "slug"), [
    ("arn:aws:iam::123456789012:role/platform-admin", "role-platform-admin"),
    ("arn:aws:iam::123456789012:user/ci/deployer", "user-deployer"),
    ("arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_1a2b",
     "role-awsreservedsso-admin-1a2b"),
    ("arn:aws-us-gov:iam::123456789012:role/Ops.Team", "role-ops-team"),
])
def test_admin_slug_table(arn, slug):
    assert admin_slug(arn) == slug


def test_kubeconfig_uses_aws_eks_get_token_and_is_secret():
    recording = record()
    assert "kubeconfig" in recording.secret_outputs
    assert yaml.safe_load(recording.outputs["kubeconfig"]) == yaml.safe_load(
        render_kubeconfig("phasekit-test", ENDPOINT, CA_DATA, "us-east-1"))


@pytest.mark.parametrize(("cluster_name", "endpoint", "ca_data", "region"), [
    ("phasekit-test", ENDPOINT, CA_DATA, "us-east-1"),
    ("prod_2", "https://ABC.yl4.eu-west-1.eks.amazonaws.com", "LS0tLS1CRUdJTg==", "eu-west-1"),
])
def test_render_kubeconfig_table(cluster_name, endpoint, ca_data, region):
    assert yaml.safe_load(render_kubeconfig(cluster_name, endpoint, ca_data, region)) == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "preferences": {},
        "users": [{"name": cluster_name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
        }}}],
    }


def test_kubernetes_provider_is_a_child_fed_the_secret_kubeconfig_after_admins_and_nodes():
    recording = record(admin_principal_arns=[ADMIN, CI_ADMIN])
    provider = recording.one(K8S_PROVIDER)
    assert provider.name == "eks-k8s"
    assert provider.parent == recording.one(COMPONENT).urn
    assert provider.secret_inputs == frozenset({"kubeconfig"})
    assert provider.inputs["kubeconfig"] == recording.outputs["kubeconfig"]
    required = {recording.one(NODE_GROUP).urn, *(policy.urn for policy in recording.of_type(ACCESS_POLICY))}
    assert required <= set(provider.dependencies)


def test_provider_attribute_is_the_registered_kubernetes_provider():
    seen: dict[str, Any] = {}

    def program() -> None:
        cluster = EksCluster("eks", eks_args())
        seen["provider"] = cluster.provider
        pulumi.export("provider_urn", cluster.provider.urn)

    recording = run_recorded(program)
    assert recording.outputs["provider_urn"] == recording.one(K8S_PROVIDER).urn
    assert seen["provider"].package == "kubernetes"


def test_outputs_preview_false():
    recording = record()
    assert {key: value for key, value in recording.outputs.items() if key != "kubeconfig"} == {
        "cluster_name": "phasekit-test",
        "cluster_endpoint": ENDPOINT,
        "cluster_certificate_authority": CA_DATA,
        "cluster_security_group_id": CLUSTER_SG,
        "node_security_group_id": recording.one(SG).id,
        "node_role_arn": "arn:aws:iam::123456789012:role/eks-node-role-020d809",
        "node_autoscaling_group_name": "eks-eks-nodes-d6a502d1",
        "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/"
                             "2885329478CC31D1BBABA0CFF2B1ED27",
        "oidc_provider_url": ISSUER,
    }
    assert recording.secret_outputs == frozenset({"kubeconfig"})


def test_autoscaling_group_name_helper():
    resources = [aws.eks.outputs.NodeGroupResource(
        autoscaling_groups=[aws.eks.outputs.NodeGroupResourceAutoscalingGroup(name="eks-nodes-1234")])]
    assert autoscaling_group_name(resources) == "eks-nodes-1234"


def test_cpu_alarm_only_with_a_topic():
    assert record().of_type(ALARM) == []
    recording = record(alarm_topic_arn=TOPIC, node_cpu_alarm_percent=75)
    assert recording.type_counts() == expected_counts(alarm=1)
    assert recording.one(ALARM).inputs == {
        "alarmDescription": "EKS phasekit-test: node CPU above 75% for 5 minutes",
        "namespace": "AWS/EC2",
        "metricName": "CPUUtilization",
        "dimensions": {"AutoScalingGroupName": "eks-eks-nodes-d6a502d1"},
        "statistic": "Average",
        "period": 300,
        "evaluationPeriods": 1,
        "comparisonOperator": "GreaterThanThreshold",
        "threshold": 75,
        "alarmActions": [TOPIC],
        "okActions": [TOPIC],
        "tags": TAGS,
    }


def test_preview_with_unknown_cluster_outputs_registers_every_child_including_the_provider():
    recording = record(preview=True, alarm_topic_arn=TOPIC)
    assert recording.type_counts() == expected_counts(alarm=1)
    provider = recording.one(K8S_PROVIDER)
    assert provider.parent == recording.one(COMPONENT).urn
    assert {key: recording.outputs[key] for key in ("cluster_endpoint", "kubeconfig", "oidc_provider_url",
                                                    "node_autoscaling_group_name")} == {
        "cluster_endpoint": UNKNOWN_MASK, "kubeconfig": UNKNOWN_MASK, "oidc_provider_url": UNKNOWN_MASK,
        "node_autoscaling_group_name": UNKNOWN_MASK}
    assert recording.outputs["cluster_name"] == "phasekit-test"


# --- validation ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "message"), [
    ({"endpoint_public_access_cidrs": ["0.0.0.0/0"]},
     "EksClusterArgs.endpoint_public_access_cidrs: '0.0.0.0/0' would open the Kubernetes API to the internet; "
     "list the networks you administer from, or none for a private-only endpoint"),
    ({"endpoint_public_access_cidrs": ["203.0.113.7/24"]},
     "EksClusterArgs.endpoint_public_access_cidrs: '203.0.113.7/24' is not an IPv4 network without host bits, "
     "e.g. 203.0.113.0/24"),
    ({"endpoint_public_access_cidrs": ["2001:db8::/32"]},
     "EksClusterArgs.endpoint_public_access_cidrs: '2001:db8::/32' is IPv6; EKS public access CIDRs are IPv4 only"),
    ({"admin_principal_arns": []},
     "EksClusterArgs.admin_principal_arns: at least one admin is required, and it must include the principal "
     "running pulumi up (the creator gets no implicit access)"),
    ({"admin_principal_arns": ["arn:aws:sts::123456789012:assumed-role/admin/session"]},
     "EksClusterArgs.admin_principal_arns: 'arn:aws:sts::123456789012:assumed-role/admin/session' is not an IAM "
     "role or user ARN; allowed: arn:aws:iam::<account>:role/<name> or arn:aws:iam::<account>:user/<name> "
     "(for an assumed-role session use its role's ARN)"),
    ({"admin_principal_arns": [ADMIN, ADMIN]},
     "EksClusterArgs.admin_principal_arns: two principals are named 'role-platform-admin'; list each IAM role "
     "or user once"),
    ({"node_min_size": 3}, "EksClusterArgs.node_desired_size: 2 is below node_min_size 3"),
    ({"node_desired_size": 5}, "EksClusterArgs.node_desired_size: 5 is above node_max_size 4"),
    ({"node_min_size": 0}, "EksClusterArgs.node_min_size: 0; at least 1 node is required"),
    ({"node_instance_types": []}, "EksClusterArgs.node_instance_types: at least one instance type is required"),
    ({"node_instance_types": ["m7g.large", "m7i.large"]},
     "EksClusterArgs.node_instance_types: ['m7g.large', 'm7i.large'] mixes Graviton (ARM) and x86 types; one node "
     "group runs one AMI"),
    ({"cluster_name": "-bad name"},
     "EksClusterArgs.cluster_name: '-bad name'; allowed: 1-100 letters, digits, '-' and '_', starting with a "
     "letter or digit"),
    ({"version": "v1.34"},
     "EksClusterArgs.version: 'v1.34'; allowed: a Kubernetes minor version such as '1.35'"),
    ({"version": "1.32"},
     "EksClusterArgs.version: '1.32' has no kube-proxy add-on version in KUBE_PROXY_VERSIONS; allowed: one of "
     "1.33, 1.34, 1.35, 1.36"),
    ({"support_type": "standard"},
     "EksClusterArgs.support_type: 'standard'; allowed: STANDARD or EXTENDED"),
    ({"node_disk_size_gib": 8},
     "EksClusterArgs.node_disk_size_gib: 8; at least 20 GiB (the AMI and container images live there)"),
    ({"log_retention_days": 45},
     "EksClusterArgs.log_retention_days: 45 is not a CloudWatch retention period; allowed: 1, 3, 5, 7, 14, 30, "
     "60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"),
    ({"node_cpu_alarm_percent": 0},
     "EksClusterArgs.node_cpu_alarm_percent: 0; allowed: above 0, at most 100"),
    ({"api_access_security_group_ids": ["sg-12345"]},
     "EksClusterArgs.api_access_security_group_ids: 'sg-12345' is not a security group id; allowed: 'sg-' and 8 to "
     "17 lowercase hex digits, e.g. sg-0123456789abcdef0"),
    ({"api_access_security_group_ids": [RUNNER_SG, RUNNER_SG]},
     "EksClusterArgs.api_access_security_group_ids: 'sg-0123456789abcdef0' is listed twice; allowed: each security "
     "group once"),
    ({"container_logs": "false"},
     "EksClusterArgs.container_logs: 'false'; allowed: True or False (a string such as 'false' would turn log "
     "shipping on)"),
])
def test_invalid_args_are_refused_with_exact_messages(overrides, message):
    with pytest.raises(ValueError) as raised:
        record(**overrides)
    assert str(raised.value) == message


# --- one minor version per upgrade ---------------------------------------------------------------------

@pytest.mark.parametrize(("running", "configured", "problem"), [
    ("1.34", "1.34", None),
    ("1.34", "1.35", None),
    ("1.33", "1.35",
     "cluster.version '1.35' is 2 minor versions above the running '1.33'; allowed: '1.33' or '1.34' (EKS upgrades "
     "one minor version at a time: deploy each step, nodes and add-ons included, before the next)"),
    ("1.35", "1.34",
     "cluster.version '1.34' is below the running '1.35'; allowed: '1.35' or '1.36' (EKS cannot downgrade a control "
     "plane)"),
])
def test_a_version_jump_of_more_than_one_minor_is_refused_with_the_reason(running, configured, problem):
    assert version_step_problem(running, configured) == problem



def running_cluster(running: str | None) -> dict[str, dict]:
    """Invoke results where the account lists the cluster at version ``running`` (None: not listed, and the
    per-cluster lookup is left out, so the harness fails the test if it is made)."""
    if running is None:
        return {**INVOKE_RESULTS, "aws:eks/getClusters:getClusters": {"names": ["someone-else"], "id": "us-east-1"}}
    return {**INVOKE_RESULTS,
            "aws:eks/getClusters:getClusters": {"names": ["someone-else", "phasekit-test"], "id": "us-east-1"},
            "aws:eks/getCluster:getCluster": {"name": "phasekit-test", "version": running, "id": "phasekit-test"}}


def record_against(running: str | None, **overrides: Any):
    return run_recorded(lambda: EksCluster("eks", eks_args(**overrides)), preview=True,
                        invoke_results=running_cluster(running))


def test_a_jump_past_the_next_minor_is_refused_at_preview_time_against_the_running_cluster():
    with pytest.raises(ValueError) as raised:
        record_against("1.33", version="1.35")
    assert str(raised.value) == (
        "cluster.version '1.35' is 2 minor versions above the running '1.33'; allowed: '1.33' or '1.34' (EKS "
        "upgrades one minor version at a time: deploy each step, nodes and add-ons included, before the next)")


def test_a_downgrade_of_the_running_cluster_is_refused():
    with pytest.raises(ValueError) as raised:
        record_against("1.36", version="1.35")
    assert str(raised.value) == (
        "cluster.version '1.35' is below the running '1.36'; allowed: '1.36' or '1.37' (EKS cannot downgrade a "
        "control plane)")


@pytest.mark.parametrize("running", ["1.34", "1.35"])
def test_one_minor_up_or_the_same_version_is_a_plain_update(running):
    recording = record_against(running, version="1.35")
    # The step was checked against the running cluster: listed, then read by its name.
    assert recording.invoked("aws:eks/getClusters:getClusters") == [{}]
    assert recording.invoked("aws:eks/getCluster:getCluster") == [{"name": "phasekit-test"}]
    assert recording.one(CLUSTER).inputs["version"] == "1.35"
    assert recording.one(NODE_GROUP).inputs["version"] == "1.35"
    addons = {addon.inputs["addonName"]: addon.inputs["addonVersion"] for addon in recording.of_type(ADDON)}
    assert addons["kube-proxy"] == "v1.35.3-eksbuild.13"


def test_a_cluster_the_account_does_not_list_is_a_first_deploy_and_is_not_looked_up():
    recording = record_against(None, version="1.35")
    assert recording.invoked("aws:eks/getClusters:getClusters") == [{}]
    assert recording.invoked("aws:eks/getCluster:getCluster") == []
    assert recording.one(CLUSTER).inputs["version"] == "1.35"


PRIVATE_FIRST_DEPLOY = (
    "cluster.endpointPublicAccessCidrs is empty and the account has no EKS cluster 'phasekit-test' yet: a first "
    "deploy cannot reach a private-only API endpoint (the VPC, and so any runner inside it, does not exist yet), "
    "so pulumi up would build the network, the cluster, the database, the cache and the load balancer (30-40 "
    "minutes) and then fail at the first Kubernetes object; set cluster.endpointPublicAccessCidrs to the address "
    "the first deploy runs from; later deploys may run from inside the VPC with cluster.apiAccessSecurityGroupIds "
    "and the CIDRs removed")


def test_a_first_deploy_without_public_cidrs_is_refused_by_pulumi_up_before_any_child():
    with pytest.raises(ValueError) as raised:
        run_recorded(lambda: EksCluster("eks", eks_args(endpoint_public_access_cidrs=[],
                                                        api_access_security_group_ids=[RUNNER_SG])),
                     invoke_results=running_cluster(None))
    assert str(raised.value) == PRIVATE_FIRST_DEPLOY
    # The run's monitor, after the run: only the component itself was ever registered.
    assert [resource.type for resource in pulumi.runtime.settings.SETTINGS.monitor.recorded] == [COMPONENT]


def test_a_first_deploy_without_public_cidrs_is_a_warning_on_the_component_in_preview():
    recording = run_recorded(lambda: EksCluster("eks", eks_args(endpoint_public_access_cidrs=[])), preview=True,
                             invoke_results=running_cluster(None))
    assert [(log.message, log.urn) for log in recording.warnings()] == [
        (PRIVATE_FIRST_DEPLOY, recording.one(COMPONENT).urn)]
    assert recording.one(CLUSTER).inputs["vpcConfig"]["endpointPublicAccess"] is False


@pytest.mark.parametrize(("running", "cidrs", "preview"), [
    ("1.35", [], False),                  # a running cluster: deploys come from inside the VPC
    (None, ["203.0.113.0/24"], False),    # a first deploy from an admitted address
    (None, ["203.0.113.0/24"], True),
])
def test_a_private_endpoint_on_a_running_cluster_or_public_cidrs_on_a_first_deploy_pass_silently(
        running, cidrs, preview):
    recording = run_recorded(lambda: EksCluster("eks", eks_args(endpoint_public_access_cidrs=cidrs)),
                             preview=preview, invoke_results=running_cluster(running))
    assert recording.warnings() == []
    assert recording.type_counts() == expected_counts()

def test_version_step_refuses_what_is_not_a_minor_version():
    with pytest.raises(ValueError) as raised:
        version_step_problem("v1.34", "1.35")
    assert str(raised.value) == "'v1.34' is not a Kubernetes minor version such as '1.35'"


# --- node capacity (what the config's fit check relies on) ---------------------------------------------

@pytest.mark.parametrize(("vcpus", "reserved"), [(1, 60), (2, 70), (4, 80), (8, 90), (16, 110)])
def test_kube_reserved_cpu_follows_the_eks_ami_formula(vcpus, reserved):
    assert kube_reserved_cpu_millicores(vcpus) == reserved


def test_a_t3_large_node_offers_what_is_left_after_the_kubelet_and_the_daemonsets():
    # 2000m - 70m reserved - 155m daemonsets (aws-node 25m, kube-proxy 100m, ebs-csi-node 3 x 10m);
    # 8192Mi - (255 + 11 x 35)Mi - 100Mi eviction - 120Mi ebs-csi-node; 35 - 4 pod slots.
    assert allocatable("t3.large") == (1775, 7332, 31)
    assert allocatable("m5a.large") is None


def test_container_log_agents_take_their_requests_from_every_node_and_their_operator_once():
    # Fluent Bit 50m/25Mi + CloudWatch agent 250m/128Mi per node, 2 pod slots; the operator 100m/64Mi once.
    assert allocatable("t3.large", container_logs=True) == (1775 - 300, 7332 - 153, 31 - 2)
    # First node (1475 - 520 - 100) // 250 = 3, the others 1475 // 250 = 5.
    assert pods_that_fit("t3.large", 4, 250, 512, container_logs=True) == 3 + 5 + 5 + 5


def test_pods_that_fit_count_whole_pods_per_node_and_the_cluster_addons_once():
    # The first node also runs the once-per-cluster add-ons: 520m, 1420Mi and 6 pods (coredns x 2,
    # metrics-server, the Cluster Autoscaler, the EBS CSI controller x 2).
    assert pods_that_fit("t3.large", 4, 250, 512) == 5 + 7 + 7 + 7
    # One t3.medium: CPU (1775 - 520) // 250 = 5, memory (4096 - 442 - 100 - 120 - 1420) // 512 = 3, slots 17 - 4 - 6.
    assert pods_that_fit("t3.medium", 1, 250, 512) == 3
    assert pods_that_fit("t3.medium", 1, 250, 1024) == 1  # memory binds
    assert pods_that_fit("t3.medium", 1, 10, 16) == 7  # pod slots bind
    assert pods_that_fit("t3.large", 2, 2000, 512) == 0


def test_the_default_storage_class_is_encrypted_gp3_that_retains_its_volumes():
    """A claim naming no class binds to this one, whatever EKS marks as default; Retain keeps the volume when a
    claim or namespace is deleted."""
    recording = record()
    storage_class = recording.one(STORAGE_CLASS)
    assert storage_class.name == "eks-gp3"
    assert storage_class.inputs == {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3", "encrypted": "true"},
        "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True,
    }
    assert storage_class.provider.startswith(recording.one(K8S_PROVIDER).urn)
    ebs_addon = next(addon for addon in recording.of_type(ADDON) if addon.inputs["addonName"] == "aws-ebs-csi-driver")
    assert ebs_addon.urn in storage_class.dependencies


@pytest.mark.parametrize("version", ["1.33", "1.34", "1.35", "1.36"])
def test_the_default_storage_class_validates_against_each_versions_schema(version):
    from components.eks_cluster import default_storage_class_spec
    from tests.k8s_schema import validate

    manifest = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", **default_storage_class_spec()}
    assert validate(manifest, version) == []
    assert validate({**manifest, "reclaimPolicy": 7}, version) != []  # the check can fail
