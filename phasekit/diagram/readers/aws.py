"""AWS's part of the diagram (phase 3): the VPC split into public and private subnets, NAT gateways, the
Application Load Balancer, the EKS control plane and its managed node groups, RDS, ElastiCache and the SNS
alerts topic.

A subnet is public when its route table routes to an internet gateway; a resource sits in the zone of the
subnets it is placed in (directly, or through an RDS / ElastiCache subnet group). Who may reach a resource
comes from its security groups; a rule that admits another security group is resolved through the
group's dependencies and named by what uses that group (the node group's launch template, the ALB).
Left out on purpose: IAM, KMS, log groups, route tables, EKS add-ons and access entries, each alarm (the
topic's node counts them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from components.testing import UNKNOWN_MASK, RecordedResource
from phasekit.diagram.graph import Graph, as_int, holds_data
from phasekit.diagram.labels import describe_sources
from phasekit.diagram.model import diagram_id
from phasekit.diagram.resource_types import (
    ACM_CERTIFICATE,
    ALB,
    ASG_ATTACHMENT,
    AWS_PROVIDER,
    AWS_VPC,
    CACHE_SUBNET_GROUP,
    EKS_CLUSTER,
    ELASTICACHE_GROUP,
    INTERNET_GATEWAY,
    LAUNCH_TEMPLATE,
    LISTENER,
    METRIC_ALARM,
    NAT_GATEWAY,
    NODE_GROUP,
    ORIGIN_CA_CERTIFICATE,
    RDS_INSTANCE,
    RDS_PARAMETER_GROUP,
    RDS_SUBNET_GROUP,
    ROUTE_TABLE,
    ROUTE_TABLE_ASSOCIATION,
    SECURITY_GROUP,
    SECURITY_GROUP_INGRESS_RULE,
    SNS_SUBSCRIPTION,
    SNS_TOPIC,
    SUBNET,
    TARGET_GROUP,
)

ENGINE_NAMES = {"postgres": "PostgreSQL", "valkey": "Valkey", "redis": "Redis"}
SubnetClass = Literal["public", "private"]


@dataclass
class Subnets:
    """Which subnets are public: the one fact every placement needs."""

    class_of: dict[str, SubnetClass] = field(default_factory=dict)
    """Subnet URN -> public (routes to an internet gateway) or private."""


def _known(value: Any) -> bool:
    return value is not None and value != UNKNOWN_MASK


def read(graph: Graph) -> None:
    vpcs = graph.of_type(AWS_VPC)
    if not vpcs:
        return
    subnets = Subnets()
    for association in graph.of_type(ROUTE_TABLE_ASSOCIATION):
        tables = graph.deps(association, ROUTE_TABLE)
        public = any(graph.deps(table, INTERNET_GATEWAY) for table in tables)
        for subnet in graph.deps(association, SUBNET):
            subnets.class_of[subnet.urn] = "public" if public else "private"
    region = _region(graph)
    for vpc in vpcs:
        graph.boundary(diagram_id(vpc.name), f"VPC {graph.inputs(vpc)['cidrBlock']}", "vpc", region)
    for nat in graph.of_type(NAT_GATEWAY):
        zones = [graph.inputs(subnet)["availabilityZone"] for subnet in graph.deps(nat, SUBNET)]
        graph.node(diagram_id(nat.name), "NAT gateway", zones, "entry", _placement(graph, subnets, nat), [nat])
    for alb in graph.of_type(ALB):
        _alb(graph, subnets, alb)
    for cluster in graph.of_type(EKS_CLUSTER):
        _eks(graph, subnets, cluster)
    for instance in graph.of_type(RDS_INSTANCE):
        _rds(graph, subnets, instance)
    for cache in graph.of_type(ELASTICACHE_GROUP):
        _cache(graph, subnets, cache)
    for topic in graph.of_type(SNS_TOPIC):
        alarms = graph.dependents(topic, METRIC_ALARM)
        emails = sorted(graph.inputs(subscription)["endpoint"]
                        for subscription in graph.dependents(topic, SNS_SUBSCRIPTION)
                        if graph.inputs(subscription).get("protocol") == "email")
        graph.node(diagram_id(topic.name), "SNS alerts topic",
                   [f"{len(alarms)} CloudWatch alarms", f"e-mail: {', '.join(emails)}"], "control", region,
                   [topic])


# --- Where things sit ---------------------------------------------------------------------------------


def _region(graph: Graph) -> str:
    """The region boundary: the provider's region, or else the first subnet's zone without its letter."""
    providers = [graph.inputs(provider).get("region") for provider in graph.of_type(AWS_PROVIDER)]
    zones = sorted(graph.inputs(subnet)["availabilityZone"] for subnet in graph.of_type(SUBNET))
    region = next((name for name in providers if _known(name)), None) or (zones[0][:-1] if zones else "")
    return graph.boundary(f"aws_{diagram_id(region)}", f"AWS {region}", "aws", None)


def _subnets_of(graph: Graph, resource: RecordedResource) -> list[RecordedResource]:
    """Subnets a resource is placed in, directly or through an RDS / ElastiCache subnet group."""
    subnets = graph.deps(resource, SUBNET)
    for group in graph.deps(resource, RDS_SUBNET_GROUP, CACHE_SUBNET_GROUP):
        subnets += graph.deps(group, SUBNET)
    return subnets


def _placement(graph: Graph, subnets: Subnets, resource: RecordedResource) -> str:
    """The public or private zone of ``resource``'s VPC; the VPC itself when it spans both."""
    placed = _subnets_of(graph, resource)
    classes: set[SubnetClass] = {subnets.class_of.get(subnet.urn, "private") for subnet in placed}
    vpcs = [vpc for subnet in placed for vpc in graph.deps(subnet, AWS_VPC)]
    if not vpcs:
        return _region(graph)
    vpc = diagram_id(vpcs[0].name)
    if len(classes) != 1:
        return vpc
    kind = classes.pop()
    zones = sorted({graph.inputs(subnet)["availabilityZone"] for subnet in graph.of_type(SUBNET)
                    if subnets.class_of.get(subnet.urn, "private") == kind})
    return graph.boundary(f"{vpc}_{kind}", f"{kind} subnets: {', '.join(zones)}",
                          "public" if kind == "public" else "private", vpc)


# --- Who may reach what -------------------------------------------------------------------------------


def security_group_sources(graph: Graph, resource: RecordedResource, port: int) -> str:
    """Who ``resource``'s security groups admit on ``port``, resolving SG references by dependency."""
    for group in graph.deps(resource, SECURITY_GROUP):
        for rule in graph.inputs(group).get("ingress") or []:
            if not as_int(rule["fromPort"]) <= port <= as_int(rule["toPort"]):
                continue
            if rule.get("cidrBlocks"):
                return describe_sources(rule["cidrBlocks"])
            referenced = graph.deps(group, SECURITY_GROUP)
            if rule.get("securityGroups") and referenced:
                return " and ".join(_security_group_owner(graph, other) for other in referenced) + " only"
    return "no security group rule"


def _security_group_owner(graph: Graph, group: RecordedResource) -> str:
    for template in graph.dependents(group, LAUNCH_TEMPLATE):
        if graph.dependents(template, NODE_GROUP):
            return "EKS node security group"
    if graph.dependents(group, ALB):
        return "ALB security group"
    return f"security group {group.name}"


def rds_label(graph: Graph, instance: RecordedResource) -> str:
    """The label of a client's edge to an RDS instance: engine, port, TLS, and who its SG admits."""
    inputs = graph.inputs(instance)
    port = as_int(inputs.get("port", 5432))
    tls_only = any(parameter.get("name") == "rds.force_ssl" and str(parameter.get("value")) == "1"
                   for group in graph.deps(instance, RDS_PARAMETER_GROUP)
                   for parameter in graph.inputs(group).get("parameters") or [])
    engine = ENGINE_NAMES.get(inputs["engine"], inputs["engine"])
    return (f"{engine} {port}" + (", TLS required" if tls_only else "")
            + f" ({security_group_sources(graph, instance, port)})")


def cache_label(graph: Graph, cache: RecordedResource) -> str:
    """The label of a client's edge to an ElastiCache group: engine, port, TLS, and who its SG admits."""
    inputs = graph.inputs(cache)
    port = as_int(inputs.get("port", 6379))
    return (f"{ENGINE_NAMES.get(inputs['engine'], inputs['engine'])} {port}"
            + (", TLS" if inputs.get("transitEncryptionEnabled") else "")
            + f" ({security_group_sources(graph, cache, port)})")


# --- Entry, compute and stores ------------------------------------------------------------------------


def _alb(graph: Graph, subnets: Subnets, alb: RecordedResource) -> None:
    inputs = graph.inputs(alb)
    details = ["internal" if inputs.get("internal") else "internet-facing"]
    for listener in graph.dependents(alb, LISTENER):
        listener_inputs = graph.inputs(listener)
        details.append(f"{listener_inputs['protocol']} {as_int(listener_inputs['port'])}, "
                       f"{listener_inputs.get('sslPolicy', 'no TLS')}")
        for certificate in graph.deps(listener, ACM_CERTIFICATE):
            if graph.deps(certificate, ORIGIN_CA_CERTIFICATE):
                details.append("Cloudflare Origin CA certificate (ACM)")
    graph.node(diagram_id(alb.name), "Application Load Balancer", details, "entry", _placement(graph, subnets, alb),
               [alb])


def _eks(graph: Graph, subnets: Subnets, cluster: RecordedResource) -> None:
    """The cluster as a boundary (the Kubernetes reader puts namespaces in it), its control plane and
    node groups."""
    inputs = graph.inputs(cluster)
    boundary = graph.boundary(diagram_id(inputs["name"]),
                              f"EKS cluster {inputs['name']}: Kubernetes {inputs['version']}", "kubernetes",
                              _placement(graph, subnets, cluster))
    access = inputs.get("vpcConfig") or {}
    public_cidrs = access.get("publicAccessCidrs") or []
    endpoint = ("API endpoint: public (allow-listed) + private" if access.get("endpointPublicAccess")
                else "API endpoint: private only")
    details = [endpoint]
    if inputs.get("encryptionConfig"):
        details.append("Secrets encrypted with KMS")
    control_plane = graph.node(f"{boundary}_control_plane", "EKS control plane", details, "control", boundary,
                               [cluster])
    if access.get("endpointPublicAccess") and public_cidrs:
        graph.edge(graph.admin_node(public_cidrs), control_plane, "HTTPS 443 (Kubernetes API, admins only)")
    for node_group in graph.dependents(cluster, NODE_GROUP):
        _node_group(graph, node_group, boundary)


def _node_group(graph: Graph, node_group: RecordedResource, boundary: str) -> None:
    inputs = graph.inputs(node_group)
    scaling = inputs["scalingConfig"]
    details = [f"{as_int(scaling['minSize'])}–{as_int(scaling['maxSize'])} × {', '.join(inputs['instanceTypes'])} "
               f"(desired {as_int(scaling['desiredSize'])})"]
    for template in graph.deps(node_group, LAUNCH_TEMPLATE):
        template_inputs = graph.inputs(template)
        if (template_inputs.get("metadataOptions") or {}).get("httpTokens") == "required":
            details.append("IMDSv2 only")
        if any(str((mapping.get("ebs") or {}).get("encrypted")).lower() == "true"
               for mapping in template_inputs.get("blockDeviceMappings") or []):
            details.append("encrypted root volumes")
    nodes = graph.node(diagram_id(node_group.name), "managed node group", details, "compute", boundary,
                       [node_group])
    for attachment in graph.dependents(node_group, ASG_ATTACHMENT):
        for target_group in graph.deps(attachment, TARGET_GROUP):
            _alb_to_nodes(graph, target_group, nodes)
    _nat_egress(graph, node_group, nodes)


def _alb_to_nodes(graph: Graph, target_group: RecordedResource, nodes: str) -> None:
    inputs = graph.inputs(target_group)
    port = as_int(inputs["port"])
    for listener in graph.dependents(target_group, LISTENER):
        for alb in graph.deps(listener, ALB):
            alb_groups = {group.urn for group in graph.deps(alb, SECURITY_GROUP)}
            from_alb_only = any(
                as_int(graph.inputs(rule).get("fromPort", -1)) == port
                and alb_groups & {group.urn for group in graph.deps(rule, SECURITY_GROUP)}
                for rule in graph.of_type(SECURITY_GROUP_INGRESS_RULE))
            graph.edge(graph.node_of[alb.urn], nodes, f"{inputs['protocol']} {port}"
                       + (" (ALB security group only)" if from_alb_only else ""))


def _nat_egress(graph: Graph, resource: RecordedResource, source: str) -> None:
    for subnet in _subnets_of(graph, resource):
        for association in graph.dependents(subnet, ROUTE_TABLE_ASSOCIATION):
            for table in graph.deps(association, ROUTE_TABLE):
                for nat in graph.deps(table, NAT_GATEWAY):
                    graph.edge(source, graph.node_of[nat.urn], "egress to the internet")


def _rds(graph: Graph, subnets: Subnets, instance: RecordedResource) -> None:
    inputs = graph.inputs(instance)
    engine = ENGINE_NAMES.get(inputs["engine"], inputs["engine"])
    details = [f"{inputs['instanceClass']}, " + ("Multi-AZ (standby in another zone)" if inputs.get("multiAz")
                                                  else "single zone")]
    storage = f"{as_int(inputs['allocatedStorage'])}"
    if inputs.get("maxAllocatedStorage"):
        storage += f"–{as_int(inputs['maxAllocatedStorage'])}"
    details.append(f"{storage} GiB {inputs.get('storageType', '')}".rstrip()
                   + (", encrypted" if inputs.get("storageEncrypted") else ""))
    if inputs.get("backupRetentionPeriod"):
        details.append(f"backups {as_int(inputs['backupRetentionPeriod'])} days"
                       + (", deletion protection" if inputs.get("deletionProtection") else ""))
    graph.node(diagram_id(instance.name), f"RDS {engine} {inputs['engineVersion']}", details, "store",
               _placement(graph, subnets, instance), [instance], stateful=holds_data(instance))


def _cache(graph: Graph, subnets: Subnets, cache: RecordedResource) -> None:
    inputs = graph.inputs(cache)
    engine = ENGINE_NAMES.get(inputs["engine"], inputs["engine"])
    details = [f"{as_int(inputs['numCacheClusters'])} × {inputs['nodeType']}"
               + (", automatic failover" if inputs.get("automaticFailoverEnabled") else "")
               + (", Multi-AZ" if inputs.get("multiAzEnabled") else "")]
    encryption = [text for flag, text in (("transitEncryptionEnabled", "TLS"), ("authToken", "auth token"),
                                          ("atRestEncryptionEnabled", "encrypted at rest"))
                  if inputs.get(flag)]
    if encryption:
        details.append(", ".join(encryption))
    graph.node(diagram_id(cache.name), f"ElastiCache {engine} {inputs['engineVersion']}", details, "store",
               _placement(graph, subnets, cache), [cache], stateful=holds_data(cache))
