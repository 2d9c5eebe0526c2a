"""PublicLoadBalancer: phase 3's public entry point, an AWS Application Load Balancer in front of EKS.

Creates
- a security group for the ALB: inbound only tcp/443 from ``source_cidrs`` (Cloudflare's ranges; the
  caller passes them, nothing is admitted by default), outbound only tcp/<node port> to the node
  security group (the target traffic and the health checks both use that port);
- a rule on the node security group admitting tcp/<node port> from the ALB's security group only;
- an ACM certificate importing the Cloudflare Origin CA certificate and its key (the key is a secret);
- the ALB: internet-facing, IPv4 by default, ``drop_invalid_header_fields`` on, HTTP/2 on, deletion
  protection off (see Stateful), the idle timeout from the args;
- a target group (HTTP to the Service's fixed NodePort, instance targets, health check on
  ``health_path`` expecting 200-499, 30 s deregistration delay) and an attachment registering the managed
  node group's Auto Scaling group in it, so nodes join and leave the target group with the group;
- one HTTPS listener on 443 (TLS 1.3 + 1.2 policy ``ELBSecurityPolicy-TLS13-1-2-2021-06``) forwarding to
  the target group;
- with ``access_logs`` (the default): an S3 bucket for the ALB's access logs (``<name>-logs``): all public
  access blocked, ACLs off (bucket owner enforced), SSE-S3 encryption (ALB log delivery supports only SSE-S3,
  not KMS), a lifecycle rule expiring logs after ``access_log_retention_days`` and aborting incomplete uploads
  after a day, and a bucket policy (``access_log_bucket_policy``) letting only Elastic Load Balancing write
  under ``alb/AWSLogs/`` (the regional ELB account in regions opened before August 2022, the log-delivery
  service principal elsewhere) and refusing any request without TLS;
- when ``alarm_topic_arn`` is given, two CloudWatch alarms notifying it (alarm and OK): ALB-generated
  5XX responses and unhealthy targets (thresholds below, at ``ELB_5XX_ALARM`` and
  ``UNHEALTHY_HOSTS_ALARM``).

Why an ALB built from plain resources rather than the AWS Load Balancer Controller or a Service of type
LoadBalancer: every piece is a Pulumi resource visible in preview and in the mock tests, there is no
controller with its own IAM role and Helm chart to run, and the origin is locked to Cloudflare by the
security group.

Does not create
- a port 80 listener: Cloudflare's "Always Use HTTPS" (CloudflareEdge) redirects at the edge, and the
  security group only admits 443, so nothing would ever reach one;
- DNS (CloudflareEdge points a proxied CNAME at ``dns_name``), the certificate itself (CloudflareEdge
  issues it), the VPC, subnets, node group or its security group, the SNS topic;
- a WAF (Cloudflare is the WAF).

IP addresses: ``ip_address_type`` is ``ipv4`` unless the caller asks for ``dualstack``. AWS requires the
VPC and every ALB subnet to have IPv6 CIDR blocks (and IPv6 routes) for ``dualstack``, and phasekit's
AwsNetwork assigns none, so by default only the IPv4 entries of ``source_cidrs`` are admitted (IPv6
entries are ignored: an IPv4-only ALB has no IPv6 address for them to reach). Cloudflare reaches an IPv4
origin over IPv4 whatever the visitor used.

Client addresses: the ALB appends the peer (a Cloudflare edge) to ``X-Forwarded-For``; the visitor's
address is in Cloudflare's ``CF-Connecting-IP`` header, which the app should read.

Cost (us-east-1 list prices, 2026): the ALB $0.0225/h (about $16.43/month at 730 h) plus $0.008 per LCU-hour
of traffic, plus $0.005/h (about $3.65/month) per public IPv4 address (one per subnet/AZ the ALB spans);
each alarm $0.10/month; the access logs bill as S3 Standard storage and PUT requests, in proportion to traffic
(usage-based: roughly 1 KB per request before gzip). Security groups, the target group, the listener and the
imported certificate are free.

Stateful: nothing worth protecting. The access-log bucket holds only diagnostics that expire anyway, so it is
``force_destroy`` (a ``pulumi destroy`` or replacement deletes the logs with it instead of failing on a
non-empty bucket) and not protected; copy logs you must keep before destroying. The ALB holds no data and
can be rebuilt from code; its DNS name changes when it is
replaced, and CloudflareEdge's CNAME follows in the same ``pulumi up``. Deletion protection is off so
that replacements and ``pulumi destroy`` are not blocked by a flag that protects nothing.

The node security group is owned by EksCluster; the rule added here is a separate resource, which works
because EksCluster also manages that group's rules as separate resources (inline ``ingress`` on it would
remove this rule on the next update after a refresh).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.aws_choices import (
    ALB_DEREGISTRATION_DELAY_SECONDS,
    ELB_LOG_DELIVERY_ACCOUNTS,
    ELB_LOG_DELIVERY_SERVICE,
    NODE_PORT_RANGE,
)
from components.tags import aws_tags

HTTPS_PORT = 443
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 only, forward-secret ciphers; Cloudflare's edge speaks both to origins."""


HEALTH_MATCHER = "200-499"
"""The target group checks that a node forwards to a pod that answers. It cannot follow the health-check contract:
an ELBv2 target-group health check has no header settings (docs.aws.amazon.com/elasticloadbalancing/latest/
application/target-group-health-checks.html), so it sends the target's address as Host, which an app that checks
its host answers 400 and one that redirects plain HTTP answers 301. Any answer below 500 proves the path works; the
pods' readiness probes (with the contract's headers) decide which pods serve."""
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 3
"""With the default 15 s interval a node leaves rotation after 45 s of failures and returns after 30 s."""

HEALTH_CHECK_TIMEOUT_SECONDS = 5

ELB_5XX_ALARM = {"metric": "HTTPCode_ELB_5XX_Count", "statistic": "Sum", "period": 300, "evaluation_periods": 1,
                 "threshold": 10, "comparison": "GreaterThanThreshold", "treat_missing_data": "notBreaching"}
"""More than 10 errors generated by the ALB itself (502/503/504: targets down, refusing or too slow) in
5 minutes. A stray 502 while a pod restarts does not page; an outage (every request failing) does. The
metric is only published when non-zero, so no data means no errors."""

UNHEALTHY_HOSTS_ALARM = {"metric": "UnHealthyHostCount", "statistic": "Maximum", "period": 60,
                         "evaluation_periods": 5, "threshold": 0, "comparison": "GreaterThanThreshold",
                         "treat_missing_data": "missing"}
"""Any unhealthy target in every minute of 5 consecutive minutes: a node that fails its checks that long
is worth a look, while the short blips of a node-group rollout (draining and still-registering targets)
stay under it. With ``externalTrafficPolicy: Cluster`` every node forwards to any ready pod, so all nodes
go unhealthy together when no app pod is ready. No data keeps the alarm's state."""

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,18}[A-Za-z0-9])?")
"""The ALB and target group are auto-named ``<name>-alb-<7 hex>`` / ``<name>-tg-<7 hex>``; AWS allows 32
characters (letters, digits, hyphens, no hyphen at either end), so the component name gets 20."""

ACCESS_LOG_PREFIX = "alb"
"""Key prefix of the logs in the bucket (ELB appends ``AWSLogs/<account>/elasticloadbalancing/...``)."""

IpAddressType = Literal["ipv4", "dualstack"]


@dataclass
class PublicLoadBalancerArgs:
    vpc_id: pulumi.Input[str]
    """VPC of the subnets and the nodes (AwsNetwork ``vpc_id``)."""

    public_subnet_ids: pulumi.Input[Sequence[str]]
    """Public subnets the ALB lives in, at least two in different Availability Zones (AwsNetwork
    ``public_subnet_ids``). Checked for at least two when given as a plain list."""

    source_cidrs: pulumi.Input[Sequence[str]]
    """The only networks admitted on 443: Cloudflare's IPv4 and IPv6 ranges (``cloudflare_ip_ranges()``).
    Nothing is admitted by default; ``0.0.0.0/0`` only if the caller passes it. At least one IPv4 network.
    With ``ip_address_type="ipv4"`` the IPv6 entries are ignored. Validated in the constructor when a plain
    list, at deploy time when an Output."""

    certificate_pem: pulumi.Input[str]
    """The Cloudflare Origin CA certificate (PEM) the ALB presents (CloudflareEdge
    ``origin_certificate_pem``); imported into ACM."""

    private_key_pem: pulumi.Input[str]
    """Its private key (PEM; a secret, kept secret in the ACM certificate's state)."""

    target_node_port: int
    """The app Service's fixed NodePort (30000-32767) the target group forwards to and health-checks."""

    node_security_group_id: pulumi.Input[str]
    """The EKS nodes' security group (EksCluster ``node_security_group_id``); gets a rule admitting the
    node port from the ALB only, and is the ALB's only egress destination."""

    target_autoscaling_group_name: pulumi.Input[str]
    """The managed node group's Auto Scaling group (EksCluster ``node_autoscaling_group_name``); its
    instances are the targets."""

    health_path: str
    """Path the target group's health check requests, e.g. ``/healthz``; must start with ``/``. Any answer
    below 500 is healthy (``HEALTH_MATCHER`` says why)."""

    certificate_chain_pem: pulumi.Input[str] | None = None
    """Intermediate/root chain (PEM) imported with the certificate; None imports the leaf alone (Cloudflare
    validates Origin CA leaves itself, so the chain is optional)."""

    health_check_interval_seconds: int = 15
    """Seconds between health checks, 5-300. Default 15. The timeout is 5 s (4 s at a 5 s interval: AWS wants
    it shorter than the interval)."""

    idle_timeout_seconds: int = 60
    """ALB idle connection timeout, 1-4000 s. Default 60. Cloudflare gives up on an origin after 100 s."""

    alarm_topic_arn: pulumi.Input[str] | None = None
    """SNS topic for the 5XX and unhealthy-target alarms (alarm and OK). None: no alarms are created."""

    ip_address_type: IpAddressType = "ipv4"
    """``ipv4`` (default) or ``dualstack``. Dualstack admits the IPv6 entries of ``source_cidrs`` too, and
    needs a VPC and public subnets with IPv6 CIDR blocks and IPv6 routes, which AwsNetwork does not create."""

    access_logs: bool = True
    """Write the ALB's access logs to an S3 bucket this component creates. Default on; needs ``region``."""

    access_log_retention_days: int = 90
    """Days S3 keeps each access log before the lifecycle rule deletes it, 1-3650. Default 90."""

    region: str | None = None
    """The AWS region of the ALB: decides who the bucket policy lets write the logs. Required with
    ``access_logs``."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """AWS tags merged into every taggable child (each also gets a ``Name``)."""


def access_log_writer(region: str) -> dict[str, str]:
    """The principal Elastic Load Balancing writes access logs as in ``region``: the regional ELB account for
    regions opened before August 2022, the log-delivery service principal for the others."""
    account = ELB_LOG_DELIVERY_ACCOUNTS.get(region)
    return {"AWS": f"arn:aws:iam::{account}:root"} if account else {"Service": ELB_LOG_DELIVERY_SERVICE}


def access_log_bucket_policy(bucket_arn: str, region: str) -> str:
    """Only Elastic Load Balancing may write, and only under the log prefix; nothing without TLS."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ElbWritesAccessLogs", "Effect": "Allow", "Principal": access_log_writer(region),
             "Action": "s3:PutObject", "Resource": f"{bucket_arn}/{ACCESS_LOG_PREFIX}/AWSLogs/*"},
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [bucket_arn, f"{bucket_arn}/*"],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    }, sort_keys=True)


def admitted_cidrs(cidrs: Sequence[str], ip_address_type: IpAddressType) -> tuple[list[str], list[str]]:
    """Split ``cidrs`` into (IPv4, IPv6) networks admitted on 443, each in the given order without
    duplicates; IPv6 is empty for an IPv4-only ALB. Raises ``ValueError`` for a malformed network or when
    no IPv4 network remains."""
    ipv4: list[str] = []
    ipv6: list[str] = []
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except (TypeError, ValueError):
            raise ValueError(f"PublicLoadBalancerArgs.source_cidrs: {cidr!r} is not a network in CIDR "
                             "notation (e.g. 173.245.48.0/20)") from None
        family = ipv4 if network.version == 4 else ipv6
        if cidr not in family:
            family.append(cidr)
    if not ipv4:
        raise ValueError("PublicLoadBalancerArgs.source_cidrs: at least one IPv4 network is required "
                         "(the ALB always has IPv4 addresses)")
    return ipv4, (ipv6 if ip_address_type == "dualstack" else [])


def health_check_timeout(interval_seconds: int) -> int:
    """The health check timeout: 5 s, or 1 s less than the interval (AWS requires it to be shorter)."""
    return min(HEALTH_CHECK_TIMEOUT_SECONDS, interval_seconds - 1)


class PublicLoadBalancer(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    """The ALB's DNS name: what CloudflareEdge's proxied CNAME points at."""

    zone_id: pulumi.Output[str]
    """The ALB's Route 53 hosted zone id (for alias records, if ever needed)."""

    load_balancer_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    """The ALB's security group (443 from ``source_cidrs`` only)."""

    target_group_arn: pulumi.Output[str]
    certificate_arn: pulumi.Output[str]
    """The imported ACM certificate."""

    access_log_bucket_name: pulumi.Output[str] | None
    """The access-log bucket; None without ``access_logs``."""

    def __init__(self, name: str, args: PublicLoadBalancerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _check_args(name, args)
        super().__init__("phasekit:index:PublicLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        port = args.target_node_port

        cidrs = pulumi.Output.from_input(args.source_cidrs).apply(
            lambda given: admitted_cidrs(given, args.ip_address_type))
        https_ingress = aws.ec2.SecurityGroupIngressArgs(
            protocol="tcp", from_port=HTTPS_PORT, to_port=HTTPS_PORT,
            cidr_blocks=cidrs.apply(lambda split: split[0]),
            ipv6_cidr_blocks=cidrs.apply(lambda split: split[1]) if args.ip_address_type == "dualstack" else None,
            description="HTTPS from the allowed sources (Cloudflare)",
        )
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            # The description forces a replacement when changed: keep it fixed.
            description="phasekit public ALB",
            ingress=[https_ingress],
            egress=[aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp", from_port=port, to_port=port, security_groups=[args.node_security_group_id],
                description="to the app NodePort on the EKS nodes",
            )],
            tags=aws_tags(args.tags, Name=f"{name}-sg"),
            opts=child,
        )

        aws.vpc.SecurityGroupIngressRule(
            f"{name}-node-ingress",
            security_group_id=args.node_security_group_id,
            referenced_security_group_id=security_group.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description="app NodePort from the public ALB only",
            tags=aws_tags(args.tags, Name=f"{name}-node-ingress"),
            opts=child,
        )

        certificate = aws.acm.Certificate(
            f"{name}-cert",
            certificate_body=args.certificate_pem,
            private_key=pulumi.Output.secret(args.private_key_pem),
            certificate_chain=args.certificate_chain_pem,
            tags=aws_tags(args.tags, Name=f"{name}-cert"),
            opts=child,
        )

        log_bucket, log_bucket_ready = _access_log_bucket(name, args, self) if args.access_logs else (None, [])
        load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            ip_address_type=args.ip_address_type,
            subnets=args.public_subnet_ids,
            security_groups=[security_group.id],
            drop_invalid_header_fields=True,
            enable_http2=True,
            # Stateless and rebuilt from code; the flag would only block replacements and `pulumi destroy`.
            enable_deletion_protection=False,
            idle_timeout=args.idle_timeout_seconds,
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                bucket=log_bucket.bucket, enabled=True, prefix=ACCESS_LOG_PREFIX) if log_bucket else None,
            tags=aws_tags(args.tags, Name=f"{name}-alb"),
            # ELB test-writes to the bucket when logging is turned on: the policy must be in place first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=log_bucket_ready),
        )

        target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            vpc_id=args.vpc_id,
            target_type="instance",
            protocol="HTTP",
            port=port,
            deregistration_delay=ALB_DEREGISTRATION_DELAY_SECONDS,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                protocol="HTTP",
                port="traffic-port",
                path=args.health_path,
                matcher=HEALTH_MATCHER,
                interval=args.health_check_interval_seconds,
                timeout=health_check_timeout(args.health_check_interval_seconds),
                healthy_threshold=HEALTHY_THRESHOLD,
                unhealthy_threshold=UNHEALTHY_THRESHOLD,
            ),
            tags=aws_tags(args.tags, Name=f"{name}-tg"),
            opts=child,
        )

        aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=load_balancer.arn,
            port=HTTPS_PORT,
            protocol="HTTPS",
            ssl_policy=SSL_POLICY,
            certificate_arn=certificate.arn,
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)],
            tags=aws_tags(args.tags, Name=f"{name}-https"),
            opts=child,
        )

        aws.autoscaling.Attachment(
            f"{name}-nodes",
            autoscaling_group_name=args.target_autoscaling_group_name,
            lb_target_group_arn=target_group.arn,
            opts=child,
        )

        if args.alarm_topic_arn is not None:
            _alarm(f"{name}-elb-5xx", ELB_5XX_ALARM, {"LoadBalancer": load_balancer.arn_suffix},
                   "the ALB answered more than 10 requests with its own 5XX in 5 minutes", args, self)
            _alarm(f"{name}-unhealthy-hosts", UNHEALTHY_HOSTS_ALARM,
                   {"LoadBalancer": load_balancer.arn_suffix, "TargetGroup": target_group.arn_suffix},
                   "a target node failed its health checks for 5 minutes", args, self)

        self.dns_name = load_balancer.dns_name
        self.zone_id = load_balancer.zone_id
        self.load_balancer_arn = load_balancer.arn
        self.security_group_id = security_group.id
        self.target_group_arn = target_group.arn
        self.certificate_arn = certificate.arn
        self.access_log_bucket_name = log_bucket.bucket if log_bucket else None
        self.register_outputs({
            "access_log_bucket_name": self.access_log_bucket_name,
            "dns_name": self.dns_name,
            "zone_id": self.zone_id,
            "load_balancer_arn": self.load_balancer_arn,
            "security_group_id": self.security_group_id,
            "target_group_arn": self.target_group_arn,
            "certificate_arn": self.certificate_arn,
        })


def _access_log_bucket(name: str, args: PublicLoadBalancerArgs, parent: pulumi.Resource,
                       ) -> tuple[aws.s3.Bucket, list[pulumi.Resource]]:
    """The private, SSE-S3, self-expiring bucket the ALB writes its access logs to, and what must exist
    before the ALB may point at it."""
    child = pulumi.ResourceOptions(parent=parent)
    # S3 bucket names are lower case; the provider appends a unique suffix to the prefix.
    bucket = aws.s3.Bucket(f"{name}-logs", bucket_prefix=f"{name.lower()}-logs-", force_destroy=True,
                           tags=aws_tags(args.tags, Name=f"{name}-logs"), opts=child)
    # S3 refuses concurrent configuration changes to one bucket (OperationAborted), so each configuration
    # waits for the one before it.
    def after(previous: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=parent, depends_on=[previous])

    public_access = aws.s3.BucketPublicAccessBlock(
        f"{name}-logs", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
        ignore_public_acls=True, restrict_public_buckets=True, opts=child)
    ownership = aws.s3.BucketOwnershipControls(
        f"{name}-logs", bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=after(public_access))
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-logs", bucket=bucket.id,
        rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=(
                aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256")))],
        opts=after(ownership))
    lifecycle = aws.s3.BucketLifecycleConfiguration(
        f"{name}-logs", bucket=bucket.id,
        rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-access-logs", status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=f"{ACCESS_LOG_PREFIX}/"),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=args.access_log_retention_days),
            abort_incomplete_multipart_upload=(
                aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(days_after_initiation=1)),
        )],
        opts=after(encryption))
    region = args.region or ""
    policy = aws.s3.BucketPolicy(
        f"{name}-logs", bucket=bucket.id,
        policy=bucket.arn.apply(lambda arn: access_log_bucket_policy(arn, region)),
        opts=after(lifecycle))
    return bucket, [policy, encryption]


def _alarm(name: str, spec: Mapping[str, object], dimensions: Mapping[str, pulumi.Input[str]], description: str,
           args: PublicLoadBalancerArgs, parent: pulumi.Resource) -> aws.cloudwatch.MetricAlarm:
    return aws.cloudwatch.MetricAlarm(
        name,
        namespace="AWS/ApplicationELB",
        metric_name=spec["metric"],
        statistic=spec["statistic"],
        period=spec["period"],
        evaluation_periods=spec["evaluation_periods"],
        threshold=spec["threshold"],
        comparison_operator=spec["comparison"],
        treat_missing_data=spec["treat_missing_data"],
        dimensions=dict(dimensions),
        alarm_description=f"phasekit: {description}",
        alarm_actions=[args.alarm_topic_arn],
        ok_actions=[args.alarm_topic_arn],
        tags=aws_tags(args.tags, Name=name),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _check_args(name: str, args: PublicLoadBalancerArgs) -> None:
    if not _NAME.fullmatch(name) or name.startswith("internal-") or name == "internal":
        raise ValueError(f"PublicLoadBalancer name {name!r}: the ALB and target group are auto-named from it "
                         "and AWS allows 32 characters, so use 1-20 letters, digits and hyphens, not starting "
                         "or ending with a hyphen nor starting with 'internal'")
    low, high = NODE_PORT_RANGE
    if isinstance(args.target_node_port, bool) or not low <= args.target_node_port <= high:
        raise ValueError(f"PublicLoadBalancerArgs.target_node_port: {args.target_node_port} is outside the "
                         f"NodePort range {low}-{high}")
    if not args.health_path.startswith("/") or len(args.health_path) > 1024 or re.search(r"\s", args.health_path):
        raise ValueError(f"PublicLoadBalancerArgs.health_path: {args.health_path!r} must be an absolute path "
                         "starting with '/', without spaces, at most 1024 characters")
    if not 5 <= args.health_check_interval_seconds <= 300:
        raise ValueError(f"PublicLoadBalancerArgs.health_check_interval_seconds: "
                         f"{args.health_check_interval_seconds}; allowed: 5-300")
    if not 1 <= args.idle_timeout_seconds <= 4000:
        raise ValueError(f"PublicLoadBalancerArgs.idle_timeout_seconds: {args.idle_timeout_seconds}; "
                         "allowed: 1-4000")
    if args.access_logs and not args.region:
        raise ValueError("PublicLoadBalancerArgs.region: required with access_logs (it decides who may write the "
                         "logs to the bucket)")
    if not 1 <= args.access_log_retention_days <= 3650:
        raise ValueError(f"PublicLoadBalancerArgs.access_log_retention_days: {args.access_log_retention_days}; "
                         "allowed: 1-3650")
    if args.ip_address_type not in ("ipv4", "dualstack"):
        raise ValueError(f"PublicLoadBalancerArgs.ip_address_type: {args.ip_address_type!r}; "
                         "allowed: ipv4, dualstack")
    if _is_plain_list(args.source_cidrs):
        admitted_cidrs(args.source_cidrs, args.ip_address_type)
    if _is_plain_list(args.public_subnet_ids) and len(args.public_subnet_ids) < 2:
        raise ValueError("PublicLoadBalancerArgs.public_subnet_ids: an ALB needs at least two subnets in "
                         "different Availability Zones")


def _is_plain_list(value: object) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
