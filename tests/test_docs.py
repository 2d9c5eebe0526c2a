"""The documentation: README.md is the front door, docs/ the site MkDocs builds from mkdocs.yml.

Checked here: the site builds with `mkdocs build --strict` (mkdocs.yml turns every link, anchor and
not-in-nav problem into a warning, and `--strict` into a failure); every page under docs/ is in `nav`; the README
fits in 250 lines, keeps its prose within 100 columns and starts with the two fresh-machine commands; and every
repository path the README and the pages name (a relative link, or a path such as `phasekit/cost.py` in backticks
or in a code block) exists. What no test here can prove: that the prose describes the code truthfully.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mkdocs.config import load_config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FRESH_MACHINE_COMMANDS = (
    "bash scripts/bootstrap.sh && .venv/bin/python -m phasekit plan --stack phase1\n"
    "bash scripts/bootstrap.sh --with-test-tools && .venv/bin/python -m pytest\n"
)

FENCED_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# A repository path is a word that starts at one of the repository's top-level folders, or names one of its root
# files; `{a,b}` alternatives and `*` globs are allowed inside it. It must not continue another path
# (`/opt/phasekit/deploy.sh`, `.venv/bin/phasekit`) nor stop at a placeholder (`Pulumi.<stack>.yaml`).
TOP_LEVEL_FOLDERS = ("infra", "phasekit", "components", "policy", "tests", "scripts", "bench", "docs", ".github", ".ci")
_PATH_CHARS = r"[\w.{},*/-]"
REPOSITORY_PATH = re.compile(
    r"(?<![\w./~-])(?:"
    rf"(?:{'|'.join(re.escape(folder) for folder in TOP_LEVEL_FOLDERS)})/{_PATH_CHARS}*"
    r"|Pulumi(?:\.[\w{},*-]+)?\.yaml|pyproject\.toml|requirements\.txt|mkdocs\.yml|README\.md|LICENSE"
    r")(?![\w<>-])"
)
# Paths the docs name that setup creates rather than the repository holding them: the policy pack's own virtualenv
# (`pulumi install` in policy/, see docs/guardrails.md).
CREATED_BY_SETUP = {"policy/.venv"}


def _expand_braces(path: str) -> list[str]:
    """`infra/{config,domain}.py` -> `infra/config.py`, `infra/domain.py`, as a shell would expand it."""
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    head, tail = path[: match.start()], path[match.end():]
    return [expanded for option in match.group(1).split(",") for expanded in _expand_braces(head + option + tail)]


def path_mentions(markdown: str) -> list[str]:
    """Repository paths named in code: inline code spans and fenced blocks, braces expanded."""
    code = [block.group(1) for block in FENCED_BLOCK.finditer(markdown)]
    code += [span.group(1) for span in INLINE_CODE.finditer(FENCED_BLOCK.sub("", markdown))]
    mentions = []
    for text in code:
        for match in REPOSITORY_PATH.finditer(text):
            mentions += _expand_braces(match.group(0).rstrip(".,"))
    return mentions


def relative_links(markdown: str) -> list[str]:
    """Link and image targets that point into the repository (not a URL, not an anchor on the same page)."""
    prose = INLINE_CODE.sub("", FENCED_BLOCK.sub("", markdown))
    targets = [match.group(1).split("#", 1)[0] for match in LINK.finditer(prose)]
    return [target for target in targets if target and not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def _created_by_setup(mention: str) -> bool:
    return any(mention == created or mention.startswith(created + "/") for created in CREATED_BY_SETUP)


def _exists(path: Path) -> bool:
    return any(path.parent.glob(path.name)) if "*" in path.name else path.exists()


def missing_references(markdown: str, page_dir: Path) -> list[str]:
    """Every relative link (resolved from the page's folder) and path mention (from the root) that does not exist."""
    missing = [link for link in relative_links(markdown) if not (page_dir / link).exists()]
    missing += [
        mention
        for mention in path_mentions(markdown)
        if not _created_by_setup(mention) and not _exists(ROOT / mention.rstrip("/"))
    ]
    return missing


def test_the_site_builds_strictly_and_renders_tables(tmp_path):
    site = tmp_path / "site"
    # Material 9.7+ prints an end-of-life banner that says "warning" although it is none; this variable, named in
    # the banner itself, silences it so that only MkDocs' own WARNING lines are left to look for.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert [line for line in output.splitlines() if re.match(r"\s*WARNING\b", line)] == []
    config_page = (site / "config" / "index.html").read_text()
    assert "<table>" in config_page and "<td><code>phasekit:phase</code></td>" in config_page
    assert 'src="../diagrams/phase1.svg"' in (site / "phase1" / "index.html").read_text()


def _nav_pages(nav: list) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    nav = _nav_pages(load_config(str(ROOT / "mkdocs.yml"))["nav"])
    assert sorted(nav) == sorted(page.relative_to(DOCS).as_posix() for page in PAGES)
    assert len(nav) == len(set(nav)), "a page is listed twice in nav"


def test_readme_fits_in_250_lines():
    assert len(README.read_text().splitlines()) <= 250


def test_readme_prose_fits_in_100_columns():
    prose = FENCED_BLOCK.sub("", README.read_text())
    too_wide = [line for line in prose.splitlines() if len(line) > 100 and "://" not in line]
    assert too_wide == []


def test_readme_starts_with_the_two_fresh_machine_commands():
    text = README.read_text()
    first_block = FENCED_BLOCK.search(text)
    assert first_block is not None and first_block.group(1) == FRESH_MACHINE_COMMANDS
    assert first_block.start() < text.index("\n## "), "the commands come before the first section"


def test_readme_plan_excerpt_is_the_real_output(capsys):
    """The excerpt is what ``plan --stack phase1 --summary`` prints today, so the front page cannot go stale."""
    from phasekit.cli import main

    text = README.read_text()
    assert text.count("<!-- plan-excerpt:start -->") == 1 and text.count("<!-- plan-excerpt:end -->") == 1
    excerpt = text[text.index("<!-- plan-excerpt:start -->"): text.index("<!-- plan-excerpt:end -->")]
    blocks = FENCED_BLOCK.findall(excerpt)
    assert len(blocks) == 1, "one code block of real `plan` output"
    command, _, shown = blocks[0].partition("\n")
    assert command == "$ .venv/bin/python -m phasekit plan --stack phase1 --summary"
    assert main(["plan", "--stack", "phase1", "--summary", "--project-dir", str(ROOT)]) == 0
    assert shown == capsys.readouterr().out


def test_getting_started_shows_the_committed_phase1_stack():
    """The quick start's stack file is the committed one, so an edit to Pulumi.phase1.yaml cannot leave it stale."""
    committed = (ROOT / "Pulumi.phase1.yaml").read_text()
    shown = re.search(r"^```yaml\n(.*?)^```", (DOCS / "getting-started.md").read_text(), re.MULTILINE | re.DOTALL)
    assert shown is not None and shown.group(1) == committed[committed.index("config:\n"):]


@pytest.mark.parametrize("document", [README, *PAGES], ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_file_a_document_names_exists(document):
    assert missing_references(document.read_text(), document.parent) == []


@pytest.mark.parametrize(
    ("markdown", "missing"),
    [
        ("see `phasekit/made_up.py` for the details", ["phasekit/made_up.py"]),
        ("the [made-up page](docs/made-up.md#intro)", ["docs/made-up.md"]),
        ("```sh\n.venv/bin/python bench/made_up_bench.py --runs 3\n```", ["bench/made_up_bench.py"]),
        ("`infra/{config,made_up}.py`", ["infra/made_up.py"]),
        ("`Pulumi.phase9.yaml`", ["Pulumi.phase9.yaml"]),
    ],
)
def test_a_made_up_path_is_reported(markdown, missing):
    assert missing_references(markdown, ROOT) == missing


def test_real_paths_are_recognised_and_other_words_are_not():
    markdown = (
        "`components/tags.py`, `phasekit/{cost,compare}.py`, `tests/node*/`, `/opt/phasekit/deploy.sh`, "
        "`.venv/bin/phasekit`, `Pulumi.<stack>.yaml`, `origin/main:Pulumi.phase1.yaml`, [a site](https://example.com)"
    )
    assert path_mentions(markdown) == [
        "components/tags.py", "phasekit/cost.py", "phasekit/compare.py", "tests/node*/", "Pulumi.phase1.yaml",
    ]
    assert missing_references(markdown, ROOT) == []
    assert path_mentions("components/made_up.py in prose, outside code, is not a mention") == []
