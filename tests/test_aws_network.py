"""AwsNetwork under the recording mock monitor, and its pure helpers (subnet CIDR math, IAM policies).

Mocks cannot prove that AWS accepts these inputs (AZ names, CIDRs, the flow-logs role's trust conditions),
that the flow-logs service can really deliver with the scoped policy, or how a change diffs against a live
VPC (e.g. that reordering AZs replaces subnets); a real ``pulumi preview``/``up`` shows those. The ids, ARNs
and names asserted below are the harness's deterministic fakes.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from components.aws_network import (
    AwsNetwork,
    AwsNetworkArgs,
    NatStrategy,
    flow_logs_trust_policy,
    flow_logs_write_policy,
    s3_gateway_service,
    subnet_cidrs,
)
from components.testing import run_recorded

TAGS = {"project": "phasekit", "stack": "test", "phase": "3", "managed-by": "phasekit"}
AZS_2 = ["us-east-1a", "us-east-1b"]
AZS_3 = ["us-east-1a", "us-east-1b", "us-east-1c"]

COMPONENT = "phasekit:index:AwsNetwork"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
IGW = "aws:ec2/internetGateway:InternetGateway"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
EIP = "aws:ec2/eip:Eip"
NAT = "aws:ec2/natGateway:NatGateway"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
DB_SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
CACHE_SUBNET_GROUP = "aws:elasticache/subnetGroup:SubnetGroup"
PREFIX = "urn:pulumi:test::phasekit::phasekit:index:AwsNetwork$"
OUTPUTS = ("vpc_id", "vpc_cidr_block", "public_subnet_ids", "private_subnet_ids", "db_subnet_group_name",
           "cache_subnet_group_name", "nat_gateway_count")


def network_args(**overrides: Any) -> AwsNetworkArgs:
    return replace(AwsNetworkArgs(availability_zones=AZS_2, tags=TAGS), **overrides)


def record(preview: bool = False, **overrides: Any):
    def program() -> None:
        network = AwsNetwork("net", network_args(**overrides))
        for output in OUTPUTS:
            pulumi.export(output, getattr(network, output))
    return run_recorded(program, preview=preview)


def by_name(recording, type_token: str) -> dict[str, Any]:
    return {resource.name: resource for resource in recording.of_type(type_token)}


def expected_counts(subnets: int, route_tables: int, nats: int) -> dict[str, int]:
    return {
        COMPONENT: 1, VPC: 1, SUBNET: subnets, IGW: 1, ROUTE_TABLE: route_tables, ASSOCIATION: subnets,
        EIP: nats, NAT: nats, LOG_GROUP: 1, ROLE: 1, ROLE_POLICY: 1, FLOW_LOG: 1, DEFAULT_SG: 1,
        DB_SUBNET_GROUP: 1, CACHE_SUBNET_GROUP: 1, ENDPOINT: 1,
    }


def test_the_s3_gateway_endpoint_serves_every_private_route_table_and_no_public_one():
    # Image layers (ECR keeps them in S3) then bypass the NAT gateway's per-GB processing charge.
    recording = record(availability_zones=["us-east-1a", "us-east-1b", "us-east-1c"], nat_strategy="per-az")
    endpoint = recording.one(ENDPOINT)
    tables = by_name(recording, ROUTE_TABLE)
    private_tables = [tables[f"net-private-{az}"].id for az in AZS_3]  # in zone order, as the program lists them
    assert endpoint.inputs == {
        "vpcId": recording.one(VPC).id,
        "serviceName": "com.amazonaws.us-east-1.s3",
        "vpcEndpointType": "Gateway",
        "routeTableIds": private_tables,
        "tags": endpoint.inputs["tags"],
    }
    assert len(private_tables) == 3 and endpoint.inputs["tags"]["Name"].endswith("-s3")
    assert s3_gateway_service("eu-west-3b") == "com.amazonaws.eu-west-3.s3"


# --- subnet CIDR math (pure) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("cidr", "az_count", "expected"), [
    ("10.20.0.0/16", 2, [("10.20.192.0/20", "10.20.0.0/18"), ("10.20.208.0/20", "10.20.64.0/18")]),
    ("10.20.0.0/16", 3, [("10.20.192.0/20", "10.20.0.0/18"), ("10.20.208.0/20", "10.20.64.0/18"),
                         ("10.20.224.0/20", "10.20.128.0/18")]),
    ("172.16.0.0/18", 3, [("172.16.48.0/22", "172.16.0.0/20"), ("172.16.52.0/22", "172.16.16.0/20"),
                          ("172.16.56.0/22", "172.16.32.0/20")]),
    ("192.168.16.0/20", 2, [("192.168.28.0/24", "192.168.16.0/22"), ("192.168.29.0/24", "192.168.20.0/22")]),
])
def test_subnet_cidrs_table(cidr, az_count, expected):
    assert subnet_cidrs(cidr, az_count) == expected


@pytest.mark.parametrize("cidr", ["10.20.0.0/16", "10.0.0.0/17", "172.31.0.0/19", "192.168.240.0/20"])
def test_subnet_cidrs_fit_the_vpc_never_overlap_and_private_is_larger(cidr):
    vpc = ipaddress.ip_network(cidr)
    pairs = subnet_cidrs(cidr, 3)
    networks = [ipaddress.ip_network(subnet) for pair in pairs for subnet in pair]
    assert all(network.subnet_of(vpc) for network in networks)
    assert all(not a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:])
    assert all(ipaddress.ip_network(private).num_addresses == 4 * ipaddress.ip_network(public).num_addresses
               for public, private in pairs)


def test_adding_a_third_az_leaves_the_first_two_subnets_where_they_are():
    assert subnet_cidrs("10.20.0.0/16", 3)[:2] == subnet_cidrs("10.20.0.0/16", 2)


# --- topology ------------------------------------------------------------------------------------------

def test_two_azs_with_a_single_nat_gateway():
    recording = record()
    assert recording.type_counts() == expected_counts(subnets=4, route_tables=3, nats=1)
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert all(child.name.startswith("net-") for child in children)
    assert recording.outputs["nat_gateway_count"] == 1


def test_three_azs_with_a_nat_gateway_per_az():
    recording = record(availability_zones=AZS_3, nat_strategy="per-az")
    assert recording.type_counts() == expected_counts(subnets=6, route_tables=4, nats=3)
    assert recording.outputs["nat_gateway_count"] == 3


def test_vpc_has_dns_on():
    assert record().one(VPC).inputs == {
        "cidrBlock": "10.20.0.0/16", "enableDnsHostnames": True, "enableDnsSupport": True,
        "tags": {**TAGS, "Name": "net-vpc"},
    }


def test_subnets_cidrs_azs_no_public_ips_and_tags_exact():
    recording = record(availability_zones=AZS_3, cluster_name="phasekit-test")
    vpc_id = recording.one(VPC).id
    cluster = {"kubernetes.io/cluster/phasekit-test": "shared"}
    subnets = {name: resource.inputs for name, resource in by_name(recording, SUBNET).items()}
    expected = {}
    for az, (public, private) in zip(AZS_3, subnet_cidrs("10.20.0.0/16", 3), strict=True):
        expected[f"net-public-{az}"] = {
            "vpcId": vpc_id, "availabilityZone": az, "cidrBlock": public, "mapPublicIpOnLaunch": False,
            "tags": {**TAGS, **cluster, "Name": f"net-public-{az}", "kubernetes.io/role/elb": "1"}}
        expected[f"net-private-{az}"] = {
            "vpcId": vpc_id, "availabilityZone": az, "cidrBlock": private, "mapPublicIpOnLaunch": False,
            "tags": {**TAGS, **cluster, "Name": f"net-private-{az}", "kubernetes.io/role/internal-elb": "1"}}
    assert subnets == expected


def test_without_a_cluster_name_subnets_carry_no_cluster_tag():
    for subnet in record().of_type(SUBNET):
        assert not any(key.startswith("kubernetes.io/cluster/") for key in subnet.inputs["tags"])


def test_public_route_table_sends_everything_to_the_internet_gateway_for_public_subnets_only():
    recording = record()
    public = by_name(recording, ROUTE_TABLE)["net-public"]
    assert public.inputs == {
        "vpcId": recording.one(VPC).id,
        "routes": [{"cidrBlock": "0.0.0.0/0", "gatewayId": recording.one(IGW).id}],
        "tags": {**TAGS, "Name": "net-public"},
    }
    subnets = by_name(recording, SUBNET)
    associations = {resource.inputs["subnetId"]: resource.inputs["routeTableId"]
                    for resource in recording.of_type(ASSOCIATION)}
    assert {subnet_id for subnet_id, table in associations.items() if table == public.id} == {
        subnets["net-public-us-east-1a"].id, subnets["net-public-us-east-1b"].id}


def test_single_nat_sits_in_the_first_public_subnet_and_serves_every_private_route_table():
    recording = record(availability_zones=AZS_3)
    nat = recording.one(NAT)
    subnets = by_name(recording, SUBNET)
    assert nat.inputs == {
        "allocationId": recording.one(EIP).id, "subnetId": subnets["net-public-us-east-1a"].id,
        "connectivityType": "public", "tags": {**TAGS, "Name": "net-nat-us-east-1a"},
    }
    assert recording.one(EIP).inputs == {"domain": "vpc", "tags": {**TAGS, "Name": "net-nat-us-east-1a"}}
    assert f"{PREFIX}aws:ec2/internetGateway:InternetGateway::net-igw" in nat.dependencies
    tables = by_name(recording, ROUTE_TABLE)
    associations = {resource.inputs["subnetId"]: resource.inputs["routeTableId"]
                    for resource in recording.of_type(ASSOCIATION)}
    for az in AZS_3:
        table = tables[f"net-private-{az}"]
        assert table.inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": nat.id}]
        assert associations[subnets[f"net-private-{az}"].id] == table.id


def test_per_az_nat_each_private_route_table_uses_its_own_az():
    recording = record(availability_zones=AZS_3, nat_strategy=NatStrategy.PER_AZ)
    nats = by_name(recording, NAT)
    subnets = by_name(recording, SUBNET)
    tables = by_name(recording, ROUTE_TABLE)
    eips = by_name(recording, EIP)
    for az in AZS_3:
        nat = nats[f"net-nat-{az}"]
        assert nat.inputs["subnetId"] == subnets[f"net-public-{az}"].id
        assert nat.inputs["allocationId"] == eips[f"net-nat-{az}"].id
        assert tables[f"net-private-{az}"].inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": nat.id}]
    assert len({nat.id for nat in nats.values()}) == 3


def test_default_security_group_has_no_rules_at_all():
    recording = record()
    assert recording.one(DEFAULT_SG).inputs == {
        "vpcId": recording.one(VPC).id, "ingress": [], "egress": [],
        "tags": {**TAGS, "Name": "net-default-locked"},
    }


def test_flow_logs_capture_all_traffic_into_a_retained_log_group():
    recording = record(flow_log_retention_days=90)
    group, role, policy = recording.one(LOG_GROUP), recording.one(ROLE), recording.one(ROLE_POLICY)
    group_arn = "arn:aws:logs:us-east-1:123456789012:log-group:net-flow-logs-1a61f48"
    assert group.inputs == {"retentionInDays": 90, "tags": {**TAGS, "Name": "net-flow-logs"}}
    flow_log = recording.one(FLOW_LOG)
    assert flow_log.inputs == {
        "vpcId": recording.one(VPC).id,
        "trafficType": "ALL",
        "logDestinationType": "cloud-watch-logs",
        "logDestination": group_arn,
        "iamRoleArn": "arn:aws:iam::123456789012:role/net-flow-logs-1a61f48",
        "tags": {**TAGS, "Name": "net-flow-logs"},
    }
    assert policy.urn in flow_log.dependencies
    assert policy.inputs["role"] == role.id
    assert json.loads(policy.inputs["policy"]) == json.loads(flow_logs_write_policy(group_arn))
    assert json.loads(role.inputs["assumeRolePolicy"]) == json.loads(
        flow_logs_trust_policy("arn:aws:ec2:us-east-1:123456789012:vpc/vpc-x"))


def test_flow_logs_role_trust_is_limited_to_this_account_and_region():
    assert json.loads(flow_logs_trust_policy("arn:aws:ec2:eu-west-1:111122223333:vpc/vpc-0abc")) == {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": "111122223333"},
                "ArnLike": {"aws:SourceArn": "arn:aws:ec2:eu-west-1:111122223333:vpc-flow-log/*"},
            },
        }],
    }


def test_flow_logs_policy_writes_only_to_its_log_group():
    arn = "arn:aws:logs:eu-west-1:111122223333:log-group:flow"
    assert json.loads(flow_logs_write_policy(arn)) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WriteFlowLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
             "Resource": [arn, f"{arn}:*"]},
            {"Sid": "FindLogGroup", "Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
        ],
    }


def test_subnet_groups_span_the_private_subnets_and_keep_their_identity():
    recording = record()
    subnets = by_name(recording, SUBNET)
    private_ids = [subnets["net-private-us-east-1a"].id, subnets["net-private-us-east-1b"].id]
    db, cache = recording.one(DB_SUBNET_GROUP), recording.one(CACHE_SUBNET_GROUP)
    assert db.inputs == {"subnetIds": private_ids, "description": "phasekit private subnets for RDS",
                         "tags": {**TAGS, "Name": "net-db"}}
    assert cache.inputs == {"subnetIds": private_ids, "description": "phasekit private subnets for ElastiCache",
                            "tags": {**TAGS, "Name": "net-cache"}}
    # Replacing either would force RDS/ElastiCache into a replacement: their logical identity is pinned.
    assert db.urn == "urn:pulumi:test::phasekit::phasekit:index:AwsNetwork$aws:rds/subnetGroup:SubnetGroup::net-db"
    assert cache.urn == ("urn:pulumi:test::phasekit::phasekit:index:AwsNetwork$"
                         "aws:elasticache/subnetGroup:SubnetGroup::net-cache")


def test_outputs_are_the_vpc_subnets_and_subnet_groups():
    recording = record()
    subnets = by_name(recording, SUBNET)
    assert recording.outputs == {
        "vpc_id": recording.one(VPC).id,
        "vpc_cidr_block": "10.20.0.0/16",
        "public_subnet_ids": [subnets["net-public-us-east-1a"].id, subnets["net-public-us-east-1b"].id],
        "private_subnet_ids": [subnets["net-private-us-east-1a"].id, subnets["net-private-us-east-1b"].id],
        "db_subnet_group_name": "net-db-96dc148",
        "cache_subnet_group_name": "net-cache-79b8325",
        "nat_gateway_count": 1,
    }
    assert recording.secret_outputs == frozenset()


def test_preview_registers_the_same_children_with_unknown_ids():
    recording = record(preview=True, availability_zones=AZS_3, nat_strategy="per-az")
    assert recording.type_counts() == expected_counts(subnets=6, route_tables=4, nats=3)
    assert recording.outputs["vpc_id"] == "(known after apply)"
    assert recording.outputs["private_subnet_ids"] == "(known after apply)"
    assert recording.outputs["nat_gateway_count"] == 3


# --- validation ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "message"), [
    ({"availability_zones": ["us-east-1a"]},
     "AwsNetworkArgs.availability_zones: 2 or 3 zones are required, got 1"),
    ({"availability_zones": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]},
     "AwsNetworkArgs.availability_zones: 2 or 3 zones are required, got 4"),
    ({"availability_zones": ["us-east-1a", "us-east-1a"]},
     "AwsNetworkArgs.availability_zones: 'us-east-1a' is listed twice; each AZ once"),
    ({"cidr_block": "203.0.113.0/24"},
     "AwsNetworkArgs.cidr_block: '203.0.113.0/24' is not a private network; allowed: inside 10.0.0.0/8, "
     "172.16.0.0/12 or 192.168.0.0/16"),
    ({"cidr_block": "8.8.0.0/16"},
     "AwsNetworkArgs.cidr_block: '8.8.0.0/16' is not a private network; allowed: inside 10.0.0.0/8, "
     "172.16.0.0/12 or 192.168.0.0/16"),
    ({"cidr_block": "10.0.0.0/8"},
     "AwsNetworkArgs.cidr_block: '10.0.0.0/8' has prefix /8; allowed: /16 to /20"),
    ({"cidr_block": "10.20.0.0/24"},
     "AwsNetworkArgs.cidr_block: '10.20.0.0/24' has prefix /24; allowed: /16 to /20"),
    ({"cidr_block": "10.20.1.0/16"},
     "AwsNetworkArgs.cidr_block: '10.20.1.0/16' has host bits set or is not canonical; did you mean "
     "'10.20.0.0/16'?"),
    ({"cidr_block": "fd00::/48"},
     "AwsNetworkArgs.cidr_block: 'fd00::/48' is IPv6; allowed: a private IPv4 network such as 10.20.0.0/16"),
    ({"cidr_block": "ten.twenty"},
     "AwsNetworkArgs.cidr_block: 'ten.twenty' is not an IP network; allowed: a private IPv4 network such as "
     "10.20.0.0/16"),
    ({"nat_strategy": "none"}, "AwsNetworkArgs.nat_strategy: 'none'; allowed: single, per-az"),
    ({"flow_log_retention_days": 10},
     "AwsNetworkArgs.flow_log_retention_days: 10 is not a CloudWatch retention period; allowed: 1, 3, 5, 7, 14, "
     "30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"),
])
def test_invalid_args_are_refused_with_exact_messages(overrides, message):
    with pytest.raises(ValueError) as raised:
        record(**overrides)
    assert str(raised.value) == message


def test_nothing_is_registered_when_args_are_invalid():
    recording = run_recorded(lambda: _swallow(lambda: AwsNetwork("net", network_args(availability_zones=[]))))
    assert recording.resources == []


def _swallow(build) -> None:
    try:
        build()
    except ValueError:
        pass
