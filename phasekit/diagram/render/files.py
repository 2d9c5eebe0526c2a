"""Writing the diagrams: ``<stack>.mmd`` and ``<stack>.dot`` per plan, then ``<stack>.svg`` from the real
Graphviz ``dot`` (Debian package ``graphviz``). Output is deterministic (no timestamps, stable ordering),
so the committed ``docs/diagrams`` can be checked for staleness."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from infra.errors import ConfigError
from phasekit.diagram.build import topology
from phasekit.diagram.render.dot import graphviz_dot_from
from phasekit.diagram.render.mermaid import mermaid_from
from phasekit.plan import Plan

GRAPHVIZ_MISSING = ("Graphviz's `dot` is not on PATH, so {names} could not be rendered (the .mmd and .dot files "
                    "were written); install Graphviz: apt-get install graphviz (Debian/Ubuntu) or "
                    "brew install graphviz (macOS)")


def write_diagrams(plans: Sequence[Plan], out_dir: Path) -> list[Path]:
    """Write ``<stack>.mmd``, ``<stack>.dot`` and ``<stack>.svg`` per plan; returns the paths written.

    Raises ConfigError naming what to install when Graphviz's ``dot`` is missing (after writing the text
    files) or when ``dot`` rejects a file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    dot_files: list[Path] = []
    for plan in plans:
        model = topology(plan)
        for suffix, text in ((".mmd", mermaid_from(model)), (".dot", graphviz_dot_from(model))):
            path = out_dir / f"{plan.stack}{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
        dot_files.append(out_dir / f"{plan.stack}.dot")
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(GRAPHVIZ_MISSING.format(names=", ".join(path.with_suffix(".svg").name
                                                                  for path in dot_files)))
    for dot_file in dot_files:
        svg = dot_file.with_suffix(".svg")
        result = subprocess.run([dot, "-Tsvg", str(dot_file), "-o", str(svg)], capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            first_line = (result.stderr.strip().splitlines() or ["no message"])[0]
            raise ConfigError(f"{dot_file}: Graphviz's dot failed: {first_line}")
        written.append(svg)
    return _in_stack_order(written, [plan.stack for plan in plans])


def _in_stack_order(paths: list[Path], stacks: list[str]) -> list[Path]:
    rank = {".mmd": 0, ".dot": 1, ".svg": 2}
    return sorted(paths, key=lambda path: (stacks.index(path.stem), rank[path.suffix]))
