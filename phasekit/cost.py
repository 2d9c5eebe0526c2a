"""Monthly cost of a planned stack, priced from the catalog in ``phasekit/prices.yaml``.

:func:`estimate` walks the resources the offline plan recorded (the inputs the program really sets) and
prices each billable one. Every line names the catalog entries it uses and rests on their status:

- *priced* lines add up to ``total_usd``;
- *unconfirmed* lines (no confirmed price, e.g. the DigitalOcean load balancer) show the lead value a
  source suggests, summed apart in ``unconfirmed_lead_usd``, never in the total;
- *unpriced* lines are billable resources the catalog has no price for (never guessed);
- *usage-based* lines (transfer, operations, processed data, logs) show what they would cost under the
  catalog's stated ``usage_assumptions``, never in the total.

Resources that are not billable cloud objects (components, providers, generated passwords and keys,
Kubernetes objects inside the cluster, IAM, security groups, subnets, route tables) are not lines.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from components.testing import RecordedResource, Recording
from infra.errors import ConfigError
from phasekit.stack_file import read_yaml

CATALOG_PATH = Path(__file__).with_name("prices.yaml")
CENT = Decimal("0.01")


# --- The catalog ----------------------------------------------------------------------------------


class PriceStatus(StrEnum):
    OFFICIAL = "official"
    SECONDARY = "secondary"
    DERIVED = "derived"
    UNCONFIRMED = "unconfirmed"


# A line resting on several prices is as weak as its weakest one.
_WEAKNESS = {PriceStatus.OFFICIAL: 0, PriceStatus.DERIVED: 1, PriceStatus.SECONDARY: 2, PriceStatus.UNCONFIRMED: 3}


def _decimal_string(value: object) -> object:
    # YAML floats (12.0, 0.1) lose the written precision and invite binary rounding: money is a quoted string.
    if value is None or isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a decimal string; allowed: a quoted decimal such as \"12.00\"")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number; allowed: a quoted decimal such as \"12.00\"") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{value!r} is not a price; allowed: a decimal >= 0 such as \"12.00\"")
    return number


def _iso_date_string(value: object) -> object:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"{value!r} is not a date; allowed: a quoted YYYY-MM-DD such as \"2026-11-23\"")
    return date.fromisoformat(value)


Money = Annotated[Decimal, BeforeValidator(_decimal_string)]
IsoDate = Annotated[date, BeforeValidator(_iso_date_string)]
PriceId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")]
Unit = Literal[
    "month", "hour", "GiB-month", "GB-month", "node-hour", "node-month", "IOPS-month", "MBps-month",
    "million-requests", "GB", "GiB", "LCU-hour", "vCPU-hour", "alarm-month", "key-month", "secret-month", "zone-month",
    "100k-notifications", "fraction-of-droplet-price", "fraction-of-redis-oss-node-price",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Frozen):
    reference: str
    """URL or repository and path."""

    date: str | None = None
    """The source's own date as it states it (a day, a month, a year or a span); None when undated."""

    in_prices_md: bool = True
    """False for sources added from public documentation beyond the project's price notes."""


class Conventions(_Frozen):
    currency: Literal["USD"]
    aws_region: str
    aws_hours_per_month: Annotated[int, Field(gt=0)]
    digitalocean_hours_per_month_cap: Annotated[int, Field(gt=0)]
    notes: tuple[str, ...] = ()


class PriceEntry(_Frozen):
    id: PriceId
    provider: Literal["digitalocean", "aws", "cloudflare"]
    item: str
    unit: Unit
    usd: Money | None = None
    """USD per unit; None for unconfirmed prices and for multipliers."""

    fraction: Money | None = None
    """For multipliers (unit ``fraction-of-…``): the share of the other price."""

    free_per_month: Money | None = None
    """Units free each month (R2's free tier, SNS's first 1,000 e-mails)."""

    region: Literal["any", "us-east-1", "global"]
    status: PriceStatus
    source: tuple[str, ...]
    as_of: IsoDate
    rule: str | None = None
    """How a derived price is computed."""

    base: PriceId | None = None
    factor: PriceId | None = None
    """A derived price that is ``base.usd × factor.fraction``; the loader checks the arithmetic."""

    lead_usd: Money | None = None
    """Unconfirmed prices only: the value a source suggests, shown but never added to a total."""

    lead_note: str | None = None
    note: str | None = None
    in_prices_md: bool = True
    """False for a price PRICES.md does not list; its sources then say ``in_prices_md: false`` too."""

    @model_validator(mode="after")
    def _status_fits_the_values(self) -> PriceEntry:
        is_multiplier = self.unit.startswith("fraction-of-")
        if self.status is PriceStatus.UNCONFIRMED:
            if self.usd is not None or self.fraction is not None:
                raise ValueError("usd: an unconfirmed price has usd: null; allowed: put the suggested value in "
                                 "lead_usd")
            return self
        if self.lead_usd is not None:
            raise ValueError(f"lead_usd: only unconfirmed prices carry a lead; this one is {self.status.value}")
        if not self.source:
            raise ValueError("source: empty; allowed: one or more keys of sources")
        if is_multiplier and (self.fraction is None or self.usd is not None):
            raise ValueError(f"fraction: unit {self.unit} needs fraction (and usd: null)")
        if not is_multiplier and (self.usd is None or self.fraction is not None):
            raise ValueError(f"usd: missing; allowed: a quoted decimal such as \"12.00\" ({self.status.value} "
                             "prices have one)")
        if self.status is PriceStatus.DERIVED and not self.rule:
            raise ValueError("rule: missing; allowed: the rule a derived price is computed by")
        if (self.base is None) != (self.factor is None):
            raise ValueError("base: base and factor go together")
        return self


class InstanceSpec(_Frozen):
    vcpus: Annotated[int, Field(gt=0)]
    memory_gib: Money
    source: Annotated[tuple[str, ...], Field(min_length=1)]


class Specs(_Frozen):
    aws_ec2: dict[str, InstanceSpec] = Field(default_factory=dict)
    aws_rds: dict[str, InstanceSpec] = Field(default_factory=dict)


class UsageAssumptions(_Frozen):
    r2_stored_gb: Money
    r2_class_a_million: Money
    r2_class_b_million: Money
    r2_backup_stored_gb: Money
    """The backups bucket: full, differential and WAL copies kept by ``backups.retention*``."""

    r2_backup_class_a_million: Money
    """The backups bucket's writes: a WAL segment at least every ``archive_timeout``, plus the backups' files."""
    do_transfer_over_allowance_gib: Money
    nat_processed_gb: Money
    alb_average_lcu: Money
    rds_backup_over_provisioned_gb: Money
    elasticache_backup_gb: Money
    t_family_surplus_vcpu_hours: Money
    sns_email_notifications: Money


class SupportEnd(_Frozen):
    date: IsoDate
    """The last day of EKS standard support for one Kubernetes minor version."""

    source: Annotated[tuple[str, ...], Field(min_length=1)]


class PriceCatalog(_Frozen):
    catalog_date: IsoDate
    conventions: Conventions
    sources: dict[str, Source]
    prices: tuple[PriceEntry, ...]
    eks_standard_support_ends: dict[str, SupportEnd] = Field(default_factory=dict)
    """Kubernetes minor version -> last day of EKS standard support; after it the control plane bills the
    extended-support price."""

    specs: Specs = Field(default_factory=Specs)
    usage_assumptions: UsageAssumptions

    @model_validator(mode="after")
    def _references_resolve(self) -> PriceCatalog:
        by_id: dict[str, PriceEntry] = {}
        for index, entry in enumerate(self.prices):
            where = f"prices[{index}] ({entry.id})"
            if entry.id in by_id:
                raise ValueError(f"{where}: id: {entry.id!r} is listed twice; allowed: each id once")
            by_id[entry.id] = entry
            for key in entry.source:
                if key not in self.sources:
                    raise ValueError(f"{where}: source: {key!r} is not a key of sources; allowed: "
                                     f"{', '.join(sorted(self.sources))}")
            outside = [key for key in entry.source if not self.sources[key].in_prices_md]
            if not entry.in_prices_md and len(outside) != len(entry.source):
                raise ValueError(f"{where}: in_prices_md: false, but source {', '.join(entry.source)} includes "
                                 "PRICES.md sources; allowed: only sources marked in_prices_md: false")
            # A confirmed price PRICES.md does not back must say so; an unconfirmed one may take its lead anywhere.
            if (entry.in_prices_md and entry.status is not PriceStatus.UNCONFIRMED and entry.source
                    and len(outside) == len(entry.source)):
                raise ValueError(f"{where}: in_prices_md: missing; allowed: false, since every source "
                                 f"({', '.join(entry.source)}) is outside PRICES.md")
        for index, entry in enumerate(self.prices):
            if entry.base is None or entry.factor is None:
                continue
            where = f"prices[{index}] ({entry.id})"
            base, factor = by_id.get(entry.base), by_id.get(entry.factor)
            if base is None or base.usd is None:
                raise ValueError(f"{where}: base: {entry.base!r} is not a priced entry")
            if factor is None or factor.fraction is None:
                raise ValueError(f"{where}: factor: {entry.factor!r} is not a multiplier entry")
            expected = base.usd * factor.fraction
            if entry.usd != expected:
                raise ValueError(f"{where}: usd: {entry.usd} is not {base.usd} x {factor.fraction} = "
                                 f"{expected.normalize()}")
        for version, support_end in self.eks_standard_support_ends.items():
            for key in support_end.source:
                if key not in self.sources:
                    raise ValueError(f"eks_standard_support_ends.{version}: source: {key!r} is not a key of sources")
        for family, specs in (("aws_ec2", self.specs.aws_ec2), ("aws_rds", self.specs.aws_rds)):
            for name, spec in specs.items():
                for key in spec.source:
                    if key not in self.sources:
                        raise ValueError(f"specs.{family}.{name}: source: {key!r} is not a key of sources")
        return self

    def price(self, price_id: str) -> PriceEntry | None:
        return self._by_id().get(price_id)

    def _by_id(self) -> dict[str, PriceEntry]:
        return {entry.id: entry for entry in self.prices}


def eks_standard_support_ends(path: Path = CATALOG_PATH) -> dict[str, date]:
    """Kubernetes minor -> last day of EKS standard support, from the catalog's dated table: the one source the
    cost estimate and the plan's support warning (``infra.config_phase3.standard_support_warning``) share."""
    return {version: end.date for version, end in load_catalog(path).eks_standard_support_ends.items()}


def load_catalog(path: Path = CATALOG_PATH) -> PriceCatalog:
    """Read and validate the catalog; a bad one raises ConfigError with one line naming the entry and key."""
    return _load_catalog_cached(Path(path).resolve())


@functools.lru_cache(maxsize=8)
def _load_catalog_cached(path: Path) -> PriceCatalog:
    shown = _display_path(path)
    raw = read_yaml(path, "the price catalog", shown)
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: not a mapping; allowed: catalog_date, conventions, sources, prices, specs, "
                          "usage_assumptions")
    try:
        return PriceCatalog.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{shown}: {_first_problem(error, raw)}") from None


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _first_problem(error: ValidationError, raw: dict[str, Any]) -> str:
    detail = error.errors(include_url=False)[0]
    loc = detail["loc"]
    message = str(detail["msg"]).removeprefix("Value error, ")
    parts: list[str] = []
    for position, part in enumerate(loc):
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            if loc[:position] == ("prices",):
                entry = raw.get("prices", [])[part] if isinstance(raw.get("prices"), list) else None
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    parts[-1] += f" ({entry['id']})"
        else:
            parts.append(str(part))
    if detail["type"] == "extra_forbidden":
        message = "unknown key; allowed: the keys documented at the top of the catalog"
    elif detail["type"] == "missing":
        message = "missing"
    where = ".".join(parts)
    return f"{where}: {message}" if where else message


# --- The estimate ---------------------------------------------------------------------------------


class LineKind(StrEnum):
    PRICED = "priced"
    UNCONFIRMED = "unconfirmed"
    UNPRICED = "unpriced"
    USAGE = "usage-based"


@dataclass(frozen=True)
class CostLine:
    urn: str | None
    """The resource priced; None for account-level usage (pooled transfer)."""

    type: str
    name: str
    description: str
    kind: LineKind
    provider: str
    monthly_usd: Decimal | None = None
    """Priced lines: USD a month, rounded to cents. None otherwise."""

    status: PriceStatus | None = None
    """The weakest status among the prices used; None for unpriced lines."""

    price_ids: tuple[str, ...] = ()
    lead_usd: Decimal | None = None
    """Unconfirmed lines: the lead value a month (not counted)."""

    assumption: str | None = None
    """Usage-based lines: what the figure assumes."""

    assumed_usd: Decimal | None = None
    """Usage-based lines: USD a month under the assumption; None where the price is not sourced."""


@dataclass(frozen=True)
class CostEstimate:
    lines: tuple[CostLine, ...]
    catalog_date: date
    catalog_path: str = "phasekit/prices.yaml"

    def _of(self, kind: LineKind) -> list[CostLine]:
        return [line for line in self.lines if line.kind is kind]

    @property
    def priced(self) -> list[CostLine]:
        return self._of(LineKind.PRICED)

    @property
    def unconfirmed(self) -> list[CostLine]:
        return self._of(LineKind.UNCONFIRMED)

    @property
    def unpriced(self) -> list[CostLine]:
        return self._of(LineKind.UNPRICED)

    @property
    def usage_based(self) -> list[CostLine]:
        return self._of(LineKind.USAGE)

    @property
    def total_usd(self) -> Decimal:
        return sum((line.monthly_usd for line in self.priced if line.monthly_usd is not None), Decimal("0.00"))

    @property
    def unconfirmed_lead_usd(self) -> Decimal:
        return sum((line.lead_usd for line in self.unconfirmed if line.lead_usd is not None), Decimal("0.00"))

    @property
    def total_with_leads_usd(self) -> Decimal:
        """The conservative figure: the priced total plus every unconfirmed lead."""
        return self.total_usd + self.unconfirmed_lead_usd

    @property
    def secondary_or_derived_count(self) -> int:
        return sum(1 for line in self.priced if line.status in (PriceStatus.SECONDARY, PriceStatus.DERIVED))

    def total_by_provider(self, provider: str, *, leads: bool = False) -> Decimal:
        lines = self.unconfirmed if leads else self.priced
        amounts = (line.lead_usd if leads else line.monthly_usd for line in lines if line.provider == provider)
        return sum((amount for amount in amounts if amount is not None), Decimal("0.00"))


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def money(amount: Decimal) -> str:
    return f"{cents(amount):,.2f}"


@dataclass
class _Pricer:
    catalog: PriceCatalog
    recording: Recording
    on: date
    """The day the estimate is for: it decides whether an EKS version is still in standard support."""

    lines: list[CostLine] = field(default_factory=list)

    @property
    def hours(self) -> int:
        return self.catalog.conventions.aws_hours_per_month

    @property
    def assume(self) -> UsageAssumptions:
        return self.catalog.usage_assumptions

    def entry(self, price_id: str) -> PriceEntry | None:
        return self.catalog.price(price_id)

    def priced(self, resource: RecordedResource, description: str, amount: Decimal,
               entries: Iterable[PriceEntry], provider: str) -> None:
        used = list(entries)
        self.lines.append(CostLine(
            urn=resource.urn, type=resource.type, name=resource.name, description=description,
            kind=LineKind.PRICED, provider=provider, monthly_usd=cents(amount), status=_weakest(used),
            price_ids=tuple(entry.id for entry in used)))

    def unconfirmed(self, resource: RecordedResource, description: str, entry: PriceEntry,
                    quantity: Decimal, provider: str) -> None:
        """``quantity`` in the entry's units for a month (hours already multiplied in)."""
        lead = cents(entry.lead_usd * quantity) if entry.lead_usd is not None else None
        self.lines.append(CostLine(
            urn=resource.urn, type=resource.type, name=resource.name, description=description,
            kind=LineKind.UNCONFIRMED, provider=provider, status=PriceStatus.UNCONFIRMED,
            price_ids=(entry.id,), lead_usd=lead))

    def unpriced(self, resource: RecordedResource, description: str, provider: str) -> None:
        self.lines.append(CostLine(
            urn=resource.urn, type=resource.type, name=resource.name, description=description,
            kind=LineKind.UNPRICED, provider=provider))

    def usage(self, resource: RecordedResource | None, description: str, assumption: str,
              amount: Decimal | None, entries: Iterable[PriceEntry], provider: str, *,
              type_token: str = "", name: str = "") -> None:
        used = list(entries)
        self.lines.append(CostLine(
            urn=resource.urn if resource else None, type=resource.type if resource else type_token,
            name=resource.name if resource else name, description=description, kind=LineKind.USAGE,
            provider=provider, status=_weakest(used) if used else PriceStatus.UNCONFIRMED,
            price_ids=tuple(entry.id for entry in used), assumption=assumption,
            assumed_usd=cents(amount) if amount is not None else None))

    def fixed(self, resource: RecordedResource, price_id: str, description: str, provider: str,
              quantity: Decimal = Decimal(1), hourly: bool = False) -> PriceEntry | None:
        """One price × quantity (× 730 h for hourly prices); unpriced or unconfirmed when the catalog says so."""
        entry = self.entry(price_id)
        if entry is None:
            self.unpriced(resource, f"{description}: no price in catalog", provider)
            return None
        monthly_quantity = quantity * (self.hours if hourly else 1)
        if entry.status is PriceStatus.UNCONFIRMED or entry.usd is None:
            self.unconfirmed(resource, description, entry, monthly_quantity, provider)
            return None
        amount = entry.usd * monthly_quantity
        self.priced(resource, description, amount, [entry], provider)
        return entry


def _weakest(entries: list[PriceEntry]) -> PriceStatus:
    return max((entry.status for entry in entries), key=_WEAKNESS.__getitem__)


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Decimal(str(int(value))) if float(value).is_integer() else Decimal(str(value))


def _plain(value: Decimal) -> str:
    """``Decimal`` without trailing zeros or exponent: 50, 0.08, 1,000."""
    text = f"{value.normalize():f}"
    if "." not in text and len(text) > 3:
        return f"{int(text):,}"
    return text


def _depends_on(pricer: _Pricer, resource: RecordedResource, type_token: str) -> list[RecordedResource]:
    found = set(resource.dependencies)
    return [other for other in pricer.recording.of_type(type_token) if other.urn in found]


# --- DigitalOcean ---------------------------------------------------------------------------------

DO = "digitalocean"
_DO_DROPLET = "digitalocean:index/droplet:Droplet"


def _do_droplet(pricer: _Pricer, resource: RecordedResource) -> None:
    size = resource.inputs.get("size")
    droplet = pricer.fixed(resource, f"do-droplet-{size}", f"droplet {size}", DO)
    if resource.inputs.get("backups") is not True:
        return
    policy = resource.inputs.get("backupPolicy")
    # phasekit always sets the policy's plan with backups on; DigitalOcean's own default plan is weekly.
    plan = policy.get("plan") if isinstance(policy, dict) and isinstance(policy.get("plan"), str) else "weekly"
    backups = pricer.entry(f"do-backups-{plan}")
    if droplet is None or droplet.usd is None or backups is None or backups.fraction is None:
        pricer.unpriced(resource, f"{plan} backups of droplet {size}: no price in catalog", DO)
        return
    share = f"{_plain(backups.fraction * 100)} %"
    pricer.priced(resource, f"{plan} backups ({share} of {money(droplet.usd)})", droplet.usd * backups.fraction,
                  [droplet, backups], DO)


def _do_volume(pricer: _Pricer, resource: RecordedResource) -> None:
    size = _number(resource.inputs.get("size"))
    if size is None:
        pricer.unpriced(resource, "volume of unknown size: no price in catalog", DO)
        return
    entry = pricer.entry("do-volume")
    rate = f" x ${entry.usd}/GiB" if entry is not None and entry.usd is not None else ""
    pricer.fixed(resource, "do-volume", f"volume {_plain(size)} GiB{rate}", DO, quantity=size)


def _do_load_balancer(pricer: _Pricer, resource: RecordedResource) -> None:
    # sizeUnit is the node count; DigitalOcean's default (when it is not set) is one node.
    nodes = _number(resource.inputs.get("sizeUnit", 1))
    if nodes is None or nodes < 1:
        pricer.unpriced(resource, "load balancer of unknown node count (sizeUnit): no price in catalog", DO)
        return
    pricer.fixed(resource, "do-load-balancer-node", f"load balancer, {_plain(nodes)} node{'s' if nodes != 1 else ''}",
                 DO, quantity=nodes)


def _do_reserved_ip(pricer: _Pricer, resource: RecordedResource) -> None:
    assigned = "dropletId" in resource.inputs or any(
        resource.urn in assignment.dependencies
        for assignment in pricer.recording.of_type("digitalocean:index/reservedIpAssignment:ReservedIpAssignment"))
    if assigned:
        pricer.fixed(resource, "do-reserved-ip-assigned", "reserved IP, assigned to a droplet", DO)
    else:
        pricer.fixed(resource, "do-reserved-ip-unassigned", "reserved IP, unassigned", DO)


def _do_vpc(pricer: _Pricer, resource: RecordedResource) -> None:
    pricer.fixed(resource, "do-vpc", "VPC", DO)


def _do_firewall(pricer: _Pricer, resource: RecordedResource) -> None:
    pricer.fixed(resource, "do-cloud-firewall", "cloud firewall", DO)


def _do_transfer(pricer: _Pricer) -> None:
    entry = pricer.entry("do-transfer-out")
    if entry is None or entry.usd is None or not pricer.recording.of_type(_DO_DROPLET):
        return
    gib = pricer.assume.do_transfer_over_allowance_gib
    pricer.usage(None, "outbound transfer beyond the droplets' pooled allowance",
                 f"assumed {_plain(gib)} GiB a month beyond the allowance x ${entry.usd}/GiB", gib * entry.usd,
                 [entry], DO, type_token=_DO_DROPLET, name="droplets (pooled)")


# --- AWS --------------------------------------------------------------------------------------------

AWS = "aws"


def _aws_eks_cluster(pricer: _Pricer, resource: RecordedResource) -> None:
    """Standard or extended support by the version's date in ``eks_standard_support_ends``: EKS bills extended
    support for the version, whatever ``upgradePolicy`` says (STANDARD only makes AWS upgrade at the end)."""
    version = resource.inputs.get("version")
    if not isinstance(version, str):
        pricer.unpriced(resource, "EKS control plane without a known Kubernetes version: support period unknown",
                        AWS)
        return
    support_end = pricer.catalog.eks_standard_support_ends.get(version)
    if support_end is None:
        pricer.unpriced(resource, f"EKS control plane (Kubernetes {version}): no standard-support end date in "
                        "catalog", AWS)
    elif pricer.on > support_end.date:
        pricer.fixed(resource, "aws-eks-cluster-extended", f"EKS control plane, extended support (Kubernetes "
                     f"{version}, standard support ended {support_end.date.isoformat()})", AWS, hourly=True)
    else:
        pricer.fixed(resource, "aws-eks-cluster-standard", f"EKS control plane, standard support (Kubernetes "
                     f"{version}, until {support_end.date.isoformat()})", AWS, hourly=True)


def _aws_vpc_endpoint(pricer: _Pricer, resource: RecordedResource) -> None:
    """Gateway endpoints (S3, DynamoDB) are free ("There is no additional charge for using gateway endpoints",
    https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html): no line. Interface endpoints
    bill per AZ-hour and per GB, which the catalog has not sourced."""
    if resource.inputs.get("vpcEndpointType") != "Gateway":
        pricer.unpriced(resource, "interface VPC endpoint: no price in catalog", AWS)


def _aws_node_group(pricer: _Pricer, resource: RecordedResource) -> None:
    types = resource.inputs.get("instanceTypes")
    scaling = resource.inputs.get("scalingConfig") if isinstance(resource.inputs.get("scalingConfig"), dict) else {}
    desired = _number(scaling.get("desiredSize"))
    instance_type = types[0] if isinstance(types, list) and types and isinstance(types[0], str) else None
    if instance_type is None or desired is None:
        pricer.unpriced(resource, "node group without a known instance type or size: no price in catalog", AWS)
        return
    if resource.inputs.get("capacityType", "ON_DEMAND") != "ON_DEMAND":
        pricer.unpriced(resource, f"{instance_type} {resource.inputs['capacityType']} nodes: no price in catalog",
                        AWS)
        return
    pricer.fixed(resource, f"aws-ec2-{instance_type}", f"EC2 {instance_type} x {_plain(desired)} nodes (desired)",
                 AWS, quantity=desired, hourly=True)
    _aws_node_root_volumes(pricer, resource, desired)
    if instance_type.startswith("t"):
        entry = pricer.entry("aws-ec2-t-surplus-credits")
        if entry is not None and entry.usd is not None:
            hours = pricer.assume.t_family_surplus_vcpu_hours
            pricer.usage(resource, f"{instance_type} surplus CPU credits (unlimited mode)",
                         f"assumed {_plain(hours)} surplus vCPU-hours a month (average CPU at or under the "
                         f"baseline) x ${entry.usd}/vCPU-h", hours * entry.usd, [entry], AWS)


def _aws_node_root_volumes(pricer: _Pricer, resource: RecordedResource, nodes: Decimal) -> None:
    size: Decimal | None = None
    volume_type: str | None = None
    for template in _depends_on(pricer, resource, "aws:ec2/launchTemplate:LaunchTemplate"):
        for mapping in template.inputs.get("blockDeviceMappings") or []:
            ebs = mapping.get("ebs") if isinstance(mapping, dict) else None
            if isinstance(ebs, dict):
                size = _number(ebs.get("volumeSize"))
                volume_type = ebs.get("volumeType") if isinstance(ebs.get("volumeType"), str) else None
    if size is None:
        size = _number(resource.inputs.get("diskSize")) or Decimal(20)  # EKS's default root volume
    if volume_type is None:
        pricer.unpriced(resource, f"root volumes {_plain(size)} GB of unset type: no price in catalog", AWS)
        return
    entry = pricer.entry(f"aws-ebs-{volume_type}")
    rate = f" x ${entry.usd}/GB" if entry is not None and entry.usd is not None else ""
    pricer.fixed(resource, f"aws-ebs-{volume_type}",
                 f"root EBS {volume_type} {_plain(size)} GB x {_plain(nodes)} nodes{rate}", AWS,
                 quantity=size * nodes)


def _aws_nat_gateway(pricer: _Pricer, resource: RecordedResource) -> None:
    pricer.fixed(resource, "aws-nat-gateway", "NAT gateway", AWS, hourly=True)
    entry = pricer.entry("aws-nat-gateway-processed")
    if entry is not None and entry.usd is not None:
        gb = pricer.assume.nat_processed_gb
        pricer.usage(resource, "NAT gateway data processed",
                     f"assumed {_plain(gb)} GB a month through the NAT gateway x ${entry.usd}/GB", gb * entry.usd,
                     [entry], AWS)


def _aws_eip(pricer: _Pricer, resource: RecordedResource) -> None:
    pricer.fixed(resource, "aws-public-ipv4", "public IPv4 address (Elastic IP)", AWS, hourly=True)


def _aws_load_balancer(pricer: _Pricer, resource: RecordedResource) -> None:
    if resource.inputs.get("loadBalancerType", "application") != "application":
        pricer.unpriced(resource, f"{resource.inputs['loadBalancerType']} load balancer: no price in catalog", AWS)
        return
    pricer.fixed(resource, "aws-alb", "Application Load Balancer", AWS, hourly=True)
    if resource.inputs.get("internal") is not True:
        subnets = resource.inputs.get("subnets")
        count = len(subnets) if isinstance(subnets, list) else len(
            _depends_on(pricer, resource, "aws:ec2/subnet:Subnet"))
        if count:
            pricer.fixed(resource, "aws-public-ipv4", f"ALB public IPv4, one per subnet x {count}", AWS,
                         quantity=Decimal(count), hourly=True)
        else:
            pricer.unpriced(resource, "ALB public IPv4 addresses (subnets unknown): no price in catalog", AWS)
    entry = pricer.entry("aws-alb-lcu")
    if entry is not None and entry.usd is not None:
        lcu = pricer.assume.alb_average_lcu
        pricer.usage(resource, "ALB capacity units (LCU)",
                     f"assumed {_plain(lcu)} LCU on average x ${entry.usd}/LCU-h x {pricer.hours} h",
                     lcu * entry.usd * pricer.hours, [entry], AWS)


def _aws_rds_instance(pricer: _Pricer, resource: RecordedResource) -> None:
    inputs = resource.inputs
    instance_class, multi_az = inputs.get("instanceClass"), inputs.get("multiAz") is True
    deployment, shown = ("multi-az", "Multi-AZ") if multi_az else ("single", "single-AZ")
    if inputs.get("engine") != "postgres":
        pricer.unpriced(resource, f"RDS {inputs.get('engine')} {instance_class}: no price in catalog", AWS)
    else:
        pricer.fixed(resource, f"aws-rds-pg-{instance_class}-{deployment}",
                     f"RDS PostgreSQL {instance_class}, {shown}", AWS, hourly=True)
    storage = _number(inputs.get("allocatedStorage"))
    storage_type = inputs.get("storageType", "gp2")
    if storage is None or storage_type != "gp3":
        pricer.unpriced(resource, f"RDS {storage_type} storage: no price in catalog", AWS)
    else:
        entry = pricer.entry(f"aws-rds-gp3-{deployment}")
        rate = f" x ${entry.usd}/GB" if entry is not None and entry.usd is not None else ""
        pricer.fixed(resource, f"aws-rds-gp3-{deployment}", f"RDS gp3 storage {_plain(storage)} GB{rate} ({shown})",
                     AWS, quantity=storage)
    entry = pricer.entry("aws-rds-backup-storage")
    if entry is not None and entry.usd is not None:
        gb = pricer.assume.rds_backup_over_provisioned_gb
        pricer.usage(resource, "RDS backup storage beyond 100 % of provisioned storage",
                     f"assumed {_plain(gb)} GB a month beyond the free 100 % x ${entry.usd}/GB-month",
                     gb * entry.usd, [entry], AWS)
    if inputs.get("manageMasterUserPassword") is True:
        # RDS creates and rotates the secret itself (ManageMasterUserPassword): billed, never recorded.
        pricer.fixed(resource, "aws-secrets-manager-secret", "Secrets Manager secret of the RDS-managed master "
                     "password", AWS)
    _aws_rds_logs(pricer, resource)


def _aws_rds_logs(pricer: _Pricer, resource: RecordedResource) -> None:
    """CloudWatch Logs that RDS writes into log groups of its own, outside the program: billed, never recorded.

    "RDS delivers the metrics from Enhanced Monitoring to your Amazon CloudWatch Logs account"
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Monitoring.html), into the ``RDSOSMetrics`` log
    group: the same usage line as exported logs."""
    inputs, logs = resource.inputs, pricer.entry("aws-cloudwatch-logs")
    entries = [logs] if logs is not None else []
    exports = inputs.get("enabledCloudwatchLogsExports")
    if isinstance(exports, list) and exports:
        pricer.usage(resource, "CloudWatch Logs ingestion and storage",
                     f"RDS exports its {', '.join(str(name) for name in exports)} logs; volume follows activity; "
                     "price not sourced yet (unconfirmed)", None, entries, AWS)
    interval = _number(inputs.get("monitoringInterval"))
    if interval:
        pricer.usage(resource, "CloudWatch Logs ingestion and storage (Enhanced Monitoring)",
                     f"RDSOSMetrics events every {_plain(interval)} s per instance; price not sourced yet "
                     "(unconfirmed)", None, entries, AWS)


def _aws_replication_group(pricer: _Pricer, resource: RecordedResource) -> None:
    inputs = resource.inputs
    engine, node_type = inputs.get("engine", "redis"), inputs.get("nodeType")
    nodes = _number(inputs.get("numCacheClusters"))
    family = {"valkey": "valkey", "redis": "redis"}.get(engine) if isinstance(engine, str) else None
    if family is None or nodes is None:
        pricer.unpriced(resource, f"ElastiCache {engine} {node_type} group: no price in catalog", AWS)
    else:
        shown = "Valkey" if family == "valkey" else "Redis OSS"
        pricer.fixed(resource, f"aws-elasticache-{family}-{node_type}",
                     f"ElastiCache {shown} {node_type} x {_plain(nodes)} nodes", AWS, quantity=nodes, hourly=True)
    retention = _number(inputs.get("snapshotRetentionLimit")) or Decimal(0)
    entry = pricer.entry("aws-elasticache-backup-storage")
    if retention > 0 and entry is not None and entry.usd is not None:
        gb = pricer.assume.elasticache_backup_gb
        pricer.usage(resource, "ElastiCache snapshot storage",
                     f"assumed {_plain(gb)} GB of snapshots kept x ${entry.usd}/GB-month", gb * entry.usd,
                     [entry], AWS)


def _aws_alarm(pricer: _Pricer, resource: RecordedResource) -> None:
    period = _number(resource.inputs.get("period"))
    # Alarms evaluating periods under a minute are high-resolution alarms.
    if period is not None and period < 60:
        pricer.fixed(resource, "aws-cloudwatch-alarm-high-resolution", "CloudWatch alarm, high resolution", AWS)
    else:
        pricer.fixed(resource, "aws-cloudwatch-alarm-standard", "CloudWatch alarm, standard resolution", AWS)


def _aws_kms_key(pricer: _Pricer, resource: RecordedResource) -> None:
    pricer.fixed(resource, "aws-kms-key", "KMS customer managed key", AWS)


def _aws_sns_topic(pricer: _Pricer, resource: RecordedResource) -> None:
    entry = pricer.entry("aws-sns-email")
    if entry is None or entry.usd is None:
        pricer.unpriced(resource, "SNS topic notifications: no price in catalog", AWS)
        return
    sent = pricer.assume.sns_email_notifications
    free = (entry.free_per_month or Decimal(0)) * 100_000  # the unit is 100,000 notifications
    pricer.usage(resource, "SNS e-mail notifications",
                 f"assumed {_plain(sent)} alarm e-mails a month; the first {_plain(free)} are free, then "
                 f"${entry.usd} per 100,000", max(Decimal(0), sent - free) / 100_000 * entry.usd, [entry], AWS)


CONTAINER_LOG_GROUP_PREFIX = "/aws/containerinsights/"
"""The groups of ``cluster.containerLogs`` (Fluent Bit and the CloudWatch agent write there)."""


def _aws_log_group(pricer: _Pricer, resource: RecordedResource) -> None:
    entry = pricer.entry("aws-cloudwatch-logs")
    retention = _number(resource.inputs.get("retentionInDays"))
    kept = f", kept {_plain(retention)} days" if retention is not None else ""
    group_name = resource.inputs.get("name")
    source = ("container stdout/stderr and Container Insights data, billed per GB ingested: volume follows how "
              "much the app logs" if isinstance(group_name, str) and group_name.startswith(CONTAINER_LOG_GROUP_PREFIX)
              else "volume follows traffic and API activity")
    pricer.usage(resource, "CloudWatch Logs ingestion and storage",
                 f"{source}{kept}; price not sourced yet (unconfirmed)", None,
                 [entry] if entry is not None else [], AWS)


def _aws_s3_bucket(pricer: _Pricer, resource: RecordedResource) -> None:
    """S3 Standard storage and PUT requests of what the bucket holds (the ALB's access logs): usage-based."""
    entry = pricer.entry("aws-s3-standard-storage")
    pricer.usage(resource, "S3 Standard storage and requests (ALB access logs)",
                 "volume follows traffic (about 1 KB per request before gzip), kept until the lifecycle rule "
                 "expires it; price not sourced yet (unconfirmed)", None, [entry] if entry is not None else [], AWS)


def _aws_transfer(pricer: _Pricer) -> None:
    if not pricer.recording.of_type("aws:lb/loadBalancer:LoadBalancer"):
        return
    entry = pricer.entry("aws-data-transfer-out")
    pricer.usage(None, "internet data transfer out (responses to Cloudflare)",
                 "volume follows traffic; price not sourced yet (unconfirmed)", None,
                 [entry] if entry is not None else [], AWS, type_token="aws:lb/loadBalancer:LoadBalancer",
                 name="account (data transfer)")


# --- Cloudflare ---------------------------------------------------------------------------------------

CF = "cloudflare"


def _cf_free_plan(description: str) -> Callable[[_Pricer, RecordedResource], None]:
    def price(pricer: _Pricer, resource: RecordedResource) -> None:
        pricer.fixed(resource, "cf-free-plan", f"{description} (Free plan)", CF)

    return price


BACKUPS_BUCKET_SUFFIX = "-backups"
"""How the stack's backups bucket is named (``<project>-<stack>-backups``, ``infra.backups``)."""


def _cf_r2_bucket(pricer: _Pricer, resource: RecordedResource) -> None:
    storage, class_a, class_b = (pricer.entry(price_id) for price_id in ("cf-r2-storage", "cf-r2-class-a",
                                                                          "cf-r2-class-b"))
    if any(entry is None or entry.usd is None for entry in (storage, class_a, class_b)):
        pricer.unpriced(resource, "R2 bucket: no price in catalog", CF)
        return
    assume = pricer.assume
    name = str(resource.inputs.get("name", resource.name))
    if name.endswith(BACKUPS_BUCKET_SUFFIX) and storage is not None and class_a is not None:
        # R2's free tier and its rounding apply once per account, to its total; they are counted on the media
        # bucket's line, so this one is the backups' whole share. Reads happen only on restores.
        backup_amount = (assume.r2_backup_stored_gb * (storage.usd or Decimal(0))
                         + assume.r2_backup_class_a_million * (class_a.usd or Decimal(0)))
        pricer.usage(resource, f"R2 backups bucket {name}",
                     f"assumed {_plain(assume.r2_backup_stored_gb)} GB of backups and WAL stored and "
                     f"{_plain(assume.r2_backup_class_a_million)} M Class A operations a month, beyond the "
                     "account's free tier (counted on the media bucket), restores' reads and egress free",
                     backup_amount, [storage, class_a], CF)
        return
    used = [(storage, assume.r2_stored_gb), (class_a, assume.r2_class_a_million),
            (class_b, assume.r2_class_b_million)]
    # R2 rounds usage up to the next billing unit before the free tier is taken off.
    amount = sum((max(Decimal(0), Decimal(math.ceil(quantity)) - (entry.free_per_month or Decimal(0))) * entry.usd
                  for entry, quantity in used if entry is not None and entry.usd is not None), Decimal(0))
    inside = " (inside the free tier)" if amount == 0 else ""
    pricer.usage(resource, f"R2 bucket {resource.inputs.get('name', resource.name)}",
                 f"assumed {_plain(assume.r2_stored_gb)} GB stored, {_plain(assume.r2_class_a_million)} M Class A "
                 f"and {_plain(assume.r2_class_b_million)} M Class B operations a month, egress free{inside}",
                 amount, [entry for entry, _ in used if entry is not None], CF)


# --- Dispatch -----------------------------------------------------------------------------------------

_PRICERS: dict[str, Callable[[_Pricer, RecordedResource], None]] = {
    _DO_DROPLET: _do_droplet,
    "digitalocean:index/volume:Volume": _do_volume,
    "digitalocean:index/loadBalancer:LoadBalancer": _do_load_balancer,
    "digitalocean:index/reservedIp:ReservedIp": _do_reserved_ip,
    "digitalocean:index/vpc:Vpc": _do_vpc,
    "digitalocean:index/firewall:Firewall": _do_firewall,
    "aws:eks/cluster:Cluster": _aws_eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _aws_node_group,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _aws_vpc_endpoint,
    "aws:ec2/natGateway:NatGateway": _aws_nat_gateway,
    "aws:ec2/eip:Eip": _aws_eip,
    "aws:lb/loadBalancer:LoadBalancer": _aws_load_balancer,
    "aws:rds/instance:Instance": _aws_rds_instance,
    "aws:elasticache/replicationGroup:ReplicationGroup": _aws_replication_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _aws_alarm,
    "aws:kms/key:Key": _aws_kms_key,
    "aws:sns/topic:Topic": _aws_sns_topic,
    "aws:cloudwatch/logGroup:LogGroup": _aws_log_group,
    "aws:s3/bucket:Bucket": _aws_s3_bucket,
    "cloudflare:index/dnsRecord:DnsRecord": _cf_free_plan("DNS record, proxied"),
    "cloudflare:index/zoneSetting:ZoneSetting": _cf_free_plan("zone setting"),
    "cloudflare:index/originCaCertificate:OriginCaCertificate": _cf_free_plan("Origin CA certificate"),
    "cloudflare:index/r2Bucket:R2Bucket": _cf_r2_bucket,
}

NOT_BILLABLE: dict[str, str] = {
    "digitalocean:index/reservedIpAssignment:ReservedIpAssignment": "priced on the reserved IP (assigned: $0)",
    "digitalocean:index/project:Project": "groups resources in the DigitalOcean console",
    "digitalocean:index/projectResources:ProjectResources": "puts resources in a project (the console grouping)",
    "digitalocean:index/tag:Tag": "a label",
    "aws:ec2/vpc:Vpc": "VPC: $0 (A10)",
    "aws:ec2/subnet:Subnet": "subnet: $0 (A10)",
    "aws:ec2/routeTable:RouteTable": "route table: $0 (A10)",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "route table association: $0 (A10)",
    "aws:ec2/internetGateway:InternetGateway": "internet gateway: $0 (A10)",
    "aws:ec2/securityGroup:SecurityGroup": "security group: $0 (A10)",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "security group: $0 (A10)",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "security group rule: $0 (A10)",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "security group rule: $0 (A10)",
    "aws:ec2/flowLog:FlowLog": "flow log: its log group carries the usage (A10)",
    "aws:ec2/launchTemplate:LaunchTemplate": "its root volumes are priced on the node group (A10)",
    "aws:iam/role:Role": "IAM (A10)",
    "aws:iam/rolePolicy:RolePolicy": "IAM (A10)",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "IAM (A10)",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "IAM (A10)",
    "aws:kms/alias:Alias": "priced on its key (A10)",
    "aws:rds/parameterGroup:ParameterGroup": "configuration of the priced instance (A10)",
    "aws:rds/subnetGroup:SubnetGroup": "configuration of the priced instance (A10)",
    "aws:elasticache/parameterGroup:ParameterGroup": "configuration of the priced group (A10)",
    "aws:elasticache/subnetGroup:SubnetGroup": "configuration of the priced group (A10)",
    "aws:lb/targetGroup:TargetGroup": "part of the priced load balancer (A10)",
    "aws:lb/listener:Listener": "part of the priced load balancer (A10)",
    "aws:sns/topicPolicy:TopicPolicy": "configuration of the topic (A10)",
    "aws:sns/topicSubscription:TopicSubscription": "its notifications are counted on the topic's usage line",
    "aws:autoscaling/attachment:Attachment": "registers the priced nodes with the priced load balancer",
    "aws:eks/addon:Addon": "add-on software running on the priced nodes",
    "aws:eks/accessEntry:AccessEntry": "access configuration of the priced cluster",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "access configuration of the priced cluster",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "configuration of the priced bucket",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "configuration of the priced bucket",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        "configuration of the priced bucket (SSE-S3 is free)",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "configuration of the priced bucket",
    "aws:s3/bucketPolicy:BucketPolicy": "configuration of the priced bucket",
    "cloudflare:index/apiToken:ApiToken": "an API token (Cloudflare does not charge for tokens)",
    "cloudflare:index/r2BucketLifecycle:R2BucketLifecycle": "a bucket's lifecycle rules (R2 bills the objects and "
                                                            "operations, not the rules)",
    "digitalocean:index/uptimeAlert:UptimeAlert": "an alert on its uptime check, which carries any price",
}
"""Cloud objects phasekit creates that cost nothing by themselves, with the reason (A10: PRICES.md's source
for AWS's free resources)."""

_NOT_CLOUD_OBJECTS = ("pulumi:providers:", "random:", "tls:", "command:", "kubernetes:")

_UNPRICED_NAMES = {
    "digitalocean:index/monitorAlert:MonitorAlert": "DigitalOcean monitoring alert policy",
    "digitalocean:index/uptimeCheck:UptimeCheck": "DigitalOcean uptime check",
    "aws:acm/certificate:Certificate": "ACM certificate (imported)",
}


def _provider_of(type_token: str) -> str:
    return type_token.split(":", 1)[0]


def estimate(recording: Recording, catalog: PriceCatalog | None = None, on: date | None = None) -> CostEstimate:
    """Price every billable resource of the recording; see the module docstring for the kinds of line.

    ``on`` (default: today, UTC) is the day priced: an EKS version past its standard support that day bills
    extended support."""
    catalog = catalog or load_catalog()
    pricer = _Pricer(catalog, recording, on or datetime.now(UTC).date())
    for resource in recording.resources:
        if not resource.custom or resource.type.startswith(_NOT_CLOUD_OBJECTS) or resource.type in NOT_BILLABLE:
            continue
        price = _PRICERS.get(resource.type)
        if price is None:
            shown = _UNPRICED_NAMES.get(resource.type, resource.type)
            pricer.unpriced(resource, f"{shown}: no price in catalog", _provider_of(resource.type))
        else:
            price(pricer, resource)
    _do_transfer(pricer)
    _aws_transfer(pricer)
    # Cloud hosts first, then the edge; by resource name within each, a resource's own lines in order.
    lines = sorted(pricer.lines, key=lambda line: (line.provider == CF, line.name, line.type))
    return CostEstimate(lines=tuple(lines), catalog_date=catalog.catalog_date)


# --- Rendering ------------------------------------------------------------------------------------------


def cost_lines(estimate: CostEstimate) -> list[str]:
    """The plan's "Monthly cost" section."""
    priced = estimate.priced
    width = max([len("resource"), *(len(line.name) for line in estimate.lines)])
    item_width = max([len("item"), *(len(line.description) for line in priced)])
    amount_width = max([len("USD/month"), len(money(estimate.total_usd)),
                        *(len(money(line.monthly_usd)) for line in priced if line.monthly_usd is not None)])
    lines = [f"Monthly cost (USD, list prices as of {estimate.catalog_date.isoformat()}):",
             f"  {'resource':<{width}}  {'item':<{item_width}}  {'USD/month':>{amount_width}}  status"]
    for line in priced:
        amount = money(line.monthly_usd) if line.monthly_usd is not None else ""
        status = line.status.value if line.status else ""
        lines.append(f"  {line.name:<{width}}  {line.description:<{item_width}}  {amount:>{amount_width}}  {status}")
    lines.append(f"  {'total':<{width}}  {'':<{item_width}}  {money(estimate.total_usd):>{amount_width}}")
    if estimate.unconfirmed:
        lines += ["", f"Unconfirmed prices (not in the total; leads add {money(estimate.unconfirmed_lead_usd)}, "
                      f"total with leads {money(estimate.total_with_leads_usd)}):"]
        for line in estimate.unconfirmed:
            lead = (f"unconfirmed (lead ${money(line.lead_usd)}, not counted)" if line.lead_usd is not None
                    else "unconfirmed (no lead, not counted)")
            lines.append(f"  {line.name:<{width}}  {line.description}: {lead}")
    if estimate.unpriced:
        lines += ["", f"No price in catalog (not in the total): {len(estimate.unpriced)}"]
        lines += [f"  {line.name:<{width}}  {line.description}" for line in estimate.unpriced]
    if estimate.usage_based:
        lines += ["", "Usage-based (not in the total; edit usage_assumptions in phasekit/prices.yaml):"]
        for line in estimate.usage_based:
            result = f"${money(line.assumed_usd)}" if line.assumed_usd is not None else "not estimated"
            lines.append(f"  {line.name:<{width}}  {line.description}: {line.assumption} -> {result}")
    lines += ["", f"{estimate.secondary_or_derived_count} of {len(priced)} priced lines rest on secondary or "
                  "derived prices.",
              f"Prices as of {estimate.catalog_date.isoformat()}, from {estimate.catalog_path}; secondary prices: "
              "re-check before relying on them."]
    return lines


def _line_json(line: CostLine) -> dict[str, Any]:
    return {
        "urn": line.urn, "type": line.type, "name": line.name, "description": line.description,
        "kind": line.kind.value, "provider": line.provider,
        "monthlyUsd": str(line.monthly_usd) if line.monthly_usd is not None else None,
        "status": line.status.value if line.status else None, "priceIds": list(line.price_ids),
        "leadUsd": str(line.lead_usd) if line.lead_usd is not None else None,
        "assumption": line.assumption,
        "assumedUsd": str(line.assumed_usd) if line.assumed_usd is not None else None,
    }


def cost_json(estimate: CostEstimate) -> dict[str, Any]:
    return {
        "currency": "USD",
        "catalog": estimate.catalog_path,
        "catalogDate": estimate.catalog_date.isoformat(),
        "totalUsd": str(estimate.total_usd),
        "unconfirmedLeadUsd": str(estimate.unconfirmed_lead_usd),
        "totalWithLeadsUsd": str(estimate.total_with_leads_usd),
        "secondaryOrDerivedLines": estimate.secondary_or_derived_count,
        "counts": {kind.value: sum(1 for line in estimate.lines if line.kind is kind) for kind in LineKind},
        "lines": [_line_json(line) for line in estimate.lines],
    }
