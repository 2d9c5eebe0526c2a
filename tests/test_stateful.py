"""The pure decision behind every stateful child's options (mocks cannot see options themselves)."""

from __future__ import annotations

import pulumi

from components.stateful import stateful_options


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
