"""The config reference's key tables (docs/config.md) against the models they are generated from.

Checked here: the page's generated blocks are exactly what ``phasekit.config_reference`` renders today (a copy of
the page with one edited row is caught, and ``--write`` repairs it); every field of the ``StackConfig`` tree has
a docstring and lands in exactly one table; defaults read back from YAML as the model's own; a few exact rows.
What no test here can prove: that a docstring describes what the program does.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from infra.config import _SECRET_LOOKING_ENDINGS
from phasekit import config_reference
from phasekit.config_reference import (
    SECTION_NAMES,
    SECTIONS,
    Row,
    field_docstring,
    generated_blocks,
    main,
    model_tree,
    phase_models,
    refreshed,
    render_section,
    section_keys,
    section_rows,
    stale_sections,
    top_rows,
    yaml_text,
)

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"
REFRESH = "run: .venv/bin/python -m phasekit.config_reference --write docs/config.md"


def test_the_page_is_what_the_models_say():
    assert stale_sections(PAGE.read_text(encoding="utf-8")) == [], REFRESH


def test_a_stale_copy_of_the_page_is_caught_and_write_repairs_it(tmp_path, capsys):
    page = PAGE.read_text(encoding="utf-8")
    row = "| `cluster.version` | string: one of '1.33', '1.34', '1.35', '1.36' (quoted in YAML) | `'1.35'` |"
    assert page.count(row) == 1
    copy = tmp_path / "config.md"
    copy.write_text(page.replace(row, row.replace("`'1.35'`", "`'1.34'`")), encoding="utf-8")

    assert stale_sections(copy.read_text(encoding="utf-8")) == ["phase3"]
    assert main(["--check", str(copy)]) == 1
    assert capsys.readouterr().err == (
        f"{copy}: config-reference:phase3 is stale; run: python -m phasekit.config_reference --write {copy}\n")

    assert main(["--write", str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == page
    assert main(["--check", str(copy)]) == 0


def test_text_outside_the_markers_is_kept():
    page = PAGE.read_text(encoding="utf-8")
    edited = page.replace("Examples of phase 3 messages", "Examples of phase-3 messages")
    assert edited != page and refreshed(edited) == edited


@pytest.mark.parametrize("damage", ["missing", "twice"])
def test_a_page_without_exactly_one_block_per_section_is_refused(tmp_path, capsys, damage):
    page = PAGE.read_text(encoding="utf-8")
    block = page[page.index("<!-- config-reference:edge:start -->"):page.index("<!-- config-reference:edge:end -->")]
    block += "<!-- config-reference:edge:end -->"
    broken = page.replace(block, "") if damage == "missing" else page + "\n" + block + "\n"
    copy = tmp_path / "config.md"
    copy.write_text(broken, encoding="utf-8")
    found = 0 if damage == "missing" else 2
    message = f"{found} '<!-- config-reference:edge:start -->' blocks; expected 1"
    with pytest.raises(ValueError, match=message):
        generated_blocks(broken)
    assert main(["--write", str(copy)]) == 1
    assert capsys.readouterr().err == f"{copy}: {message}\n"
    assert copy.read_text(encoding="utf-8") == broken


FIELDS = [(model, name) for model in model_tree() for name in model.model_fields]


@pytest.mark.parametrize(("model", "name"), FIELDS, ids=[f"{model.__name__}.{name}" for model, name in FIELDS])
def test_every_field_has_a_docstring(model, name):
    """So a key cannot land undocumented: its row's rule would be empty."""
    assert field_docstring(model, name).strip(), f"write a docstring under {model.__name__}.{name}"


def test_an_inherited_field_keeps_the_docstring_of_the_class_that_declares_it():
    vps = phase_models()[1].model_fields["vps"].annotation
    assert field_docstring(vps, "size").startswith("Droplet size (``pulumi_digitalocean.DropletSlug``)")


def _paths(model, prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        paths.append(key)
        annotation = typing.get_args(field.annotation) or (field.annotation,)
        nested = [part for part in annotation if isinstance(part, type) and part in model_tree()]
        if typing.get_origin(field.annotation) in (dict, Mapping) and nested:  # a mapping of models
            paths += _paths(nested[0], key + ".<name>.")
        elif nested:
            paths += _paths(nested[0], key + ".")
    return paths


def test_every_key_of_every_phase_is_in_exactly_one_table():
    shown: list[tuple[int, str]] = [
        (phase, row.key.removeprefix("phasekit:")) for row in top_rows() for phase in row.phases
    ]
    for section in SECTIONS:
        if section.relative:
            # Generated from one phase's model, the table stands for every phase with that key, which must then
            # use the same model there.
            (key,) = section_keys(section)
            phases = [phase for phase, model in phase_models().items() if key in model.model_fields]
            assert len({phase_models()[phase].model_fields[key].annotation for phase in phases}) == 1
            shown += [(phase, f"{key}.{row.key}") for phase in phases for row in section_rows(section)]
        else:
            shown += [(section.phase, row.key) for row in section_rows(section)]
    expected = [(phase, path) for phase, model in phase_models().items() for path in _paths(model)]
    assert sorted(shown) == sorted(expected)


def test_every_cell_is_filled_and_no_type_falls_back_to_the_reference_itself():
    rows = top_rows() + [row for section in SECTIONS for row in section_rows(section)]
    assert [row for row in rows if not all((row.key, row.type, row.default, row.rule))] == []
    assert [row.key for row in rows if "config reference" in row.type] == []


def test_each_default_reads_back_from_yaml_as_the_models_own():
    checked = 0
    for model in model_tree():
        for field in model.model_fields.values():
            if field.is_required() or isinstance(field.default_factory, type):
                continue
            default = field.get_default(call_default_factory=True)
            assert yaml.safe_load(yaml_text(default)) == config_reference._plain(default), field
            checked += 1
    assert checked > 40


def test_a_mapping_of_models_lists_the_keys_of_each_value_below_name():
    keys = [row.key for row in section_rows(next(s for s in SECTIONS if s.name == "app"))]
    assert [key for key in keys if key.startswith(("processes", "schedules"))] == [
        "processes",
        "processes.<name>.command", "processes.<name>.count", "processes.<name>.maxCount", "processes.<name>.cpu",
        "processes.<name>.memory", "processes.<name>.stopTimeoutSeconds",
        "schedules",
        "schedules.<name>.cron", "schedules.<name>.command", "schedules.<name>.timeoutSeconds",
        "schedules.<name>.cpu", "schedules.<name>.memory",
    ]
    assert _row("app", "processes.<name>.count") == Row(
        "processes.<name>.count", "integer: 1..50", "`1`",
        "How many run: containers on each app droplet in phases 1 and 2, replicas in phase 3 (the autoscaler's floor "
        "with `maxCount`). To stop a process, remove it from `processes`; zero is refused.")
    assert _row("app", "schedules.<name>.timeoutSeconds").default == "`3600`"


def _row(section: str, key: str) -> Row:
    rows = top_rows() if section == "top" else section_rows(next(s for s in SECTIONS if s.name == section))
    return next(row for row in rows if row.key == key)


def test_exact_rows():
    version = _row("phase3", "cluster.version")
    assert (version.type, version.default) == (
        "string: one of '1.33', '1.34', '1.35', '1.36' (quoted in YAML)", "`'1.35'`")
    assert _row("phase3", "database.engineVersion") == Row(
        "database.engineVersion", "string: a PostgreSQL major version 14..17", "`'16'`",
        "PostgreSQL major version; RDS applies minor versions in the maintenance window. A YAML number (`16`) is "
        "read as the same version.")
    assert _row("phase3", "cluster.nodeGroup.instanceTypes").default == "`[t3.large]`"
    assert _row("phase3", "workload.cpuRequest").default == "`250m`"
    assert _row("app", "registry").type == "mapping or null"
    assert _row("app", "registry.server").default == "required"
    assert _row("app", "env").type.startswith("mapping: a mapping of NAME: value, e.g. {LOG\\_LEVEL: info}; keys: ")
    assert _row("phase2", "redis.placement").default == "`database`"
    assert _row("top", "phasekit:phase") == Row(
        "phasekit:phase", "integer: 1, 2 or 3", "required",
        "Which phase the stack deploys; it decides which of the other keys the stack may set.", (1, 2, 3))
    assert [(row.phases, row.default) for row in top_rows() if row.key == "phasekit:database"] == [
        ((2,), "required"), ((3,), "`{}`")]


def test_rendered_lines():
    assert "| `appTier.count` | integer: 1..10 | `2` | App droplets; more than one puts a DigitalOcean load balancer " \
           "in front of them and needs `edge.proxied: true`. |\n" in render_section("phase2")
    assert "| `phasekit:vps` | 1 | mapping | required | Phase 1's one droplet: region, size, data volume, backups, SSH " \
           "access and alerts. See [below](#phasekitvps). |\n" in render_section("top")
    assert render_section("edge").startswith("| Key | Type | Default | Rule |\n|---|---|---|---|\n| `zoneId` |")


def test_a_pipe_in_a_docstring_cannot_break_the_table():
    assert config_reference.render_table([Row("k", "a | b", "`1`", "x|y")]).splitlines()[-1] == \
        "| `k` | a \\| b | `1` | x\\|y |"


def test_section_names_are_the_markers_on_the_page():
    assert SECTION_NAMES == ("top", "app", "edge", "backups", "vps", "services", "phase2", "phase3")
    assert list(generated_blocks(PAGE.read_text(encoding="utf-8"))) == list(SECTION_NAMES)


def test_the_page_lists_every_env_name_ending_that_warns():
    """The warning's patterns are written by hand in the prose above the tables: each must be there."""
    page = PAGE.read_text(encoding="utf-8")
    missing = ["_".join(ending) for ending in _SECRET_LOOKING_ENDINGS if f"`*_{'_'.join(ending)}`" not in page]
    assert missing == []


def test_a_missing_page_is_one_line(tmp_path, capsys):
    assert main(["--check", str(tmp_path / "nowhere.md")]) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'nowhere.md'}: cannot read the page: No such file or directory\n"
