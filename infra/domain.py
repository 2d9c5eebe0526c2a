"""Validated value types for phasekit's stack config, reusable by every phase's model.

Each type is an ``Annotated`` alias: pydantic does the checking, and an :class:`Allowed` marker carries the text
phasekit prints after ``allowed:`` when the value is missing or has the wrong type. Validators fail with
:func:`problem`, whose message is already the final wording (the bad value quoted, what is wrong, what is
allowed); ``infra.config`` only prefixes the key the user wrote. Nothing here reads the Pulumi runtime.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, NamedTuple

from pulumi_digitalocean import DropletSlug, Region
from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError, PydanticKnownError

from components.aws_choices import RFC1918, CacheEngine, NatStrategy  # noqa: F401 - re-exported for the config
from components.compose_stack import CONTRACT_NAMES
from components.processes import (
    CRON_ALLOWED,
    PROCESS_NAME,
    RESERVED_PROCESS_NAMES,
    CronError,
    parse_cron,
    read_cron,
)

PROBLEM_TYPE = "phasekit"
"""The pydantic error type of every :func:`problem`."""


@dataclass(frozen=True)
class Allowed:
    """``Annotated`` marker: what a value may be, worded for the ``allowed:`` part of a config message."""

    text: str
    noun: str | None = None
    """How to name the set when a value is outside it (``'monthly' is not a backup plan``)."""


def problem(message: str, *, at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """A validation error carrying phasekit's final wording.

    ``at`` is a path below the value being validated (camelCase keys, list indexes) for rules that judge a
    whole model or list but blame one part of it.
    """
    # The message travels in the context, not the template, so braces in user input are never formatted.
    return PydanticCustomError(PROBLEM_TYPE, "{message}", {"message": message, "at": at})


def closest_match(value: str, choices: Iterable[str]) -> str | None:
    """The choice ``value`` most likely meant: a case-insensitive equal, else the closest by ``difflib``."""
    options = list(choices)
    by_folded_case = {option.lower(): option for option in options}
    if value.lower() in by_folded_case:
        return by_folded_case[value.lower()]
    close = difflib.get_close_matches(value, options, n=1)
    return close[0] if close else None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming :func:`closest_match`, or ``""`` when nothing is close."""
    match = closest_match(value, choices)
    return f" (did you mean {match!r}?)" if match is not None and match != value else ""


def _refuse_bool(value: object) -> object:
    # pydantic's lax mode reads `true` as 1; in YAML that is a slip, not a number.
    if isinstance(value, bool):
        raise PydanticKnownError("int_type")
    return value


_NOT_BOOL = BeforeValidator(_refuse_bool)

WholeNumber = Annotated[int, _NOT_BOOL]
"""An integer that YAML did not write as true or false."""

Port = Annotated[int, _NOT_BOOL, Field(ge=1, le=65535), Allowed("1..65535")]
WorkerCount = Annotated[int, _NOT_BOOL, Field(ge=1, le=64), Allowed("1..64")]
DbPoolSize = Annotated[int, _NOT_BOOL, Field(ge=1, le=50), Allowed("1..50")]
VolumeSizeGib = Annotated[int, _NOT_BOOL, Field(ge=1, le=16384), Allowed("1..16384")]


def _non_empty(value: str) -> str:
    if not value.strip():
        raise problem(f"{value!r} is empty; allowed: a non-empty string")
    return value


NonEmptyStr = Annotated[str, AfterValidator(_non_empty), Allowed("a non-empty string")]

_HTTP_PATH_ALLOWED = "an absolute URL path without spaces, e.g. /healthz"


def _http_path(value: str) -> str:
    if len(value) > 1024:
        raise problem(f"{value[:40]!r}... is {len(value)} characters long; allowed: {_HTTP_PATH_ALLOWED}, "
                      "at most 1024 characters (the load balancers' limit)")
    if not value.startswith("/"):
        raise problem(f"{value!r} does not start with '/'; allowed: {_HTTP_PATH_ALLOWED}")
    if any(character.isspace() for character in value):
        raise problem(f"{value!r} contains whitespace; allowed: {_HTTP_PATH_ALLOWED}")
    return value


HttpPath = Annotated[str, AfterValidator(_http_path), Allowed(_HTTP_PATH_ALLOWED)]

_IMAGE_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(
    rf"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?/)?{_IMAGE_PATH_COMPONENT}(?:/{_IMAGE_PATH_COMPONENT})*"
)
_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _pinned_image_allowed(name: str) -> str:
    return f"an explicit tag or digest, e.g. {name}:1.4.2 or {name}@sha256:<64 hex>"


_IMAGE_ALLOWED = "a container image with " + _pinned_image_allowed("ghcr.io/acme/shop")


def _image_ref(value: str) -> str:
    name_and_tag, has_digest, digest = value.partition("@")
    tag_colon = name_and_tag.rfind(":")
    # A colon before the last '/' belongs to a registry port (localhost:5000/shop), not to a tag.
    if tag_colon > name_and_tag.rfind("/"):
        name, tag = name_and_tag[:tag_colon], name_and_tag[tag_colon + 1 :]
    else:
        name, tag = name_and_tag, None
    if not _IMAGE_NAME.fullmatch(name):
        raise problem(f"{value!r} is not a container image reference; allowed: {_IMAGE_ALLOWED}")
    if tag is not None and not _IMAGE_TAG.fullmatch(tag):
        raise problem(
            f"{value!r} has an invalid tag {tag!r}; allowed: up to 128 letters, digits, '_', '.' and '-', "
            f"not starting with '.' or '-', e.g. {name}:1.4.2"
        )
    if has_digest:
        if not _IMAGE_DIGEST.fullmatch(digest):
            raise problem(
                f"{value!r} has a malformed digest; allowed: sha256: and 64 lowercase hex characters, "
                f"e.g. {name}@sha256:<64 hex>"
            )
        return value
    if tag is None:
        raise problem(f"{value!r} has no tag; allowed: {_pinned_image_allowed(name)}")
    if tag == "latest":
        raise problem(f"{value!r} uses the moving tag 'latest'; allowed: {_pinned_image_allowed(name)}")
    return value


ImageRef = Annotated[str, AfterValidator(_image_ref), Allowed(_IMAGE_ALLOWED)]
"""A container image pinned by an explicit tag (not ``latest``) or a sha256 digest."""

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
LOWER_CASE_PROXY_NAMES = ("all_proxy", "ftp_proxy", "http_proxy", "https_proxy", "no_proxy")
"""Proxy variables many tools read only in lower case: curl ignores upper-case ``HTTP_PROXY`` (a CGI program's
request header arrives as ``HTTP_PROXY``; see curl's libcurl-env documentation), so these are allowed as they are."""
_ENV_NAME_ALLOWED = (
    "upper-case letters, digits and '_', not starting with a digit, e.g. LOG_LEVEL, "
    "or a lower-case proxy variable (" + ", ".join(LOWER_CASE_PROXY_NAMES) + ")"
)

RESERVED_ENV_NAMES = frozenset(CONTRACT_NAMES)
"""Environment variables phasekit sets in the app's containers itself."""


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value) and value not in LOWER_CASE_PROXY_NAMES:
        hint = f" (did you mean {value.upper()!r}?)" if _ENV_NAME.fullmatch(value.upper()) else ""
        raise problem(f"{value!r} is not an environment variable name; allowed: {_ENV_NAME_ALLOWED}{hint}")
    return value


def _not_reserved(value: str) -> str:
    if value in RESERVED_ENV_NAMES:
        reserved = ", ".join(sorted(RESERVED_ENV_NAMES))
        raise problem(f"{value!r} is set by phasekit; allowed: a name other than {reserved}")
    return value


EnvName = Annotated[str, AfterValidator(_env_name), Allowed(_ENV_NAME_ALLOWED)]
AppEnvName = Annotated[EnvName, AfterValidator(_not_reserved)]
"""An environment variable name the user may set: not one of :data:`RESERVED_ENV_NAMES`."""

EnvValue = Annotated[str, Allowed("a string (quote numbers and booleans in YAML, e.g. '4' or 'true')")]

_TAG_PART = re.compile(r"[a-z0-9_-]{1,63}")
_TAG_PART_ALLOWED = "1 to 63 lowercase letters, digits, '-' or '_'"


def _tag_part(kind: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _TAG_PART.fullmatch(value):
            raise problem(f"{value!r} is not a tag {kind}; allowed: {_TAG_PART_ALLOWED}")
        return value

    return AfterValidator(check)


def _whole_number_as_text(value: object) -> object:
    # YAML reads `cost-center: 1234` as a number; the tag value is the same digits as text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


TagKey = Annotated[str, _tag_part("key"), Allowed(_TAG_PART_ALLOWED)]
TagValue = Annotated[str, BeforeValidator(_whole_number_as_text), _tag_part("value"), Allowed(_TAG_PART_ALLOWED)]
"""A tag value; a whole number is read as its digits (``1234`` -> ``'1234'``)."""

_CLOUDFLARE_ID = re.compile(r"[0-9a-f]{32}")
_CLOUDFLARE_ID_ALLOWED = "32 lowercase hex characters, as the Cloudflare dashboard shows it"


def _cloudflare_id(value: str) -> str:
    if not _CLOUDFLARE_ID.fullmatch(value):
        hint = f" (did you mean {value.lower()!r}?)" if _CLOUDFLARE_ID.fullmatch(value.lower()) else ""
        raise problem(f"{value!r} is not a Cloudflare id; allowed: {_CLOUDFLARE_ID_ALLOWED}{hint}")
    return value


CloudflareId = Annotated[str, AfterValidator(_cloudflare_id), Allowed(_CLOUDFLARE_ID_ALLOWED)]

_HOSTNAME_LABEL_CHARACTERS = re.compile(r"[a-z0-9-]+")
_HOSTNAME_ALLOWED = (
    "a lowercase fully qualified domain name of two or more labels of a-z, 0-9 and '-', e.g. app.example.com"
)


def _hostname_fault(value: str) -> str | None:
    if value != value.lower():
        return "it has upper-case letters"
    if len(value) > 253:
        return "it is longer than 253 characters"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return "it is an IP address"
    labels = value.split(".")
    if len(labels) < 2:
        return "it has a single label"
    for label in labels:
        if not label:
            return "it has an empty label"
        if len(label) > 63:
            return f"label {label!r} is longer than 63 characters"
        if not _HOSTNAME_LABEL_CHARACTERS.fullmatch(label):
            return f"label {label!r} has characters other than a-z, 0-9 and '-'"
        if label.startswith("-") or label.endswith("-"):
            return f"label {label!r} starts or ends with '-'"
    return None


def _hostname(value: str) -> str:
    fault = _hostname_fault(value)
    if fault is not None:
        hint = f" (did you mean {value.lower()!r}?)" if _hostname_fault(value.lower()) is None else ""
        raise problem(f"{value!r} is not a valid hostname: {fault}; allowed: {_HOSTNAME_ALLOWED}{hint}")
    return value


Hostname = Annotated[str, AfterValidator(_hostname), Allowed(_HOSTNAME_ALLOWED)]

REGION_SLUGS: tuple[str, ...] = tuple(sorted(region.value for region in Region))
_REGION_ALLOWED = "one of " + ", ".join(REGION_SLUGS)


def _region(value: object) -> object:
    if isinstance(value, Region):
        return value
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    try:
        return Region(value)
    except ValueError:
        raise problem(
            f"{value!r} is not a DigitalOcean region; allowed: {_REGION_ALLOWED}{did_you_mean(value, REGION_SLUGS)}"
        ) from None


DigitalOceanRegion = Annotated[Region, BeforeValidator(_region), Allowed(_REGION_ALLOWED)]


class DropletResources(NamedTuple):
    """The CPU and memory a droplet size provides."""

    vcpus: int
    memory_mib: int


MIN_DROPLET_MEMORY_MIB = 1024

_SIZED_SLUG = re.compile(r"[a-z0-9_]+-(?P<vcpus>[0-9]+)vcpu-(?P<memory>[0-9]+)(?P<unit>gb|mb)(?:-.+)?")
# The first CPU-optimized generation names only its vCPU count; each vCPU comes with 2 GiB.
_CPU_OPTIMIZED_VCPUS = {
    **{f"c-{vcpus}": vcpus for vcpus in (2, 4, 8, 16, 32, 48)},
    **{f"c-{vcpus}-intel": vcpus for vcpus in (2, 4, 8, 16, 32, 48, 60)},
}
_LEGACY_SLUG = re.compile(r"[0-9]+(?:gb|mb)")

DROPLET_SLUGS: tuple[str, ...] = tuple(sorted(slug.value for slug in DropletSlug))
_SIZE_EXAMPLES = ("s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb")
_SIZE_ALLOWED = "a slug from pulumi_digitalocean.DropletSlug such as " + ", ".join(_SIZE_EXAMPLES)


def droplet_resources(slug: str) -> DropletResources | None:
    """vCPUs and memory read from a size slug, or ``None`` when the slug does not say."""
    sized = _SIZED_SLUG.fullmatch(slug)
    if sized is not None:
        memory = int(sized["memory"])
        return DropletResources(int(sized["vcpus"]), memory * 1024 if sized["unit"] == "gb" else memory)
    vcpus = _CPU_OPTIMIZED_VCPUS.get(slug)
    if vcpus is not None:
        return DropletResources(vcpus, vcpus * 2 * 1024)
    return None


def _unreadable_size_reason(slug: str) -> str:
    if _LEGACY_SLUG.fullmatch(slug):
        return "is a legacy size whose vCPU count phasekit cannot derive"
    if slug.startswith("gpu-"):
        return "is a GPU size, which phasekit does not run"
    return "is a size whose vCPU count and memory phasekit cannot derive"


def _droplet_size(value: object) -> object:
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    try:
        slug = DropletSlug(value)
    except ValueError:
        raise problem(
            f"{value!r} is not a DigitalOcean droplet size; "
            f"allowed: {_SIZE_ALLOWED}{did_you_mean(value, DROPLET_SLUGS)}"
        ) from None
    resources = droplet_resources(slug.value)
    if resources is None:
        raise problem(f"{value!r} {_unreadable_size_reason(slug.value)}; allowed: {_SIZE_ALLOWED}")
    if resources.memory_mib < MIN_DROPLET_MEMORY_MIB:
        raise problem(
            f"{value!r} has {resources.memory_mib} MiB of memory; allowed: a size with at least 1 GiB, "
            "e.g. s-1vcpu-2gb"
        )
    return slug


DropletSize = Annotated[DropletSlug, BeforeValidator(_droplet_size), Allowed(_SIZE_ALLOWED)]
"""A droplet size whose vCPUs and memory :func:`droplet_resources` can read, with at least 1 GiB."""

_CIDR_ALLOWED = "an IPv4 or IPv6 network in CIDR form, e.g. 203.0.113.0/24"


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise problem(f"{value!r} is not an IP network; allowed: {_CIDR_ALLOWED}") from None
    if network.prefixlen == 0:
        raise problem(f"{value!r} has host bits set; allowed: {_CIDR_ALLOWED}")
    host = ipaddress.ip_interface(value).ip
    raise problem(
        f"{value!r} has host bits set; allowed: the network '{network}', "
        f"or '{host}/{network.max_prefixlen}' for that one host"
    )


Cidr = Annotated[str, AfterValidator(_cidr), Allowed(_CIDR_ALLOWED)]
"""An IPv4 or IPv6 network with no host bits set, in canonical text form (``2001:db8::/32``)."""


def _not_whole_internet(value: str) -> str:
    if ipaddress.ip_network(value).prefixlen == 0:
        raise problem(
            f"{value!r} opens SSH to the whole internet; allowed: the networks you administer from, "
            "e.g. 203.0.113.0/24"
        )
    return value


SshAdminCidr = Annotated[Cidr, AfterValidator(_not_whole_internet)]
"""A network SSH is opened to: any :data:`Cidr` but ``0.0.0.0/0`` and ``::/0``."""

_MD5_FINGERPRINT = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){15}")
_FINGERPRINT_ALLOWED = (
    "16 colon-separated lowercase hex pairs as DigitalOcean lists the key "
    "(ssh-keygen -l -E md5 -f key.pub prints them after 'MD5:'), e.g. 3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"
)


def _ssh_key_fingerprint(value: str) -> str:
    if not _MD5_FINGERPRINT.fullmatch(value):
        as_digitalocean_lists_it = value.removeprefix("MD5:").lower()
        if _MD5_FINGERPRINT.fullmatch(as_digitalocean_lists_it):
            fault = "is not written as DigitalOcean lists fingerprints"
            hint = f" (did you mean {as_digitalocean_lists_it!r}?)"
        else:
            fault = "is a SHA256 fingerprint" if value.startswith("SHA256:") else "is not an MD5 SSH key fingerprint"
            hint = ""
        raise problem(f"{value!r} {fault}; allowed: {_FINGERPRINT_ALLOWED}{hint}")
    return value


SshKeyFingerprint = Annotated[str, AfterValidator(_ssh_key_fingerprint), Allowed(_FINGERPRINT_ALLOWED)]

# The WHATWG HTML form rule for e-mail addresses, with the domain required to have a dot.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_EMAIL_ALLOWED = "an address like ops@example.com"


def _email_address(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise problem(f"{value!r} is not an e-mail address; allowed: {_EMAIL_ALLOWED}")
    return value


EmailAddress = Annotated[str, AfterValidator(_email_address), Allowed(_EMAIL_ALLOWED)]

_SECRET_NAME_ALLOWED = ("the NAME of a phasekit:secrets entry that holds it, set with: "
                        "pulumi config set --secret --path 'secrets.<NAME>', e.g. SLACK_WEBHOOK_URL")


def _secret_name(value: str) -> str:
    # A URL here is the secret itself in plain text: say so without repeating it.
    if "://" in value:
        raise problem(f"is a URL, which would put the secret in the stack file in plain text; allowed: "
                      f"{_SECRET_NAME_ALLOWED}")
    if not _ENV_NAME.fullmatch(value):
        raise problem(f"{value!r} is not a secret name; allowed: upper-case letters, digits and '_', not starting "
                      f"with a digit: {_SECRET_NAME_ALLOWED}")
    return value


SecretName = Annotated[str, AfterValidator(_secret_name), Allowed(_SECRET_NAME_ALLOWED)]
"""The name of a ``phasekit:secrets`` entry (the value is read as a secret by ``infra.stack_secrets``)."""


class BackupPlan(StrEnum):
    """How often DigitalOcean backs up a droplet."""

    DAILY = "daily"
    WEEKLY = "weekly"


class PoolMode(StrEnum):
    """PgBouncer's pool mode."""

    TRANSACTION = "transaction"
    SESSION = "session"


class RedisPlacement(StrEnum):
    """Where phase 2's shared Redis runs."""

    DATABASE = "database"


_REDIS_PLACEMENT_ALLOWED = "database (on the database droplet, shared by every app droplet over the VPC)"


def _redis_placement(value: object) -> object:
    if isinstance(value, str) and value in ("app", "app-tier", "appTier", "web"):
        raise problem(
            f"{value!r} would give each app droplet its own Redis, but sessions, caches and queues must be "
            f"shared by all of them; allowed: {_REDIS_PLACEMENT_ALLOWED}"
        )
    return value


RedisPlacementValue = Annotated[
    RedisPlacement, BeforeValidator(_redis_placement), Allowed(_REDIS_PLACEMENT_ALLOWED, noun="a Redis placement")
]


# --- backups -------------------------------------------------------------------------------------------

_ON_CALENDAR = re.compile(r"[A-Za-z0-9*:.,/~+ -]+")
_ON_CALENDAR_ALLOWED = ("a systemd OnCalendar expression of letters, digits, spaces and * : . , / ~ + -, "
                        "e.g. 'Sun *-*-* 03:30:00'")


def _on_calendar(value: str) -> str:
    # Checked conservatively, not parsed: the value is written into a systemd timer unit, where a newline would
    # start a new setting and '%' is a specifier; `systemd-analyze calendar` is the real parser (systemd.time(7)).
    if not value.strip():
        raise problem(f"{value!r} is empty; allowed: {_ON_CALENDAR_ALLOWED}")
    if not _ON_CALENDAR.fullmatch(value):
        raise problem(f"{show_text(value)} is not a systemd calendar expression; allowed: {_ON_CALENDAR_ALLOWED}")
    return value.strip()


OnCalendar = Annotated[str, AfterValidator(_on_calendar), Allowed(_ON_CALENDAR_ALLOWED)]

def _cron(reader: Callable[[str], object]) -> AfterValidator:
    def check(value: str) -> str:
        try:
            reader(value)
        except CronError as error:
            raise problem(str(error)) from None
        return " ".join(value.split())

    return AfterValidator(check)


CronSchedule = Annotated[str, _cron(read_cron), Allowed(CRON_ALLOWED)]
"""A Kubernetes CronJob's schedule, read as robfig/cron v3 reads it (``components.processes.read_cron``): five
numeric fields; macros such as @daily and names are refused so the schedule reads the same everywhere phasekit
shows it."""

ProcessCron = Annotated[str, _cron(parse_cron), Allowed(CRON_ALLOWED)]
"""An app schedule's cron: ``CronSchedule``, and read the same by systemd (the droplets' timers)."""

_PROCESS_NAME_ALLOWED = ("1 to 20 lowercase letters, digits or '-', starting with a letter, not ending with '-', "
                         "and not one of " + ", ".join(RESERVED_PROCESS_NAMES))


def _process_name(value: str) -> str:
    if not PROCESS_NAME.fullmatch(value):
        raise problem(f"{show_text(value)} is not a process name; allowed: {_PROCESS_NAME_ALLOWED}")
    if value in RESERVED_PROCESS_NAMES:
        raise problem(f"{value!r} is a name phasekit uses itself; allowed: {_PROCESS_NAME_ALLOWED}")
    return value


ProcessName = Annotated[str, AfterValidator(_process_name), Allowed(_PROCESS_NAME_ALLOWED)]
"""Names a process or a schedule: a Compose service, a systemd unit, a Kubernetes object."""


def show_text(value: str) -> str:
    """A string as a message quotes it: ``repr``, cut at 60 characters so a pasted blob stays one line."""
    return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."


# --- AWS (phase 3) ------------------------------------------------------------------------------------


def _sdk_enum_member(kind: str, load_values: Callable[[], tuple[str, ...]], sdk_name: str, example: str):
    """A validator admitting the values of a pulumi-aws enum, read on first use: importing pulumi-aws's
    EC2 module takes over a second, which phases 1 and 2 should not pay."""
    allowed = f"{kind} from {sdk_name}, e.g. {example}"
    values = functools.cache(load_values)

    def check(value: object) -> object:
        if not isinstance(value, str):
            raise PydanticKnownError("string_type")
        if value not in values():
            raise problem(f"{value!r} is not {kind}; allowed: {allowed}{did_you_mean(value, values())}")
        return value

    return BeforeValidator(check), Allowed(allowed)


def aws_regions() -> tuple[str, ...]:
    import pulumi_aws

    return tuple(sorted(region.value for region in pulumi_aws.Region))


def rds_instance_classes() -> tuple[str, ...]:
    import pulumi_aws

    return tuple(member.value for member in pulumi_aws.rds.InstanceType)


def ec2_instance_types() -> tuple[str, ...]:
    import pulumi_aws

    return tuple(member.value for member in pulumi_aws.ec2.InstanceType)


AwsRegion = Annotated[str, *_sdk_enum_member("an AWS region", aws_regions, "pulumi_aws.Region", "us-east-1")]
RdsInstanceClass = Annotated[str, *_sdk_enum_member(
    "an RDS instance class", rds_instance_classes, "pulumi_aws.rds.InstanceType", "db.t4g.medium")]
Ec2InstanceType = Annotated[str, *_sdk_enum_member(
    "an EC2 instance type", ec2_instance_types, "pulumi_aws.ec2.InstanceType", "t3.large")]

_CACHE_NODE_TYPE = re.compile(r"cache\.[a-z][a-z0-9-]*\.[a-z0-9]+")
_CACHE_NODE_ALLOWED = "an ElastiCache node type, e.g. cache.t4g.small or cache.r7g.large"


def _cache_node_type(value: str) -> str:
    if not _CACHE_NODE_TYPE.fullmatch(value):
        raise problem(f"{value!r} is not an ElastiCache node type; allowed: {_CACHE_NODE_ALLOWED}")
    return value


CacheNodeType = Annotated[str, AfterValidator(_cache_node_type), Allowed(_CACHE_NODE_ALLOWED)]

EKS_VERSIONS = ("1.33", "1.34", "1.35", "1.36")
"""Kubernetes versions phasekit deploys on EKS (in EKS support as of 2026-11) and validates manifests
against (kubernetes-validate ships their schemas)."""

_EKS_VERSION_ALLOWED = "one of " + ", ".join(repr(version) for version in EKS_VERSIONS) + " (quoted in YAML)"


def _eks_version(value: object) -> object:
    if isinstance(value, float):
        raise problem(f"{value!r} is a number; allowed: {_EKS_VERSION_ALLOWED}, since YAML reads 1.30 as 1.3")
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    if value not in EKS_VERSIONS:
        raise problem(f"{value!r} is not a supported EKS version; allowed: {_EKS_VERSION_ALLOWED}")
    return value


EksVersion = Annotated[str, BeforeValidator(_eks_version), Allowed(_EKS_VERSION_ALLOWED)]

_IAM_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:(?:role|user)/(?:[\w+=,.@-]+/)*[\w+=,.@-]+")
"""An IAM role or user ARN, with an optional path of non-empty segments (as EksCluster's access entries read it)."""
_IAM_PRINCIPAL_ALLOWED = "an IAM role or user ARN, e.g. arn:aws:iam::123456789012:role/platform-admin"


def _iam_principal(value: str) -> str:
    if not _IAM_PRINCIPAL.fullmatch(value):
        hint = (" (an assumed-role session; use the role's arn:aws:iam::<account>:role/<name>)"
                if ":assumed-role/" in value else "")
        raise problem(f"{value!r} is not an IAM role or user ARN{hint}; allowed: {_IAM_PRINCIPAL_ALLOWED}")
    return value


IamPrincipalArn = Annotated[str, AfterValidator(_iam_principal), Allowed(_IAM_PRINCIPAL_ALLOWED)]


def _not_open_api(value: str) -> str:
    network = ipaddress.ip_network(value)
    if network.prefixlen == 0:
        raise problem(
            f"{value!r} opens the Kubernetes API to the whole internet; allowed: the networks you administer "
            "from, e.g. 203.0.113.0/24, or [] for a private-only endpoint"
        )
    if network.version != 4:
        raise problem(f"{value!r} is IPv6; allowed: IPv4 networks (EKS public access CIDRs are IPv4 only)")
    return value


ApiAdminCidr = Annotated[Cidr, AfterValidator(_not_open_api)]


_VPC_CIDR_ALLOWED = "a /16 to /20 inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, e.g. 10.20.0.0/16"


def _vpc_cidr(value: str) -> str:
    network = ipaddress.ip_network(value)
    in_rfc1918 = network.version == 4 and any(network.subnet_of(block) for block in RFC1918)
    if not in_rfc1918 or not 16 <= network.prefixlen <= 20:
        raise problem(f"{value!r} is not a private IPv4 /16../20 network; allowed: {_VPC_CIDR_ALLOWED}")
    return value


VpcCidr = Annotated[Cidr, AfterValidator(_vpc_cidr), Allowed(_VPC_CIDR_ALLOWED)]


_CPU_QUANTITY = re.compile(r"([1-9][0-9]*)m|([1-9][0-9]*)")
_MEMORY_QUANTITY = re.compile(r"([1-9][0-9]*)(Mi|Gi)")


def cpu_millicores(quantity: str) -> int:
    """``250m`` -> 250, ``2`` -> 2000 (the forms ``CpuQuantity`` admits)."""
    match = _CPU_QUANTITY.fullmatch(quantity)
    assert match is not None, quantity
    return int(match[1]) if match[1] else int(match[2]) * 1000


def memory_mib(quantity: str) -> int:
    match = _MEMORY_QUANTITY.fullmatch(quantity)
    assert match is not None, quantity
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


def _quantity(pattern: re.Pattern[str], allowed: str):
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise problem(f"{value!r} is not a Kubernetes quantity phasekit reads; allowed: {allowed}")
        return value

    return AfterValidator(check), Allowed(allowed)


def _cores_as_quantity(value: object) -> object:
    """A number of cores as the quantity Kubernetes would print: ``2`` -> ``'2'``, ``0.5`` -> ``'500m'``.

    Kubernetes itself accepts a bare number for CPU (``cpu: 0.5``); numbers finer than a millicore are left
    for the quantity check to refuse."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    millicores = value * 1000
    return f"{round(millicores)}m" if abs(millicores - round(millicores)) < 1e-9 else repr(value)


CpuQuantity = Annotated[
    str, BeforeValidator(_cores_as_quantity), *_quantity(_CPU_QUANTITY, "millicores like 250m, or whole cores like 2")
]
"""A CPU request: ``250m`` or whole cores ``2``; a YAML number of cores (``2``, ``0.5``) is read as that quantity."""

POSTGRES_MAJOR_VERSIONS = ("14", "15", "16", "17")
_POSTGRES_MAJOR_ALLOWED = "a PostgreSQL major version 14..17"


def _postgres_major(value: object) -> object:
    # `engineVersion: 16` is a YAML number; the version is the same digits as text.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    if value not in POSTGRES_MAJOR_VERSIONS:
        raise problem(f"{value!r} is not a supported PostgreSQL major version; allowed: {_POSTGRES_MAJOR_ALLOWED}")
    return value


PostgresMajorVersion = Annotated[str, BeforeValidator(_postgres_major), Allowed(_POSTGRES_MAJOR_ALLOWED)]
"""A PostgreSQL major version as text (``'16'``); a YAML number (``16``) is read as the same version."""
MemoryQuantity = Annotated[str, *_quantity(_MEMORY_QUANTITY, "Mi or Gi, e.g. 512Mi or 2Gi")]
