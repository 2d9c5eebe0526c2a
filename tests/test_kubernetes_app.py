"""KubernetesApp under the recording mock monitor, plus every object it renders checked against the real
Kubernetes 1.34 API schemas (tests/k8s_schema.py, kubernetes-validate in strict mode).

Mocks and schemas cannot prove: that the API server admits the objects (Pod Security Admission, name and
cross-field validation), that pulumi-kubernetes replaces the auto-named Secret when its data changes (so
pods roll), waits for the Job and leaves spec.replicas to the HPA (ignore_changes is recorded here, its
effect under server-side apply is not), that metrics-server feeds the HPA, or that the image runs under
this security context. A real ``pulumi up`` against a cluster shows those.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pytest

from components.compose_stack import AppSpec
from components.database_role import (
    DatabaseRoleJobArgs,
    app_role_sql,
    fetch_master_secret_command,
    master_credentials_json,
    run_sql_command,
)
from components.kubernetes_app import (
    KubernetesApp,
    KubernetesAppArgs,
    check_tls_urls,
    quantity_value,
    release_job_name,
)
from components.tags import kubernetes_labels
from components.testing import UNKNOWN_MASK, run_recorded
from infra.domain import EKS_VERSIONS
from tests import k8s_schema

COMPONENT = "phasekit:index:KubernetesApp"
PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

TAGS = {"project": "phasekit", "stack": "test", "phase": "3", "managed-by": "phasekit"}
LABELS = kubernetes_labels(TAGS)
DATABASE_URL = "postgresql://app:p%40ss@shop.abc.us-east-1.rds.amazonaws.com:5432/app?sslmode=verify-full"
REDIS_URL = "rediss://:r3dis@master.shop.abc.use1.cache.amazonaws.com:6379/0"
APP = AppSpec(
    image="ghcr.io/acme/shop:1.4.2",
    port=8000,
    health_path="/healthz",
    workers=2,
    db_pool_size=5,
    env={"LOG_LEVEL": "info", "PORT": "9999"},
    secret_env_names=("SECRET_KEY_BASE",),
    release_command=("python", "manage.py", "migrate"),
)
PRIVATE_APP = replace(APP, registry_server="ghcr.io", registry_username="acme-bot")
WEB_SELECTOR = {"app.kubernetes.io/name": "web", "app.kubernetes.io/component": "web"}
RELEASE_SELECTOR = {"app.kubernetes.io/name": "web", "app.kubernetes.io/component": "release"}


def fake_autoname(logical_name: str) -> str:
    """The name the harness gives an auto-named Secret (pulumi-kubernetes appends 8 random characters)."""
    return f"{logical_name}-{hashlib.sha256(logical_name.encode()).hexdigest()[:8]}"


ENV_SECRET_NAME = fake_autoname("web-env")
REGISTRY_SECRET_NAME = fake_autoname("web-registry")


def app_args(**overrides: Any) -> KubernetesAppArgs:
    args = KubernetesAppArgs(
        app=APP,
        namespace="shop",
        database_url=pulumi.Output.secret(DATABASE_URL),
        redis_url=pulumi.Output.secret(REDIS_URL),
        media_bucket="phasekit-test-media",
        secret_env={"SECRET_KEY_BASE": pulumi.Output.secret("s3cr3t-base")},
        labels=LABELS,
    )
    return replace(args, **overrides)


def record(preview: bool = False, provider_option: str = "provider", **overrides: Any):
    """One fresh run: a kubernetes Provider and the component deployed through it, outputs exported."""
    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        options = {"provider": pulumi.ResourceOptions(provider=provider),
                   "providers": pulumi.ResourceOptions(providers=[provider])}[provider_option]
        app = KubernetesApp("web", app_args(**overrides), opts=options)
        for output in ("namespace", "deployment_name", "service_name", "node_port", "release_job_name"):
            pulumi.export(output, getattr(app, output))
    return run_recorded(program, preview=preview)


def pod_spec(recording, type_token: str = DEPLOYMENT) -> dict:
    return recording.one(type_token).inputs["spec"]["template"]["spec"]


def app_container(recording, type_token: str = DEPLOYMENT) -> dict:
    [container] = pod_spec(recording, type_token)["containers"]
    return container


# --- Topology, providers, names ---------------------------------------------------------------------


def test_children_are_exactly_the_app_objects():
    recording = record(app=PRIVATE_APP, registry_password=pulumi.Output.secret("ghp_token"))
    assert recording.type_counts() == {
        PROVIDER: 1, COMPONENT: 1, NAMESPACE: 1, SECRET: 2, JOB: 1, DEPLOYMENT: 1, SERVICE: 1, HPA: 1, PDB: 1,
        NETPOL: 3,
    }
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource.type not in (COMPONENT, PROVIDER)]
    assert {child.parent for child in children} == {component.urn}
    assert sorted(child.name for child in children) == [
        "web-default-deny", "web-deployment", "web-egress", "web-env", "web-hpa", "web-namespace", "web-pdb",
        "web-registry", "web-release", "web-service", "web-web-ingress",
    ]
    # Nothing here holds data: no child is protected or retained.
    assert {(child.protect, child.retain_on_delete) for child in children} == {(False, False)}


def test_without_release_command_or_registry_only_the_core_objects():
    recording = record(app=replace(APP, release_command=None))
    assert recording.type_counts() == {
        PROVIDER: 1, COMPONENT: 1, NAMESPACE: 1, SECRET: 1, DEPLOYMENT: 1, SERVICE: 1, HPA: 1, PDB: 1,
        NETPOL: 3,
    }
    assert recording.outputs["release_job_name"] is None
    assert "imagePullSecrets" not in pod_spec(recording)


@pytest.mark.parametrize("provider_option", ["provider", "providers"])
def test_every_child_uses_the_callers_kubernetes_provider(provider_option):
    recording = record(provider_option=provider_option)
    provider = recording.one(PROVIDER)
    children = [resource for resource in recording.resources if resource.type not in (COMPONENT, PROVIDER)]
    assert len(children) == 10
    assert {child.provider for child in children} == {f"{provider.urn}::{provider.id}"}


def test_logical_identities_are_pinned():
    # A changed URN replaces the object; for the namespace that deletes everything in it.
    recording = record()
    prefix = "urn:pulumi:test::phasekit::phasekit:index:KubernetesApp$"
    assert recording.one(NAMESPACE).urn == f"{prefix}kubernetes:core/v1:Namespace::web-namespace"
    assert recording.one(DEPLOYMENT).urn == f"{prefix}kubernetes:apps/v1:Deployment::web-deployment"
    assert recording.one(SERVICE).urn == f"{prefix}kubernetes:core/v1:Service::web-service"


def test_outputs_are_the_names_the_caller_wires():
    recording = record()
    assert recording.outputs == {
        "namespace": "shop",
        "deployment_name": "web",
        "service_name": "web",
        "node_port": 30080,
        "release_job_name": release_job_name("web", APP.image, APP.release_command, expected_environment()),
    }
    # The job name hashes secret values but is itself no secret (a truncated SHA-256).
    assert recording.secret_outputs == frozenset()


# --- Namespace, Secret, image pull Secret -------------------------------------------------------------


def test_namespace_enforces_the_restricted_pod_security_standard():
    assert record().one(NAMESPACE).inputs == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {
            **LABELS,
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/audit-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/warn-version": "latest",
        }},
    }


def expected_environment(**changes: str) -> dict[str, str]:
    return {
        "LOG_LEVEL": "info",
        "SECRET_KEY_BASE": "s3cr3t-base",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "PORT": "8000",  # the contract wins over app.env's PORT
        "WEB_CONCURRENCY": "2",
        "MEDIA_BUCKET": "phasekit-test-media",
        **changes,
    }


def test_environment_secret_holds_exactly_the_contract_and_stays_secret():
    secret = record().named("web-env")
    assert secret.inputs == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"namespace": "shop", "labels": LABELS},  # no name: auto-named, so new data, new name
        "stringData": expected_environment(),
    }
    assert secret.secret_inputs == {"stringData"}


def test_secrets_stay_secret_even_when_every_value_arrives_plain():
    recording = record(app=PRIVATE_APP, registry_password="plain-token", database_url=DATABASE_URL,
                       redis_url=REDIS_URL, secret_env={"SECRET_KEY_BASE": "s3cr3t-base"})
    assert recording.named("web-env").secret_inputs == {"stringData"}
    assert recording.named("web-env").inputs["stringData"] == expected_environment()
    assert recording.named("web-registry").secret_inputs == {"stringData"}


def test_pods_read_the_environment_secret_through_env_from():
    recording = record()
    for type_token in (DEPLOYMENT, JOB):
        container = app_container(recording, type_token)
        assert container["envFrom"] == [{"secretRef": {"name": ENV_SECRET_NAME}}]
        assert "env" not in container


def test_registry_credentials_become_a_secret_image_pull_secret():
    recording = record(app=PRIVATE_APP, registry_password=pulumi.Output.secret("ghp_token"))
    pull_secret = recording.named("web-registry")
    auth = base64.b64encode(b"acme-bot:ghp_token").decode()
    assert pull_secret.inputs == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"namespace": "shop", "labels": LABELS},
        "stringData": {".dockerconfigjson": json.dumps({"auths": {"ghcr.io": {"auth": auth}}}, indent=2) + "\n"},
    }
    assert pull_secret.secret_inputs == {"stringData"}
    assert json.loads(pull_secret.inputs["stringData"][".dockerconfigjson"]) == {"auths": {"ghcr.io": {"auth": auth}}}
    for type_token in (DEPLOYMENT, JOB):
        assert pod_spec(recording, type_token)["imagePullSecrets"] == [{"name": REGISTRY_SECRET_NAME}]


# --- Pods ---------------------------------------------------------------------------------------------

POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


@pytest.mark.parametrize("type_token", [DEPLOYMENT, JOB])
def test_pods_run_restricted_with_a_writable_tmp_only(type_token):
    recording = record()
    spec, container = pod_spec(recording, type_token), app_container(recording, type_token)
    assert spec["securityContext"] == POD_SECURITY_CONTEXT
    assert container["securityContext"] == CONTAINER_SECURITY_CONTEXT
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}


@pytest.mark.parametrize("type_token", [DEPLOYMENT, JOB])
def test_each_writable_path_gets_its_own_empty_dir(type_token):
    # Common images write outside /tmp (nginx: /var/cache/nginx, /var/run); the root stays read-only.
    recording = record(writable_paths=("/tmp", "/var/cache/nginx", "/var/run"))
    spec, container = pod_spec(recording, type_token), app_container(recording, type_token)
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                               {"name": "writable-2", "emptyDir": {"sizeLimit": "1Gi"}},
                               {"name": "writable-3", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"},
                                         {"name": "writable-2", "mountPath": "/var/cache/nginx"},
                                         {"name": "writable-3", "mountPath": "/var/run"}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_dev_shm_is_the_one_runtime_path_an_empty_dir_may_cover():
    # The runtime's /dev/shm tmpfs is 64 MiB; browsers and some databases need more shared memory.
    recording = record(writable_paths=("/tmp", "/dev/shm"))
    assert app_container(recording)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"},
                                                        {"name": "writable-2", "mountPath": "/dev/shm"}]
    assert pod_spec(recording)["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                                              {"name": "writable-2", "emptyDir": {"medium": "Memory",
                                                                                  "sizeLimit": "1Gi"}}]


def test_run_as_user_sets_uid_gid_and_fs_group():
    assert pod_spec(record(run_as_user=2000))["securityContext"] == {
        **POD_SECURITY_CONTEXT, "runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 2000}


def test_cpu_limit_only_when_asked():
    container = app_container(record(cpu_limit="1", memory_limit="1Gi"))
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"},
                                      "limits": {"cpu": "1", "memory": "1Gi"}}


def test_deployment_probes_and_graceful_stop():
    container = app_container(record())
    probe = {"httpGet": {"path": "/healthz", "port": "http"}}
    assert container["startupProbe"] == {**probe, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 60}
    assert container["readinessProbe"] == {**probe, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3}
    assert container["livenessProbe"] == {**probe, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6}
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["image"] == "ghcr.io/acme/shop:1.4.2"
    assert pod_spec(record())["terminationGracePeriodSeconds"] == 35  # 5 s preStop sleep + the ALB's 30 s deregistration delay


def test_probes_follow_the_health_check_contract_with_the_public_hostname():
    container = app_container(record(hostname="shop.example.com"))
    contract = {"httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [
        {"name": "Host", "value": "shop.example.com"}, {"name": "X-Forwarded-Proto", "value": "https"}]}}
    assert container["startupProbe"] == {**contract, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 60}
    assert container["readinessProbe"] == {**contract, "periodSeconds": 5, "timeoutSeconds": 2,
                                           "failureThreshold": 3}
    assert container["livenessProbe"] == {**contract, "periodSeconds": 10, "timeoutSeconds": 5,
                                          "failureThreshold": 6}


def test_deployment_rolls_without_losing_capacity_and_leaves_replicas_to_the_hpa():
    deployment = record().one(DEPLOYMENT)
    spec = deployment.inputs["spec"]
    assert deployment.inputs["metadata"] == {"name": "web", "namespace": "shop", "labels": LABELS}
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": WEB_SELECTOR}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
    assert spec["template"]["metadata"] == {"labels": {**LABELS, **WEB_SELECTOR}}
    assert deployment.ignore_changes == ("spec.replicas",)


def spread(key: str) -> dict:
    return {"topologyKey": key, "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": WEB_SELECTOR}, "matchLabelKeys": ["pod-template-hash"]}


def test_pods_spread_over_zones_and_nodes_best_effort():
    assert pod_spec(record())["topologySpreadConstraints"] == [
        spread("topology.kubernetes.io/zone"), spread("kubernetes.io/hostname")]
    assert pod_spec(record(zone_spread=False))["topologySpreadConstraints"] == [spread("kubernetes.io/hostname")]


# --- Release Job ---------------------------------------------------------------------------------------


def test_release_job_runs_the_command_once_and_gates_the_deployment():
    recording = record()
    job = recording.one(JOB)
    name = release_job_name("web", APP.image, APP.release_command, expected_environment())
    assert re.fullmatch(r"web-release-[0-9a-f]{10}", name)
    assert job.inputs["metadata"] == {
        "name": name,
        "namespace": "shop",
        "labels": LABELS,
        "annotations": {"pulumi.com/timeoutSeconds": "720", "pulumi.com/replaceUnready": "true"},
    }
    spec = job.inputs["spec"]
    assert {key: value for key, value in spec.items() if key != "template"} == {
        "backoffLimit": 0, "activeDeadlineSeconds": 600}  # and no ttlSecondsAfterFinished
    assert spec["template"]["metadata"] == {"labels": {**LABELS, **RELEASE_SELECTOR}}
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    container = app_container(recording, JOB)
    assert container["args"] == ["python", "manage.py", "migrate"]
    assert "command" not in container  # the image's entrypoint stays, as with Compose's `command`
    assert not {"startupProbe", "readinessProbe", "livenessProbe", "lifecycle", "ports"} & container.keys()
    assert job.urn in recording.one(DEPLOYMENT).dependencies


def test_release_timeout_sets_the_deadline_and_pulumis_wait():
    job = record(release_timeout_seconds=1800).one(JOB)
    assert job.inputs["spec"]["activeDeadlineSeconds"] == 1800
    assert job.inputs["metadata"]["annotations"]["pulumi.com/timeoutSeconds"] == "1920"


def job_name(**overrides: Any) -> str:
    return record(**overrides).one(JOB).inputs["metadata"]["name"]


def test_release_job_name_changes_with_the_image_and_the_environment_only():
    baseline = job_name()
    assert job_name() == baseline
    assert job_name(labels={**LABELS, "phasekit.dev/extra": "x"}) == baseline
    assert job_name(app=replace(APP, image="ghcr.io/acme/shop:1.4.3")) != baseline
    assert job_name(secret_env={"SECRET_KEY_BASE": pulumi.Output.secret("rotated")}) != baseline
    assert job_name(media_bucket="other-media") != baseline


def test_release_job_name_helper():
    env = {"A": "1"}
    name = release_job_name("web", "img:1", ["migrate"], env)
    assert name == release_job_name("web", "img:1", ("migrate",), {"A": "1"})
    assert len(name) == len("web-release-") + 10
    assert len({name, release_job_name("web", "img:2", ["migrate"], env),
                release_job_name("web", "img:1", ["migrate", "--noinput"], env),
                release_job_name("web", "img:1", ["migrate"], {"A": "2"})}) == 4


# --- Service, HPA, PDB -----------------------------------------------------------------------------------


def test_service_exposes_the_fixed_node_port_on_every_node():
    assert record(node_port=31555).one(SERVICE).inputs == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "labels": LABELS},
        "spec": {
            "type": "NodePort",
            "selector": WEB_SELECTOR,
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8000, "nodePort": 31555}],
            "externalTrafficPolicy": "Cluster",
        },
    }


def test_hpa_scales_the_deployment_on_cpu():
    assert record(min_replicas=3, max_replicas=9, cpu_target_percent=60).one(HPA).inputs == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop", "labels": LABELS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 3,
            "maxReplicas": 9,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}],
        },
    }


def test_pdb_lets_drains_take_one_pod_at_a_time():
    assert record().one(PDB).inputs == {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "shop", "labels": LABELS},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": WEB_SELECTOR},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    }


# --- Preview ---------------------------------------------------------------------------------------------


def test_preview_with_unknown_urls_and_secrets_does_not_crash():
    def program() -> None:
        password = random.RandomPassword("db-password", length=24)  # its result is unknown in preview
        app = KubernetesApp("web", app_args(
            database_url=password.result.apply(lambda pw: f"postgresql://app:{pw}@db:5432/app?sslmode=require"),
            redis_url=password.result.apply(lambda pw: f"rediss://:{pw}@cache:6379/0"),
            secret_env={"SECRET_KEY_BASE": password.result},
        ), opts=pulumi.ResourceOptions(provider=k8s.Provider("k8s", kubeconfig="{}")))
        pulumi.export("release_job_name", app.release_job_name)
        pulumi.export("deployment_name", app.deployment_name)

    recording = run_recorded(program, preview=True)
    assert recording.outputs == {"release_job_name": UNKNOWN_MASK, "deployment_name": "web"}
    assert recording.named("web-env").secret_inputs == {"stringData"}
    assert recording.one(JOB).urn in recording.one(DEPLOYMENT).dependencies
    assert recording.type_counts()[DEPLOYMENT] == 1


# --- Real schema validation -------------------------------------------------------------------------------

RENDER_CASES = {
    "release-and-registry": {"app": PRIVATE_APP, "registry_password": pulumi.Output.secret("ghp_token")},
    "no-release-no-registry": {"app": replace(APP, release_command=None)},
    "cpu-limit-no-zone-spread": {"cpu_limit": "2", "memory_limit": "1Gi", "zone_spread": False},
}


@pytest.mark.parametrize("version", EKS_VERSIONS)
@pytest.mark.parametrize("case", RENDER_CASES)
def test_every_rendered_object_validates_against_every_eks_version_phasekit_deploys(case, version):
    # The configured cluster.version is one of EKS_VERSIONS (1.35 by default): each one's schema must accept
    # every object, so an upgrade never meets a manifest its API server refuses.
    rendered = k8s_schema.manifests(record(**RENDER_CASES[case], vpc_cidr="10.20.0.0/16"))
    expected_kinds = {"Namespace", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler",
                      "PodDisruptionBudget", "NetworkPolicy"}
    if case != "no-release-no-registry":
        expected_kinds.add("Job")
    assert {manifest["kind"] for manifest in rendered} == expected_kinds
    assert [error for manifest in rendered for error in k8s_schema.validate(manifest, version)] == []


def test_network_policies_deny_by_default_and_allow_only_the_apps_flows():
    recording = record(vpc_cidr="10.20.0.0/16")
    policies = {policy.name: policy.inputs for policy in recording.of_type(NETPOL)}
    web = {"app.kubernetes.io/name": "web", "app.kubernetes.io/component": "web"}
    metadata = {"namespace": "shop", "labels": LABELS}
    assert policies == {
        "web-default-deny": {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                             "metadata": {"name": "web-default-deny", **metadata},
                             "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        "web-web-ingress": {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                            "metadata": {"name": "web-web-ingress", **metadata},
                            "spec": {"podSelector": {"matchLabels": web}, "policyTypes": ["Ingress"],
                                     "ingress": [{"from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                                                  "ports": [{"protocol": "TCP", "port": 8000}]}]}},
        "web-egress": {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "web-egress", **metadata},
                       "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                           {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                           {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                            "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6379}]},
                           {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]},
                       ]}},
    }
    # Pods start only after the policies exist, so default deny never races the allow rules.
    policy_urns = {policy.urn for policy in recording.of_type(NETPOL)}
    assert policy_urns <= set(recording.one(JOB).dependencies)
    assert policy_urns <= set(recording.one(DEPLOYMENT).dependencies)


def test_without_a_vpc_cidr_the_allowed_flows_take_any_address_and_policies_can_be_off():
    policies = {policy.name: policy.inputs["spec"] for policy in record().of_type(NETPOL)}
    assert policies["web-web-ingress"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    assert policies["web-egress"]["egress"][1] == {
        "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6379}]}
    assert record(network_policies=False).of_type(NETPOL) == []


def test_manifests_name_auto_named_objects_after_their_logical_name():
    rendered = {manifest["kind"] + "/" + manifest["metadata"]["name"] for manifest in k8s_schema.manifests(record())}
    assert "Secret/web-env" in rendered and "Deployment/web" in rendered
    deployment = next(manifest for manifest in k8s_schema.manifests(record()) if manifest["kind"] == "Deployment")
    assert type(deployment["spec"]["replicas"]) is int


def deployment_manifest() -> dict:
    return next(manifest for manifest in k8s_schema.manifests(record()) if manifest["kind"] == "Deployment")


def test_validator_rejects_a_wrong_type():
    manifest = deployment_manifest()
    manifest["spec"]["replicas"] = "two"
    assert k8s_schema.validate(manifest, "1.34") == [
        "Deployment/web: spec.replicas: 'two' is not of type 'integer', 'null'"]


def test_validator_rejects_an_unknown_field():
    manifest = deployment_manifest()
    spec = manifest["spec"]["template"]["spec"]
    spec["securityContxt"] = spec.pop("securityContext")
    assert k8s_schema.validate(manifest, "1.34") == [
        "Deployment/web: spec.template.spec: Additional properties are not allowed ('securityContxt' was unexpected)"]


def test_validator_rejects_an_unknown_kind():
    assert k8s_schema.validate({"apiVersion": "v1", "kind": "Gadget", "metadata": {"name": "g"}}, "1.34") == [
        "Gadget/g: Couldn't find schema for kind Gadget with api version v1 for kubernetes version 1.34"]


def test_objects_need_the_prestop_sleep_action_of_kubernetes_1_29_schemas():
    # The native sleep action (no shell in the image) is in the API from 1.29 and on by default from 1.30.
    deployment = deployment_manifest()
    assert k8s_schema.validate(deployment, "1.28") == [
        "Deployment/web: spec.template.spec.containers.0.lifecycle.preStop: Additional properties are not "
        "allowed ('sleep' was unexpected)"]
    assert k8s_schema.validate(deployment, "1.29") == []


def test_validator_ships_the_versions_we_target():
    assert k8s_schema.SUPPORTED_VERSIONS == tuple(f"1.{minor}" for minor in range(25, 38))


# --- Argument validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"min_replicas": 1},
     "KubernetesAppArgs.min_replicas: 1; at least 2, so a node drain or a failed node never leaves the app without a ready pod"),
    ({"min_replicas": 4, "max_replicas": 3}, "KubernetesAppArgs.max_replicas: 3 is below min_replicas 4"),
    ({"node_port": 8080}, "KubernetesAppArgs.node_port: 8080 is outside the NodePort range 30000-32767"),
    ({"node_port": 32768}, "KubernetesAppArgs.node_port: 32768 is outside the NodePort range 30000-32767"),
    ({"namespace": "Shop_1"},
     "KubernetesAppArgs.namespace: 'Shop_1' is not a namespace name; allowed: 1-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen"),
    ({"namespace": "kube-system"},
     "KubernetesAppArgs.namespace: 'kube-system' belongs to Kubernetes; the component creates and owns its namespace"),
    ({"app": replace(APP, port=80)},
     "KubernetesAppArgs.app.port: 80; the container runs as non-root without capabilities, so it must listen on 1024-65535"),
    ({"app": replace(APP, health_path="healthz")}, "KubernetesAppArgs.app.health_path: 'healthz' must start with '/'"),
    ({"secret_env": {}}, "KubernetesAppArgs.secret_env: no value for SECRET_KEY_BASE (named in app.secret_env_names)"),
    ({"secret_env": {"SECRET_KEY_BASE": "x", "STRIPE_KEY": "y"}},
     "KubernetesAppArgs.secret_env: STRIPE_KEY not named in app.secret_env_names"),
    ({"app": replace(PRIVATE_APP, registry_username=None), "registry_password": "pw"},
     "KubernetesAppArgs.app.registry_username: required with app.registry_server"),
    ({"app": PRIVATE_APP}, "KubernetesAppArgs.registry_password: required to pull from 'ghcr.io'"),
    ({"registry_password": "pw"}, "KubernetesAppArgs.registry_password: given, but app.registry_server is not set"),
    ({"cpu_target_percent": 0}, "KubernetesAppArgs.cpu_target_percent: 0; allowed: 1-100"),
    ({"cpu_request": "a lot"},
     "KubernetesAppArgs.cpu_request: 'a lot' is not a positive Kubernetes quantity (e.g. '250m', '1', '512Mi', '1Gi')"),
    ({"memory_limit": "256Mi"}, "KubernetesAppArgs.memory_limit: '256Mi' is below memory_request '512Mi'"),
    ({"cpu_limit": "100m"}, "KubernetesAppArgs.cpu_limit: '100m' is below cpu_request '250m'"),
    ({"run_as_user": 0}, "KubernetesAppArgs.run_as_user: 0; must be a non-root uid (1 or more)"),
    ({"release_timeout_seconds": 0}, "KubernetesAppArgs.release_timeout_seconds: 0; must be 1 or more"),
    ({"writable_paths": ()}, "KubernetesAppArgs.writable_paths: at least one path; allowed: e.g. ['/tmp']"),
    *(({"writable_paths": ("/tmp", path)}, f"KubernetesAppArgs.writable_paths: {path!r}; allowed: an absolute "
       "directory path without '.' or '..' segments or a trailing '/', not '/' and not in /proc, /sys or /dev (/dev/shm "
       "is fine), e.g. /var/cache/nginx") for path in ("/", "/app/../etc", "tmp", "/tmp/", "/proc/self", "/sys", "/dev", "/dev/mqueue", "/./tmp")),
    ({"writable_paths": ("/tmp", "/tmp")},
     "KubernetesAppArgs.writable_paths: '/tmp' is listed twice; allowed: each path once"),
    ({"database_url": "postgresql://app:pw@db:5432/app"},
     "KubernetesAppArgs.database_url: needs a postgresql:// URL with TLS required (sslmode=require, verify-ca or verify-full)"),
    ({"redis_url": "redis://:pw@cache:6379/0"}, "KubernetesAppArgs.redis_url: needs a rediss:// URL (TLS)"),
])
def test_invalid_args_are_refused_with_exact_messages(overrides, message):
    with pytest.raises(ValueError) as raised:
        record(**overrides)
    assert str(raised.value) == message


@pytest.mark.parametrize("name", ["Web", "9web", "web-", "w" * 41, "web_app"])
def test_component_name_must_fit_kubernetes_names(name):
    with pytest.raises(ValueError) as raised:
        KubernetesApp(name, app_args())
    assert str(raised.value) == (
        f"KubernetesApp name: {name!r} names the Deployment, Service and release Job; allowed: 1-40 lowercase "
        "letters, digits and hyphens, starting with a letter and not ending with a hyphen")


def test_urls_without_tls_inside_outputs_fail_the_deploy_without_echoing_them():
    with pytest.raises(ValueError, match=re.escape("KubernetesAppArgs.database_url: needs a postgresql:// URL")) as raised:
        record(database_url=pulumi.Output.secret("postgresql://app:hunter2@db:5432/app?sslmode=disable"))
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(("database_url", "redis_url", "ok"), [
    ("postgresql://a:b@h:5432/d?sslmode=require", "rediss://:p@h:6379/0", True),
    ("postgres://a:b@h:5432/d?sslmode=verify-full", "rediss://:p@h:6379/0", True),
    ("postgresql://a:b@h:5432/d?sslmode=verify-ca&connect_timeout=5", "rediss://:p@h:6379/0", True),
    ("postgresql://a:b@h:5432/d?sslmode=prefer", "rediss://:p@h:6379/0", False),
    ("mysql://a:b@h:3306/d?sslmode=require", "rediss://:p@h:6379/0", False),
    ("postgresql://a:b@h:5432/d?sslmode=require", "redis://:p@h:6379/0", False),
])
def test_tls_url_rules(database_url, redis_url, ok):
    if ok:
        check_tls_urls(database_url, redis_url)
    else:
        with pytest.raises(ValueError):
            check_tls_urls(database_url, redis_url)


@pytest.mark.parametrize(("quantity", "value"), [
    ("250m", 0.25), ("1", 1.0), ("1.5", 1.5), ("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1G", 1e9),
    ("0", 0.0), ("-1", None), ("1 Gi", None), ("1gi", None), ("", None),
])
def test_quantity_values(quantity, value):
    assert quantity_value(quantity) == value


def test_the_docstring_no_longer_suggests_aws_pod_identity_for_the_r2_bucket():
    # The media bucket is Cloudflare R2: an AWS role (Pod Identity, IRSA) grants nothing there.
    import components.kubernetes_app as module

    text = " ".join((module.__doc__ or "").split())
    assert "EKS Pod Identity association" not in text
    assert "the media bucket is Cloudflare R2" in text


# --- The database-role Job (components/database_role.py) ------------------------------------------------

ROLE_PASSWORD = "r0lePassw0rd"
ROLE_JOB = DatabaseRoleJobArgs(
    role_name="app_user",
    role_password=pulumi.Output.secret(ROLE_PASSWORD),
    master_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1234-abcdef",
    iam_role_arn="arn:aws:iam::123456789012:role/db-master-secret-reader-1a2b3c4",
    aws_region="us-east-1",
    host="shop.abc.us-east-1.rds.amazonaws.com",
    database="app",
    connection_limit=37,
)
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def role_jobs(recording) -> tuple[Any, Any]:
    jobs = {job.name: job for job in recording.of_type(JOB)}
    return jobs["web-database-role"], jobs["web-release"]


def test_role_job_runs_after_the_policies_and_before_the_release_and_the_pods():
    recording = record(database_role=ROLE_JOB)
    assert recording.type_counts() == {
        PROVIDER: 1, COMPONENT: 1, NAMESPACE: 1, SECRET: 2, JOB: 2, DEPLOYMENT: 1, SERVICE: 1, HPA: 1, PDB: 1,
        NETPOL: 3, SERVICE_ACCOUNT: 1, CONFIG_MAP: 1,
    }
    role_job, release = role_jobs(recording)
    policies = {policy.urn for policy in recording.of_type(NETPOL)}
    assert policies <= set(role_job.dependencies)
    assert role_job.urn in release.dependencies
    assert role_job.urn in recording.one(DEPLOYMENT).dependencies
    prefix = "urn:pulumi:test::phasekit::phasekit:index:KubernetesApp$"
    assert role_job.urn == f"{prefix}kubernetes:batch/v1:Job::web-database-role"
    provider = recording.one(PROVIDER)
    children = [resource for resource in recording.resources if resource.type not in (COMPONENT, PROVIDER)]
    assert {child.provider for child in children} == {f"{provider.urn}::{provider.id}"}
    assert {child.parent for child in children} == {recording.one(COMPONENT).urn}


def test_role_job_reads_the_master_secret_through_irsa_and_never_holds_a_password():
    recording = record(database_role=ROLE_JOB)
    account = recording.one(SERVICE_ACCOUNT)
    assert account.inputs["metadata"]["name"] == "web-database-role"
    assert account.inputs["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_JOB.iam_role_arn}
    assert account.inputs["automountServiceAccountToken"] is False
    role_job, _ = role_jobs(recording)
    spec = role_job.inputs["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "web-database-role"
    [fetch] = spec["initContainers"]
    [create] = spec["containers"]
    assert fetch["command"] == fetch_master_secret_command()
    assert fetch["env"] == [{"name": "MASTER_SECRET_ARN", "value": ROLE_JOB.master_secret_arn},
                            {"name": "AWS_REGION", "value": "us-east-1"}, {"name": "HOME", "value": "/tmp"}]
    assert create["command"] == run_sql_command()
    password_secret = next(secret for secret in recording.of_type(SECRET) if secret.name == "web-database-role-password")
    assert create["env"] == [
        {"name": "PGHOST", "value": ROLE_JOB.host}, {"name": "PGPORT", "value": "5432"},
        {"name": "PGDATABASE", "value": "app"}, {"name": "PGSSLMODE", "value": "require"},
        {"name": "PGCONNECT_TIMEOUT", "value": "10"}, {"name": "PGAPPNAME", "value": "phasekit-database-role"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "APP_ROLE_PASSWORD", "valueFrom": {"secretKeyRef": {
            "name": fake_autoname("web-database-role-password"), "key": "APP_ROLE_PASSWORD"}}}]
    assert password_secret.inputs["stringData"] == {"APP_ROLE_PASSWORD": ROLE_PASSWORD}
    assert "stringData" in password_secret.secret_inputs
    # The password is in the Secret only: not in the Job, its name or the ConfigMap.
    assert ROLE_PASSWORD not in json.dumps(role_job.inputs)
    assert ROLE_PASSWORD not in json.dumps(recording.one(CONFIG_MAP).inputs)
    assert recording.one(CONFIG_MAP).inputs["data"] == {"app-role.sql": app_role_sql("app_user", "app", 37)}
    assert {volume["name"]: volume for volume in spec["volumes"]}["credentials"] == {
        "name": "credentials", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}


def test_role_job_pod_meets_the_restricted_profile():
    role_job, _ = role_jobs(record(database_role=ROLE_JOB))
    spec = role_job.inputs["spec"]["template"]["spec"]
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                       "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    for container in [*spec["initContainers"], *spec["containers"]]:
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert role_job.inputs["spec"]["backoffLimit"] == 2
    assert role_job.inputs["metadata"]["annotations"] == {"pulumi.com/timeoutSeconds": "420",
                                                          "pulumi.com/replaceUnready": "true"}


def test_role_job_name_changes_with_the_password_only_through_a_hash():
    first, _ = role_jobs(record(database_role=ROLE_JOB))
    rotated, _ = role_jobs(record(database_role=replace(ROLE_JOB, role_password=pulumi.Output.secret("other"))))
    assert first.inputs["metadata"]["name"] != rotated.inputs["metadata"]["name"]
    assert re.fullmatch(r"web-db-role-[0-9a-f]{10}", first.inputs["metadata"]["name"])


@pytest.mark.parametrize("version", EKS_VERSIONS)
def test_role_job_objects_validate_against_every_eks_version(version):
    rendered = k8s_schema.manifests(record(database_role=ROLE_JOB, vpc_cidr="10.20.0.0/16"))
    assert {"ServiceAccount", "ConfigMap"} <= {manifest["kind"] for manifest in rendered}
    assert [error for manifest in rendered for error in k8s_schema.validate(manifest, version)] == []


MASTER_PASSWORD = "m4sterPassw0rd"
K8S_ROLE_JOB = DatabaseRoleJobArgs(
    role_name="app_user",
    role_password=pulumi.Output.secret(ROLE_PASSWORD),
    master_username="app",
    master_password=pulumi.Output.secret(MASTER_PASSWORD),
    host="shop.abc.us-east-1.rds.amazonaws.com",
    database="app",
    connection_limit=37,
)
"""With read replicas RDS cannot manage the master password: Pulumi generated it, and the Job reads it from a
Kubernetes Secret instead of Secrets Manager."""


def test_without_secrets_manager_the_role_job_mounts_the_master_credentials_from_a_kubernetes_secret():
    recording = record(database_role=K8S_ROLE_JOB)
    assert recording.type_counts() == {
        PROVIDER: 1, COMPONENT: 1, NAMESPACE: 1, SECRET: 3, JOB: 2, DEPLOYMENT: 1, SERVICE: 1, HPA: 1, PDB: 1,
        NETPOL: 3, SERVICE_ACCOUNT: 1, CONFIG_MAP: 1,
    }
    secrets = {secret.name: secret for secret in recording.of_type(SECRET)}
    master = secrets["web-database-role-master"]
    assert master.inputs == {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"namespace": "shop", "labels": LABELS}, "type": "Opaque",
        "stringData": {"master.json": json.dumps({"username": "app", "password": MASTER_PASSWORD})}}
    assert master.inputs["stringData"]["master.json"] == master_credentials_json("app", MASTER_PASSWORD)
    assert "stringData" in master.secret_inputs
    # No AWS role: nothing to read in Secrets Manager.
    account = recording.one(SERVICE_ACCOUNT)
    assert account.inputs == {"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": "web-database-role", "namespace": "shop", "labels": LABELS},
                              "automountServiceAccountToken": False}
    role_job, release = role_jobs(recording)
    assert master.urn in role_job.dependencies and role_job.urn in release.dependencies
    spec = role_job.inputs["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    [create] = spec["containers"]
    assert create["command"] == run_sql_command()
    assert create["env"] == [
        {"name": "PGHOST", "value": K8S_ROLE_JOB.host}, {"name": "PGPORT", "value": "5432"},
        {"name": "PGDATABASE", "value": "app"}, {"name": "PGSSLMODE", "value": "require"},
        {"name": "PGCONNECT_TIMEOUT", "value": "10"}, {"name": "PGAPPNAME", "value": "phasekit-database-role"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "APP_ROLE_PASSWORD", "valueFrom": {"secretKeyRef": {
            "name": fake_autoname("web-database-role-password"), "key": "APP_ROLE_PASSWORD"}}}]
    assert create["volumeMounts"] == [
        {"name": "credentials", "mountPath": "/run/database-master"}, {"name": "tmp", "mountPath": "/tmp"},
        {"name": "sql", "mountPath": "/etc/database-role", "readOnly": True}]
    assert spec["volumes"] == [
        {"name": "credentials", "secret": {"secretName": fake_autoname("web-database-role-master"),
                                           "defaultMode": 0o440,
                                           "items": [{"key": "master.json", "path": "master.json"}]}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "sql", "configMap": {"name": "web-database-role-sql"}}]
    # Neither password is in the Job, its name or the ConfigMap.
    for password in (MASTER_PASSWORD, ROLE_PASSWORD):
        assert password not in json.dumps(role_job.inputs)
        assert password not in json.dumps(recording.one(CONFIG_MAP).inputs)
    assert re.fullmatch(r"web-db-role-[0-9a-f]{10}", role_job.inputs["metadata"]["name"])


def test_a_new_master_password_reruns_the_role_job():
    first, _ = role_jobs(record(database_role=K8S_ROLE_JOB))
    rotated, _ = role_jobs(record(database_role=replace(K8S_ROLE_JOB, master_password=pulumi.Output.secret("o"))))
    assert first.inputs["metadata"]["name"] != rotated.inputs["metadata"]["name"]


@pytest.mark.parametrize("version", EKS_VERSIONS)
def test_kubernetes_secret_role_job_objects_validate_against_every_eks_version(version):
    rendered = k8s_schema.manifests(record(database_role=K8S_ROLE_JOB, vpc_cidr="10.20.0.0/16"))
    assert [manifest["kind"] for manifest in rendered].count("Secret") == 3
    assert [error for manifest in rendered for error in k8s_schema.validate(manifest, version)] == []


@pytest.mark.parametrize(("role_job", "message"), [
    (replace(ROLE_JOB, master_password="pw", master_username="app"),
     "DatabaseRoleJobArgs: master_secret_arn (RDS manages the master password) and master_password (Pulumi "
     "generated it) are exclusive; pass one"),
    (replace(ROLE_JOB, iam_role_arn=None),
     "DatabaseRoleJobArgs.iam_role_arn: required with master_secret_arn (the Job reads the secret through IRSA)"),
    (replace(ROLE_JOB, aws_region=None),
     "DatabaseRoleJobArgs.aws_region: required with master_secret_arn (the Job reads the secret through IRSA)"),
    (replace(K8S_ROLE_JOB, master_password=None),
     "DatabaseRoleJobArgs: no master credentials; pass master_secret_arn, iam_role_arn and aws_region (RDS manages "
     "the master password) or master_username and master_password"),
    (replace(K8S_ROLE_JOB, master_username=None),
     "DatabaseRoleJobArgs.master_username: required with master_password"),
])
def test_role_job_master_credentials_come_from_exactly_one_place(role_job, message):
    with pytest.raises(ValueError) as raised:
        record(database_role=role_job)
    assert str(raised.value) == message


def test_the_constructor_reads_as_a_table_of_contents():
    """STYLE "Examples to follow" #1: ``__init__`` calls named module-level builders (the URNs above stay as
    they were); it was 204 lines before the split."""
    import inspect

    import components.kubernetes_app as module

    assert len(inspect.getsource(KubernetesApp.__init__).splitlines()) <= 50
    for builder in ("_namespace", "_network_policies", "_env_secret", "_pull_secrets", "_release_job", "_deployment",
                    "_service", "_autoscaler", "_disruption_budget"):
        assert callable(getattr(module, builder)), builder
