"""How the Pulumi CLI will load the program: checks on the project files themselves."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_pulumi_yaml_runs_infra_with_the_project_virtualenv():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "phasekit"
    assert project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert (ROOT / "requirements.txt").read_text().splitlines()[-1] == "-e ."


def test_no_program_module_shadows_the_standard_library():
    """The engine runs ``main: infra/`` with ``infra/`` first on ``sys.path``: an ``infra/secrets.py`` would
    replace the standard library's ``secrets`` for every library the program imports."""
    modules = {path.stem for path in (ROOT / "infra").glob("*.py")}
    assert modules & sys.stdlib_module_names == set()


def test_the_engine_runs_the_program_directory(monkeypatch):
    """What the Python language host does with ``main: infra/``: ``runpy.run_path`` on the directory, with
    the runtime already configured (here by the mock monitor) and ``infra/`` first on ``sys.path``."""
    import json
    import runpy

    from components.testing import run_recorded
    from infra.config import read_stack_file
    from infra.plan import runtime_form

    config, _ = runtime_form(read_stack_file(ROOT / "Pulumi.phase1.yaml"), [])
    config["phasekit:secrets"] = json.dumps({"SECRET_KEY_BASE": "value"})
    monkeypatch.syspath_prepend(str(ROOT / "infra"))
    recording = run_recorded(lambda: runpy.run_path(str(ROOT / "infra"), run_name="__main__"),
                             stack="phase1", config=config, secret_keys=["phasekit:secrets"])
    assert len(recording.resources) == 24
    assert recording.outputs["app_url"] == "https://app.example.com"
