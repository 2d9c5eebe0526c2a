"""Phase 3's config keys: the committed stack file, the bad-input table with exact messages, and the
models shared with phases 1 and 2 (``app``, ``edge``).

Pure logic, no Pulumi runtime. What these tests cannot prove: that AWS offers an instance class or a zone
in the region to this account, or that EKS still supports a version on the day of ``pulumi up``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from infra.config import Phase1Stack, Phase3Stack, config_warnings, load_config
from phasekit.stack_file import read_stack_file
from tests import test_config as config_tests
from tests.builders import with_processes
from tests.test_config import DELETE, error_message

ROOT = Path(__file__).resolve().parents[1]
PHASE3 = read_stack_file(ROOT / "Pulumi.phase3.yaml")


def edited(changes: Mapping[str, object]) -> dict[str, Any]:
    return config_tests.edited(changes, PHASE3)


def test_committed_phase3_file_loads_with_safe_defaults():
    config = load_config(PHASE3)
    assert isinstance(config, Phase3Stack)
    assert (config.aws.region, config.aws.availability_zones, config.aws.nat_strategy.value) == (
        "us-east-1", ("us-east-1a", "us-east-1b"), "single")
    assert (config.database.multi_az, config.database.backup_retention_days) == (True, 7)
    assert (config.cache.node_count, config.cache.engine.value) == (2, "valkey")
    nodes = config.cluster.node_group
    assert (nodes.min_size, nodes.desired_size, nodes.max_size) == (2, 2, 4)
    assert (config.workload.min_replicas, config.workload.max_replicas) == (2, 6)
    assert config.worker_count == 1  # 250m of CPU per pod: one worker


def test_defaults_fill_everything_but_where_and_who():
    minimal = {key: value for key, value in PHASE3.items()
               if key not in ("phasekit:database", "phasekit:cache", "phasekit:workload")}
    minimal["phasekit:cluster"] = {key: value for key, value in PHASE3["phasekit:cluster"].items()
                                   if key != "nodeGroup"}
    config = load_config(minimal)
    assert (config.database.instance_class, config.cache.node_type, config.cluster.node_group.instance_types) == (
        "db.t4g.medium", "cache.t4g.small", ("t3.large",))


def test_versions_and_support_default_to_what_bills_no_extended_support():
    # 1.34 left EKS standard support on 2026-12-02; the default must be a version still in it.
    minimal = dict(PHASE3)
    minimal["phasekit:cluster"] = {key: value for key, value in PHASE3["phasekit:cluster"].items() if key != "version"}
    config = load_config(minimal)
    assert (config.cluster.version, config.cluster.support_type.value) == ("1.35", "STANDARD")
    assert config.database.engine_lifecycle_support.value == "open-source-rds-extended-support-disabled"
    assert load_config(PHASE3).cluster.version == "1.35"


def test_alb_access_logs_are_on_for_90_days_unless_configured():
    assert (load_config(PHASE3).load_balancer.access_logs,
            load_config(PHASE3).load_balancer.access_log_retention_days) == (True, 90)
    chosen = load_config(edited({"phasekit:loadBalancer": {"accessLogs": False, "accessLogRetentionDays": 30}}))
    assert (chosen.load_balancer.access_logs, chosen.load_balancer.access_log_retention_days) == (False, 30)


def test_writable_paths_and_uid_reach_the_pods():
    # Only the runtime's own trees are refused, not names that merely start like them.
    paths = ["/tmp", "/var/cache/nginx", "/devices", "/app/.cache", "/var/sys"]
    config = load_config(edited({"phasekit:workload.writablePaths": paths, "phasekit:workload.runAsUser": 101}))
    assert (config.workload.writable_paths, config.workload.run_as_user) == (tuple(paths), 101)
    assert (load_config(PHASE3).workload.writable_paths, load_config(PHASE3).workload.run_as_user) == (
        ("/tmp",), 10001)


def test_extended_support_is_accepted_when_chosen():
    config = load_config(edited({"phasekit:cluster.supportType": "EXTENDED",
                                 "phasekit:database.engineLifecycleSupport": "open-source-rds-extended-support"}))
    assert (config.cluster.support_type.value, config.database.engine_lifecycle_support.value) == (
        "EXTENDED", "open-source-rds-extended-support")


@pytest.mark.parametrize(("changes", "app_connections", "max_connections"), [
    # The committed stack: (6 + 2 surge) x 1 worker x 5 + the release Job's 5 = 45; the old sizing (6 x 5 + 10
    # = 40) left no room for the surge, the Job or PostgreSQL's 5 reserved superuser slots.
    ({}, 45, 70),
    ({"phasekit:app.releaseCommand": DELETE}, 40, 70),
    ({"phasekit:workload.maxReplicas": 10}, 70, 100),
    ({"phasekit:workload.maxReplicas": 10, "phasekit:app.workers": 3}, 200, 270),
])
def test_max_connections_covers_every_connection_the_app_can_hold(changes, app_connections, max_connections):
    demand = load_config(edited(changes)).connection_demand
    assert (demand.app_connections, demand.max_connections) == (app_connections, max_connections)
    assert demand.max_connections >= demand.app_connections + 5 + 5  # operators and reserved slots fit


def test_the_hpa_maximum_that_just_fits_the_nodes_is_accepted():
    # 4 x t3.large hold 26 pods of 250m/512Mi (5 on the node with coredns, metrics-server and the Cluster
    # Autoscaler, 7 on the others): 20 + 5 surge fit, 21 + 6 do not.
    assert load_config(edited({"phasekit:workload.maxReplicas": 20})).workload.max_replicas == 20
    assert error_message(edited({"phasekit:workload.maxReplicas": 21})) == (
        "phasekit:workload.maxReplicas: 21 pods + 6 rollout surge of 250m CPU and 512Mi need 27 pods; allowed: at "
        "most 26, what 4 x t3.large (cluster.nodeGroup.maxSize) hold after the kubelet's reservations and the "
        "add-ons (raise maxSize, choose a larger type or request less)")


def test_container_logs_are_off_unless_chosen_and_then_take_their_share_of_the_nodes():
    # Off by default (CloudWatch Logs bills ingestion per GB). On, Fluent Bit and the CloudWatch agent take
    # 300m on every node and the add-on's operator 100m once: 4 x t3.large hold 18 pods instead of 26, so 14 + 4
    # surge fit and 15 + 4 do not.
    assert load_config(PHASE3).cluster.container_logs is False
    chosen = load_config(edited({"phasekit:cluster.containerLogs": True, "phasekit:workload.maxReplicas": 14}))
    assert (chosen.cluster.container_logs, chosen.workload.max_replicas) == (True, 14)
    assert load_config(edited({"phasekit:workload.maxReplicas": 18})).workload.max_replicas == 18
    assert error_message(edited({"phasekit:cluster.containerLogs": True, "phasekit:workload.maxReplicas": 15})) == (
        "phasekit:workload.maxReplicas: 15 pods + 4 rollout surge of 250m CPU and 512Mi need 19 pods; allowed: at "
        "most 18, what 4 x t3.large (cluster.nodeGroup.maxSize) hold after the kubelet's reservations and the "
        "add-ons (raise maxSize, choose a larger type or request less)")


UNCHECKED_FIT = (
    "phasekit:cluster.nodeGroup.instanceTypes: node fit not checked: {type} is not in phasekit's node table "
    "(components/aws_choices.py NODE_SPECS), so nothing checks that workload.maxReplicas plus a rollout's surge "
    "fit cluster.nodeGroup.maxSize of them; pods that do not fit stay Pending and pulumi up fails after 10 minutes "
    "(add the type's vCPUs, memory and max pods to NODE_SPECS, or choose a listed type)")


def test_an_instance_type_of_unknown_capacity_is_not_checked_and_the_plan_says_so():
    raw = edited({"phasekit:cluster.nodeGroup.instanceTypes": ["m5a.large"], "phasekit:workload.maxReplicas": 60})
    config = load_config(raw)
    assert config.workload.max_replicas == 60
    assert config_warnings(raw, config) == [UNCHECKED_FIT.format(type="m5a.large")]


def test_only_the_unknown_of_several_instance_types_is_named():
    raw = edited({"phasekit:cluster.nodeGroup.instanceTypes": ["t3.large", "m5a.large", "m5a.xlarge"]})
    assert config_warnings(raw, load_config(raw)) == [UNCHECKED_FIT.format(type="m5a.large"),
                                                      UNCHECKED_FIT.format(type="m5a.xlarge")]


@pytest.mark.parametrize("instance_type", ["t3a.medium", "t3a.large", "t3a.xlarge", "m6a.large", "m6a.xlarge",
                                           "m7i.large", "c6i.xlarge"])
def test_the_common_amd_and_intel_types_are_in_the_node_table(instance_type):
    raw = edited({"phasekit:cluster.nodeGroup.instanceTypes": [instance_type]})
    assert config_warnings(raw, load_config(raw)) == []


def test_a_type_added_to_the_node_table_is_checked_like_its_intel_twin():
    # t3a.large: 2 vCPUs, 8 GiB, 35 pods (eni-max-pods.txt), as t3.large: 4 of them hold 26 pods of 250m/512Mi.
    assert error_message(edited({"phasekit:cluster.nodeGroup.instanceTypes": ["t3a.large"],
                                 "phasekit:workload.maxReplicas": 21})) == (
        "phasekit:workload.maxReplicas: 21 pods + 6 rollout surge of 250m CPU and 512Mi need 27 pods; allowed: at "
        "most 26, what 4 x t3a.large (cluster.nodeGroup.maxSize) hold after the kubelet's reservations and the "
        "add-ons (raise maxSize, choose a larger type or request less)")


def test_the_committed_phase3_stack_has_no_warnings():
    assert config_warnings(PHASE3, load_config(PHASE3), today=date(2026, 12, 4),
                           standard_support_ends=SUPPORT_ENDS) == []


# --- Standard support (cluster.version against the day) ------------------------------------------------

SUPPORT_ENDS = {"1.33": date(2026, 7, 29), "1.34": date(2026, 12, 2), "1.35": date(2027, 3, 27)}
"""As phasekit/prices.yaml's ``eks_standard_support_ends`` has them; the caller hands the table over, since
infra does not read phasekit's catalog."""

PAST_STANDARD_SUPPORT_134 = (
    "phasekit:cluster.version: '1.34' left EKS standard support on 2026-12-02: with supportType STANDARD EKS upgrades "
    "the cluster to '1.35' on its own (an upgrade nobody scheduled, and the next pulumi preview refuses the configured "
    "version as a downgrade until you raise it), and a cluster already in extended support cannot be switched back to STANDARD; set cluster.version to '1.35' (one "
    "minor at a time), or choose supportType EXTENDED and pay extended support ($0.60 instead of $0.10 per "
    "cluster-hour)")


@pytest.mark.parametrize(("changes", "today", "warnings"), [
    ({"phasekit:cluster.version": "1.34"}, date(2026, 12, 3), [PAST_STANDARD_SUPPORT_134]),
    # The end date is the last day of standard support.
    ({"phasekit:cluster.version": "1.34"}, date(2026, 12, 2), []),
    ({"phasekit:cluster.version": "1.34", "phasekit:cluster.supportType": "EXTENDED"}, date(2026, 12, 3), []),
    ({"phasekit:cluster.version": "1.35"}, date(2027, 3, 27), []),
    # No end date known (1.36 is not in the table): nothing guessed.
    ({"phasekit:cluster.version": "1.36"}, date(2030, 1, 1), []),
])
def test_a_version_past_standard_support_under_standard_is_warned_about(changes, today, warnings):
    raw = edited(changes)
    assert config_warnings(raw, load_config(raw), today=today, standard_support_ends=SUPPORT_ENDS) == warnings


def test_without_the_support_table_no_support_warning_is_given():
    raw = edited({"phasekit:cluster.version": "1.34"})
    assert config_warnings(raw, load_config(raw), today=date(2027, 1, 1)) == []


def test_the_older_version_names_its_own_next_minor():
    raw = edited({"phasekit:cluster.version": "1.33"})
    assert config_warnings(raw, load_config(raw), today=date(2026, 12, 4), standard_support_ends=SUPPORT_ENDS) == [
        "phasekit:cluster.version: '1.33' left EKS standard support on 2026-07-29: with supportType STANDARD EKS "
        "upgrades the cluster to '1.34' on its own (an upgrade nobody scheduled, and the next pulumi preview refuses "
        "the configured version as a downgrade until you raise it), and a cluster already in extended support cannot "
        "be switched back to STANDARD; set "
        "cluster.version to '1.34' (one minor at a time), or choose supportType EXTENDED and pay extended support "
        "($0.60 instead of $0.10 per cluster-hour)"]


# --- API access from inside the VPC --------------------------------------------------------------------

PRIVATE_ONLY_ENDPOINT = (
    "phasekit:cluster.endpointPublicAccessCidrs: [] turns the public API endpoint off: only a stack whose cluster "
    "already exists can deploy with a private-only endpoint (from inside the VPC, with "
    "cluster.apiAccessSecurityGroupIds); a first deploy cannot reach the API, since the VPC does not exist yet, and "
    "pulumi up refuses it: set cluster.endpointPublicAccessCidrs to the address the first deploy runs from, and "
    "remove it once the cluster exists")


@pytest.mark.parametrize(("changes", "warnings"), [
    ({"phasekit:cluster.endpointPublicAccessCidrs": []}, [PRIVATE_ONLY_ENDPOINT]),
    ({"phasekit:cluster.endpointPublicAccessCidrs": [],
      "phasekit:cluster.apiAccessSecurityGroupIds": ["sg-0123456789abcdef0"]}, [PRIVATE_ONLY_ENDPOINT]),
    ({"phasekit:cluster.endpointPublicAccessCidrs": ["198.51.100.0/24"]}, []),
])
def test_a_private_only_endpoint_is_warned_about_since_a_first_deploy_cannot_use_it(changes, warnings):
    raw = edited(changes)
    assert config_warnings(raw, load_config(raw)) == warnings



def test_api_access_security_groups_default_to_none_and_are_read_in_order():
    assert load_config(PHASE3).cluster.api_access_security_group_ids == ()
    chosen = load_config(edited({"phasekit:cluster.apiAccessSecurityGroupIds": ["sg-0123456789abcdef0",
                                                                                 "sg-0fedcba9"]}))
    assert chosen.cluster.api_access_security_group_ids == ("sg-0123456789abcdef0", "sg-0fedcba9")


def test_phase3_shares_the_app_and_edge_models():
    assert Phase3Stack.model_fields["app"].annotation is Phase1Stack.model_fields["app"].annotation
    assert Phase3Stack.model_fields["edge"].annotation is Phase1Stack.model_fields["edge"].annotation


def test_switching_from_phase2_needs_only_the_stack_file():
    phase2 = read_stack_file(ROOT / "Pulumi.phase2.yaml")
    shared = ("phasekit:app", "phasekit:edge", "phasekit:protect")
    assert {key: phase2[key] for key in shared} == {key: PHASE3[key] for key in shared}


def test_loading_phase1_never_imports_the_aws_sdk():
    # The AWS enums are read lazily; a phase-1 plan should not pay pulumi-aws's import time.
    import subprocess

    code = ("import sys; from infra.config import load_config; from phasekit.stack_file import read_stack_file; "
            "load_config(read_stack_file('Pulumi.phase1.yaml')); print('pulumi_aws' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


ZONES_ALLOWED = "2 or 3 zones of us-east-1, e.g. [us-east-1a, us-east-1b]"
VERSIONS = "one of '1.33', '1.34', '1.35', '1.36' (quoted in YAML)"
SECURITY_GROUPS = "'sg-' and 8 to 17 lowercase hex digits, e.g. sg-0123456789abcdef0"
WRITABLE_ALLOWED = ("an absolute directory path without '.' or '..' segments or a trailing '/', not '/' and not in "
                    "/proc, /sys or /dev (/dev/shm is fine), e.g. /var/cache/nginx")

BAD_PHASE3_CONFIGS = [
    pytest.param(
        {"phasekit:aws.availabilityZones": ["us-east-1a"]},
        f"phasekit:aws.availabilityZones: ['us-east-1a'] is 1 zone; allowed: {ZONES_ALLOWED} (the Multi-AZ "
        "database, the cache's failover and the EKS control plane each need a second zone)",
        id="one-zone-with-multi-az",
    ),
    pytest.param({"phasekit:aws.availabilityZones": ["us-east-1a", "us-west-2b"]},
                 f"phasekit:aws.availabilityZones[1]: 'us-west-2b' is not a zone of us-east-1; allowed: {ZONES_ALLOWED}",
                 id="zone-of-another-region"),
    pytest.param({"phasekit:aws.availabilityZones": ["us-east-1a", "us-east-1a"]},
                 f"phasekit:aws.availabilityZones[1]: 'us-east-1a' is listed twice; allowed: {ZONES_ALLOWED}",
                 id="zone-twice"),
    pytest.param({"phasekit:aws.availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]},
                 f"phasekit:aws.availabilityZones: 4 zones; allowed: {ZONES_ALLOWED}", id="four-zones"),
    pytest.param({"phasekit:aws.region": "us-east-9"},
                 "phasekit:aws.region: 'us-east-9' is not an AWS region; allowed: an AWS region from "
                 "pulumi_aws.Region, e.g. us-east-1 (did you mean 'us-east-2'?)", id="region-unknown"),
    pytest.param({"phasekit:aws.natStrategy": "none"},
                 "phasekit:aws.natStrategy: 'none' is not a NAT strategy; allowed: single or per-az", id="nat-none"),
    pytest.param({"phasekit:aws.vpcCidr": "192.0.2.0/24"},
                 "phasekit:aws.vpcCidr: '192.0.2.0/24' is not a private IPv4 /16../20 network; allowed: a /16 to "
                 "/20 inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, e.g. 10.20.0.0/16", id="vpc-cidr-not-private"),
    pytest.param({"phasekit:workload.minReplicas": 8},
                 "phasekit:workload.maxReplicas: 6 is below minReplicas 8; allowed: maxReplicas >= minReplicas",
                 id="hpa-max-below-min"),
    pytest.param({"phasekit:workload.minReplicas": 1},
                 "phasekit:workload.minReplicas: 1 is out of range; allowed: 2..100 (one pod per zone at least, "
                 "so a zone or node loss is survived)", id="hpa-min-one"),
    pytest.param({"phasekit:workload.memoryLimit": "256Mi"},
                 "phasekit:workload.memoryLimit: '256Mi' is below memoryRequest '512Mi'; allowed: a limit at "
                 "least the request", id="memory-limit-below-request"),
    pytest.param({"phasekit:workload.cpuRequest": "0.25"},
                 "phasekit:workload.cpuRequest: '0.25' is not a Kubernetes quantity phasekit reads; allowed: "
                 "millicores like 250m, or whole cores like 2", id="cpu-fraction"),
    pytest.param({"phasekit:cache.nodeCount": 1},
                 "phasekit:cache.nodeCount: 1 is out of range; allowed: 2..6 (a primary and at least one replica "
                 "to fail over to)", id="cache-one-node"),
    pytest.param({"phasekit:cache.nodeType": "t4g.small"},
                 "phasekit:cache.nodeType: 't4g.small' is not an ElastiCache node type; allowed: an ElastiCache "
                 "node type, e.g. cache.t4g.small or cache.r7g.large", id="cache-node-type"),
    pytest.param({"phasekit:cache.engine": "memcached"},
                 "phasekit:cache.engine: 'memcached' is not a cache engine; allowed: valkey or redis",
                 id="cache-memcached"),
    pytest.param({"phasekit:database.backupRetentionDays": 3},
                 "phasekit:database.backupRetentionDays: 3 is out of range; allowed: 7..35", id="retention-3"),
    pytest.param({"phasekit:database.instanceClass": "db.t4g.mediun"},
                 "phasekit:database.instanceClass: 'db.t4g.mediun' is not an RDS instance class; allowed: an RDS "
                 "instance class from pulumi_aws.rds.InstanceType, e.g. db.t4g.medium (did you mean "
                 "'db.t4g.medium'?)", id="instance-class-unknown-to-the-sdk"),
    pytest.param({"phasekit:database.maxStorageGib": 20},
                 "phasekit:database.maxStorageGib: 20 is out of range; allowed: 21..65536", id="max-storage"),
    pytest.param({"phasekit:database.readReplicas": 6},
                 "phasekit:database.readReplicas: 6 is out of range; allowed: 0..5", id="replicas-6"),
    pytest.param({"phasekit:cluster.version": 1.3},
                 f"phasekit:cluster.version: 1.3 is a number; allowed: {VERSIONS}, since YAML reads 1.30 as 1.3",
                 id="version-unquoted"),
    pytest.param({"phasekit:cluster.version": "1.29"},
                 f"phasekit:cluster.version: '1.29' is not a supported EKS version; allowed: {VERSIONS}",
                 id="version-old"),
    pytest.param({"phasekit:loadBalancer": {"accessLogRetentionDays": 0}},
                 "phasekit:loadBalancer.accessLogRetentionDays: 0 is out of range; allowed: 1..3650",
                 id="access-log-days-0"),
    pytest.param({"phasekit:loadBalancer": {"accessLogRetentionDays": 3651}},
                 "phasekit:loadBalancer.accessLogRetentionDays: 3651 is out of range; allowed: 1..3650",
                 id="access-log-days-3651"),
    pytest.param({"phasekit:loadBalancer": {"accessLogRetentionDays": "90 days"}},
                 "phasekit:loadBalancer.accessLogRetentionDays: '90 days' is not an integer; allowed: 1..3650",
                 id="access-log-days-text"),
    pytest.param({"phasekit:cluster.containerLogs": "maybe"},
                 "phasekit:cluster.containerLogs: 'maybe' is not true or false; allowed: true or false",
                 id="container-logs-not-a-switch"),
    pytest.param({"phasekit:cluster.containerLogs": None},
                 "phasekit:cluster.containerLogs: null is not true or false; allowed: true or false",
                 id="container-logs-null"),
    pytest.param({"phasekit:cluster.containerLog": True},
                 "phasekit:cluster.containerLog: unknown key; allowed: adminPrincipalArns, "
                 "apiAccessSecurityGroupIds, containerLogs, endpointPublicAccessCidrs, nodeGroup, supportType, "
                 "version (did you mean 'containerLogs'?)",
                 id="container-logs-misspelt"),
    pytest.param({"phasekit:loadBalancer": {"accessLogs": "sometimes"}},
                 "phasekit:loadBalancer.accessLogs: 'sometimes' is not true or false; allowed: true or false",
                 id="access-logs-not-a-bool"),
    pytest.param({"phasekit:loadBalancer": {"accessLog": True}},
                 "phasekit:loadBalancer.accessLog: unknown key; allowed: accessLogRetentionDays, accessLogs (did "
                 "you mean 'accessLogs'?)", id="access-logs-misspelt"),
    pytest.param({"phasekit:workload.writablePaths": ["/tmp", "var/cache"]},
                 "phasekit:workload.writablePaths[1]: 'var/cache' is not a directory the pod can mount; allowed: "
                 + WRITABLE_ALLOWED,
                 id="writable-path-relative"),
    pytest.param({"phasekit:workload.writablePaths": ["/"]},
                 "phasekit:workload.writablePaths[0]: '/' is not a directory the pod can mount; allowed: "
                 + WRITABLE_ALLOWED,
                 id="writable-path-root"),
    pytest.param({"phasekit:workload.writablePaths": ["/app/../etc"]},
                 "phasekit:workload.writablePaths[0]: '/app/../etc' is not a directory the pod can mount; allowed: "
                 + WRITABLE_ALLOWED, id="writable-path-dotdot"),
    *(pytest.param({"phasekit:workload.writablePaths": ["/tmp", path]},
                   f"phasekit:workload.writablePaths[1]: {path!r} is not a directory the pod can mount; allowed: "
                   + WRITABLE_ALLOWED, id=f"writable-path-{path}")
      for path in ("/proc", "/proc/sys", "/sys/fs/cgroup", "/dev", "/dev/mqueue", "/./tmp", "/var/./cache")),
    pytest.param({"phasekit:workload.writablePaths": ["/tmp", "/tmp"]},
                 "phasekit:workload.writablePaths[1]: '/tmp' is listed twice; allowed: each path once",
                 id="writable-path-twice"),
    pytest.param({"phasekit:workload.runAsUser": 0},
                 "phasekit:workload.runAsUser: 0 is out of range; allowed: 1..2147483647 (pods never run as root)",
                 id="run-as-root"),
    pytest.param({"phasekit:cluster.supportType": "standard"},
                 "phasekit:cluster.supportType: 'standard' is not an EKS support type; allowed: STANDARD or EXTENDED",
                 id="support-type-lowercase"),
    pytest.param({"phasekit:cluster.supportType": None},
                 "phasekit:cluster.supportType: null is not an EKS support type; allowed: STANDARD or EXTENDED",
                 id="support-type-null"),
    pytest.param({"phasekit:cluster.nodeGroup.trackLatestAmi": "yes"},
                 "phasekit:cluster.nodeGroup.trackLatestAmi: 'yes' is not true or false; allowed: true or false",
                 id="track-latest-ami-yes"),
    pytest.param({"phasekit:cluster.nodeGroup.trackLatestAmi": None},
                 "phasekit:cluster.nodeGroup.trackLatestAmi: null is not true or false; allowed: true or false",
                 id="track-latest-ami-null"),
    pytest.param({"phasekit:cluster.apiAccessSecurityGroupIds": ["sg-12345"]},
                 f"phasekit:cluster.apiAccessSecurityGroupIds[0]: 'sg-12345' is not a security group id; allowed: "
                 f"{SECURITY_GROUPS}", id="api-access-group-too-short"),
    pytest.param({"phasekit:cluster.apiAccessSecurityGroupIds": ["sg-0123456789ABCDEF0"]},
                 f"phasekit:cluster.apiAccessSecurityGroupIds[0]: 'sg-0123456789ABCDEF0' is not a security group "
                 f"id; allowed: {SECURITY_GROUPS}", id="api-access-group-upper-case"),
    pytest.param({"phasekit:cluster.apiAccessSecurityGroupIds": ["sg-0123456789abcdef01"]},
                 f"phasekit:cluster.apiAccessSecurityGroupIds[0]: 'sg-0123456789abcdef01' is not a security group "
                 f"id; allowed: {SECURITY_GROUPS}", id="api-access-group-too-long"),
    pytest.param({"phasekit:cluster.apiAccessSecurityGroupIds": ["vpc-0123456789abcdef0"]},
                 f"phasekit:cluster.apiAccessSecurityGroupIds[0]: 'vpc-0123456789abcdef0' is not a security group "
                 f"id; allowed: {SECURITY_GROUPS}", id="api-access-group-a-vpc"),
    pytest.param({"phasekit:cluster.apiAccessSecurityGroupIds": ["sg-0123456789abcdef0", "sg-0123456789abcdef0"]},
                 "phasekit:cluster.apiAccessSecurityGroupIds[1]: 'sg-0123456789abcdef0' is listed twice; allowed: "
                 "each security group once (its rule is named after it)", id="api-access-group-twice"),
    pytest.param({"phasekit:cluster.apiAccessSecurityGroupIds": "sg-0123456789abcdef0"},
                 "phasekit:cluster.apiAccessSecurityGroupIds: 'sg-0123456789abcdef0' is not a list; allowed: "
                 "security group ids of a CI runner or bastion inside the VPC, e.g. [sg-0123456789abcdef0], or []",
                 id="api-access-group-not-a-list"),
    pytest.param({"phasekit:database.engineLifecycleSupport": "disabled"},
                 "phasekit:database.engineLifecycleSupport: 'disabled' is not an RDS lifecycle support type; "
                 "allowed: open-source-rds-extended-support-disabled or open-source-rds-extended-support",
                 id="rds-lifecycle-unknown"),
    pytest.param({"phasekit:cluster.endpointPublicAccessCidrs": ["0.0.0.0/0"]},
                 "phasekit:cluster.endpointPublicAccessCidrs[0]: '0.0.0.0/0' opens the Kubernetes API to the whole "
                 "internet; allowed: the networks you administer from, e.g. 203.0.113.0/24, or [] for a "
                 "private-only endpoint", id="api-open-to-the-world"),
    pytest.param({"phasekit:cluster.adminPrincipalArns": []},
                 "phasekit:cluster.adminPrincipalArns: [] is empty; allowed: one or more IAM role or user ARNs, "
                 "including the one that runs pulumi up", id="no-admins"),
    pytest.param({"phasekit:cluster.adminPrincipalArns": ["arn:aws:sts::123456789012:assumed-role/admin/me"]},
                 "phasekit:cluster.adminPrincipalArns[0]: 'arn:aws:sts::123456789012:assumed-role/admin/me' is "
                 "not an IAM role or user ARN (an assumed-role session; use the role's "
                 "arn:aws:iam::<account>:role/<name>); allowed: an IAM role or user ARN, e.g. "
                 "arn:aws:iam::123456789012:role/platform-admin", id="admin-session-arn"),
    pytest.param({"phasekit:cluster.nodeGroup.desiredSize": 5},
                 "phasekit:cluster.nodeGroup.desiredSize: 5 is above maxSize 4; allowed: minSize <= desiredSize "
                 "<= maxSize", id="desired-above-max"),
    pytest.param({"phasekit:cluster.nodeGroup.instanceTypes": ["t3.lagre"]},
                 "phasekit:cluster.nodeGroup.instanceTypes[0]: 't3.lagre' is not an EC2 instance type; allowed: "
                 "an EC2 instance type from pulumi_aws.ec2.InstanceType, e.g. t3.large (did you mean "
                 "'t3.large'?)", id="instance-type-typo"),
    pytest.param({"phasekit:edge.proxied": False},
                 "phasekit:edge.proxied: false is not supported in phase 3: the load balancer presents a "
                 "Cloudflare Origin CA certificate, which only Cloudflare's proxy trusts; allowed: true",
                 id="unproxied"),
    pytest.param({"phasekit:database.instanceClass": "db.t4g.small"},
                 "phasekit:database.instanceClass: 'db.t4g.small' is too small for Performance Insights, which "
                 "phasekit keeps on; allowed: a medium or larger class, e.g. db.t4g.medium", id="class-too-small"),
    pytest.param({"phasekit:app.port": 80},
                 "phasekit:app.port: 80 is a privileged port; allowed: 1024..65535 in phase 3 (pods run as "
                 "non-root with every capability dropped, so they cannot bind below 1024)", id="privileged-port"),
    pytest.param({"phasekit:cluster.nodeGroup.instanceTypes": ["t3.large", "m7g.large"]},
                 "phasekit:cluster.nodeGroup.instanceTypes: ['t3.large', 'm7g.large'] mixes Graviton (ARM) and x86 "
                 "types; allowed: types of one architecture (one node group runs one AMI)", id="mixed-architectures"),
    pytest.param({"phasekit:cluster.adminPrincipalArns": ["arn:aws:iam::123456789012:role/admin",
                                                          "arn:aws:iam::210987654321:role/admin"]},
                 "phasekit:cluster.adminPrincipalArns[1]: 'arn:aws:iam::210987654321:role/admin' has the same IAM "
                 "role name as adminPrincipalArns[0]; allowed: each role or user once (its access entry is named after "
                 "it)", id="admin-twice"),
    pytest.param({"phasekit:alertEmails": DELETE},
                 "phasekit:alertEmails: missing; allowed: one or more e-mail addresses, e.g. [ops@example.com]",
                 id="no-alert-emails"),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_PHASE3_CONFIGS)
def test_bad_phase3_config_is_refused_with_one_exact_line(changes: Mapping[str, object], expected: str) -> None:
    assert error_message(edited(changes)) == expected


MORE_BAD_PHASE3_CONFIGS = [
    pytest.param({"phasekit:alertEmails": ["ops@example.com", "OPS@example.com"]},
                 "phasekit:alertEmails[1]: 'OPS@example.com' is the same subscription as alertEmails[0]; allowed: "
                 "each address once (case, dots and dashes aside)", id="alert-email-twice"),
    pytest.param({"phasekit:aws.vpcCidr": "198.18.0.0/16"},
                 "phasekit:aws.vpcCidr: '198.18.0.0/16' is not a private IPv4 /16../20 network; allowed: a /16 to "
                 "/20 inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, e.g. 10.20.0.0/16",
                 id="vpc-cidr-special-purpose"),
    pytest.param({"phasekit:workload.maxReplicas": 100, "phasekit:app.workers": 64, "phasekit:app.dbPoolSize": 50},
                 "phasekit:workload.maxReplicas: (100 pods at the HPA maximum + 25 surge) x 64 workers x pool 50 + "
                 "1 release Job x pool 50 + 5 operator, +25% headroom, + 5 reserved superuser slots = 500080 "
                 "connections; allowed: at most 262143 (PostgreSQL's limit; put fewer connections per pod)",
                 id="connection-demand-beyond-postgres"),
    pytest.param({"phasekit:workload.maxReplicas": 30},
                 "phasekit:workload.maxReplicas: 30 pods + 8 rollout surge of 250m CPU and 512Mi need 38 pods; "
                 "allowed: at most 26, what 4 x t3.large (cluster.nodeGroup.maxSize) hold after the kubelet's "
                 "reservations and the add-ons (raise maxSize, choose a larger type or request less)",
                 id="hpa-maximum-beyond-the-nodes"),
    pytest.param({"phasekit:workload.maxReplicas": 12, "phasekit:workload.memoryRequest": "2Gi",
                  "phasekit:workload.memoryLimit": "2Gi", "phasekit:cluster.nodeGroup.maxSize": 2},
                 "phasekit:workload.maxReplicas: 12 pods + 3 rollout surge of 250m CPU and 2Gi need 15 pods; "
                 "allowed: at most 5, what 2 x t3.large (cluster.nodeGroup.maxSize) hold after the kubelet's "
                 "reservations and the add-ons (raise maxSize, choose a larger type or request less)",
                 id="memory-beyond-the-nodes"),
    pytest.param({"phasekit:workload.maxReplicas": 20,
                  "phasekit:cluster.nodeGroup.instanceTypes": ["t3.medium", "t3.large"]},
                 "phasekit:workload.maxReplicas: 20 pods + 5 rollout surge of 250m CPU and 512Mi need 25 pods; "
                 "allowed: at most 21, what 4 x t3.medium (cluster.nodeGroup.maxSize) hold after the kubelet's "
                 "reservations and the add-ons (raise maxSize, choose a larger type or request less)",
                 id="smallest-type-decides"),
    pytest.param({"phasekit:cluster.adminPrincipalArns": ["arn:aws:iam::123456789012:role/admins/"]},
                 "phasekit:cluster.adminPrincipalArns[0]: 'arn:aws:iam::123456789012:role/admins/' is not an IAM "
                 "role or user ARN; allowed: an IAM role or user ARN, e.g. arn:aws:iam::123456789012:role/"
                 "platform-admin", id="admin-arn-trailing-slash"),
    pytest.param({"phasekit:app.healthPath": "/" + "a" * 1100},
                 "phasekit:app.healthPath: '/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'... is 1101 characters long; "
                 "allowed: an absolute URL path without spaces, e.g. /healthz, at most 1024 characters (the load "
                 "balancers' limit)", id="health-path-too-long"),
]


@pytest.mark.parametrize(("changes", "expected"), MORE_BAD_PHASE3_CONFIGS)
def test_values_a_component_would_refuse_are_refused_by_the_config(changes, expected):
    """Each of these once passed the config and then failed inside a component with a traceback."""
    assert error_message(edited(changes)) == expected


def test_an_admin_arn_with_a_path_is_accepted():
    config = load_config(edited({"phasekit:cluster.adminPrincipalArns": ["arn:aws:iam::123456789012:role/team/ops"]}))
    assert config.cluster.admin_principal_arns == ("arn:aws:iam::123456789012:role/team/ops",)


# --- Processes and schedules (app.processes, app.schedules) -------------------------------------------


def test_connection_demand_counts_process_pods_and_one_pool_per_schedule():
    # The committed stack's 45, + the worker's (4 + 1 surge) pods x pool 5 = 25, + 2 schedules x pool 5 = 10.
    demand = load_config(with_processes(PHASE3, maxCount=4)).connection_demand
    assert (demand.app_connections, demand.max_connections) == (80, 120)
    # Without maxCount the worker's most replicas are its count (2, + 1 surge).
    assert load_config(with_processes(PHASE3)).connection_demand.app_connections == 45 + 15 + 10


def test_processes_that_just_fit_the_nodes_are_accepted():
    # 4 x t3.large hold 26 pods of 250m (CPU decides): 8 web + (12 + 3) workers + 2 schedule pods = 25.
    assert load_config(with_processes(PHASE3, maxCount=12)).app.processes["worker"].max_count == 12


CONNECTIONS_PAST_POSTGRES = {"phasekit:workload.maxReplicas": 100, "phasekit:app.workers": 33,
                             "phasekit:app.dbPoolSize": 50, "phasekit:cluster.nodeGroup.instanceTypes": ["m5a.large"]}
"""The web pods alone fit PostgreSQL (257890 connections; m5a.large's capacity is unknown, so no node check)."""

BAD_PROCESS_CONFIGS = [
    pytest.param(
        with_processes(PHASE3, maxCount=13),
        "phasekit:app.processes: 8 web pods of 250m CPU and 512Mi, 17 worker pods (13 + 4 surge) of 250m CPU and "
        "768Mi, 1 refresh-trending pod of 250m CPU and 512Mi, 1 expire-sessions pod of 250m CPU and 512Mi need 27 "
        "pods, and placed largest first they leave 1 without room on 4 x t3.large (cluster.nodeGroup.maxSize) after "
        "the kubelet's reservations and the add-ons; allowed: what those nodes hold (raise maxSize, choose a larger "
        "type, or give processes fewer replicas or smaller requests)",
        id="processes-beyond-the-nodes"),
    pytest.param(
        # Per t3.large 1775m; the first node 1255m after the add-ons: 2 workers of 1 CPU fit, the third and 6 of
        # the 10 small pods do not.
        with_processes(edited({"phasekit:cluster.nodeGroup.maxSize": 2}), cpu="1", memory="4Gi"),
        "phasekit:app.processes: 8 web pods of 250m CPU and 512Mi, 3 worker pods (2 + 1 surge) of 1 CPU and "
        "4096Mi, 1 refresh-trending pod of 250m CPU and 512Mi, 1 expire-sessions pod of 250m CPU and 512Mi need 13 "
        "pods, and placed largest first they leave 7 without room on 2 x t3.large (cluster.nodeGroup.maxSize) after "
        "the kubelet's reservations and the add-ons; allowed: what those nodes hold (raise maxSize, choose a larger "
        "type, or give processes fewer replicas or smaller requests)",
        id="process-memory-beyond-the-nodes"),
    pytest.param(
        with_processes(edited(CONNECTIONS_PAST_POSTGRES), count=50, maxCount=100),
        "phasekit:workload.maxReplicas: (100 pods at the HPA maximum + 25 surge) x 33 workers x pool 50 + 1 release "
        "Job x pool 50 + (100 process pods at their maximum + 25 surge) x pool 50 + 2 schedule pods x pool 50 + 5 "
        "operator, +25% headroom, + 5 reserved superuser slots = 265830 connections; allowed: at most 262143 "
        "(PostgreSQL's limit; put fewer connections per pod or run fewer process replicas)",
        id="process-connections-beyond-postgres"),
]


@pytest.mark.parametrize(("raw", "expected"), BAD_PROCESS_CONFIGS)
def test_processes_the_cluster_or_postgres_cannot_hold_are_refused_with_one_exact_line(raw, expected):
    assert error_message(raw) == expected


def test_the_web_pods_alone_fit_postgres_in_the_connection_row():
    assert load_config(edited(CONNECTIONS_PAST_POSTGRES)).connection_demand.max_connections == 257890
