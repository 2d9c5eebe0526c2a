"""Kubernetes's part of the diagram (phase 3): each namespace (with its Pod Security level) inside the EKS
cluster its provider was built from, the Services, Deployments (the web one and each process's),
HorizontalPodAutoscalers and the app's schedules' CronJobs in it, and the edges that carry traffic: node group
to Service on its NodePort, Service to the Deployment its selector matches, Deployment or CronJob to the data
stores it reads (directly or through a Secret that references them).

Left out on purpose: the release Job, the PodDisruptionBudget, the Secrets themselves, and CronJobs that do not
run the app's image (the logical backup, which the backups bucket's edges already tell).
"""

from __future__ import annotations

from typing import Any

from components.testing import RecordedResource
from phasekit.diagram.graph import Graph, as_int
from phasekit.diagram.labels import MEDIA_ACCESS
from phasekit.diagram.model import diagram_id
from phasekit.diagram.readers.aws import cache_label, rds_label
from phasekit.diagram.resource_types import (
    ASG_ATTACHMENT,
    CRON_JOB,
    EKS_CLUSTER,
    ELASTICACHE_GROUP,
    HPA,
    K8S_DEPLOYMENT,
    KUBERNETES_SECRET,
    NAMESPACE,
    NODE_GROUP,
    R2_BUCKET,
    RDS_INSTANCE,
    SERVICE,
    TARGET_GROUP,
)


def read(graph: Graph) -> None:
    namespaces = _namespaces(graph)
    services, deployments, autoscalers = graph.of_type(SERVICE), graph.of_type(K8S_DEPLOYMENT), graph.of_type(HPA)
    autoscaler_of: dict[str, dict[str, Any]] = {}
    for autoscaler in autoscalers:
        spec = graph.inputs(autoscaler)["spec"]
        autoscaler_of[spec["scaleTargetRef"]["name"]] = spec
    for service in services:
        _service(graph, service, namespaces)
    for deployment in deployments:
        _deployment(graph, deployment, namespaces, autoscaler_of)
    for autoscaler in autoscalers:
        _autoscaler(graph, autoscaler, namespaces, deployments)
    app_images = {container["image"] for deployment in deployments
                  for container in graph.inputs(deployment)["spec"]["template"]["spec"]["containers"]}
    for cron_job in graph.of_type(CRON_JOB):
        _cron_job(graph, cron_job, namespaces, app_images)
    _service_edges(graph, services, deployments)


def _cluster_boundary_of(graph: Graph, resource: RecordedResource) -> str | None:
    """The EKS cluster boundary a Kubernetes object lands in, through its provider's dependencies."""
    if resource.provider is None:
        return None
    provider = graph.resource(resource.provider.rsplit("::", 1)[0])
    if provider is None:
        return None
    for cluster in graph.deps(provider, EKS_CLUSTER):
        return diagram_id(graph.inputs(cluster)["name"])
    return None


def _namespaces(graph: Graph) -> dict[str, str]:
    """Namespace name -> its boundary id, for the namespaces in a cluster this diagram draws."""
    namespaces: dict[str, str] = {}
    for namespace in graph.of_type(NAMESPACE):
        cluster = _cluster_boundary_of(graph, namespace)
        if cluster is None:
            continue
        metadata = graph.inputs(namespace)["metadata"]
        enforce = (metadata.get("labels") or {}).get("pod-security.kubernetes.io/enforce")
        label = f"namespace {metadata['name']}" + (f": Pod Security {enforce}" if enforce else "")
        namespaces[metadata["name"]] = graph.boundary(f"ns_{diagram_id(metadata['name'])}", label, "kubernetes",
                                                      cluster)
    return namespaces


def _service(graph: Graph, service: RecordedResource, namespaces: dict[str, str]) -> None:
    inputs = graph.inputs(service)
    boundary = namespaces.get(inputs["metadata"].get("namespace"))
    if boundary is None:
        return
    spec = inputs["spec"]
    details = [f"{spec.get('type', 'ClusterIP')}: "
               + ", ".join(f"node port {as_int(port['nodePort'])} → pod port {as_int(port['targetPort'])}"
                           if port.get("nodePort") else f"port {as_int(port['port'])} → pod port "
                           f"{as_int(port['targetPort'])}" for port in spec["ports"])]
    graph.node(diagram_id(service.name), f"Service {inputs['metadata']['name']}", details, "workload", boundary,
               [service])


def _deployment(graph: Graph, deployment: RecordedResource, namespaces: dict[str, str],
                autoscaler_of: dict[str, dict[str, Any]]) -> None:
    inputs = graph.inputs(deployment)
    boundary = namespaces.get(inputs["metadata"].get("namespace"))
    if boundary is None:
        return
    containers = inputs["spec"]["template"]["spec"]["containers"]
    scaling = autoscaler_of.get(inputs["metadata"].get("name"))
    replicas = (f"{as_int(scaling['minReplicas'])}–{as_int(scaling['maxReplicas'])} pods (HPA)" if scaling
                else f"{as_int(inputs['spec'].get('replicas', 1))} pods")
    node = graph.node(diagram_id(deployment.name), f"Deployment {inputs['metadata']['name']}",
                      [*(container["image"] for container in containers), replicas], "workload", boundary,
                      [deployment])
    _store_edges(graph, node, deployment)


def _cron_job(graph: Graph, cron_job: RecordedResource, namespaces: dict[str, str], app_images: set[str]) -> None:
    """An app schedule's CronJob: one that runs an image a Deployment runs (the app's)."""
    inputs = graph.inputs(cron_job)
    boundary = namespaces.get(inputs["metadata"].get("namespace"))
    containers = inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    if boundary is None or not any(container["image"] in app_images for container in containers):
        return
    spec = inputs["spec"]
    zone = f" ({spec['timeZone']})" if spec.get("timeZone") else ""
    node = graph.node(diagram_id(cron_job.name), f"CronJob {inputs['metadata']['name']}",
                      [f"{spec['schedule']}{zone}", f"concurrencyPolicy {spec.get('concurrencyPolicy', 'Allow')}"],
                      "workload", boundary, [cron_job])
    _store_edges(graph, node, cron_job)


def _store_edges(graph: Graph, node: str, workload: RecordedResource) -> None:
    """Edges from a workload's node to the data stores it references, directly or through a Secret."""
    referenced = graph.deps(workload)
    for secret in graph.deps(workload, KUBERNETES_SECRET):
        referenced += graph.deps(secret)
    stores = {resource.urn: resource for resource in referenced if resource.urn in graph.node_of}
    for store in sorted(stores.values(), key=lambda resource: resource.name):
        if store.type == RDS_INSTANCE:
            graph.edge(node, graph.node_of[store.urn], rds_label(graph, store))
        elif store.type == ELASTICACHE_GROUP:
            graph.edge(node, graph.node_of[store.urn], cache_label(graph, store))
        elif store.type == R2_BUCKET:
            graph.edge(node, graph.node_of[store.urn], MEDIA_ACCESS)


def _autoscaler(graph: Graph, autoscaler: RecordedResource, namespaces: dict[str, str],
                deployments: list[RecordedResource]) -> None:
    inputs = graph.inputs(autoscaler)
    boundary = namespaces.get(inputs["metadata"].get("namespace"))
    if boundary is None:
        return
    spec = inputs["spec"]
    targets = [f"{metric['resource']['name'].upper()} "
               f"{as_int(metric['resource']['target']['averageUtilization'])} %"
               for metric in spec.get("metrics") or [] if metric.get("type") == "Resource"]
    hpa = graph.node(diagram_id(autoscaler.name), "HorizontalPodAutoscaler",
                     [f"{as_int(spec['minReplicas'])}–{as_int(spec['maxReplicas'])} pods",
                      *(f"target {target}" for target in targets)], "control", boundary, [autoscaler])
    for deployment in deployments:
        if graph.inputs(deployment)["metadata"].get("name") == spec["scaleTargetRef"]["name"]:
            graph.edge(hpa, graph.node_of[deployment.urn], "scales", "attachment")


def _service_edges(graph: Graph, services: list[RecordedResource], deployments: list[RecordedResource]) -> None:
    """Node group to Service where a load-balancer target group points at the Service's NodePort, and
    Service to every Deployment whose pod labels its selector matches."""
    node_ports: dict[int, list[str]] = {}
    for attachment in graph.of_type(ASG_ATTACHMENT):
        for target_group in graph.deps(attachment, TARGET_GROUP):
            for node_group in graph.deps(attachment, NODE_GROUP):
                node_ports.setdefault(as_int(graph.inputs(target_group)["port"]), []).append(
                    graph.node_of[node_group.urn])
    for service in services:
        if service.urn not in graph.node_of:
            continue
        spec = graph.inputs(service)["spec"]
        for port in spec["ports"]:
            for nodes in node_ports.get(as_int(port.get("nodePort", -1)), []):
                graph.edge(nodes, graph.node_of[service.urn], f"NodePort {as_int(port['nodePort'])}")
        selector = spec.get("selector") or {}
        for deployment in deployments:
            if deployment.urn not in graph.node_of:
                continue
            labels = graph.inputs(deployment)["spec"]["template"]["metadata"].get("labels") or {}
            if selector and selector.items() <= labels.items():
                for port in spec["ports"]:
                    name = str(port.get("name") or port.get("protocol") or "TCP").upper()
                    graph.edge(graph.node_of[service.urn], graph.node_of[deployment.urn],
                               f"{name} {as_int(port['targetPort'])}")
