"""The guardrail rules (``policy.rules``) and their offline run in ``phasekit plan`` (``phasekit.guardrails``).

Every rule on hand-built resource views that pass and that fail (exact messages), unknown values passing,
every committed stack passing every rule, and mutated real recordings failing, which proves the adapter
hands the rules the program's real inputs. ``tests/test_policy_pack.py`` runs the same ``CASES`` through
the Pulumi Policy SDK.

What this cannot prove: what the Pulumi engine sends a policy pack for a real preview (the inputs after
each provider's ``Check``, which may add defaults); only ``pulumi preview --policy-pack policy`` shows
that.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.testing import Recording
from infra.errors import ConfigError
from phasekit.guardrails import (
    Violation,
    evaluate,
    guardrail_lines,
    guardrails_json,
    load_policy_pack_config,
    resource_view,
)
from phasekit.plan import run_plan
from policy import rules
from policy.rules import UNKNOWN, ResourceView

ROOT = Path(__file__).resolve().parents[1]
STACKS = ("phase1", "phase2", "phase3")


def view(type_token: str, props: Mapping[str, Any], *, name: str = "subject", protect: bool = False,
         parents: tuple[str, ...] = ()) -> ResourceView:
    qualified = "$".join((*parents, type_token))
    return ResourceView(type=type_token, name=name, urn=f"urn:pulumi:test::phasekit::{qualified}::{name}",
                        props=props, protect=protect)


def rule_named(name: str) -> rules.Rule:
    return next(rule for rule in rules.RULES if rule.name == name)


@dataclass(frozen=True)
class Case:
    id: str
    policy: str
    resources: tuple[ResourceView, ...]
    expected: tuple[tuple[str, str], ...]
    """(resource name, message) for every violation, in order."""


def run_case(case: Case) -> list[tuple[str, str]]:
    rule = rule_named(case.policy)
    if isinstance(rule, rules.StackRule):
        return [(resource.name, message) for resource, message in rule.violations(case.resources)]
    return [(resource.name, message) for resource in case.resources for message in rule.violations(resource)]


# --- Resource shapes phasekit creates (trimmed to what the rules read) --------------------------------

CLOUDFLARE = "173.245.48.0/20"
ADMIN = "203.0.113.0/24"

PHASE2_DB_FIREWALL = {
    "dropletIds": [UNKNOWN],
    "inboundRules": [
        {"protocol": "tcp", "portRange": "22", "sourceAddresses": [ADMIN]},
        {"protocol": "tcp", "portRange": "6432", "sourceTags": ["phasekit-phase2-app-tier"]},
        {"protocol": "tcp", "portRange": "6379", "sourceTags": ["phasekit-phase2-app-tier"]},
        {"protocol": "tcp", "portRange": "443", "sourceAddresses": [CLOUDFLARE, "2400:cb00::/32"]},
    ],
    "outboundRules": [{"protocol": "tcp", "portRange": "443", "destinationAddresses": ["0.0.0.0/0", "::/0"]}],
}
RDS_PRIMARY = {
    "backupRetentionPeriod": 7.0, "dbSubnetGroupName": UNKNOWN, "deletionProtection": True,
    "publiclyAccessible": False, "skipFinalSnapshot": False, "storageEncrypted": True,
}
RDS_REPLICA = {
    "replicateSourceDb": "phasekit-phase3-db", "deletionProtection": True, "publiclyAccessible": False,
    "skipFinalSnapshot": True, "storageEncrypted": True,
}
CACHE = {
    "atRestEncryptionEnabled": True, "transitEncryptionEnabled": True, "snapshotRetentionLimit": 1.0,
    "subnetGroupName": UNKNOWN,
}
EKS = {
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": UNKNOWN}},
    "vpcConfig": {"endpointPublicAccess": True, "endpointPrivateAccess": True, "subnetIds": UNKNOWN,
                  "publicAccessCidrs": [ADMIN]},
}
LAUNCH_TEMPLATE = {
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeType": "gp3", "encrypted": "true"}}],
    "metadataOptions": {"httpEndpoint": "enabled", "httpPutResponseHopLimit": 1.0, "httpTokens": "required"},
}
WEB_LABELS = {"app.kubernetes.io/component": "web", "app.kubernetes.io/name": "app"}
RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
              "capabilities": {"drop": ["ALL"]}}
POD_CONTEXT = {"runAsNonRoot": True, "runAsUser": 10001.0, "seccompProfile": {"type": "RuntimeDefault"}}
PROBE = {"httpGet": {"path": "/healthz", "port": "http"}}
APP_CONTAINER = {"name": "app", "securityContext": RESTRICTED, "readinessProbe": PROBE, "livenessProbe": PROBE}


def deployment(containers: list[dict], *, pod_context: Any = POD_CONTEXT, labels: Any = WEB_LABELS,
               namespace: Any = "app") -> dict:
    return {
        "metadata": {"namespace": namespace, "name": "app"},
        "spec": {"selector": {"matchLabels": WEB_LABELS},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": containers, "securityContext": pod_context}}},
    }


def budget(selector: Any, namespace: Any = "app") -> dict:
    return {"metadata": {"namespace": namespace, "name": "app"}, "spec": {"maxUnavailable": 1.0, "selector": selector}}


DATA_STORES = "no-public-data-stores"
ENCRYPTED = "data-encrypted"
PROTECTED = "stateful-resources-protected"
BACKUPS = "backups-kept"
SSH = "ssh-not-open-to-world"
K8S_API = "kubernetes-api-not-public"
IMDS = "imdsv2-required"
PODS = "pods-restricted-security-context"
PROBES = "containers-have-probes"
HPA = "hpa-min-replicas"
PDB = "deployments-have-pdb"
DIGEST = "images-pinned-by-digest"
PINNED = "ghcr.io/acme/shop:1.4.2@sha256:" + "0" * 64

OPEN_FIREWALL = view(rules.DO_FIREWALL, {"inboundRules": [
    {"protocol": "tcp", "portRange": "22", "sourceAddresses": [ADMIN, "0.0.0.0/0"]},
    {"protocol": "tcp", "portRange": "5432", "sourceAddresses": ["10.0.0.0/8"]},
    {"protocol": "tcp", "portRange": "1-65535", "sourceAddresses": ["::/0"]},
    {"protocol": "udp", "portRange": "6379", "sourceAddresses": ["0.0.0.0/0"]},
    {"protocol": "tcp", "portRange": "6379", "sourceTags": ["app"]},
]}, name="open-firewall")
OPEN_SECURITY_GROUP = view(rules.SECURITY_GROUP, {"ingress": [
    {"protocol": "tcp", "fromPort": 5432.0, "toPort": 5432.0, "cidrBlocks": ["10.20.0.0/16"]},
    {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "ipv6CidrBlocks": ["::/0"]},
    {"protocol": "udp", "fromPort": 6379.0, "toPort": 6379.0, "cidrBlocks": ["0.0.0.0/0"]},
]}, name="open-sg")
SSH_INGRESS_RULE = view(rules.SECURITY_GROUP_INGRESS_RULE, {
    "ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrIpv4": "0.0.0.0/0"}, name="ssh-rule")
REDIS_INGRESS_RULE = view(rules.SECURITY_GROUP_INGRESS_RULE, {
    "ipProtocol": "tcp", "fromPort": 6379.0, "toPort": 6379.0, "cidrIpv4": "10.0.0.0/8"}, name="redis-rule")
LEGACY_RULE = view(rules.SECURITY_GROUP_RULE, {
    "type": "ingress", "protocol": "tcp", "fromPort": 5432.0, "toPort": 6432.0, "cidrBlocks": ["0.0.0.0/0"]},
    name="legacy-rule")
DB_DROPLET_PARENTS = ("phasekit:index:SplitVps",)
DATA_ADMIT = "admit the app tier by tag or droplet id only"
SG_ADMIT = "admit only the clients' security group"
UNPROTECTED = "protect is off: a delete or replace would destroy its data (phasekit:protect: true sets it)"

CASES: tuple[Case, ...] = (
    # 9b. images pinned by digest (advisory)
    Case("pinned-images-pass", DIGEST, (view(rules.K8S_DEPLOYMENT, deployment([{**APP_CONTAINER, "image": PINNED}])),
                                        view(rules.K8S_JOB, {"spec": {"template": {"spec": {"containers": [
                                            {"name": "release", "image": PINNED}]}}}})), ()),
    Case("tag-only-images-fail", DIGEST, (
        view(rules.K8S_DEPLOYMENT, deployment([{**APP_CONTAINER, "image": "ghcr.io/acme/shop:1.4.2"}]), name="web"),
        view(rules.K8S_JOB, {"spec": {"template": {"spec": {
            "initContainers": [{"name": "wait", "image": "busybox:1.36"}],
            "containers": [{"name": "release", "image": PINNED}]}}}}, name="release")), (
        ("web", "container app: image 'ghcr.io/acme/shop:1.4.2' is not pinned by digest: a re-pushed tag rolls no "
                "pod and runs no release Job; use <image>@sha256:<digest>"),
        ("release", "container wait: image 'busybox:1.36' is not pinned by digest: a re-pushed tag rolls no pod "
                    "and runs no release Job; use <image>@sha256:<digest>"),
    )),
    Case("image-unknowns-pass", DIGEST, (view(rules.K8S_DEPLOYMENT, deployment([{**APP_CONTAINER, "image": UNKNOWN}])),
                                         view(rules.K8S_DEPLOYMENT, {"spec": UNKNOWN})), ()),
    # 1. no public database or cache
    Case("phasekit-data-firewall-passes", DATA_STORES, (view(rules.DO_FIREWALL, PHASE2_DB_FIREWALL),), ()),
    Case("phasekit-data-security-group-passes", DATA_STORES, (view(rules.SECURITY_GROUP, {"egress": [], "ingress": [
        {"protocol": "tcp", "fromPort": 5432.0, "toPort": 5432.0, "securityGroups": [UNKNOWN]}]}),), ()),
    Case("data-ports-from-addresses-fail", DATA_STORES, (OPEN_FIREWALL, OPEN_SECURITY_GROUP, REDIS_INGRESS_RULE,
                                                         LEGACY_RULE), (
        ("open-firewall", f"inbound tcp 5432 (PostgreSQL) admits addresses 10.0.0.0/8: {DATA_ADMIT}"),
        ("open-firewall", f"inbound tcp 1-65535 (PostgreSQL, PgBouncer, Redis) admits addresses ::/0: {DATA_ADMIT}"),
        ("open-sg", f"ingress tcp 5432 (PostgreSQL) admits addresses 10.20.0.0/16: {SG_ADMIT}"),
        ("open-sg", f"ingress all traffic (PostgreSQL, PgBouncer, Redis) admits addresses ::/0: {SG_ADMIT}"),
        ("redis-rule", f"ingress tcp 6379 (Redis) admits addresses 10.0.0.0/8: {SG_ADMIT}"),
        ("legacy-rule", f"ingress tcp 5432-6432 (PostgreSQL, PgBouncer, Redis) admits addresses 0.0.0.0/0: "
                        f"{SG_ADMIT}"),
    )),
    Case("phasekit-rds-and-cache-pass", DATA_STORES, (view(rules.RDS_INSTANCE, RDS_PRIMARY),
                                                      view(rules.RDS_INSTANCE, RDS_REPLICA),
                                                      view(rules.ELASTICACHE_GROUP, CACHE)), ()),
    Case("public-rds-and-default-vpc-fail", DATA_STORES, (
        view(rules.RDS_INSTANCE, {**RDS_PRIMARY, "publiclyAccessible": True, "dbSubnetGroupName": None}, name="db"),
        view(rules.ELASTICACHE_GROUP, {**CACHE, "subnetGroupName": None}, name="cache")), (
        ("db", "publiclyAccessible is true: the instance gets a public address"),
        ("db", "no dbSubnetGroupName: the instance would land in the default VPC, whose subnets are public"),
        ("cache", "no subnetGroupName: the cache would land in the default VPC, whose subnets are public"),
    )),
    Case("data-store-unknowns-pass", DATA_STORES, (
        view(rules.DO_FIREWALL, {"inboundRules": [
            {"protocol": "tcp", "portRange": UNKNOWN, "sourceAddresses": ["0.0.0.0/0"]},
            {"protocol": "tcp", "portRange": "5432", "sourceAddresses": UNKNOWN}]}),
        view(rules.DO_FIREWALL, {"inboundRules": UNKNOWN}),
        view(rules.SECURITY_GROUP, {"ingress": [
            {"protocol": "tcp", "fromPort": UNKNOWN, "toPort": UNKNOWN, "cidrBlocks": ["0.0.0.0/0"]},
            {"protocol": "tcp", "fromPort": 5432.0, "toPort": 5432.0, "cidrBlocks": UNKNOWN}]}),
        view(rules.RDS_INSTANCE, {**RDS_PRIMARY, "publiclyAccessible": UNKNOWN}),
    ), ()),
    # 2. encryption
    Case("phasekit-encryption-passes", ENCRYPTED, (
        view(rules.RDS_INSTANCE, RDS_PRIMARY), view(rules.ELASTICACHE_GROUP, CACHE), view(rules.EKS_CLUSTER, EKS),
        view(rules.EKS_CLUSTER, {"encryptionConfig": [{"resources": ["secrets"], "provider": {"keyArn": "arn:k"}}]}),
        view(rules.LAUNCH_TEMPLATE, LAUNCH_TEMPLATE)), ()),
    Case("unencrypted-data-fails", ENCRYPTED, (
        view(rules.RDS_INSTANCE, {**RDS_PRIMARY, "storageEncrypted": None}, name="db"),
        view(rules.ELASTICACHE_GROUP, {**CACHE, "atRestEncryptionEnabled": False, "transitEncryptionEnabled": None},
             name="cache"),
        view(rules.EKS_CLUSTER, {**EKS, "encryptionConfig": None}, name="eks"),
        view(rules.EKS_CLUSTER, {**EKS, "encryptionConfig": {"resources": ["configmaps"], "provider": {}}},
             name="eks-partial"),
        view(rules.LAUNCH_TEMPLATE, {**LAUNCH_TEMPLATE, "blockDeviceMappings": [
            {"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}},
            {"deviceName": "/dev/sdb", "virtualName": "ephemeral0"}]}, name="nodes"),
        view(rules.LAUNCH_TEMPLATE, {**LAUNCH_TEMPLATE, "blockDeviceMappings": None}, name="bare-nodes"),
    ), (
        ("db", "storageEncrypted is not true"),
        ("cache", "atRestEncryptionEnabled is not true"),
        ("cache", "transitEncryptionEnabled is not true"),
        ("eks", "no encryptionConfig: Kubernetes Secrets are not encrypted with a KMS key"),
        ("eks-partial", "encryptionConfig does not cover secrets"),
        ("eks-partial", "encryptionConfig names no KMS key (provider.keyArn)"),
        ("nodes", "blockDeviceMappings[0] (/dev/xvda): ebs.encrypted is not true"),
        ("bare-nodes", "no blockDeviceMappings: the root volume follows the AMI's snapshot, unencrypted unless the "
                       "account encrypts EBS by default"),
    )),
    Case("encryption-unknowns-pass", ENCRYPTED, (
        view(rules.RDS_INSTANCE, {**RDS_PRIMARY, "storageEncrypted": UNKNOWN}),
        view(rules.EKS_CLUSTER, {**EKS, "encryptionConfig": UNKNOWN}),
        view(rules.LAUNCH_TEMPLATE, {**LAUNCH_TEMPLATE, "blockDeviceMappings": UNKNOWN}),
        view(rules.LAUNCH_TEMPLATE, {**LAUNCH_TEMPLATE, "blockDeviceMappings": [{"ebs": UNKNOWN}]}),
    ), ()),
    # 3. stateful resources protected
    Case("protected-data-passes", PROTECTED, (
        view(rules.DO_VOLUME, {"size": 20.0}, protect=True), view(rules.R2_BUCKET, {}, protect=True),
        view(rules.DO_DROPLET, {"volumeIds": [UNKNOWN]}, protect=True, parents=DB_DROPLET_PARENTS),
        # Phase 1's droplet and phase 2's app droplets are replaceable by design.
        view(rules.DO_DROPLET, {"volumeIds": [UNKNOWN]}, parents=("phasekit:index:SingleVps",)),
        view(rules.DO_DROPLET, {"backups": True}, parents=DB_DROPLET_PARENTS),
    ), ()),
    Case("unprotected-data-fails", PROTECTED, (
        view(rules.DO_VOLUME, {"size": 20.0}, name="volume"), view(rules.R2_BUCKET, {}, name="bucket"),
        view(rules.RDS_INSTANCE, RDS_PRIMARY, name="db"), view(rules.ELASTICACHE_GROUP, CACHE, name="cache"),
        view(rules.K8S_PVC, {"spec": {}}, name="claim"),
        view(rules.DO_DROPLET, {"volumeIds": [UNKNOWN]}, name="split-db", parents=DB_DROPLET_PARENTS),
    ), tuple((name, UNPROTECTED) for name in ("volume", "bucket", "db", "cache", "claim", "split-db"))),
    # 4. backups and retention
    Case("phasekit-backups-pass", BACKUPS, (
        view(rules.DO_DROPLET, {"backups": True, "volumeIds": [UNKNOWN]}),
        view(rules.DO_DROPLET, {"backups": False}),  # an app droplet holds no data
        view(rules.RDS_INSTANCE, RDS_PRIMARY), view(rules.RDS_INSTANCE, RDS_REPLICA),
        view(rules.ELASTICACHE_GROUP, CACHE)), ()),
    Case("missing-backups-fail", BACKUPS, (
        view(rules.DO_DROPLET, {"backups": False, "volumeIds": [UNKNOWN]}, name="db-droplet"),
        view(rules.RDS_INSTANCE, {**RDS_PRIMARY, "backupRetentionPeriod": 3.0, "deletionProtection": None,
                                  "skipFinalSnapshot": True}, name="db"),
        view(rules.RDS_INSTANCE, {**RDS_PRIMARY, "backupRetentionPeriod": None}, name="db-default"),
        view(rules.RDS_INSTANCE, {**RDS_REPLICA, "deletionProtection": False}, name="replica"),
        view(rules.ELASTICACHE_GROUP, {**CACHE, "snapshotRetentionLimit": None}, name="cache"),
    ), (
        ("db-droplet", "a data volume is attached but backups is not true: the nightly pg_dump on the root disk "
                       "would have no copy"),
        ("db", "backupRetentionPeriod is 3; keep at least 7 days of backups"),
        ("db", "deletionProtection is not true"),
        ("db", "skipFinalSnapshot is true: a delete would keep no final snapshot"),
        ("db-default", "backupRetentionPeriod is not set; keep at least 7 days of backups"),
        ("replica", "deletionProtection is not true"),
        ("cache", "snapshotRetentionLimit is not set; keep at least 1 day of snapshots"),
    )),
    Case("backup-unknowns-pass", BACKUPS, (
        view(rules.DO_DROPLET, {"backups": UNKNOWN, "volumeIds": [UNKNOWN]}),
        view(rules.DO_DROPLET, {"backups": False, "volumeIds": UNKNOWN}),
        view(rules.RDS_INSTANCE, {**RDS_PRIMARY, "backupRetentionPeriod": UNKNOWN, "deletionProtection": UNKNOWN}),
        view(rules.ELASTICACHE_GROUP, {**CACHE, "snapshotRetentionLimit": UNKNOWN}),
    ), ()),
    # 5. SSH
    Case("phasekit-ssh-passes", SSH, (view(rules.DO_FIREWALL, PHASE2_DB_FIREWALL),
                                      view(rules.SECURITY_GROUP_INGRESS_RULE, {
                                          "ipProtocol": "tcp", "fromPort": 30080.0, "toPort": 30080.0,
                                          "referencedSecurityGroupId": UNKNOWN})), ()),
    Case("ssh-from-anywhere-fails", SSH, (OPEN_FIREWALL, OPEN_SECURITY_GROUP, SSH_INGRESS_RULE), (
        ("open-firewall", "inbound tcp 22 (SSH) admits 0.0.0.0/0: allow only admin networks"),
        ("open-firewall", "inbound tcp 1-65535 (SSH) admits ::/0: allow only admin networks"),
        ("open-sg", "ingress all traffic (SSH) admits ::/0: allow only admin networks"),
        ("ssh-rule", "ingress tcp 22 (SSH) admits 0.0.0.0/0: allow only admin networks"),
    )),
    Case("ssh-unknowns-pass", SSH, (
        view(rules.DO_FIREWALL, {"inboundRules": [{"protocol": "tcp", "portRange": "22", "sourceAddresses": UNKNOWN},
                                                  {"protocol": UNKNOWN, "sourceAddresses": ["0.0.0.0/0"]}]}),
        view(rules.SECURITY_GROUP_INGRESS_RULE, {"ipProtocol": "tcp", "fromPort": 22.0, "toPort": 22.0,
                                                 "cidrIpv4": UNKNOWN}),
    ), ()),
    # 6. Kubernetes API
    Case("phasekit-eks-api-passes", K8S_API, (
        view(rules.EKS_CLUSTER, EKS),
        view(rules.EKS_CLUSTER, {"vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True}})), ()),
    Case("public-eks-api-fails", K8S_API, (
        view(rules.EKS_CLUSTER, {"vpcConfig": {"endpointPublicAccess": True}}, name="no-cidrs"),
        view(rules.EKS_CLUSTER, {"vpcConfig": {"publicAccessCidrs": ["0.0.0.0/0", ADMIN]}}, name="world"),
        # The list form of older pulumi-aws versions is read too, not skipped.
        view(rules.EKS_CLUSTER, {"vpcConfig": [{"endpointPublicAccess": True, "publicAccessCidrs": ["::/0"]}]},
             name="list-form"),
    ), (
        ("no-cidrs", "the public endpoint lists no publicAccessCidrs: AWS opens it to 0.0.0.0/0"),
        ("world", "the public endpoint admits 0.0.0.0/0"),
        ("list-form", "the public endpoint admits ::/0"),
    )),
    Case("eks-api-unknowns-pass", K8S_API, (
        view(rules.EKS_CLUSTER, {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": UNKNOWN}}),
        view(rules.EKS_CLUSTER, {"vpcConfig": {"endpointPublicAccess": UNKNOWN}}),
        view(rules.EKS_CLUSTER, {"vpcConfig": UNKNOWN}),
    ), ()),
    # 7. IMDSv2
    Case("phasekit-imds-passes", IMDS, (
        view(rules.LAUNCH_TEMPLATE, LAUNCH_TEMPLATE),
        view(rules.LAUNCH_TEMPLATE, {"metadataOptions": {"httpEndpoint": "disabled"}})), ()),
    Case("imdsv1-fails", IMDS, (
        view(rules.LAUNCH_TEMPLATE, {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2.0}},
             name="v1"),
        view(rules.LAUNCH_TEMPLATE, {"metadataOptions": {"httpTokens": "required"}}, name="no-hop-limit"),
        view(rules.LAUNCH_TEMPLATE, {}, name="defaults"),
    ), (
        ("v1", "metadataOptions.httpTokens is optional, not required: IMDSv1 answers any request on the node"),
        ("v1", "metadataOptions.httpPutResponseHopLimit is 2: pods can reach the node role's credentials; set 1"),
        ("no-hop-limit", "metadataOptions.httpPutResponseHopLimit is not set: pods can reach the node role's "
                         "credentials; set 1"),
        ("defaults", "no metadataOptions: instances accept IMDSv1 and pods may reach the node role's credentials"),
    )),
    Case("imds-unknowns-pass", IMDS, (
        view(rules.LAUNCH_TEMPLATE, {"metadataOptions": UNKNOWN}),
        view(rules.LAUNCH_TEMPLATE, {"metadataOptions": {"httpTokens": UNKNOWN, "httpPutResponseHopLimit": UNKNOWN}}),
    ), ()),
    # 8. pod security context
    Case("phasekit-pods-pass", PODS, (
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER])),
        view(rules.K8S_JOB, {"spec": {"template": {"spec": {"containers": [{"name": "release",
                                                                              "securityContext": RESTRICTED}],
                                                             "securityContext": POD_CONTEXT}}}}),
        view("kubernetes:batch/v1:CronJob", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "nightly", "securityContext": {
                **RESTRICTED, "seccompProfile": {"type": "Localhost"}}}]}}}}}}),
    ), ()),
    Case("unrestricted-pods-fail", PODS, (
        view(rules.K8S_DEPLOYMENT, deployment([{"name": "app"}], pod_context=None), name="bare"),
        view(rules.K8S_JOB, {"spec": {"template": {"spec": {
            "securityContext": POD_CONTEXT,
            "initContainers": [{"name": "init", "securityContext": {
                **RESTRICTED, "runAsNonRoot": False, "seccompProfile": {"type": "Unconfined"}}}],
            "containers": [{"name": "release", "securityContext": {
                **RESTRICTED, "capabilities": {"drop": ["NET_RAW"]}, "allowPrivilegeEscalation": True}}],
        }}}}, name="release"),
    ), (
        ("bare", "container app: runAsNonRoot is not true"),
        ("bare", "container app: allowPrivilegeEscalation is not false"),
        ("bare", "container app: capabilities.drop does not include ALL"),
        ("bare", "container app: readOnlyRootFilesystem is not true"),
        ("bare", "container app: seccompProfile is not RuntimeDefault"),
        ("release", "container init: runAsNonRoot is not true"),
        ("release", "container init: seccompProfile is not RuntimeDefault"),
        ("release", "container release: allowPrivilegeEscalation is not false"),
        ("release", "container release: capabilities.drop does not include ALL"),
    )),
    Case("pod-unknowns-pass", PODS, (
        view(rules.K8S_DEPLOYMENT, deployment([{"name": "app", "securityContext": UNKNOWN}])),
        view(rules.K8S_DEPLOYMENT, deployment([{**APP_CONTAINER, "securityContext": {
            **RESTRICTED, "runAsNonRoot": None}}], pod_context=UNKNOWN)),
        view(rules.K8S_DEPLOYMENT, {"spec": {"template": UNKNOWN}}),
    ), ()),
    # 9. probes
    Case("phasekit-probes-pass", PROBES, (view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER])),), ()),
    Case("missing-probes-fail", PROBES, (
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER, {"name": "sidecar", "livenessProbe": PROBE},
                                               {"name": "worker"}]), name="app"),
    ), (
        ("app", "container sidecar has no readinessProbe"),
        ("app", "container worker has no readinessProbe"),
        ("app", "container worker has no livenessProbe"),
    )),
    Case("probe-unknowns-pass", PROBES, (
        view(rules.K8S_DEPLOYMENT, deployment([{**APP_CONTAINER, "readinessProbe": UNKNOWN}])),
        view(rules.K8S_DEPLOYMENT, {"spec": {"template": {"spec": {"containers": UNKNOWN}}}}),
    ), ()),
    # 10. HPA
    Case("phasekit-hpa-passes", HPA, (
        view("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", {"spec": {"minReplicas": 2.0, "maxReplicas": 6.0}}),
    ), ()),
    Case("single-replica-hpa-fails", HPA, (
        view("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", {"spec": {"minReplicas": 1.0}}, name="one"),
        view("kubernetes:autoscaling/v1:HorizontalPodAutoscaler", {"spec": {"maxReplicas": 3.0}}, name="default"),
    ), (
        ("one", "minReplicas is 1; keep at least 2 replicas so a restarting pod leaves the app serving"),
        ("default", "minReplicas is not set; keep at least 2 replicas so a restarting pod leaves the app serving"),
    )),
    Case("hpa-unknowns-pass", HPA, (
        view("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", {"spec": {"minReplicas": UNKNOWN}}),
        view("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", {"spec": UNKNOWN}),
    ), ()),
    # 11. disruption budgets (stack)
    Case("phasekit-pdb-passes", PDB, (
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER], labels={**WEB_LABELS, "phasekit.dev/stack": "phase3"})),
        view(rules.K8S_PDB, budget({"matchLabels": WEB_LABELS})),
    ), ()),
    Case("match-expressions-and-empty-selector-pass", PDB, (
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER]), name="web"),
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER], namespace=None), name="default-ns"),
        view(rules.K8S_PDB, budget({"matchExpressions": [
            {"key": "app.kubernetes.io/component", "operator": "In", "values": ["web", "worker"]},
            {"key": "tier", "operator": "DoesNotExist"}]})),
        view(rules.K8S_PDB, budget({}, namespace=None), name="everything-in-default"),
    ), ()),
    Case("unbudgeted-deployments-fail", PDB, (
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER]), name="web"),
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER], labels=None, namespace="jobs"), name="unlabelled"),
        view(rules.K8S_PDB, budget({"matchLabels": {**WEB_LABELS, "app.kubernetes.io/component": "worker"}}),
             name="worker-pdb"),
        view(rules.K8S_PDB, budget({"matchLabels": WEB_LABELS}, namespace="other"), name="other-pdb"),
        view(rules.K8S_PDB, budget(None, namespace="jobs"), name="null-selector-pdb"),
    ), (
        ("web", "no PodDisruptionBudget in namespace app selects its pods (app.kubernetes.io/component=web, "
                "app.kubernetes.io/name=app): a node drain may evict every replica at once"),
        ("unlabelled", "no PodDisruptionBudget in namespace jobs selects its pods (no labels): a node drain may "
                       "evict every replica at once"),
    )),
    Case("pdb-unknowns-pass", PDB, (
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER]), name="web"),
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER], labels=UNKNOWN, namespace="jobs"), name="jobs"),
        view(rules.K8S_DEPLOYMENT, deployment([APP_CONTAINER], namespace=UNKNOWN), name="somewhere"),
        view(rules.K8S_PDB, budget({"matchLabels": {"app.kubernetes.io/name": UNKNOWN}})),
    ), ()),
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_rule_verdicts(case):
    assert run_case(case) == list(case.expected)


def test_every_rule_has_a_passing_and_a_failing_case():
    passing = {case.policy for case in CASES if not case.expected and "unknowns" not in case.id}
    failing = {case.policy for case in CASES if case.expected}
    unknowns = {case.policy for case in CASES if "unknowns" in case.id}
    names = {rule.name for rule in rules.RULES}
    assert passing == failing == names
    assert unknowns == names - {PROTECTED}  # protect is an option, never unknown


def test_rules_are_named_described_and_enforced():
    assert [(rule.name, rule.enforcement, isinstance(rule, rules.StackRule)) for rule in rules.RULES] == [
        (DATA_STORES, "mandatory", False),
        (ENCRYPTED, "mandatory", False),
        (PROTECTED, "mandatory", False),
        (BACKUPS, "mandatory", False),
        (SSH, "mandatory", False),
        (K8S_API, "mandatory", False),
        (IMDS, "mandatory", False),
        (PODS, "mandatory", False),
        (PROBES, "mandatory", False),
        (DIGEST, "advisory", False),
        (HPA, "mandatory", False),
        (PDB, "mandatory", True),
    ]
    assert all(rule.description.endswith(".") and len(rule.description) < 200 for rule in rules.RULES)


def test_rules_ignore_resource_types_they_do_not_cover():
    open_bucket = view(rules.R2_BUCKET, {"inboundRules": OPEN_FIREWALL.props["inboundRules"]})
    assert [rule.name for rule in rules.RULES
            if isinstance(rule, rules.ResourceRule) and rule.violations(open_bucket)] == [PROTECTED]


def test_lookup_tells_absent_from_unknown():
    props = {"a": {"b": [1, UNKNOWN]}, "c": UNKNOWN}
    assert rules.lookup(props, "a", "b", 0) == 1
    assert rules.lookup(props, "a", "b", 1) is UNKNOWN
    assert rules.lookup(props, "c", "d", "e") is UNKNOWN
    assert rules.lookup(props, "a", "x") is None
    assert rules.lookup(props, "a", "b", 5) is None


# --- The offline plan: committed stacks and mutated recordings ----------------------------------------


@functools.cache
def committed_recording(stack: str) -> Recording:
    """One offline plan per committed stack per test session (``tests/test_policy_pack.py`` reuses it)."""
    return run_plan(stack, ROOT).recording


@pytest.fixture(scope="module")
def recordings() -> dict[str, Recording]:
    return {stack: committed_recording(stack) for stack in STACKS}


def test_every_committed_stack_passes_every_rule(recordings):
    for stack, recording in recordings.items():
        assert evaluate(recording) == [], stack
        assert guardrail_lines(evaluate(recording)) == ["Guardrails (policy/): 12 policies, all pass"]


def test_every_rule_reads_resources_of_the_committed_stacks(recordings):
    """No rule passes only because nothing it covers exists (the stacks' types are the rules' types)."""
    types = {resource.type for recording in recordings.values() for resource in recording.resources}
    assert {rule.name: sorted(rule.resource_types & types) for rule in rules.RULES} == {
        DATA_STORES: sorted({rules.DO_FIREWALL, rules.SECURITY_GROUP, rules.DEFAULT_SECURITY_GROUP,
                             rules.SECURITY_GROUP_INGRESS_RULE, rules.RDS_INSTANCE, rules.ELASTICACHE_GROUP}),
        ENCRYPTED: sorted({rules.RDS_INSTANCE, rules.ELASTICACHE_GROUP, rules.EKS_CLUSTER, rules.LAUNCH_TEMPLATE}),
        PROTECTED: sorted({rules.DO_VOLUME, rules.R2_BUCKET, rules.RDS_INSTANCE, rules.ELASTICACHE_GROUP,
                           rules.DO_DROPLET}),
        BACKUPS: sorted({rules.DO_DROPLET, rules.RDS_INSTANCE, rules.ELASTICACHE_GROUP}),
        SSH: sorted({rules.DO_FIREWALL, rules.SECURITY_GROUP, rules.DEFAULT_SECURITY_GROUP,
                     rules.SECURITY_GROUP_INGRESS_RULE}),
        K8S_API: [rules.EKS_CLUSTER],
        IMDS: [rules.LAUNCH_TEMPLATE],
        # The CronJob is phase 3's logical backup (components/logical_backup.py).
        PODS: sorted({rules.K8S_DEPLOYMENT, rules.K8S_JOB, "kubernetes:batch/v1:CronJob"}),
        PROBES: [rules.K8S_DEPLOYMENT],
        DIGEST: sorted({rules.K8S_DEPLOYMENT, rules.K8S_JOB, "kubernetes:batch/v1:CronJob"}),
        HPA: ["kubernetes:autoscaling/v2:HorizontalPodAutoscaler"],
        PDB: sorted({rules.K8S_DEPLOYMENT, rules.K8S_PDB}),
    }


def test_the_phase2_database_droplet_is_the_only_stateful_droplet(recordings):
    droplets = [resource for stack in ("phase1", "phase2") for resource in recordings[stack].of_type(rules.DO_DROPLET)]
    stateful = [resource.name for resource in droplets
                if rule_named(PROTECTED).violations(replace(resource_view(resource), protect=False))]
    assert (sorted(resource.name for resource in droplets), stateful) == (
        ["split-app-0", "split-app-1", "split-db", "vps-droplet"], ["split-db"])


def mutated(recording: Recording, name: str, change) -> Recording:
    """The recording with one resource's inputs (a deep copy) changed by ``change``."""
    resources = []
    for resource in recording.resources:
        if resource.name == name:
            inputs = copy.deepcopy(resource.inputs)
            change(inputs)
            resource = replace(resource, inputs=inputs)
        resources.append(resource)
    return Recording(resources=resources, outputs=recording.outputs, secret_outputs=recording.secret_outputs)


def test_ssh_opened_on_the_real_phase1_firewall_fails_the_plan(recordings):
    def open_ssh(inputs: dict) -> None:
        inputs["inboundRules"][0]["sourceAddresses"].append("0.0.0.0/0")

    recording = mutated(recordings["phase1"], "vps-firewall", open_ssh)
    firewall = recording.named("vps-firewall")
    violations = evaluate(recording)
    assert violations == [Violation(policy=SSH, urn=firewall.urn, resource="vps-firewall",
                                    message="inbound tcp 22 (SSH) admits 0.0.0.0/0: allow only admin networks",
                                    mandatory=True)]
    assert guardrail_lines(violations) == [
        "Guardrails (policy/): 12 policies, 1 with violations, 1 violation: 1 mandatory (plan exits 3)",
        "  [mandatory] ssh-not-open-to-world: vps-firewall: inbound tcp 22 (SSH) admits 0.0.0.0/0: allow only "
        "admin networks",
    ]
    assert guardrails_json(violations) == {
        "policies": [rule.name for rule in rules.RULES],
        "pass": False,
        "violations": [{"policy": SSH, "urn": firewall.urn, "resource": "vps-firewall",
                        "message": "inbound tcp 22 (SSH) admits 0.0.0.0/0: allow only admin networks",
                        "enforcement": "mandatory"}],
    }


def test_unprobed_real_phase3_deployment_fails_unless_lowered_to_advisory(recordings):
    def drop_probes(inputs: dict) -> None:
        container = inputs["spec"]["template"]["spec"]["containers"][0]
        del container["readinessProbe"], container["livenessProbe"]

    recording = mutated(recordings["phase3"], "app-deployment", drop_probes)
    expected = [(PROBES, "app-deployment", "container app has no readinessProbe"),
                (PROBES, "app-deployment", "container app has no livenessProbe")]
    violations = evaluate(recording)
    assert [(v.policy, v.resource, v.message, v.mandatory) for v in violations] == [(*e, True) for e in expected]
    assert guardrails_json(violations)["pass"] is False

    lowered = evaluate(recording, {PROBES: "advisory"})
    assert [(v.policy, v.resource, v.message, v.mandatory) for v in lowered] == [(*e, False) for e in expected]
    assert guardrail_lines(lowered)[0] == ("Guardrails (policy/): 12 policies, 1 with violations, 2 violations: "
                                           "advisory only")
    assert guardrails_json(lowered)["pass"] is True


def test_real_phase3_rds_made_public_and_unencrypted_fails(recordings):
    def weaken(inputs: dict) -> None:
        inputs.update(publiclyAccessible=True, storageEncrypted=False, backupRetentionPeriod=1.0)

    violations = evaluate(mutated(recordings["phase3"], "database-db", weaken))
    assert [(violation.policy, violation.message) for violation in violations] == [
        (DATA_STORES, "publiclyAccessible is true: the instance gets a public address"),
        (ENCRYPTED, "storageEncrypted is not true"),
        (BACKUPS, "backupRetentionPeriod is 1; keep at least 7 days of backups"),
    ]


@dataclass(frozen=True)
class Breach:
    """One guarantee broken on a committed stack's real recording, and what the plan must then report."""

    id: str
    stack: str
    resource: str
    change: Any
    """Mutates the resource's inputs (a deep copy) in place; only keys the program itself wrote are touched,
    so a rule reading a misspelled key cannot pass."""

    expected: tuple[tuple[str, str, str, bool], ...]
    """(policy, resource, message, mandatory) for every violation, in order."""

    protect: bool | None = None


def _container(inputs: dict) -> dict:
    return inputs["spec"]["template"]["spec"]["containers"][0]


BREACHES = (
    Breach("firewall-pgbouncer-from-addresses", "phase2", "split-db-firewall",
           lambda inputs: inputs["inboundRules"][1].update(sourceAddresses=["10.0.0.0/8"]),
           ((DATA_STORES, "split-db-firewall", "inbound tcp 6432 (PgBouncer) admits addresses 10.0.0.0/8: admit the "
                                               "app tier by tag or droplet id only", True),)),
    Breach("security-group-postgres-from-a-cidr", "phase3", "database-sg",
           lambda inputs: inputs["ingress"][0].update(cidrBlocks=["10.0.0.0/16"]),
           ((DATA_STORES, "database-sg", "ingress tcp 5432 (PostgreSQL) admits addresses 10.0.0.0/16: admit only "
                                         "the clients' security group", True),)),
    Breach("rds-public-unencrypted-short-backups", "phase3", "database-db",
           lambda inputs: inputs.update(publiclyAccessible=True, storageEncrypted=False, backupRetentionPeriod=1.0,
                                        skipFinalSnapshot=True, deletionProtection=False),
           ((DATA_STORES, "database-db", "publiclyAccessible is true: the instance gets a public address", True),
            (ENCRYPTED, "database-db", "storageEncrypted is not true", True),
            (BACKUPS, "database-db", "backupRetentionPeriod is 1; keep at least 7 days of backups", True),
            (BACKUPS, "database-db", "deletionProtection is not true", True),
            (BACKUPS, "database-db", "skipFinalSnapshot is true: a delete would keep no final snapshot", True))),
    Breach("cache-without-transit-encryption-or-snapshots", "phase3", "cache-cache",
           lambda inputs: inputs.update(transitEncryptionEnabled=False, snapshotRetentionLimit=0.0),
           ((ENCRYPTED, "cache-cache", "transitEncryptionEnabled is not true", True),
            (BACKUPS, "cache-cache", "snapshotRetentionLimit is 0; keep at least 1 day of snapshots", True))),
    Breach("eks-without-secrets-encryption", "phase3", "cluster-cluster",
           lambda inputs: inputs.pop("encryptionConfig"),
           ((ENCRYPTED, "cluster-cluster", "no encryptionConfig: Kubernetes Secrets are not encrypted with a KMS key",
             True),)),
    # An absent publicAccessCidrs is AWS's 0.0.0.0/0, not "cannot tell".
    Breach("eks-public-endpoint-without-cidrs", "phase3", "cluster-cluster",
           lambda inputs: inputs["vpcConfig"].pop("publicAccessCidrs"),
           ((K8S_API, "cluster-cluster", "the public endpoint lists no publicAccessCidrs: AWS opens it to 0.0.0.0/0",
             True),)),
    Breach("nodes-with-imdsv1-and-an-unencrypted-root", "phase3", "cluster-node-template",
           lambda inputs: (inputs["metadataOptions"].update(httpTokens="optional", httpPutResponseHopLimit=2),
                           inputs["blockDeviceMappings"][0]["ebs"].update(encrypted="false")),
           ((ENCRYPTED, "cluster-node-template", "blockDeviceMappings[0] (/dev/xvda): ebs.encrypted is not true", True),
            (IMDS, "cluster-node-template", "metadataOptions.httpTokens is optional, not required: IMDSv1 answers any "
                                            "request on the node", True),
            (IMDS, "cluster-node-template", "metadataOptions.httpPutResponseHopLimit is 2: pods can reach the node "
                                            "role's credentials; set 1", True))),
    Breach("ssh-opened-by-a-security-group-rule", "phase3", "ingress-node-ingress",
           lambda inputs: inputs.update(fromPort=22, toPort=22, cidrIpv4="0.0.0.0/0"),
           ((SSH, "ingress-node-ingress", "ingress tcp 22 (SSH) admits 0.0.0.0/0: allow only admin networks", True),)),
    Breach("database-droplet-unprotected-without-backups", "phase2", "split-db",
           lambda inputs: inputs.update(backups=False),
           ((PROTECTED, "split-db", "protect is off: a delete or replace would destroy its data (phasekit:protect: "
                                    "true sets it)", True),
            (BACKUPS, "split-db", "a data volume is attached but backups is not true: the nightly pg_dump on the root "
                                  "disk would have no copy", True)),
           protect=False),
    Breach("container-may-escalate-and-write-its-root", "phase3", "app-deployment",
           lambda inputs: _container(inputs)["securityContext"].update(allowPrivilegeEscalation=True,
                                                                       readOnlyRootFilesystem=False),
           ((PODS, "app-deployment", "container app: allowPrivilegeEscalation is not false", True),
            (PODS, "app-deployment", "container app: readOnlyRootFilesystem is not true", True))),
    Breach("image-by-tag-only", "phase3", "app-deployment",
           lambda inputs: _container(inputs).update(image="ghcr.io/phasekit/example-app:1.0.0"),
           ((DIGEST, "app-deployment", "container app: image 'ghcr.io/phasekit/example-app:1.0.0' is not pinned by "
                                       "digest: a re-pushed tag rolls no pod and runs no release Job; use "
                                       "<image>@sha256:<digest>", False),)),
    Breach("container-without-readiness-probe", "phase3", "app-deployment",
           lambda inputs: _container(inputs).pop("readinessProbe"),
           ((PROBES, "app-deployment", "container app has no readinessProbe", True),)),
    Breach("hpa-down-to-one-pod", "phase3", "app-hpa", lambda inputs: inputs["spec"].update(minReplicas=1),
           ((HPA, "app-hpa", "minReplicas is 1; keep at least 2 replicas so a restarting pod leaves the app serving",
             True),)),
    Breach("pdb-selecting-other-pods", "phase3", "app-pdb",
           lambda inputs: inputs["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "worker"}),
           ((PDB, "app-deployment", "no PodDisruptionBudget in namespace app selects its pods "
                                    "(app.kubernetes.io/component=web, app.kubernetes.io/name=app, "
                                    "phasekit.dev/managed-by=phasekit, phasekit.dev/phase=3, "
                                    "phasekit.dev/project=phasekit, phasekit.dev/stack=phase3): a node drain may evict "
                                    "every replica at once", True),)),
)


def test_every_rule_has_a_breach_of_a_real_stack():
    assert {policy for breach in BREACHES for policy, *_ in breach.expected} == {rule.name for rule in rules.RULES}


@pytest.mark.parametrize("breach", BREACHES, ids=lambda breach: breach.id)
def test_breaking_a_guarantee_on_a_real_stack_fails_its_rule(recordings, breach):
    """The rules read the keys the program writes, and the program's unknowns do not hide these breaches."""
    recording = mutated(recordings[breach.stack], breach.resource, breach.change)
    if breach.protect is not None:
        recording = Recording(resources=[replace(resource, protect=breach.protect) if resource.name == breach.resource
                                         else resource for resource in recording.resources],
                              outputs=recording.outputs, secret_outputs=recording.secret_outputs)
    assert [(violation.policy, violation.resource, violation.message, violation.mandatory)
            for violation in evaluate(recording)] == list(breach.expected)


def _sdk_names(args_class: type) -> set[str]:
    """The wire (camelCase) names of a provider SDK's input type."""
    return {member.fget._pulumi_name for member in vars(args_class).values()
            if isinstance(member, property) and hasattr(member.fget, "_pulumi_name")}


def _sdk_inputs() -> dict[type, tuple[str, ...]]:
    """Every input type the rules read, with the keys read from it."""
    import pulumi_aws as aws
    import pulumi_digitalocean as digitalocean
    import pulumi_kubernetes as k8s

    ingress = ("protocol", "fromPort", "toPort", "cidrBlocks", "ipv6CidrBlocks", "prefixListIds")
    return {
        aws.rds.InstanceArgs: ("publiclyAccessible", "dbSubnetGroupName", "replicateSourceDb", "storageEncrypted",
                               "backupRetentionPeriod", "deletionProtection", "skipFinalSnapshot"),
        aws.elasticache.ReplicationGroupArgs: ("subnetGroupName", "atRestEncryptionEnabled",
                                               "transitEncryptionEnabled", "snapshotRetentionLimit"),
        aws.eks.ClusterArgs: ("encryptionConfig", "vpcConfig"),
        aws.eks.ClusterEncryptionConfigArgs: ("resources", "provider"),
        aws.eks.ClusterEncryptionConfigProviderArgs: ("keyArn",),
        aws.eks.ClusterVpcConfigArgs: ("endpointPublicAccess", "publicAccessCidrs"),
        aws.ec2.LaunchTemplateArgs: ("blockDeviceMappings", "metadataOptions"),
        aws.ec2.LaunchTemplateBlockDeviceMappingArgs: ("deviceName", "ebs"),
        aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs: ("encrypted",),
        aws.ec2.LaunchTemplateMetadataOptionsArgs: ("httpEndpoint", "httpTokens", "httpPutResponseHopLimit"),
        aws.ec2.SecurityGroupArgs: ("ingress",),
        aws.ec2.SecurityGroupIngressArgs: ingress,
        aws.ec2.DefaultSecurityGroupArgs: ("ingress",),
        aws.ec2.DefaultSecurityGroupIngressArgs: ingress,
        aws.ec2.SecurityGroupRuleArgs: ("type", *ingress),
        aws.vpc.SecurityGroupIngressRuleArgs: ("ipProtocol", "fromPort", "toPort", "cidrIpv4", "cidrIpv6",
                                               "prefixListId"),
        digitalocean.FirewallArgs: ("inboundRules",),
        digitalocean.FirewallInboundRuleArgs: ("protocol", "portRange", "sourceAddresses"),
        digitalocean.DropletArgs: ("volumeIds", "backups"),
        k8s.apps.v1.DeploymentArgs: ("metadata", "spec"),
        k8s.apps.v1.DeploymentSpecArgs: ("template",),
        k8s.batch.v1.JobSpecArgs: ("template",),
        k8s.batch.v1.CronJobSpecArgs: ("jobTemplate",),
        k8s.batch.v1.JobTemplateSpecArgs: ("spec",),
        k8s.core.v1.PodTemplateSpecArgs: ("metadata", "spec"),
        k8s.meta.v1.ObjectMetaArgs: ("namespace", "labels"),
        k8s.core.v1.PodSpecArgs: ("securityContext", "initContainers", "containers"),
        k8s.core.v1.ContainerArgs: ("name", "securityContext", "readinessProbe", "livenessProbe", "image"),
        k8s.core.v1.SecurityContextArgs: ("runAsNonRoot", "allowPrivilegeEscalation", "capabilities",
                                          "readOnlyRootFilesystem", "seccompProfile"),
        k8s.core.v1.PodSecurityContextArgs: ("runAsNonRoot", "seccompProfile"),
        k8s.core.v1.CapabilitiesArgs: ("drop",),
        k8s.core.v1.SeccompProfileArgs: ("type",),
        k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs: ("minReplicas",),
        k8s.policy.v1.PodDisruptionBudgetSpecArgs: ("selector",),
        k8s.meta.v1.LabelSelectorArgs: ("matchLabels", "matchExpressions"),
        k8s.meta.v1.LabelSelectorRequirementArgs: ("key", "operator", "values"),
    }


# String constants in policy/rules.py that are values the rules compare with, not property keys.
RULE_VALUES = frozenset({"mandatory", "advisory", "all", "tcp", "true", "false", "required", "disabled", "secrets",
                         "default"})


def test_every_key_the_rules_read_is_an_input_of_the_provider_sdk():
    """A rule reading a misspelled key would see it absent; where absent is the safe default (e.g.
    ``publiclyAccessible``), that passes silently. So every key in policy/rules.py must be a real input name."""
    import ast

    tree = ast.parse((ROOT / "policy" / "rules.py").read_text())
    keys = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value.isidentifier() and node.value[0].islower()} - RULE_VALUES
    inputs = _sdk_inputs()
    misspelled = {(args.__name__, key) for args, read in inputs.items() for key in read if key not in _sdk_names(args)}
    assert misspelled == set()
    assert keys == {key for read in inputs.values() for key in read}


def test_a_stack_with_protect_false_fails_until_its_policy_config_lowers_the_rule(tmp_path):
    """The real config path: ``phasekit:protect: false`` unprotects the data, which the rule refuses."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    config = yaml.safe_load((ROOT / "Pulumi.phase1.yaml").read_text())["config"]
    config["phasekit:protect"] = False
    (tmp_path / "Pulumi.scratch.yaml").write_text(yaml.safe_dump({"config": config}))
    recording = run_plan("scratch", tmp_path).recording

    violations = evaluate(recording)
    assert [(violation.policy, violation.resource, violation.mandatory) for violation in violations] == [
        (PROTECTED, "backups-bucket", True), (PROTECTED, "edge-media", True), (PROTECTED, "vps-data", True)]
    lowered = tmp_path / "policy-config.json"
    lowered.write_text(json.dumps({PROTECTED: "advisory"}))
    assert [(violation.resource, violation.mandatory)
            for violation in evaluate(recording, load_policy_pack_config(lowered))] == [
        ("backups-bucket", False), ("edge-media", False), ("vps-data", False)]
    assert evaluate(recording, {PROTECTED: "disabled"}) == []


def test_plan_of_a_stack_with_known_secret_inputs_prints_no_secret(tmp_path, capsys):
    """``phasekit plan`` (text and --json, guardrails included) on a stack whose registry pull Secret is known
    offline: neither the placeholder nor the stack file's ciphertexts nor any secret input value is printed."""
    import base64
    import hashlib

    from phasekit.cli import main
    from phasekit.plan import SECRET_PLACEHOLDER

    stack_file = ROOT / "tests" / "fixtures" / "risk" / "phase3-registry-secrets.yaml"
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.phase3.yaml").write_text(stack_file.read_text())
    recording = run_plan("phase3", tmp_path).recording
    known = [resource.inputs[key] for resource in recording.resources for key in resource.secret_inputs
             if isinstance(resource.inputs[key], dict)]
    values = {value for mapping in known for value in mapping.values()}
    assert len(values) == 1 and "auths" in next(iter(values))  # the pull Secret's dockerconfigjson

    outputs = []
    for extra in ([], ["--json"]):
        assert main(["plan", "--stack", "phase3", "--project-dir", str(tmp_path), *extra]) == 0
        outputs.append(capsys.readouterr().out)
    assert json.loads(outputs[1])["guardrails"] == guardrails_json([])
    forbidden = {SECRET_PLACEHOLDER, base64.b64encode(SECRET_PLACEHOLDER.encode()).decode(),
                 base64.b64encode(f"bob:{SECRET_PLACEHOLDER}".encode()).decode(),
                 "c2VjcmV0LWtleS1iYXNlLWNpcGhlcnRleHQ=", "cmVnaXN0cnktcGFzc3dvcmQtY2lwaGVydGV4dA==",
                 *values, *(hashlib.sha256(value.encode()).hexdigest()[:12] for value in values)}
    assert [text for text in sorted(forbidden) if any(text in output for output in outputs)] == []


# --- Policy pack config (the format of `pulumi preview --policy-pack-config`) -------------------------


@pytest.mark.parametrize(("document", "levels"), [
    ({}, {}),
    ({PROTECTED: "advisory"}, {PROTECTED: "advisory"}),
    ({BACKUPS: {"enforcementLevel": "disabled"}, "all": "advisory"}, {BACKUPS: "disabled", "all": "advisory"}),
    ({PROBES: {}}, {}),
])
def test_policy_pack_config_levels(tmp_path, document, levels):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    assert load_policy_pack_config(path) == levels


def test_all_lowers_every_rule_not_named(recordings):
    recording = mutated(recordings["phase1"], "vps-firewall",
                        lambda inputs: inputs["inboundRules"][0]["sourceAddresses"].append("::/0"))
    assert [violation.mandatory for violation in evaluate(recording, {"all": "advisory"})] == [False]
    assert [violation.mandatory for violation in evaluate(recording, {"all": "advisory", SSH: "mandatory"})] == [True]


@pytest.mark.parametrize(("text", "message"), [
    ("[]", "{path}: expected an object keyed by policy name"),
    ("{", "{path}: not valid JSON: Expecting property name enclosed in double quotes (line 1)"),
    ('{"no-such-policy": "advisory"}', "{path}: no-such-policy: no such policy; allowed: all, backups-kept, "
                                       "containers-have-probes, data-encrypted, deployments-have-pdb, "
                                       "hpa-min-replicas, images-pinned-by-digest, imdsv2-required, "
                                       "kubernetes-api-not-public, "
                                       "no-public-data-stores, pods-restricted-security-context, "
                                       "ssh-not-open-to-world, stateful-resources-protected"),
    ('{"backups-kept": "off"}', "{path}: backups-kept: 'off' is not an enforcement level; allowed: mandatory, "
                                "advisory, remediate, disabled"),
    ('{"backups-kept": {"enforcementLevel": "warn"}}', "{path}: backups-kept.enforcementLevel: 'warn' is not an "
                                                       "enforcement level; allowed: mandatory, advisory, remediate, "
                                                       "disabled"),
    ('{"backups-kept": {"minDays": 3}}', "{path}: backups-kept.minDays: not a setting of this policy; allowed: "
                                         "enforcementLevel"),
])
def test_bad_policy_pack_config_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_policy_pack_config(path)
    assert str(raised.value) == message.format(path=path)


def test_missing_policy_pack_config_names_the_file(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_policy_pack_config(tmp_path / "absent.json")
    assert str(raised.value) == f"{tmp_path / 'absent.json'}: cannot read: No such file or directory"


def _breached(recordings, breach: Breach) -> Recording:
    recording = mutated(recordings[breach.stack], breach.resource, breach.change)
    if breach.protect is None:
        return recording
    return Recording(resources=[replace(resource, protect=breach.protect) if resource.name == breach.resource
                                else resource for resource in recording.resources],
                     outputs=recording.outputs, secret_outputs=recording.secret_outputs)


def test_a_violation_a_config_value_causes_names_the_key(recordings):
    """Only values a stack-file key sets are attributed; what the program hard-codes (encryption, probes) is not."""
    found = [(violation.resource, violation.message.split(" ")[0], violation.config_key)
             for breach in BREACHES for violation in evaluate(_breached(recordings, breach))
             if violation.config_key is not None]
    assert found == [
        ("database-db", "backupRetentionPeriod", "phasekit:database.backupRetentionDays"),
        ("cache-cache", "snapshotRetentionLimit", "phasekit:cache.snapshotRetentionDays"),
        ("split-db", "protect", "phasekit:protect"),
        ("split-db", "a", "phasekit:droplets.backups"),
        ("app-hpa", "minReplicas", "phasekit:workload.minReplicas"),
    ]


def test_guardrail_lines_say_which_key_sets_the_failing_value(recordings):
    breach = next(breach for breach in BREACHES if breach.id == "database-droplet-unprotected-without-backups")
    violations = evaluate(_breached(recordings, breach))
    assert guardrail_lines(violations)[1:] == [
        # The protect message names its key already: not repeated.
        "  [mandatory] stateful-resources-protected: split-db: protect is off: a delete or replace would destroy its "
        "data (phasekit:protect: true sets it)",
        "  [mandatory] backups-kept: split-db: a data volume is attached but backups is not true: the nightly pg_dump "
        "on the root disk would have no copy (set by phasekit:droplets.backups)",
    ]
    assert [violation.get("configKey") for violation in guardrails_json(violations)["violations"]] == [
        "phasekit:protect", "phasekit:droplets.backups"]


def test_phase1_droplet_backups_are_set_by_the_vps_key(recordings):
    recording = mutated(recordings["phase1"], "vps-droplet", lambda inputs: inputs.update(backups=False))
    assert [(violation.policy, violation.config_key) for violation in evaluate(recording)] == [
        (BACKUPS, "phasekit:vps.backups")]
