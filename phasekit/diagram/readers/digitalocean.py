"""DigitalOcean's part of the diagram (phases 1 and 2): droplets, their volumes, the load balancer or the
reserved IP in front of them, and the monitoring alerts, inside a region and its VPC.

Droplets that share a firewall play one role and are drawn as one node (``2 app droplets``). The role comes
from the firewall's inbound rules, never from the phase: web ports open to the outside make an app host,
only data ports open to other droplets make a database host, and a public host with a volume is both.
Which droplets a firewall protects is ambiguous from dependencies alone (it also depends on the droplets
its rules name), so the components' naming convention decides: ``split-app-firewall`` protects
``split-app-0`` and ``split-app-1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.testing import RecordedResource
from infra.config import StackConfig
from phasekit.diagram.graph import Graph, as_int, holds_data
from phasekit.diagram.labels import BACKUPS_ACCESS, MEDIA_ACCESS, describe_sources, is_backups_bucket, port_label
from phasekit.diagram.model import diagram_id
from phasekit.diagram.resource_types import (
    API_TOKEN,
    DO_ALERT,
    DO_DROPLET,
    DO_FIREWALL,
    DO_LOAD_BALANCER,
    DO_VOLUME,
    DO_VPC,
    R2_BUCKET,
    REMOTE_COMMAND,
    RESERVED_IP,
    RESERVED_IP_ASSIGNMENT,
)

DATA_PORTS = frozenset({5432, 6379, 6432})
ALERT_METRICS = {"cpu": "CPU", "memory_utilization_percent": "memory", "disk_utilization_percent": "disk"}
ORIGIN_TYPES = frozenset({RESERVED_IP, DO_DROPLET, DO_LOAD_BALANCER})
"""The DigitalOcean resources a DNS record may point at; ``admission`` answers for them."""


@dataclass
class DropletGroup:
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


@dataclass
class DropletGroups:
    """The groups in drawing order, and each droplet's group by URN."""

    groups: list[DropletGroup] = field(default_factory=list)
    group_of: dict[str, DropletGroup] = field(default_factory=dict)


def _rule_port(rule: dict[str, Any]) -> int | None:
    port = rule.get("portRange")
    return int(port) if isinstance(port, str) and port.isdigit() else None


def _named_after(owner: str, name: str) -> bool:
    return name == owner or name.startswith(owner + "-")


def read(graph: Graph) -> DropletGroups:
    droplets = graph.of_type(DO_DROPLET)
    if not droplets:
        return DropletGroups()
    hosts = _group_droplets(graph, droplets)
    for vpc in graph.of_type(DO_VPC):
        region = _region_boundary(graph, graph.inputs(vpc)["region"])
        description = graph.inputs(vpc).get("description")
        graph.boundary(diagram_id(vpc.name), f"VPC: {description}" if description else "VPC", "vpc", region)
    for group in hosts.groups:
        _group_node(graph, group)
    for load_balancer in graph.of_type(DO_LOAD_BALANCER):
        _load_balancer(graph, hosts, load_balancer)
    for reserved_ip in graph.of_type(RESERVED_IP):
        graph.node(diagram_id(reserved_ip.name), "reserved IP", ["static public IPv4"], "entry",
                   _region_boundary(graph, graph.inputs(reserved_ip)["region"]), [reserved_ip])
        for assignment in graph.dependents(reserved_ip, RESERVED_IP_ASSIGNMENT):
            for droplet in graph.deps(assignment, DO_DROPLET):
                graph.edge(graph.node_of[reserved_ip.urn], hosts.group_of[droplet.urn].id, "assigned to",
                           "attachment")
    for group in hosts.groups:
        _group_edges(graph, hosts, group)
    _media_users(graph, hosts)
    _alerts(graph, hosts)
    return hosts


def admission(graph: Graph, hosts: DropletGroups, origin: RecordedResource, port: int) -> str:
    """Who may reach ``origin`` (one of ``ORIGIN_TYPES``) on ``port``: its droplets' firewall, or the
    load balancer's own allow-list."""
    if origin.type == RESERVED_IP:
        assigned = [hosts.group_of[droplet.urn]
                    for assignment in graph.dependents(origin, RESERVED_IP_ASSIGNMENT)
                    for droplet in graph.deps(assignment, DO_DROPLET) if droplet.urn in hosts.group_of]
        sources = assigned[0].web_sources(port) if assigned else None
        return describe_sources(sources) if sources is not None else "firewall: closed"
    if origin.type == DO_DROPLET:
        sources = hosts.group_of[origin.urn].web_sources(port)
        return describe_sources(sources) if sources is not None else "firewall: closed"
    allows = (graph.inputs(origin).get("firewall") or {}).get("allows")
    if not allows:
        return "anyone"
    return describe_sources(rule.removeprefix("cidr:") for rule in allows)


def _region_boundary(graph: Graph, region: str) -> str:
    return graph.boundary(f"do_{diagram_id(region)}", f"DigitalOcean {region}", "digitalocean", None)


def _group_droplets(graph: Graph, droplets: list[RecordedResource]) -> DropletGroups:
    hosts = DropletGroups()
    grouped: set[str] = set()
    for firewall in graph.of_type(DO_FIREWALL):
        owner = firewall.name.removesuffix("-firewall")
        members = [droplet for droplet in graph.deps(firewall, DO_DROPLET) if _named_after(owner, droplet.name)]
        members = [droplet for droplet in members if droplet.urn not in grouped]
        if members:
            hosts.groups.append(DropletGroup(diagram_id(owner), members, firewall,
                                             list(graph.inputs(firewall).get("inboundRules") or [])))
            grouped.update(droplet.urn for droplet in members)
    for droplet in droplets:
        if droplet.urn not in grouped:
            hosts.groups.append(DropletGroup(diagram_id(droplet.name), [droplet], None))
    for group in hosts.groups:
        for droplet in group.droplets:
            hosts.group_of[droplet.urn] = group
    return hosts


def _volumes_of(graph: Graph, group: DropletGroup) -> list[RecordedResource]:
    volumes = {volume.urn: volume for droplet in group.droplets for volume in graph.deps(droplet, DO_VOLUME)}
    return sorted(volumes.values(), key=lambda volume: volume.name)


def _group_node(graph: Graph, group: DropletGroup) -> None:
    """The group's node (its role decided here), inside the VPC's public or private zone, and its volumes."""
    first = graph.inputs(group.droplets[0])
    internal_ports = {_rule_port(rule) for rule in group.inbound
                      if rule.get("sourceTags") or rule.get("sourceDropletIds")}
    volumes = _volumes_of(graph, group)
    if group.public_facing and volumes:
        group.role = "app + database"
    elif group.public_facing:
        group.role = "app"
    elif internal_ports & DATA_PORTS:
        group.role = "database"
    count = len(group.droplets)
    title = f"{group.role} droplet" if count == 1 else f"{count} {group.role} droplets"
    sizes = sorted({graph.inputs(droplet)["size"] for droplet in group.droplets})
    details = [f"{count} × {', '.join(sizes)}" if count > 1 else ", ".join(sizes), first["image"]]
    if first.get("backups"):
        plan = (first.get("backupPolicy") or {}).get("plan")
        details.append(f"{plan} backups" if plan else "backups")
    if group.public_facing and graph.config is not None:
        details += _process_details(graph.config, group)
    vpcs = graph.deps(group.droplets[0], DO_VPC)
    region = _region_boundary(graph, first["region"])
    if vpcs:
        vpc = diagram_id(vpcs[0].name)
        boundary = (graph.boundary(f"{vpc}_public", "public-facing: web ports open", "public", vpc)
                    if group.public_facing else
                    graph.boundary(f"{vpc}_private", "private-only: service ports on the VPC", "private", vpc))
    else:
        boundary = region
    graph.node(group.id, title, details, "compute", boundary, group.droplets,
               stateful=any(holds_data(droplet) for droplet in group.droplets))
    for volume in volumes:
        inputs = graph.inputs(volume)
        volume_details = [inputs["description"]] if inputs.get("description") else []
        graph.node(diagram_id(volume.name), f"block volume {as_int(inputs['size'])} GiB", volume_details,
                   "store", region, [volume], stateful=holds_data(volume))
        filesystem = inputs.get("initialFilesystemType")
        graph.edge(group.id, diagram_id(volume.name), f"mounted ({filesystem})" if filesystem else "mounted",
                   "attachment")


def _process_details(config: StackConfig, group: DropletGroup) -> list[str]:
    """What the app droplets run besides the web process: each process's Compose containers (on every one),
    and the schedules' systemd timers, on the one droplet that runs the release command (the first)."""
    each = " each" if len(group.droplets) > 1 else ""
    details = [f"{name}: {process.count} container{'s' if process.count != 1 else ''}{each}"
               for name, process in config.app.processes.items()]
    if config.app.schedules:
        where = f" on {min(droplet.name for droplet in group.droplets)}" if len(group.droplets) > 1 else ""
        details.append(f"timers{where}: {', '.join(config.app.schedules)}")
    return details


def _load_balancer(graph: Graph, hosts: DropletGroups, load_balancer: RecordedResource) -> None:
    inputs = graph.inputs(load_balancer)
    rules = inputs.get("forwardingRules") or []
    details = [f"{rule['entryProtocol'].upper()} {as_int(rule['entryPort'])} → {as_int(rule['targetPort'])}"
               + (", TLS passthrough" if rule.get("tlsPassthrough") else "") for rule in rules]
    check = inputs.get("healthcheck")
    if check:
        details.append(f"health check {check['protocol'].upper()} :{as_int(check['port'])}{check.get('path', '')}")
    vpcs = graph.deps(load_balancer, DO_VPC)
    boundary = (graph.boundary(f"{diagram_id(vpcs[0].name)}_public", "public-facing: web ports open", "public",
                               diagram_id(vpcs[0].name))
                if vpcs else _region_boundary(graph, inputs["region"]))
    lb = graph.node(diagram_id(load_balancer.name), "load balancer", details, "entry", boundary, [load_balancer])
    targets = {hosts.group_of[droplet.urn].id: hosts.group_of[droplet.urn]
               for droplet in graph.deps(load_balancer, DO_DROPLET)}
    for group in targets.values():
        for rule in rules:
            port = as_int(rule["targetPort"])
            label = port_label(port) + (", TLS passthrough" if rule.get("tlsPassthrough") else "")
            if group.admits_load_balancer(port):
                label += " (load balancer only)"
            graph.edge(lb, group.id, label)


def _group_edges(graph: Graph, hosts: DropletGroups, group: DropletGroup) -> None:
    """SSH from the admins' addresses, and the service ports other groups reach through firewall tags."""
    internal: dict[str, list[int]] = {}
    for rule in group.inbound:
        port = _rule_port(rule)
        if port == 22 and rule.get("sourceAddresses"):
            graph.edge(graph.admin_node(rule["sourceAddresses"]), group.id, "SSH 22 (admins only)")
        for tag in rule.get("sourceTags") or []:
            for source in _groups_tagged(graph, hosts, tag):
                if port is not None and port not in internal.setdefault(source.id, []):
                    internal[source.id].append(port)
    roles = {other.id: other.role for other in hosts.groups}
    for source_id, ports in internal.items():
        graph.edge(source_id, group.id,
                   f"{', '.join(port_label(port) for port in sorted(ports))} ({roles[source_id]} droplets only)")


def _groups_tagged(graph: Graph, hosts: DropletGroups, tag: str) -> list[DropletGroup]:
    return [group for group in hosts.groups
            if any(tag in (graph.inputs(droplet).get("tags") or []) for droplet in group.droplets)]


def _media_users(graph: Graph, hosts: DropletGroups) -> None:
    """Droplets serving the app whose rollout carries the media bucket's name use the bucket; the droplet whose
    rollout carries the backups bucket's scoped token (its S3 key) writes the backups."""
    for bucket in graph.of_type(R2_BUCKET):
        if is_backups_bucket(str(graph.inputs(bucket).get("name", ""))):
            for token in graph.dependents(bucket, API_TOKEN):
                for command in graph.dependents(token, REMOTE_COMMAND):
                    for droplet in graph.deps(command, DO_DROPLET):
                        graph.edge(hosts.group_of[droplet.urn].id, graph.node_of[bucket.urn], BACKUPS_ACCESS)
            continue
        for command in graph.dependents(bucket, REMOTE_COMMAND):
            for droplet in graph.deps(command, DO_DROPLET):
                group = hosts.group_of[droplet.urn]
                if group.public_facing:
                    graph.edge(group.id, graph.node_of[bucket.urn], MEDIA_ACCESS)


def _alerts(graph: Graph, hosts: DropletGroups) -> None:
    """All monitoring alert policies as one node: how many, on which metrics, to whom."""
    alerts = graph.of_type(DO_ALERT)
    if not alerts:
        return
    metrics = sorted({ALERT_METRICS.get(graph.inputs(alert)["type"].rsplit("/", 1)[-1], graph.inputs(alert)["type"])
                      for alert in alerts})
    emails = sorted({email for alert in alerts for email in (graph.inputs(alert).get("alerts") or {})
                     .get("emails", [])})
    region = _region_boundary(graph, graph.inputs(hosts.groups[0].droplets[0])["region"])
    graph.node(f"{region}_alerts", "monitoring alerts",
               [f"{len(alerts)} policies: {', '.join(metrics)}", f"e-mail: {', '.join(emails)}"],
               "control", region, alerts)
