"""The recording harness users import for their own stacks: what it records, in both engine modes."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random
import pytest

from components.testing import INVOKE_RESULTS, UNKNOWN_MASK, run_recorded


class Pair(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Pair", name, None)
        self.kept = random.RandomPassword(f"{name}-kept", length=16, opts=pulumi.ResourceOptions(
            parent=self, protect=True, retain_on_delete=True, ignore_changes=["length"]))
        self.plain = random.RandomPassword(f"{name}-plain", length=8,
                                           opts=pulumi.ResourceOptions(parent=self, depends_on=[self.kept]))
        self.register_outputs({})


def program() -> None:
    pair = Pair("pair")
    pulumi.export("secret", pair.kept.result)
    pulumi.export("plain", "visible")


def test_records_options_parents_and_dependencies():
    recording = run_recorded(program)
    component = recording.one("test:index:Pair")
    assert component.parent is None and component.custom is False
    assert [child.name for child in recording.children_of(component.urn)] == ["pair-kept", "pair-plain"]
    kept, plain = recording.named("pair-kept"), recording.named("pair-plain")
    assert (kept.protect, kept.retain_on_delete, kept.ignore_changes) == (True, True, ("length",))
    assert (plain.protect, plain.retain_on_delete, plain.ignore_changes) == (False, False, ())
    assert plain.dependencies == (kept.urn,)
    assert recording.type_counts() == {"test:index:Pair": 1, "random:index/randomPassword:RandomPassword": 2}


def test_update_mode_resolves_outputs_and_flags_secrets():
    recording = run_recorded(program)
    assert recording.secret_outputs == {"secret"}
    assert len(recording.outputs["secret"]) == 32 and recording.outputs["plain"] == "visible"
    assert recording.named("pair-kept").id is not None


def test_preview_mode_leaves_computed_values_unknown():
    recording = run_recorded(program, preview=True)
    assert recording.outputs["secret"] == UNKNOWN_MASK
    assert recording.named("pair-kept").id is None


def test_each_run_starts_from_a_fresh_stack():
    run_recorded(program)
    assert run_recorded(lambda: None).outputs == {} and run_recorded(lambda: None).resources == []


def test_lookups_fail_loudly():
    recording = run_recorded(program)
    with pytest.raises(AssertionError, match="expected exactly one random:index/randomPassword:RandomPassword, found 2"):
        recording.one("random:index/randomPassword:RandomPassword")
    with pytest.raises(AssertionError, match="no resource named 'nope'"):
        recording.named("nope")


def test_offline_the_account_lists_no_eks_cluster_so_a_stack_plans_as_a_first_deploy():
    # EksCluster reads the running version only for a listed cluster: offline there is none, and the
    # per-cluster lookup has no default, so a program that made it anyway would fail loudly.
    def lookup() -> None:
        pulumi.export("names", aws.eks.get_clusters().names)
    assert run_recorded(lookup).outputs["names"] == []
    assert "aws:eks/getCluster:getCluster" not in INVOKE_RESULTS
    with pytest.raises(Exception, match="the offline harness has no result for invoke aws:eks/getCluster:getCluster"):
        run_recorded(lambda: aws.eks.get_cluster(name="phasekit-phase3-eks"))


def test_invokes_are_recorded_in_call_order_with_their_arguments():
    def lookups() -> None:
        aws.eks.get_clusters()
        aws.ssm.get_parameter(name="/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/standard/"
                                   "recommended/release_version")
    recording = run_recorded(lookups)
    assert [invoke.token for invoke in recording.invokes] == [
        "aws:eks/getClusters:getClusters", "aws:ssm/getParameter:getParameter"]
    assert recording.invoked("aws:ssm/getParameter:getParameter") == [
        {"name": "/aws/service/eks/optimized-ami/1.35/amazon-linux-2023/x86_64/standard/recommended/release_version"}]
    assert recording.invoked("aws:eks/getCluster:getCluster") == []


def test_log_messages_are_recorded_with_their_severity_and_resource():
    def logs() -> None:
        pair = Pair("pair")
        pulumi.log.warn("attached to the pair", resource=pair)
        pulumi.log.info("on the stack")
    recording = run_recorded(logs, preview=True)
    assert [(log.severity, log.message) for log in recording.logs] == [
        ("info", "on the stack"), ("warning", "attached to the pair")]
    assert [log.urn for log in recording.warnings()] == [recording.one("test:index:Pair").urn]
    assert run_recorded(program).logs == []
