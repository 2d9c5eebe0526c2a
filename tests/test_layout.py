"""How the Pulumi CLI will load the program: checks on the project files themselves."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
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
    from phasekit.plan import runtime_form
    from phasekit.stack_file import read_stack_file

    config, _ = runtime_form(read_stack_file(ROOT / "Pulumi.phase1.yaml"), [])
    config["phasekit:secrets"] = json.dumps({"SECRET_KEY_BASE": "value", "BACKUP_PASSPHRASE": "a" * 16})
    monkeypatch.syspath_prepend(str(ROOT / "infra"))
    recording = run_recorded(lambda: runpy.run_path(str(ROOT / "infra"), run_name="__main__"),
                             stack="phase1", config=config, secret_keys=["phasekit:secrets"])
    assert len(recording.resources) == 37
    assert recording.outputs["app_url"] == "https://app.example.com"


_IMPORT_LINE = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)[.\w]*\s+import\b|import\s+([A-Za-z_]\w*))", re.MULTILINE)


def _imported_packages(package: str) -> dict[str, set[str]]:
    """For each module of ``package``: the top-level names of this repository's packages it imports.

    Read line by line rather than with ``ast``: CPython 3.11's ``ast.parse`` can fail with "AST constructor
    recursion depth mismatch" after an earlier test caught a RecursionError (python/cpython#106905). A
    docstring line that starts with ``from x import`` could only add a name, never hide one.
    """
    ours = {"components", "infra", "phasekit", "policy"}
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = {first or second for first, second in _IMPORT_LINE.findall(path.read_text())}
        found[str(path.relative_to(ROOT))] = (names & ours) - {package}
    return found


def test_the_import_reader_sees_every_form():
    text = "import infra.config\nfrom phasekit.plan import x\n    from components import (\n        y,\n)\n"
    assert {first or second for first, second in _IMPORT_LINE.findall(text)} == {"infra", "phasekit", "components"}


@pytest.mark.parametrize(("package", "may_import"), [
    ("components", set()),
    ("infra", {"components"}),
    ("phasekit", {"infra", "components", "policy"}),
    ("policy", set()),
])
def test_imports_run_one_way(package, may_import):
    """phasekit → infra → components; policy/ stands alone (the Pulumi CLI runs it from its own directory)."""
    wrong = {module: names - may_import for module, names in _imported_packages(package).items() if names - may_import}
    assert wrong == {}


def test_each_package_says_what_lives_there():
    for package in ("components", "infra", "phasekit", "policy"):
        docstring = __import__(package).__doc__
        assert docstring and len(docstring.split()) > 20, package
