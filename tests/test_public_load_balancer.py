"""PublicLoadBalancer under the recording mock monitor: security groups, certificate import, ALB, target
group, listener, node attachment, alarms, and argument validation.

Mocks cannot prove that AWS accepts these inputs (that ACM takes this key and chain, that the subnets sit
in two Availability Zones, that the security policy name exists in the region), which ARNs and DNS name
AWS computes (those here are the harness' inventions), nor how AWS diffs them against a live ALB; a real
``pulumi preview`` and ``pulumi up`` do. Nor can they show that traffic flows: Cloudflare reaching 443,
the nodes answering on the NodePort.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.public_load_balancer import (
    PublicLoadBalancer,
    PublicLoadBalancerArgs,
    access_log_bucket_policy,
    admitted_cidrs,
    health_check_timeout,
)
from components.testing import UNKNOWN_MASK, run_recorded
from tests.builders import CLOUDFLARE_CIDRS

COMPONENT = "phasekit:index:PublicLoadBalancer"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
NODE_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
CERTIFICATE = "aws:acm/certificate:Certificate"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
ATTACHMENT = "aws:autoscaling/attachment:Attachment"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LOG_BUCKET_COUNTS = {BUCKET: 1, PUBLIC_ACCESS_BLOCK: 1, OWNERSHIP: 1, ENCRYPTION: 1, LIFECYCLE: 1, BUCKET_POLICY: 1}

TAGS = {"project": "phasekit", "stack": "test", "phase": "3", "managed-by": "phasekit"}
CLOUDFLARE_IPV4 = CLOUDFLARE_CIDRS[:15]
CLOUDFLARE_IPV6 = CLOUDFLARE_CIDRS[15:]
CERT = "-----BEGIN CERTIFICATE-----\nMIIorigin\n-----END CERTIFICATE-----\n"
CHAIN = "-----BEGIN CERTIFICATE-----\nMIIcfroot\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIGHkey\n-----END PRIVATE KEY-----\n"
TOPIC = "arn:aws:sns:us-east-1:123456789012:phasekit-alarms"
OUTPUTS = ["dns_name", "zone_id", "load_balancer_arn", "security_group_id", "target_group_arn", "certificate_arn",
           "access_log_bucket_name"]


def tags(name: str) -> dict[str, str]:
    return {**TAGS, "Name": name}


def lb_args(**overrides: Any) -> PublicLoadBalancerArgs:
    values: dict[str, Any] = {
        "vpc_id": "vpc-0a1b2c3d",
        "public_subnet_ids": ["subnet-public-a", "subnet-public-b"],
        "source_cidrs": CLOUDFLARE_CIDRS,
        "certificate_pem": CERT,
        "private_key_pem": KEY,
        "target_node_port": 30080,
        "node_security_group_id": "sg-nodes",
        "target_autoscaling_group_name": "eks-web-nodes-asg",
        "health_path": "/healthz",
        "alarm_topic_arn": TOPIC,
        "region": "us-east-1",
        "tags": TAGS,
    }
    values.update(overrides)
    return PublicLoadBalancerArgs(**values)


def export_outputs(balancer: PublicLoadBalancer) -> None:
    for output in OUTPUTS:
        pulumi.export(output, getattr(balancer, output))


def record(preview: bool = False, name: str = "web", **overrides: Any):
    return run_recorded(lambda: export_outputs(PublicLoadBalancer(name, lb_args(**overrides))), preview=preview)


def record_from_upstream(preview: bool, source_cidrs: list[str] = CLOUDFLARE_CIDRS):
    """Every Input arrives as an Output of an upstream resource: unknown in preview, known in an update."""
    def program() -> None:
        upstream = aws.ec2.Vpc("upstream", cidr_block="10.20.0.0/16")

        def later(value: Any) -> pulumi.Output[Any]:
            return upstream.id.apply(lambda _: value)

        export_outputs(PublicLoadBalancer("web", lb_args(
            vpc_id=later("vpc-0a1b2c3d"),
            public_subnet_ids=later(["subnet-public-a", "subnet-public-b"]),
            source_cidrs=later(source_cidrs),
            certificate_pem=later(CERT),
            private_key_pem=pulumi.Output.secret(later(KEY)),
            node_security_group_id=later("sg-nodes"),
            target_autoscaling_group_name=later("eks-web-nodes-asg"),
            alarm_topic_arn=later(TOPIC),
        )))
    return run_recorded(program, preview=preview)


def test_children_are_exactly_the_load_balancer_topology():
    recording = record()
    assert recording.type_counts() == {
        COMPONENT: 1, SECURITY_GROUP: 1, NODE_RULE: 1, CERTIFICATE: 1, LOAD_BALANCER: 1, TARGET_GROUP: 1,
        LISTENER: 1, ATTACHMENT: 1, ALARM: 2, **LOG_BUCKET_COUNTS,
    }
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert sorted(child.name for child in children) == [
        "web-alb", "web-cert", "web-elb-5xx", "web-https", *["web-logs"] * 6, "web-node-ingress", "web-nodes",
        "web-sg", "web-tg", "web-unhealthy-hosts"]


def test_alb_security_group_admits_443_only_from_the_ipv4_sources_and_reaches_only_the_node_port():
    group = record().one(SECURITY_GROUP)
    assert group.inputs == {
        "vpcId": "vpc-0a1b2c3d",
        "description": "phasekit public ALB",
        "ingress": [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": CLOUDFLARE_IPV4,
                     "description": "HTTPS from the allowed sources (Cloudflare)"}],
        "egress": [{"protocol": "tcp", "fromPort": 30080, "toPort": 30080, "securityGroups": ["sg-nodes"],
                    "description": "to the app NodePort on the EKS nodes"}],
        "tags": tags("web-sg"),
    }
    assert "0.0.0.0/0" not in group.inputs["ingress"][0]["cidrBlocks"]


def test_dualstack_admits_the_ipv6_ranges_on_443_too():
    recording = record(ip_address_type="dualstack")
    assert recording.one(SECURITY_GROUP).inputs["ingress"] == [{
        "protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": CLOUDFLARE_IPV4,
        "ipv6CidrBlocks": CLOUDFLARE_IPV6, "description": "HTTPS from the allowed sources (Cloudflare)"}]
    assert recording.one(LOAD_BALANCER).inputs["ipAddressType"] == "dualstack"


def test_the_world_is_admitted_only_when_the_caller_says_so():
    ingress = record(source_cidrs=["0.0.0.0/0", "::/0"]).one(SECURITY_GROUP).inputs["ingress"]
    assert [rule["cidrBlocks"] for rule in ingress] == [["0.0.0.0/0"]]
    assert all("ipv6CidrBlocks" not in rule for rule in ingress)


def test_node_security_group_admits_the_node_port_from_the_alb_security_group_only():
    recording = record()
    rule = recording.one(NODE_RULE)
    assert rule.inputs == {
        "securityGroupId": "sg-nodes",
        "referencedSecurityGroupId": recording.one(SECURITY_GROUP).id,
        "ipProtocol": "tcp",
        "fromPort": 30080,
        "toPort": 30080,
        "description": "app NodePort from the public ALB only",
        "tags": tags("web-node-ingress"),
    }


def test_certificate_imports_the_origin_certificate_with_a_secret_key():
    certificate = record().one(CERTIFICATE)
    assert certificate.inputs == {"certificateBody": CERT, "privateKey": KEY, "tags": tags("web-cert")}
    assert certificate.secret_inputs == frozenset({"privateKey"})


def test_certificate_chain_is_imported_when_given():
    certificate = record(certificate_chain_pem=CHAIN).one(CERTIFICATE)
    assert certificate.inputs["certificateChain"] == CHAIN
    assert certificate.secret_inputs == frozenset({"privateKey"})


def test_alb_is_internet_facing_ipv4_drops_invalid_headers_and_is_not_deletion_protected():
    recording = record()
    balancer = recording.one(LOAD_BALANCER)
    assert balancer.inputs == {
        "loadBalancerType": "application",
        "internal": False,
        "ipAddressType": "ipv4",
        "subnets": ["subnet-public-a", "subnet-public-b"],
        "securityGroups": [recording.one(SECURITY_GROUP).id],
        "dropInvalidHeaderFields": True,
        "enableHttp2": True,
        "enableDeletionProtection": False,
        "idleTimeout": 60,
        "accessLogs": {"bucket": "web-logs-f78eec8", "enabled": True, "prefix": "alb"},
        "tags": tags("web-alb"),
    }
    assert record(idle_timeout_seconds=120).one(LOAD_BALANCER).inputs["idleTimeout"] == 120


def test_nothing_is_protected_and_the_alb_identity_is_stable():
    """Stateless, so nothing is protected; but a new URN means a new ALB with a new DNS name."""
    recording = record()
    assert [(child.name, child.protect, child.retain_on_delete) for child in recording.resources
            if child.protect or child.retain_on_delete] == []
    assert recording.one(LOAD_BALANCER).urn == (
        "urn:pulumi:test::phasekit::phasekit:index:PublicLoadBalancer$aws:lb/loadBalancer:LoadBalancer::web-alb")


def test_target_group_forwards_http_to_the_node_port_and_checks_health_exactly():
    group = record().one(TARGET_GROUP)
    assert group.inputs == {
        "vpcId": "vpc-0a1b2c3d",
        "targetType": "instance",
        "protocol": "HTTP",
        "port": 30080,
        "deregistrationDelay": 30,
        "healthCheck": {
            "enabled": True, "protocol": "HTTP", "port": "traffic-port", "path": "/healthz", "matcher": "200-499",
            "interval": 15, "timeout": 5, "healthyThreshold": 2, "unhealthyThreshold": 3,
        },
        "tags": tags("web-tg"),
    }


def test_health_check_follows_interval_and_path():
    check = record(health_check_interval_seconds=5, health_path="/up").one(TARGET_GROUP).inputs["healthCheck"]
    assert (check["path"], check["interval"], check["timeout"]) == ("/up", 5, 4)


def test_only_an_https_listener_on_443_with_the_tls13_policy_and_the_origin_certificate():
    recording = record()
    listener = recording.one(LISTENER)
    assert listener.inputs == {
        "loadBalancerArn": recording.outputs["load_balancer_arn"],
        "port": 443,
        "protocol": "HTTPS",
        "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "certificateArn": recording.outputs["certificate_arn"],
        "defaultActions": [{"type": "forward", "targetGroupArn": recording.outputs["target_group_arn"]}],
        "tags": tags("web-https"),
    }


def test_node_group_autoscaling_group_is_attached_to_the_target_group():
    recording = record()
    assert recording.one(ATTACHMENT).inputs == {
        "autoscalingGroupName": "eks-web-nodes-asg",
        "lbTargetGroupArn": recording.outputs["target_group_arn"],
    }


def test_alarms_on_elb_5xx_and_unhealthy_hosts_notify_the_topic():
    recording = record()
    balancer_suffix = "app/web-alb/" + recording.outputs["load_balancer_arn"].rsplit("/", 1)[1]
    group_suffix = "targetgroup/web-tg/" + recording.outputs["target_group_arn"].rsplit("/", 1)[1]
    assert recording.named("web-elb-5xx").inputs == {
        "namespace": "AWS/ApplicationELB",
        "metricName": "HTTPCode_ELB_5XX_Count",
        "statistic": "Sum",
        "period": 300,
        "evaluationPeriods": 1,
        "threshold": 10,
        "comparisonOperator": "GreaterThanThreshold",
        "treatMissingData": "notBreaching",
        "dimensions": {"LoadBalancer": balancer_suffix},
        "alarmDescription": "phasekit: the ALB answered more than 10 requests with its own 5XX in 5 minutes",
        "alarmActions": [TOPIC],
        "okActions": [TOPIC],
        "tags": tags("web-elb-5xx"),
    }
    assert recording.named("web-unhealthy-hosts").inputs == {
        "namespace": "AWS/ApplicationELB",
        "metricName": "UnHealthyHostCount",
        "statistic": "Maximum",
        "period": 60,
        "evaluationPeriods": 5,
        "threshold": 0,
        "comparisonOperator": "GreaterThanThreshold",
        "treatMissingData": "missing",
        "dimensions": {"LoadBalancer": balancer_suffix, "TargetGroup": group_suffix},
        "alarmDescription": "phasekit: a target node failed its health checks for 5 minutes",
        "alarmActions": [TOPIC],
        "okActions": [TOPIC],
        "tags": tags("web-unhealthy-hosts"),
    }


def test_no_alarms_without_a_topic():
    recording = record(alarm_topic_arn=None)
    assert recording.of_type(ALARM) == []
    assert len(recording.resources) == 8 + len(LOG_BUCKET_COUNTS)


def test_outputs_are_exported_and_none_carries_the_key():
    recording = record()
    assert set(recording.outputs) == set(OUTPUTS)
    assert recording.outputs["security_group_id"] == recording.one(SECURITY_GROUP).id
    assert recording.outputs["zone_id"] == "Z35SXDOTRQ7X7K"
    assert recording.outputs["dns_name"].endswith(".elb.amazonaws.com")
    assert recording.outputs["certificate_arn"].startswith("arn:aws:acm:")
    assert recording.secret_outputs == frozenset()
    assert not any("PRIVATE KEY" in str(value) for value in recording.outputs.values())


def test_preview_with_unknown_inputs_registers_every_child():
    recording = record_from_upstream(preview=True)
    counts = recording.type_counts()
    assert counts.pop("aws:ec2/vpc:Vpc") == 1
    assert counts == {COMPONENT: 1, SECURITY_GROUP: 1, NODE_RULE: 1, CERTIFICATE: 1, LOAD_BALANCER: 1,
                      TARGET_GROUP: 1, LISTENER: 1, ATTACHMENT: 1, ALARM: 2, **LOG_BUCKET_COUNTS}
    assert recording.outputs == {output: UNKNOWN_MASK for output in OUTPUTS}
    assert recording.one(CERTIFICATE).secret_inputs == frozenset({"privateKey"})
    listener = recording.one(LISTENER).inputs
    assert (listener["port"], listener["protocol"], listener["sslPolicy"]) == (
        443, "HTTPS", "ELBSecurityPolicy-TLS13-1-2-2021-06")
    ingress = recording.one(SECURITY_GROUP).inputs["ingress"][0]
    assert isinstance(ingress["cidrBlocks"], pulumi.output.Unknown)


def test_output_inputs_resolve_to_the_same_rules_as_plain_ones():
    from_outputs, plain = record_from_upstream(preview=False), record()
    for token in (SECURITY_GROUP, NODE_RULE, CERTIFICATE, LOAD_BALANCER, TARGET_GROUP, LISTENER, ATTACHMENT):
        assert from_outputs.one(token).inputs == plain.one(token).inputs, token
    assert from_outputs.one(CERTIFICATE).secret_inputs == frozenset({"privateKey"})


def deploy_failure(run: Callable[[], object]) -> str:
    """The message of a run that fails while resolving inputs. Such a run leaves its resources' output
    futures failed and never awaited, and asyncio logs every one when it is collected (thousands of lines
    on stderr during later tests); they are collected here with that logger silenced."""
    try:
        run()
    except ValueError as error:
        message = str(error)
    else:
        raise AssertionError("the run did not fail")
    asyncio_logger = logging.getLogger("asyncio")
    disabled, asyncio_logger.disabled = asyncio_logger.disabled, True
    try:
        run_recorded(lambda: None)  # drops the failed run's monitor, root stack and pending RPCs
        gc.collect()
    finally:
        asyncio_logger.disabled = disabled
    return message


def test_output_sources_are_still_validated_at_deploy_time():
    message = deploy_failure(lambda: record_from_upstream(preview=False, source_cidrs=CLOUDFLARE_IPV6))
    assert message.endswith("\nValueError has risen: PublicLoadBalancerArgs.source_cidrs: at least one IPv4 "
                            "network is required (the ALB always has IPv4 addresses)")


@pytest.mark.parametrize(("cidrs", "address_type", "expected"), [
    (CLOUDFLARE_CIDRS, "ipv4", (CLOUDFLARE_IPV4, [])),
    (CLOUDFLARE_CIDRS, "dualstack", (CLOUDFLARE_IPV4, CLOUDFLARE_IPV6)),
    (["2400:cb00::/32", "10.0.0.0/8", "10.0.0.0/8", "2400:cb00::/32"], "dualstack",
     (["10.0.0.0/8"], ["2400:cb00::/32"])),
    (["0.0.0.0/0"], "ipv4", (["0.0.0.0/0"], [])),
    (("198.51.100.7/32",), "ipv4", (["198.51.100.7/32"], [])),
])
def test_admitted_cidrs_split_by_family_in_order_without_duplicates(cidrs, address_type, expected):
    assert admitted_cidrs(cidrs, address_type) == expected


@pytest.mark.parametrize(("cidrs", "message"), [
    (["10.0.0.1/8"], "PublicLoadBalancerArgs.source_cidrs: '10.0.0.1/8' is not a network in CIDR notation "
                     "(e.g. 173.245.48.0/20)"),
    (["cloudflare"], "PublicLoadBalancerArgs.source_cidrs: 'cloudflare' is not a network in CIDR notation "
                     "(e.g. 173.245.48.0/20)"),
    ([], "PublicLoadBalancerArgs.source_cidrs: at least one IPv4 network is required (the ALB always has IPv4 "
         "addresses)"),
])
def test_admitted_cidrs_refuse_malformed_or_ipv6_only_sources(cidrs, message):
    with pytest.raises(ValueError) as raised:
        admitted_cidrs(cidrs, "dualstack")
    assert str(raised.value) == message


@pytest.mark.parametrize(("interval", "timeout"), [(5, 4), (6, 5), (15, 5), (300, 5)])
def test_health_check_timeout_is_shorter_than_the_interval(interval, timeout):
    assert health_check_timeout(interval) == timeout


@pytest.mark.parametrize("port", [30000, 32767])
def test_node_port_range_bounds_are_accepted(port):
    assert record(target_node_port=port).one(TARGET_GROUP).inputs["port"] == port


NAME_MESSAGE = ("PublicLoadBalancer name {!r}: the ALB and target group are auto-named from it and AWS allows 32 "
                "characters, so use 1-20 letters, digits and hyphens, not starting or ending with a hyphen nor "
                "starting with 'internal'")


@pytest.mark.parametrize(("name", "overrides", "message"), [
    ("web", {"target_node_port": 8080},
     "PublicLoadBalancerArgs.target_node_port: 8080 is outside the NodePort range 30000-32767"),
    ("web", {"target_node_port": 40000},
     "PublicLoadBalancerArgs.target_node_port: 40000 is outside the NodePort range 30000-32767"),
    ("web", {"health_path": "healthz"},
     "PublicLoadBalancerArgs.health_path: 'healthz' must be an absolute path starting with '/', without spaces, "
     "at most 1024 characters"),
    ("web", {"health_path": "/health z"},
     "PublicLoadBalancerArgs.health_path: '/health z' must be an absolute path starting with '/', without "
     "spaces, at most 1024 characters"),
    ("web", {"health_check_interval_seconds": 4},
     "PublicLoadBalancerArgs.health_check_interval_seconds: 4; allowed: 5-300"),
    ("web", {"health_check_interval_seconds": 301},
     "PublicLoadBalancerArgs.health_check_interval_seconds: 301; allowed: 5-300"),
    ("web", {"idle_timeout_seconds": 0}, "PublicLoadBalancerArgs.idle_timeout_seconds: 0; allowed: 1-4000"),
    ("web", {"idle_timeout_seconds": 4001}, "PublicLoadBalancerArgs.idle_timeout_seconds: 4001; allowed: 1-4000"),
    ("web", {"ip_address_type": "ipv6"},
     "PublicLoadBalancerArgs.ip_address_type: 'ipv6'; allowed: ipv4, dualstack"),
    ("web", {"source_cidrs": CLOUDFLARE_IPV6},
     "PublicLoadBalancerArgs.source_cidrs: at least one IPv4 network is required (the ALB always has IPv4 "
     "addresses)"),
    ("web", {"source_cidrs": ["173.245.48.0/33"]},
     "PublicLoadBalancerArgs.source_cidrs: '173.245.48.0/33' is not a network in CIDR notation "
     "(e.g. 173.245.48.0/20)"),
    ("web", {"public_subnet_ids": ["subnet-public-a"]},
     "PublicLoadBalancerArgs.public_subnet_ids: an ALB needs at least two subnets in different Availability "
     "Zones"),
    ("web", {"region": None},
     "PublicLoadBalancerArgs.region: required with access_logs (it decides who may write the logs to the bucket)"),
    ("web", {"access_log_retention_days": 0},
     "PublicLoadBalancerArgs.access_log_retention_days: 0; allowed: 1-3650"),
    ("web", {"access_log_retention_days": 3651},
     "PublicLoadBalancerArgs.access_log_retention_days: 3651; allowed: 1-3650"),
    ("phasekit-production-edge", {}, NAME_MESSAGE.format("phasekit-production-edge")),
    ("web_lb", {}, NAME_MESSAGE.format("web_lb")),
    ("internal", {}, NAME_MESSAGE.format("internal")),
    ("-web", {}, NAME_MESSAGE.format("-web")),
])
def test_invalid_args_are_refused_with_exact_messages(name, overrides, message):
    with pytest.raises(ValueError) as raised:
        record(name=name, **overrides)
    assert str(raised.value) == message


# --- access logs ----------------------------------------------------------------------------------------

BUCKET_ARN = "arn:aws:s3:::web-logs-1234567"


def test_access_log_bucket_is_private_owner_enforced_sse_s3_and_expires_logs():
    recording = record(access_log_retention_days=30)
    bucket = recording.one(BUCKET)
    assert bucket.inputs == {"bucketPrefix": "web-logs-", "forceDestroy": True, "tags": tags("web-logs")}
    assert record(name="Web").one(BUCKET).inputs["bucketPrefix"] == "web-logs-"  # bucket names are lower case
    assert (bucket.protect, bucket.retain_on_delete) == (False, False)
    bucket_id = bucket.id
    assert recording.one(PUBLIC_ACCESS_BLOCK).inputs == {
        "bucket": bucket_id, "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
        "restrictPublicBuckets": True}
    assert recording.one(OWNERSHIP).inputs == {"bucket": bucket_id,
                                               "rule": {"objectOwnership": "BucketOwnerEnforced"}}
    # ALB access logs support only SSE-S3, never KMS.
    assert recording.one(ENCRYPTION).inputs == {"bucket": bucket_id, "rules": [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}
    assert recording.one(LIFECYCLE).inputs == {"bucket": bucket_id, "rules": [{
        "id": "expire-access-logs", "status": "Enabled", "filter": {"prefix": "alb/"},
        "expiration": {"days": 30}, "abortIncompleteMultipartUpload": {"daysAfterInitiation": 1}}]}


def test_the_alb_logs_to_its_bucket_only_once_the_policy_lets_elb_write():
    recording = record()
    balancer = recording.one(LOAD_BALANCER)
    assert balancer.inputs["accessLogs"]["enabled"] is True
    assert balancer.inputs["accessLogs"]["prefix"] == "alb"
    assert {recording.one(BUCKET_POLICY).urn, recording.one(ENCRYPTION).urn} <= set(balancer.dependencies)


def test_the_log_buckets_configurations_run_one_after_another():
    """S3 answers OperationAborted to concurrent configuration changes of one bucket: each waits for the last."""
    recording = record()
    chain = [recording.one(kind) for kind in (PUBLIC_ACCESS_BLOCK, OWNERSHIP, ENCRYPTION,
                                              LIFECYCLE,
                                              BUCKET_POLICY)]
    for previous, current in zip(chain, chain[1:], strict=False):
        assert previous.urn in current.dependencies, current.type


def test_bucket_policy_lets_only_the_regional_elb_account_write_logs_and_refuses_plain_http():
    import json
    policy = json.loads(record().one(BUCKET_POLICY).inputs["policy"])
    bucket_arn = "arn:aws:s3:::web-logs-f78eec8"
    assert policy == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ElbWritesAccessLogs", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::127311923021:root"},
         "Action": "s3:PutObject", "Resource": f"{bucket_arn}/alb/AWSLogs/*"},
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [bucket_arn, f"{bucket_arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]}


@pytest.mark.parametrize(("region", "principal"), [
    ("us-east-1", {"AWS": "arn:aws:iam::127311923021:root"}),
    ("eu-west-1", {"AWS": "arn:aws:iam::156460612806:root"}),
    ("ap-southeast-2", {"AWS": "arn:aws:iam::783225319266:root"}),
    # Regions opened in or after August 2022 deliver through the service principal.
    ("eu-central-2", {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}),
    ("me-central-1", {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}),
    ("ca-west-1", {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}),
])
def test_the_log_writer_follows_the_region(region, principal):
    import json
    statement = json.loads(access_log_bucket_policy(BUCKET_ARN, region))["Statement"][0]
    assert statement["Principal"] == principal
    assert statement["Resource"] == f"{BUCKET_ARN}/alb/AWSLogs/*"


def test_without_access_logs_there_is_no_bucket_and_no_region_is_needed():
    recording = record(access_logs=False, region=None)
    assert not any(resource.type.startswith("aws:s3/") for resource in recording.resources)
    assert "accessLogs" not in recording.one(LOAD_BALANCER).inputs
    assert recording.outputs["access_log_bucket_name"] is None
