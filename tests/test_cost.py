"""The price catalog and the monthly cost estimate of each committed stack.

Expected totals are worked out here by hand from the catalog's named prices (pinned first, so a catalog edit
fails with the price that moved), never by calling the estimator twice. What this cannot prove: that the
list prices are still current (the catalog's sources and dates say how old each one is).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import yaml

from components.testing import RecordedResource, Recording
from infra.errors import ConfigError
from phasekit.cost import (
    CATALOG_PATH,
    LineKind,
    PriceStatus,
    cost_json,
    cost_lines,
    estimate,
    load_catalog,
)
from phasekit.plan import run_plan

ROOT = Path(__file__).resolve().parents[1]
D = Decimal
HOURS = 730


def c(amount: Decimal) -> Decimal:
    """One line's USD a month, rounded to cents as the estimate rounds each line."""
    return amount.quantize(D("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


PRICED_ON = date(2026, 12, 3)
"""The day the committed stacks are priced for (EKS support periods depend on it)."""


@pytest.fixture(scope="module")
def estimates():
    return {stack: estimate(run_plan(stack, ROOT).recording, on=PRICED_ON) for stack in ("phase1", "phase2", "phase3")}


def usd(catalog, price_id: str) -> Decimal:
    entry = catalog.price(price_id)
    assert entry is not None, price_id
    return entry.usd if entry.usd is not None else entry.fraction


# --- Catalog ------------------------------------------------------------------------------------------


def test_catalog_pins_the_prices_the_committed_stacks_use(catalog):
    assert catalog.catalog_date == date(2026, 11, 23)
    assert catalog.conventions.aws_hours_per_month == HOURS
    pinned = {
        "do-droplet-s-1vcpu-2gb": "12.00", "do-droplet-s-2vcpu-2gb": "18.00", "do-droplet-s-2vcpu-4gb": "24.00",
        "do-backups-weekly": "0.20", "do-backups-daily": "0.30", "do-volume": "0.10",
        "do-reserved-ip-assigned": "0.00", "do-vpc": "0.00", "do-cloud-firewall": "0.00",
        "aws-eks-cluster-standard": "0.10", "aws-ec2-t3.large": "0.0832", "aws-ebs-gp3": "0.08",
        "aws-nat-gateway": "0.045", "aws-public-ipv4": "0.005", "aws-alb": "0.0225",
        "aws-rds-pg-db.t4g.medium-multi-az": "0.130", "aws-rds-gp3-multi-az": "0.23",
        "aws-elasticache-redis-cache.t4g.small": "0.032", "aws-elasticache-valkey-factor": "0.8",
        "aws-elasticache-valkey-cache.t4g.small": "0.0256", "aws-cloudwatch-alarm-standard": "0.10",
        "cf-free-plan": "0.00",
    }
    assert {price_id: str(usd(catalog, price_id)) for price_id in pinned} == pinned
    leads = {"do-load-balancer-node": "12.00", "aws-kms-key": "1.00"}
    assert {price_id: (catalog.price(price_id).usd, str(catalog.price(price_id).lead_usd))
            for price_id in leads} == {price_id: (None, lead) for price_id, lead in leads.items()}


def test_catalog_entries_carry_status_source_and_date(catalog):
    droplet = catalog.price("do-droplet-s-1vcpu-2gb")
    assert (droplet.status, droplet.source, droplet.as_of, droplet.unit) == (
        PriceStatus.SECONDARY, ("D1", "D2"), date(2024, 3, 26), "month")
    valkey = catalog.price("aws-elasticache-valkey-cache.t4g.small")
    assert (valkey.status, valkey.base, valkey.factor) == (
        PriceStatus.DERIVED, "aws-elasticache-redis-cache.t4g.small", "aws-elasticache-valkey-factor")
    balancer = catalog.price("do-load-balancer-node")
    assert (balancer.status, balancer.usd, balancer.lead_usd, balancer.lead_note) == (
        PriceStatus.UNCONFIRMED, None, D("12.00"), "older official doc: 10.00")
    assert catalog.sources["D13"].in_prices_md is False
    assert catalog.sources["D1"].in_prices_md is True


def test_catalog_follows_prices_md_and_marks_what_it_adds(catalog):
    # PRICES.md lists "KMS per key" as not yet sourced: unconfirmed, whatever Infracost's output suggests.
    kms = catalog.price("aws-kms-key")
    assert (kms.status, kms.usd, kms.lead_usd, kms.source, kms.in_prices_md) == (
        PriceStatus.UNCONFIRMED, None, D("1.00"), ("A12",), True)
    assert catalog.sources["A12"].in_prices_md is False
    added = sorted(entry.id for entry in catalog.prices if not entry.in_prices_md)
    assert added == ["aws-sns-email", "do-cloud-firewall"]
    assert catalog.sources["A14"].in_prices_md is False
    assert {entry.id: entry.source for entry in catalog.prices if not entry.in_prices_md} == {
        "aws-sns-email": ("A13",), "do-cloud-firewall": ("D13",)}
    unconfirmed = sorted(entry.id for entry in catalog.prices if entry.status is PriceStatus.UNCONFIRMED)
    assert unconfirmed == [
        "aws-cloudwatch-alarm-free-tier", "aws-cloudwatch-logs", "aws-data-transfer-out", "aws-kms-key",
        "aws-rds-pg-db.r7g.large-single", "aws-s3-standard-storage", "aws-secrets-manager-secret", "cf-business-plan", "cf-pro-plan", "do-droplet-premium-basic",
        "do-load-balancer-node", "do-reserved-ip-unassigned"]
    assert catalog.specs.aws_ec2["t3.large"].memory_gib == D("8")
    assert catalog.specs.aws_rds["db.t4g.medium"].vcpus == 2


def _bad_catalog(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(CATALOG_PATH.read_text())
    change(raw)
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _entry(raw: dict, price_id: str) -> dict:
    return next(entry for entry in raw["prices"] if entry["id"] == price_id)


def _index(raw: dict, price_id: str) -> int:
    return next(index for index, entry in enumerate(raw["prices"]) if entry["id"] == price_id)


BAD_CATALOGS = [
    ("a float price",
     lambda raw: _entry(raw, "do-volume").update(usd=0.1),
     "prices[{do-volume}] (do-volume).usd: 0.1 is not a decimal string; allowed: a quoted decimal such as "
     "\"12.00\""),
    ("an unknown source key",
     lambda raw: _entry(raw, "do-volume").update(source=["D7", "Z9"]),
     "prices[{do-volume}] (do-volume): source: 'Z9' is not a key of sources; allowed: "),
    ("a derived price whose arithmetic is wrong",
     lambda raw: _entry(raw, "aws-elasticache-valkey-cache.t4g.small").update(usd="0.0260"),
     "prices[{aws-elasticache-valkey-cache.t4g.small}] (aws-elasticache-valkey-cache.t4g.small): usd: 0.0260 is "
     "not 0.032 x 0.8 = 0.0256"),
    ("an unconfirmed price with a usd",
     lambda raw: _entry(raw, "do-load-balancer-node").update(usd="12.00"),
     "prices[{do-load-balancer-node}] (do-load-balancer-node): usd: an unconfirmed price has usd: null; allowed: "
     "put the suggested value in lead_usd"),
    ("an unknown key",
     lambda raw: _entry(raw, "do-vpc").update(colour="blue"),
     "prices[{do-vpc}] (do-vpc).colour: unknown key; allowed: the keys documented at the top of the catalog"),
    ("a missing date",
     lambda raw: _entry(raw, "do-vpc").pop("as_of"),
     "prices[{do-vpc}] (do-vpc).as_of: missing"),
    ("a duplicated id",
     lambda raw: raw["prices"].append(dict(_entry(raw, "do-vpc"))),
     "prices[{last}] (do-vpc): id: 'do-vpc' is listed twice; allowed: each id once"),
    ("a lead on a confirmed price",
     lambda raw: _entry(raw, "do-vpc").update(lead_usd="1.00"),
     "prices[{do-vpc}] (do-vpc): lead_usd: only unconfirmed prices carry a lead; this one is secondary"),
    ("a confirmed price from outside PRICES.md that does not say so",
     lambda raw: _entry(raw, "do-cloud-firewall").pop("in_prices_md"),
     "prices[{do-cloud-firewall}] (do-cloud-firewall): in_prices_md: missing; allowed: false, since every source "
     "(D13) is outside PRICES.md"),
    ("a price marked as added that cites PRICES.md",
     lambda raw: _entry(raw, "do-vpc").update(in_prices_md=False),
     "prices[{do-vpc}] (do-vpc): in_prices_md: false, but source D12 includes PRICES.md sources; allowed: only "
     "sources marked in_prices_md: false"),
]


@pytest.mark.parametrize(("change", "message"), [case[1:] for case in BAD_CATALOGS],
                         ids=[case[0] for case in BAD_CATALOGS])
def test_a_bad_catalog_stops_with_one_line_naming_the_entry_and_key(tmp_path, change, message):
    raw = yaml.safe_load(CATALOG_PATH.read_text())
    indexes = {entry["id"]: index for index, entry in enumerate(raw["prices"])}
    # "prices[{id}]" in a message stands for that entry's index; "{last}" for one past the end.
    expected = re.sub(r"\{([^}]+)\}", lambda match: str(len(raw["prices"]) if match[1] == "last"
                                                      else indexes[match[1]]), message)
    path = _bad_catalog(tmp_path, change)
    with pytest.raises(ConfigError) as raised:
        load_catalog(path)
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(f"{path.resolve()}: {expected}")


def test_a_catalog_that_is_not_yaml_names_the_file(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("prices: [unclosed\n")
    with pytest.raises(ConfigError) as raised:
        load_catalog(path)
    assert str(raised.value) == f"{path.resolve()}:2:1: not valid YAML: expected ',' or ']', but got '<stream end>'"
    with pytest.raises(ConfigError) as raised:
        load_catalog(tmp_path / "absent.yaml")
    assert str(raised.value) == f"{tmp_path / 'absent.yaml'}: cannot read the price catalog: No such file or directory"


# --- Totals of the committed stacks -------------------------------------------------------------------


def test_phase1_total(estimates):
    # do-droplet-s-1vcpu-2gb + do-backups-weekly x droplet + do-volume x 20 GiB; VPC, reserved IP, firewall,
    # Cloudflare: $0.
    expected = D("12.00") + c(D("0.20") * D("12.00")) + c(20 * D("0.10"))
    assert expected == D("16.40")
    assert estimates["phase1"].total_usd == expected
    assert estimates["phase1"].unconfirmed_lead_usd == D("0.00")


def test_phase2_total(estimates):
    # Two app droplets s-2vcpu-2gb and the database droplet s-2vcpu-4gb, each with weekly backups, and a
    # 40 GiB volume; the load balancer's price is unconfirmed (lead 12.00 per node, one node).
    expected = (2 * (D("18.00") + c(D("0.20") * D("18.00"))) + D("24.00") + c(D("0.20") * D("24.00"))
                + c(40 * D("0.10")))
    assert expected == D("76.00")
    assert estimates["phase2"].total_usd == expected
    assert estimates["phase2"].unconfirmed_lead_usd == D("12.00")
    assert estimates["phase2"].total_with_leads_usd == D("88.00")


def test_phase3_total(estimates):
    expected = (
        c(D("0.10") * HOURS)                    # EKS control plane, standard support
        + c(D("0.0832") * 2 * HOURS)            # EC2 t3.large x 2 desired nodes
        + c(50 * 2 * D("0.08"))                 # root EBS gp3 50 GB per node (launch template)
        + c(D("0.045") * HOURS)                 # NAT gateway
        + c(D("0.005") * HOURS)                 # its Elastic IP (public IPv4)
        + c(D("0.0225") * HOURS)                # ALB
        + c(D("0.005") * 2 * HOURS)             # ALB public IPv4, one per public subnet (2 zones)
        + c(D("0.130") * HOURS)                 # RDS PostgreSQL db.t4g.medium Multi-AZ
        + c(20 * D("0.23"))                     # RDS gp3 20 GB, Multi-AZ rate
        + c(D("0.032") * D("0.8") * 2 * HOURS)  # ElastiCache Valkey cache.t4g.small x 2 nodes
        + 10 * D("0.10")                        # CloudWatch alarms: 3 database, 4 cache, 1 node, 2 ALB
    )
    assert expected == D("400.58")
    assert estimates["phase3"].total_usd == expected
    # The KMS key for Kubernetes Secrets and RDS's master secret: PRICES.md has no confirmed price, so only
    # their leads show.
    assert [(line.name, line.description, line.lead_usd) for line in estimates["phase3"].unconfirmed] == [
        ("cluster-secrets-key", "KMS customer managed key", D("1.00")),
        ("database-db", "Secrets Manager secret of the RDS-managed master password", D("0.40"))]
    assert estimates["phase3"].unconfirmed_lead_usd == D("1.40")
    assert estimates["phase3"].total_with_leads_usd == D("401.98")


@pytest.mark.parametrize(("stack", "budget"), [("phase1", D("20")), ("phase2", D("100")), ("phase3", D("600"))])
def test_committed_stacks_stay_within_budget_counting_unconfirmed_leads(estimates, stack, budget):
    assert estimates[stack].total_with_leads_usd <= budget


def test_phase3_lines_name_their_prices_and_status(estimates):
    lines = {(line.name, line.description): line for line in estimates["phase3"].priced}
    nodes = lines[("cluster-nodes", "EC2 t3.large x 2 nodes (desired)")]
    assert (nodes.monthly_usd, nodes.status, nodes.price_ids) == (D("121.47"), PriceStatus.OFFICIAL,
                                                                 ("aws-ec2-t3.large",))
    cache = lines[("cache-cache", "ElastiCache Valkey cache.t4g.small x 2 nodes")]
    assert (cache.monthly_usd, cache.status) == (D("37.38"), PriceStatus.DERIVED)
    database = lines[("database-db", "RDS PostgreSQL db.t4g.medium, Multi-AZ")]
    assert (database.monthly_usd, database.status) == (D("94.90"), PriceStatus.SECONDARY)
    assert database.urn == "urn:pulumi:phase3::phasekit::phasekit:index:RdsPostgres$aws:rds/instance:Instance::database-db"
    assert estimates["phase3"].secondary_or_derived_count == 2
    assert [(line.name, line.description) for line in estimates["phase3"].unpriced] == [
        ("ingress-cert", "ACM certificate (imported): no price in catalog")]
    assert sorted(line.name for line in estimates["phase3"].usage_based) == [
        "account (data transfer)", "alerts-topic", "backups-bucket", "cache-cache", "cluster-control-plane-logs", "cluster-nodes",
        "database-db", "database-db", "database-db", "edge-media", "ingress-alb", "ingress-logs",
        "network-flow-logs", "network-nat-us-east-1a"]
    exported, monitoring = [line for line in estimates["phase3"].usage_based
                            if line.name == "database-db" and line.description.startswith("CloudWatch Logs")]
    assert (exported.assumption, exported.assumed_usd, exported.status, exported.price_ids) == (
        "RDS exports its postgresql, upgrade logs; volume follows activity; price not sourced yet (unconfirmed)",
        None, PriceStatus.UNCONFIRMED, ("aws-cloudwatch-logs",))
    assert (monitoring.description, monitoring.assumption, monitoring.price_ids) == (
        "CloudWatch Logs ingestion and storage (Enhanced Monitoring)",
        "RDSOSMetrics events every 60 s per instance; price not sourced yet (unconfirmed)", ("aws-cloudwatch-logs",))


def test_the_rds_managed_master_secret_is_an_unconfirmed_lead_beside_the_total(estimates):
    # RDS creates the secret itself, so no resource of the program carries it: the instance's line does.
    [secret] = [line for line in estimates["phase3"].unconfirmed
                if line.price_ids == ("aws-secrets-manager-secret",)]
    assert (secret.name, secret.description, secret.monthly_usd, secret.lead_usd) == (
        "database-db", "Secrets Manager secret of the RDS-managed master password", None, D("0.40"))


def test_phase1_cost_section_line_by_line(estimates):
    assert cost_lines(estimates["phase1"]) == [
        "Monthly cost (USD, list prices as of 2026-11-23):",
        "  resource               item                                USD/month  status",
        "  vps-data               volume 20 GiB x $0.10/GiB                2.00  secondary",
        "  vps-droplet            droplet s-1vcpu-2gb                     12.00  secondary",
        "  vps-droplet            weekly backups (20 % of 12.00)           2.40  secondary",
        "  vps-firewall           cloud firewall                           0.00  official",
        "  vps-ip                 reserved IP, assigned to a droplet       0.00  official",
        "  vps-vpc                VPC                                      0.00  secondary",
        "  edge-always-use-https  zone setting (Free plan)                 0.00  official",
        "  edge-min-tls-version   zone setting (Free plan)                 0.00  official",
        "  edge-origin-cert       Origin CA certificate (Free plan)        0.00  official",
        "  edge-record            DNS record, proxied (Free plan)          0.00  official",
        "  edge-ssl               zone setting (Free plan)                 0.00  official",
        "  edge-tls-1-3           zone setting (Free plan)                 0.00  official",
        "  total                                                          16.40",
        "",
        "No price in catalog (not in the total): 6",
        "  vps-backup-check       DigitalOcean uptime check: no price in catalog",
        "  vps-cpu-alert          DigitalOcean monitoring alert policy: no price in catalog",
        "  vps-disk-alert         DigitalOcean monitoring alert policy: no price in catalog",
        "  vps-memory-alert       DigitalOcean monitoring alert policy: no price in catalog",
        "  vps-site-check         DigitalOcean uptime check: no price in catalog",
        "  vps-volume-check       DigitalOcean uptime check: no price in catalog",
        "",
        "Usage-based (not in the total; edit usage_assumptions in phasekit/prices.yaml):",
        "  droplets (pooled)      outbound transfer beyond the droplets' pooled allowance: assumed 0 GiB a month "
        "beyond the allowance x $0.01/GiB -> $0.00",
        "  backups-bucket         R2 backups bucket phasekit-phase1-backups: assumed 20 GB of backups and WAL stored "
        "and 0.1 M Class A operations a month, beyond the account's free tier (counted on the media bucket), "
        "restores' reads and egress free -> $0.75",
        "  edge-media             R2 bucket phasekit-phase1-media: assumed 10 GB stored, 1 M Class A and 10 M Class "
        "B operations a month, egress free (inside the free tier) -> $0.00",
        "",
        "4 of 12 priced lines rest on secondary or derived prices.",
        "Prices as of 2026-11-23, from phasekit/prices.yaml; secondary prices: re-check before relying on them.",
    ]


def test_phase2_cost_section_shows_the_load_balancer_lead_apart(estimates):
    lines = cost_lines(estimates["phase2"])
    total = lines.index("  total                                                          76.00")
    assert lines[total + 1:total + 4] == [
        "",
        "Unconfirmed prices (not in the total; leads add 12.00, total with leads 88.00):",
        "  split-lb                load balancer, 1 node: unconfirmed (lead $12.00, not counted)",
    ]
    assert "  split-app-0             weekly backups (20 % of 18.00)          3.60  secondary" in lines


def test_phase2_cost_json(estimates):
    document = cost_json(estimates["phase2"])
    assert {key: document[key] for key in ("currency", "catalog", "catalogDate", "totalUsd", "unconfirmedLeadUsd",
                                          "totalWithLeadsUsd", "secondaryOrDerivedLines", "counts")} == {
        "currency": "USD", "catalog": "phasekit/prices.yaml", "catalogDate": "2026-11-23", "totalUsd": "76.00",
        "unconfirmedLeadUsd": "12.00", "totalWithLeadsUsd": "88.00", "secondaryOrDerivedLines": 8,
        "counts": {"priced": 16, "unconfirmed": 1, "unpriced": 9, "usage-based": 3},
    }
    balancer = next(line for line in document["lines"] if line["name"] == "split-lb")
    assert balancer == {
        "urn": "urn:pulumi:phase2::phasekit::phasekit:index:SplitVps$digitalocean:index/loadBalancer:LoadBalancer"
               "::split-lb",
        "type": "digitalocean:index/loadBalancer:LoadBalancer", "name": "split-lb",
        "description": "load balancer, 1 node", "kind": "unconfirmed", "provider": "digitalocean",
        "monthlyUsd": None, "status": "unconfirmed", "priceIds": ["do-load-balancer-node"], "leadUsd": "12.00",
        "assumption": None, "assumedUsd": None,
    }


# --- Single resources, without the runtime --------------------------------------------------------------


def resource(type_token: str, name: str, inputs: dict, **options) -> RecordedResource:
    return RecordedResource(
        urn=f"urn:pulumi:test::phasekit::{type_token}::{name}", id=None, type=type_token, name=name, parent=None,
        inputs=inputs, secret_inputs=frozenset(), protect=False, retain_on_delete=False,
        delete_before_replace=False, ignore_changes=(), dependencies=(), custom=True, **options)


def recording(*resources: RecordedResource) -> Recording:
    return Recording(resources=list(resources))


EKS = "aws:eks/cluster:Cluster"


@pytest.mark.parametrize(("version", "on", "description", "monthly"), [
    # 1.34's standard support ended 2026-12-02 (the issue's finding): from 2026-12-03 it bills extended support.
    ("1.34", date(2026, 12, 2), "EKS control plane, standard support (Kubernetes 1.34, until 2026-12-02)",
     D("0.10") * HOURS),
    ("1.34", date(2026, 12, 3),
     "EKS control plane, extended support (Kubernetes 1.34, standard support ended 2026-12-02)", D("0.60") * HOURS),
    ("1.35", date(2026, 12, 3), "EKS control plane, standard support (Kubernetes 1.35, until 2027-03-27)",
     D("0.10") * HOURS),
    ("1.35", date(2027, 3, 28),
     "EKS control plane, extended support (Kubernetes 1.35, standard support ended 2027-03-27)", D("0.60") * HOURS),
])
def test_the_control_plane_bills_extended_support_once_its_version_is_past_standard_support(
        version, on, description, monthly):
    result = estimate(recording(resource(EKS, "cluster", {"version": version})), on=on)
    assert [(line.kind, line.description, line.monthly_usd) for line in result.lines] == [
        (LineKind.PRICED, description, c(monthly))]


def test_the_s3_gateway_endpoint_is_free_and_an_interface_endpoint_is_unpriced():
    endpoint = "aws:ec2/vpcEndpoint:VpcEndpoint"
    result = estimate(recording(resource(endpoint, "s3", {"vpcEndpointType": "Gateway"}),
                                resource(endpoint, "ecr", {"vpcEndpointType": "Interface"})))
    assert [(line.name, line.kind, line.description) for line in result.lines] == [
        ("ecr", LineKind.UNPRICED, "interface VPC endpoint: no price in catalog")]


def test_a_version_without_a_support_date_is_unpriced_not_guessed():
    result = estimate(recording(resource(EKS, "cluster", {"version": "1.36"})), on=date(2026, 12, 3))
    assert [(line.kind, line.description) for line in result.lines] == [
        (LineKind.UNPRICED, "EKS control plane (Kubernetes 1.36): no standard-support end date in catalog")]


def test_the_support_dates_cite_the_eks_calendar(catalog):
    ends = catalog.eks_standard_support_ends
    assert {version: end.date.isoformat() for version, end in ends.items()} == {
        "1.29": "2025-03-23", "1.30": "2025-07-23", "1.31": "2025-11-26", "1.32": "2026-03-23",
        "1.33": "2026-07-29", "1.34": "2026-12-02", "1.35": "2027-03-27"}
    assert {end.source for end in ends.values()} == {("K1", "K2")}
    assert catalog.sources["K1"].reference.startswith("https://docs.aws.amazon.com/eks/latest/userguide/kubernetes")


def test_a_billable_type_without_a_price_is_unpriced_and_not_in_the_total():
    secret = resource("aws:secretsmanager/secret:Secret", "app-secret", {})
    droplet = resource("digitalocean:index/droplet:Droplet", "big", {"size": "s-32vcpu-192gb", "backups": True,
                                                                     "backupPolicy": {"plan": "weekly"}})
    result = estimate(recording(secret, droplet))
    assert result.total_usd == D("0.00")
    assert result.priced == []
    assert [(line.name, line.description, line.kind) for line in result.unpriced] == [
        ("app-secret", "aws:secretsmanager/secret:Secret: no price in catalog", LineKind.UNPRICED),
        ("big", "droplet s-32vcpu-192gb: no price in catalog", LineKind.UNPRICED),
        ("big", "weekly backups of droplet s-32vcpu-192gb: no price in catalog", LineKind.UNPRICED),
    ]
    assert "No price in catalog (not in the total): 3" in cost_lines(result)


def test_an_unconfirmed_price_shows_its_lead_but_stays_out_of_the_total():
    balancer = resource("digitalocean:index/loadBalancer:LoadBalancer", "lb", {"sizeUnit": 3.0})
    unassigned = resource("digitalocean:index/reservedIp:ReservedIp", "spare-ip", {"region": "nyc3"})
    volume = resource("digitalocean:index/volume:Volume", "data", {"size": 100.0})
    result = estimate(recording(balancer, unassigned, volume))
    assert result.total_usd == D("10.00")
    assert result.unconfirmed_lead_usd == D("3") * D("12.00") + D("4.00")
    assert [(line.name, line.lead_usd) for line in result.unconfirmed] == [("lb", D("36.00")),
                                                                        ("spare-ip", D("4.00"))]
    text = cost_lines(result)
    assert "  lb        load balancer, 3 nodes: unconfirmed (lead $36.00, not counted)" in text
    assert "  spare-ip  reserved IP, unassigned: unconfirmed (lead $4.00, not counted)" in text


@pytest.mark.parametrize(("inputs", "kind", "description", "lead"), [
    ({}, LineKind.UNCONFIRMED, "load balancer, 1 node", D("12.00")),  # DigitalOcean's default: one node
    ({"sizeUnit": 2.0}, LineKind.UNCONFIRMED, "load balancer, 2 nodes", D("24.00")),
    ({"sizeUnit": "lb-small"}, LineKind.UNPRICED,
     "load balancer of unknown node count (sizeUnit): no price in catalog", None),
], ids=["unset", "two nodes", "not a count"])
def test_the_load_balancer_is_priced_per_node_from_size_unit(inputs, kind, description, lead):
    result = estimate(recording(resource("digitalocean:index/loadBalancer:LoadBalancer", "lb", inputs)))
    assert [(line.kind, line.description, line.lead_usd) for line in result.lines] == [(kind, description, lead)]
    assert result.total_usd == D("0.00")


def test_an_unconfirmed_price_without_a_single_lead_adds_nothing_anywhere():
    database = resource("aws:rds/instance:Instance", "db", {
        "engine": "postgres", "instanceClass": "db.r7g.large", "multiAz": False, "allocatedStorage": 20.0,
        "storageType": "gp3"})
    result = estimate(recording(database))
    assert result.total_usd == c(20 * D("0.115"))
    assert result.unconfirmed_lead_usd == D("0.00")
    [line] = result.unconfirmed
    assert (line.description, line.lead_usd, line.price_ids) == (
        "RDS PostgreSQL db.r7g.large, single-AZ", None, ("aws-rds-pg-db.r7g.large-single",))
    assert "  db        RDS PostgreSQL db.r7g.large, single-AZ: unconfirmed (no lead, not counted)" in cost_lines(result)


def test_daily_backups_cost_thirty_percent_of_the_droplet():
    droplet = resource("digitalocean:index/droplet:Droplet", "web", {"size": "s-4vcpu-8gb", "backups": True,
                                                                     "backupPolicy": {"plan": "daily"}})
    result = estimate(recording(droplet))
    assert [(line.description, line.monthly_usd) for line in result.priced] == [
        ("droplet s-4vcpu-8gb", D("48.00")), ("daily backups (30 % of 48.00)", c(D("0.30") * D("48.00")))]


def test_single_az_rds_and_redis_engine_use_their_own_prices():
    database = resource("aws:rds/instance:Instance", "db", {
        "engine": "postgres", "instanceClass": "db.t4g.small", "multiAz": False, "allocatedStorage": 50.0,
        "storageType": "gp3"})
    cache = resource("aws:elasticache/replicationGroup:ReplicationGroup", "cache", {
        "engine": "redis", "nodeType": "cache.t4g.micro", "numCacheClusters": 3.0, "snapshotRetentionLimit": 0.0})
    result = estimate(recording(database, cache))
    assert [(line.description, line.monthly_usd, line.price_ids) for line in result.priced] == [
        ("ElastiCache Redis OSS cache.t4g.micro x 3 nodes", c(D("0.016") * 3 * HOURS),
         ("aws-elasticache-redis-cache.t4g.micro",)),
        ("RDS PostgreSQL db.t4g.small, single-AZ", c(D("0.032") * HOURS), ("aws-rds-pg-db.t4g.small-single",)),
        ("RDS gp3 storage 50 GB x $0.115/GB (single-AZ)", c(50 * D("0.115")), ("aws-rds-gp3-single",)),
    ]


def test_usage_based_lines_state_their_assumption_and_stay_out_of_the_total(catalog):
    heavy = catalog.model_copy(update={"usage_assumptions": catalog.usage_assumptions.model_copy(
        update={"r2_stored_gb": D("110.4"), "r2_class_a_million": D("3"), "r2_class_b_million": D("10")})})
    bucket = resource("cloudflare:index/r2Bucket:R2Bucket", "media", {"name": "shop-media", "accountId": "a" * 32})
    result = estimate(recording(bucket), heavy)
    assert result.total_usd == D("0.00")
    [line] = result.usage_based
    # 110.4 GB rounds up to 111, less 10 free, x 0.015; 3 M Class A less 1 free, x 4.50; Class B inside the tier.
    assert line.assumed_usd == c(101 * D("0.015") + 2 * D("4.50"))
    assert line.assumption == ("assumed 110.4 GB stored, 3 M Class A and 10 M Class B operations a month, "
                               "egress free")


def test_container_log_groups_are_usage_based_ingestion_out_of_the_total():
    # cluster.containerLogs (off in the committed stacks, so their totals do not move) ships every container's
    # output: CloudWatch Logs bills it per GB ingested, which no plan can know.
    log_group = "aws:cloudwatch/logGroup:LogGroup"
    result = estimate(recording(
        resource(log_group, "cluster-container-logs-application",
                 {"name": "/aws/containerinsights/phasekit-phase3/application", "retentionInDays": 90}),
        resource(log_group, "cluster-control-plane-logs",
                 {"name": "/aws/eks/phasekit-phase3/cluster", "retentionInDays": 90})))
    assert result.total_usd == D("0.00")
    assert [(line.name, line.kind, line.description, line.assumption, line.price_ids) for line in result.lines] == [
        ("cluster-container-logs-application", LineKind.USAGE, "CloudWatch Logs ingestion and storage",
         "container stdout/stderr and Container Insights data, billed per GB ingested: volume follows how much the "
         "app logs, kept 90 days; price not sourced yet (unconfirmed)", ("aws-cloudwatch-logs",)),
        ("cluster-control-plane-logs", LineKind.USAGE, "CloudWatch Logs ingestion and storage",
         "volume follows traffic and API activity, kept 90 days; price not sourced yet (unconfirmed)",
         ("aws-cloudwatch-logs",))]


def test_resources_that_are_not_billable_cloud_objects_have_no_lines():
    result = estimate(recording(
        resource("aws:iam/role:Role", "role", {}), resource("aws:ec2/subnet:Subnet", "subnet", {}),
        resource("kubernetes:apps/v1:Deployment", "app", {}), resource("random:index/randomPassword:RandomPassword",
                                                                        "pw", {}),
        resource("pulumi:providers:aws", "aws", {})))
    assert result.lines == ()


def test_the_committed_phase3_default_version_is_priced_in_standard_support(estimates):
    # The finding: 1.34 (the old default) costs $438/month from 2026-12-03, not $73.
    [line] = [line for line in estimates["phase3"].lines if line.type == EKS]
    assert (line.description, line.monthly_usd) == (
        "EKS control plane, standard support (Kubernetes 1.35, until 2027-03-27)", D("73.00"))


def test_the_backups_bucket_is_a_usage_line_of_its_own_without_a_second_free_tier(catalog):
    backups = resource("cloudflare:index/r2Bucket:R2Bucket", "backups-bucket",
                       {"name": "shop-prod-backups", "accountId": "a" * 32})
    token = resource("cloudflare:index/apiToken:ApiToken", "backups-token", {"name": "shop-prod-backups backups"})
    result = estimate(recording(backups, token), catalog)
    assert result.total_usd == D("0.00") and result.unpriced == []
    [line] = result.usage_based
    # 20 GB x 0.015 + 0.1 M Class A x 4.50, nothing taken off: the free tier is the account's, counted once.
    assert (line.description, line.assumed_usd, line.price_ids) == (
        "R2 backups bucket shop-prod-backups", c(20 * D("0.015") + D("0.1") * D("4.50")),
        ("cf-r2-storage", "cf-r2-class-a"))


# --- Processes and schedules -------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "new_lines"), [
    # Phases 1 and 2: the worker's containers and the timers run on the droplets already priced; the one new
    # cloud object is the uptime check on the schedules' status (and its alert, which is not billable).
    ("phase1", [("vps-schedules-check", "DigitalOcean uptime check: no price in catalog", "unpriced")]),
    ("phase2", [("split-schedules-check", "DigitalOcean uptime check: no price in catalog", "unpriced")]),
    # Phase 3 prices the node group at its desiredSize, not from the pods' requests: the worker's pods and the
    # CronJobs' runs share those nodes (the config's node-fit check refuses a stack whose pods cannot fit).
    ("phase3", []),
])
def test_processes_and_schedules_add_no_priced_resource(estimates, tmp_path, stack, new_lines):
    from phasekit.stack_file import read_stack_file
    from tests.builders import with_processes

    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump({"config": with_processes(read_stack_file(ROOT / f"Pulumi.{stack}.yaml"))}))
    with_worker = estimate(run_plan(stack, ROOT, stack_file=path).recording, on=PRICED_ON)
    assert with_worker.total_usd == estimates[stack].total_usd
    assert with_worker.unconfirmed_lead_usd == estimates[stack].unconfirmed_lead_usd
    before = {(line.name, line.description, line.kind.value) for line in estimates[stack].lines}
    assert [(line.name, line.description, line.kind.value) for line in with_worker.lines
            if (line.name, line.description, line.kind.value) not in before] == new_lines
