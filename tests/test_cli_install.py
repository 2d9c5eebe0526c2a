"""``scripts/bootstrap.sh``'s ``pip install -e .`` prints no build-backend warning, and a plain install
ships every sub-package.

Both build the project with pip under build isolation (setuptools from the package index, as the
bootstrap does) from a copy of the packaged files, so nothing is written into the work tree. About 5 s.
What this cannot prove: the output of other pip or setuptools versions than the ones the index serves.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ("pyproject.toml", "README.md", "LICENSE", "phasekit", "infra", "components", "policy")
BACKEND_WARNINGS = ("BuildBackendWarning", "SetuptoolsWarning", "SetuptoolsDeprecationWarning", "InformationOnly")


def copy_of_project(into: Path) -> Path:
    into.mkdir()
    for name in PACKAGED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.exists():
            shutil.copy(source, into / name)
    return into


def pip(target: Path, *args: str) -> str:
    """This environment's pip acting on the environment of the ``target`` interpreter (``pip --python``):
    never on the running one, whose own editable phasekit an install of the same name would replace."""
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(target), "--disable-pip-version-check",
                             *args], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def scratch_python(tmp_path: Path) -> Path:
    """A fresh, empty virtual environment's interpreter (no pip of its own: ``pip --python`` drives it)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    return tmp_path / "venv" / "bin" / "python"


def test_the_editable_install_prints_no_build_backend_warning(tmp_path):
    project = copy_of_project(tmp_path / "project")
    output = pip(scratch_python(tmp_path), "install", "--quiet", "--no-deps", "-e", str(project))
    assert [line for line in output.splitlines() if any(name in line for name in BACKEND_WARNINGS)
            or line.strip() == "!!"] == []


def test_the_wheel_holds_every_sub_package_and_the_data_files(tmp_path):
    project = copy_of_project(tmp_path / "project")
    pip(scratch_python(tmp_path), "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "wheels"), str(project))
    (wheel,) = (tmp_path / "wheels").glob("phasekit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {path.relative_to(ROOT).as_posix() for package in ("phasekit", "infra", "components", "policy")
                for path in (ROOT / package).rglob("__init__.py")}
    assert expected - names == set()
    assert {"phasekit/prices.yaml", "phasekit/replacement_rules.yaml"} <= names
    assert not any(name.startswith(("tests/", "docs/", "bench/")) for name in names)
