"""AlertTopic: where phase 3's CloudWatch alarms send their notifications.

Creates
- an SNS standard topic (display name "phasekit alerts", the sender name in the e-mails);
- one e-mail subscription per address in ``emails``. AWS sends each address a confirmation link and
  delivers nothing to it until someone clicks it; an unconfirmed subscription cannot be deleted through
  the API, and AWS deletes it by itself once it has stayed unconfirmed for 48 hours (the confirmation link's
  lifetime; https://docs.aws.amazon.com/sns/latest/dg/sns-email-notifications.html);
- a topic policy that lets CloudWatch alarms (``cloudwatch.amazonaws.com``) publish, limited by
  ``aws:SourceAccount`` and ``aws:SourceArn`` to alarms of the topic's own account and region (so no other
  account's alarms can use the service principal to post here). It replaces SNS's default policy:
  principals of the account keep whatever their IAM policies grant them.

Does not create the alarms (RdsPostgres, ElastiCacheRedis, EksCluster and PublicLoadBalancer do, given
``topic_arn``), chat or SMS
targets, or any KMS key. The topic is not encrypted on purpose: CloudWatch alarms cannot publish to a
topic encrypted with the AWS-managed SNS key (``alias/aws/sns``), whose key policy cannot be changed to
admit CloudWatch; encrypting would need a customer-managed key that grants CloudWatch ``kms:Decrypt`` and
``kms:GenerateDataKey*`` (a KMS key bills monthly plus requests). Alarm notifications carry metric names and values,
no application data.

Cost: SNS charges nothing for the topic; e-mail deliveries beyond the monthly free tier (1,000) cost
$2 per 100,000.

Stateful: nothing. Subscriptions are named after their address, so adding or removing one address never
re-creates (and re-confirms) the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.tags import aws_tags

DISPLAY_NAME = "phasekit alerts"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SNS_ARN = re.compile(r"^arn:(?P<partition>[a-z-]+):sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):[A-Za-z0-9_-]+$")


@dataclass
class AlertTopicArgs:
    emails: Sequence[str]
    """Recipients of every alarm and recovery notification. At least one; each must confirm by e-mail."""

    tags: Mapping[str, str] = field(default_factory=dict)
    """AWS tags on the topic (``Name`` is added)."""


class AlertTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    """What alarms name in their ``alarm_actions``/``ok_actions`` (``RdsPostgresArgs.alarm_topic_arn``, ...)."""

    def __init__(self, name: str, args: AlertTopicArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_args(args)
        super().__init__("phasekit:index:AlertTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        topic = aws.sns.Topic(f"{name}-topic", display_name=DISPLAY_NAME,
                              tags=aws_tags(args.tags, Name=name), opts=child)
        aws.sns.TopicPolicy(f"{name}-policy", arn=topic.arn, policy=topic.arn.apply(cloudwatch_publish_policy),
                            opts=child)
        for email in args.emails:
            aws.sns.TopicSubscription(f"{name}-{subscription_suffix(email)}", topic=topic.arn, protocol="email",
                                      endpoint=email, opts=child)

        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})


def cloudwatch_publish_policy(topic_arn: str) -> str:
    """The topic policy: CloudWatch alarms of the topic's own account and region may publish, nothing else."""
    match = _SNS_ARN.match(topic_arn)
    if match is None:
        raise ValueError(f"not an SNS topic ARN: {topic_arn!r}")
    partition, region, account = match["partition"], match["region"], match["account"]
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"},
            },
        }],
    })


def subscription_suffix(email: str) -> str:
    """Logical-name suffix for an address: lowercase letters and digits joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", email.lower()).strip("-")


def _check_args(args: AlertTopicArgs) -> None:
    if isinstance(args.emails, str) or not args.emails:
        raise ValueError("AlertTopicArgs.emails: at least one recipient is required")
    seen: dict[str, str] = {}
    for email in args.emails:
        if not _EMAIL.match(email):
            raise ValueError(f"AlertTopicArgs.emails: {email!r} is not an e-mail address")
        suffix = subscription_suffix(email)
        if suffix in seen:
            raise ValueError(f"AlertTopicArgs.emails: {email!r} repeats {seen[suffix]!r}")
        seen[suffix] = email
