"""The app's other processes and its schedules on Kubernetes (phase 3): the builders KubernetesApp calls.

For each ``ProcessSpec`` (components/processes.py), in KubernetesApp's namespace:
- a Deployment ``<app>-<process>``: the web pods' image, env Secret (``envFrom``), pull Secrets, security contexts,
  read-only root with the writable paths and no ServiceAccount token; ``args=command`` (the image's entrypoint
  stays); no ports, no probes (nothing routes to it, and the only health a queue worker has is "it runs": the
  kubelet restarts it when it exits); requests ``cpu`` and ``<memory_mib>Mi``, a memory limit equal to the request
  and no CPU limit; ``terminationGracePeriodSeconds = stop_timeout_seconds`` (SIGTERM, then that long to finish or
  hand back the job in hand); RollingUpdate with ``maxUnavailable 0`` and the web pods' 25 % surge; the web pods'
  topology spread;
- with ``max_count``: a HorizontalPodAutoscaler on CPU (``count``..``max_count``, relative to the ``cpu``
  request), and the Deployment then leaves ``spec.replicas`` to it (``ignore_changes``, as the web Deployment);
  without: no HPA, and Pulumi owns ``replicas = count``;
- a PodDisruptionBudget: ``maxUnavailable 1``, ``unhealthyPodEvictionPolicy AlwaysAllow``.

For each ``ScheduleSpec``: a ``batch/v1`` CronJob ``<app>-<schedule>`` (see ``CRONJOB_*`` below for each field's
reason) whose Job runs once (``backoffLimit 0``, ``restartPolicy Never``) for at most ``timeout_seconds``.

All of them depend on what the web Deployment depends on (the NetworkPolicies, the database-role Job, the release
Job), so no process or schedule of a new version starts before the release command has completed; pulumi-kubernetes
waits for the release Job (``components/kubernetes_app.py``). NetworkPolicies: the namespace's ``egress`` policy
selects every pod (DNS, PostgreSQL and Redis in the VPC, HTTPS), ``web-ingress`` only the web pods, so process and
schedule pods reach what the app reaches and accept no connection.

Does not create: any alert on a failed schedule. A failed run leaves a failed Job (``failedJobsHistoryLimit``)
and a ``BackoffLimitExceeded`` or ``DeadlineExceeded`` event, which ``kubectl get jobs`` shows; nothing notifies
anyone. phasekit's logical backup alerts through CloudWatch metric filters on lines its own script prints
(components/logical_backup.py); a user's image prints no such line, and a Job's failure is not a log line, so that
mechanism does not carry over. A real alert needs something that watches Job status (kube-state-metrics'
``kube_job_status_failed`` scraped into CloudWatch or Prometheus, or an event exporter), which phase 3 does not
install; docs/phase3.md says so.

Cost: nothing by itself; the pods use node capacity (Phase3Stack's node-fit check counts them).
Stateful: nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.processes import ProcessSpec, ScheduleSpec
from components.tuning import ROLLING_SURGE_PERCENT

PROCESS_CPU_TARGET_PERCENT = 70
"""A process's HPA keeps average CPU at this share of its request (the web pods' default)."""

CRONJOB_TIME_ZONE = "Etc/UTC"
"""Schedules are UTC in every phase (the droplets' timers say ``UTC``); ``timeZone`` is GA since Kubernetes 1.27."""

CRONJOB_CONCURRENCY = "Forbid"
"""A tick that finds the previous run still going is skipped, never run beside it (kubernetes.io/docs/concepts/
workloads/controllers/cron-jobs/#concurrency-policy), as the droplets' ``flock`` skips it."""

CRONJOB_STARTING_DEADLINE_SECONDS = 60
"""A run the controller could not start within a minute of its time (controller restart, control-plane upgrade, a
tick Forbid skipped) is skipped, not started late: the droplets' timers do the same (``Persistent=false``). With
a deadline the controller also counts missed runs only within it, so it never reaches the 100 missed runs after
which a CronJob without one stops being scheduled (kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/
#job-creation). Well above the 10 s the controller may need to notice a tick."""

CRONJOB_SUCCESSFUL_HISTORY = 1
CRONJOB_FAILED_HISTORY = 3
"""Finished Jobs (and their pods, so their logs) kept: the last success, and the last three failures for
``kubectl logs job/<name>``."""

SCHEDULE_BACKOFF_LIMIT = 0
"""A run that fails on its own is not retried: the next tick runs it again. A run whose pod is evicted (a node
drain, a scale-in) is started again within the same tick (``DISRUPTION_IGNORED``), so a command that is not
idempotent can run twice for one tick, partly."""

DISRUPTION_IGNORED = k8s.batch.v1.PodFailurePolicyArgs(rules=[k8s.batch.v1.PodFailurePolicyRuleArgs(
    action="Ignore",
    on_pod_conditions=[k8s.batch.v1.PodFailurePolicyOnPodConditionsPatternArgs(type="DisruptionTarget",
                                                                               status="True")])])
"""A run whose pod was evicted (a node drain, an autoscaler's scale-in, a node group upgrade: the pod gets the
``DisruptionTarget`` condition) is started again instead of failing the tick: ``Ignore`` does not count it towards
``backoffLimit`` and the Job creates a replacement pod (kubernetes.io/docs/concepts/workloads/controllers/job/
#pod-failure-policy; GA since 1.31, needs ``restartPolicy: Never``). The run's own failures still fail it at once."""


CRONJOB_NAME_LENGTH = 52
"""A CronJob's name: the controller appends 11 characters to name its Jobs, which must fit a 63-character label
(kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#writing-a-cronjob-spec)."""

OWN_COMPONENTS = ("web", "release", "database-role")
"""Selector components KubernetesApp already uses: a process of that name would select the web or release pods."""


def check_process_names(app_name: str, processes: Sequence[ProcessSpec], schedules: Sequence[ScheduleSpec]) -> None:
    """Refuse names that would collide with the web pods' selector or each other, or a CronJob name too long."""
    seen: set[str] = set()
    for kind, spec in [*(("process", spec) for spec in processes), *(("schedule", spec) for spec in schedules)]:
        if spec.name in OWN_COMPONENTS:
            raise ValueError(f"KubernetesAppArgs.app: {kind} {spec.name!r} would share the selector of KubernetesApp's "
                             f"own pods; allowed: a name other than {', '.join(OWN_COMPONENTS)}")
        if spec.name in seen:
            raise ValueError(f"KubernetesAppArgs.app: {kind} {spec.name!r} is named twice; allowed: each process and "
                             "schedule name once")
        seen.add(spec.name)
        object_name = f"{app_name}-{spec.name}"
        if kind == "schedule" and len(object_name) > CRONJOB_NAME_LENGTH:
            raise ValueError(f"KubernetesAppArgs.app: schedule {spec.name!r} gives the CronJob name {object_name!r} "
                             f"({len(object_name)} characters); allowed: at most {CRONJOB_NAME_LENGTH} (a shorter "
                             "schedule or component name)")


@dataclass(frozen=True)
class WorkloadPods:
    """What every pod of the app shares, as KubernetesApp hands it over (bound to its namespace, Secrets and
    security settings), so this module needs nothing from components/kubernetes_app.py."""

    app_name: str
    labels: Mapping[str, str]
    meta: Callable[..., k8s.meta.v1.ObjectMetaArgs]
    """``meta(name=None, **extra)``: metadata in the namespace with the labels."""

    pod_spec: Callable[..., k8s.core.v1.PodSpecArgs]
    """``pod_spec(container, **extra)``: security context, pull Secrets, writable volumes, no SA token."""

    container: Callable[..., k8s.core.v1.ContainerArgs]
    """``container(resources=..., **extra)``: image, ``envFrom`` the env Secret, security context, mounts."""

    selector: Callable[[str, str], dict[str, str]]
    """``selector_labels(app_name, component)``."""

    spread: Callable[[Mapping[str, str]], list[k8s.core.v1.TopologySpreadConstraintArgs]]
    """The web pods' topology spread for a selector."""

    depends_on: Sequence[pulumi.Resource]
    """The release Job, the database-role Job and the NetworkPolicies: nothing starts before them."""

    parent: pulumi.Resource


def process_resources(spec: ProcessSpec | ScheduleSpec) -> k8s.core.v1.ResourceRequirementsArgs:
    """Requests ``cpu`` and ``<memory_mib>Mi``; memory limit = request (memory is not compressible, and a pod above
    its request is evicted first); no CPU limit (it throttles even on an idle node)."""
    memory = f"{spec.memory_mib}Mi"
    return k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": spec.cpu, "memory": memory},
                                                limits={"memory": memory})


def process_objects(pods: WorkloadPods, process: ProcessSpec
                         ) -> tuple[k8s.apps.v1.Deployment, k8s.autoscaling.v2.HorizontalPodAutoscaler | None,
                                    k8s.policy.v1.PodDisruptionBudget]:
    """The Deployment, its HPA (None without ``max_count``) and its PDB."""
    deployment = process_deployment(pods, process)
    autoscaler = process_autoscaler(pods, process, deployment) if process.max_count is not None else None
    return deployment, autoscaler, process_disruption_budget(pods, process)


def process_deployment(pods: WorkloadPods, process: ProcessSpec) -> k8s.apps.v1.Deployment:
    object_name = f"{pods.app_name}-{process.name}"
    selector = pods.selector(pods.app_name, process.name)
    autoscaled = process.max_count is not None
    return k8s.apps.v1.Deployment(
        f"{object_name}-deployment",
        metadata=pods.meta(object_name),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=process.count,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            strategy=rolling_update_strategy(),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels={**pods.labels, **selector}),
                spec=pods.pod_spec(
                    pods.container(resources=process_resources(process), args=list(process.command)),
                    termination_grace_period_seconds=process.stop_timeout_seconds,
                    topology_spread_constraints=pods.spread(selector),
                ),
            ),
        ),
        # With an HPA, it owns spec.replicas after the first deploy (as for the web Deployment).
        opts=pulumi.ResourceOptions(parent=pods.parent, depends_on=list(pods.depends_on),
                                    ignore_changes=["spec.replicas"] if autoscaled else None),
    )


def process_autoscaler(pods: WorkloadPods, process: ProcessSpec, deployment: k8s.apps.v1.Deployment
                       ) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
    object_name = f"{pods.app_name}-{process.name}"
    return k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{object_name}-hpa",
        metadata=pods.meta(object_name),
        spec=cpu_autoscaler_spec(deployment, process.count, process.max_count, PROCESS_CPU_TARGET_PERCENT),
        opts=pulumi.ResourceOptions(parent=pods.parent),
    )


def rolling_update_strategy() -> k8s.apps.v1.DeploymentStrategyArgs:
    """Every Deployment of the app (web pods and processes) rolls without going below its ready count: new pods
    start first (``ROLLING_SURGE_PERCENT``, which the connection and node sizing count), old ones stop after."""
    return k8s.apps.v1.DeploymentStrategyArgs(
        type="RollingUpdate",
        rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
            max_unavailable=0, max_surge=f"{ROLLING_SURGE_PERCENT}%"),
    )


def one_at_a_time_budget(selector: Mapping[str, str]) -> k8s.policy.v1.PodDisruptionBudgetSpecArgs:
    """maxUnavailable 1 (not minAvailable 1): a drain takes one pod at a time however far the pods have scaled out,
    where minAvailable 1 would let it evict all but one. AlwaysAllow: a pod that is not ready anyway (crash-looping)
    never blocks a node drain."""
    return k8s.policy.v1.PodDisruptionBudgetSpecArgs(
        max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(selector)),
        unhealthy_pod_eviction_policy="AlwaysAllow")


def cpu_autoscaler_spec(deployment: k8s.apps.v1.Deployment, min_replicas: int, max_replicas: int | None,
                        target_percent: int) -> k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs:
    """An HPA spec scaling ``deployment`` between the bounds to keep its average CPU at ``target_percent`` of the
    pods' request (the web pods' and every process's)."""
    return k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
        scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
            api_version="apps/v1", kind="Deployment", name=deployment.metadata.apply(lambda metadata: metadata.name)),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metrics=[k8s.autoscaling.v2.MetricSpecArgs(
            type="Resource",
            resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                name="cpu",
                target=k8s.autoscaling.v2.MetricTargetArgs(type="Utilization", average_utilization=target_percent),
            ),
        )],
    )


def process_disruption_budget(pods: WorkloadPods, process: ProcessSpec) -> k8s.policy.v1.PodDisruptionBudget:
    object_name = f"{pods.app_name}-{process.name}"
    return k8s.policy.v1.PodDisruptionBudget(
        f"{object_name}-pdb",
        metadata=pods.meta(object_name),
        spec=one_at_a_time_budget(pods.selector(pods.app_name, process.name)),
        opts=pulumi.ResourceOptions(parent=pods.parent),
    )


def schedule_cronjob(pods: WorkloadPods, schedule: ScheduleSpec) -> k8s.batch.v1.CronJob:
    object_name = f"{pods.app_name}-{schedule.name}"
    selector = pods.selector(pods.app_name, schedule.name)
    return k8s.batch.v1.CronJob(
        f"{object_name}-cronjob",
        metadata=pods.meta(object_name),
        spec=k8s.batch.v1.CronJobSpecArgs(
            schedule=schedule.cron,
            time_zone=CRONJOB_TIME_ZONE,
            concurrency_policy=CRONJOB_CONCURRENCY,
            starting_deadline_seconds=CRONJOB_STARTING_DEADLINE_SECONDS,
            successful_jobs_history_limit=CRONJOB_SUCCESSFUL_HISTORY,
            failed_jobs_history_limit=CRONJOB_FAILED_HISTORY,
            job_template=k8s.batch.v1.JobTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=dict(pods.labels)),
                spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=SCHEDULE_BACKOFF_LIMIT,
                    pod_failure_policy=DISRUPTION_IGNORED,
                    # Past it the Job's pods are killed and the Job fails with DeadlineExceeded.
                    active_deadline_seconds=schedule.timeout_seconds,
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels={**pods.labels, **selector}),
                        spec=pods.pod_spec(
                            pods.container(resources=process_resources(schedule), args=list(schedule.command)),
                            restart_policy="Never",
                        ),
                    ),
                ),
            ),
        ),
        opts=pulumi.ResourceOptions(parent=pods.parent, depends_on=list(pods.depends_on)),
    )
