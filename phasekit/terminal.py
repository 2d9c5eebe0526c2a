"""The plan on a terminal: colour, the console's width and a drawn tree, with ``rich``.

Plain text (``phasekit.plan_text``) is written instead when the output is not a terminal (piped, redirected),
when ``--no-color`` is given, or when ``NO_COLOR`` is set to any non-empty value (https://no-color.org/:
"when present and not an empty string, prevents the addition of ANSI color"). ``rich`` is imported only
here, and only when it is used, so a piped plan starts no slower than before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from phasekit.plan_text import PlanDocument, TreeNode

TONES = {"ok": "green", "bad": "bold red", "warn": "yellow", "": ""}


def wants_colour(stream: IO[str], no_color_flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    if no_color_flag or environ.get("NO_COLOR", ""):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def console_for(stream: IO[str], width: int | None = None) -> Console:
    from rich.console import Console

    # highlight=False: rich would otherwise colour every number and quoted string in the inputs.
    return Console(file=stream, highlight=False, emoji=False, markup=False, width=width)


def write_plan(document: PlanDocument, console: Console, *, summary_only: bool = False) -> None:
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    for index, line in enumerate(document.header):
        console.print(Text(line, style="bold" if index == 0 else "dim"))
    console.print()
    console.print(Text("Summary:", style="bold"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column()
    for row in document.summary:
        text = Text(row.text, style=TONES[row.tone])
        for item in row.items:
            text.append("\n  " + item, style="")
        grid.add_row(row.label, text)
    console.print(Padding(grid, (0, 0, 0, 2)))
    if summary_only:
        return
    console.print()
    console.print(Text(f"Resources: {document.resource_count} to create", style="bold"))
    console.print(_rich_tree(document.root))
    for section in document.sections:
        console.print()
        for index, line in enumerate(section):
            console.print(Text(line, style="bold" if index == 0 else ""))


def _rich_tree(root: TreeNode):  # -> rich.tree.Tree
    from rich.tree import Tree

    tree = Tree(_label(root), guide_style="dim")
    _add_children(tree, root)
    return tree


def _add_children(branch, node: TreeNode) -> None:
    for child in node.children:
        _add_children(branch.add(_label(child)), child)


def _label(node: TreeNode):  # -> rich.text.Text
    from rich.text import Text

    label = Text()
    label.append(node.type, style="cyan")
    label.append("  ")
    label.append(node.name, style="bold")
    if node.flags:
        label.append(f"  [{'; '.join(node.flags)}]", style="yellow")
    for detail in node.details:
        label.append("\n    " + detail)
    return label
