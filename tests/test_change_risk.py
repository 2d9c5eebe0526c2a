"""``phasekit risk``: classifying the resource changes between two versions of a stack file.

Real plans of fixture stack files (copies of the committed ones, each changed in one way, under
tests/fixtures/risk/) go through ``phasekit.plan.run_plan``; the comparison logic that no committed stack
exercises (secrets, ignoreChanges, conditional rules, provider moves, per-input dependencies) runs on small
hand-built recordings.

What this cannot prove: that a provider replaces what the rules file says it does. Each rule quotes the
provider source it was read from; only a real ``pulumi preview`` against a stack's state shows the
provider's actual diff.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import pytest
from pulumi.output import Unknown

from components.testing import RecordedResource, Recording
from infra.errors import ConfigError
from phasekit.change_risk import (
    PROGRAM_PROTECTED_HOLDS,
    RULES_FILE,
    RiskReport,
    assess,
    data_held,
    load_rules,
    risk_json,
    risk_text,
)
from phasekit.cli import main
from phasekit.plan import SECRET_PLACEHOLDER, run_plan
from phasekit.plan_text import WIDTH

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "risk"
DO = "https://github.com/digitalocean/terraform-provider-digitalocean/blob/401992a1e493a0e3cfc833197820867991fc011f"
VOLUME_SOURCE = f"{DO}/digitalocean/volume/resource_volume.go#L29-L123"
DROPLET_SOURCE = f"{DO}/digitalocean/droplet/resource_droplet.go#L66-L318"
AWS_REGION_SOURCE = "https://github.com/pulumi/pulumi-aws/pull/4000"
REPLICATION_GROUP_SOURCE = ("https://github.com/hashicorp/terraform-provider-aws/blob/001b6364c1a3b3045e152f655440a6d47eb44a70"
                            "/internal/service/elasticache/replication_group.go")
K8S_SECRET_SOURCE = ("https://github.com/pulumi/pulumi-kubernetes/blob/94977969d64112b04e19945818a7d5d5f38f631d/provider/"
                     "pkg/provider/diff.go#L23-L37")


@functools.cache
def recording(stack: str, fixture: str) -> Recording:
    """One offline plan per fixture for the whole module (phase 3 takes about a second after the first)."""
    return run_plan(stack, ROOT, stack_file=FIXTURES / fixture).recording


@functools.cache
def report(stack: str, base: str, head: str) -> RiskReport:
    return assess(recording(stack, base), recording(stack, head))


def classified(risk: RiskReport) -> list[tuple[str, str, str]]:
    return [(change.kind, change.name, change.type) for change in risk.changes if change.kind != "unchanged"]


def change(risk: RiskReport, name: str):
    (found,) = [item for item in risk.changes if item.name == name]
    return found


# --- Real plans --------------------------------------------------------------------------------------


def test_image_env_and_size_changes_are_in_place_and_destroy_nothing():
    risk = report("phase1", "phase1.yaml", "phase1-harmless.yaml")
    assert classified(risk) == [
        ("update", "vps-data", "digitalocean:index/volume:Volume"),
        ("update", "vps-droplet", "digitalocean:index/droplet:Droplet"),
    ]
    assert risk.data_destroying == []
    # The new image and LOG_LEVEL reach the droplet only through cloud-init, which it ignores; the rollout
    # bundle that carries them is built from generated passwords, so offline it is unknown on both sides. So is
    # user_data itself, which carries the droplet's generated SSH host key: no change to it is visible offline.
    assert change(risk, "vps-droplet").ignored == ()
    assert change(risk, "vps-rollout").kind == "unchanged"
    assert risk_text(risk) == (
        "phasekit risk: 0 to create, 2 to update in place, 0 to replace, 0 to delete, 32 unchanged\n"
        "offline: computed values (ids, addresses, generated secrets) are unknown in both versions, and\n"
        "  resources taking them from a replaced or new resource may change; only `pulumi preview` against\n"
        "  the stack's state is final.\n"
        "\n"
        "update   vps-data  digitalocean:index/volume:Volume\n"
        "    size: 20 → 30\n"
        "update   vps-droplet  digitalocean:index/droplet:Droplet\n"
        "    size: s-1vcpu-2gb → s-2vcpu-4gb\n"
        # A resize is a hard power-off (resource_droplet.go: PowerOff before Resize), not a reboot.
        "    a resize powers the droplet off hard (the provider calls PowerOff, not Shutdown, then resizes\n"
        "      and powers it on): its containers are killed and the site is down for the few minutes until\n"
        "      the droplet is back. PostgreSQL then recovers from its WAL (committed transactions survive);\n"
        "      Redis (appendfsync everysec) may lose up to its last second of writes. For a clean stop, run\n"
        "      the first command before `pulumi up`; the stack comes back with the rollout when the new size\n"
        "      re-tunes it, otherwise with the second:\n"
        "      ssh root@<droplet address> 'cd /opt/phasekit && docker compose stop'\n"
        "      ssh root@<droplet address> 'cd /opt/phasekit && docker compose start'\n"
        "    (source: https://github.com/digitalocean/terraform-provider-digitalocean/blob/401992a1e493a0e3cf\n"
        "      c833197820867991fc011f/digitalocean/droplet/resource_droplet.go#L600-L650)\n"
        "\n"
        "No data-destroying changes.\n"
    )
    assert [effect.property for effect in change(risk, "vps-droplet").in_place_effects] == ["size"]
    assert change(risk, "vps-data").in_place_effects == ()


def test_phase1_region_replaces_the_protected_volume():
    risk = report("phase1", "phase1.yaml", "phase1-sfo3.yaml")
    assert [(item.kind, item.name) for item in risk.data_destroying] == [("replace", "vps-data")]
    volume = change(risk, "vps-data")
    assert [(reason.rule, reason.because, reason.source) for reason in volume.replaced_because] == [
        ("region", "region changed", VOLUME_SOURCE)]
    assert (volume.protected, volume.retained_on_delete) == (True, True)
    assert {item.name for item in risk.of_kind("replace")} == {
        "vps-data", "vps-droplet", "vps-ip", "vps-vpc", "vps-ip-assignment"}
    assert {item.name for item in risk.of_kind("update")} == {
        "edge-record", "vps-cpu-alert", "vps-disk-alert", "vps-memory-alert", "vps-firewall", "vps-project",
        "vps-rollout", "vps-droplet-host-key-install", "vps-droplet-host-key-install-read"}
    assert change(risk, "vps-droplet").delete_before_replace is True
    assignment = change(risk, "vps-ip-assignment")
    assert [reason.rule for reason in assignment.replaced_because] == ["dropletId", "ipAddress"]
    text = risk_text(risk).splitlines()
    assert text[5:15] == [
        "DATA-DESTROYING: vps-data (digitalocean:index/volume:Volume) is replaced; it holds PostgreSQL's data",
        "  and Redis' persistence (phases 1 and 2)",
        "    region: nyc3 → sfo3",
        # A URL longer than a line is cut at the width (the JSON form keeps it whole).
        "    replaced because region changed (rule: region; source: https://github.com/digitalocean/terraform",
        "      -provider-digitalocean/blob/401992a1e493a0e3cfc833197820867991fc011f/digitalocean/volume/resou",
        "      rce_volume.go#L29-L123)",
        "    protected: `pulumi up` refuses to replace it until it is unprotected (phasekit:protect false,",
        "      applied first); retainOnDelete would keep the old one in the cloud, detached from the stack",
        "",
        "replace  vps-droplet  digitalocean:index/droplet:Droplet  (deleted before its replacement is",
    ]
    assert VOLUME_SOURCE.endswith("volume/resource_volume.go#L29-L123")
    assert "    dropletIds[0]: (known after apply), may change: from vps-droplet" in text
    assert text[-2:] == ["1 data-destroying change. If that is intended, allow it with --allow-data-loss (or the pull-request",
                         "  label allow-data-loss)."]


def test_database_droplet_and_volume_are_stateful_even_when_the_stack_turns_protection_off():
    risk = report("phase2", "phase2-unprotected.yaml", "phase2-unprotected-sfo3.yaml")
    assert [(item.name, item.type, item.protected, item.holds) for item in risk.data_destroying] == [
        ("split-db", "digitalocean:index/droplet:Droplet", False, "the database host's droplet backups"),
        ("split-db-data", "digitalocean:index/volume:Volume", False,
         "PostgreSQL's data and Redis' persistence (phases 1 and 2)"),
    ]
    assert [(reason.rule, reason.source) for reason in change(risk, "split-db").replaced_because] == [
        ("region", DROPLET_SOURCE)]
    # App droplets are replaced too, but hold nothing.
    app = change(risk, "split-app-0")
    assert (app.kind, app.holds, app.data_destroying) == ("replace", None, False)
    lines = risk_text(risk).splitlines()
    assert lines[5:7] == [
        "DATA-DESTROYING: split-db (digitalocean:index/droplet:Droplet) is replaced (deleted before its",
        "  replacement is created); it holds the database host's droplet backups"]
    assert "    not protected: `pulumi up` will replace it and the data is gone" in lines


def test_dropping_a_read_replica_deletes_it_and_a_class_change_is_in_place():
    risk = report("phase3", "phase3-replica-large.yaml", "phase3.yaml")
    # Without replicas RDS may manage the master password: the generated one and the Kubernetes Secret that
    # handed it to the database-role Job go, the Job reads RDS's secret through IRSA instead. The app keeps its
    # own role either way: DATABASE_URL, the env Secret and the release Job do not change.
    assert classified(risk) == [
        ("replace", "app-database-role", "kubernetes:batch/v1:Job"),
        ("delete", "app-database-role-master", "kubernetes:core/v1:Secret"),
        ("delete", "database-password", "random:index/randomPassword:RandomPassword"),
        ("delete", "database-replica-1", "aws:rds/instance:Instance"),
        ("create", "database-master-secret-reader", "aws:iam/role:Role"),
        ("create", "database-master-secret-reader-policy", "aws:iam/rolePolicy:RolePolicy"),
        ("update", "app-database-role-account", "kubernetes:core/v1:ServiceAccount"),
        ("update", "database-db", "aws:rds/instance:Instance"),
    ]
    assert [item.name for item in risk.data_destroying] == ["database-replica-1"]
    primary = change(risk, "database-db")
    assert [(prop.path, prop.old, prop.new, prop.forces_replacement) for prop in primary.properties] == [
        ("instanceClass", "db.t4g.large", "db.t4g.medium", None),
        ("manageMasterUserPassword", "(none)", "true", None),
        ("password", "[secret]", "(none)", None)]
    assert primary.data_destroying is False
    lines = risk_text(risk).splitlines()
    assert lines[5:9] == [
        "DATA-DESTROYING: database-replica-1 (aws:rds/instance:Instance) is deleted; it holds the PostgreSQL",
        "  database (phase 3)",
        "    protected: `pulumi up` refuses to delete it until it is unprotected (phasekit:protect false,",
        "      applied first); retainOnDelete would keep the old one in the cloud, detached from the stack",
    ]


def test_valkey_to_redis_replaces_the_replication_group():
    risk = report("phase3", "phase3.yaml", "phase3-redis.yaml")
    assert classified(risk) == [
        ("replace", "app-env", "kubernetes:core/v1:Secret"),
        ("replace", "app-release", "kubernetes:batch/v1:Job"),
        ("replace", "cache-cache", "aws:elasticache/replicationGroup:ReplicationGroup"),
        # The new group's final snapshot gets a name of its own (keepers: id, engine, subnet group).
        ("replace", "cache-final-snapshot", "random:index/randomId:RandomId"),
        ("replace", "cache-params", "aws:elasticache/parameterGroup:ParameterGroup"),
    ]
    assert [(reason.rule, reason.because) for reason in change(risk, "cache-final-snapshot").replaced_because] == [
        ("keepers", "keepers.engine changed")]
    group = change(risk, "cache-cache")
    assert [item.name for item in risk.data_destroying] == ["cache-cache"]
    assert [(reason.rule, reason.because, reason.source) for reason in group.replaced_because] == [
        ("engine", "engine changes from valkey to redis", REPLICATION_GROUP_SOURCE)]
    assert [(prop.path, prop.old, prop.new, prop.forces_replacement) for prop in group.properties] == [
        ("engine", "valkey", "redis", "engine"), ("engineVersion", "8.0", "7.1", None)]
    assert [(reason.rule, reason.because) for reason in change(risk, "cache-params").replaced_because] == [
        ("family", "family changed")]


def test_a_new_aws_region_replaces_everything_its_provider_manages():
    risk = report("phase3", "phase3.yaml", "phase3-us-west-2.yaml")
    base, head = recording("phase3", "phase3.yaml"), recording("phase3", "phase3-us-west-2.yaml")
    provider = change(risk, "aws")
    assert (provider.kind, provider.type) == ("replace", "pulumi:providers:aws")
    assert [(prop.path, prop.old, prop.new) for prop in provider.properties] == [
        ("region", "us-east-1", "us-west-2")]
    managed = [resource.urn for resource in head.resources if resource.provider
               and resource.provider.startswith(provider.urn + "::") and resource.urn in {r.urn for r in base.resources}]
    # + RDS monitoring role+policy, 2 add-on roles+policies, EBS CSI, S3 endpoint, - CNI policy; then (issue 12)
    # the master secret's reader role and policy, and the Cluster Autoscaler's and ALB access logs' resources;
    # - the secrets key's inert IAM policy (the key policy alone grants its use)
    assert len(managed) == 76
    assert {item.kind for item in risk.changes if item.urn in managed} == {"replace"}
    assert [(item.name, item.replaced_because[0].because, item.replaced_because[0].source)
            for item in risk.data_destroying] == [
        ("cache-cache", "its provider aws is replaced", AWS_REGION_SOURCE),
        ("database-db", "its provider aws is replaced", AWS_REGION_SOURCE),
    ]
    # The cluster's kubeconfig becomes unknown, so the Kubernetes provider and every object it manages go too.
    assert change(risk, "cluster-k8s").kind == "replace"
    assert change(risk, "app-deployment").replaced_because[0].because == "its provider cluster-k8s is replaced"
    # Subnets are named after their zones: new names, so created and deleted rather than replaced.
    assert sorted(item.name for item in risk.of_kind("create") if item.type == "aws:ec2/subnet:Subnet") == [
        "network-private-us-west-2a", "network-private-us-west-2b", "network-public-us-west-2a",
        "network-public-us-west-2b"]
    assert change(risk, "edge-media").kind == "unchanged"
    assert change(risk, "backups-bucket").kind == "unchanged"  # Cloudflare's: no AWS region to follow
    assert risk_text(risk).splitlines()[0] == (
        "phasekit risk: 12 to create, 1 to update in place, 105 to replace, 12 to delete, 14 unchanged")


def test_json_names_the_data_destroying_changes_and_how_to_allow_them():
    document = risk_json(report("phase1", "phase1.yaml", "phase1-sfo3.yaml"))
    assert document["summary"] == {"create": 0, "update": 9, "replace": 5, "delete": 0, "unchanged": 20}
    assert document["dataDestroying"] == [{
        "name": "vps-data", "type": "digitalocean:index/volume:Volume",
        "urn": "urn:pulumi:phase1::phasekit::phasekit:index:SingleVps$digitalocean:index/volume:Volume::vps-data",
        "kind": "replace", "holds": "PostgreSQL's data and Redis' persistence (phases 1 and 2)", "protected": True}]
    assert document["allowDataLoss"] == {"flag": "--allow-data-loss", "label": "allow-data-loss"}
    volume = next(item for item in document["changes"] if item["name"] == "vps-data")
    assert volume["properties"] == [{"path": "region", "old": "nyc3", "new": "sfo3", "forcesReplacement": "region",
                                     "mayChangeFrom": []}]
    assert volume["replacedBecause"] == [{"because": "region changed", "rule": "region", "source": VOLUME_SOURCE}]
    json.dumps(document)  # serialisable as the CLI prints it


def secret_values(*recordings: Recording) -> set[str]:
    """Every string inside a secret input of the recordings: what no output may show, nor its digest."""
    def strings(value) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [found for item in value.values() for found in strings(item)]
        if isinstance(value, list):
            return [found for item in value for found in strings(item)]
        return []
    return {text for recording in recordings for resource in recording.resources
            for key in resource.secret_inputs for text in strings(resource.inputs[key])}


def test_a_changed_secret_input_is_reported_without_its_value_its_digest_or_the_placeholder(capsys):
    """The registry's pull Secret is known offline and secret: a new registry user and the secrets going from
    the placeholder to (fake) ciphertexts change it, and nothing secret-bearing reaches text, JSON or CLI."""
    base_file, head_file = "phase3-registry.yaml", "phase3-registry-secrets.yaml"
    risk = report("phase3", base_file, head_file)
    assert classified(risk) == [("replace", "app-registry", "kubernetes:core/v1:Secret")]
    pull_secret = change(risk, "app-registry")
    assert [(prop.path, prop.old, prop.new, prop.forces_replacement) for prop in pull_secret.properties] == [
        ('stringData[".dockerconfigjson"]', "[secret]", "[secret]", "stringData")]
    assert [(reason.because, reason.source) for reason in pull_secret.replaced_because] == [
        ('stringData[".dockerconfigjson"] changed', K8S_SECRET_SOURCE)]

    values = secret_values(recording("phase3", base_file), recording("phase3", head_file))
    assert any("auths" in value for value in values)  # the known dockerconfigjson of both versions
    status, cli_text, _ = risk_cli(capsys, "--stack", "phase3", "--base", str(FIXTURES / base_file),
                                   "--head", str(FIXTURES / head_file))
    _, cli_json, _ = risk_cli(capsys, "--stack", "phase3", "--base", str(FIXTURES / base_file),
                              "--head", str(FIXTURES / head_file), "--json")
    assert status == 0
    rendered = risk_text(risk) + json.dumps(risk_json(risk)) + cli_text + cli_json
    forbidden = {SECRET_PLACEHOLDER, base64.b64encode(SECRET_PLACEHOLDER.encode()).decode(),
                 *(base64.b64encode(f"{user}:{SECRET_PLACEHOLDER}".encode()).decode() for user in ("alice", "bob")),
                 "c2VjcmV0LWtleS1iYXNlLWNpcGhlcnRleHQ=", "cmVnaXN0cnktcGFzc3dvcmQtY2lwaGVydGV4dA==",
                 *values, *(hashlib.sha256(value.encode()).hexdigest()[:12] for value in values)}
    assert [text for text in sorted(forbidden) if text in rendered] == []


def test_a_conditional_rule_on_a_secret_input_masks_both_values():
    group = "aws:elasticache/replicationGroup:ReplicationGroup"
    base = resource("cache", group, {"engine": "valkey"}, secret=("engine",))
    head = resource("cache", group, {"engine": "redis"}, secret=("engine",))
    cache = change(compare([base], [head]), "cache")
    assert cache.kind == "replace"
    assert [reason.because for reason in cache.replaced_because] == ["engine changes from [secret] to [secret]"]


@pytest.mark.parametrize(("changed", "kind", "rule"), [
    # Renamed in place since terraform-provider-aws v5 (pull request 32687): the data stays.
    ({"identifier": "phasekit-phase3-db-renamed"}, "update", None),
    ({"kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/cmk"}, "replace", "kmsKeyId"),
    ({"storageEncrypted": False}, "replace", "storageEncrypted"),
    ({"availabilityZone": "us-east-1b"}, "replace", "availabilityZone"),
    ({"dbSubnetGroupName": "other-subnets", "instanceClass": "db.t4g.large"}, "update", None),
])
def test_rds_replaces_only_on_the_providers_force_new_arguments(changed, kind, rule):
    rds = "aws:rds/instance:Instance"
    inputs = {"identifier": "phasekit-phase3-db", "engine": "postgres", "storageEncrypted": True,
              "dbSubnetGroupName": "subnets", "instanceClass": "db.t4g.medium"}
    database = change(compare([resource("db", rds, inputs, protect=True)],
                              [resource("db", rds, {**inputs, **changed}, protect=True)]), "db")
    assert (database.kind, database.data_destroying) == (kind, kind == "replace")
    assert [reason.rule for reason in database.replaced_because] == ([rule] if rule else [])


# --- The rules file ----------------------------------------------------------------------------------


def test_rules_cover_every_type_the_committed_stacks_create_except_the_aws_plumbing():
    rules = load_rules()
    types = {resource.type for stack, fixture in (("phase1", "phase1.yaml"), ("phase2", "phase2-unprotected.yaml"),
                                                  ("phase3", "phase3.yaml"))
             for resource in recording(stack, fixture).resources if resource.custom}
    # Not researched yet: a change to one is reported as in place with "no replacement rule".
    assert sorted(type_ for type_ in types if rules.rule_for(type_) is None) == [
        "aws:acm/certificate:Certificate", "aws:autoscaling/attachment:Attachment",
        "aws:cloudwatch/logGroup:LogGroup", "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "aws:ec2/eip:Eip", "aws:ec2/flowLog:FlowLog",
        "aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway", "aws:ec2/routeTable:RouteTable",
        "aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "aws:eks/addon:Addon",
        "aws:elasticache/subnetGroup:SubnetGroup", "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
        "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:kms/alias:Alias", "aws:kms/key:Key", "aws:lb/listener:Listener", "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup", "aws:rds/subnetGroup:SubnetGroup",
        # The ALB access-log bucket and its configuration (issue 12).
        "aws:s3/bucket:Bucket", "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:sns/topic:Topic", "aws:sns/topicPolicy:TopicPolicy", "aws:sns/topicSubscription:TopicSubscription",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        # The database-role Job's ConfigMap and the Cluster Autoscaler's account and RBAC (issue 12).
        "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:ServiceAccount",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
        "kubernetes:rbac.authorization.k8s.io/v1:Role", "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
        # The cluster's default StorageClass: replacing it leaves every volume (reclaim policy Retain).
        "kubernetes:storage.k8s.io/v1:StorageClass",
    ]
    assert sorted(rule.type for rule in rules.rules if rule.type not in types) == [
        "kubernetes:core/v1:PersistentVolumeClaim"]
    droplet = rules.rule_for("digitalocean:index/droplet:Droplet")
    assert droplet is not None and droplet.properties == (
        "image", "region", "sshKeys", "userData", "monitoring", "vpcUuid")
    assert [(c.property, c.from_value, c.to_value) for c in droplet.conditional] == [("ipv6", True, False)]


def test_every_protected_resource_is_listed_as_stateful_in_the_rules_file():
    stateful = {(stack, resource.name, data_held(resource))
                for stack, fixture in (("phase1", "phase1.yaml"), ("phase2", "phase2-unprotected.yaml"),
                                       ("phase3", "phase3-replica-large.yaml"))
                for resource in recording(stack, fixture).resources if data_held(resource)}
    assert {(stack, name) for stack, name, _ in stateful} == {
        ("phase1", "vps-data"), ("phase1", "edge-media"), ("phase1", "backups-bucket"),
        ("phase2", "split-db"), ("phase2", "split-db-data"), ("phase2", "edge-media"), ("phase2", "backups-bucket"),
        ("phase3", "database-db"), ("phase3", "database-replica-1"), ("phase3", "cache-cache"),
        ("phase3", "edge-media"), ("phase3", "backups-bucket"),
    }
    # Matched by the rules, not only by the program's protect + retainOnDelete fallback.
    assert PROGRAM_PROTECTED_HOLDS not in {holds for _, _, holds in stateful}


GOOD_RULE = {"type": "digitalocean:index/volume:Volume", "properties": ["region"],
             "source": "https://example.com/volume", "quote": "ForceNew: true"}


@pytest.mark.parametrize(("document", "message"), [
    ({"rules": [{**GOOD_RULE, "source": "http://example.com"}]},
     "rules.yaml: rules[0] (digitalocean:index/volume:Volume): source: String should match pattern '^https://\\S+$'"),
    ({"rules": [{k: v for k, v in GOOD_RULE.items() if k != "quote"}]},
     "rules.yaml: rules[0] (digitalocean:index/volume:Volume): quote: Field required"),
    ({"rules": [GOOD_RULE, {**GOOD_RULE, "notes": "again"}]},
     "rules.yaml: rules: digitalocean:index/volume:Volume is listed twice; allowed: one entry per type"),
    ({"rules": [{**GOOD_RULE, "replaceOn": ["size"]}]},
     "rules.yaml: rules[0] (digitalocean:index/volume:Volume): replaceOn: Extra inputs are not permitted"),
    ({"rules": [{**GOOD_RULE, "conditional": [{"property": "ipv6", "from": True, "removed": True}]}]},
     "rules.yaml: rules[0] (digitalocean:index/volume:Volume): conditional.0: give either from/to or removed: true"),
    ({"rules": [{**GOOD_RULE, "properties": ["spec.containers[0]"]}]},
     "rules.yaml: rules[0] (digitalocean:index/volume:Volume): properties.0: String should match pattern "
     "'^[A-Za-z][A-Za-z0-9]*(\\.[A-Za-z][A-Za-z0-9]*)*$'"),
    ({}, "rules.yaml: rules: Field required"),
])
def test_a_bad_rules_file_stops_with_one_line_naming_the_entry(tmp_path, document, message):
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps(document))  # JSON is YAML
    with pytest.raises(ConfigError) as raised:
        load_rules(path)
    assert str(raised.value) == message


def test_a_rules_file_that_is_not_yaml_is_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules: [unclosed\n")
    with pytest.raises(ConfigError) as raised:
        load_rules(path)
    assert str(raised.value) == "rules.yaml:2:1: not valid YAML: expected ',' or ']', but got '<stream end>'"
    with pytest.raises(ConfigError) as raised:
        load_rules(tmp_path / "absent.yaml")
    assert str(raised.value) == "absent.yaml: cannot read the replacement rules: No such file or directory"


def test_the_committed_rules_file_is_the_default():
    assert RULES_FILE == ROOT / "phasekit" / "replacement_rules.yaml"
    assert load_rules() == load_rules(RULES_FILE)


# --- Comparison logic on hand-built recordings -------------------------------------------------------


def resource(name: str, type_: str, inputs: dict, *, secret: tuple[str, ...] = (), ignore: tuple[str, ...] = (),
             dependencies: tuple[str, ...] = (), provider: str | None = None, parent_type: str | None = None,
             protect: bool = False) -> RecordedResource:
    qualified = f"{parent_type}${type_}" if parent_type else type_
    return RecordedResource(
        urn=f"urn:pulumi:test::phasekit::{qualified}::{name}", id=None, type=type_, name=name, parent=None,
        inputs=inputs, secret_inputs=frozenset(secret), protect=protect, retain_on_delete=protect,
        delete_before_replace=False, ignore_changes=ignore, dependencies=dependencies, custom=True,
        provider=provider)


def compare(base: list, head: list) -> RiskReport:
    return assess(Recording(resources=base), Recording(resources=head))


DROPLET = "digitalocean:index/droplet:Droplet"
COMMAND = "command:remote:Command"


def test_unknowns_compare_equal_and_secrets_compare_by_value_but_never_print():
    base = resource("run", COMMAND, {"stdin": "old-bundle-s3cr3t", "connection": Unknown()}, secret=("stdin",))
    same = resource("run", COMMAND, {"stdin": "old-bundle-s3cr3t", "connection": Unknown()}, secret=("stdin",))
    changed = resource("run", COMMAND, {"stdin": "new-bundle-s3cr3t", "connection": Unknown()}, secret=("stdin",))
    assert change(compare([base], [same]), "run").kind == "unchanged"
    risk = compare([base], [changed])
    assert [(prop.path, prop.old, prop.new) for prop in change(risk, "run").properties] == [
        ("stdin", "[secret]", "[secret]")]
    rendered = risk_text(risk) + json.dumps(risk_json(risk))
    assert "s3cr3t" not in rendered and "    stdin: [secret] → [secret]" in rendered


def test_ignored_paths_are_not_applied_but_are_reported():
    deployment = "kubernetes:apps/v1:Deployment"
    base = resource("web", deployment, {"spec": {"replicas": 2, "template": {"image": "app:1"}}},
                    ignore=("spec.replicas",))
    head = resource("web", deployment, {"spec": {"replicas": 5, "template": {"image": "app:2"}}},
                    ignore=("spec.replicas",))
    web = change(compare([base], [head]), "web")
    assert (web.kind, web.ignored) == ("update", ("spec.replicas",))
    assert [(prop.path, prop.old, prop.new) for prop in web.properties] == [("spec.template.image", "app:1", "app:2")]


@pytest.mark.parametrize(("before", "after", "kind"), [(True, False, "replace"), (False, True, "update")])
def test_turning_ipv6_off_replaces_a_droplet_and_turning_it_on_does_not(before, after, kind):
    base = resource("web", DROPLET, {"ipv6": before, "size": "s-1vcpu-2gb"})
    head = resource("web", DROPLET, {"ipv6": after, "size": "s-1vcpu-2gb"})
    web = change(compare([base], [head]), "web")
    assert web.kind == kind
    assert [reason.because for reason in web.replaced_because] == (
        ["ipv6 changes from true to false"] if kind == "replace" else [])


def test_only_the_split_database_droplet_is_a_stateful_droplet():
    volume = {"volumeIds": ["vol-1"]}
    database = resource("split-db", DROPLET, volume, parent_type="phasekit:index:SplitVps")
    app = resource("split-app-0", DROPLET, {}, parent_type="phasekit:index:SplitVps")
    single = resource("vps-droplet", DROPLET, volume, parent_type="phasekit:index:SingleVps")
    assert [data_held(item) for item in (database, app, single)] == [
        "the database host's droplet backups", None, None]
    assert data_held(resource("x", DROPLET, {}, protect=True)) == PROGRAM_PROTECTED_HOLDS


AWS_PROVIDER = "pulumi:providers:aws"
VPC = "aws:ec2/vpc:Vpc"


def provider_ref(provider: RecordedResource) -> str:
    return f"{provider.urn}::04da6b54-80e4-46f7-96ec-b56ff0331ba9"


@pytest.mark.parametrize(("new_region", "kind"), [("us-west-2", "replace"), ("us-east-1", "unchanged")])
def test_moving_to_another_explicit_provider_replaces_only_when_its_region_differs(new_region, kind):
    east = resource("east", AWS_PROVIDER, {"region": "us-east-1"})
    other = resource("other", AWS_PROVIDER, {"region": new_region})
    base = resource("net", VPC, {"cidrBlock": "10.0.0.0/16"}, provider=provider_ref(east))
    head = resource("net", VPC, {"cidrBlock": "10.0.0.0/16"}, provider=provider_ref(other))
    risk = compare([east, base], [east, other, head])
    net = change(risk, "net")
    assert net.kind == kind
    if kind == "replace":
        assert net.replaced_because[0].because == (
            "its provider changes from east to other with region: us-east-1 → us-west-2")


def test_moving_off_the_default_provider_is_treated_as_a_replacement():
    explicit = resource("explicit", AWS_PROVIDER, {"region": "us-east-1"})
    base = resource("net", VPC, {"cidrBlock": "10.0.0.0/16"})
    head = resource("net", VPC, {"cidrBlock": "10.0.0.0/16"}, provider=provider_ref(explicit))
    net = change(compare([base], [explicit, head]), "net")
    assert net.kind == "replace"
    assert net.replaced_because[0].because.startswith("its provider changes from the default provider to explicit;")


def test_with_per_input_sources_only_inputs_fed_by_a_replaced_resource_may_change():
    group = "aws:elasticache/replicationGroup:ReplicationGroup"
    params = "aws:elasticache/parameterGroup:ParameterGroup"
    subnets = "aws:elasticache/subnetGroup:SubnetGroup"
    old_params = resource("params", params, {"family": "redis7"})
    new_params = resource("params", params, {"family": "valkey8"})
    subnet_group = resource("subnets", subnets, {"description": "cache"})

    def cache(engine: str, sources: bool) -> RecordedResource:
        plain = resource("cache", group, {"engine": engine, "parameterGroupName": Unknown(),
                                          "subnetGroupName": Unknown()},
                         dependencies=(old_params.urn, subnet_group.urn))
        if not sources:
            return plain
        return dataclasses.replace(plain, property_dependencies={"parameterGroupName": (old_params.urn,),
                                                                 "subnetGroupName": (subnet_group.urn,)})

    precise = change(compare([old_params, subnet_group, cache("redis", True)],
                             [new_params, subnet_group, cache("valkey", True)]), "cache")
    assert precise.kind == "update"
    assert [(prop.path, prop.may_change_from) for prop in precise.properties] == [
        ("engine", ()), ("parameterGroupName", ("params",))]
    # Without them, every computed input may come from the replaced parameter group: subnetGroupName replaces.
    coarse = change(compare([old_params, subnet_group, cache("redis", False)],
                            [new_params, subnet_group, cache("valkey", False)]), "cache")
    assert coarse.kind == "replace"
    assert [reason.rule for reason in coarse.replaced_because] == ["subnetGroupName"]


# --- The CLI -----------------------------------------------------------------------------------------


def risk_cli(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["risk", *args, "--project-dir", str(ROOT)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_exits_4_on_data_loss_and_0_when_allowed(capsys):
    args = ("--stack", "phase1", "--base", str(FIXTURES / "phase1.yaml"), "--head", str(FIXTURES / "phase1-sfo3.yaml"))
    status, out, err = risk_cli(capsys, *args)
    assert (status, err) == (4, "")
    assert out.splitlines()[0] == "phasekit risk: 0 to create, 9 to update in place, 5 to replace, 0 to delete, " \
                                  "20 unchanged"
    status, out, _ = risk_cli(capsys, *args, "--allow-data-loss", "--json")
    assert status == 0
    assert [item["name"] for item in json.loads(out)["dataDestroying"]] == ["vps-data"]


def test_cli_exits_0_on_a_harmless_change(capsys):
    status, out, _ = risk_cli(capsys, "--stack", "phase1", "--base", str(FIXTURES / "phase1.yaml"),
                              "--head", str(FIXTURES / "phase1-harmless.yaml"))
    assert status == 0
    assert out.endswith("\nNo data-destroying changes.\n")


PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"


def _params(max_connections: str, slow_ms: str = "1000") -> dict:
    return {"family": "postgres16", "parameters": [
        {"name": "rds.force_ssl", "value": "1", "applyMethod": "immediate"},
        {"name": "max_connections", "value": max_connections, "applyMethod": "pending-reboot"},
        {"name": "log_min_duration_statement", "value": slow_ms, "applyMethod": "immediate"}]}


def test_a_static_parameter_change_says_it_applies_at_the_next_reboot_of_each_instance_using_it():
    group_urn = "urn:pulumi:test::phasekit::" + PARAMETER_GROUP + "::database-params"
    instances = [resource(name, "aws:rds/instance:Instance", {"identifier": identifier}, dependencies=(group_urn,))
                 for name, identifier in (("database-db", "shop-db"), ("database-replica-1", "shop-db-replica-1"))]
    risk = compare([resource("database-params", PARAMETER_GROUP, _params("40")), *instances],
                   [resource("database-params", PARAMETER_GROUP, _params("57")), *instances])
    group = change(risk, "database-params")
    assert (group.kind, group.reboot_needed, group.reboot_instances) == (
        "update", ("max_connections: 40 → 57",), ("shop-db", "shop-db-replica-1"))
    # Each command on a line of its own, so wrapping the prose never cuts one.
    assert risk_text(risk).splitlines()[5:10] == [
        "update   database-params  aws:rds/parameterGroup:ParameterGroup",
        "    parameters[1].value: 40 → 57",
        "    applies at the next reboot (max_connections: 40 → 57); the instance is unavailable while it",
        "      restarts:",
        "      aws rds reboot-db-instance --db-instance-identifier shop-db",
    ]
    assert risk_text(risk).splitlines()[10] == "      aws rds reboot-db-instance --db-instance-identifier shop-db-replica-1"
    json_change = next(item for item in risk_json(risk)["changes"] if item["name"] == "database-params")
    assert (json_change["rebootNeeded"], json_change["rebootInstances"]) == (
        ["max_connections: 40 → 57"], ["shop-db", "shop-db-replica-1"])


def test_without_the_instances_in_the_plan_the_reboot_line_names_the_placeholder():
    risk = compare([resource("database-params", PARAMETER_GROUP, _params("40"))],
                   [resource("database-params", PARAMETER_GROUP, _params("57"))])
    assert risk_text(risk).splitlines()[8:] == [
        "      restarts:",
        "      aws rds reboot-db-instance --db-instance-identifier <identifier>   \\",
        "          # for each instance using this group",
        "",
        "No data-destroying changes."]


def test_the_committed_phase3_plan_names_its_primary_for_the_reboot():
    base = recording("phase3", "phase3.yaml")
    group = next(item for item in base.resources if item.type == PARAMETER_GROUP)
    more = dataclasses.replace(group, inputs={**group.inputs, "parameters": [
        {**item, "value": "999"} if item["name"] == "max_connections" else item
        for item in group.inputs["parameters"]]})
    head = Recording(resources=[more if item is group else item for item in base.resources])
    changed = change(assess(base, head), group.name)
    assert changed.reboot_instances == (base.one("aws:rds/instance:Instance").inputs["identifier"],)


def test_a_dynamic_parameter_change_needs_no_reboot():
    risk = compare([resource("database-params", PARAMETER_GROUP, _params("40", "1000"))],
                   [resource("database-params", PARAMETER_GROUP, _params("40", "500"))])
    assert change(risk, "database-params").reboot_needed == ()
    assert "reboot" not in risk_text(risk)


@pytest.mark.parametrize(("stack", "base", "head"), [
    ("phase1", "phase1.yaml", "phase1-sfo3.yaml"),
    ("phase2", "phase2-unprotected.yaml", "phase2-unprotected-sfo3.yaml"),
    ("phase3", "phase3.yaml", "phase3-us-west-2.yaml"),
    ("phase3", "phase3.yaml", "phase3-replica-large.yaml"),
])
def test_no_line_of_the_risk_report_is_wider_than_the_width(stack, base, head):
    lines = risk_text(report(stack, base, head)).splitlines()
    assert [line for line in lines if len(line) > WIDTH] == []
    assert len(lines) > 5


def test_renaming_the_stack_replaces_the_backups_bucket_and_says_what_it_holds():
    bucket = resource("backups-bucket", "cloudflare:index/r2Bucket:R2Bucket", {"name": "phasekit-phase1-backups"},
                      parent_type="phasekit:index:BackupStore", protect=True)
    media = resource("edge-media", "cloudflare:index/r2Bucket:R2Bucket", {"name": "phasekit-phase1-media"},
                     parent_type="phasekit:index:CloudflareEdge", protect=True)
    assert [data_held(item) for item in (bucket, media)] == [
        "the database's off-site backups and WAL archive (the copies a restore starts from)", "user-uploaded media"]


# --- Processes and schedules -------------------------------------------------------------------------


def _configs(phase: int, **worker):
    from infra.config import load_config
    from phasekit.stack_file import read_stack_file
    from tests.builders import with_processes

    raw = read_stack_file(ROOT / f"Pulumi.phase{phase}.yaml")
    return raw, with_processes(raw, **worker), load_config


@pytest.mark.parametrize(("phase", "where"), [(1, "the droplet"), (2, "app-0")])
def test_processes_and_schedules_on_droplets_roll_out_in_place(phase, where):
    from phasekit.change_risk import app_changes

    raw, with_worker, load_config = _configs(phase)
    base, head = load_config(raw), load_config(with_worker)
    assert app_changes(base, head) == (
        "process worker added: the rollout starts 2 containers on each app droplet after the release command; "
        "no droplet is replaced",
        f"schedule refresh-trending added ('*/15 * * * *', UTC): the rollout installs its systemd timer on {where} "
        "after the release command",
        f"schedule expire-sessions added ('30 4 * * *', UTC): the rollout installs its systemd timer on {where} "
        "after the release command",
    )
    assert app_changes(head, base) == (
        "process worker removed: the rollout stops its containers on each app droplet (SIGTERM, SIGKILL after "
        "60 s); no droplet is replaced",
        f"schedule refresh-trending removed: the rollout removes its systemd timer from {where}, so no further "
        "run starts",
        f"schedule expire-sessions removed: the rollout removes its systemd timer from {where}, so no further run "
        "starts",
    )
    changed = copy_with(with_worker, count=3, cron="0 * * * *")
    assert app_changes(head, load_config(changed)) == (
        "process worker changed (count 2 → 3): the rollout updates its containers in place; no droplet is replaced",
        "schedule refresh-trending changed (cron '*/15 * * * *' → '0 * * * *'): the rollout rewrites its timer "
        f"and service on {where} in place; runs from the next tick on follow it",
    )
    assert app_changes(base, base) == ()


def copy_with(raw: dict, count: int, cron: str) -> dict:
    import copy

    raw = copy.deepcopy(raw)
    raw["phasekit:app"]["processes"]["worker"]["count"] = count
    raw["phasekit:app"]["schedules"]["refresh-trending"]["cron"] = cron
    return raw


def test_processes_and_schedules_in_phase3_are_deployments_and_cronjobs():
    from phasekit.change_risk import app_changes

    raw, with_worker, load_config = _configs(3, maxCount=4)
    base, head = load_config(raw), load_config(with_worker)
    assert app_changes(head, base) == (
        "process worker removed: its Deployment, PodDisruptionBudget and any HorizontalPodAutoscaler are deleted; "
        "its pods get SIGTERM, then SIGKILL after 60 s",
        "schedule refresh-trending removed: its CronJob is deleted, so no further run starts",
        "schedule expire-sessions removed: its CronJob is deleted, so no further run starts",
    )
    assert app_changes(head, load_config(copy_with(with_worker, count=3, cron="0 * * * *"))) == (
        "process worker changed (count 2 → 3): its Deployment is updated in place",
        "schedule refresh-trending changed (cron '*/15 * * * *' → '0 * * * *'): its CronJob is updated in place; "
        "runs from the next tick on follow it",
    )


def test_adding_a_worker_to_phase3_says_what_is_created(tmp_path):
    import yaml

    from phasekit.change_risk import with_app_changes

    raw, with_worker, load_config = _configs(3, maxCount=4)
    head_file = tmp_path / "Pulumi.phase3.yaml"
    head_file.write_text(yaml.safe_dump({"config": with_worker}), encoding="utf-8")
    risk = with_app_changes(assess(run_plan("phase3", ROOT).recording,
                                   run_plan("phase3", ROOT, stack_file=head_file).recording),
                            load_config(raw), load_config(with_worker))
    assert [entry for entry in classified(risk) if entry[0] == "create"] == [
        ("create", "app-expire-sessions-cronjob", "kubernetes:batch/v1:CronJob"),
        ("create", "app-refresh-trending-cronjob", "kubernetes:batch/v1:CronJob"),
        ("create", "app-worker-deployment", "kubernetes:apps/v1:Deployment"),
        ("create", "app-worker-hpa", "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"),
        ("create", "app-worker-pdb", "kubernetes:policy/v1:PodDisruptionBudget"),
    ]
    assert [entry for entry in classified(risk) if entry[0] in ("replace", "delete")] == []
    assert {change.type for change in risk.changes if change.kind == "create"} <= {
        rule.type for rule in load_rules().rules}
    text = risk_text(risk)
    assert text[text.index("app processes"):] == (
        "app processes and schedules (read from the two stack files):\n"
        "  - process worker added: a Deployment of 2 replicas, a HorizontalPodAutoscaler up to 4 and a\n"
        "    PodDisruptionBudget are created after the release Job\n"
        "  - schedule refresh-trending added ('*/15 * * * *', UTC): a CronJob is created after the release\n"
        "    Job; its first run is at the next tick\n"
        "  - schedule expire-sessions added ('30 4 * * *', UTC): a CronJob is created after the release Job;\n"
        "    its first run is at the next tick\n"
        "\n"
        "No data-destroying changes.\n"
    )
    assert risk_json(risk)["appChanges"] == list(risk.app_changes)
    assert "appChanges" not in risk_json(dataclasses.replace(risk, app_changes=()))
