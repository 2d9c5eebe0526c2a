"""AlertTopic under the recording mock monitor: topic, e-mail subscriptions, the CloudWatch publish policy.

Mocks cannot prove that SNS accepts the policy, that CloudWatch's deliveries satisfy its conditions, or
that anyone confirms the e-mail subscriptions; a real ``pulumi up`` and a test alarm
(``aws cloudwatch set-alarm-state``) do.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from components.alert_topic import AlertTopic, AlertTopicArgs, cloudwatch_publish_policy, subscription_suffix
from components.testing import UNKNOWN_MASK, run_recorded

TAGS = {"project": "phasekit", "stack": "test", "phase": "3", "managed-by": "phasekit"}
COMPONENT = "phasekit:index:AlertTopic"
TOPIC = "aws:sns/topic:Topic"
POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
EMAILS = ["ops@example.com", "On.Call+db@example.org"]


def topic_args(**overrides: Any) -> AlertTopicArgs:
    return replace(AlertTopicArgs(emails=EMAILS, tags=TAGS), **overrides)


def record(preview: bool = False, **overrides: Any):
    def program() -> None:
        pulumi.export("topic_arn", AlertTopic("alerts", topic_args(**overrides)).topic_arn)
    return run_recorded(program, preview=preview)


def test_children_are_a_topic_its_policy_and_one_subscription_per_address():
    recording = record()
    assert recording.type_counts() == {COMPONENT: 1, TOPIC: 1, POLICY: 1, SUBSCRIPTION: 2}
    component = recording.one(COMPONENT)
    children = [resource for resource in recording.resources if resource is not component]
    assert {child.parent for child in children} == {component.urn}
    assert sorted(child.name for child in children) == [
        "alerts-on-call-db-example-org", "alerts-ops-example-com", "alerts-policy", "alerts-topic"]


def test_topic_is_unencrypted_so_cloudwatch_can_publish():
    assert record().one(TOPIC).inputs == {"displayName": "phasekit alerts", "tags": {**TAGS, "Name": "alerts"}}


def test_every_address_gets_an_email_subscription_to_the_topic():
    recording = record()
    topic_arn = recording.outputs["topic_arn"]
    subscriptions = {subscription.name: subscription.inputs for subscription in recording.of_type(SUBSCRIPTION)}
    assert subscriptions == {
        "alerts-ops-example-com": {"topic": topic_arn, "protocol": "email", "endpoint": "ops@example.com"},
        "alerts-on-call-db-example-org": {"topic": topic_arn, "protocol": "email",
                                          "endpoint": "On.Call+db@example.org"},
    }


def test_subscription_names_do_not_depend_on_order():
    forward = {subscription.name for subscription in record().of_type(SUBSCRIPTION)}
    backward = {subscription.name for subscription in record(emails=EMAILS[::-1]).of_type(SUBSCRIPTION)}
    assert forward == backward


def test_policy_lets_only_this_accounts_cloudwatch_alarms_publish():
    recording = record()
    topic_arn = recording.outputs["topic_arn"]
    assert topic_arn.startswith("arn:aws:sns:us-east-1:123456789012:alerts-topic-")
    policy = recording.one(POLICY)
    assert policy.inputs["arn"] == topic_arn
    assert json.loads(policy.inputs["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {
                "StringEquals": {"aws:SourceAccount": "123456789012"},
                "ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"},
            },
        }],
    }


def test_nothing_is_protected():
    assert [resource.name for resource in record().resources if resource.protect or resource.retain_on_delete] == []


def test_preview_leaves_the_arn_unknown():
    recording = record(preview=True)
    assert recording.outputs["topic_arn"] == UNKNOWN_MASK
    assert recording.type_counts()[SUBSCRIPTION] == 2
    assert type(recording.one(POLICY).inputs["policy"]).__name__ == "Unknown"


@pytest.mark.parametrize(("arn", "partition", "region", "account"), [
    ("arn:aws:sns:eu-west-1:111122223333:alerts", "aws", "eu-west-1", "111122223333"),
    ("arn:aws-us-gov:sns:us-gov-west-1:444455556666:a_b-c", "aws-us-gov", "us-gov-west-1", "444455556666"),
])
def test_policy_helper_scopes_to_the_topics_partition_region_and_account(arn, partition, region, account):
    statement = json.loads(cloudwatch_publish_policy(arn))["Statement"][0]
    assert statement["Resource"] == arn
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"},
    }


@pytest.mark.parametrize("arn", ["arn:aws:sqs:us-east-1:123456789012:queue", "alerts", "arn:aws:sns:us-east-1:1:x"])
def test_policy_helper_refuses_what_is_not_a_topic_arn(arn):
    with pytest.raises(ValueError) as raised:
        cloudwatch_publish_policy(arn)
    assert str(raised.value) == f"not an SNS topic ARN: {arn!r}"


@pytest.mark.parametrize(("email", "suffix"), [
    ("ops@example.com", "ops-example-com"), ("On.Call+db@Example.org", "on-call-db-example-org"),
])
def test_subscription_suffix(email, suffix):
    assert subscription_suffix(email) == suffix


@pytest.mark.parametrize(("emails", "message"), [
    ([], "AlertTopicArgs.emails: at least one recipient is required"),
    ("ops@example.com", "AlertTopicArgs.emails: at least one recipient is required"),
    (["ops"], "AlertTopicArgs.emails: 'ops' is not an e-mail address"),
    (["ops @example.com"], "AlertTopicArgs.emails: 'ops @example.com' is not an e-mail address"),
    (["ops@example.com", "OPS@example.com"], "AlertTopicArgs.emails: 'OPS@example.com' repeats 'ops@example.com'"),
])
def test_invalid_args_are_refused_with_exact_messages(emails, message):
    with pytest.raises(ValueError) as raised:
        record(emails=emails)
    assert str(raised.value) == message


def test_the_docstring_states_the_48_hours_aws_keeps_an_unconfirmed_subscription():
    import components.alert_topic as module

    text = " ".join((module.__doc__ or "").split())
    assert "unconfirmed for 48 hours" in text and "three days" not in text
