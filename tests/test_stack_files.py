"""Bad and unusual stack files, each run through the real CLI (``phasekit plan --stack dev``) as a user would.

Every case starts from a committed ``Pulumi.phaseN.yaml``, edits its text (so YAML-level tricks such as duplicate
keys, tabs, anchors, a byte-order mark or CRLF line endings reach the reader as written), and asserts the exact
``error:`` line and exit status (1: bad config; 3: a mandatory guardrail fails). The valid unusual stacks must plan
cleanly with every secret masked.

What these tests cannot prove: that the Pulumi CLI itself accepts each valid file (no CLI here). The rules they
pin (duplicate keys refused, bare keys belonging to the project, ``<ns>:config:<name>``, a byte-order mark
ignored) were read from pulumi/pulumi's ``sdk/go/common/workspace/loaders.go`` and ``resource/config/key.go``.
"""

from __future__ import annotations

import re
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from phasekit.cli import main

ROOT = Path(__file__).resolve().parents[1]

Edit = Callable[[str], str]


def sub(old: str, new: str, count: int = 1) -> Edit:
    """Replace ``old`` (which must occur exactly ``count`` times) with ``new``."""

    def edit(text: str) -> str:
        assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times"
        return text.replace(old, new)

    return edit


def after(anchor: str, lines: str) -> Edit:
    """Insert ``lines`` right after the line holding ``anchor``."""
    return sub(anchor + "\n", anchor + "\n" + lines)


def section(key: str, replacement: str) -> Edit:
    """Replace the block ``  <key>:`` and its indented lines with ``replacement``."""

    def edit(text: str) -> str:
        edited, count = re.subn(rf"  {re.escape(key)}:\n(    .*\n)+", replacement, text)
        assert count == 1, key
        return edited

    return edit


def append(lines: str) -> Edit:
    return lambda text: text + lines


def whole(text: str) -> Edit:
    return lambda _: text


def chain(*edits: Edit) -> Edit:
    def edit(text: str) -> str:
        for step in edits:
            text = step(text)
        return text

    return edit


def write_project(tmp_path: Path, phase: int, edit: Edit, *, encoding: str = "utf-8", newline: str = "\n") -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    text = edit((ROOT / f"Pulumi.phase{phase}.yaml").read_text(encoding="utf-8"))
    (tmp_path / "Pulumi.dev.yaml").write_bytes(text.replace("\n", newline).encode(encoding))
    return tmp_path


def plan(capsys: pytest.CaptureFixture[str], project: Path) -> tuple[int, str, str]:
    status = main(["plan", "--stack", "dev", "--project-dir", str(project)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@dataclass(frozen=True)
class Bad:
    id: str
    phase: int
    edit: Edit
    message: str
    """The one ``error:`` line; ``{file}`` stands for the stack file's path and ``{line1}``, ``{line2}`` for the
    lines of the edited file where ``lines`` are found."""

    lines: tuple[tuple[str, int], ...] = ()
    """(text, n): the n-th line (from 1) holding ``text``, so messages do not depend on the committed files'
    line numbers."""

    def expected(self, stack_file: Path) -> str:
        text = stack_file.read_text(encoding="utf-8").splitlines()
        message = self.message.replace("{file}", str(stack_file))
        for index, (needle, nth) in enumerate(self.lines, start=1):
            numbers = [number for number, line in enumerate(text, start=1) if needle in line]
            message = message.replace(f"{{line{index}}}", str(numbers[nth - 1]))
        return message


SET_SECRET = "pulumi config set --secret"
ENV_NAMES = ("upper-case letters, digits and '_', not starting with a digit, e.g. LOG_LEVEL, or a lower-case proxy "
             "variable (all_proxy, ftp_proxy, http_proxy, https_proxy, no_proxy)")
VPS_KEYS = "alertEmails, alertSlack, backupPlan, backups, region, size, sshAdminCidrs, sshKeyFingerprints, volumeSizeGib"
APP_KEYS = "dbPoolSize, env, healthPath, image, port, processes, registry, releaseCommand, schedules, secretEnv, workers"
PHASE1_KEYS = ("phasekit:app, phasekit:backups, phasekit:edge, phasekit:phase, phasekit:protect, phasekit:secrets, "
               "phasekit:services, phasekit:sshPrivateKey, phasekit:tags, phasekit:vps")
SECRETS_ALLOWED = "a mapping of NAME to a secret set with: pulumi config set --secret --path 'secrets.<NAME>'"
TAG_PART = "1 to 63 lowercase letters, digits, '-' or '_'"

BAD: list[Bad] = [
    # --- YAML level -----------------------------------------------------------------------------------------
    Bad("duplicate-top-level-key", 1, append("  phasekit:protect: false\n"),
        "{file}:{line1}:3: not valid YAML: duplicate key 'phasekit:protect' (first on line {line2})",
        lines=(("phasekit:protect: false", 1), ("phasekit:protect: true", 1))),
    Bad("duplicate-nested-key", 1, after("    region: nyc3", "    region: sfo3\n"),
        "{file}:{line1}:5: not valid YAML: duplicate key 'region' (first on line {line2})",
        lines=(("region: sfo3", 1), ("region: nyc3", 1))),
    Bad("duplicate-deep-key", 1, after("      LOG_LEVEL: info", "      LOG_LEVEL: debug\n"),
        "{file}:{line1}:7: not valid YAML: duplicate key 'LOG_LEVEL' (first on line {line2})",
        lines=(("LOG_LEVEL: debug", 1), ("LOG_LEVEL: info", 1))),
    Bad("duplicate-config-section", 1, append("config:\n  phasekit:protect: false\n"),
        "{file}:{line1}:1: not valid YAML: duplicate key 'config' (first on line {line2})",
        lines=(("config:", 2), ("config:", 1))),
    Bad("duplicate-in-flow-mapping", 2, sub("  phasekit:redis:\n    placement: database",
                                           "  phasekit:redis: {placement: database, placement: database}"),
        "{file}:{line1}:41: not valid YAML: duplicate key 'placement' (first on line {line1})",
        lines=(("placement: database, placement", 1),)),
    Bad("duplicate-bare-and-namespaced", 1, after("  phasekit:protect: true", "  protect: false\n"),
        "{file}:{line1}:3: duplicate key 'protect': it is phasekit:protect, already set as 'phasekit:protect' on "
        "line {line2} (a key without a namespace belongs to the project); allowed: each key once",
        lines=(("  protect: false", 1), ("phasekit:protect: true", 1))),
    Bad("duplicate-bare-tags-and-namespaced-tags", 3,
        append("  tags: {team: web}\n  phasekit:tags: {team: shop}\n"),
        "{file}:{line1}:3: duplicate key 'phasekit:tags': it is phasekit:tags, already set as 'tags' on line "
        "{line2} (a key without a namespace belongs to the project); allowed: each key once",
        lines=(("phasekit:tags:", 1), ("  tags:", 1))),
    Bad("duplicate-old-config-form", 1, after("  phasekit:protect: true", "  phasekit:config:protect: false\n"),
        "{file}:{line1}:3: duplicate key 'phasekit:config:protect': it is phasekit:protect, already set as "
        "'phasekit:protect' on line {line2} (a key without a namespace belongs to the project); allowed: each key "
        "once", lines=(("phasekit:config:protect", 1), ("phasekit:protect: true", 1))),
    Bad("three-colons", 1, append("  phasekit:app:image: x\n"),
        "{file}:{line1}:3: 'phasekit:app:image' is not a config key; allowed: <namespace>:<name> with one ':', "
        "e.g. phasekit:phase", lines=(("phasekit:app:image", 1),)),
    Bad("tab-indentation", 1, sub("    region: nyc3", "\tregion: nyc3"),
        "{file}:{line1}:1: not valid YAML: found character '\\t' that cannot start any token",
        lines=(("\tregion", 1),)),
    Bad("config-is-a-list", 1, whole("config:\n  - phasekit:phase: 1\n"),
        "{file}: config: [{phasekit:phase: 1}] is not a mapping; allowed: a mapping of config keys"),
    Bad("config-is-a-string", 1, whole("config: phasekit:phase=1\n"),
        "{file}: config: 'phasekit:phase=1' is not a mapping; allowed: a mapping of config keys"),
    Bad("document-is-a-list", 1, whole("- config:\n    phasekit:phase: 1\n"),
        "{file}: not a Pulumi stack file: the top level is not a mapping"),
    Bad("two-documents", 1, append("---\nconfig: {}\n"),
        "{file}:{line1}:1: not valid YAML: expected a single document in the stream, but found another document",
        lines=(("---", 1),)),
    Bad("config-null", 1, whole("config:\n"), "phasekit:phase: missing; allowed: 1, 2, 3"),
    Bad("empty-file", 1, whole(""), "phasekit:phase: missing; allowed: 1, 2, 3"),
    Bad("only-comments", 1, whole("# nothing yet\n"), "phasekit:phase: missing; allowed: 1, 2, 3"),
    Bad("numeric-config-key", 1, append("  123: x\n"),
        "{file}:{line1}:3: config key 123 is not a string; allowed: keys like phasekit:phase or digitalocean:token",
        lines=(("123: x", 1),)),
    Bad("unhashable-key", 1, append("  ? [a, b]\n  : x\n"),
        "{file}:{line1}:5: not valid YAML: found unhashable key", lines=(("? [a, b]", 1),)),
    Bad("unclosed-quote", 1, sub("    region: nyc3", "    region: \"nyc3"),
        "{file}:{line1}:10: not valid YAML: expected <block end>, but found '<scalar>'",
        lines=(('"3b:16', 1),)),
    Bad("undefined-alias", 1, sub("      - ops@example.com", "      - *ops"),
        "{file}:{line1}:9: not valid YAML: found undefined alias 'ops'", lines=(("*ops", 1),)),
    # --- phase and top-level keys ----------------------------------------------------------------------------
    Bad("phase-null", 1, sub("phasekit:phase: 1", "phasekit:phase:"),
        "phasekit:phase: null is not a phase; allowed: 1, 2, 3"),
    Bad("phase-word", 1, sub("phasekit:phase: 1", "phasekit:phase: one"),
        "phasekit:phase: 'one' is not a phase; allowed: 1, 2, 3"),
    Bad("phase-bool", 1, sub("phasekit:phase: 1", "phasekit:phase: true"),
        "phasekit:phase: true is not a phase; allowed: 1, 2, 3"),
    Bad("phase-four", 1, sub("phasekit:phase: 1", "phasekit:phase: 4"),
        "phasekit:phase: 4 is not a phase; allowed: 1, 2, 3"),
    Bad("bare-phase-twice", 1, after("  phasekit:phase: 1", "  phase: 2\n"),
        "{file}:9:3: duplicate key 'phase': it is phasekit:phase, already set as 'phasekit:phase' on line 8 "
        "(a key without a namespace belongs to the project); allowed: each key once"),
    Bad("dot-instead-of-colon", 2, sub("  phasekit:appTier:", "  phasekit.appTier:"),
        "phasekit.appTier: unknown key; allowed: phasekit:<name>, with ':' after the namespace "
        "(did you mean 'phasekit:appTier'?)"),
    Bad("misspelt-namespace", 1, sub("  phasekit:app:", "  phaskit:app:"),
        "phaskit:app: unknown namespace 'phaskit'; allowed: phasekit for phasekit's keys "
        "(did you mean 'phasekit:app'?)"),
    Bad("capitalised-namespace", 1, sub("  phasekit:edge:", "  Phasekit:edge:"),
        "Phasekit:edge: unknown namespace 'Phasekit'; allowed: phasekit for phasekit's keys "
        "(did you mean 'phasekit:edge'?)"),
    Bad("nested-phasekit-mapping", 1,
        lambda text: text.replace("  phasekit:", "    ").replace("config:\n", "config:\n  phasekit:\n"),
        "phasekit: unknown key (the Pulumi CLI reads it as phasekit:phasekit); allowed: each phasekit key directly "
        "under config:, written phasekit:<name>, e.g. phasekit:phase"),
    Bad("namespace-without-name", 1, append("  \"phasekit:\": 1\n"),
        "phasekit:: no key name after the namespace; allowed: phasekit:<name>, e.g. phasekit:phase"),
    Bad("top-level-key-misplaced", 1, append("  phasekit:region: nyc3\n"),
        f"phasekit:region: unknown key; allowed: {PHASE1_KEYS}"),
    Bad("bare-unknown-key", 1, append("  regoin: nyc3\n"),
        f"phasekit:regoin: unknown key; allowed: {PHASE1_KEYS}"),
    Bad("phase2-key-in-phase1", 1, append("  phasekit:appTier:\n    size: s-2vcpu-2gb\n"),
        f"phasekit:appTier: unknown key; allowed: {PHASE1_KEYS} (did you mean 'phasekit:app'?)"),
    Bad("phase3-key-in-phase2", 2, append("  phasekit:workload:\n    minReplicas: 2\n"),
        "phasekit:workload: unknown key; allowed: phasekit:app, phasekit:appTier, phasekit:backups, phasekit:database, "
        "phasekit:droplets, phasekit:edge, phasekit:phase, phasekit:protect, phasekit:redis, phasekit:secrets, "
        "phasekit:services, phasekit:sshPrivateKey, phasekit:tags"),
    Bad("phase1-key-in-phase3", 3, append("  phasekit:vps:\n    region: nyc3\n"),
        "phasekit:vps: unknown key; allowed: phasekit:alertEmails, phasekit:app, phasekit:aws, phasekit:backups, "
        "phasekit:cache, "
        "phasekit:cluster, phasekit:database, phasekit:edge, phasekit:loadBalancer, phasekit:phase, "
        "phasekit:protect, phasekit:secrets, phasekit:sshPrivateKey, phasekit:tags, phasekit:workload"),
    Bad("protect-not-bool", 1, sub("phasekit:protect: true", "phasekit:protect: maybe"),
        "phasekit:protect: 'maybe' is not true or false; allowed: true or false"),
    # --- wrong nesting and wrong section ------------------------------------------------------------------
    Bad("key-in-wrong-section", 1, after("    dbPoolSize: 5", "    backups: true\n"),
        f"phasekit:app.backups: unknown key; allowed: {APP_KEYS}"),
    Bad("section-flattened", 1, sub("    region: nyc3", "  region: nyc3"),
        "{file}:{line1}:9: not valid YAML: mapping values are not allowed here",
        lines=(("size: s-1vcpu-2gb", 1),)),
    Bad("app-null", 1, section("phasekit:app", "  phasekit:app:\n"),
        f"phasekit:app: null is not a mapping; allowed: a mapping with keys {APP_KEYS}"),
    Bad("app-empty-string", 1, section("phasekit:app", "  phasekit:app: ''\n"),
        f"phasekit:app: '' is not a mapping; allowed: a mapping with keys {APP_KEYS}"),
    Bad("edge-empty-list", 1, section("phasekit:edge", "  phasekit:edge: []\n"),
        "phasekit:edge: [] is not a mapping; allowed: a mapping with keys accountId, hostname, "
        "manageZoneSettings, proxied, zoneId"),
    Bad("edge-empty-mapping", 1, section("phasekit:edge", "  phasekit:edge: {}\n"),
        "invalid stack config (3 problems):\n  phasekit:edge.zoneId: missing; allowed: 32 lowercase hex characters, "
        "as the Cloudflare dashboard shows it\n  phasekit:edge.accountId: missing; allowed: 32 lowercase hex "
        "characters, as the Cloudflare dashboard shows it\n  phasekit:edge.hostname: missing; allowed: a lowercase "
        "fully qualified domain name of two or more labels of a-z, 0-9 and '-', e.g. app.example.com"),
    Bad("edge-null", 1, section("phasekit:edge", "  phasekit:edge:\n"),
        "phasekit:edge: null is not a mapping; allowed: a mapping with keys accountId, hostname, "
        "manageZoneSettings, proxied, zoneId"),
    Bad("env-null", 1, sub("    env:\n      LOG_LEVEL: info\n", "    env:\n"),
        "phasekit:app.env: null is not a mapping; allowed: a mapping of NAME: value, e.g. {LOG_LEVEL: info}"),
    Bad("cidrs-empty-list", 1, sub("    sshAdminCidrs:\n      - 203.0.113.0/24\n", "    sshAdminCidrs: []\n"),
        "phasekit:vps.sshAdminCidrs: [] is empty; allowed: one or more networks you administer from, "
        "e.g. [203.0.113.0/24]"),
    Bad("cidrs-string-not-list", 1, sub("    sshAdminCidrs:\n      - 203.0.113.0/24\n",
                                        "    sshAdminCidrs: 203.0.113.0/24\n"),
        "phasekit:vps.sshAdminCidrs: '203.0.113.0/24' is not a list; allowed: one or more networks you administer "
        "from, e.g. [203.0.113.0/24]"),
    # --- numbers where strings are wanted, and the reverse --------------------------------------------------
    Bad("port-word", 1, sub("    port: 8000", "    port: eighty"),
        "phasekit:app.port: 'eighty' is not an integer; allowed: 1..65535"),
    Bad("port-fraction", 1, sub("    port: 8000", "    port: 8000.5"),
        "phasekit:app.port: 8000.5 is not an integer; allowed: 1..65535"),
    Bad("hostname-number", 1, sub("    hostname: app.example.com", "    hostname: 12345"),
        "phasekit:edge.hostname: 12345 is not a string; allowed: a lowercase fully qualified domain name of two or "
        "more labels of a-z, 0-9 and '-', e.g. app.example.com"),
    Bad("env-value-number", 1, sub("      LOG_LEVEL: info", "      WORKERS: 4"),
        "phasekit:app.env.WORKERS: 4 is not a string; allowed: a string (quote numbers and booleans in YAML, "
        "e.g. '4' or 'true')"),
    Bad("tag-value-fraction", 1, append("  tags: {cost-center: 12.5}\n"),
        f"phasekit:tags.cost-center: 12.5 is not a string; allowed: {TAG_PART}"),
    Bad("tag-value-bool", 1, append("  tags: {billable: true}\n"),
        f"phasekit:tags.billable: true is not a string; allowed: {TAG_PART}"),
    Bad("tag-value-upper-case", 1, append("  phasekit:tags: {team: Web}\n"),
        f"phasekit:tags.team: 'Web' is not a tag value; allowed: {TAG_PART}"),
    Bad("engine-version-too-old", 3, after("    instanceClass: db.t4g.medium", "    engineVersion: 13\n"),
        "phasekit:database.engineVersion: '13' is not a supported PostgreSQL major version; allowed: a PostgreSQL "
        "major version 14..17"),
    Bad("engine-version-fraction", 3, after("    instanceClass: db.t4g.medium", "    engineVersion: 16.4\n"),
        "phasekit:database.engineVersion: 16.4 is not a string; allowed: a PostgreSQL major version 14..17"),
    Bad("cpu-finer-than-a-millicore", 3, sub("    cpuRequest: 250m", "    cpuRequest: 0.0001"),
        "phasekit:workload.cpuRequest: '0.0001' is not a Kubernetes quantity phasekit reads; allowed: millicores "
        "like 250m, or whole cores like 2"),
    Bad("cpu-negative", 3, sub("    cpuRequest: 250m", "    cpuRequest: -1"),
        "phasekit:workload.cpuRequest: '-1' is not a Kubernetes quantity phasekit reads; allowed: millicores like "
        "250m, or whole cores like 2"),
    Bad("cpu-bool", 3, sub("    cpuRequest: 250m", "    cpuRequest: true"),
        "phasekit:workload.cpuRequest: true is not a string; allowed: millicores like 250m, or whole cores like 2"),
    Bad("eks-version-number", 3, sub('    version: "1.35"', "    version: 1.30"),
        "phasekit:cluster.version: 1.3 is a number; allowed: one of '1.33', '1.34', '1.35', '1.36' (quoted in "
        "YAML), since YAML reads 1.30 as 1.3"),
    Bad("app-tier-count-zero", 2, sub("    count: 2", "    count: 0"),
        "phasekit:appTier.count: 0 is out of range; allowed: 1..10"),
    # --- env names ----------------------------------------------------------------------------------------
    Bad("env-lower-case-non-proxy", 1, sub("      LOG_LEVEL: info", "      log_level: info"),
        f"phasekit:app.env.log_level: 'log_level' is not an environment variable name; allowed: {ENV_NAMES} "
        "(did you mean 'LOG_LEVEL'?)"),
    Bad("env-mixed-case-proxy", 1, sub("      LOG_LEVEL: info", "      Http_Proxy: http://proxy:3128"),
        f"phasekit:app.env.Http_Proxy: 'Http_Proxy' is not an environment variable name; allowed: {ENV_NAMES} "
        "(did you mean 'HTTP_PROXY'?)"),
    Bad("env-unicode-name", 1, sub("      LOG_LEVEL: info", "      CAFÉ_MENU: yes-please"),
        f"phasekit:app.env.CAFÉ_MENU: 'CAFÉ_MENU' is not an environment variable name; allowed: {ENV_NAMES}"),
    Bad("unicode-config-key", 1, append("  phasekit:région: nyc3\n"),
        f"phasekit:région: unknown key; allowed: {PHASE1_KEYS}"),
    Bad("very-long-value", 1, sub("    region: nyc3", "    region: " + "x" * 300),
        "phasekit:vps.region: '" + "x" * 76 + "... is not a DigitalOcean region; allowed: one of ams2, ams3, blr1, "
        "fra1, lon1, nyc1, nyc2, nyc3, sfo1, sfo2, sfo3, sgp1, syd1, tor1"),
    # --- secrets ------------------------------------------------------------------------------------------
    Bad("secrets-a-string", 1, append("  phasekit:secrets: hunter2\n"),
        f"phasekit:secrets: not a mapping; allowed: {SECRETS_ALLOWED}"),
    Bad("secrets-a-list", 1, append("  phasekit:secrets: [SECRET_KEY_BASE]\n"),
        f"phasekit:secrets: not a mapping; allowed: {SECRETS_ALLOWED}"),
    Bad("secrets-null", 1, append("  phasekit:secrets:\n"), f"phasekit:secrets: empty; allowed: {SECRETS_ALLOWED}"),
    Bad("secret-empty-string", 1, append("  phasekit:secrets: {SECRET_KEY_BASE: \"\"}\n"),
        "phasekit:secrets.SECRET_KEY_BASE: empty; allowed: a secret value set with: pulumi config set --secret "
        "--path 'secrets.SECRET_KEY_BASE'"),
    Bad("secret-null", 1, append("  phasekit:secrets:\n    SECRET_KEY_BASE:\n"),
        "phasekit:secrets.SECRET_KEY_BASE: empty; allowed: a secret value set with: pulumi config set --secret "
        "--path 'secrets.SECRET_KEY_BASE'"),
    Bad("secret-plain-text", 1, append("  phasekit:secrets: {SECRET_KEY_BASE: hunter2}\n"),
        "phasekit:secrets.SECRET_KEY_BASE: plain-text secret in the stack file; set it with: pulumi config set "
        "--secret --path 'secrets.SECRET_KEY_BASE'"),
    Bad("secret-nested-mapping", 1, append("  phasekit:secrets: {SECRET_KEY_BASE: {value: hunter2}}\n"),
        "phasekit:secrets.SECRET_KEY_BASE: plain-text secret in the stack file; set it with: pulumi config set "
        "--secret --path 'secrets.SECRET_KEY_BASE'"),
    Bad("secrets-secure-not-text", 1, append("  phasekit:secrets: {secure: 12345}\n"),
        "phasekit:secrets: not an encrypted value Pulumi wrote; allowed: {secure: <ciphertext>} alone, as pulumi "
        "config set --secret writes it"),
    Bad("secret-entry-secure-with-another-key", 1,
        append(f"  phasekit:secrets:\n    SECRET_KEY_BASE: {{secure: {'v1:AAAA'}, note: rotated}}\n"),
        "phasekit:secrets.SECRET_KEY_BASE: not an encrypted value Pulumi wrote; allowed: {secure: <ciphertext>} "
        "alone, as pulumi config set --secret writes it"),
    Bad("provider-token-secure-empty", 1, append("  cloudflare:apiToken: {secure: }\n"),
        "cloudflare:apiToken: empty; allowed: a value set with: pulumi config set --secret cloudflare:apiToken"),
    Bad("ssh-private-key-plain", 1, append("  sshPrivateKey: hunter2\n"),
        "phasekit:sshPrivateKey: plain-text secret in the stack file; set it with: pulumi config set --secret "
        "sshPrivateKey"),
    Bad("ssh-private-key-empty", 1, append("  phasekit:sshPrivateKey: ''\n"),
        "phasekit:sshPrivateKey: empty; allowed: a private key set with: pulumi config set --secret sshPrivateKey"
        ", or no sshPrivateKey (the rollout then uses the SSH agent)"),
    Bad("provider-token-plain", 1, append("  digitalocean:token: dop_v1_hunter2\n"),
        "digitalocean:token: plain-text secret in the stack file; set it with: pulumi config set --secret "
        "digitalocean:token"),
    Bad("provider-token-empty", 1, append("  cloudflare:apiToken: ''\n"),
        "cloudflare:apiToken: empty; allowed: a value set with: pulumi config set --secret cloudflare:apiToken"),
    Bad("encrypted-value-in-plain-field", 1, sub("    hostname: app.example.com", "    hostname: {secure: v1:AAAA}"),
        "phasekit:edge.hostname: an encrypted value cannot be used here; allowed: a lowercase fully qualified "
        "domain name of two or more labels of a-z, 0-9 and '-', e.g. app.example.com (app secrets go under "
        "phasekit:secrets, named in app.secretEnv)"),
    Bad("password-in-plain-env", 1, sub("      LOG_LEVEL: info", "      DB_PASSWORD: hunter2"),
        "phasekit:app.env.DB_PASSWORD: plain-text secret in the stack file; set it with: pulumi config set --secret "
        "--path 'secrets.DB_PASSWORD', and list DB_PASSWORD in app.secretEnv instead of app.env"),
    Bad("token-in-plain-env", 1, sub("      LOG_LEVEL: info", "      STRIPE_API_TOKEN: hunter2"),
        "phasekit:app.env.STRIPE_API_TOKEN: plain-text secret in the stack file; set it with: pulumi config set "
        "--secret --path 'secrets.STRIPE_API_TOKEN', and list STRIPE_API_TOKEN in app.secretEnv instead of app.env"),
    Bad("secret-key-base-in-plain-env", 1, sub("      LOG_LEVEL: info", "      RAILS_SECRET_KEY_BASE: hunter2"),
        "phasekit:app.env.RAILS_SECRET_KEY_BASE: plain-text secret in the stack file; set it with: pulumi config "
        "set --secret --path 'secrets.RAILS_SECRET_KEY_BASE', and list RAILS_SECRET_KEY_BASE in app.secretEnv "
        "instead of app.env"),
    Bad("secure-empty-string-ssh-key", 1, append("  phasekit:sshPrivateKey: {secure: \"\"}\n"),
        "phasekit:sshPrivateKey: empty; allowed: a private key set with: pulumi config set --secret sshPrivateKey"
        ", or no sshPrivateKey (the rollout then uses the SSH agent)"),
    Bad("secure-empty-string-secret-entry", 1, append("  phasekit:secrets: {SECRET_KEY_BASE: {secure: ''}}\n"),
        "phasekit:secrets.SECRET_KEY_BASE: empty; allowed: a secret value set with: pulumi config set --secret "
        "--path 'secrets.SECRET_KEY_BASE'"),
    Bad("secure-empty-string-whole-secrets", 1, append("  phasekit:secrets: {secure: ''}\n"),
        f"phasekit:secrets: empty; allowed: {SECRETS_ALLOWED}"),
    Bad("secure-empty-string-provider-token", 1, append("  digitalocean:token: {secure: ''}\n"),
        "digitalocean:token: empty; allowed: a value set with: pulumi config set --secret digitalocean:token"),
    # --- read as the Pulumi CLI reads it: aliasing, top-level keys, YAML 1.2 scalars -----------------------
    Bad("anchor-contains-itself", 1, append("  phasekit:tags: &loop {team: *loop}\n"),
        "{file}:{line1}:18: not valid YAML: anchor 'loop' value contains itself",
        lines=(("&loop", 1),)),
    Bad("misspelt-config-section", 1, sub("\nconfig:\n", "\nconifg:\n"),
        "{file}:{line1}:1: conifg: unknown top-level key; allowed: config, encryptedkey, encryptionsalt, "
        "environment, secretsprovider (did you mean 'config'?)", lines=(("conifg:", 1),)),
    Bad("config-key-above-config", 1, sub("\nconfig:\n", "\nphasekit:phase: 1\nconfig:\n"),
        "{file}:{line1}:1: phasekit:phase: unknown top-level key; allowed: config, encryptedkey, encryptionsalt, "
        "environment, secretsprovider (a config key goes under config:)", lines=(("phasekit:phase: 1", 1),)),
    Bad("capitalised-top-level-key", 1, sub("\nconfig:\n", "\nConfig:\n"),
        "{file}:{line1}:1: Config: unknown top-level key; allowed: config, encryptedkey, encryptionsalt, "
        "environment, secretsprovider (did you mean 'config'?)", lines=(("Config:", 1),)),
    Bad("yaml-1-1-no-is-a-string", 1, sub("    region: nyc3", "    region: no"),
        "phasekit:vps.region: 'no' is not a DigitalOcean region; allowed: one of ams2, ams3, blr1, fra1, lon1, "
        "nyc1, nyc2, nyc3, sfo1, sfo2, sfo3, sgp1, syd1, tor1"),
]


@pytest.mark.parametrize("case", BAD, ids=[case.id for case in BAD])
def test_bad_stack_file_is_refused_with_one_exact_message(capsys, tmp_path: Path, case: Bad) -> None:
    project = write_project(tmp_path, case.phase, case.edit)
    status, out, err = plan(capsys, project)
    assert (status, out) == (1, "")
    assert err == "error: " + case.expected(project / "Pulumi.dev.yaml") + "\n"


def test_there_are_at_least_sixty_bad_stack_files_across_all_three_phases() -> None:
    assert len(BAD) >= 60 and {case.phase for case in BAD} == {1, 2, 3}
    assert len({case.id for case in BAD}) == len(BAD)


# --- valid unusual stacks -------------------------------------------------------------------------------------

SEALED = "v1:SEALEDciphertextNeverShown"
"""A ``secure:`` value; neither it nor the offline placeholder may reach the plan's output."""


@dataclass(frozen=True)
class Good:
    id: str
    phase: int
    edit: Edit
    shows: tuple[str, ...] = ()
    """Text the plan prints (whitespace runs folded to one space, since the plan wraps long lines)."""

    encoding: str = "utf-8"
    newline: str = "\n"


FOREIGN = f"""  digitalocean:token: {{secure: {SEALED}}}
  cloudflare:apiToken: {{secure: {SEALED}}}
  aws:region: us-east-1
  kubernetes:context: dev
  pulumi:tags: {{owner: web}}
  random:seed: "42"
  tls:algorithm: ECDSA
  command:shell: /bin/sh
"""

GOOD: list[Good] = [
    Good("numeric-engine-version", 3, after("    instanceClass: db.t4g.medium", "    engineVersion: 16\n")),
    # Two whole cores per pod need nodes larger than the committed t3.large to hold the HPA's maximum.
    Good("numeric-whole-cores", 3, chain(sub("    cpuRequest: 250m", "    cpuRequest: 2"),
                                         sub("instanceTypes: [t3.large]", "instanceTypes: [m7i.2xlarge]"))),
    Good("numeric-half-core", 3, sub("    cpuRequest: 250m", "    cpuRequest: 0.5")),
    Good("numeric-tag-value-under-a-bare-key", 1, append("  tags: {cost-center: 1234}\n"), shows=("cost-center",)),
    Good("lower-case-proxies", 2, after("      LOG_LEVEL: info", "      http_proxy: http://proxy.internal:3128\n"
                                        "      https_proxy: http://proxy.internal:3128\n"
                                        "      no_proxy: localhost,127.0.0.1\n")),
    Good("every-key-bare", 2, sub("  phasekit:", "  ", count=8)),
    Good("old-config-form", 1, sub("  phasekit:protect: true", "  phasekit:config:protect: true")),
    Good("whole-secrets-object-encrypted", 1, append(f"  phasekit:secrets: {{secure: {SEALED}}}\n")),
    Good("secret-entries-encrypted", 1, append(f"  phasekit:secrets:\n    SECRET_KEY_BASE: {{secure: {SEALED}}}\n"
                                               f"  phasekit:sshPrivateKey: {{secure: {SEALED}}}\n")),
    Good("foreign-namespaces", 3, append(FOREIGN)),
    Good("comments-anchors-and-merge", 1, chain(
        sub("    sshAdminCidrs:\n", "    sshAdminCidrs: &admins  # the office\n"),
        append("  # merged keys may be overridden: that is not a duplicate\n"
               "  phasekit:tags:\n    <<: {team: shop, tier: web}\n    team: web  # overrides the merge\n"))),
    Good("crlf-line-endings", 2, lambda text: text, newline="\r\n"),
    Good("byte-order-mark", 3, lambda text: text, encoding="utf-8-sig"),
    Good("secret-looking-plain-env-is-a-warning", 1, after("      LOG_LEVEL: info",
                                                            "      STRIPE_API_KEY: sk_live_abc123\n"),
         shows=("phasekit:app.env.STRIPE_API_KEY: looks like a secret but is plain text in the stack file; move it "
                "to secretEnv: pulumi config set --secret --path 'secrets.STRIPE_API_KEY', and list "
                "STRIPE_API_KEY in app.secretEnv",)),
    # Settings about secrets, not secrets: neither refused nor warned about.
    Good("settings-named-after-secrets", 1, after("      LOG_LEVEL: info",
                                                   "      OPENAI_MAX_TOKENS: \"4096\"\n"
                                                   "      PASSWORD_MIN_LENGTH: \"12\"\n"
                                                   "      AUTH_TOKEN_TTL: \"3600\"\n"
                                                   "      SECRET_ROTATION_DAYS: \"30\"\n")),
    Good("secret-word-inside-a-name-is-a-warning", 1, after("      LOG_LEVEL: info",
                                                             "      DB_PASSWORD_OLD: hunter2\n"),
         shows=("phasekit:app.env.DB_PASSWORD_OLD: looks like a secret but is plain text in the stack file; move it "
                "to secretEnv: pulumi config set --secret --path 'secrets.DB_PASSWORD_OLD', and list "
                "DB_PASSWORD_OLD in app.secretEnv",)),
    # The Pulumi CLI (yaml.v3, YAML 1.2) reads on/off/yes/no/y/n and 1:30 as strings, not booleans or base 60.
    Good("yaml-1-1-booleans-and-base-60-are-strings", 1, after("      LOG_LEVEL: info",
                                                                "      FEATURE_X: on\n      LEGACY_UI: off\n"
                                                                "      ASK: yes\n      QUIET: n\n"
                                                                "      WINDOW: 1:30\n")),
]


@pytest.mark.parametrize("case", GOOD, ids=[case.id for case in GOOD])
def test_unusual_but_valid_stack_file_plans_cleanly_with_secrets_masked(capsys, tmp_path: Path, case: Good) -> None:
    project = write_project(tmp_path, case.phase, case.edit, encoding=case.encoding, newline=case.newline)
    status, out, err = plan(capsys, project)
    assert (status, err) == (0, "")
    assert f"phasekit plan: stack dev (phase {case.phase})" in out
    assert "SEALED" not in out and "offline-plan-placeholder" not in out
    folded = " ".join(out.split())
    for text in case.shows:
        assert text in folded


def test_there_are_at_least_ten_valid_unusual_stack_files() -> None:
    assert len(GOOD) >= 10 and {case.phase for case in GOOD} == {1, 2, 3}


# --- a guardrail failed by a config value names the key ----------------------------------------------------


@pytest.mark.parametrize(("phase", "resource", "key"), [
    (1, "vps-droplet", "phasekit:vps.backups"),
    (2, "split-db", "phasekit:droplets.backups"),
])
def test_backups_off_fails_the_guardrail_naming_the_key(capsys, tmp_path: Path, phase: int, resource: str,
                                                         key: str) -> None:
    project = write_project(tmp_path, phase, chain(sub("    backups: true", "    backups: false"),
                                                   sub("    backupPlan: weekly\n", "")))
    status, out, err = plan(capsys, project)
    assert (status, err) == (3, "")
    assert (f"[mandatory] backups-kept: {resource}: a data volume is attached but backups is not true: the nightly "
            f"pg_dump on the root disk would have no copy (set by {key})") in " ".join(out.split())


# --- an alias bomb is refused at once --------------------------------------------------------------------------


def alias_bomb(text: str) -> str:
    """Nine levels of nine aliases (9**9 values once expanded) under a foreign key, then used by phasekit:tags."""
    levels = ["    l0: &l0 [x, x, x, x, x, x, x, x, x]\n"]
    for level in range(1, 9):
        levels.append(f"    l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]\n")
    return text + "  bomb:lol:\n" + "".join(levels) + "  phasekit:tags: {z: *l8}\n"


def test_an_alias_bomb_is_refused_at_once_as_the_pulumi_cli_refuses_it(capsys, tmp_path: Path) -> None:
    project = write_project(tmp_path, 1, alias_bomb)

    def too_slow(signum: int, frame: object) -> None:
        raise TimeoutError("the alias bomb was expanded")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        started = time.monotonic()
        status, out, err = plan(capsys, project)
        elapsed = time.monotonic() - started
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert (status, out) == (1, "")
    assert err == (f"error: {project / 'Pulumi.dev.yaml'}: not valid YAML: document contains excessive aliasing "
                   "(aliases expand it to more than 100000 values)\n")
    assert elapsed < 2.0
