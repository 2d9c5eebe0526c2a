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
