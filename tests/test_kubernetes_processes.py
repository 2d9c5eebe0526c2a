"""KubernetesApp's processes and schedules (components/kubernetes_processes.py) under the recording mock monitor,
every object checked against the real Kubernetes API schemas of each EKS version phasekit deploys; the connection
and node-fit arithmetic they add (components/tuning.py); and the rollout timing relation with the load balancer.

Mocks and schemas cannot prove: that the CronJob controller skips a tick under Forbid and honours the starting
deadline as documented, that the HPA gets metrics, that a worker finishes its job within its grace period, that
pulumi-kubernetes really waits for the release Job before creating the Deployments and CronJobs (the dependency is
recorded here; the await is the provider's), or that the scheduler places pods where first-fit does. A real
``pulumi up`` on a cluster shows those.
"""

from __future__ import annotations

from dataclasses import replace

import pulumi
import pytest

from components import aws_choices
from components.aws_choices import ALB_DEREGISTRATION_DELAY_SECONDS, node_rooms
from components.kubernetes_app import PRE_STOP_SLEEP_SECONDS, check_args
from components.kubernetes_processes import (
    CRONJOB_STARTING_DEADLINE_SECONDS,
    process_resources,
)
from components.processes import ProcessSpec, ScheduleSpec
from components.tuning import kubernetes_connection_demand, pods_left_over
from infra.domain import EKS_VERSIONS
from tests import k8s_schema
from tests.builders import SCHEDULES, WORKER
from tests.test_kubernetes_app import (
    APP,
    ENV_SECRET_NAME,
    HPA,
    JOB,
    LABELS,
    NETPOL,
    PRIVATE_APP,
    REGISTRY_SECRET_NAME,
    app_args,
    pod_spec,
    record,
)

CRONJOB = "kubernetes:batch/v1:CronJob"
WORKER_SELECTOR = {"app.kubernetes.io/name": "web", "app.kubernetes.io/component": "worker"}
AUTOSCALED = replace(WORKER, max_count=4)
WITH_PROCESSES = replace(APP, processes=(AUTOSCALED,), schedules=SCHEDULES)
META = {"namespace": "shop", "labels": LABELS}


def by_name(recording, type_token: str) -> dict:
    return {resource.name: resource for resource in recording.of_type(type_token)}


def security_and_volumes(args: list[str], requests: dict[str, str], limits: dict[str, str]) -> dict:
    """The container every app pod shares, with its own args and resources."""
    return {
        "name": "app",
        "image": "ghcr.io/acme/shop:1.4.2",
        "args": args,
        "envFrom": [{"secretRef": {"name": ENV_SECRET_NAME}}],
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"}}


def spread(selector: dict[str, str]) -> list[dict]:
    return [{"topologyKey": key, "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": selector}, "matchLabelKeys": ["pod-template-hash"]}
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")]


# --- Objects, exactly ---------------------------------------------------------------------------------


def test_a_process_is_a_deployment_with_the_web_pods_parts_its_own_command_resources_and_grace():
    deployment = record(app=WITH_PROCESSES).named("web-worker-deployment")
    manifest = k8s_schema._integral_numbers(deployment.inputs)
    assert manifest == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-worker", **META},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": WORKER_SELECTOR},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {**LABELS, **WORKER_SELECTOR}},
                "spec": {
                    "containers": [security_and_volumes(["celery", "-A", "shop", "worker"],
                                                        {"cpu": "250m", "memory": "768Mi"}, {"memory": "768Mi"})],
                    "securityContext": POD_SECURITY,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                    "terminationGracePeriodSeconds": 60,
                    "topologySpreadConstraints": spread(WORKER_SELECTOR),
                },
            },
        },
    }
    # No ports, no probes, no lifecycle hook: nothing routes to a worker.
    assert deployment.ignore_changes == ("spec.replicas",)


def test_with_max_count_an_hpa_owns_the_replicas():
    recording = record(app=WITH_PROCESSES)
    assert set(by_name(recording, HPA)) == {"web-hpa", "web-worker-hpa"}
    assert k8s_schema._integral_numbers(recording.named("web-worker-hpa").inputs) == {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web-worker", **META},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-worker"},
            "minReplicas": 2, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }


def test_without_max_count_there_is_no_hpa_and_pulumi_owns_the_replicas():
    recording = record(app=replace(APP, processes=(WORKER,)))
    assert set(by_name(recording, HPA)) == {"web-hpa"}
    deployment = recording.named("web-worker-deployment")
    assert deployment.ignore_changes == ()
    assert deployment.inputs["spec"]["replicas"] == 2


def test_a_process_has_a_disruption_budget_of_one_pod():
    assert k8s_schema._integral_numbers(record(app=WITH_PROCESSES).named("web-worker-pdb").inputs) == {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web-worker", **META},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": WORKER_SELECTOR},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    }


def test_a_schedule_is_a_cronjob_that_never_overlaps_and_never_retries():
    recording = record(app=WITH_PROCESSES)
    assert set(by_name(recording, CRONJOB)) == {"web-refresh-trending-cronjob", "web-expire-sessions-cronjob"}
    selector = {"app.kubernetes.io/name": "web", "app.kubernetes.io/component": "refresh-trending"}
    assert k8s_schema._integral_numbers(recording.named("web-refresh-trending-cronjob").inputs) == {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "web-refresh-trending", **META},
        "spec": {
            "schedule": "*/15 * * * *",
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 60,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "backoffLimit": 0,
                    # an evicted pod (drain, scale-in) is replaced rather than failing the tick
                    "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [
                        {"type": "DisruptionTarget", "status": "True"}]}]},
                    "activeDeadlineSeconds": 600,
                    "template": {
                        "metadata": {"labels": {**LABELS, **selector}},
                        "spec": {
                            "containers": [security_and_volumes(
                                ["python", "manage.py", "refresh_trending"],
                                {"cpu": "250m", "memory": "512Mi"}, {"memory": "512Mi"})],
                            "securityContext": POD_SECURITY,
                            "automountServiceAccountToken": False,
                            "enableServiceLinks": False,
                            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                            "restartPolicy": "Never",
                        },
                    },
                },
            },
        },
    }
    expire = recording.named("web-expire-sessions-cronjob").inputs["spec"]
    assert (expire["schedule"], expire["jobTemplate"]["spec"]["activeDeadlineSeconds"]) == ("30 4 * * *", 3600)


def test_private_registry_pods_pull_with_the_pull_secret():
    recording = record(app=replace(PRIVATE_APP, processes=(WORKER,), schedules=SCHEDULES[:1]),
                       registry_password=pulumi.Output.secret("ghp_token"))
    worker = recording.named("web-worker-deployment").inputs["spec"]["template"]["spec"]
    cron = recording.named("web-refresh-trending-cronjob").inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert worker["imagePullSecrets"] == cron["imagePullSecrets"] == [{"name": REGISTRY_SECRET_NAME}]


def test_the_starting_deadline_is_above_the_controllers_reaction_time():
    # The CronJob controller may take up to 10 s to notice a tick; a deadline below that can skip every run.
    assert 10 < CRONJOB_STARTING_DEADLINE_SECONDS <= 60


def test_process_resources_never_limit_cpu():
    resources = process_resources(ProcessSpec(name="w", command=("x",), cpu="2", memory_mib=1024))
    assert (resources.requests, resources.limits) == ({"cpu": "2", "memory": "1024Mi"}, {"memory": "1024Mi"})


# --- Order and network --------------------------------------------------------------------------------


def test_nothing_of_a_new_version_starts_before_the_release_job_and_the_policies():
    recording = record(app=WITH_PROCESSES)
    release, policies = recording.one(JOB).urn, {policy.urn for policy in recording.of_type(NETPOL)}
    waiting = [recording.named(name) for name in ("web-worker-deployment", "web-refresh-trending-cronjob",
                                                  "web-expire-sessions-cronjob")]
    for resource in waiting:
        assert release in resource.dependencies, resource.name
        assert policies <= set(resource.dependencies), resource.name


def test_without_a_release_command_processes_still_wait_for_the_policies():
    recording = record(app=replace(WITH_PROCESSES, release_command=None))
    policies = {policy.urn for policy in recording.of_type(NETPOL)}
    assert policies <= set(recording.named("web-worker-deployment").dependencies)
    assert recording.of_type(JOB) == []


def test_process_and_schedule_pods_get_egress_and_no_ingress():
    policies = {policy.name: policy.inputs["spec"] for policy in record(app=WITH_PROCESSES,
                                                                         vpc_cidr="10.20.0.0/16").of_type(NETPOL)}
    # default-deny and egress select every pod; the only ingress allow selects the web pods alone.
    assert policies["web-default-deny"]["podSelector"] == policies["web-egress"]["podSelector"] == {}
    assert policies["web-web-ingress"]["podSelector"] == {"matchLabels": {
        "app.kubernetes.io/name": "web", "app.kubernetes.io/component": "web"}}
    assert [sorted(port["port"] for port in rule["ports"]) for rule in policies["web-egress"]["egress"]] == [
        [53, 53], [5432, 6379], [443]]


@pytest.mark.parametrize("version", EKS_VERSIONS)
def test_every_process_and_schedule_object_validates_against_every_eks_version(version):
    rendered = k8s_schema.manifests(record(app=WITH_PROCESSES, vpc_cidr="10.20.0.0/16"))
    names = {(manifest["kind"], manifest["metadata"]["name"]) for manifest in rendered}
    assert {("Deployment", "web-worker"), ("HorizontalPodAutoscaler", "web-worker"),
            ("PodDisruptionBudget", "web-worker"), ("CronJob", "web-refresh-trending"),
            ("CronJob", "web-expire-sessions")} <= names
    assert [error for manifest in rendered for error in k8s_schema.validate(manifest, version)] == []


# --- Rollouts: the web pods' stop fits the load balancer ---------------------------------------------


def test_a_stopping_web_pod_gives_in_flight_requests_the_load_balancers_deregistration_delay():
    # The grace period counts the preStop sleep; after it the app must have as long as the ALB gives in-flight
    # requests on a deregistered node (components/kubernetes_app.py, TERMINATION_GRACE_SECONDS).
    assert (PRE_STOP_SLEEP_SECONDS, ALB_DEREGISTRATION_DELAY_SECONDS) == (5, 30)
    spec = pod_spec(record())
    assert spec["terminationGracePeriodSeconds"] == 35
    [container] = spec["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}


# --- Sizing -------------------------------------------------------------------------------------------


def test_connection_demand_counts_one_pool_per_process_pod_and_per_schedule():
    demand = kubernetes_connection_demand(6, 2, 5, release_job=True, process_replicas=[4, 1], schedules=2)
    # web (6 + 2 surge) x 2 x 5 = 80; release 5; processes (5 + 2 surge) x 5 = 35; schedules 2 x 5 = 10.
    assert (demand.process_pods, demand.process_surge_pods, demand.schedule_pods) == (5, 2, 2)
    assert demand.app_connections == 130
    assert demand.explain() == (
        "(6 pods at the HPA maximum + 2 surge) x 2 workers x pool 5 + 1 release Job x pool 5 + (5 process pods at "
        "their maximum + 2 surge) x pool 5 + 2 schedule pods x pool 5 + 5 operator, +25% headroom, + 5 reserved "
        "superuser slots = 180")


def test_connection_demand_without_processes_is_unchanged():
    demand = kubernetes_connection_demand(6, 2, 5, release_job=True)
    assert demand.app_connections == 85
    assert "process" not in demand.explain() and "schedule" not in demand.explain()


@pytest.mark.parametrize("instance_type", sorted(aws_choices.NODE_SPECS))
@pytest.mark.parametrize("container_logs", [False, True])
def test_first_fit_places_one_shape_exactly_as_pods_that_fit_counts(instance_type, container_logs):
    expected = aws_choices.pods_that_fit(instance_type, 3, 250, 512, container_logs=container_logs)
    rooms = node_rooms(instance_type, 3, container_logs)
    assert pods_left_over(rooms, [(250, 512)] * expected) == 0
    assert pods_left_over(rooms, [(250, 512)] * (expected + 1)) == 1


def test_first_fit_places_mixed_shapes_largest_first():
    # Two nodes of (2000m, 4000 MiB, 10 slots): 3 pods of 1000m/2000 MiB fill one and a half nodes; four
    # 250m/500 MiB pods fit the rest exactly; a fifth does not.
    nodes = [(2000, 4000, 10)] * 2
    assert pods_left_over(nodes, [(250, 500)] * 4 + [(1000, 2000)] * 3) == 0
    assert pods_left_over(nodes, [(250, 500)] * 5 + [(1000, 2000)] * 3) == 1
    assert pods_left_over([(2000, 4000, 1)], [(10, 10)] * 2) == 1


def test_schedule_specs_default_to_the_web_pods_shape():
    assert (ScheduleSpec(name="s", cron="* * * * *", command=("x",)).cpu,
            ScheduleSpec(name="s", cron="* * * * *", command=("x",)).memory_mib) == ("250m", 512)


# --- Names the component refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "app", "message"), [
    ("web", replace(APP, processes=(replace(WORKER, name="web"),)),
     "KubernetesAppArgs.app: process 'web' would share the selector of KubernetesApp's own pods; allowed: a name "
     "other than web, release, database-role"),
    ("web", replace(APP, schedules=(replace(SCHEDULES[0], name="release"),)),
     "KubernetesAppArgs.app: schedule 'release' would share the selector of KubernetesApp's own pods; allowed: a "
     "name other than web, release, database-role"),
    ("web", replace(APP, processes=(WORKER,), schedules=(replace(SCHEDULES[0], name="worker"),)),
     "KubernetesAppArgs.app: schedule 'worker' is named twice; allowed: each process and schedule name once"),
    ("a" * 40, replace(APP, schedules=(replace(SCHEDULES[0], name="refresh-trending"),)),
     f"KubernetesAppArgs.app: schedule 'refresh-trending' gives the CronJob name '{'a' * 40}-refresh-trending' (57 "
     "characters); allowed: at most 52 (a shorter schedule or component name)"),
])
def test_names_that_would_collide_or_not_fit_are_refused(name, app, message):
    with pytest.raises(ValueError) as caught:
        check_args(name, app_args(app=app))
    assert str(caught.value) == message
