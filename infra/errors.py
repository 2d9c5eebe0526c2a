"""The one error the program and the tools raise for a stack config phasekit refuses.

Kept apart from the config model so that tools and components of the program can raise and catch it
without importing the whole model tree.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A stack config phasekit refuses; ``str()`` is the whole message for the user (format: module docstring)."""

    problems: tuple[str, ...]
    """One line per problem, each starting with the key it concerns."""

    def __init__(self, *problems: str) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        super().__init__(*problems)
        self.problems = problems

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        lines = "\n".join(f"  {line}" for line in self.problems)
        return f"invalid stack config ({len(self.problems)} problems):\n{lines}"
