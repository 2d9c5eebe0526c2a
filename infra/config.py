"""The stack config: one frozen, typed model tree per phase, loaded from a stack file's ``config:`` mapping.

Users write camelCase keys under the ``phasekit:`` namespace; Python code reads snake_case attributes. As in the
Pulumi CLI, a key without a namespace belongs to the project (``tags`` is ``phasekit:tags``). Keys of other
namespaces (``digitalocean:``, ``cloudflare:``, ``aws:``, ``kubernetes:``, ``pulumi:``, ...) are ignored, except a
near miss of ``phasekit`` (``phaskit:app``, ``phasekit.appTier``), which is reported as written. The secret-bearing
keys ``phasekit:secrets`` and ``phasekit:sshPrivateKey`` never become model fields: the program reads them with
``require_secret``; an empty one is reported as empty. ``load_config`` is pure, so tests run without the Pulumi
runtime. ``config_warnings`` lists what is valid but probably unmeant (a plain env entry that looks secret).

Error messages. Every problem is one line::

    <key as the user writes it>: <the bad value, quoted> <what is wrong>; allowed: <what is allowed>

for example ``phasekit:vps.sshAdminCidrs[0]: '0.0.0.0/0' opens SSH to the whole internet; allowed: ...``.
Missing keys read ``<key>: missing; allowed: ...`` and unknown keys ``<key>: unknown key; allowed: <the
keys that level accepts>``. A ``ConfigError`` with one problem is exactly that line; with several, the first
line is ``invalid stack config (<n> problems):`` and each problem follows on its own line, indented by two
spaces. Plain-text secrets are reported by key only, never with their value.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter, ValidationError

from infra.config_base import (  # noqa: F401  (the model tree is imported from here)
    BACKUP_PASSPHRASE_MIN_LENGTH,
    BACKUP_PASSPHRASE_SECRET,
    MAX_POSTGRES_CONNECTIONS,
    REGISTRY_PASSWORD_SECRET,
    App,
    Backups,
    ConfigModel,
    Edge,
    PhaseStack,
    Registry,
)
from infra.config_droplets import (  # noqa: F401
    AppTier,
    Database,
    DropletAccess,
    Phase1Stack,
    Phase2Stack,
    Redis,
    Services,
    SlackAlerts,
    Vps,
)
from infra.config_keys import NAMESPACE, SECRET_KEYS, is_secure_value, pulumi_path, qualify_key, show_value
from infra.config_messages import describe_problem, without_consequences
from infra.config_phase3 import (  # noqa: F401
    Aws,
    Cache,
    Cluster,
    NodeGroup,
    Phase3Stack,
    RdsDatabase,
    Workload,
    phase3_warnings,
)
from infra.errors import ConfigError

# pydantic's discriminated union picks the phase's model from `phase`.
StackConfig = Annotated[Union[Phase1Stack, Phase2Stack, Phase3Stack], Field(discriminator="phase")]  # noqa: UP007

_STACK_CONFIG = TypeAdapter(StackConfig)


def _union_members(annotated: Any) -> tuple[type[PhaseStack], ...]:
    member = typing.get_args(annotated)[0]
    return typing.get_args(member) or (member,)


_MODELS_BY_PHASE: dict[int, type[PhaseStack]] = {
    typing.get_args(model.model_fields["phase"].annotation)[0]: model for model in _union_members(StackConfig)
}

IMPLEMENTED_PHASES: tuple[int, ...] = tuple(sorted(_MODELS_BY_PHASE))
"""Phases this version can deploy, derived from ``StackConfig``'s members."""


def load_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a stack file's ``config:`` mapping into the model of its phase.

    Raises ``ConfigError`` listing every problem found: plain-text secrets, an unusable phase, and each bad
    key of the phase's model.
    """
    raw, problems = _qualified(raw)
    slips = list(_namespace_slips(raw))
    problems += [slip.message for slip in slips]
    problems += _plain_text_secrets(raw)
    slipped_keys = {slip.key for slip in slips}
    settings = {
        key.removeprefix(f"{NAMESPACE}:"): value
        for key, value in raw.items()
        if key.startswith(f"{NAMESPACE}:") and key.removeprefix(f"{NAMESPACE}:") not in SECRET_KEYS
        and key not in slipped_keys
    }
    # A key the user meant but misspelt is reported once, as the slip, not again as missing.
    meant = {name for slip in slips for name in slip.meant}
    phase, phase_problem = _read_phase(settings)
    config = None
    if phase_problem is not None and "phase" not in meant:
        problems.append(phase_problem)
    elif phase_problem is None:
        try:
            config = _STACK_CONFIG.validate_python({**settings, "phase": phase}, by_name=False)
        except ValidationError as error:
            model = _MODELS_BY_PHASE[phase]
            problems.extend(
                describe_problem(detail, model)
                for detail in without_consequences(error.errors())
                if not (detail["type"] == "missing" and len(detail["loc"]) == 2 and detail["loc"][1] in meant)
            )
    if problems or config is None:
        raise ConfigError(*problems)
    return config


def config_warnings(raw: Mapping[str, Any], config: StackConfig, *, today: date | None = None,
                    standard_support_ends: Mapping[str, date] | None = None) -> list[str]:
    """Things a valid stack file probably did not mean, one line each, naming the key (never the value).

    Today: a plain ``app.env`` entry whose name or value looks like a secret (see ``_secret_looking_env``); in
    phase 3, an instance type the node-fit check cannot size, and (given ``today`` and the dated
    ``standard_support_ends``, which phasekit's price catalog holds and infra does not read) a ``cluster.version``
    past EKS standard support under ``supportType: STANDARD`` (``infra.config_phase3.phase3_warnings``).
    """
    warnings = [_secret_looking_env_warning(name, why) for name, why in _secret_looking_env(config.app.env)]
    if isinstance(config, Phase3Stack):
        warnings += phase3_warnings(config, today=today, standard_support_ends=standard_support_ends)
    return warnings


def check_secrets_encrypted(raw: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` if the stack file holds a secret in plain text rather than as ``{secure: ...}``."""
    problems = _plain_text_secrets(_qualified(raw)[0])
    if problems:
        raise ConfigError(*problems)


def required_secret_names(config: StackConfig) -> list[str]:
    """Entries ``phasekit:secrets`` must hold: every ``app.secretEnv`` name, then the registry password, then
    the backup passphrase (every phase), then the Slack webhooks of the droplets' alerts (phases 1 and 2), each
    name once."""
    registry = [REGISTRY_PASSWORD_SECRET] if config.app.registry is not None else []
    slack = [channel.webhook for channel in alert_slack(config)]
    names = [*config.app.secret_env, *registry, BACKUP_PASSPHRASE_SECRET, *slack]
    return list(dict.fromkeys(names))


def alert_access(config: StackConfig) -> DropletAccess | None:
    """The droplets' access and alert settings (``vps`` in phase 1, ``droplets`` in phase 2); None in phase 3."""
    if isinstance(config, Phase1Stack):
        return config.vps
    if isinstance(config, Phase2Stack):
        return config.droplets
    return None


def alert_slack(config: StackConfig) -> tuple[SlackAlerts, ...]:
    """The Slack channels the droplets' alerts go to (none in phase 3)."""
    access = alert_access(config)
    return access.alert_slack if access is not None else ()


def secret_env_names_missing(raw: Mapping[str, Any], config: StackConfig) -> list[str]:
    """``required_secret_names`` with no entry under ``phasekit:secrets``, in that order.

    When ``phasekit:secrets`` is encrypted as one value its entries cannot be seen, and none are reported.
    """
    secrets = raw.get(f"{NAMESPACE}:secrets")
    if is_secure_value(secrets):
        return []
    present = set(secrets) if isinstance(secrets, Mapping) else set()
    return [name for name in required_secret_names(config) if name not in present]


def secret_placeholder_names(raw: Mapping[str, Any], config: StackConfig) -> list[str]:
    """Entries of ``phasekit:secrets`` an offline run has to stand in for: the missing ones, or every required
    one when the whole mapping is encrypted (its entries cannot be seen, so none is reported missing)."""
    if is_secure_value(raw.get(f"{NAMESPACE}:secrets")):
        return required_secret_names(config)
    return secret_env_names_missing(raw, config)


_MISSING = object()


# --- keys as the Pulumi CLI reads them ------------------------------------------------------------------


def _qualified(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], list[str]]:
    """``raw`` with every key namespaced (``tags`` -> ``phasekit:tags``), as ``phasekit.stack_file`` reads a
    stack file; here for callers that hand ``load_config`` a mapping of their own."""
    qualified: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        full = qualify_key(key) if isinstance(key, str) else None
        if full is None:
            problems.append(f"{show_value(key)}: not a config key; allowed: <namespace>:<name>, e.g. phasekit:phase")
        elif full in qualified:
            problems.append(f"{key}: duplicate key: it is {full}, which is already set; allowed: each key once")
        else:
            qualified[full] = value
    return qualified, problems


# Namespaces of the providers and tools a phasekit stack configures; never mistaken for a misspelt phasekit.
_KNOWN_NAMESPACES = frozenset({"aws", "cloudflare", "command", "digitalocean", "kubernetes", "pulumi", "random",
                               "tls"})


@dataclass(frozen=True)
class _Slip:
    key: str
    """The config key as read (with its namespace)."""

    message: str
    meant: tuple[str, ...]
    """phasekit keys the user probably meant to set, whose absence is then not reported again."""


def _looks_like_namespace(word: str) -> bool:
    """``phasekit`` itself, or a word close enough to be it misspelt (``phaskit``, ``Phasekit``)."""
    if word in _KNOWN_NAMESPACES:
        return False
    return word.lower() == NAMESPACE or difflib.SequenceMatcher(None, word.lower(), NAMESPACE).ratio() >= 0.8


def _namespace_slips(raw: Mapping[str, Any]) -> Iterator[_Slip]:
    """Keys that almost name a phasekit key: ``phaskit:app``, ``Phasekit:app``, ``phasekit.appTier`` (which the
    Pulumi CLI reads as the project key ``phasekit:phasekit.appTier``), a nested ``phasekit:`` mapping."""
    for key, value in raw.items():
        namespace, _, name = key.partition(":")
        if namespace != NAMESPACE and _looks_like_namespace(namespace):
            yield _Slip(key, f"{key}: unknown namespace {namespace!r}; allowed: {NAMESPACE} for phasekit's keys "
                             f"(did you mean '{NAMESPACE}:{name}'?)", (name.split(".")[0],))
        elif namespace != NAMESPACE:
            continue
        elif name == "":
            yield _Slip(key, f"{key}: no key name after the namespace; allowed: {NAMESPACE}:<name>, "
                             f"e.g. {NAMESPACE}:phase", ())
        elif name.lower() == NAMESPACE:
            meant = tuple(str(inner) for inner in value) if isinstance(value, Mapping) else ()
            yield _Slip(key, f"{name}: unknown key (the Pulumi CLI reads it as {NAMESPACE}:{name}); allowed: each "
                             f"phasekit key directly under config:, written {NAMESPACE}:<name>, e.g. {NAMESPACE}:phase",
                        meant)
        elif "." in name and _looks_like_namespace(name.split(".")[0]):
            rest = name.split(".", 1)[1]
            yield _Slip(key, f"{name}: unknown key; allowed: {NAMESPACE}:<name>, with ':' after the namespace "
                             f"(did you mean '{NAMESPACE}:{rest}'?)", (rest.split(".")[0],))


def _read_phase(settings: Mapping[str, Any]) -> tuple[int, None] | tuple[None, str]:
    value = settings.get("phase", _MISSING)
    allowed = ", ".join(str(phase) for phase in IMPLEMENTED_PHASES)
    if value is _MISSING:
        return None, f"{NAMESPACE}:phase: missing; allowed: {allowed}"
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        number = int(value)
    if number in _MODELS_BY_PHASE:
        return number, None
    return None, f"{NAMESPACE}:phase: {show_value(value)} is not a phase; allowed: {allowed}"


# --- plain-text secrets ---------------------------------------------------------------------------------------

_PROVIDER_SECRET_KEYS = frozenset(
    {"digitalocean:token", "cloudflare:apiToken", "cloudflare:apiKey", "aws:secretKey", "aws:accessKey"}
)
# Paths whose values name secrets rather than hold them.
_SECRET_NAME_LISTS = frozenset({("app", "secretEnv")})

# What a name ends in when it unmistakably holds a secret, its words joined (so DB_PASSWORD, dbPassword,
# db-password and DBPASSWORD all end in PASSWORD).
_SECRET_ENDINGS = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "SECRETKEY", "SECRETKEYBASE", "PRIVATEKEY")


def _name_words(name: object) -> tuple[str, ...]:
    """``name`` split into upper-case words at '_', '-', '.' and camelCase humps: apiToken -> (API, TOKEN)."""
    humps = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    return tuple(word for word in re.split(r"[_.\-\s]+", humps.upper()) if word)


def _looks_secret(key: object) -> bool:
    """A name that unmistakably holds a secret: it ends in a secret word (``_SECRET_ENDINGS``).

    The rule, for every phasekit key and ``app.env`` name checked in plain text:

    - refused (a hard error): the name ends in TOKEN, PASSWORD, PASSWD, SECRET, SECRET_KEY, SECRET_KEY_BASE or
      PRIVATE_KEY (``DB_PASSWORD``, ``STRIPE_API_TOKEN``, ``CLIENT_SECRET``, ``sshPrivateKey``). The last word says
      what the value is, and these words name nothing but a credential;
    - warned about (``config_warnings``, ``app.env`` only): a secret word inside the name, not last
      (``DB_PASSWORD_OLD``, ``GITHUB_TOKEN_PROD``), unless the last word says the value describes a secret rather
      than holds it (``PASSWORD_MIN_LENGTH``, ``AUTH_TOKEN_TTL``, ``SECRET_ROTATION_DAYS``, ``PASSWORD_RESET_URL``),
      and the endings in ``_SECRET_LOOKING_ENDINGS`` (``*_API_KEY``, ``*_DSN``, ...), which are usually but not
      always credentials;
    - nothing: a secret word only as part of a longer word (``TOKENIZER``), counted (``OPENAI_MAX_TOKENS``:
      TOKENS, unlike SECRETS and PASSWORDS, is not a secret word), or no secret word at all. (``APP_SECRETS``,
      a plural secret word last, is among the warning endings.)
    """
    return "".join(_name_words(key)).endswith(_SECRET_ENDINGS)


def _plain_text_secrets(raw: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, value in raw.items():
        if key == f"{NAMESPACE}:sshPrivateKey" and _is_empty(value):
            problems.append(f"{key}: empty; allowed: a private key set with: pulumi config set --secret "
                            "sshPrivateKey, or no sshPrivateKey (the rollout then uses the SSH agent)")
            continue
        if key == f"{NAMESPACE}:secrets" and _is_empty(value):
            problems.append(f"{key}: empty; allowed: {_SECRETS_ALLOWED}")
            continue
        if value is None or (is_secure_value(value) and not _is_empty_ciphertext(value)):
            continue
        if key in _PROVIDER_SECRET_KEYS and _is_empty(value):
            problems.append(f"{key}: empty; allowed: a value set with: pulumi config set --secret {key}")
        elif _malformed_secure(value) and (key in _PROVIDER_SECRET_KEYS or key.removeprefix(f"{NAMESPACE}:")
                                           in SECRET_KEYS):
            problems.append(_malformed_secure_problem(key))
        elif key in _PROVIDER_SECRET_KEYS:
            problems.append(_plain_text_secret(key, f"{key}"))
        elif key == f"{NAMESPACE}:secrets":
            problems.extend(_plain_text_in_secrets(value))
        elif key == f"{NAMESPACE}:sshPrivateKey":
            problems.append(_plain_text_secret(key, "sshPrivateKey"))
        elif key.startswith(f"{NAMESPACE}:"):
            for path in _secret_looking_leaves((key.removeprefix(f"{NAMESPACE}:"),), value):
                problems.append(_plain_text_phasekit_secret(path))
    return problems


_SECRETS_ALLOWED = "a mapping of NAME to a secret set with: pulumi config set --secret --path 'secrets.<NAME>'"


def _is_empty(value: object) -> bool:
    """Nothing to use as a secret: null, a blank string, or ``{secure: }``/``{secure: ""}`` (no ciphertext)."""
    return value is None or (isinstance(value, str) and not value.strip()) or _is_empty_ciphertext(value)


def _is_empty_ciphertext(value: object) -> bool:
    # `secure: ""` looks encrypted but holds nothing to decrypt: it must not count as a secret that is set.
    return (isinstance(value, Mapping) and set(value) == {"secure"}
            and (value["secure"] is None or (isinstance(value["secure"], str) and not value["secure"].strip())))


def _plain_text_in_secrets(secrets: object) -> list[str]:
    if not isinstance(secrets, Mapping):
        return [f"{NAMESPACE}:secrets: not a mapping; allowed: {_SECRETS_ALLOWED}"]
    problems = []
    for name, value in secrets.items():
        path = pulumi_path(("secrets", str(name)))
        if _is_empty(value):
            # Named as empty, not as plain text: there is nothing to encrypt, and null would reach the app as "None".
            problems.append(f"{NAMESPACE}:{path}: empty; allowed: a secret value set with: "
                            f"pulumi config set --secret --path '{path}'")
        elif _malformed_secure(value):
            problems.append(_malformed_secure_problem(f"{NAMESPACE}:{path}"))
        elif not is_secure_value(value):
            problems.append(_plain_text_phasekit_secret(("secrets", str(name))))
    return problems


def _malformed_secure(value: object) -> bool:
    """A ``secure:`` mapping Pulumi did not write: another key beside it, or a ciphertext that is not text."""
    return isinstance(value, Mapping) and "secure" in value and not is_secure_value(value)


def _malformed_secure_problem(key: str) -> str:
    return (f"{key}: not an encrypted value Pulumi wrote; allowed: {{secure: <ciphertext>}} alone, as "
            "pulumi config set --secret writes it")


def _secret_looking_leaves(path: tuple[str | int, ...], value: object) -> Iterator[tuple[str | int, ...]]:
    if value is None or is_secure_value(value) or path in _SECRET_NAME_LISTS:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_looking_leaves((*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_looking_leaves((*path, index), item)
    elif _looks_secret(path[-1]):
        yield path


def _plain_text_phasekit_secret(path: tuple[str | int, ...]) -> str:
    key = f"{NAMESPACE}:{pulumi_path(path)}"
    if path[:2] == ("app", "env") and len(path) == 3:
        name = path[2]
        return _plain_text_secret(
            key, f"--path 'secrets.{name}', and list {name} in app.secretEnv instead of app.env"
        )
    if len(path) == 1:
        return _plain_text_secret(key, f"{path[0]}")
    return _plain_text_secret(key, f"--path '{pulumi_path(path)}'")


def _plain_text_secret(key: str, set_arguments: str) -> str:
    return f"{key}: plain-text secret in the stack file; set it with: pulumi config set --secret {set_arguments}"


# --- secret-looking plain env (warnings) ----------------------------------------------------------------

# Name endings that usually hold a credential but that `_SECRET_ENDINGS` does not already refuse outright
# (see `_looks_secret`). Matched on whole '_'-separated words at the end of the name, so LOG_LEVEL or
# CACHE_KEY_PREFIX never match.
_SECRET_LOOKING_ENDINGS: tuple[tuple[str, ...], ...] = (
    ("API", "KEY"), ("APIKEY",), ("ACCESS", "KEY"), ("SIGNING", "KEY"), ("ENCRYPTION", "KEY"), ("MASTER", "KEY"),
    ("LICENSE", "KEY"), ("CLIENT", "KEY"), ("DSN",), ("CREDENTIALS",), ("CREDENTIAL",),
    ("CREDS",), ("PASSPHRASE",), ("PWD",), ("AUTH",), ("AUTHORIZATION",), ("COOKIE", "KEY"),
    ("WEBHOOK", "KEY"), ("CONNECTION", "STRING"), ("SECRETS",), ("PASSWORDS",),
)
# Alone, PWD is the shell's working directory and AUTH a switch; only `DB_PWD`, `BASIC_AUTH` count.
_NEEDS_A_PREFIX = frozenset({("PWD",), ("AUTH",)})
# `*_AUTH_*` names that configure authentication rather than hold it (AUTH_URL, OAUTH_ISSUER, ...).
_NOT_SECRET_LAST_WORDS = frozenset({"URL", "URI", "HOST", "PORT", "DOMAIN", "ISSUER", "ENABLED", "MODE", "TYPE",
                                    "PATH", "REGION", "ID", "NAME", "USER", "USERNAME", "TIMEOUT", "TTL", "PROVIDER"})
# Secret words that, inside a name but not last, make it look like a secret (DB_PASSWORD_OLD). TOKENS is left
# out on purpose: OPENAI_MAX_TOKENS and the like count tokens, while SECRETS and PASSWORDS hold them.
_SECRET_WORDS = frozenset({"TOKEN", "PASSWORD", "PASSWD", "SECRET", "SECRETS", "PASSWORDS"})
# Last words saying a name describes a secret rather than holds it (PASSWORD_MIN_LENGTH, AUTH_TOKEN_TTL).
_DESCRIBES_A_SECRET_LAST_WORDS = _NOT_SECRET_LAST_WORDS | frozenset({
    "LENGTH", "LEN", "MIN", "MAX", "TTL", "DAYS", "HOURS", "MINUTES", "SECONDS", "SECS", "MS", "EXPIRY",
    "EXPIRES", "EXPIRATION", "LIFETIME", "AGE", "ROTATION", "INTERVAL", "COUNT", "LIMIT", "SIZE", "FILE", "DIR",
    "HEADER", "FIELD", "PARAM", "ALGORITHM", "POLICY", "VERSION", "KIND", "REQUIRED", "DISABLED", "STRENGTH",
})
# A URL with a password in it (postgres://app:hunter2@db/app): the value is a secret whatever the name.
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:[^/@\s]+@")


def _secret_looking_env(env: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """(name, why) for each plain env entry whose name or value looks like a credential.

    A name the hard check already refuses (``_looks_secret``: it ends in a secret word) never reaches here,
    because ``load_config`` fails first. The whole rule is in ``_looks_secret``'s docstring.
    """
    for name, value in env.items():
        words = tuple(name.upper().split("_"))
        ending = next((ending for ending in _SECRET_LOOKING_ENDINGS
                       if words[-len(ending):] == ending and (len(words) > 1 or ending not in _NEEDS_A_PREFIX)), None)
        auth_inside = "AUTH" in words[:-1] and words[-1] not in _NOT_SECRET_LAST_WORDS
        secret_word_inside = (not _SECRET_WORDS.isdisjoint(words[:-1])
                              or any(words[index:index + 2] == ("PRIVATE", "KEY") for index in range(len(words) - 2))
                              ) and words[-1] not in _DESCRIBES_A_SECRET_LAST_WORDS
        if ending is not None or auth_inside or secret_word_inside:
            yield name, "looks like a secret"
        elif _URL_WITH_PASSWORD.match(value):
            yield name, "holds a URL with a password"


def _secret_looking_env_warning(name: str, why: str) -> str:
    return (f"{NAMESPACE}:app.env.{name}: {why} but is plain text in the stack file; move it to secretEnv: "
            f"pulumi config set --secret --path 'secrets.{name}', and list {name} in app.secretEnv")
