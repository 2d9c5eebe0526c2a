"""AwsNetwork: the VPC that phase 3 (EKS, RDS, ElastiCache, the ALB) lives in.

Creates
- a VPC (DNS hostnames and DNS support on) over ``cidr_block``;
- per availability zone one public and one private subnet, with CIDRs from :func:`subnet_cidrs` (private
  subnets a quarter of the VPC each, public ones a sixteenth; adding a third AZ later leaves the first two
  AZs' subnets untouched). Public subnets do not give instances public IPs (only the NAT gateways and the
  ALB live there) and carry ``kubernetes.io/role/elb``; private ones carry
  ``kubernetes.io/role/internal-elb``; with ``cluster_name`` both carry ``kubernetes.io/cluster/<name>``;
- an internet gateway, a public route table (``0.0.0.0/0`` to the gateway) associated with the public
  subnets;
- an Elastic IP and a NAT gateway in the first AZ (``single``) or in every AZ (``per-az``), and one private
  route table per AZ sending ``0.0.0.0/0`` to its AZ's NAT gateway (``single``: all to the one);
- VPC flow logs (ALL traffic: accepted and rejected) to a CloudWatch log group with ``flow_log_retention_days``
  retention, through an IAM role that only the flow-logs service of this account can assume and that may only
  write to that log group (see :func:`flow_logs_trust_policy` and :func:`flow_logs_write_policy`);
- the VPC's default security group taken over with no rules at all, so anything launched without an
  explicit security group can neither receive nor send traffic;
- an RDS DB subnet group and an ElastiCache subnet group over the private subnets.

- an S3 gateway endpoint on the private route tables (free: image layers from ECR, which stores them in S3,
  and other S3 traffic bypass the NAT gateway's per-GB charge).

Does not create interface VPC endpoints (ECR API, STS, ...: about $7/month each per AZ), IPv6, network ACLs
(the default NACL allows everything; security groups do the filtering), a bastion or VPN, or any security
group other than the locked default one.

Cost: VPC, subnets, route tables and the internet gateway are free. Each NAT gateway costs about
$0.045/hour (~$33/month) plus $0.045 per GB it processes (image pulls, outbound API calls), and its Elastic
IP $0.005/hour (~$3.60/month). ``single`` is the cheap choice but the NAT gateway is an AZ-level single point
of failure for egress only: if its AZ fails, the other AZs' private subnets lose outbound internet (inbound
traffic through the ALB is unaffected). ``per-az`` triples the NAT cost with 3 AZs but survives an AZ loss
and avoids cross-AZ data charges ($0.01/GB each way). Flow logs bill CloudWatch ingestion (~$0.50/GB) and
storage (~$0.03/GB-month) for the retention period.

Stateful: nothing here holds data, but the two subnet groups are referenced by RDS and ElastiCache: replacing
one forces those into a replacement or a failed update, so their logical names must stay stable (the tests
pin their URNs). Changing ``cidr_block`` or the order of ``availability_zones`` replaces subnets, which
fails while anything runs in them.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.aws_choices import RFC1918, NatStrategy
from components.tags import aws_tags

MIN_AZS = 2
MAX_AZS = 3
MIN_VPC_PREFIX = 16
MAX_VPC_PREFIX = 20
PRIVATE_EXTRA_BITS = 2
"""Private subnets are VPC prefix + 2: a quarter of the VPC each (three used, the fourth split for public)."""

PUBLIC_EXTRA_BITS = 4
"""Public subnets are VPC prefix + 4: a sixteenth each, carved from the VPC's last quarter."""

CLOUDWATCH_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653})
"""The retention periods CloudWatch Logs accepts."""

CLOUDWATCH_RETENTION_TEXT = ", ".join(str(days) for days in sorted(CLOUDWATCH_RETENTION_DAYS))

EVERYWHERE_V4 = "0.0.0.0/0"


@dataclass
class AwsNetworkArgs:
    availability_zones: Sequence[str]
    """Two or three distinct AZ names of the provider's region, e.g. ``["us-east-1a", "us-east-1b"]``. The
    order decides the subnet CIDRs (and the first AZ holds the ``single`` NAT gateway): do not reorder."""

    cidr_block: str = "10.20.0.0/16"
    """The VPC's IPv4 network: inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, prefix /16 to /20.
    Default ``10.20.0.0/16``. Changing it replaces the whole network."""

    nat_strategy: NatStrategy = NatStrategy.SINGLE
    """``single`` (default, one NAT gateway) or ``per-az`` (one per AZ); the plain strings are accepted too.
    See the module docstring for cost."""

    flow_log_retention_days: int = 30
    """Days CloudWatch keeps the VPC flow logs; one of the values CloudWatch accepts. Default 30."""

    cluster_name: str | None = None
    """EKS cluster name; when set, every subnet carries ``kubernetes.io/cluster/<name>: shared`` so the
    cluster's load balancers can discover them. Default None (no cluster tag)."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every taggable child (merged with a ``Name`` per resource)."""


def subnet_cidrs(cidr_block: str, az_count: int) -> list[tuple[str, str]]:
    """``(public, private)`` CIDRs for each of ``az_count`` AZs, in AZ order.

    Private subnet ``i`` is the VPC's ``i``-th quarter (prefix + 2); public subnet ``i`` is the ``i``-th
    sixteenth of the VPC's last quarter (prefix + 4). A subnet's CIDR depends only on its index, never on
    ``az_count``, so growing from 2 to 3 AZs adds subnets without moving existing ones.
    """
    vpc = ipaddress.IPv4Network(cidr_block, strict=True)
    if not 1 <= az_count <= MAX_AZS:
        raise ValueError(f"subnet_cidrs: az_count must be 1 to {MAX_AZS}, got {az_count}")
    quarters = list(vpc.subnets(prefixlen_diff=PRIVATE_EXTRA_BITS))
    publics = list(quarters[-1].subnets(prefixlen_diff=PUBLIC_EXTRA_BITS - PRIVATE_EXTRA_BITS))
    return [(str(publics[index]), str(quarters[index])) for index in range(az_count)]


def s3_gateway_service(availability_zone: str) -> str:
    """``com.amazonaws.<region>.s3``; the region is the zone name without its letter (``us-east-1a``)."""
    return f"com.amazonaws.{availability_zone[:-1]}.s3"


def flow_logs_trust_policy(vpc_arn: str) -> str:
    """Trust policy letting only the VPC flow-logs service, acting for flow logs of this VPC's account and
    region, assume the role (``aws:SourceAccount``/``aws:SourceArn`` guard against the confused deputy)."""
    partition, region, account = _arn_parts(vpc_arn)
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:ec2:{region}:{account}:vpc-flow-log/*"},
            },
        }],
    }, sort_keys=True)


def flow_logs_write_policy(log_group_arn: str) -> str:
    """Least privilege for delivering flow logs: create and write streams in one log group only
    (``<arn>:*`` is that group's streams).
    ``logs:DescribeLogGroups`` cannot be scoped to a group (it lists), so it stands alone on ``*``."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteFlowLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            },
            {
                "Sid": "FindLogGroup",
                "Effect": "Allow",
                "Action": "logs:DescribeLogGroups",
                "Resource": "*",
            },
        ],
    }, sort_keys=True)


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """``(partition, region, account)`` of an ARN."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[1], parts[3], parts[4]


class AwsNetwork(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr_block: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets, in AZ order (the ALB goes here)."""

    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnets, in AZ order (EKS control-plane ENIs, nodes, RDS, ElastiCache)."""

    db_subnet_group_name: pulumi.Output[str]
    """RDS DB subnet group over the private subnets."""

    cache_subnet_group_name: pulumi.Output[str]
    """ElastiCache subnet group over the private subnets."""

    nat_gateway_count: int
    """How many NAT gateways exist (1 for ``single``, one per AZ for ``per-az``); decided from the args."""

    def __init__(self, name: str, args: AwsNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        strategy = _check_args(args)
        super().__init__("phasekit:index:AwsNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        azs = list(args.availability_zones)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"} if args.cluster_name else {}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr_block,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=aws_tags(args.tags, Name=f"{name}-vpc"),
            opts=child,
        )

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        for az, (public_cidr, private_cidr) in zip(azs, subnet_cidrs(args.cidr_block, len(azs)), strict=True):
            public_subnets.append(aws.ec2.Subnet(
                f"{name}-public-{az}",
                vpc_id=vpc.id,
                availability_zone=az,
                cidr_block=public_cidr,
                map_public_ip_on_launch=False,
                tags=aws_tags(args.tags, Name=f"{name}-public-{az}", **{"kubernetes.io/role/elb": "1"},
                              **cluster_tag),
                opts=child,
            ))
            private_subnets.append(aws.ec2.Subnet(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                availability_zone=az,
                cidr_block=private_cidr,
                map_public_ip_on_launch=False,
                tags=aws_tags(args.tags, Name=f"{name}-private-{az}", **{"kubernetes.io/role/internal-elb": "1"},
                              **cluster_tag),
                opts=child,
            ))

        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id,
                                          tags=aws_tags(args.tags, Name=f"{name}-igw"), opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block=EVERYWHERE_V4, gateway_id=gateway.id)],
            tags=aws_tags(args.tags, Name=f"{name}-public"),
            opts=child,
        )
        for az, subnet in zip(azs, public_subnets, strict=True):
            aws.ec2.RouteTableAssociation(f"{name}-public-{az}", subnet_id=subnet.id,
                                          route_table_id=public_routes.id, opts=child)

        nat_azs = azs if strategy is NatStrategy.PER_AZ else azs[:1]
        nat_gateways: list[aws.ec2.NatGateway] = []
        for az, subnet in zip(nat_azs, public_subnets, strict=False):
            address = aws.ec2.Eip(f"{name}-nat-{az}", domain="vpc",
                                  tags=aws_tags(args.tags, Name=f"{name}-nat-{az}"), opts=child)
            nat_gateways.append(aws.ec2.NatGateway(
                f"{name}-nat-{az}",
                allocation_id=address.id,
                subnet_id=subnet.id,
                connectivity_type="public",
                tags=aws_tags(args.tags, Name=f"{name}-nat-{az}"),
                # AWS: a NAT gateway needs the internet gateway attached before it can pass traffic.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
            ))

        private_route_tables: list[aws.ec2.RouteTable] = []
        for index, (az, subnet) in enumerate(zip(azs, private_subnets, strict=True)):
            nat = nat_gateways[index] if strategy is NatStrategy.PER_AZ else nat_gateways[0]
            private_routes = aws.ec2.RouteTable(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block=EVERYWHERE_V4, nat_gateway_id=nat.id)],
                tags=aws_tags(args.tags, Name=f"{name}-private-{az}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-private-{az}", subnet_id=subnet.id,
                                          route_table_id=private_routes.id, opts=child)
            private_route_tables.append(private_routes)

        # ECR stores image layers in S3: through the gateway endpoint (free) they skip the NAT gateway's
        # $0.045/GB processing charge. A gateway endpoint only adds a prefix-list route to these tables.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=s3_gateway_service(azs[0]),
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in private_route_tables],
            tags=aws_tags(args.tags, Name=f"{name}-s3"),
            opts=child,
        )

        flow_log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=args.flow_log_retention_days,
            tags=aws_tags(args.tags, Name=f"{name}-flow-logs"),
            opts=child,
        )
        flow_log_role = aws.iam.Role(
            f"{name}-flow-logs",
            description="VPC flow logs delivery to CloudWatch Logs (phasekit)",
            assume_role_policy=vpc.arn.apply(flow_logs_trust_policy),
            tags=aws_tags(args.tags, Name=f"{name}-flow-logs"),
            opts=child,
        )
        flow_log_policy = aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=flow_log_role.id,
            policy=flow_log_group.arn.apply(flow_logs_write_policy),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=flow_log_group.arn,
            iam_role_arn=flow_log_role.arn,
            tags=aws_tags(args.tags, Name=f"{name}-flow-logs"),
            # Deliveries fail until the role may write, so the policy must exist first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[flow_log_policy]),
        )

        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=aws_tags(args.tags, Name=f"{name}-default-locked"),
            opts=child,
        )

        private_ids = [subnet.id for subnet in private_subnets]
        db_subnet_group = aws.rds.SubnetGroup(
            f"{name}-db",
            description="phasekit private subnets for RDS",
            subnet_ids=private_ids,
            tags=aws_tags(args.tags, Name=f"{name}-db"),
            opts=child,
        )
        cache_subnet_group = aws.elasticache.SubnetGroup(
            f"{name}-cache",
            description="phasekit private subnets for ElastiCache",
            subnet_ids=private_ids,
            tags=aws_tags(args.tags, Name=f"{name}-cache"),
            opts=child,
        )

        self.vpc_id = vpc.id
        self.vpc_cidr_block = vpc.cidr_block
        self.public_subnet_ids = pulumi.Output.all(*[subnet.id for subnet in public_subnets])
        self.private_subnet_ids = pulumi.Output.all(*private_ids)
        self.db_subnet_group_name = db_subnet_group.name
        self.cache_subnet_group_name = cache_subnet_group.name
        self.nat_gateway_count = len(nat_gateways)
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "vpc_cidr_block": self.vpc_cidr_block,
            "public_subnet_ids": self.public_subnet_ids,
            "private_subnet_ids": self.private_subnet_ids,
            "db_subnet_group_name": self.db_subnet_group_name,
            "cache_subnet_group_name": self.cache_subnet_group_name,
            "nat_gateway_count": pulumi.Output.from_input(self.nat_gateway_count),
        })


def _check_args(args: AwsNetworkArgs) -> NatStrategy:
    azs = list(args.availability_zones)
    if not MIN_AZS <= len(azs) <= MAX_AZS:
        raise ValueError(f"AwsNetworkArgs.availability_zones: {MIN_AZS} or {MAX_AZS} zones are required, "
                         f"got {len(azs)}")
    if len(set(azs)) != len(azs):
        duplicate = next(az for az in azs if azs.count(az) > 1)
        raise ValueError(f"AwsNetworkArgs.availability_zones: {duplicate!r} is listed twice; each AZ once")
    _check_cidr(args.cidr_block)
    try:
        strategy = NatStrategy(args.nat_strategy)
    except ValueError:
        raise ValueError(f"AwsNetworkArgs.nat_strategy: {args.nat_strategy!r}; allowed: "
                         + ", ".join(strategy.value for strategy in NatStrategy)) from None
    if args.flow_log_retention_days not in CLOUDWATCH_RETENTION_DAYS:
        raise ValueError(f"AwsNetworkArgs.flow_log_retention_days: {args.flow_log_retention_days} is not a "
                         f"CloudWatch retention period; allowed: {CLOUDWATCH_RETENTION_TEXT}")
    return strategy


def _check_cidr(cidr_block: str) -> None:
    prefix = "AwsNetworkArgs.cidr_block"
    try:
        network = ipaddress.ip_network(cidr_block, strict=False)
    except ValueError:
        raise ValueError(f"{prefix}: {cidr_block!r} is not an IP network; allowed: a private IPv4 network "
                         "such as 10.20.0.0/16") from None
    if network.version != 4:
        raise ValueError(f"{prefix}: {cidr_block!r} is IPv6; allowed: a private IPv4 network such as 10.20.0.0/16")
    if str(network) != cidr_block:
        raise ValueError(f"{prefix}: {cidr_block!r} has host bits set or is not canonical; did you mean "
                         f"'{network}'?")
    if not any(network.subnet_of(block) for block in RFC1918):
        raise ValueError(f"{prefix}: {cidr_block!r} is not a private network; allowed: inside 10.0.0.0/8, "
                         "172.16.0.0/12 or 192.168.0.0/16")
    if not MIN_VPC_PREFIX <= network.prefixlen <= MAX_VPC_PREFIX:
        raise ValueError(f"{prefix}: {cidr_block!r} has prefix /{network.prefixlen}; allowed: "
                         f"/{MIN_VPC_PREFIX} to /{MAX_VPC_PREFIX}")
