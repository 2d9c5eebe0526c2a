"""The CrossGuard policy pack (``policy/__main__.py``) with the real Pulumi Policy SDK.

In process: each policy's validate callback gets real ``ResourceValidationArgs`` / ``StackValidationArgs``
whose properties went through the SDK's own path (a protobuf ``Struct`` as the engine sends it,
``deserialize_properties``, the unknown-checking proxy), for every case of ``tests/test_policy_rules.py``
and for every resource of the committed stacks.

Out of process: the pack is started exactly as pulumi-language-python's ``RunPlugin`` starts an analyzer
(``python -u -m pulumi.policy <engine address> <pack directory>``, working directory = the pack
directory), and the test talks to its gRPC server as the engine would: ``GetAnalyzerInfo``, ``Analyze``,
``AnalyzeStack``, ``Configure``.

What this cannot prove without the Pulumi CLI: that the CLI resolves ``PulumiPolicy.yaml`` to that
command with ``policy/.venv``'s interpreter (here the project's ``.venv`` runs it; ``requirements.txt``
pins the same SDK ranges); what the engine sends for a real preview (inputs after each provider's
``Check``, which may add defaults); and the engine's calls before ``Analyze`` (``Handshake``, which this
SDK does not implement and the CLI then skips, and ``ConfigureStack``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.output import Unknown
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

import policy.__main__ as pack
from phasekit.guardrails import resource_view
from policy import rules
from policy.rules import UNKNOWN, ResourceView
from tests.test_policy_rules import (
    CASES,
    OPEN_FIREWALL,
    PDB,
    PROTECTED,
    SSH,
    STACKS,
    Case,
    budget,
    committed_recording,
    deployment,
    view,
)

POLICY_DIR = Path(__file__).resolve().parents[1] / "policy"
START_TIMEOUT = 30.0


def wire(value: Any) -> Any:
    """A value as the engine marshals it for an analyzer: unknowns become the SDK's sentinel string."""
    if value is UNKNOWN or isinstance(value, Unknown):
        return UNKNOWN_STRING_VALUE
    if isinstance(value, Mapping):
        return {key: wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [wire(item) for item in value]
    return value


def as_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(wire(props))
    return struct


def sdk_props(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """What ``_PolicyAnalyzerServicer.Analyze`` hands a policy for these properties."""
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(as_struct(props))))


def sdk_options(resource: ResourceView) -> PolicyResourceOptions:
    return PolicyResourceOptions(resource.protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], resource.parent)


def policy_named(name: str) -> ResourceValidationPolicy | StackValidationPolicy:
    return next(policy for policy in pack.policies() if policy.name == name)


def run_through_sdk(policy_name: str, resources: Sequence[ResourceView]) -> list[tuple[str, str]]:
    policy = policy_named(policy_name)
    names = {resource.urn: resource.name for resource in resources}
    reported: list[tuple[str, str]] = []
    if isinstance(policy, StackValidationPolicy):
        stack = [PolicyResource(resource.type, sdk_props(resource.props), resource.urn, resource.name,
                                sdk_options(resource), None, None, [], {}) for resource in resources]
        policy.validate(StackValidationArgs(stack),
                        lambda message, urn=None: reported.append((names[urn], message)))
        return reported
    for resource in resources:
        args = ResourceValidationArgs(resource.type, sdk_props(resource.props), resource.urn, resource.name,
                                      sdk_options(resource), None)
        policy.validate(args, lambda message, urn=None, name=resource.name: reported.append((name, message)))
    return reported


def test_the_pack_wraps_every_rule_with_its_enforcement_level():
    assert [(policy.name, policy.description, policy.enforcement_level, type(policy))
            for policy in pack.policies()] == [
        (rule.name, rule.description,
         EnforcementLevel.MANDATORY if rule.enforcement == "mandatory" else EnforcementLevel.ADVISORY,
         StackValidationPolicy if isinstance(rule, rules.StackRule) else ResourceValidationPolicy)
        for rule in rules.RULES
    ]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_pack_verdicts_match_the_rules(case: Case):
    assert run_through_sdk(case.policy, case.resources) == list(case.expected)


def test_the_sdk_proxy_raises_on_unknowns_and_plain_reads_them_as_unknown():
    props = sdk_props({"vpcConfig": {"publicAccessCidrs": UNKNOWN, "endpointPublicAccess": True}})
    with pytest.raises(UnknownValueError):
        props["vpcConfig"]["publicAccessCidrs"]
    assert pack.plain(props) == {"vpcConfig": {"publicAccessCidrs": UNKNOWN, "endpointPublicAccess": True}}


@pytest.mark.parametrize("stack", STACKS)
def test_every_committed_stack_passes_the_pack(stack):
    views = [resource_view(resource) for resource in committed_recording(stack).resources]
    for rule in rules.RULES:
        covered = [resource for resource in views if resource.type in rule.resource_types]
        assert run_through_sdk(rule.name, covered) == [], rule.name


def test_ssh_opened_on_the_real_phase1_firewall_fails_the_pack():
    firewall = resource_view(committed_recording("phase1").named("vps-firewall"))
    rules_with_ssh = [{**firewall.props["inboundRules"][0], "sourceAddresses": ["0.0.0.0/0"]},
                      *firewall.props["inboundRules"][1:]]
    opened = ResourceView(type=firewall.type, name=firewall.name, urn=firewall.urn,
                          props={**firewall.props, "inboundRules": rules_with_ssh})
    assert run_through_sdk(SSH, [opened]) == [
        ("vps-firewall", "inbound tcp 22 (SSH) admits 0.0.0.0/0: allow only admin networks")]


# --- The pack as the Pulumi CLI starts it --------------------------------------------------------------


def test_policy_pulumi_yaml_runs_the_pack_with_its_own_virtualenv():
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert project["version"] == "0.1.0"
    requirements = [line for line in (POLICY_DIR / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    pyproject = tomllib.loads((POLICY_DIR.parent / "pyproject.toml").read_text())["project"]
    pins = {*pyproject["dependencies"], *pyproject["optional-dependencies"]["test"]}
    assert requirements == ["pulumi>=3.272,<4", "pulumi-policy>=1.21,<2"]
    assert set(requirements) <= pins


def test_no_pack_module_shadows_what_the_sdk_imports():
    """The pack directory is first on ``sys.path`` under the CLI: a ``policy/grpc.py`` or ``policy/json.py``
    would replace the real module for the SDK too."""
    modules = {path.stem for path in POLICY_DIR.glob("*.py")} - {"__init__", "__main__"}
    assert modules == {"rules"}
    assert modules & (sys.stdlib_module_names | {"grpc", "google", "pulumi", "pulumi_policy", "policy"}) == set()


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0].strip():
        process.kill()
        _, stderr = process.communicate(timeout=10)
        raise AssertionError(f"the policy pack printed no port within {timeout}s:\n{stderr.decode()}")
    return line[0].decode().strip()


@pytest.fixture(scope="module", params=["relative", "absolute"])
def analyzer(request) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack's gRPC server. The program argument is the pack directory: "." as the CLI's former
    ``pulumi-analyzer-policy-python`` shim passed it, or the absolute path. The engine address is never
    dialled by the pack itself, so any address will do."""
    program = "." if request.param == "relative" else str(POLICY_DIR)
    # Nothing of the repository on sys.path but the pack directory, as under the CLI.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", program],
                               cwd=POLICY_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = _first_line(process, START_TIMEOUT)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.communicate(timeout=10)


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, resource: ResourceView) -> list[tuple[str, str, int]]:
    response = stub.Analyze(analyzer_pb2.AnalyzeRequest(
        urn=resource.urn, type=resource.type, name=resource.name, properties=as_struct(resource.props),
        options=analyzer_pb2.AnalyzerResourceOptions(protect=resource.protect, parent=resource.parent or "")),
        timeout=START_TIMEOUT)
    return [(diagnostic.policyName, diagnostic.message, diagnostic.enforcementLevel)
            for diagnostic in response.diagnostics]


def described(policy_name: str, message: str) -> str:
    """CrossGuard's diagnostic text: the policy's description, then the violation message."""
    return f"{policy_named(policy_name).description}\n{message}"


def test_served_pack_announces_its_policies(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=START_TIMEOUT)
    assert info.name == "phasekit-guardrails"
    assert [(policy.name, policy.enforcementLevel, policy.policy_type) for policy in info.policies] == [
        (rule.name, analyzer_pb2.MANDATORY if rule.enforcement == "mandatory" else analyzer_pb2.ADVISORY,
         analyzer_pb2.POLICY_TYPE_STACK if isinstance(rule, rules.StackRule) else analyzer_pb2.POLICY_TYPE_RESOURCE)
        for rule in rules.RULES
    ]


def test_served_pack_reports_an_open_firewall(analyzer):
    assert analyze(analyzer, OPEN_FIREWALL) == [
        ("no-public-data-stores", described("no-public-data-stores", "inbound tcp 5432 (PostgreSQL) admits addresses "
                                            "10.0.0.0/8: admit the app tier by tag or droplet id only"),
         analyzer_pb2.MANDATORY),
        ("no-public-data-stores", described("no-public-data-stores", "inbound tcp 1-65535 (PostgreSQL, PgBouncer, "
                                            "Redis) admits addresses ::/0: admit the app tier by tag or droplet id "
                                            "only"),
         analyzer_pb2.MANDATORY),
        (SSH, described(SSH, "inbound tcp 22 (SSH) admits 0.0.0.0/0: allow only admin networks"),
         analyzer_pb2.MANDATORY),
        (SSH, described(SSH, "inbound tcp 1-65535 (SSH) admits ::/0: allow only admin networks"),
         analyzer_pb2.MANDATORY),
    ]


def test_served_pack_passes_real_inputs_with_unknowns_without_preview_notes(analyzer):
    """Phase 3's real resources carry unknown ids and ARNs; no policy may answer "can't run during preview"."""
    for resource in committed_recording("phase3").resources:
        assert analyze(analyzer, resource_view(resource)) == [], resource.name


def test_served_pack_checks_the_stack(analyzer):
    web = view(rules.K8S_DEPLOYMENT, deployment([]), name="web")
    worker_budget = view(rules.K8S_PDB, budget({"matchLabels": {"app.kubernetes.io/component": "worker"}}),
                         name="worker-pdb")
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(urn=resource.urn, type=resource.type, name=resource.name,
                                      properties=as_struct(resource.props))
        for resource in (web, worker_budget)
    ]), timeout=START_TIMEOUT)
    assert [(diagnostic.policyName, diagnostic.urn, diagnostic.message, diagnostic.enforcementLevel)
            for diagnostic in response.diagnostics] == [
        (PDB, web.urn, described(PDB, "no PodDisruptionBudget in namespace app selects its pods "
                                      "(app.kubernetes.io/component=web, app.kubernetes.io/name=app): a node drain "
                                      "may evict every replica at once"),
         analyzer_pb2.MANDATORY),
    ]


def test_policy_pack_config_lowers_a_rule_in_the_served_pack(analyzer):
    """What ``pulumi preview --policy-pack-config`` does for a stack that sets ``phasekit:protect: false``."""
    volume = view(rules.DO_VOLUME, {"size": 20.0}, name="data")
    message = described(PROTECTED, "protect is off: a delete or replace would destroy its data "
                                   "(phasekit:protect: true sets it)")
    assert analyze(analyzer, volume) == [(PROTECTED, message, analyzer_pb2.MANDATORY)]
    lowered = {PROTECTED: analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.ADVISORY)}
    analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=lowered), timeout=START_TIMEOUT)
    try:
        assert analyze(analyzer, volume) == [(PROTECTED, message, analyzer_pb2.ADVISORY)]
    finally:
        analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={}), timeout=START_TIMEOUT)
    assert analyze(analyzer, view(rules.DO_VOLUME, {"size": 20.0}, protect=True)) == []
