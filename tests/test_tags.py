"""Tag normalisation per provider (pure)."""

from __future__ import annotations

from components.tags import aws_tags, default_tags, digitalocean_tags, kubernetes_labels

TAGS = {"stack": "phase3", "project": "shop", "managed-by": "phasekit", "phase": "3"}


def test_default_tags_name_project_stack_phase_and_manager():
    assert default_tags("shop", "prod", 2) == {"project": "shop", "stack": "prod", "phase": "2", "managed-by": "phasekit"}


def test_digitalocean_tags_are_flat_lowercase_names():
    assert digitalocean_tags({"Team": "Web Ops"}) == ["team:web-ops"]


def test_aws_tags_are_a_sorted_map_with_extras_on_top():
    assert list(aws_tags(TAGS, Name="shop-vpc").items()) == [
        ("Name", "shop-vpc"), ("managed-by", "phasekit"), ("phase", "3"), ("project", "shop"), ("stack", "phase3"),
    ]


def test_kubernetes_labels_are_prefixed_and_cut_to_the_label_rules():
    assert kubernetes_labels({"team": "web ops", "note": "x" * 70 + "-"}) == {
        "phasekit.dev/note": "x" * 63,
        "phasekit.dev/team": "web-ops",
    }
