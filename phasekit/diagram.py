"""Topology diagrams of a stack's offline plan: Mermaid, Graphviz DOT and SVG, grouped by network boundary.

``topology(plan)`` reads the plan's recording, never the phase number: which resources exist, how they
depend on each other, and the inputs that decide who may talk to whom (firewall rules, security groups,
load-balancer forwarding rules, route tables, node-group sizes, ``multiAz``). Phase 2 with one app droplet
therefore draws a reserved IP in front of one droplet, and with three a load balancer in front of three.

The recording is a preview, so ids and addresses are unknown: a reference such as a firewall's
``dropletIds`` or a security group's ``securityGroups`` is resolved through the resource's dependencies.
Where dependencies alone are ambiguous (a firewall depends on the droplets it protects and on the ones its
outbound rules name), the components' naming convention decides: children are named after their
component (``split-app-firewall`` protects ``split-app-0``, ``split-app-1``).

Left out on purpose, to keep the pictures readable: IAM roles and policies, KMS keys, log groups, route
tables, EKS add-ons and access entries, the release Job, the PodDisruptionBudget, generated passwords and
certificates (the ALB's certificate shows as a detail), and each alarm (one node per provider counts them).

Output is deterministic (no timestamps; stable ordering), so the committed ``docs/diagrams`` can be
checked for staleness. Rendering the SVG needs Graphviz's ``dot`` (Debian package ``graphviz``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from components.testing import CLOUDFLARE_IP_RANGES, UNKNOWN_MASK, RecordedResource, Recording
from infra.errors import ConfigError
from phasekit.change_risk import data_held
from phasekit.plan import Plan, masked_inputs

BoundaryKind = Literal["internet", "cloudflare", "digitalocean", "aws", "vpc", "public", "private", "kubernetes"]
NodeKind = Literal["actor", "edge", "entry", "compute", "workload", "control", "store"]
EdgeKind = Literal["traffic", "attachment"]


@dataclass(frozen=True)
class Boundary:
    id: str
    label: str
    kind: BoundaryKind
    parent: str | None
    """Enclosing boundary's id; None at the top level."""


@dataclass(frozen=True)
class Node:
    id: str
    title: str
    details: tuple[str, ...]
    kind: NodeKind
    boundary: str
    stateful: bool = False
    """Protected in the plan (holds data): drawn with a heavy border."""


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    kind: EdgeKind = "traffic"


@dataclass(frozen=True)
class Topology:
    """What a diagram shows; ``mermaid_from`` and ``graphviz_dot_from`` render it, in this order."""

    stack: str
    phase: int
    boundaries: tuple[Boundary, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def __post_init__(self) -> None:
        ids = [boundary.id for boundary in self.boundaries] + [node.id for node in self.nodes]
        duplicates = sorted({item for item in ids if ids.count(item) > 1})
        if duplicates:
            raise ValueError(f"diagram ids must be unique across boundaries and nodes: {', '.join(duplicates)}")

    @property
    def title(self) -> str:
        return f"phasekit stack {self.stack} (phase {self.phase})"


# --- Resource types read from the recording -------------------------------------------------------

DROPLET = "digitalocean:index/droplet:Droplet"
DO_FIREWALL = "digitalocean:index/firewall:Firewall"
DO_VOLUME = "digitalocean:index/volume:Volume"
DO_VPC = "digitalocean:index/vpc:Vpc"
DO_LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"
RESERVED_IP = "digitalocean:index/reservedIp:ReservedIp"
RESERVED_IP_ASSIGNMENT = "digitalocean:index/reservedIpAssignment:ReservedIpAssignment"
DO_ALERT = "digitalocean:index/monitorAlert:MonitorAlert"
REMOTE_COMMAND = "command:remote:Command"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
ZONE_SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
R2_BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
ORIGIN_CA_CERTIFICATE = "cloudflare:index/originCaCertificate:OriginCaCertificate"
AWS_PROVIDER = "pulumi:providers:aws"
AWS_VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE_ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ALB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ASG_ATTACHMENT = "aws:autoscaling/attachment:Attachment"
ACM_CERTIFICATE = "aws:acm/certificate:Certificate"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
RDS_SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
CACHE_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_SUBNET_GROUP = "aws:elasticache/subnetGroup:SubnetGroup"
SNS_TOPIC = "aws:sns/topic:Topic"
SNS_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
KUBERNETES_SECRET = "kubernetes:core/v1:Secret"

DATA_PORTS = frozenset({5432, 6379, 6432})
PORT_NAMES = {22: "SSH", 80: "HTTP", 443: "HTTPS", 5432: "PostgreSQL", 6379: "Redis", 6432: "PgBouncer"}
SSL_MODES = {"strict": "Full (strict)", "full": "Full", "flexible": "Flexible", "off": "Off"}
ENGINE_NAMES = {"postgres": "PostgreSQL", "valkey": "Valkey", "redis": "Redis"}
DO_ALERT_METRICS = {"cpu": "CPU", "memory_utilization_percent": "memory", "disk_utilization_percent": "disk"}
# Words Mermaid's flowchart grammar or DOT's reads as keywords when they stand alone as an id.
_RESERVED_IDS = frozenset({"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click",
                           "linkstyle", "direction", "default", "node", "edge", "digraph", "strict"})
EVERYONE = frozenset({"0.0.0.0/0", "::/0"})
CLOUDFLARE_CIDRS = frozenset(CLOUDFLARE_IP_RANGES["ipv4Cidrs"] + CLOUDFLARE_IP_RANGES["ipv6Cidrs"])


def describe_sources(cidrs: Iterable[str]) -> str:
    """Who an address allow-list admits, in words: the diagrams' ``(... only)`` suffix."""
    addresses = sorted(set(cidrs))
    if not addresses:
        return "nobody"
    if EVERYONE & set(addresses):
        return "anyone"
    if set(addresses) <= CLOUDFLARE_CIDRS:
        return "Cloudflare IPs only"
    if len(addresses) <= 2:
        return f"{', '.join(addresses)} only"
    return f"{len(addresses)} CIDRs only"


def port_label(port: int) -> str:
    name = PORT_NAMES.get(port)
    return f"{name} {port}" if name else f"TCP {port}"


def diagram_id(name: str) -> str:
    """A resource's logical name as an identifier both Mermaid and DOT accept unquoted."""
    id = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "unnamed"
    if id[0].isdigit() or id.lower() in _RESERVED_IDS:
        id = f"r_{id}"
    return id


def _named_after(owner: str, name: str) -> bool:
    return name == owner or name.startswith(owner + "-")


def _known(value: Any) -> bool:
    return value is not None and value != UNKNOWN_MASK


def _int(value: Any) -> int:
    return int(value)


# --- Building the model ---------------------------------------------------------------------------


@dataclass
class _DropletGroup:
    """Droplets sharing one firewall: one role, one node in the diagram."""

    id: str
    droplets: list[RecordedResource]
    firewall: RecordedResource | None
    inbound: list[dict[str, Any]] = field(default_factory=list)
    role: str = "private"

    @property
    def public_facing(self) -> bool:
        """Serves something other than SSH to addresses outside the VPC (directly or through a balancer)."""
        return any(_rule_port(rule) != 22 and (rule.get("sourceAddresses") or rule.get("sourceLoadBalancerUids"))
                   for rule in self.inbound)

    def web_sources(self, port: int) -> list[str] | None:
        for rule in self.inbound:
            if _rule_port(rule) == port and rule.get("sourceAddresses"):
                return list(rule["sourceAddresses"])
        return None

    def admits_load_balancer(self, port: int) -> bool:
        return any(_rule_port(rule) == port and rule.get("sourceLoadBalancerUids") for rule in self.inbound)


def _rule_port(rule: dict[str, Any]) -> int | None:
    port = rule.get("portRange")
    return int(port) if isinstance(port, str) and port.isdigit() else None


class _Builder:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.recording: Recording = plan.recording
        self._by_urn = {resource.urn: resource for resource in self.recording.resources}
        self._inputs: dict[str, dict[str, Any]] = {}
        self.boundaries: dict[str, Boundary] = {}
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        self.node_of: dict[str, str] = {}
        """Resource URN -> the node that stands for it."""
        self.admins: dict[tuple[str, ...], str] = {}
        self.groups: list[_DropletGroup] = []
        self.group_of: dict[str, _DropletGroup] = {}
        self.subnet_class: dict[str, Literal["public", "private"]] = {}
        """AWS subnet URN -> public (routes to an internet gateway) or private."""

    # Recording access -----------------------------------------------------------------------------

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return sorted(self.recording.of_type(type_token), key=lambda resource: resource.name)

    def inputs(self, resource: RecordedResource) -> dict[str, Any]:
        if resource.urn not in self._inputs:
            self._inputs[resource.urn] = masked_inputs(resource)
        return self._inputs[resource.urn]

    def deps(self, resource: RecordedResource, *types: str) -> list[RecordedResource]:
        found = [self._by_urn[urn] for urn in sorted(set(resource.dependencies)) if urn in self._by_urn]
        return sorted((dep for dep in found if not types or dep.type in types), key=lambda dep: dep.name)

    def dependents(self, resource: RecordedResource, *types: str) -> list[RecordedResource]:
        return sorted((other for other in self.recording.resources
                       if resource.urn in other.dependencies and (not types or other.type in types)),
                      key=lambda other: other.name)

    # Model assembly -------------------------------------------------------------------------------

    def boundary(self, id: str, label: str, kind: BoundaryKind, parent: str | None) -> str:
        self.boundaries.setdefault(id, Boundary(id=id, label=label, kind=kind, parent=parent))
        return id

    def node(self, id: str, title: str, details: Sequence[str], kind: NodeKind, boundary: str,
             resources: Sequence[RecordedResource] = (), stateful: bool = False) -> str:
        self.nodes[id] = Node(id=id, title=title, details=tuple(details), kind=kind, boundary=boundary,
                              stateful=stateful)
        for resource in resources:
            self.node_of[resource.urn] = id
        return id

    def edge(self, source: str, target: str, label: str, kind: EdgeKind = "traffic") -> None:
        candidate = Edge(source=source, target=target, label=label, kind=kind)
        if candidate not in self.edges:
            self.edges.append(candidate)

    def admin_node(self, cidrs: Sequence[str]) -> str:
        key = tuple(sorted(cidrs))
        if key not in self.admins:
            id = "admins" if not self.admins else f"admins_{len(self.admins) + 1}"
            self.admins[key] = self.node(id, "Admins", [", ".join(key)], "actor", "internet")
        return self.admins[key]

    def build(self) -> Topology:
        self.boundary("internet", "Internet", "internet", None)
        self.node("users", "Users", ["browsers, API clients"], "actor", "internet")
        self.cloudflare_nodes()
        self.digitalocean()
        self.aws()
        self.kubernetes()
        self.cloudflare_edges()
        order = {id: index for index, id in enumerate(self.nodes)}
        edges = sorted(self.edges, key=lambda edge: (order[edge.source], order[edge.target], edge.label))
        used: set[str] = set()
        for node in self.nodes.values():
            boundary: str | None = node.boundary
            while boundary is not None:
                used.add(boundary)
                boundary = self.boundaries[boundary].parent
        return Topology(stack=self.plan.stack, phase=self.plan.phase,
                        boundaries=tuple(b for b in self.boundaries.values() if b.id in used),
                        nodes=tuple(self.nodes.values()), edges=tuple(edges))

    # Cloudflare -----------------------------------------------------------------------------------

    def zone_settings(self) -> dict[str, str]:
        return {self.inputs(setting)["settingId"]: str(self.inputs(setting)["value"])
                for setting in self.of_type(ZONE_SETTING)}

    def cloudflare_nodes(self) -> None:
        records, buckets = self.of_type(DNS_RECORD), self.of_type(R2_BUCKET)
        if not records and not buckets:
            return
        self.boundary("cloudflare", "Cloudflare", "cloudflare", None)
        settings = self.zone_settings()
        for record in records:
            inputs = self.inputs(record)
            details = [f"DNS {inputs['type']}, proxied (CDN, WAF)" if inputs.get("proxied")
                       else f"DNS {inputs['type']}, DNS only"]
            if inputs.get("proxied") and "ssl" in settings:
                details.append(f"SSL/TLS {SSL_MODES.get(settings['ssl'], settings['ssl'])}")
            if inputs.get("proxied") and "min_tls_version" in settings:
                details.append(f"visitors: TLS {settings['min_tls_version']}+")
            self.node(diagram_id(record.name), inputs["name"], details, "edge", "cloudflare", [record])
        for bucket in buckets:
            self.node(diagram_id(bucket.name), "R2 bucket", [self.inputs(bucket)["name"]], "store", "cloudflare",
                      [bucket], stateful=_holds_data(bucket))

    def cloudflare_edges(self) -> None:
        settings = self.zone_settings()
        origin_port = 80 if settings.get("ssl") in ("flexible", "off") else 443
        origin_types = (RESERVED_IP, DO_LOAD_BALANCER, ALB, DROPLET)
        for record in self.of_type(DNS_RECORD):
            record_node = self.node_of[record.urn]
            origins = [dep for dep in self.deps(record, *origin_types) if dep.urn in self.node_of]
            for origin in origins:
                admitted = self.admission(origin, origin_port)
                if self.inputs(record).get("proxied"):
                    self.edge("users", record_node, port_label(443))
                    self.edge(record_node, self.node_of[origin.urn], f"{port_label(origin_port)} ({admitted})")
                else:
                    self.edge("users", self.node_of[origin.urn], f"{port_label(origin_port)} ({admitted})")
                    self.edge(record_node, self.node_of[origin.urn], f"DNS {self.inputs(record)['type']} record",
                              "attachment")

    def admission(self, origin: RecordedResource, port: int) -> str:
        """Who may reach ``origin`` on ``port``, from its firewall or security groups."""
        if origin.type == RESERVED_IP:
            assigned = [self.group_of[droplet.urn]
                        for assignment in self.dependents(origin, RESERVED_IP_ASSIGNMENT)
                        for droplet in self.deps(assignment, DROPLET) if droplet.urn in self.group_of]
            sources = assigned[0].web_sources(port) if assigned else None
            return describe_sources(sources) if sources is not None else "firewall: closed"
        if origin.type == DROPLET:
            sources = self.group_of[origin.urn].web_sources(port)
            return describe_sources(sources) if sources is not None else "firewall: closed"
        if origin.type == DO_LOAD_BALANCER:
            allows = (self.inputs(origin).get("firewall") or {}).get("allows")
            if not allows:
                return "anyone"
            return describe_sources(rule.removeprefix("cidr:") for rule in allows)
        return self.security_group_sources(origin, port)

    # DigitalOcean ---------------------------------------------------------------------------------

    def digitalocean(self) -> None:
        droplets = self.of_type(DROPLET)
        if not droplets:
            return
        self.droplet_groups(droplets)
        for vpc in self.of_type(DO_VPC):
            region = self.region_boundary(self.inputs(vpc)["region"])
            description = self.inputs(vpc).get("description")
            self.boundary(diagram_id(vpc.name), f"VPC: {description}" if description else "VPC", "vpc", region)
        for group in self.groups:
            self.droplet_group_node(group)
        for load_balancer in self.of_type(DO_LOAD_BALANCER):
            self.load_balancer(load_balancer)
        for reserved_ip in self.of_type(RESERVED_IP):
            self.node(diagram_id(reserved_ip.name), "reserved IP", ["static public IPv4"], "entry",
                      self.region_boundary(self.inputs(reserved_ip)["region"]), [reserved_ip])
            for assignment in self.dependents(reserved_ip, RESERVED_IP_ASSIGNMENT):
                for droplet in self.deps(assignment, DROPLET):
                    self.edge(self.node_of[reserved_ip.urn], self.group_of[droplet.urn].id, "assigned to",
                              "attachment")
        for group in self.groups:
            self.droplet_group_edges(group)
        self.media_users()
        self.digitalocean_alerts()

    def region_boundary(self, region: str) -> str:
        return self.boundary(f"do_{diagram_id(region)}", f"DigitalOcean {region}", "digitalocean", None)

    def droplet_groups(self, droplets: list[RecordedResource]) -> None:
        grouped: set[str] = set()
        for firewall in self.of_type(DO_FIREWALL):
            owner = firewall.name.removesuffix("-firewall")
            members = [droplet for droplet in self.deps(firewall, DROPLET) if _named_after(owner, droplet.name)]
            members = [droplet for droplet in members if droplet.urn not in grouped]
            if members:
                self.groups.append(_DropletGroup(diagram_id(owner), members, firewall,
                                                 list(self.inputs(firewall).get("inboundRules") or [])))
                grouped.update(droplet.urn for droplet in members)
        for droplet in droplets:
            if droplet.urn not in grouped:
                self.groups.append(_DropletGroup(diagram_id(droplet.name), [droplet], None))
        for group in self.groups:
            for droplet in group.droplets:
                self.group_of[droplet.urn] = group

    def volumes_of(self, group: _DropletGroup) -> list[RecordedResource]:
        volumes = {volume.urn: volume for droplet in group.droplets for volume in self.deps(droplet, DO_VOLUME)}
        return sorted(volumes.values(), key=lambda volume: volume.name)

    def droplet_group_node(self, group: _DropletGroup) -> None:
        first = self.inputs(group.droplets[0])
        internal_ports = {_rule_port(rule) for rule in group.inbound
                          if rule.get("sourceTags") or rule.get("sourceDropletIds")}
        volumes = self.volumes_of(group)
        if group.public_facing and volumes:
            group.role = "app + database"
        elif group.public_facing:
            group.role = "app"
        elif internal_ports & DATA_PORTS:
            group.role = "database"
        count = len(group.droplets)
        title = f"{group.role} droplet" if count == 1 else f"{count} {group.role} droplets"
        sizes = sorted({self.inputs(droplet)["size"] for droplet in group.droplets})
        details = [f"{count} × {', '.join(sizes)}" if count > 1 else ", ".join(sizes), first["image"]]
        if first.get("backups"):
            plan = (first.get("backupPolicy") or {}).get("plan")
            details.append(f"{plan} backups" if plan else "backups")
        vpcs = self.deps(group.droplets[0], DO_VPC)
        region = self.region_boundary(first["region"])
        if vpcs:
            vpc = diagram_id(vpcs[0].name)
            boundary = (self.boundary(f"{vpc}_public", "public-facing: web ports open", "public", vpc)
                        if group.public_facing else
                        self.boundary(f"{vpc}_private", "private-only: service ports on the VPC", "private", vpc))
        else:
            boundary = region
        self.node(group.id, title, details, "compute", boundary, group.droplets,
                  stateful=any(_holds_data(droplet) for droplet in group.droplets))
        for volume in volumes:
            inputs = self.inputs(volume)
            volume_details = [inputs["description"]] if inputs.get("description") else []
            self.node(diagram_id(volume.name), f"block volume {_int(inputs['size'])} GiB", volume_details,
                      "store", region, [volume], stateful=_holds_data(volume))
            filesystem = inputs.get("initialFilesystemType")
            self.edge(group.id, diagram_id(volume.name), f"mounted ({filesystem})" if filesystem else "mounted",
                      "attachment")

    def load_balancer(self, load_balancer: RecordedResource) -> None:
        inputs = self.inputs(load_balancer)
        rules = inputs.get("forwardingRules") or []
        details = [f"{rule['entryProtocol'].upper()} {_int(rule['entryPort'])} → {_int(rule['targetPort'])}"
                   + (", TLS passthrough" if rule.get("tlsPassthrough") else "") for rule in rules]
        check = inputs.get("healthcheck")
        if check:
            details.append(f"health check {check['protocol'].upper()} :{_int(check['port'])}{check.get('path', '')}")
        vpcs = self.deps(load_balancer, DO_VPC)
        boundary = (self.boundary(f"{diagram_id(vpcs[0].name)}_public", "public-facing: web ports open", "public",
                                  diagram_id(vpcs[0].name))
                    if vpcs else self.region_boundary(inputs["region"]))
        lb = self.node(diagram_id(load_balancer.name), "load balancer", details, "entry", boundary, [load_balancer])
        targets = {self.group_of[droplet.urn].id: self.group_of[droplet.urn]
                   for droplet in self.deps(load_balancer, DROPLET)}
        for group in targets.values():
            for rule in rules:
                port = _int(rule["targetPort"])
                label = port_label(port) + (", TLS passthrough" if rule.get("tlsPassthrough") else "")
                if group.admits_load_balancer(port):
                    label += " (load balancer only)"
                self.edge(lb, group.id, label)

    def droplet_group_edges(self, group: _DropletGroup) -> None:
        internal: dict[str, list[int]] = {}
        for rule in group.inbound:
            port = _rule_port(rule)
            if port == 22 and rule.get("sourceAddresses"):
                self.edge(self.admin_node(rule["sourceAddresses"]), group.id, "SSH 22 (admins only)")
            for tag in rule.get("sourceTags") or []:
                for source in self.groups_tagged(tag):
                    if port is not None and port not in internal.setdefault(source.id, []):
                        internal[source.id].append(port)
        roles = {other.id: other.role for other in self.groups}
        for source_id, ports in internal.items():
            self.edge(source_id, group.id,
                      f"{', '.join(port_label(port) for port in sorted(ports))} ({roles[source_id]} droplets only)")

    def groups_tagged(self, tag: str) -> list[_DropletGroup]:
        found: list[_DropletGroup] = []
        for group in self.groups:
            if any(tag in (self.inputs(droplet).get("tags") or []) for droplet in group.droplets):
                found.append(group)
        return found

    def media_users(self) -> None:
        """Droplets serving the app whose rollout carries the media bucket's name use the bucket."""
        for bucket in self.of_type(R2_BUCKET):
            for command in self.dependents(bucket, REMOTE_COMMAND):
                for droplet in self.deps(command, DROPLET):
                    group = self.group_of[droplet.urn]
                    if group.public_facing:
                        self.edge(group.id, self.node_of[bucket.urn], "HTTPS 443 (S3 API: media)")

    def digitalocean_alerts(self) -> None:
        alerts = self.of_type(DO_ALERT)
        if not alerts:
            return
        metrics = sorted({DO_ALERT_METRICS.get(self.inputs(alert)["type"].rsplit("/", 1)[-1],
                                               self.inputs(alert)["type"]) for alert in alerts})
        emails = sorted({email for alert in alerts for email in (self.inputs(alert).get("alerts") or {})
                         .get("emails", [])})
        region = self.region_boundary(self.inputs(self.groups[0].droplets[0])["region"])
        self.node(f"{region}_alerts", "monitoring alerts",
                  [f"{len(alerts)} policies: {', '.join(metrics)}", f"e-mail: {', '.join(emails)}"],
                  "control", region, alerts)

    # AWS ------------------------------------------------------------------------------------------

    def aws(self) -> None:
        vpcs = self.of_type(AWS_VPC)
        if not vpcs:
            return
        for association in self.of_type(ROUTE_TABLE_ASSOCIATION):
            tables = self.deps(association, ROUTE_TABLE)
            public = any(self.deps(table, INTERNET_GATEWAY) for table in tables)
            for subnet in self.deps(association, SUBNET):
                self.subnet_class[subnet.urn] = "public" if public else "private"
        region = self.aws_region()
        for vpc in vpcs:
            self.boundary(diagram_id(vpc.name), f"VPC {self.inputs(vpc)['cidrBlock']}", "vpc", region)
        for nat in self.of_type(NAT_GATEWAY):
            zones = [self.inputs(subnet)["availabilityZone"] for subnet in self.deps(nat, SUBNET)]
            self.node(diagram_id(nat.name), "NAT gateway", zones, "entry", self.placement(nat), [nat])
        for alb in self.of_type(ALB):
            self.alb(alb)
        for cluster in self.of_type(EKS_CLUSTER):
            self.eks(cluster)
        for instance in self.of_type(RDS_INSTANCE):
            self.rds(instance)
        for cache in self.of_type(CACHE_GROUP):
            self.cache(cache)
        for topic in self.of_type(SNS_TOPIC):
            alarms = self.dependents(topic, METRIC_ALARM)
            emails = sorted(self.inputs(subscription)["endpoint"]
                            for subscription in self.dependents(topic, SNS_SUBSCRIPTION)
                            if self.inputs(subscription).get("protocol") == "email")
            self.node(diagram_id(topic.name), "SNS alerts topic",
                      [f"{len(alarms)} CloudWatch alarms", f"e-mail: {', '.join(emails)}"], "control", region,
                      [topic])

    def aws_region(self) -> str:
        providers = [self.inputs(provider).get("region") for provider in self.of_type(AWS_PROVIDER)]
        zones = sorted(self.inputs(subnet)["availabilityZone"] for subnet in self.of_type(SUBNET))
        region = next((name for name in providers if _known(name)), None) or (zones[0][:-1] if zones else "")
        return self.boundary(f"aws_{diagram_id(region)}", f"AWS {region}", "aws", None)

    def subnets_of(self, resource: RecordedResource) -> list[RecordedResource]:
        """Subnets a resource is placed in, directly or through an RDS / ElastiCache subnet group."""
        subnets = self.deps(resource, SUBNET)
        for group in self.deps(resource, RDS_SUBNET_GROUP, CACHE_SUBNET_GROUP):
            subnets += self.deps(group, SUBNET)
        return subnets

    def placement(self, resource: RecordedResource) -> str:
        subnets = self.subnets_of(resource)
        classes: set[Literal["public", "private"]] = {self.subnet_class.get(subnet.urn, "private")
                                                       for subnet in subnets}
        vpcs = [vpc for subnet in subnets for vpc in self.deps(subnet, AWS_VPC)]
        if not vpcs:
            return self.aws_region()
        vpc = diagram_id(vpcs[0].name)
        if len(classes) != 1:
            return vpc
        kind = classes.pop()
        zones = sorted({self.inputs(subnet)["availabilityZone"] for subnet in self.of_type(SUBNET)
                        if self.subnet_class.get(subnet.urn, "private") == kind})
        return self.boundary(f"{vpc}_{kind}", f"{kind} subnets: {', '.join(zones)}",
                             "public" if kind == "public" else "private", vpc)

    def security_group_sources(self, resource: RecordedResource, port: int) -> str:
        """Who ``resource``'s security groups admit on ``port``, resolving SG references by dependency."""
        for group in self.deps(resource, SECURITY_GROUP):
            for rule in self.inputs(group).get("ingress") or []:
                if not _int(rule["fromPort"]) <= port <= _int(rule["toPort"]):
                    continue
                if rule.get("cidrBlocks"):
                    return describe_sources(rule["cidrBlocks"])
                referenced = self.deps(group, SECURITY_GROUP)
                if rule.get("securityGroups") and referenced:
                    return " and ".join(self.security_group_owner(other) for other in referenced) + " only"
        return "no security group rule"

    def security_group_owner(self, group: RecordedResource) -> str:
        for template in self.dependents(group, LAUNCH_TEMPLATE):
            if self.dependents(template, NODE_GROUP):
                return "EKS node security group"
        if self.dependents(group, ALB):
            return "ALB security group"
        return f"security group {group.name}"

    def alb(self, alb: RecordedResource) -> None:
        inputs = self.inputs(alb)
        details = ["internal" if inputs.get("internal") else "internet-facing"]
        for listener in self.dependents(alb, LISTENER):
            listener_inputs = self.inputs(listener)
            details.append(f"{listener_inputs['protocol']} {_int(listener_inputs['port'])}, "
                           f"{listener_inputs.get('sslPolicy', 'no TLS')}")
            for certificate in self.deps(listener, ACM_CERTIFICATE):
                if self.deps(certificate, ORIGIN_CA_CERTIFICATE):
                    details.append("Cloudflare Origin CA certificate (ACM)")
        self.node(diagram_id(alb.name), "Application Load Balancer", details, "entry", self.placement(alb), [alb])

    def eks(self, cluster: RecordedResource) -> None:
        inputs = self.inputs(cluster)
        boundary = self.boundary(diagram_id(inputs["name"]),
                                 f"EKS cluster {inputs['name']}: Kubernetes {inputs['version']}", "kubernetes",
                                 self.placement(cluster))
        access = inputs.get("vpcConfig") or {}
        public_cidrs = access.get("publicAccessCidrs") or []
        endpoint = ("API endpoint: public (allow-listed) + private" if access.get("endpointPublicAccess")
                    else "API endpoint: private only")
        details = [endpoint]
        if inputs.get("encryptionConfig"):
            details.append("Secrets encrypted with KMS")
        control_plane = self.node(f"{boundary}_control_plane", "EKS control plane", details, "control", boundary,
                                  [cluster])
        if access.get("endpointPublicAccess") and public_cidrs:
            self.edge(self.admin_node(public_cidrs), control_plane, "HTTPS 443 (Kubernetes API, admins only)")
        for node_group in self.dependents(cluster, NODE_GROUP):
            self.node_group(node_group, boundary)

    def node_group(self, node_group: RecordedResource, boundary: str) -> None:
        inputs = self.inputs(node_group)
        scaling = inputs["scalingConfig"]
        details = [f"{_int(scaling['minSize'])}–{_int(scaling['maxSize'])} × {', '.join(inputs['instanceTypes'])} "
                   f"(desired {_int(scaling['desiredSize'])})"]
        for template in self.deps(node_group, LAUNCH_TEMPLATE):
            template_inputs = self.inputs(template)
            if (template_inputs.get("metadataOptions") or {}).get("httpTokens") == "required":
                details.append("IMDSv2 only")
            if any(str((mapping.get("ebs") or {}).get("encrypted")).lower() == "true"
                   for mapping in template_inputs.get("blockDeviceMappings") or []):
                details.append("encrypted root volumes")
        nodes = self.node(diagram_id(node_group.name), "managed node group", details, "compute", boundary,
                          [node_group])
        for attachment in self.dependents(node_group, ASG_ATTACHMENT):
            for target_group in self.deps(attachment, TARGET_GROUP):
                self.alb_to_nodes(target_group, nodes)
        self.nat_egress(node_group, nodes)

    def alb_to_nodes(self, target_group: RecordedResource, nodes: str) -> None:
        inputs = self.inputs(target_group)
        port = _int(inputs["port"])
        for listener in self.dependents(target_group, LISTENER):
            for alb in self.deps(listener, ALB):
                alb_groups = {group.urn for group in self.deps(alb, SECURITY_GROUP)}
                from_alb_only = any(
                    _int(self.inputs(rule).get("fromPort", -1)) == port
                    and alb_groups & {group.urn for group in self.deps(rule, SECURITY_GROUP)}
                    for rule in self.of_type(SECURITY_GROUP_INGRESS))
                self.edge(self.node_of[alb.urn], nodes, f"{inputs['protocol']} {port}"
                          + (" (ALB security group only)" if from_alb_only else ""))

    def nat_egress(self, resource: RecordedResource, source: str) -> None:
        for subnet in self.subnets_of(resource):
            for association in self.dependents(subnet, ROUTE_TABLE_ASSOCIATION):
                for table in self.deps(association, ROUTE_TABLE):
                    for nat in self.deps(table, NAT_GATEWAY):
                        self.edge(source, self.node_of[nat.urn], "egress to the internet")

    def rds(self, instance: RecordedResource) -> None:
        inputs = self.inputs(instance)
        engine = ENGINE_NAMES.get(inputs["engine"], inputs["engine"])
        details = [f"{inputs['instanceClass']}, " + ("Multi-AZ (standby in another zone)" if inputs.get("multiAz")
                                                      else "single zone")]
        storage = f"{_int(inputs['allocatedStorage'])}"
        if inputs.get("maxAllocatedStorage"):
            storage += f"–{_int(inputs['maxAllocatedStorage'])}"
        details.append(f"{storage} GiB {inputs.get('storageType', '')}".rstrip()
                       + (", encrypted" if inputs.get("storageEncrypted") else ""))
        if inputs.get("backupRetentionPeriod"):
            details.append(f"backups {_int(inputs['backupRetentionPeriod'])} days"
                           + (", deletion protection" if inputs.get("deletionProtection") else ""))
        self.node(diagram_id(instance.name), f"RDS {engine} {inputs['engineVersion']}", details, "store",
                  self.placement(instance), [instance], stateful=_holds_data(instance))

    def rds_label(self, instance: RecordedResource) -> str:
        inputs = self.inputs(instance)
        port = _int(inputs.get("port", 5432))
        tls_only = any(parameter.get("name") == "rds.force_ssl" and str(parameter.get("value")) == "1"
                       for group in self.deps(instance, RDS_PARAMETER_GROUP)
                       for parameter in self.inputs(group).get("parameters") or [])
        engine = ENGINE_NAMES.get(inputs["engine"], inputs["engine"])
        return (f"{engine} {port}" + (", TLS required" if tls_only else "")
                + f" ({self.security_group_sources(instance, port)})")

    def cache(self, cache: RecordedResource) -> None:
        inputs = self.inputs(cache)
        engine = ENGINE_NAMES.get(inputs["engine"], inputs["engine"])
        details = [f"{_int(inputs['numCacheClusters'])} × {inputs['nodeType']}"
                   + (", automatic failover" if inputs.get("automaticFailoverEnabled") else "")
                   + (", Multi-AZ" if inputs.get("multiAzEnabled") else "")]
        encryption = [text for flag, text in (("transitEncryptionEnabled", "TLS"), ("authToken", "auth token"),
                                              ("atRestEncryptionEnabled", "encrypted at rest"))
                      if inputs.get(flag)]
        if encryption:
            details.append(", ".join(encryption))
        self.node(diagram_id(cache.name), f"ElastiCache {engine} {inputs['engineVersion']}", details, "store",
                  self.placement(cache), [cache], stateful=_holds_data(cache))

    def cache_label(self, cache: RecordedResource) -> str:
        inputs = self.inputs(cache)
        port = _int(inputs.get("port", 6379))
        return (f"{ENGINE_NAMES.get(inputs['engine'], inputs['engine'])} {port}"
                + (", TLS" if inputs.get("transitEncryptionEnabled") else "")
                + f" ({self.security_group_sources(cache, port)})")

    # Kubernetes -----------------------------------------------------------------------------------

    def cluster_boundary_of(self, resource: RecordedResource) -> str | None:
        """The EKS cluster boundary a Kubernetes object lands in, through its provider's dependencies."""
        if resource.provider is None:
            return None
        provider = self._by_urn.get(resource.provider.rsplit("::", 1)[0])
        if provider is None:
            return None
        for cluster in self.deps(provider, EKS_CLUSTER):
            return diagram_id(self.inputs(cluster)["name"])
        return None

    def kubernetes(self) -> None:
        namespaces: dict[str, str] = {}
        for namespace in self.of_type(NAMESPACE):
            cluster = self.cluster_boundary_of(namespace)
            if cluster is None:
                continue
            metadata = self.inputs(namespace)["metadata"]
            enforce = (metadata.get("labels") or {}).get("pod-security.kubernetes.io/enforce")
            label = f"namespace {metadata['name']}" + (f": Pod Security {enforce}" if enforce else "")
            namespaces[metadata["name"]] = self.boundary(f"ns_{diagram_id(metadata['name'])}", label, "kubernetes",
                                                         cluster)
        workloads = {"services": self.of_type(SERVICE), "deployments": self.of_type(DEPLOYMENT),
                     "autoscalers": self.of_type(HPA)}
        autoscaler_of: dict[str, dict[str, Any]] = {}
        for autoscaler in workloads["autoscalers"]:
            spec = self.inputs(autoscaler)["spec"]
            autoscaler_of[spec["scaleTargetRef"]["name"]] = spec
        for service in workloads["services"]:
            inputs = self.inputs(service)
            boundary = namespaces.get(inputs["metadata"].get("namespace"))
            if boundary is None:
                continue
            spec = inputs["spec"]
            details = [f"{spec.get('type', 'ClusterIP')}: "
                       + ", ".join(f"node port {_int(port['nodePort'])} → pod port {_int(port['targetPort'])}"
                                   if port.get("nodePort") else f"port {_int(port['port'])} → pod port "
                                   f"{_int(port['targetPort'])}" for port in spec["ports"])]
            self.node(diagram_id(service.name), f"Service {inputs['metadata']['name']}", details, "workload",
                      boundary, [service])
        for deployment in workloads["deployments"]:
            self.deployment(deployment, namespaces, autoscaler_of)
        for autoscaler in workloads["autoscalers"]:
            inputs = self.inputs(autoscaler)
            boundary = namespaces.get(inputs["metadata"].get("namespace"))
            if boundary is None:
                continue
            spec = inputs["spec"]
            targets = [f"{metric['resource']['name'].upper()} "
                       f"{_int(metric['resource']['target']['averageUtilization'])} %"
                       for metric in spec.get("metrics") or [] if metric.get("type") == "Resource"]
            hpa = self.node(diagram_id(autoscaler.name), "HorizontalPodAutoscaler",
                            [f"{_int(spec['minReplicas'])}–{_int(spec['maxReplicas'])} pods",
                             *(f"target {target}" for target in targets)], "control", boundary, [autoscaler])
            for deployment in workloads["deployments"]:
                if self.inputs(deployment)["metadata"].get("name") == spec["scaleTargetRef"]["name"]:
                    self.edge(hpa, self.node_of[deployment.urn], "scales", "attachment")
        self.service_edges(workloads["services"], workloads["deployments"])

    def deployment(self, deployment: RecordedResource, namespaces: dict[str, str],
                   autoscaler_of: dict[str, dict[str, Any]]) -> None:
        inputs = self.inputs(deployment)
        boundary = namespaces.get(inputs["metadata"].get("namespace"))
        if boundary is None:
            return
        containers = inputs["spec"]["template"]["spec"]["containers"]
        scaling = autoscaler_of.get(inputs["metadata"].get("name"))
        replicas = (f"{_int(scaling['minReplicas'])}–{_int(scaling['maxReplicas'])} pods (HPA)" if scaling
                    else f"{_int(inputs['spec'].get('replicas', 1))} pods")
        node = self.node(diagram_id(deployment.name), f"Deployment {inputs['metadata']['name']}",
                         [*(container["image"] for container in containers), replicas], "workload", boundary,
                         [deployment])
        referenced = self.deps(deployment)
        for secret in self.deps(deployment, KUBERNETES_SECRET):
            referenced += self.deps(secret)
        stores = {resource.urn: resource for resource in referenced if resource.urn in self.node_of}
        for store in sorted(stores.values(), key=lambda resource: resource.name):
            if store.type == RDS_INSTANCE:
                self.edge(node, self.node_of[store.urn], self.rds_label(store))
            elif store.type == CACHE_GROUP:
                self.edge(node, self.node_of[store.urn], self.cache_label(store))
            elif store.type == R2_BUCKET:
                self.edge(node, self.node_of[store.urn], "HTTPS 443 (S3 API: media)")

    def service_edges(self, services: list[RecordedResource], deployments: list[RecordedResource]) -> None:
        node_ports: dict[int, list[str]] = {}
        for attachment in self.of_type(ASG_ATTACHMENT):
            for target_group in self.deps(attachment, TARGET_GROUP):
                for node_group in self.deps(attachment, NODE_GROUP):
                    node_ports.setdefault(_int(self.inputs(target_group)["port"]), []).append(
                        self.node_of[node_group.urn])
        for service in services:
            if service.urn not in self.node_of:
                continue
            spec = self.inputs(service)["spec"]
            for port in spec["ports"]:
                for nodes in node_ports.get(_int(port.get("nodePort", -1)), []):
                    self.edge(nodes, self.node_of[service.urn], f"NodePort {_int(port['nodePort'])}")
            selector = spec.get("selector") or {}
            for deployment in deployments:
                if deployment.urn not in self.node_of:
                    continue
                labels = self.inputs(deployment)["spec"]["template"]["metadata"].get("labels") or {}
                if selector and selector.items() <= labels.items():
                    for port in spec["ports"]:
                        name = str(port.get("name") or port.get("protocol") or "TCP").upper()
                        self.edge(self.node_of[service.urn], self.node_of[deployment.urn],
                                  f"{name} {_int(port['targetPort'])}")


def topology(plan: Plan) -> Topology:
    """The stack's significant resources, grouped by network boundary, with who-talks-to-whom edges."""
    return _Builder(plan).build()


# --- Mermaid ----------------------------------------------------------------------------------------

GENERATED_NOTE = "Generated by `phasekit plan --diagram` from the offline plan; do not edit by hand."

BOUNDARY_COLOURS: dict[BoundaryKind, tuple[str, str]] = {
    # (fill, stroke)
    "internet": ("#f7f7f7", "#9e9e9e"),
    "cloudflare": ("#fff4e5", "#f38020"),
    "digitalocean": ("#eaf2ff", "#0069ff"),
    "aws": ("#fff8ec", "#ff9900"),
    "vpc": ("#ffffff", "#607d8b"),
    "public": ("#fffde7", "#c0a000"),
    "private": ("#edf7ed", "#4caf50"),
    "kubernetes": ("#eef2fb", "#326ce5"),
}

_MERMAID_SHAPES: dict[NodeKind, tuple[str, str]] = {
    "actor": ("([", "])"), "edge": ("[", "]"), "entry": ("[", "]"), "compute": ("[", "]"),
    "workload": ("[", "]"), "control": ("[", "]"), "store": ("[(", ")]"),
}


def mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: Mermaid's own entity codes for the characters its parser reads."""
    codes = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
    return "".join(codes.get(char, char) for char in text)


def mermaid(plan: Plan) -> str:
    return mermaid_from(topology(plan))


def mermaid_from(model: Topology) -> str:
    lines = ["---", f"title: {model.title}", "---", f"%% {GENERATED_NOTE}", "flowchart TB"]
    lines += _mermaid_boundaries(model, parent=None, indent="  ")
    for edge in model.edges:
        arrow = "-->" if edge.kind == "traffic" else "-.->"
        lines.append(f'  {edge.source} {arrow}|"{mermaid_text(edge.label)}"| {edge.target}')
    for boundary in model.boundaries:
        fill, stroke = BOUNDARY_COLOURS[boundary.kind]
        lines.append(f"  style {boundary.id} fill:{fill},stroke:{stroke}")
    control = [node.id for node in model.nodes if node.kind == "control"]
    if control:
        lines.append("  classDef control stroke-dasharray:5 3")
        lines.append(f"  class {','.join(control)} control")
    stateful = [node.id for node in model.nodes if node.stateful]
    if stateful:
        lines.append("  classDef stateful stroke-width:3px")
        lines.append(f"  class {','.join(stateful)} stateful")
    return "\n".join(lines) + "\n"


def _mermaid_boundaries(model: Topology, parent: str | None, indent: str) -> list[str]:
    lines: list[str] = []
    for boundary in model.boundaries:
        if boundary.parent != parent:
            continue
        lines.append(f'{indent}subgraph {boundary.id}["{mermaid_text(boundary.label)}"]')
        for node in model.nodes:
            if node.boundary == boundary.id:
                opening, closing = _MERMAID_SHAPES[node.kind]
                label = "<br/>".join([f"<b>{mermaid_text(node.title)}</b>", *map(mermaid_text, node.details)])
                lines.append(f'{indent}  {node.id}{opening}"{label}"{closing}')
        lines += _mermaid_boundaries(model, boundary.id, indent + "  ")
        lines.append(f"{indent}end")
    return lines


# --- Graphviz ---------------------------------------------------------------------------------------

_DOT_SHAPES: dict[NodeKind, str] = {
    "actor": "oval", "edge": "box", "entry": "box", "compute": "box", "workload": "box", "control": "box",
    "store": "cylinder",
}
_DOT_STYLES: dict[NodeKind, str] = {"control": "rounded,filled,dashed"}


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def graphviz_dot(plan: Plan) -> str:
    return graphviz_dot_from(topology(plan))


def graphviz_dot_from(model: Topology) -> str:
    lines = [
        f"// {GENERATED_NOTE}",
        f"digraph {_quoted(model.stack)} {{",
        f'  graph [label={_quoted(model.title)}, labelloc=t, fontname="Helvetica", fontsize=16, rankdir=TB, '
        'newrank=true, nodesep=0.35, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#455a64"];',
    ]
    lines += _dot_clusters(model, parent=None, indent="  ")
    for edge in model.edges:
        style = "" if edge.kind == "traffic" else ", style=dashed"
        # Two short lines instead of one long one keep neighbouring labels from overlapping.
        label = edge.label.replace(" (", "\n(")
        lines.append(f"  {edge.source} -> {edge.target} [label={_quoted(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_clusters(model: Topology, parent: str | None, indent: str) -> list[str]:
    lines: list[str] = []
    for boundary in model.boundaries:
        if boundary.parent != parent:
            continue
        fill, stroke = BOUNDARY_COLOURS[boundary.kind]
        lines.append(f"{indent}subgraph cluster_{boundary.id} {{")
        lines.append(f'{indent}  graph [label={_quoted(boundary.label)}, style="rounded,filled", '
                     f'fillcolor="{fill}", color="{stroke}", fontname="Helvetica", fontsize=12];')
        for node in model.nodes:
            if node.boundary == boundary.id:
                label = "<br/>".join([f"<b>{_html(node.title)}</b>", *map(_html, node.details)])
                extra = ", penwidth=2.5" if node.stateful else ""
                if node.kind in _DOT_STYLES:
                    extra += f', style="{_DOT_STYLES[node.kind]}"'
                lines.append(f"{indent}  {node.id} [label=<{label}>, shape={_DOT_SHAPES[node.kind]}{extra}];")
        lines += _dot_clusters(model, boundary.id, indent + "  ")
        lines.append(f"{indent}}}")
    return lines


# --- Files ------------------------------------------------------------------------------------------

GRAPHVIZ_MISSING = ("Graphviz's `dot` is not on PATH, so {names} could not be rendered (the .mmd and .dot files "
                    "were written); install Graphviz: apt-get install graphviz (Debian/Ubuntu) or "
                    "brew install graphviz (macOS)")


def write_diagrams(plans: Sequence[Plan], out_dir: Path) -> list[Path]:
    """Write ``<stack>.mmd``, ``<stack>.dot`` and ``<stack>.svg`` per plan; returns the paths written.

    Raises ConfigError naming what to install when Graphviz's ``dot`` is missing (after writing the text
    files) or when ``dot`` rejects a file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    dot_files: list[Path] = []
    for plan in plans:
        model = topology(plan)
        for suffix, text in ((".mmd", mermaid_from(model)), (".dot", graphviz_dot_from(model))):
            path = out_dir / f"{plan.stack}{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
        dot_files.append(out_dir / f"{plan.stack}.dot")
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(GRAPHVIZ_MISSING.format(names=", ".join(path.with_suffix(".svg").name
                                                                  for path in dot_files)))
    for dot_file in dot_files:
        svg = dot_file.with_suffix(".svg")
        result = subprocess.run([dot, "-Tsvg", str(dot_file), "-o", str(svg)], capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            first_line = (result.stderr.strip().splitlines() or ["no message"])[0]
            raise ConfigError(f"{dot_file}: Graphviz's dot failed: {first_line}")
        written.append(svg)
    return _in_stack_order(written, [plan.stack for plan in plans])


def _in_stack_order(paths: list[Path], stacks: list[str]) -> list[Path]:
    rank = {".mmd": 0, ".dot": 1, ".svg": 2}
    return sorted(paths, key=lambda path: (stacks.index(path.stem), rank[path.suffix]))


def _holds_data(resource: RecordedResource) -> bool:
    """Drawn heavy: the resources whose replace or delete loses data (policy/rules.py's one definition,
    shared with the guardrails and change risk), whether or not the stack protects them."""
    return data_held(resource) is not None
