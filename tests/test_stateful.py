"""The pure decision behind every stateful child's options (mocks cannot see options themselves)."""

from __future__ import annotations

import hashlib

import pulumi
import pytest

from components.stateful import final_snapshot_name, final_snapshot_suffix, parameter_group_options, stateful_options
from components.testing import run_recorded


class _Parent(pulumi.ComponentResource):
    def __init__(self) -> None:  # never registered: only used as the options' parent reference
        pass


def test_protected_data_is_also_retained_on_delete():
    parent = _Parent()
    options = stateful_options(parent, protect=True)
    assert (options.protect, options.retain_on_delete, options.parent) == (True, True, parent)


def test_unprotected_data_is_deletable():
    options = stateful_options(_Parent(), protect=False)
    assert (options.protect, options.retain_on_delete) == (False, False)


def test_extra_options_pass_through():
    options = stateful_options(_Parent(), protect=True, ignore_changes=["size"])
    assert options.ignore_changes == ["size"]


class _Store(pulumi.ComponentResource):
    def __init__(self, name: str, keepers: dict[str, pulumi.Input[str]]) -> None:
        super().__init__("test:index:Store", name, None)
        self.suffix = final_snapshot_suffix(name, keepers, self)
        self.register_outputs({})


def test_the_final_snapshot_suffix_is_four_random_bytes_renewed_by_exactly_the_keepers():
    def program() -> None:
        store = _Store("db", {"identifier": "phasekit-prod", "dbName": "app"})
        pulumi.export("hex", store.suffix.hex)

    recording = run_recorded(program)
    suffix = recording.one("random:index/randomId:RandomId")
    assert suffix.name == "db-final-snapshot"
    assert suffix.inputs == {"byteLength": 4, "keepers": {"identifier": "phasekit-prod", "dbName": "app"}}
    assert suffix.parent == recording.one("test:index:Store").urn
    # Not protected or retained: replacing it only renames the snapshot a later deletion takes.
    assert (suffix.protect, suffix.retain_on_delete, suffix.delete_before_replace) == (False, False, False)
    assert recording.outputs["hex"] == hashlib.sha256(b"db-final-snapshot").hexdigest()[:8]


def test_the_final_snapshot_suffix_takes_keepers_that_are_outputs():
    def program() -> None:
        _Store("cache", {"replicationGroupId": pulumi.Output.from_input("phasekit-prod-cache")})

    assert run_recorded(program).one("random:index/randomId:RandomId").inputs["keepers"] == {
        "replicationGroupId": "phasekit-prod-cache"}


@pytest.mark.parametrize(("identifier", "suffix", "name"), [
    ("phasekit-prod", "0a1b2c3d", "phasekit-prod-final-0a1b2c3d"),
    ("a" * 53, "ffffffff", "a" * 53 + "-final-ffffffff"),  # RDS's longest identifier here: 68 characters in all
])
def test_the_final_snapshot_name_is_the_identifier_final_and_the_suffix(identifier, suffix, name):
    assert final_snapshot_name(identifier, suffix) == name


def test_parameter_group_options_retain_the_group_and_parent_it():
    """RdsPostgres's and ElastiCacheRedis's parameter groups: retained on delete, never protected (a family change
    replaces them)."""
    parent = pulumi.ComponentResource.__new__(pulumi.ComponentResource)
    options = parameter_group_options(parent)
    assert (options.parent, options.retain_on_delete, options.protect) == (parent, True, None)
