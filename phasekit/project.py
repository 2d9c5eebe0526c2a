"""The project folder and its stack files, checked before any plan runs.

Kept apart from ``phasekit.plan`` (which imports the Pulumi SDK) so the command line can refuse a wrong
folder, stack name or revision in a fraction of a second, before the provider SDKs load.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from infra.errors import ConfigError
from phasekit.stack_file import read_yaml

PROJECT_FILE = "Pulumi.yaml"


def find_project_dir(start: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / PROJECT_FILE).is_file():
            return directory
    raise ConfigError(f"no {PROJECT_FILE} in {start} or any parent directory")


def check_project_dir(path: Path, option: str = "--project-dir") -> Path:
    """``path`` when it is a folder holding ``Pulumi.yaml``; else ConfigError with one line naming it."""
    if not path.exists():
        raise ConfigError(f"{option} {path}: no such folder")
    if not path.is_dir():
        raise ConfigError(f"{option} {path}: not a folder")
    if not (path / PROJECT_FILE).is_file():
        raise ConfigError(f"{option} {path}: no {PROJECT_FILE} in this folder")
    return path


def project_name(project_dir: Path) -> str:
    """The ``name:`` of ``Pulumi.yaml``; bad YAML is one line with file:line:col (``read_yaml``)."""
    path = project_dir / PROJECT_FILE
    document = read_yaml(path, "the project file")
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: not a Pulumi project file: the top level is not a mapping")
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: name: missing; allowed: the project name, e.g. phasekit")
    return name


_STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
"""What the Pulumi CLI allows as a stack name: ``^[A-Za-z0-9_.-]{1,100}$`` (pulumi/pulumi, the backends'
``validateStackName``)."""


def stack_names(project_dir: Path) -> list[str]:
    return sorted(path.name[len("Pulumi."):-len(".yaml")] for path in project_dir.glob("Pulumi.*.yaml")
                  if path.is_file())


def stack_name(stack: str, option: str = "--stack") -> str:
    """The stack's own name: ``phase1`` for ``phase1``, ``acme/phase1`` or ``acme/phasekit/phase1`` (the
    fully-qualified forms the Pulumi CLI takes; its stack file is ``Pulumi.<last part>.yaml`` either way).
    ConfigError for anything else, so a name can never reach outside the project folder."""
    parts = stack.split("/")
    name = parts[-1]
    if len(parts) > 3 or any(not _STACK_NAME.fullmatch(part) or not part.strip(".") for part in parts):
        raise ConfigError(f"{option} {stack!r}: not a stack name; allowed: letters, digits, '-', '_' and '.', "
                          "optionally as org/stack or org/project/stack")
    return name


def stack_file_of(stack: str, project_dir: Path, option: str = "--stack") -> Path:
    """``Pulumi.<stack>.yaml`` in ``project_dir``; ConfigError naming ``option``, the stacks there are and the
    closest one when it does not exist."""
    stack = stack_name(stack, option)
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        from infra.domain import did_you_mean  # imports the provider SDK's enums: only on this error

        names = stack_names(project_dir)
        raise ConfigError(f"{option}: no stack file {path.name}; allowed: {', '.join(names) or 'none found'}"
                          f"{did_you_mean(stack, names)}")
    return path


def stack_file_at_revision(revision: str, stack_file: Path, into: Path, option: str = "--base") -> Path:
    """Write the stack file as it is at git ``revision`` (``origin/main``, ``HEAD~1``, a sha) into the folder
    ``into`` and return the written path.

    Runs ``git -C <folder> show --end-of-options <revision>:<path from the repository root>``, arguments as a
    list (no shell), and refuses a revision that starts with '-', so a revision is never read as an option
    (``--output=<file>`` would make git write a file). Raises ConfigError with one line (git's own reason)
    when the folder is not in a repository or the revision does not hold the file.
    """
    if revision.startswith("-"):
        raise ConfigError(f"{option} {revision}: no such file, and a git revision cannot start with '-'")
    folder = stack_file.parent
    try:
        top = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ConfigError(f"{option} {revision}: no such file, and git is not installed to read a revision") from None
    if top.returncode != 0:
        raise ConfigError(f"{option} {revision}: no such file, and {folder} is not in a git repository")
    relative = stack_file.resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
    shown = subprocess.run(["git", "-C", str(folder), "show", "--end-of-options", f"{revision}:{relative}"],
                           capture_output=True, check=False)
    if shown.returncode != 0:
        reason = shown.stderr.decode(errors="replace").strip().splitlines()
        reason_text = reason[0].removeprefix("fatal: ") if reason else f"git exit {shown.returncode}"
        raise ConfigError(f"{option} {revision}: no such file, and git cannot show {revision}:{relative}: "
                          f"{reason_text}")
    written = into / f"{stack_file.name}@{revision.replace('/', '_')}"
    written.write_bytes(shown.stdout)
    return written


def temporary_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="phasekit-")
