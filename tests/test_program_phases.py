"""The whole program for phases 2 and 3, from the committed stack files, under the recording mock monitor.

This is the path ``pulumi up`` takes (runtime config -> load_config -> the phase's builder) with the
engine replaced by mocks. Mocks cannot prove what DigitalOcean, AWS, Cloudflare or Kubernetes accept or
compute; a real ``pulumi preview`` does. The Kubernetes objects are checked against the real schema of
the configured Kubernetes version by kubernetes-validate.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from pulumi.output import Unknown

from components.testing import run_recorded
from infra.config import load_config
from infra.program import build_stack
from infra.runtime_config import runtime_raw_config
from phasekit.plan import runtime_form
from phasekit.stack_file import read_stack_file
from tests.builders import CLOUDFLARE_CIDRS, with_processes
from tests.k8s_schema import manifests, validate

ROOT = Path(__file__).resolve().parents[1]
PHASE2 = read_stack_file(ROOT / "Pulumi.phase2.yaml")
PHASE3 = read_stack_file(ROOT / "Pulumi.phase3.yaml")
PASSPHRASE = "correct-horse-battery-staple"
SECRETS = {"phasekit:secrets": json.dumps({"SECRET_KEY_BASE": "from-pulumi-secret", "BACKUP_PASSPHRASE": PASSPHRASE})}
CLOUDFLARE_V4 = [cidr for cidr in CLOUDFLARE_CIDRS if ":" not in cidr]


def run(raw, stack: str, preview: bool = False):
    config, _ = runtime_form(raw, [])
    return run_recorded(lambda: build_stack(runtime_raw_config(), "phasekit", stack), preview=preview,
                        stack=stack, config={**config, **SECRETS}, secret_keys=["phasekit:secrets"])


@pytest.fixture(scope="module")
def phase2(request):
    return run(PHASE2, "phase2")


@pytest.fixture(scope="module")
def phase3():
    return run(PHASE3, "phase3")


# --- phase 2 --------------------------------------------------------------------------------------------------


def test_phase2_builds_the_split_topology(phase2):
    counts = phase2.type_counts()
    assert {key: counts[key] for key in (
        "phasekit:index:CloudflareEdge", "phasekit:index:SplitVps", "digitalocean:index/droplet:Droplet",
        "digitalocean:index/loadBalancer:LoadBalancer", "digitalocean:index/volume:Volume",
        "digitalocean:index/firewall:Firewall", "command:remote:Command")} == {
        "phasekit:index:CloudflareEdge": 1, "phasekit:index:SplitVps": 1, "digitalocean:index/droplet:Droplet": 3,
        "digitalocean:index/loadBalancer:LoadBalancer": 1, "digitalocean:index/volume:Volume": 1,
        "digitalocean:index/firewall:Firewall": 2, "command:remote:Command": 9}
    assert "digitalocean:index/reservedIp:ReservedIp" not in counts


def test_phase2_dns_points_at_the_load_balancer(phase2):
    record = phase2.one("cloudflare:index/dnsRecord:DnsRecord").inputs
    lb = phase2.one("digitalocean:index/loadBalancer:LoadBalancer")
    assert (record["type"], record["proxied"]) == ("A", True)
    assert record["content"].startswith("192.0.2.")  # the mock load balancer's address, not a droplet's
    assert lb.inputs["firewall"] == {"allows": [f"cidr:{cidr}" for cidr in CLOUDFLARE_V4]}


def test_phase2_app_reaches_pgbouncer_on_the_private_address(phase2):
    stdin = phase2.named("split-app-0-rollout").inputs["stdin"]
    archive = tarfile.open(fileobj=io.BytesIO(base64.b64decode(stdin)))
    env = archive.extractfile("secrets/app.env").read().decode()
    database_url = next(line for line in env.splitlines() if line.startswith("DATABASE_URL="))
    assert database_url.startswith("DATABASE_URL='postgresql://app:") and ":6432/app'" in database_url
    assert "@10.10.0." in database_url


def test_phase2_stateful_urns_are_pinned(phase2):
    assert phase2.named("split-db-data").urn == (
        "urn:pulumi:phase2::phasekit::phasekit:index:SplitVps$digitalocean:index/volume:Volume::split-db-data")
    assert phase2.named("edge-media").urn == (
        "urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/r2Bucket:R2Bucket::edge-media")


def test_phase2_previews_a_fresh_stack(phase2):
    preview = run(PHASE2, "phase2", preview=True)
    assert preview.type_counts() == phase2.type_counts()
    assert preview.outputs["origin_ip"] == "(known after apply)"
    assert {"database_url", "redis_url"} <= preview.secret_outputs


def rollout_files(recording, name: str) -> dict[str, str]:
    archive = tarfile.open(fileobj=io.BytesIO(base64.b64decode(recording.named(name).inputs["stdin"])))
    return {member.name: archive.extractfile(member).read().decode()
            for member in archive.getmembers() if member.isfile()}


def test_phase2_backs_up_the_database_droplet_and_web_hosts_serve_its_status(phase2):
    database = rollout_files(phase2, "split-db-rollout")
    db_address = phase2.outputs["db_private_ip"]
    assert database["secrets/backup_passphrase"] == PASSPHRASE
    assert "repo1-s3-bucket=phasekit-phase2-backups" in database["postgres/pgbackrest.conf"].splitlines()
    assert "archive_mode = 'on'" in database["postgres/postgresql.conf"].splitlines()
    assert json.loads(database["caddy/status.json"])["apps"]["http"]["servers"]["status"]["listen"] == [
        f"{db_address}:8079"]
    for index in (0, 1):
        web = rollout_files(phase2, f"split-app-{index}-rollout")
        assert web["proxy.env"] == f"PHASEKIT_BACKUP_STATUS_UPSTREAM='{db_address}:8079'\n"
        assert not any(path.startswith(("secrets/pgbackrest", "secrets/backup")) for path in web)
    db_firewall = phase2.named("split-db-firewall").inputs["inboundRules"]
    assert [(rule["portRange"], rule.get("sourceTags")) for rule in db_firewall[1:]] == [
        ("6432", ["phasekit-phase2-app-tier"]), ("6379", ["phasekit-phase2-app-tier"]),
        ("8079", ["phasekit-phase2-app-tier"])]
    assert {check.name: check.inputs["target"] for check in phase2.of_type("digitalocean:index/uptimeCheck:UptimeCheck")} == {
        "split-site-check": "https://app.example.com/healthz",
        "split-volume-check": "https://app.example.com/.well-known/phasekit/volume",
        "split-backup-check": "https://app.example.com/.well-known/phasekit/backup"}
    assert phase2.named("backups-bucket").urn == (
        "urn:pulumi:phase2::phasekit::phasekit:index:BackupStore$cloudflare:index/r2Bucket:R2Bucket::backups-bucket")
    assert phase2.named("backups-bucket").protect


# --- phase 3 --------------------------------------------------------------------------------------------------


def test_phase3_builds_every_component(phase3):
    counts = phase3.type_counts()
    assert {token: count for token, count in counts.items() if token.startswith("phasekit:index:")} == {
        "phasekit:index:AlertTopic": 1,
        "phasekit:index:AwsNetwork": 1,
        "phasekit:index:EksCluster": 1,
        "phasekit:index:RdsPostgres": 1,
        "phasekit:index:ElastiCacheRedis": 1,
        "phasekit:index:CloudflareEdge": 1,
        "phasekit:index:PublicLoadBalancer": 1,
        "phasekit:index:KubernetesApp": 1,
        "phasekit:index:ClusterAutoscaler": 1,
        "phasekit:index:BackupStore": 1,
        "phasekit:index:LogicalBackup": 1,
    }
    assert not any(token.startswith("digitalocean:") for token in counts)
    assert counts["kubernetes:apps/v1:Deployment"] == 2  # the app and the Cluster Autoscaler
    assert counts["aws:rds/instance:Instance"] == 1
    assert counts["aws:elasticache/replicationGroup:ReplicationGroup"] == 1


def test_a_fresh_phase3_stack_previews_with_the_cluster_unknown():
    """The Kubernetes objects depend on a cluster that does not exist yet: the preview must still register
    every one of them, with the provider's kubeconfig unknown."""
    preview = run(PHASE3, "phase3", preview=True)
    assert preview.type_counts() == run(PHASE3, "phase3").type_counts()
    provider = preview.one("pulumi:providers:kubernetes")
    assert isinstance(provider.inputs["kubeconfig"], Unknown)
    assert preview.outputs["origin_hostname"] == "(known after apply)"


def test_phase3_kubernetes_objects_go_through_the_cluster_provider(phase3):
    provider = phase3.one("pulumi:providers:kubernetes")
    objects = [resource for resource in phase3.resources if resource.type.startswith("kubernetes:")]
    # with the three NetworkPolicies, the Cluster Autoscaler's seven objects, the database-role Job's four, the
    # default StorageClass and the logical backup's four (CronJob, ServiceAccount, Secret, NetworkPolicy)
    assert len(objects) == 26
    assert all(resource.provider is not None and resource.provider.startswith(provider.urn + "::")
               for resource in objects)


def test_phase3_kubernetes_objects_match_the_configured_kubernetes_schema(phase3):
    version = load_config(PHASE3).cluster.version
    rendered = manifests(phase3)
    assert sorted(manifest["kind"] for manifest in rendered) == [
        "ClusterRole", "ClusterRoleBinding", "ConfigMap", "CronJob", "Deployment", "Deployment",
        "HorizontalPodAutoscaler", "Job", "Job", "Namespace", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy",
        "NetworkPolicy", "PodDisruptionBudget", "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Secret",
        "Secret", "Service", "ServiceAccount", "ServiceAccount", "ServiceAccount", "StorageClass"]
    assert version == "1.35"
    assert [error for manifest in rendered for error in validate(manifest, version)] == []


def test_phase3_nodes_scale_with_the_cluster_autoscaler_of_the_cluster_minor(phase3):
    deployment = phase3.named("autoscaler-deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    cluster_name = phase3.one("aws:eks/cluster:Cluster").inputs["name"]
    assert deployment["image"] == ("registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.2@sha256:"
                                   "aac369dc283927a623deb1af54696efcc722ae79255aa07788422e495bab887d")
    assert (f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
            f"k8s.io/cluster-autoscaler/{cluster_name}") in deployment["command"]
    policy = json.loads(phase3.named("autoscaler-irsa-scaling").inputs["policy"])
    assert policy["Statement"][1]["Condition"]["StringEquals"][
        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}"] == "owned"
    aws_provider = phase3.one("pulumi:providers:aws")
    assert phase3.named("autoscaler-irsa-role").provider.startswith(aws_provider.urn + "::")
    assert phase3.one("aws:eks/nodeGroup:NodeGroup").ignore_changes == ("scalingConfig.desiredSize",)


def test_phase3_nodes_follow_the_newest_ami_release_by_default(phase3):
    assert phase3.one("aws:eks/nodeGroup:NodeGroup").inputs["releaseVersion"] == "offline-ami-release"


def test_phase3_ships_container_logs_only_when_configured(phase3):
    def log_shipping(recording):
        return sorted(resource.name for resource in recording.resources
                      if "amazon-cloudwatch-observability" in resource.name or "container-logs" in resource.name)
    assert log_shipping(phase3) == []
    raw = {**PHASE3, "phasekit:cluster": {**PHASE3["phasekit:cluster"], "containerLogs": True}}
    recording = run(raw, "phase3")
    assert log_shipping(recording) == [
        "cluster-amazon-cloudwatch-observability", "cluster-amazon-cloudwatch-observability-cloudwatchagentserverpolicy",
        "cluster-amazon-cloudwatch-observability-role", "cluster-container-logs-application",
        "cluster-container-logs-dataplane", "cluster-container-logs-host", "cluster-container-logs-performance"]
    groups = {group.inputs.get("name") for group in recording.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert "/aws/containerinsights/phasekit-phase3-eks/application" in groups


def test_phase3_network_policies_admit_the_vpc_and_reach_the_data_stores_in_it(phase3):
    # The load balancer and the nodes (kubelet probes, NodePort SNAT) are in the VPC; so are RDS and ElastiCache.
    policies = {policy.name: policy.inputs["spec"] for policy in phase3.of_type(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert sorted(policies) == ["app-default-deny", "app-egress", "app-web-ingress", "logical-backup-egress"]
    assert policies["app-web-ingress"]["ingress"] == [{"from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                                                       "ports": [{"protocol": "TCP", "port": 8000}]}]
    assert policies["app-egress"]["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    vpc_cni = next(addon for addon in phase3.of_type("aws:eks/addon:Addon") if addon.inputs["addonName"] == "vpc-cni")
    assert vpc_cni.inputs["configurationValues"] == '{"enableNetworkPolicy": "true"}'


def test_phase3_data_stores_admit_only_the_nodes(phase3):
    node_sg = phase3.named("cluster-node-sg").id
    assert phase3.named("database-sg").inputs["ingress"] == [{
        "protocol": "tcp", "fromPort": 5432, "toPort": 5432, "securityGroups": [node_sg],
        "description": phase3.named("database-sg").inputs["ingress"][0]["description"]}]
    assert [(rule["fromPort"], rule["securityGroups"]) for rule in phase3.named("cache-sg").inputs["ingress"]] == [
        (6379, [node_sg])]
    database = phase3.one("aws:rds/instance:Instance").inputs
    assert (database["publiclyAccessible"], database["storageEncrypted"], database["multiAz"],
            database["deletionProtection"], database["skipFinalSnapshot"]) == (False, True, True, True, False)
    cache = phase3.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert (cache.inputs["transitEncryptionEnabled"], cache.inputs["atRestEncryptionEnabled"],
            cache.inputs["automaticFailoverEnabled"], cache.inputs["multiAzEnabled"]) == (True, True, True, True)
    assert "authToken" in cache.secret_inputs


def test_phase3_entry_point_is_the_alb_behind_cloudflare(phase3):
    record = phase3.one("cloudflare:index/dnsRecord:DnsRecord").inputs
    alb = phase3.one("aws:lb/loadBalancer:LoadBalancer")
    assert (record["type"], record["proxied"]) == ("CNAME", True)
    assert record["content"].startswith("ingress-alb-") and record["content"].endswith(".elb.amazonaws.com")
    ingress = phase3.named("ingress-sg").inputs["ingress"]
    assert [(rule["fromPort"], rule["toPort"], rule["cidrBlocks"]) for rule in ingress] == [(443, 443, CLOUDFLARE_V4)]
    assert alb.inputs["internal"] is False
    target_group = phase3.one("aws:lb/targetGroup:TargetGroup").inputs
    service = next(manifest for manifest in manifests(phase3) if manifest["kind"] == "Service")
    assert target_group["port"] == service["spec"]["ports"][0]["nodePort"] == 30080


def test_phase3_cluster_api_and_nodes_are_locked_down(phase3):
    cluster = phase3.one("aws:eks/cluster:Cluster").inputs
    assert cluster["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    template = phase3.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert [entry.inputs["principalArn"] for entry in phase3.of_type("aws:eks/accessEntry:AccessEntry")] == [
        "arn:aws:iam::123456789012:role/platform-admin"]


def test_phase3_admits_an_api_access_group_on_443_through_the_cluster_security_group():
    raw = {**PHASE3, "phasekit:cluster": {**PHASE3["phasekit:cluster"],
                                          "apiAccessSecurityGroupIds": ["sg-0123456789abcdef0"]}}
    recording = run(raw, "phase3")
    rules = [rule for rule in recording.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
             if "-api-from-" in rule.name]
    assert [rule.name for rule in rules] == ["cluster-api-from-sg-0123456789abcdef0"]
    # securityGroupId: EKS's cluster security group, the harness's fake for the cluster "cluster-cluster".
    assert rules[0].inputs == {
        "securityGroupId": f"sg-{hashlib.sha256(b'cluster-cluster').hexdigest()[:17]}",
        "referencedSecurityGroupId": "sg-0123456789abcdef0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
        "description": "Kubernetes API (HTTPS) from an admitted group, e.g. a CI runner or bastion in the VPC",
        "tags": {"project": "phasekit", "stack": "phase3", "phase": "3", "managed-by": "phasekit",
                 "Name": "phasekit-phase3-eks-api-from-sg-0123456789abcdef0"}}
    assert rules[0].parent == recording.one("phasekit:index:EksCluster").urn


def test_phase3_without_api_access_groups_admits_no_group_on_the_api(phase3):
    assert [rule.name for rule in phase3.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
            if "-api-from-" in rule.name] == []


def test_phase3_the_app_receives_the_contract_over_tls(phase3):
    secret = phase3.named("app-env")
    data = secret.inputs["stringData"]
    # The app's own role, never the RDS master user (whose password only RDS and Secrets Manager hold).
    assert data["DATABASE_URL"].startswith("postgresql://app_user:") and data["DATABASE_URL"].endswith(
        ".rds.amazonaws.com:5432/app?sslmode=require")
    assert data["REDIS_URL"].startswith("rediss://:") and data["REDIS_URL"].endswith(
        ".cache.amazonaws.com:6379/0")
    assert (data["SECRET_KEY_BASE"], data["PORT"], data["WEB_CONCURRENCY"], data["MEDIA_BUCKET"]) == (
        "from-pulumi-secret", "8000", "1", "phasekit-phase3-media")
    assert "stringData" in secret.secret_inputs


def test_phase3_rds_is_sized_for_every_pod_the_hpa_may_run(phase3):
    parameters = {p["name"]: p["value"] for p in phase3.one("aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]}
    # (6 pods + 2 surge) x 1 worker x pool 5 + the release Job's pool 5 + 5 operator = 50, +25 % = 63, + 5
    # reserved superuser slots = 68, rounded up to 70.
    assert parameters["max_connections"] == "70"
    assert parameters["rds.force_ssl"] == "1"


def test_phase3_stateful_urns_are_pinned_and_protected(phase3):
    expected = {
        "database-db": "urn:pulumi:phase3::phasekit::phasekit:index:RdsPostgres$aws:rds/instance:Instance::database-db",
        "cache-cache": "urn:pulumi:phase3::phasekit::phasekit:index:ElastiCacheRedis$"
                       "aws:elasticache/replicationGroup:ReplicationGroup::cache-cache",
    }
    for name, urn in expected.items():
        resource = phase3.named(name)
        assert resource.urn == urn
        assert (resource.protect, resource.retain_on_delete) == (True, True)


def test_phase3_exports_keep_credentials_secret(phase3):
    assert {"kubeconfig", "database_url", "redis_url"} <= phase3.secret_outputs
    assert phase3.outputs["namespace"] == "app"


def test_phase3_aws_resources_use_the_provider_for_the_configured_region(phase3):
    provider = phase3.one("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-east-1"
    aws_resources = [resource for resource in phase3.resources if resource.type.startswith("aws:")]
    assert len(aws_resources) > 60
    assert all(resource.provider is not None and resource.provider.startswith(provider.urn + "::")
               for resource in aws_resources)


@pytest.mark.parametrize(("stack", "raw", "module", "component"), [
    ("phase1", "PHASE1", "infra.phase1", "SingleVps"),
    ("phase2", "PHASE2", "infra.phase2", "SplitVps"),
    ("phase3", "PHASE3", "infra.phase3", "PublicLoadBalancer"),
])
def test_a_failure_after_the_edge_stops_the_run_instead_of_hanging(monkeypatch, stack, raw, module, component):
    """The edge's record waits on an origin promised before the origin exists; if building the origin fails,
    the run must end with that error, not wait forever on the promise."""
    import asyncio
    import importlib
    import threading

    def broken(*args, **kwargs):
        raise ValueError(f"{component} broke")

    monkeypatch.setattr(importlib.import_module(module), component, broken)
    stack_file = {"PHASE1": read_stack_file(ROOT / "Pulumi.phase1.yaml"), "PHASE2": PHASE2, "PHASE3": PHASE3}[raw]
    outcome: list[BaseException | None] = []

    def attempt():
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            run(stack_file, stack)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - any error is the expected outcome
            outcome.append(error)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the run hung"
    assert outcome and isinstance(outcome[0], ValueError) and f"{component} broke" in str(outcome[0])


def test_phase3_workload_settings_reach_the_pods():
    raw = {**PHASE3, "phasekit:workload": {**PHASE3["phasekit:workload"], "writablePaths": ["/tmp", "/var/run"],
                                           "runAsUser": 101},
           "phasekit:cluster": {**PHASE3["phasekit:cluster"], "supportType": "EXTENDED",
                                "nodeGroup": {**PHASE3["phasekit:cluster"]["nodeGroup"], "trackLatestAmi": False}},
           "phasekit:database": {**PHASE3["phasekit:database"],
                                 "engineLifecycleSupport": "open-source-rds-extended-support"}}
    recording = run(raw, "phase3")
    spec = next(deployment for deployment in recording.of_type("kubernetes:apps/v1:Deployment")
                if deployment.name == "app-deployment").inputs["spec"]["template"]["spec"]
    assert [mount["mountPath"] for mount in spec["containers"][0]["volumeMounts"]] == ["/tmp", "/var/run"]
    assert spec["securityContext"]["runAsUser"] == 101
    assert recording.one("aws:eks/cluster:Cluster").inputs["upgradePolicy"] == {"supportType": "EXTENDED"}
    assert "releaseVersion" not in recording.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert recording.one("aws:rds/instance:Instance").inputs["engineLifecycleSupport"] == (
        "open-source-rds-extended-support")


def test_phase3_the_app_role_exists_before_the_release_job_and_the_master_password_is_not_in_state(phase3):
    instance = phase3.one("aws:rds/instance:Instance")
    assert instance.inputs["manageMasterUserPassword"] is True and "password" not in instance.inputs
    assert [password.name for password in phase3.of_type("random:index/randomPassword:RandomPassword")
            if password.name.startswith("database-")] == ["database-app-password"]
    role_job, release = phase3.named("app-database-role"), phase3.named("app-release")
    assert role_job.urn in release.dependencies
    reader = phase3.named("database-master-secret-reader")
    condition = json.loads(reader.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:app:app-database-role" in condition.values()
    account = phase3.named("app-database-role-account")
    assert account.inputs["metadata"]["name"] == "app-database-role"
    assert account.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::123456789012:role/database-master-secret-reader-")
    # The account (and so the Job that runs under it) waits for the role's policy, not only the role: a role
    # without it answers AccessDenied while IAM propagates.
    assert phase3.named("database-master-secret-reader-policy").urn in account.dependencies
    assert account.urn in role_job.dependencies


# --- phase 3 with a worker and two schedules --------------------------------------------------------------


@pytest.fixture(scope="module")
def phase3_with_processes():
    return run(with_processes(PHASE3, maxCount=4), "phase3")


def test_phase3_runs_each_process_as_a_deployment_and_each_schedule_as_a_cronjob_after_the_release(
        phase3_with_processes):
    recording = phase3_with_processes
    release = recording.named("app-release")
    assert release.type == "kubernetes:batch/v1:Job"
    planned = {name: recording.named(name) for name in (
        "app-worker-deployment", "app-worker-hpa", "app-worker-pdb", "app-refresh-trending-cronjob",
        "app-expire-sessions-cronjob")}
    assert {name: resource.type for name, resource in planned.items()} == {
        "app-worker-deployment": "kubernetes:apps/v1:Deployment",
        "app-worker-hpa": "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "app-worker-pdb": "kubernetes:policy/v1:PodDisruptionBudget",
        "app-refresh-trending-cronjob": "kubernetes:batch/v1:CronJob",
        "app-expire-sessions-cronjob": "kubernetes:batch/v1:CronJob",
    }
    for name in ("app-worker-deployment", "app-refresh-trending-cronjob", "app-expire-sessions-cronjob"):
        assert release.urn in planned[name].dependencies, name
    # The HPA and PDB only select pods; the pods come from the Deployment, which waits for the release.
    assert planned["app-worker-hpa"].inputs["spec"]["maxReplicas"] == 4
    assert planned["app-refresh-trending-cronjob"].inputs["spec"]["schedule"] == "*/15 * * * *"
    # Five objects on top of the committed stack's 26; nothing else changes.
    base = run(PHASE3, "phase3").type_counts()
    counts = recording.type_counts()
    assert {token: counts[token] - base.get(token, 0) for token in counts if counts[token] != base.get(token)} == {
        "kubernetes:apps/v1:Deployment": 1, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 1,
        "kubernetes:policy/v1:PodDisruptionBudget": 1, "kubernetes:batch/v1:CronJob": 2}


def test_phase3_sizes_postgres_for_the_process_and_schedule_pods(phase3_with_processes):
    parameters = {parameter["name"]: parameter["value"] for parameter in phase3_with_processes.one(
        "aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]}
    assert parameters["max_connections"] == "120"  # 70 without them (test above)


def test_phase3_process_objects_match_the_configured_kubernetes_schema(phase3_with_processes):
    version = load_config(PHASE3).cluster.version
    assert [error for manifest in manifests(phase3_with_processes) for error in validate(manifest, version)] == []


def refused_before_anything(raw, invoke_results, *, preview: bool):
    """Run the program expecting a refusal; (its message, the types registered before it)."""
    import pulumi

    from components.testing import INVOKE_RESULTS
    from infra.errors import ConfigError

    config, _ = runtime_form(raw, [])
    with pytest.raises(ConfigError) as raised:
        run_recorded(lambda: build_stack(runtime_raw_config(), "phasekit", "phase3"), preview=preview, stack="phase3",
                     config={**config, **SECRETS}, secret_keys=["phasekit:secrets"],
                     invoke_results={**INVOKE_RESULTS, **invoke_results})
    return str(raised.value), [resource.type for resource in pulumi.runtime.settings.SETTINGS.monitor.recorded]


def test_phase3_refuses_a_private_only_first_deploy_before_creating_anything():
    """CI runs `pulumi up --skip-preview`: the refusal must come before the first resource, not after the network."""
    raw = {**PHASE3, "phasekit:cluster": {**PHASE3["phasekit:cluster"], "endpointPublicAccessCidrs": []}}
    message, registered = refused_before_anything(raw, {}, preview=False)
    assert message.startswith("cluster.endpointPublicAccessCidrs is empty and the account has no EKS cluster "
                              "'phasekit-phase3-eks' yet: a first deploy cannot reach a private-only API endpoint")
    assert registered == ["pulumi:providers:aws"]


def test_phase3_refuses_a_major_upgrade_with_replicas_before_creating_anything():
    raw = {**PHASE3, "phasekit:database": {**PHASE3["phasekit:database"], "engineVersion": "17", "readReplicas": 1}}
    running = {"aws:rds/getInstances:getInstances": {"instanceIdentifiers": ["phasekit-phase3-db"], "id": "x"},
               "aws:rds/getInstance:getInstance": {"engineVersion": "16.4", "id": "phasekit-phase3-db"}}
    message, registered = refused_before_anything(raw, running, preview=True)
    assert message.startswith("database.engineVersion '17' is a major upgrade of the running PostgreSQL 16.4 of "
                              "'phasekit-phase3-db' with 1 read replica configured")
    assert registered == ["pulumi:providers:aws"]


def test_phase3_logical_backup_switches_to_the_app_role_only_after_the_role_job(phase3):
    """The role Job may refuse (data still the master user's in public): until it passes, the backup's credentials
    Secret keeps what it had rather than dumping as a role that cannot read those tables."""
    role_job, credentials = phase3.named("app-database-role"), phase3.named("logical-backup-credentials")
    assert role_job.urn in credentials.dependencies


def test_phase3_looks_the_running_cluster_and_database_up_once(phase3):
    """preflight checks them before the stack's first resource; the components do not look again."""
    assert [len(phase3.invoked(token)) for token in ("aws:eks/getClusters:getClusters",
                                                     "aws:rds/getInstances:getInstances")] == [1, 1]


def test_phase3_preview_warns_on_the_stack_about_a_private_only_first_deploy():
    raw = {**PHASE3, "phasekit:cluster": {**PHASE3["phasekit:cluster"], "endpointPublicAccessCidrs": []}}
    from components.eks_cluster import private_first_deploy_problem

    warnings = run(raw, "phase3", preview=True).warnings()
    assert [warning.message for warning in warnings] == [
        private_first_deploy_problem("phasekit-phase3-eks", None, [])]
    assert warnings[0].message.startswith("cluster.endpointPublicAccessCidrs is empty and the account has no EKS "
                                          "cluster 'phasekit-phase3-eks' yet")


def test_phase3_refuses_a_two_minor_cluster_jump_before_creating_anything():
    running = {"aws:eks/getClusters:getClusters": {"names": ["phasekit-phase3-eks"], "id": "x"},
               "aws:eks/getCluster:getCluster": {"name": "phasekit-phase3-eks", "version": "1.33", "id": "x"}}
    message, registered = refused_before_anything(PHASE3, running, preview=False)
    assert message == ("cluster.version '1.35' is 2 minor versions above the running '1.33'; allowed: '1.33' or "
                       "'1.34' (EKS upgrades one minor version at a time: deploy each step, nodes and add-ons "
                       "included, before the next)")
    assert registered == ["pulumi:providers:aws"]
