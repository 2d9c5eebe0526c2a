"""KubernetesApp: the app on a Kubernetes cluster (phase 3, EKS), through the provider the caller passes.

Creates (all in one namespace the component owns)
- the Namespace, with Pod Security Admission enforcing (and auditing and warning on) ``restricted``;
- a Secret with the whole app contract (``contract_environment``: DATABASE_URL, REDIS_URL, PORT,
  WEB_CONCURRENCY, MEDIA_BUCKET, plus the app's env and secret env), read by the pods through ``envFrom``.
  It is auto-named and pulumi-kubernetes replaces a Secret whose data changes (unless the provider sets
  ``enableSecretMutable``; don't), so a changed value gives a new name, a new pod template and a rollout;
- with a private registry, a ``kubernetes.io/dockerconfigjson`` Secret the pods pull with;
- with ``database_role``: the app role's Job, its ServiceAccount (with RDS managing the master password, IRSA
  reading only the master secret; otherwise a Secret holding the generated master credentials instead), the app
  role password's Secret and the SQL's ConfigMap (components/database_role.py); it runs after the
  NetworkPolicies and before the release Job;
- with ``app.release_command``, a ``batch/v1`` Job that runs it (see "Release" below);
- a Deployment (rolling, never below the current ready count), a NodePort Service on ``node_port`` for
  the load balancer, a HorizontalPodAutoscaler on CPU and a PodDisruptionBudget;
- with ``network_policies`` (default): NetworkPolicies denying all ingress and egress in the namespace, then
  allowing the web pods' port from ``vpc_cidr``, DNS to CoreDNS, PostgreSQL and Redis into ``vpc_cidr`` and
  HTTPS anywhere (``network_policy_specs``); the release Job and the Deployment wait for them.

Does not create: the cluster, the load balancer or its security group rule for ``node_port``,
metrics-server (the HPA reads CPU from it; EksCluster installs it as an add-on), or Ingress. No AWS role for the
app's pods either: the media bucket is Cloudflare R2, reached with the R2 credentials in the app's secret env, so
EKS Pod Identity or IRSA (AWS IAM) would not grant access to it (only the database-role Job has a role, for the
master secret). NetworkPolicies are enforced only by a CNI that enforces them.

Names: the namespace is ``namespace``; the Deployment, Service, HPA and PDB are named after the component
(``name``, a DNS label of at most 40 characters) inside it; the Secrets are auto-named; the release Job is
``<name>-release-<hash>``; a process's Deployment, HPA and PDB and a schedule's CronJob are ``<name>-<process>``
(a CronJob's name fits 52 characters). Selectors are fixed per component (``web``, ``release``, the process's or
schedule's name), so an explicit name never has to be replaced.

Pods: non-root (``run_as_user``), no privilege escalation, every capability dropped, RuntimeDefault
seccomp, read-only root filesystem with an emptyDir at each of ``writable_paths`` (default ``/tmp``), no
ServiceAccount token, no service-link variables. So the app must listen on a port >= 1024 and write only to
those paths, and its health path must
answer the health-check contract (``components.health``: the public hostname as Host, ``X-Forwarded-Proto:
https``; with ``hostname`` unset, plain HTTP on the pod IP with any Host header).

Probes: a startup probe gives a slow boot up to 5 minutes; after it, readiness drops a pod from the
Service after 15 s of failures, liveness restarts it only after 60 s (longer, so a brief dependency outage
does not restart every pod at once). Scale-in and rollouts end with a native ``preStop`` sleep (Kubernetes
>= 1.30; no shell needed) so kube-proxy on every node stops routing to the pod before it gets SIGTERM; then
the app has the load balancer's deregistration delay to finish requests in flight (``TERMINATION_GRACE_SECONDS``).

Processes and schedules (``app.processes``, ``app.schedules``): a Deployment (+ HPA with ``max_count``, + PDB) per
process and a CronJob per schedule, after the release Job, built by components/kubernetes_processes.py.

Resources: no CPU limit by default (``cpu_limit=None``): a limit throttles the app under CFS quota even when
the node has idle CPU, which shows up as latency spikes; the request alone reserves capacity and drives
the HPA. Memory has a limit equal to its request by default: memory is not compressible, and a pod above
its request is the first one the kubelet evicts under pressure.

Release: the Job's name is a hash of the image, the command and the environment, so it runs again exactly
when one of them changes; pulumi-kubernetes waits for it to complete and the Deployment depends on it,
so a failed release stops ``pulumi up`` before any pod of the new version starts. ``backoffLimit`` is 0:
a failed migration is not retried blindly (a half-applied, non-transactional step can fail differently the
second time); ``pulumi.com/replaceUnready`` makes the next ``pulumi up`` replace a failed Job and run it
again. No TTL: a TTL-deleted Job would be recreated (and rerun) by the next ``pulumi up``.

Replicas: the Deployment starts at ``min_replicas`` and then belongs to the HPA: ``ignore_changes=
["spec.replicas"]`` (pulumi-kubernetes' server-side apply drops an ignored field that another manager,
here the HPA's scale subresource, owns, so ``pulumi up`` neither resets nor conflicts with it).

Cost: nothing by itself; the pods use node capacity (requests x replicas, up to ``max_replicas``).

Stateful: nothing. Deleting the component deletes the namespace and everything in it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import health
from components.aws_choices import (
    ALB_DEREGISTRATION_DELAY_SECONDS,
    NODE_PORT_RANGE,
    SHARED_MEMORY,
    WRITABLE_PATH_ALLOWED,
    writable_path_allowed,
)
from components.compose_stack import AppSpec, contract_environment, render_docker_config
from components.database_role import DatabaseRoleJobArgs, check_master_credentials, database_role_job
from components.kubernetes_processes import (
    WorkloadPods,
    check_process_names,
    cpu_autoscaler_spec,
    one_at_a_time_budget,
    process_objects,
    rolling_update_strategy,
    schedule_cronjob,
)

POD_SECURITY_LEVEL = "restricted"
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}{suffix}": value
    for mode in ("enforce", "audit", "warn")
    for suffix, value in (("", POD_SECURITY_LEVEL), ("-version", "latest"))
}
"""Pod Security Admission: reject (enforce), log (audit) and warn about anything below ``restricted``."""

RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVICE_PORT = 80
CONTAINER_NAME = "app"
PORT_NAME = "http"
TMP_VOLUME = "tmp"
TMP_SIZE_LIMIT = "1Gi"
"""/tmp counts against the node's disk; past this the pod is evicted instead of filling the node."""

PRE_STOP_SLEEP_SECONDS = 5
"""Long enough for the endpoint removal to reach kube-proxy on every node before the app gets SIGTERM."""

TERMINATION_GRACE_SECONDS = PRE_STOP_SLEEP_SECONDS + ALB_DEREGISTRATION_DELAY_SECONDS
"""What takes a web pod out of traffic is not the load balancer: its targets are the nodes (instances on the
NodePort) and, with ``externalTrafficPolicy: Cluster``, any node forwards to any ready pod, so a stopping pod
deregisters nothing there. Its EndpointSlice entry turns not-ready when it starts terminating and kube-proxy on
every node stops sending it *new* connections; the ``preStop`` sleep covers that propagation. Connections already
open (the ALB keeps keep-alive connections to the nodes, and conntrack pins each to its pod) still carry requests
until the app, on SIGTERM, finishes them and closes. The grace period (which counts the ``preStop`` sleep)
therefore gives the app, after the sleep, the same in-flight allowance the load balancer's deregistration delay
gives when a node leaves (then the node's kube-proxy keeps forwarding to pods elsewhere until the instance is
gone). It was 30 s (25 s after the sleep), below that delay; tests/test_kubernetes_processes.py holds the
relation. https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination"""

RELEASE_BACKOFF_LIMIT = 0
RELEASE_AWAIT_MARGIN_SECONDS = 120
"""Pulumi waits this much longer than the Job's own deadline, so a timeout shows as the Job's failure."""

WEB_COMPONENT = "web"
RELEASE_COMPONENT = "release"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX_NAME_LENGTH = 40
"""The release Job is named ``<name>-release-<10 hex>`` and Job names must fit a 63-character label."""

_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_QUANTITY_FACTORS = {
    None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_TLS_SSLMODES = ("require", "verify-ca", "verify-full")


@dataclass
class KubernetesAppArgs:
    app: AppSpec
    """The app as described once for every phase (image, port, health path, env, release command...)."""

    namespace: str
    """Namespace the component creates and owns (a DNS label, not one of Kubernetes' own)."""

    database_url: pulumi.Input[str]
    """``DATABASE_URL``; a secret. TLS is required: ``sslmode=require``, ``verify-ca`` or ``verify-full``."""

    redis_url: pulumi.Input[str]
    """``REDIS_URL``; a secret. TLS is required: a ``rediss://`` URL."""

    media_bucket: pulumi.Input[str]
    """``MEDIA_BUCKET``: the media bucket's name."""

    secret_env: Mapping[str, pulumi.Input[str]]
    """Values of ``app.secret_env_names`` (every name needs one); they stay secrets."""

    registry_password: pulumi.Input[str] | None = None
    """Password for ``app.registry_server``/``app.registry_username``; required with a registry, refused
    without one. Becomes a ``kubernetes.io/dockerconfigjson`` image pull Secret."""

    min_replicas: int = 2
    """Replicas at first deploy and the HPA's floor; at least 2 so a drain or a bad node never takes the
    app down."""

    max_replicas: int = 6
    """The HPA's ceiling; at least ``min_replicas``."""

    cpu_target_percent: int = 70
    """Average CPU use, as a percentage of ``cpu_request``, that the HPA scales to keep (1-100)."""

    cpu_request: str = "250m"
    """CPU each pod reserves (a Kubernetes quantity); the HPA's percentages are relative to it."""

    memory_request: str = "512Mi"
    """Memory each pod reserves."""

    cpu_limit: str | None = None
    """CPU ceiling per pod. Default none: a CPU limit throttles the app even on an idle node."""

    memory_limit: str = "512Mi"
    """Memory ceiling per pod (the container is OOM-killed above it); at least ``memory_request``."""

    node_port: int = 30080
    """The Service's fixed NodePort (30000-32767) that the load balancer's target group points at."""

    run_as_user: int = 10001
    """uid (and gid, fsGroup) the app runs as; never 0."""

    release_timeout_seconds: int = 600
    """Deadline for the release Job (``activeDeadlineSeconds``); Pulumi waits a little longer."""

    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels for every object (``components.tags.kubernetes_labels``); never part of a selector."""

    hostname: str | None = None
    """The public hostname. The probes send it as ``Host`` with ``X-Forwarded-Proto: https`` (phasekit's
    health-check contract, ``components.health``), so an app that checks its host and redirects plain HTTP passes
    them; None: the kubelet's default Host (the pod IP), for an app whose health path answers any host."""

    zone_spread: bool = True
    """Spread pods across availability zones (best effort) as well as across nodes."""

    writable_paths: Sequence[str] = ("/tmp",)
    """Directories the app may write to under its read-only root filesystem, each an ``emptyDir`` (lost with
    the pod, at most 1 GiB each). Default ``/tmp``; images that write elsewhere (nginx's ``/var/cache/nginx``,
    a framework's ``/app/tmp``) list those paths. Absolute, without ``..``, each once, not ``/``."""

    network_policies: bool = True
    """Default-deny NetworkPolicies for the namespace plus the app's real flows (see ``network_policy_specs``).
    Enforced only where the CNI enforces them (EksCluster turns on the vpc-cni add-on's network policy agent)."""

    vpc_cidr: str | None = None
    """The VPC's range: where the load balancer and the nodes reach the app's port from, and where PostgreSQL
    and Redis live. None: those flows are allowed from and to any address (the policies still deny the rest)."""

    database_role: DatabaseRoleJobArgs | None = None
    """The Job that creates the app's own PostgreSQL role before the release Job runs (components/database_role.py),
    reading the master credentials from RDS's Secrets Manager secret or, when RDS cannot manage them (read
    replicas), from a Kubernetes Secret; ``database_url`` then connects as that role. None: no Job."""


class KubernetesApp(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    """The namespace everything lives in."""

    deployment_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    node_port: pulumi.Output[int]
    """The NodePort the load balancer targets on every node."""

    release_job_name: pulumi.Output[str] | None
    """Name of the release Job of this deploy; None without ``app.release_command``."""

    database_role_job: k8s.batch.v1.Job | None
    """The Job that creates the app's database role (None without ``database_role``): what else connects as the
    role (a logical backup) should wait for it, since it may refuse (``stranded_data_guard``)."""

    def __init__(self, name: str, args: KubernetesAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        check_args(name, args)
        super().__init__("phasekit:index:KubernetesApp", name, None, opts)
        labels = dict(args.labels)
        namespace = _namespace(name, args.namespace, labels, self)
        meta = functools.partial(_metadata, namespace.metadata.apply(lambda metadata: metadata.name), labels)
        policies = _network_policies(name, args, meta, self)
        environment = _environment(args)
        pods = _PodParts(args=args, env_secret_name=_env_secret(name, environment, meta, self),
                         pull_secret_names=_pull_secrets(name, args, meta, self))

        # Pods start only once the namespace's policies exist: default deny then never races the allow rules.
        ready: list[pulumi.Resource] = list(policies)
        self.database_role_job = None
        if args.database_role is not None:
            # The app role exists (with its current password) before the release Job connects as it.
            self.database_role_job = database_role_job(
                name, args.database_role, namespace=namespace.metadata.apply(lambda metadata: metadata.name),
                labels=labels, security=(pod_security_context(args.run_as_user), container_security_context()),
                depends_on=list(policies), parent=self)
            ready.append(self.database_role_job)
        self.release_job_name = None
        if args.app.release_command:
            job = _release_job(name, args, environment, meta, pods, ready, self)
            self.release_job_name = job.metadata.apply(lambda metadata: metadata.name)
            ready = [*ready, job]

        deployment = _deployment(name, args, meta, pods, ready, self)
        service = _service(name, args, meta, self)
        _autoscaler(name, args, meta, deployment, self)
        _disruption_budget(name, meta, self)
        _processes_and_schedules(name, labels, meta, pods, ready, self)

        self.namespace = namespace.metadata.apply(lambda metadata: metadata.name)
        self.deployment_name = deployment.metadata.apply(lambda metadata: metadata.name)
        self.service_name = service.metadata.apply(lambda metadata: metadata.name)
        self.node_port = service.spec.apply(lambda spec: spec.ports[0].node_port)
        self.register_outputs({
            "namespace": self.namespace,
            "deployment_name": self.deployment_name,
            "service_name": self.service_name,
            "node_port": self.node_port,
            "release_job_name": self.release_job_name,
        })


# --- Builders (module level, so the constructor reads as a table of contents) -------------------------


def _metadata(namespace: pulumi.Input[str], labels: Mapping[str, str], object_name: pulumi.Input[str] | None = None,
              **extra) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=namespace, labels=labels, **extra)


Metadata = Callable[..., k8s.meta.v1.ObjectMetaArgs]
"""``_metadata`` bound to the namespace and labels: ``meta(name=None, **extra)``."""


@dataclass(frozen=True)
class _PodParts:
    """What every pod of the app shares: the args, the env Secret's name and the pull Secrets' names."""

    args: KubernetesAppArgs
    env_secret_name: pulumi.Output[str]
    pull_secret_names: list[pulumi.Output[str]]


def _namespace(name: str, namespace: str, labels: Mapping[str, str], parent: pulumi.Resource
               ) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        f"{name}-namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace, labels={**labels, **POD_SECURITY_LABELS}),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _network_policies(name: str, args: KubernetesAppArgs, meta: Metadata, parent: pulumi.Resource
                      ) -> list[k8s.networking.v1.NetworkPolicy]:
    if not args.network_policies:
        return []
    web_selector = selector_labels(name, WEB_COMPONENT)
    return [
        k8s.networking.v1.NetworkPolicy(f"{name}-{suffix}", metadata=meta(f"{name}-{suffix}"), spec=spec,
                                        opts=pulumi.ResourceOptions(parent=parent))
        for suffix, spec in network_policy_specs(args.app.port, web_selector, args.vpc_cidr)
    ]


def _environment(args: KubernetesAppArgs) -> pulumi.Output[dict[str, str]]:
    app = args.app
    return pulumi.Output.all(
        database_url=args.database_url,
        redis_url=args.redis_url,
        media_bucket=args.media_bucket,
        secret_env=pulumi.Output.from_input({key: args.secret_env[key] for key in app.secret_env_names}),
    ).apply(lambda values: app_environment(app, **values))


def _env_secret(name: str, environment: pulumi.Output[dict[str, str]], meta: Metadata,
                parent: pulumi.Resource) -> pulumi.Output[str]:
    env_secret = k8s.core.v1.Secret(
        f"{name}-env",
        metadata=meta(),
        type="Opaque",
        # pulumi-kubernetes marks Secret data secret too; explicit here so the intent survives a refactor.
        string_data=pulumi.Output.secret(environment),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return env_secret.metadata.apply(lambda metadata: metadata.name)


def _pull_secrets(name: str, args: KubernetesAppArgs, meta: Metadata, parent: pulumi.Resource
                  ) -> list[pulumi.Output[str]]:
    app = args.app
    if not app.registry_server:
        return []
    server, username = app.registry_server, app.registry_username or ""
    docker_config = pulumi.Output.from_input(args.registry_password).apply(
        lambda password: {".dockerconfigjson": render_docker_config(server, username, password)})
    pull_secret = k8s.core.v1.Secret(
        f"{name}-registry",
        metadata=meta(),
        type="kubernetes.io/dockerconfigjson",
        string_data=pulumi.Output.secret(docker_config),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return [pull_secret.metadata.apply(lambda metadata: metadata.name)]


def _pod_spec(pods: _PodParts, container: k8s.core.v1.ContainerArgs, **extra) -> k8s.core.v1.PodSpecArgs:
    return k8s.core.v1.PodSpecArgs(
        containers=[container],
        security_context=pod_security_context(pods.args.run_as_user),
        automount_service_account_token=False,
        enable_service_links=False,
        image_pull_secrets=[k8s.core.v1.LocalObjectReferenceArgs(name=secret_name)
                            for secret_name in pods.pull_secret_names] or None,
        volumes=[k8s.core.v1.VolumeArgs(name=volume, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
            # Shared memory is memory (tmpfs, counted against the container's memory limit); the rest is disk.
            medium="Memory" if path == SHARED_MEMORY else None, size_limit=TMP_SIZE_LIMIT))
            for path, volume in writable_volumes(pods.args.writable_paths).items()],
        **extra,
    )


def _app_container(pods: _PodParts, resources: k8s.core.v1.ResourceRequirementsArgs | None = None,
                   **extra) -> k8s.core.v1.ContainerArgs:
    """The app's container; ``resources`` defaults to the web pods' (processes and schedules bring their own)."""
    args = pods.args
    return k8s.core.v1.ContainerArgs(
        name=CONTAINER_NAME,
        image=args.app.image,
        env_from=[k8s.core.v1.EnvFromSourceArgs(
            secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=pods.env_secret_name))],
        resources=resources or k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": args.cpu_request, "memory": args.memory_request},
            limits=resource_limits(args.cpu_limit, args.memory_limit),
        ),
        security_context=container_security_context(),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name=volume, mount_path=path)
                       for path, volume in writable_volumes(args.writable_paths).items()],
        **extra,
    )


def _release_job(name: str, args: KubernetesAppArgs, environment: pulumi.Output[dict[str, str]], meta: Metadata,
                 pods: _PodParts, depends_on: list[pulumi.Resource], parent: pulumi.Resource) -> k8s.batch.v1.Job:
    app = args.app
    command = list(app.release_command)
    # The name hashes secret values, so the Output is secret; a truncated SHA-256 reveals nothing.
    job_name = pulumi.Output.unsecret(environment.apply(
        lambda env: release_job_name(name, app.image, command, env)))
    return k8s.batch.v1.Job(
        f"{name}-release",
        metadata=meta(job_name, annotations=release_annotations(args.release_timeout_seconds)),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=RELEASE_BACKOFF_LIMIT,
            active_deadline_seconds=args.release_timeout_seconds,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels={**args.labels, **selector_labels(name, RELEASE_COMPONENT)}),
                # `args`, not `command`: like Compose's `command`, it keeps the image's entrypoint.
                spec=_pod_spec(pods, _app_container(pods, args=command), restart_policy="Never"),
            ),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def _deployment(name: str, args: KubernetesAppArgs, meta: Metadata, pods: _PodParts,
                depends_on: list[pulumi.Resource], parent: pulumi.Resource) -> k8s.apps.v1.Deployment:
    app, web_selector = args.app, selector_labels(name, WEB_COMPONENT)
    return k8s.apps.v1.Deployment(
        f"{name}-deployment",
        metadata=meta(name),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=args.min_replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=web_selector),
            strategy=rolling_update_strategy(),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels={**args.labels, **web_selector}),
                spec=_pod_spec(
                    pods,
                    _app_container(
                        pods,
                        ports=[k8s.core.v1.ContainerPortArgs(
                            name=PORT_NAME, container_port=app.port, protocol="TCP")],
                        startup_probe=http_probe(app.health_path, args.hostname, period=5, timeout=2, failures=60),
                        readiness_probe=http_probe(app.health_path, args.hostname, period=5, timeout=2,
                                                   failures=health.FAILS),
                        liveness_probe=http_probe(app.health_path, args.hostname, period=10, timeout=5, failures=6),
                        lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                            sleep=k8s.core.v1.SleepActionArgs(seconds=PRE_STOP_SLEEP_SECONDS))),
                    ),
                    termination_grace_period_seconds=TERMINATION_GRACE_SECONDS,
                    topology_spread_constraints=topology_spread(web_selector, args.zone_spread),
                ),
            ),
        ),
        # The HPA owns spec.replicas after the first deploy (see the module docstring).
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), ignore_changes=["spec.replicas"]),
    )


def _processes_and_schedules(name: str, labels: Mapping[str, str], meta: Metadata, pods: _PodParts,
                             depends_on: list[pulumi.Resource], parent: pulumi.Resource) -> None:
    """A Deployment (+ HPA, + PDB) per process and a CronJob per schedule (components/kubernetes_processes.py).
    They wait for the same things as the web pods: no process or schedule of a new version runs before its
    release command has completed."""
    workload_pods = WorkloadPods(
        app_name=name, labels=labels, meta=meta, pod_spec=functools.partial(_pod_spec, pods),
        container=functools.partial(_app_container, pods), selector=selector_labels,
        spread=lambda selector: topology_spread(selector, pods.args.zone_spread), depends_on=depends_on,
        parent=parent)
    for process in pods.args.app.processes:
        process_objects(workload_pods, process)
    for schedule in pods.args.app.schedules:
        schedule_cronjob(workload_pods, schedule)


def _service(name: str, args: KubernetesAppArgs, meta: Metadata, parent: pulumi.Resource) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        f"{name}-service",
        metadata=meta(name),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="NodePort",
            selector=selector_labels(name, WEB_COMPONENT),
            ports=[k8s.core.v1.ServicePortArgs(name=PORT_NAME, protocol="TCP", port=SERVICE_PORT,
                                               target_port=args.app.port, node_port=args.node_port)],
            # Every node accepts on the NodePort and forwards to a ready pod anywhere, so the load
            # balancer's health check passes on all nodes, not only on those that run a pod.
            external_traffic_policy="Cluster",
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _autoscaler(name: str, args: KubernetesAppArgs, meta: Metadata, deployment: k8s.apps.v1.Deployment,
                parent: pulumi.Resource) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
    return k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{name}-hpa",
        metadata=meta(name),
        spec=cpu_autoscaler_spec(deployment, args.min_replicas, args.max_replicas, args.cpu_target_percent),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _disruption_budget(name: str, meta: Metadata, parent: pulumi.Resource) -> k8s.policy.v1.PodDisruptionBudget:
    return k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb", metadata=meta(name), spec=one_at_a_time_budget(selector_labels(name, WEB_COMPONENT)),
        opts=pulumi.ResourceOptions(parent=parent))


# --- Pure helpers (tested without the runtime) ----------------------------------------------------


DNS_SELECTOR = {"k8s-app": "kube-dns"}
"""CoreDNS pods' label on EKS (the coredns add-on), in ``kube-system``."""

DATA_PORTS = (("postgresql", 5432), ("redis", 6379))
"""What the app reaches inside the VPC: RDS PostgreSQL and ElastiCache."""


def network_policy_specs(app_port: int, web_selector: Mapping[str, str],
                         vpc_cidr: str | None) -> list[tuple[str, k8s.networking.v1.NetworkPolicySpecArgs]]:
    """(name suffix, spec) of the namespace's NetworkPolicies: deny everything in and out, then allow the app's
    real flows. Policies are additive, so each allow only opens what it names.

    - ``default-deny``: every pod, ingress and egress;
    - ``web-ingress``: the web pods' port from the VPC (the ALB reaches it through the NodePort, so the source
      is the ALB or a node; kubelet probes come from the node); it selects only the web pods, so process and
      schedule pods accept no connection at all;
    - ``egress``: every pod (web, release, processes, schedules) to CoreDNS (UDP and TCP 53), to PostgreSQL and
      Redis in the VPC, and HTTPS (443) anywhere (the media bucket on R2, external APIs).
    https://kubernetes.io/docs/concepts/services-networking/network-policies/"""
    def peer_cidr(cidr: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
        return k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr))

    in_vpc = [peer_cidr(vpc_cidr)] if vpc_cidr else None
    dns = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels={"kubernetes.io/metadata.name": "kube-system"}),
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=DNS_SELECTOR))],
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=53) for protocol in ("UDP", "TCP")],
    )
    data = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=in_vpc,
        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port) for _, port in DATA_PORTS],
    )
    https = k8s.networking.v1.NetworkPolicyEgressRuleArgs(
        to=[peer_cidr("0.0.0.0/0")], ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=443)])
    every_pod = k8s.meta.v1.LabelSelectorArgs()
    return [
        ("default-deny", k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=every_pod, policy_types=["Ingress", "Egress"])),
        ("web-ingress", k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(web_selector)),
            policy_types=["Ingress"],
            ingress=[k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=in_vpc, ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=app_port)])],
        )),
        ("egress", k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=every_pod, policy_types=["Egress"], egress=[dns, data, https])),
    ]


def writable_volumes(paths: Sequence[str]) -> dict[str, str]:
    """Path -> emptyDir volume name: ``/tmp`` keeps the volume name ``tmp`` it always had (so the default pod
    template is unchanged); others are ``writable-<n>`` in list order."""
    return {path: TMP_VOLUME if path == "/tmp" else f"writable-{index}" for index, path in enumerate(paths, 1)}


def selector_labels(name: str, component: str) -> dict[str, str]:
    """The only labels selectors use: fixed per component, so a change of tags never touches a selector
    (immutable on a Deployment), and release pods never match the Service, PDB or HPA."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def app_environment(app: AppSpec, *, database_url: str, redis_url: str, media_bucket: str,
                    secret_env: Mapping[str, str]) -> dict[str, str]:
    """The app contract (the same ``contract_environment`` as every phase), refusing URLs without TLS."""
    check_tls_urls(database_url, redis_url)
    return contract_environment(app, database_url=database_url, redis_url=redis_url, media_bucket=media_bucket,
                                secret_env=secret_env)


def check_tls_urls(database_url: str | None, redis_url: str | None) -> None:
    """Raise if a URL would connect without TLS. The messages never echo the URL (it holds a password)."""
    if database_url is not None:
        parts = urlsplit(database_url)
        sslmode = parse_qs(parts.query).get("sslmode", [""])[-1]
        if parts.scheme not in ("postgres", "postgresql") or sslmode not in _TLS_SSLMODES:
            raise ValueError("KubernetesAppArgs.database_url: needs a postgresql:// URL with TLS required "
                             "(sslmode=require, verify-ca or verify-full)")
    if redis_url is not None and not redis_url.startswith("rediss://"):
        raise ValueError("KubernetesAppArgs.redis_url: needs a rediss:// URL (TLS)")


def release_job_name(name: str, image: str, command: Sequence[str], environment: Mapping[str, str]) -> str:
    """``<name>-release-<10 hex>``: the same for the same image, command and environment, new otherwise."""
    payload = json.dumps({"image": image, "command": list(command), "environment": dict(environment)},
                         sort_keys=True, separators=(",", ":"))
    return f"{name}-release-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def release_annotations(timeout_seconds: int) -> dict[str, str]:
    """pulumi-kubernetes' own annotations on the release Job: wait past its deadline, and replace (rerun)
    a Job that is not complete on the next ``pulumi up``."""
    return {
        "pulumi.com/timeoutSeconds": str(timeout_seconds + RELEASE_AWAIT_MARGIN_SECONDS),
        "pulumi.com/replaceUnready": "true",
    }


def resource_limits(cpu_limit: str | None, memory_limit: str) -> dict[str, str]:
    return {**({"cpu": cpu_limit} if cpu_limit else {}), "memory": memory_limit}


def pod_security_context(run_as_user: int) -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=run_as_user,
        run_as_group=run_as_user,
        fs_group=run_as_user,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def container_security_context() -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
    )


def http_probe(path: str, hostname: str | None, *, period: int, timeout: int,
               failures: int) -> k8s.core.v1.ProbeArgs:
    """An HTTP probe of ``path``; with ``hostname``, under the health-check contract. The kubelet uses an
    ``httpHeaders`` entry named Host as the request's Host (kubernetes.io/docs/tasks/configure-pod-container/
    configure-liveness-readiness-startup-probes/, "HTTP probes")."""
    headers = ([k8s.core.v1.HTTPHeaderArgs(name=name, value=value)
                for name, value in health.request_headers(hostname).items()] if hostname is not None else None)
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=PORT_NAME, http_headers=headers),
        period_seconds=period,
        timeout_seconds=timeout,
        failure_threshold=failures,
    )


def topology_spread(selector: Mapping[str, str], zone_spread: bool) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Best-effort spread over zones and nodes. ScheduleAnyway, not DoNotSchedule: with DoNotSchedule a
    zone without a schedulable node (scaled to zero, capacity shortage) leaves new pods Pending and, with
    maxUnavailable 0, wedges the rollout. ``pod-template-hash`` makes each rollout spread on its own, so
    the old ReplicaSet's pods do not skew where the new ones go."""
    keys = (["topology.kubernetes.io/zone"] if zone_spread else []) + ["kubernetes.io/hostname"]
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            topology_key=key,
            max_skew=1,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector)),
            match_label_keys=["pod-template-hash"],
        )
        for key in keys
    ]


def quantity_value(quantity: str) -> float | None:
    """A Kubernetes resource quantity (``250m``, ``1.5``, ``512Mi``) as a number; None if malformed."""
    match = _QUANTITY.fullmatch(quantity)
    if not match:
        return None
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]


def check_args(name: str, args: KubernetesAppArgs) -> None:
    """Every rule the constructor enforces, with the message it raises."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"KubernetesApp name: {name!r} names the Deployment, Service and release Job; allowed: "
                         f"1-{MAX_NAME_LENGTH} lowercase letters, digits and hyphens, starting with a letter and "
                         "not ending with a hyphen")
    if len(args.namespace) > 63 or not DNS_LABEL.fullmatch(args.namespace):
        raise ValueError(f"KubernetesAppArgs.namespace: {args.namespace!r} is not a namespace name; allowed: "
                         "1-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen")
    if args.namespace in RESERVED_NAMESPACES:
        raise ValueError(f"KubernetesAppArgs.namespace: {args.namespace!r} belongs to Kubernetes; the component "
                         "creates and owns its namespace")
    app = args.app
    if app.port < 1024 or app.port > 65535:
        raise ValueError(f"KubernetesAppArgs.app.port: {app.port}; the container runs as non-root without "
                         "capabilities, so it must listen on 1024-65535")
    if not app.health_path.startswith("/"):
        raise ValueError(f"KubernetesAppArgs.app.health_path: {app.health_path!r} must start with '/'")
    missing = [key for key in app.secret_env_names if key not in args.secret_env]
    if missing:
        raise ValueError(f"KubernetesAppArgs.secret_env: no value for {', '.join(missing)} "
                         "(named in app.secret_env_names)")
    unnamed = sorted(key for key in args.secret_env if key not in app.secret_env_names)
    if unnamed:
        # Silently dropping a secret the caller meant the app to have would surface only as an app error.
        raise ValueError(f"KubernetesAppArgs.secret_env: {', '.join(unnamed)} not named in app.secret_env_names")
    if app.registry_server and not app.registry_username:
        raise ValueError("KubernetesAppArgs.app.registry_username: required with app.registry_server")
    if app.registry_server and args.registry_password is None:
        raise ValueError(f"KubernetesAppArgs.registry_password: required to pull from {app.registry_server!r}")
    if not app.registry_server and args.registry_password is not None:
        raise ValueError("KubernetesAppArgs.registry_password: given, but app.registry_server is not set")
    _check_writable_paths(args.writable_paths)
    check_process_names(name, app.processes, app.schedules)
    if args.min_replicas < 2:
        raise ValueError(f"KubernetesAppArgs.min_replicas: {args.min_replicas}; at least 2, so a node drain or "
                         "a failed node never leaves the app without a ready pod")
    if args.max_replicas < args.min_replicas:
        raise ValueError(f"KubernetesAppArgs.max_replicas: {args.max_replicas} is below min_replicas "
                         f"{args.min_replicas}")
    if not 1 <= args.cpu_target_percent <= 100:
        raise ValueError(f"KubernetesAppArgs.cpu_target_percent: {args.cpu_target_percent}; allowed: 1-100")
    quantities = {"cpu_request": args.cpu_request, "memory_request": args.memory_request,
                  "memory_limit": args.memory_limit, "cpu_limit": args.cpu_limit}
    for field_name, quantity in quantities.items():
        if quantity is not None and not quantity_value(quantity):
            raise ValueError(f"KubernetesAppArgs.{field_name}: {quantity!r} is not a positive Kubernetes quantity "
                             "(e.g. '250m', '1', '512Mi', '1Gi')")
    if quantity_value(args.memory_limit) < quantity_value(args.memory_request):
        raise ValueError(f"KubernetesAppArgs.memory_limit: {args.memory_limit!r} is below memory_request "
                         f"{args.memory_request!r}")
    if args.cpu_limit is not None and quantity_value(args.cpu_limit) < quantity_value(args.cpu_request):
        raise ValueError(f"KubernetesAppArgs.cpu_limit: {args.cpu_limit!r} is below cpu_request "
                         f"{args.cpu_request!r}")
    low, high = NODE_PORT_RANGE
    if not low <= args.node_port <= high:
        raise ValueError(f"KubernetesAppArgs.node_port: {args.node_port} is outside the NodePort range "
                         f"{low}-{high}")
    if args.run_as_user < 1:
        raise ValueError(f"KubernetesAppArgs.run_as_user: {args.run_as_user}; must be a non-root uid (1 or more)")
    if args.release_timeout_seconds < 1:
        raise ValueError(f"KubernetesAppArgs.release_timeout_seconds: {args.release_timeout_seconds}; must be "
                         "1 or more")
    check_tls_urls(*(url if isinstance(url, str) else None for url in (args.database_url, args.redis_url)))
    if args.database_role is not None:
        check_master_credentials(args.database_role)


def _check_writable_paths(paths: Sequence[str]) -> None:
    if not paths:
        raise ValueError("KubernetesAppArgs.writable_paths: at least one path; allowed: e.g. ['/tmp']")
    for path in paths:
        if not writable_path_allowed(path):
            raise ValueError(f"KubernetesAppArgs.writable_paths: {path!r}; allowed: {WRITABLE_PATH_ALLOWED}")
        if list(paths).count(path) > 1:
            raise ValueError(f"KubernetesAppArgs.writable_paths: {path!r} is listed twice; allowed: each path once")
