"""``phasekit plan --compare`` and ``--from/--to``: read from the committed stacks' offline plans.

The expected texts below are the whole output, compared line by line: a change to the catalog, to a stack
file or to the derivation shows up as the exact lines that moved. The fixture stack ``solo`` (phase 2 with one
app droplet and daily backups) shows that capacity and failover come from the recording, not from the phase
number. What this cannot prove: that the runbook's commands succeed against real clouds (they are
reviewed by hand and need the real CLIs: pulumi, doctl, kubectl, aws, ssh).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from infra.errors import ConfigError
from phasekit.compare import (
    COMMAND_INDENT,
    CONTINUATION_INDENT,
    MASTER_URL_PYTHON,
    command_lines,
    compare_json,
    compare_text,
    joined_command,
    migration_json,
    migration_text,
    temporary_hostname,
)
from phasekit.plan import Plan, run_plan
from phasekit.plan_text import WIDTH

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plans():
    return {stack: run_plan(stack, ROOT) for stack in ("phase1", "phase2", "phase3")}


@pytest.fixture(scope="module")
def solo(tmp_path_factory):
    """Phase 2 with one app droplet (so a reserved IP and no load balancer) and daily backups."""
    document = yaml.safe_load((ROOT / "Pulumi.phase2.yaml").read_text())
    document["config"]["phasekit:appTier"]["count"] = 1
    document["config"]["phasekit:droplets"]["backupPlan"] = "daily"
    path = tmp_path_factory.mktemp("solo") / "Pulumi.solo.yaml"
    path.write_text(yaml.safe_dump(document))
    return run_plan("solo", ROOT, stack_file=path)


def assert_lines(actual: str, expected: str) -> None:
    """The expected blocks start on the line after their opening quotes."""
    assert actual.splitlines() == expected.removeprefix("\n").splitlines()
    assert actual.endswith("\n")


COMPARE_ALL = r"""
phasekit plan --compare: phase1, phase2, phase3
read from each stack's offline plan; prices from phasekit/prices.yaml as of 2026-11-23

  Resources by kind                phase1      phase2      phase3
  compute hosts                         1           2           2
  Kubernetes cluster                    0           0          10
  databases                             0           1           3
  caches                                0           0           3
  block storage                         1           1           0
  load balancers                        0           1           5
  networks                              3           1          17
  firewalls / security groups           1           2           8
  alarms and alert topics               9          12          13
  logs                                  0           0           8
  identity and keys                     4           6          24
  DNS / edge                            8           8           8
  object storage                        3           3           3
  Kubernetes objects                    0           0          26
  rollout steps                         3           9           0
  console organisation                  1           3           0
  all cloud resources                  34          49         130

  Monthly cost (USD)               phase1      phase2      phase3
  priced total                      16.40       76.00      400.58
  unconfirmed leads                  0.00       12.00        1.40
  total + unconfirmed leads         16.40       88.00      401.98
  items with no price                   6           9           1
  usage-based items                     3           3          14

Capacity
  app hosts
    phase1  1 droplet s-1vcpu-2gb
    phase2  2 droplets s-2vcpu-2gb
    phase3  2-4 t3.large nodes (2 desired)
  app vCPU / RAM
    phase1  1 vCPU / 2 GiB (shared with the database)
    phase2  4 vCPU / 4 GiB
    phase3  4 vCPU / 16 GiB (up to 8 vCPU / 32 GiB)
  database host
    phase1  the app droplet
    phase2  droplet s-2vcpu-4gb
    phase3  RDS PostgreSQL db.t4g.medium Multi-AZ
  database vCPU / RAM
    phase1  1 vCPU / 2 GiB (shared with the app)
    phase2  2 vCPU / 4 GiB
    phase3  2 vCPU / 4 GiB
  max app replicas
    phase1  1
    phase2  2
    phase3  6

Failover
  app tier
    phase1  a single droplet (no failover)
    phase2  2 droplets behind a load balancer
    phase3  2-6 pods (autoscaled) on 2-4 t3.large nodes behind a load balancer
  database
    phase1  on the app droplet (no standby; data on a protected volume)
    phase2  one droplet of its own (no standby; data on a protected volume)
    phase3  RDS Multi-AZ: standby in another zone, automatic failover
  cache
    phase1  Redis on the app droplet (no failover)
    phase2  Redis on the database droplet (no failover)
    phase3  ElastiCache Valkey, 2 nodes: automatic failover, Multi-AZ
  zones
    phase1  1 (region nyc3)
    phase2  1 (region nyc3)
    phase3  2 (us-east-1a, us-east-1b)
  egress
    phase1  each droplet's own address
    phase2  each droplet's own address
    phase3  1 NAT gateway for 2 zones (egress depends on one zone)
  disruption budget
    phase1  none
    phase2  none
    phase3  PodDisruptionBudget maxUnavailable 1
  backups
    phase1  droplet backups weekly
    phase2  droplet backups weekly
    phase3  RDS backups kept 7 days, final snapshot; cache snapshots kept 1 day

What each stack adds over the previous one
  phase1 -> phase2
    app hosts: 1 droplet s-1vcpu-2gb -> 2 droplets s-2vcpu-2gb
    app vCPU / RAM: 1 vCPU / 2 GiB (shared with the database) -> 4 vCPU / 4 GiB
    database host: the app droplet -> droplet s-2vcpu-4gb
    database vCPU / RAM: 1 vCPU / 2 GiB (shared with the app) -> 2 vCPU / 4 GiB
    max app replicas: 1 -> 2
    app tier: a single droplet (no failover) -> 2 droplets behind a load balancer
    database: on the app droplet (no standby; data on a protected volume) -> one droplet of its own
      (no standby; data on a protected volume)
    cache: Redis on the app droplet (no failover) -> Redis on the database droplet (no failover)
    monthly cost: +59.60 (16.40 -> 76.00), unconfirmed leads +12.00
  phase2 -> phase3
    app hosts: 2 droplets s-2vcpu-2gb -> 2-4 t3.large nodes (2 desired)
    app vCPU / RAM: 4 vCPU / 4 GiB -> 4 vCPU / 16 GiB (up to 8 vCPU / 32 GiB)
    database host: droplet s-2vcpu-4gb -> RDS PostgreSQL db.t4g.medium Multi-AZ
    max app replicas: 2 -> 6
    app tier: 2 droplets behind a load balancer -> 2-6 pods (autoscaled) on 2-4 t3.large nodes
      behind a load balancer
    database: one droplet of its own (no standby; data on a protected volume) -> RDS Multi-AZ:
      standby in another zone, automatic failover
    cache: Redis on the database droplet (no failover) -> ElastiCache Valkey, 2 nodes: automatic
      failover, Multi-AZ
    zones: 1 (region nyc3) -> 2 (us-east-1a, us-east-1b)
    egress: each droplet's own address -> 1 NAT gateway for 2 zones (egress depends on one zone)
    disruption budget: none -> PodDisruptionBudget maxUnavailable 1
    backups: droplet backups weekly -> RDS backups kept 7 days, final snapshot; cache snapshots kept
      1 day
    monthly cost: +324.58 (76.00 -> 400.58), unconfirmed leads -10.60
"""


def test_compare_text_of_the_committed_stacks(plans):
    assert_lines(compare_text([plans["phase1"], plans["phase2"], plans["phase3"]]), COMPARE_ALL)


def test_compare_json_of_the_committed_stacks(plans):
    document = compare_json([plans["phase1"], plans["phase2"], plans["phase3"]])
    assert document["catalogDate"] == "2026-11-23"
    assert [(stack["stack"], stack["phase"], stack["resourceCount"], stack["cost"]["totalUsd"],
             stack["cost"]["unconfirmedLeadUsd"], stack["capacity"]["maxAppReplicas"])
            for stack in document["stacks"]] == [
        ("phase1", 1, 34, "16.40", "0.00", 1), ("phase2", 2, 49, "76.00", "12.00", 2),
        ("phase3", 3, 130, "400.58", "1.40", 6)]
    assert document["stacks"][2]["capacity"]["app"] == {"vcpus": 4, "memoryGib": "16"}
    assert document["stacks"][2]["capacity"]["appMax"] == {"vcpus": 8, "memoryGib": "32"}
    assert document["stacks"][0]["capacity"]["databaseSharesAppHost"] is True
    assert [(step["from"], step["to"], step["costDeltaUsd"], step["unconfirmedLeadDeltaUsd"])
            for step in document["steps"]] == [("phase1", "phase2", "59.60", "12.00"),
                                               ("phase2", "phase3", "324.58", "-10.60")]
    assert {"aspect": "database", "from": "one droplet of its own (no standby; data on a protected volume)",
            "to": "RDS Multi-AZ: standby in another zone, automatic failover"} in document["steps"][1]["failover"]


def test_compare_follows_the_recording_not_the_phase_number(plans, solo):
    text = compare_text([plans["phase2"], solo])
    assert "    solo    a single droplet (no failover)" in text.splitlines()
    assert "    solo    2 vCPU / 2 GiB" in text.splitlines()
    assert "    solo    droplet backups daily" in text.splitlines()
    assert "    app tier: 2 droplets behind a load balancer -> a single droplet (no failover)" in text.splitlines()
    # One s-2vcpu-2gb app droplet and the s-2vcpu-4gb database droplet, both with daily backups (30 %), and
    # the 40 GiB volume; no load balancer, so no lead.
    solo_total = (Decimal("18.00") + Decimal("0.30") * Decimal("18.00") + Decimal("24.00")
                  + Decimal("0.30") * Decimal("24.00") + 40 * Decimal("0.10"))
    assert solo_total - Decimal("76.00") == Decimal("-17.40")
    assert "    monthly cost: -17.40 (76.00 -> 58.60), unconfirmed leads -12.00" in text.splitlines()


MIGRATION_1_TO_2 = r"""
phasekit plan --from phase1 --to phase2: a second stack beside the first, then a cutover
the stacks are separate Pulumi stacks: resources are matched by kind, not by URN

Resources by kind (phase1 retired -> phase2 created)
  compute hosts                1 -> 2
                                 retire: vps-droplet
                                 create: split-app-0, split-app-1
  databases                    0 -> 1
                                 create: split-db
  block storage                1 -> 1
                                 retire: vps-data
                                 create: split-db-data
  load balancers               0 -> 1
                                 create: split-lb
  networks                     3 -> 1
                                 retire: vps-ip, vps-ip-assignment, vps-vpc
                                 create: split-vpc
  firewalls / security groups  1 -> 2
                                 retire: vps-firewall
                                 create: split-app-firewall, split-db-firewall
  alarms and alert topics      9 -> 12
                                 retire: vps-backup-alert, vps-backup-check, vps-cpu-alert,
                                   vps-disk-alert, vps-memory-alert, vps-site-alert, vps-site-check,
                                   vps-volume-alert, vps-volume-check
                                 create: split-app-cpu-alert, split-app-disk-alert,
                                   split-app-memory-alert, split-backup-alert, split-backup-check,
                                   split-db-cpu-alert, split-db-disk-alert, split-db-memory-alert,
                                   split-site-alert, split-site-check, split-volume-alert,
                                   split-volume-check
  identity and keys            4 -> 6
                                 retire: backups-token, vps-db-password, vps-droplet-host-key,
                                   vps-redis-password
                                 create: backups-token, split-app-0-host-key, split-app-1-host-key,
                                   split-db-host-key, split-db-password, split-redis-password
  DNS / edge                   8 -> 8
                                 same names, new stack: edge-always-use-https, edge-min-tls-version,
                                   edge-origin-cert, edge-origin-csr, edge-origin-key, edge-record,
                                   edge-ssl, edge-tls-1-3
  object storage               3 -> 3
                                 same names, new stack: backups-bucket, backups-lifecycle,
                                   edge-media
  rollout steps                3 -> 9
                                 retire: vps-droplet-host-key-install,
                                   vps-droplet-host-key-install-read, vps-rollout
                                 create: split-app-0-host-key-install,
                                   split-app-0-host-key-install-read, split-app-0-rollout,
                                   split-app-1-host-key-install, split-app-1-host-key-install-read,
                                   split-app-1-rollout, split-db-host-key-install,
                                   split-db-host-key-install-read, split-db-rollout
  console organisation         1 -> 3
                                 retire: vps-project
                                 create: split-app-tier, split-project, split-project-members

Data to move
  PostgreSQL: droplet vps-droplet (phase1) -> droplet split-db (phase2): phasekit db migrate (write
    freeze, pg_dump / pg_restore, both sides verified)
  media: R2 bucket phasekit-phase1-media -> phasekit-phase2-media: object copy
  hostname: app.example.com: the DNS record moves from phase1 to phase2 at the cutover
  Redis: not copied (cache and queues): drain queues before the freeze; the cache starts cold

Monthly cost (USD)
  before (phase1):  16.40
  after (phase2):  76.00 (+ 12.00 unconfirmed)
  during the overlap (phase1 + phase2):  92.40 (+ 12.00 unconfirmed)
  keeping phase1 7 days after the cutover:  4.10

Runbook
  1. Create the target stack phase2 beside phase1
     phase1 keeps serving app.example.com; phase2 comes up on the temporary hostname
       phase2-app.example.com (one label under the zone, so Cloudflare's Universal SSL covers it),
       because both stacks declare a DNS record and only one may own app.example.com.
     These commands edit Pulumi.phase2.yaml; step 4 sets its hostname back to app.example.com.
     No secret goes on a command line, where ps and the shell history would show it: pulumi prompts
       for each value (or reads it from a pipe), and phasekit db reads the database passwords from a
       private password file.
         pulumi stack init phase2
         pulumi config set --stack phase2 --secret digitalocean:token   \
             # no value argument: pulumi prompts for it without echo
         pulumi config set --stack phase2 --secret cloudflare:apiToken   \
             # no value argument: pulumi prompts for it without echo
         pulumi config get --stack phase1 --path 'secrets.SECRET_KEY_BASE' | pulumi config set \
             --stack phase2 --secret --path 'secrets.SECRET_KEY_BASE'   \
             # the source's value through a pipe, so sessions survive the move
         pulumi config get --stack phase1 --path 'secrets.BACKUP_PASSPHRASE' | pulumi config set \
             --stack phase2 --secret --path 'secrets.BACKUP_PASSPHRASE'   \
             # the source's value through a pipe, so sessions survive the move
         pulumi config set --stack phase2 --path 'phasekit:edge.hostname' phase2-app.example.com
         pulumi up --stack phase2
  2. Copy the data (a rehearsal: the app keeps writing to the source)
     Tunnels bring both databases to 127.0.0.1; each password goes from pulumi through a pipe into
       `phasekit db pgpass`, which keeps it in migration.pgpass (mode 0600), never on a command
       line.
     phase2's release command has created the schema; --allow-non-empty lets pg_restore --clean
       replace it with the source's.
     Without the freeze, writes the app makes meanwhile show up as differences (exit 1): expected in
       a rehearsal, which proves the tunnels and the copy and times it (the freeze lasts about as
       long).
     R2 credentials: an R2 API token with read and write on both buckets, as AWS CLI profile r2.
         export PGPASSFILE="$PWD/migration.pgpass"
         SOURCE_DB_HOST="$(doctl compute droplet get "$(pulumi stack output --stack phase1 \
             droplet_id)" --template '{{.PublicIPv4}}')"
         SOURCE_DB_ADDRESS="$(ssh root@"$SOURCE_DB_HOST" \
             'docker compose --file /opt/phasekit/compose.yaml exec -T db hostname -i')"
         ssh -f -N -M -S source-tunnel.sock -o ExitOnForwardFailure=yes -L \
             "127.0.0.1:15432:$SOURCE_DB_ADDRESS:5432" root@"$SOURCE_DB_HOST"
         pulumi stack output --stack phase1 --show-secrets database_url | phasekit db pgpass \
             --host 127.0.0.1 --port 15432 > source.url
         TARGET_DB_HOST="$(doctl compute droplet get "$(pulumi stack output --stack phase2 \
             db_droplet_id)" --template '{{.PublicIPv4}}')"
         ssh -f -N -M -S target-tunnel.sock -o ExitOnForwardFailure=yes -L \
             "127.0.0.1:25432:127.0.0.1:5432" root@"$TARGET_DB_HOST"
         pulumi stack output --stack phase2 --show-secrets database_url | phasekit db pgpass \
             --host 127.0.0.1 --port 25432 > target.url
         phasekit db migrate --source "$(cat source.url)" --target "$(cat target.url)" \
             --allow-non-empty --no-freeze
         aws s3 sync s3://phasekit-phase1-media s3://phasekit-phase2-media --profile r2 \
             --endpoint-url https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com
  3. Freeze writes on phase1, copy and verify
     phasekit db migrate makes phase1's database read-only (reads keep working, writes fail with an
       error until the cutover), ends its open sessions, copies, compares every table, sequence,
       large object and view on both sides, and prints the write-freeze window. Announce the window
       first.
     Exit 0: the copy is whole and phase1 stays read-only for the cutover. A failed copy lifts the
       freeze by itself; differences (exit 1) leave it frozen until you settle them. To roll back:
       `phasekit db unfreeze --source "$(cat source.url)"`.
     Before the cutover, `phasekit db drill --stack phase2` proves phase2's backups restore
       (docs/migration.md).
         phasekit db migrate --source "$(cat source.url)" --target "$(cat target.url)" \
             --allow-non-empty
         aws s3 sync s3://phasekit-phase1-media s3://phasekit-phase2-media --profile r2 \
             --endpoint-url https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com
  4. Cut Cloudflare over to phase2
     app.example.com has no record from the first command until the last one ends (writes are
       already frozen). The last two point phase2's record at app.example.com and re-issue its
       origin certificate.
         pulumi destroy --stack phase1 --target \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'dnsRecord:DnsRecord::edge-record' --yes
         pulumi config set --stack phase2 --path 'phasekit:edge.hostname' app.example.com
         pulumi up --stack phase2 --yes
  5. Verify
     The health path /healthz answers 200 through Cloudflare; then the tunnels close and the
       password file goes.
         curl -fsS https://app.example.com/healthz
         curl -sS -o /dev/null -w '%{http_code}\n' https://app.example.com/
         dig +short app.example.com   # Cloudflare's addresses: the record is proxied
         doctl compute load-balancer list --format Name,IP,Status   \
             # status active, droplets healthy
         aws s3 ls s3://phasekit-phase1-media --recursive --summarize --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com | tail -2
         aws s3 ls s3://phasekit-phase2-media --recursive --summarize --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com | tail -2
         ssh -S source-tunnel.sock -O exit root@"$SOURCE_DB_HOST"
         ssh -S target-tunnel.sock -O exit root@"$TARGET_DB_HOST"
         rm -f migration.pgpass source.url target.url
  6. Keep phase1 for 7 days
     phase1 still holds the data as it was at the freeze. The way back: `pulumi destroy --stack
       phase2 --target 'urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/
       dnsRecord:DnsRecord::edge-record' --yes`, `pulumi up --stack phase1` (recreates its record),
       then `ALTER DATABASE app RESET default_transaction_read_only` on phase1 (or `phasekit db
       unfreeze` through step 2's tunnel); writes made on phase2 meanwhile stay behind. Both stacks
       bill meanwhile: 7 more days of phase1 cost about $4.10.
  7. Retire phase1
     Take a final backup first; delete the old media bucket only after step 5 showed the copy whole.
       The zone settings are zone-wide and also managed by phase2: drop them from phase1's state so
       destroying phase1 leaves them alone. Protected resources need `pulumi state unprotect`;
       resources retained on delete survive `pulumi destroy` and keep billing until deleted by hand:
       hosts and databases before the destroy (the network cannot go around them), volumes and
       buckets after.
         SOURCE_DB_HOST="$(doctl compute droplet get "$(pulumi stack output --stack phase1 \
             droplet_id)" --template '{{.PublicIPv4}}')"
         ssh root@"$SOURCE_DB_HOST" \
             'docker compose --file /opt/phasekit/compose.yaml exec -T db pg_dump --username app '\
'--format custom app' > phase1-final.dump
         doctl compute volume snapshot "$(pulumi stack output --stack phase1 volume_id)" \
             --snapshot-name phase1-final
         RETIRED_VOLUME_ID="$(pulumi stack output --stack phase1 volume_id)"
         pulumi state delete --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-always-use-https' --yes
         pulumi state delete --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-min-tls-version' --yes
         pulumi state delete --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-ssl' --yes
         pulumi state delete --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-tls-1-3' --yes
         pulumi state unprotect --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:BackupStore$cloudflare:index/r2Bucket:'\
'R2Bucket::backups-bucket' --yes
         pulumi state unprotect --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'r2Bucket:R2Bucket::edge-media' --yes
         pulumi state unprotect --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:SingleVps$digitalocean:index/volume:'\
'Volume::vps-data' --yes
         pulumi destroy --stack phase1
         doctl compute volume delete "$RETIRED_VOLUME_ID" --force   # vps-data
         # keep s3://phasekit-phase1-backups (phase1's backups and WAL) until no restore of phase1
             # can be needed; then delete it like the media bucket
         aws s3 rb s3://phasekit-phase1-media --force --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com   # edge-media
         pulumi stack rm --preserve-config phase1
"""


def test_migration_text_phase1_to_phase2(plans):
    assert_lines(migration_text(plans["phase1"], plans["phase2"]), MIGRATION_1_TO_2)


MIGRATION_2_TO_3 = r"""
phasekit plan --from phase2 --to phase3: a second stack beside the first, then a cutover
the stacks are separate Pulumi stacks: resources are matched by kind, not by URN

Resources by kind (phase2 retired -> phase3 created)
  compute hosts                2 -> 2
                                 retire: split-app-0, split-app-1
                                 create: cluster-node-template, cluster-nodes
  Kubernetes cluster           0 -> 10
                                 create: cluster-admin-role-platform-admin (x2),
                                   cluster-aws-ebs-csi-driver, cluster-cluster, cluster-coredns,
                                   cluster-eks-pod-identity-agent, cluster-kube-proxy,
                                   cluster-metrics-server, cluster-oidc, cluster-vpc-cni
  databases                    1 -> 3
                                 retire: split-db
                                 create: database-db, database-params, network-db
  caches                       0 -> 3
                                 create: cache-cache, cache-params, network-cache
  block storage                1 -> 0
                                 retire: split-db-data
  load balancers               1 -> 5
                                 retire: split-lb
                                 create: ingress-alb, ingress-cert, ingress-https, ingress-nodes,
                                   ingress-tg
  networks                     1 -> 17
                                 retire: split-vpc
                                 create: network-flow-logs, network-igw, network-nat-us-east-1a
                                   (x2), network-private-us-east-1a (x3), network-private-us-east-1b
                                   (x3), network-public, network-public-us-east-1a (x2),
                                   network-public-us-east-1b (x2), network-s3, network-vpc
  firewalls / security groups  2 -> 8
                                 retire: split-app-firewall, split-db-firewall
                                 create: cache-sg, cluster-node-sg, cluster-node-sg-egress,
                                   cluster-node-sg-self, database-sg, ingress-node-ingress,
                                   ingress-sg, network-default-sg
  alarms and alert topics      12 -> 13
                                 retire: split-app-cpu-alert, split-app-disk-alert,
                                   split-app-memory-alert, split-backup-alert, split-backup-check,
                                   split-db-cpu-alert, split-db-disk-alert, split-db-memory-alert,
                                   split-site-alert, split-site-check, split-volume-alert,
                                   split-volume-check
                                 create: alerts-ops-example-com, alerts-policy, alerts-topic,
                                   cache-001-engine-cpu-alarm, cache-001-memory-alarm,
                                   cache-002-engine-cpu-alarm, cache-002-memory-alarm,
                                   cluster-node-cpu-alarm, database-connections-alarm,
                                   database-cpu-alarm, database-free-storage-alarm, ingress-elb-5xx,
                                   ingress-unhealthy-hosts
  logs                         0 -> 8
                                 create: cluster-control-plane-logs, ingress-logs (x6),
                                   network-flow-logs
  identity and keys            6 -> 24
                                 retire: backups-token, split-app-0-host-key, split-app-1-host-key,
                                   split-db-host-key, split-db-password, split-redis-password
                                 create: autoscaler-irsa-role, autoscaler-irsa-scaling,
                                   backups-token, cache-auth-token, cache-final-snapshot,
                                   cluster-aws-ebs-csi-driver-amazonebscsidriverpolicy,
                                   cluster-aws-ebs-csi-driver-role,
                                   cluster-cluster-amazoneksclusterpolicy, cluster-cluster-role,
                                   cluster-node-amazonec2containerregistryreadonly,
                                   cluster-node-amazoneksworkernodepolicy, cluster-node-role,
                                   cluster-secrets-key (x2), cluster-vpc-cni-amazoneks-cni-policy,
                                   cluster-vpc-cni-role, database-app-password,
                                   database-final-snapshot, database-master-secret-reader,
                                   database-master-secret-reader-policy, database-monitoring-policy,
                                   database-monitoring-role, network-flow-logs (x2)
  DNS / edge                   8 -> 8
                                 same names, new stack: edge-always-use-https, edge-min-tls-version,
                                   edge-origin-cert, edge-origin-csr, edge-origin-key, edge-record,
                                   edge-ssl, edge-tls-1-3
  object storage               3 -> 3
                                 same names, new stack: backups-bucket, backups-lifecycle,
                                   edge-media
  Kubernetes objects           0 -> 26
                                 create: app-database-role, app-database-role-account,
                                   app-database-role-password, app-database-role-sql,
                                   app-default-deny, app-deployment, app-egress, app-env, app-hpa,
                                   app-namespace, app-pdb, app-release, app-service,
                                   app-web-ingress, autoscaler-cluster-role,
                                   autoscaler-cluster-role-binding, autoscaler-deployment,
                                   autoscaler-pdb, autoscaler-role, autoscaler-role-binding,
                                   autoscaler-sa, cluster-gp3, logical-backup,
                                   logical-backup-account, logical-backup-credentials,
                                   logical-backup-egress
  rollout steps                9 -> 0
                                 retire: split-app-0-host-key-install,
                                   split-app-0-host-key-install-read, split-app-0-rollout,
                                   split-app-1-host-key-install, split-app-1-host-key-install-read,
                                   split-app-1-rollout, split-db-host-key-install,
                                   split-db-host-key-install-read, split-db-rollout
  console organisation         3 -> 0
                                 retire: split-app-tier, split-project, split-project-members

Data to move
  PostgreSQL: droplet split-db (phase2) -> RDS phasekit-phase3-db (phase3): phasekit db migrate
    (write freeze, pg_dump / pg_restore, both sides verified)
  media: R2 bucket phasekit-phase2-media -> phasekit-phase3-media: object copy
  hostname: app.example.com: the DNS record moves from phase2 to phase3 at the cutover
  Redis: not copied (cache and queues): drain queues before the freeze; the cache starts cold

Monthly cost (USD)
  before (phase2):  76.00 (+ 12.00 unconfirmed)
  after (phase3):  400.58 (+ 1.40 unconfirmed)
  during the overlap (phase2 + phase3):  476.58 (+ 13.40 unconfirmed)
  keeping phase2 7 days after the cutover:  19.00 (+ 3.00 unconfirmed)

Runbook
  1. Create the target stack phase3 beside phase2
     phase2 keeps serving app.example.com; phase3 comes up on the temporary hostname
       phase3-app.example.com (one label under the zone, so Cloudflare's Universal SSL covers it),
       because both stacks declare a DNS record and only one may own app.example.com.
     These commands edit Pulumi.phase3.yaml; step 4 sets its hostname back to app.example.com.
     No secret goes on a command line, where ps and the shell history would show it: pulumi prompts
       for each value (or reads it from a pipe), and phasekit db reads the database passwords from a
       private password file.
         pulumi stack init phase3
         pulumi config set --stack phase3 --secret cloudflare:apiToken   \
             # no value argument: pulumi prompts for it without echo
         # AWS credentials come from the environment (AWS_PROFILE, SSO or OIDC); the principal must
             # be listed in cluster.adminPrincipalArns
         pulumi config get --stack phase2 --path 'secrets.SECRET_KEY_BASE' | pulumi config set \
             --stack phase3 --secret --path 'secrets.SECRET_KEY_BASE'   \
             # the source's value through a pipe, so sessions survive the move
         pulumi config get --stack phase2 --path 'secrets.BACKUP_PASSPHRASE' | pulumi config set \
             --stack phase3 --secret --path 'secrets.BACKUP_PASSPHRASE'   \
             # the source's value through a pipe, so sessions survive the move
         pulumi config set --stack phase3 --path 'phasekit:edge.hostname' phase3-app.example.com
         pulumi up --stack phase3
  2. Copy the data (a rehearsal: the app keeps writing to the source)
     Tunnels bring both databases to 127.0.0.1; each password goes from pulumi through a pipe into
       `phasekit db pgpass`, which keeps it in migration.pgpass (mode 0600), never on a command
       line.
     phase3's app connects as its role app_user, into schema app_user: the target URL is RDS's
       master user (its password from Secrets Manager, through pipes), which restores into public;
       in the frozen run (step 3), once verified, --target-role app_user renames public to app_user
       and gives it to the role, keeping the release command's empty schema as
       app_user_replaced_<UTC time>. The rehearsal leaves its copy in public.
     Without the freeze, writes the app makes meanwhile show up as differences (exit 1): expected in
       a rehearsal, which proves the tunnels and the copy and times it (the freeze lasts about as
       long).
     R2 credentials: an R2 API token with read and write on both buckets, as AWS CLI profile r2.
         export PGPASSFILE="$PWD/migration.pgpass"
         SOURCE_DB_HOST="$(doctl compute droplet get "$(pulumi stack output --stack phase2 \
             db_droplet_id)" --template '{{.PublicIPv4}}')"
         ssh -f -N -M -S source-tunnel.sock -o ExitOnForwardFailure=yes -L \
             "127.0.0.1:15432:127.0.0.1:5432" root@"$SOURCE_DB_HOST"
         pulumi stack output --stack phase2 --show-secrets database_url | phasekit db pgpass \
             --host 127.0.0.1 --port 15432 > source.url
         pulumi stack output --stack phase3 --show-secrets kubeconfig > kubeconfig-phase3
         kubectl --kubeconfig kubeconfig-phase3 run pg-relay-target --namespace default \
             --restart=Never --image alpine/socat:1.8.0.3 -- tcp-listen:5432,fork,reuseaddr \
             "tcp-connect:$(pulumi stack output --stack phase3 database_address):5432"
         kubectl --kubeconfig kubeconfig-phase3 wait pod/pg-relay-target --namespace default \
             --for=condition=Ready --timeout=120s
         kubectl --kubeconfig kubeconfig-phase3 port-forward pod/pg-relay-target --namespace \
             default 25432:5432 > /dev/null &
         TARGET_PORT_FORWARD=$!
         TARGET_DB_ADDRESS="$(pulumi stack output --stack phase3 database_address)"
         TARGET_MASTER_ARN=$(aws rds describe-db-instances --query \
             "DBInstances[?Endpoint.Address=='$TARGET_DB_ADDRESS'].MasterUserSecret.SecretArn|[0]" \
             --output text)
         aws secretsmanager get-secret-value --secret-id "$TARGET_MASTER_ARN" --query SecretString \
             --output text | python3 -c \
             'import json, sys; from urllib.parse import quote; s = json.load(sys.stdin); '\
'print("postgresql://" + quote(s["username"], safe="") + ":" + quote(s["password"], '\
'safe="") + "@rds/" + sys.argv[1])' app | phasekit db pgpass --host 127.0.0.1 --port 25432 > \
             target.url
         phasekit db migrate --source "$(cat source.url)" --target "$(cat target.url)" \
             --allow-non-empty --target-role app_user --no-freeze
         aws s3 sync s3://phasekit-phase2-media s3://phasekit-phase3-media --profile r2 \
             --endpoint-url https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com
  3. Freeze writes on phase2, copy and verify
     phasekit db migrate makes phase2's database read-only (reads keep working, writes fail with an
       error until the cutover), ends its open sessions, copies, compares every table, sequence,
       large object and view on both sides, and prints the write-freeze window. Announce the window
       first.
     Exit 0: the copy is whole and phase2 stays read-only for the cutover. A failed copy lifts the
       freeze by itself; differences (exit 1) leave it frozen until you settle them. To roll back:
       `phasekit db unfreeze --source "$(cat source.url)"`.
         phasekit db migrate --source "$(cat source.url)" --target "$(cat target.url)" \
             --allow-non-empty --target-role app_user
         aws s3 sync s3://phasekit-phase2-media s3://phasekit-phase3-media --profile r2 \
             --endpoint-url https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com
  4. Cut Cloudflare over to phase3
     app.example.com has no record from the first command until the last one ends (writes are
       already frozen). The last two point phase3's record at app.example.com and re-issue its
       origin certificate.
         pulumi destroy --stack phase2 --target \
             'urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'dnsRecord:DnsRecord::edge-record' --yes
         pulumi config set --stack phase3 --path 'phasekit:edge.hostname' app.example.com
         pulumi up --stack phase3 --yes
  5. Verify
     The health path /healthz answers 200 through Cloudflare; then the tunnels close and the
       password file goes.
         curl -fsS https://app.example.com/healthz
         curl -sS -o /dev/null -w '%{http_code}\n' https://app.example.com/
         dig +short app.example.com   # Cloudflare's addresses: the record is proxied
         kubectl --kubeconfig kubeconfig-phase3 --namespace app rollout status deployment/app
         aws s3 ls s3://phasekit-phase2-media --recursive --summarize --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com | tail -2
         aws s3 ls s3://phasekit-phase3-media --recursive --summarize --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com | tail -2
         ssh -S source-tunnel.sock -O exit root@"$SOURCE_DB_HOST"
         kill "$TARGET_PORT_FORWARD"
         kubectl --kubeconfig kubeconfig-phase3 delete pod pg-relay-target --namespace default
         rm -f migration.pgpass source.url target.url
  6. Keep phase2 for 7 days
     phase2 still holds the data as it was at the freeze. The way back: `pulumi destroy --stack
       phase3 --target 'urn:pulumi:phase3::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/
       dnsRecord:DnsRecord::edge-record' --yes`, `pulumi up --stack phase2` (recreates its record),
       then `ALTER DATABASE app RESET default_transaction_read_only` on phase2 (or `phasekit db
       unfreeze` through step 2's tunnel); writes made on phase3 meanwhile stay behind. Both stacks
       bill meanwhile: 7 more days of phase2 cost about $19.00 (+ $3.00 unconfirmed).
  7. Retire phase2
     Take a final backup first; delete the old media bucket only after step 5 showed the copy whole.
       The zone settings are zone-wide and also managed by phase3: drop them from phase2's state so
       destroying phase2 leaves them alone. Protected resources need `pulumi state unprotect`;
       resources retained on delete survive `pulumi destroy` and keep billing until deleted by hand:
       hosts and databases before the destroy (the network cannot go around them), volumes and
       buckets after.
         SOURCE_DB_HOST="$(doctl compute droplet get "$(pulumi stack output --stack phase2 \
             db_droplet_id)" --template '{{.PublicIPv4}}')"
         ssh root@"$SOURCE_DB_HOST" \
             'docker compose --file /opt/phasekit/compose.yaml exec -T db pg_dump --username app '\
'--format custom app' > phase2-final.dump
         doctl compute volume snapshot "$(pulumi stack output --stack phase2 volume_id)" \
             --snapshot-name phase2-final
         RETIRED_DROPLET_ID="$(pulumi stack output --stack phase2 db_droplet_id)"
         RETIRED_VOLUME_ID="$(pulumi stack output --stack phase2 volume_id)"
         pulumi state delete --stack phase2 \
             'urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-always-use-https' --yes
         pulumi state delete --stack phase2 \
             'urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-min-tls-version' --yes
         pulumi state delete --stack phase2 \
             'urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-ssl' --yes
         pulumi state delete --stack phase2 \
             'urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-tls-1-3' --yes
         pulumi state unprotect --stack phase2 \
             'urn:pulumi:phase2::phasekit::phasekit:index:BackupStore$cloudflare:index/r2Bucket:'\
'R2Bucket::backups-bucket' --yes
         pulumi state unprotect --stack phase2 \
             'urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'r2Bucket:R2Bucket::edge-media' --yes
         pulumi state unprotect --stack phase2 \
             'urn:pulumi:phase2::phasekit::phasekit:index:SplitVps$digitalocean:index/droplet:'\
'Droplet::split-db' --yes
         pulumi state unprotect --stack phase2 \
             'urn:pulumi:phase2::phasekit::phasekit:index:SplitVps$digitalocean:index/volume:'\
'Volume::split-db-data' --yes
         doctl compute droplet delete "$RETIRED_DROPLET_ID" --force   # split-db
         pulumi destroy --stack phase2
         doctl compute volume delete "$RETIRED_VOLUME_ID" --force   # split-db-data
         # keep s3://phasekit-phase2-backups (phase2's backups and WAL) until no restore of phase2
             # can be needed; then delete it like the media bucket
         aws s3 rb s3://phasekit-phase2-media --force --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com   # edge-media
         pulumi stack rm --preserve-config phase2
"""


def test_migration_text_phase2_to_phase3(plans):
    assert_lines(migration_text(plans["phase2"], plans["phase3"]), MIGRATION_2_TO_3)


MIGRATION_1_TO_3 = r"""
phasekit plan --from phase1 --to phase3: a second stack beside the first, then a cutover
the stacks are separate Pulumi stacks: resources are matched by kind, not by URN

Resources by kind (phase1 retired -> phase3 created)
  compute hosts                1 -> 2
                                 retire: vps-droplet
                                 create: cluster-node-template, cluster-nodes
  Kubernetes cluster           0 -> 10
                                 create: cluster-admin-role-platform-admin (x2),
                                   cluster-aws-ebs-csi-driver, cluster-cluster, cluster-coredns,
                                   cluster-eks-pod-identity-agent, cluster-kube-proxy,
                                   cluster-metrics-server, cluster-oidc, cluster-vpc-cni
  databases                    0 -> 3
                                 create: database-db, database-params, network-db
  caches                       0 -> 3
                                 create: cache-cache, cache-params, network-cache
  block storage                1 -> 0
                                 retire: vps-data
  load balancers               0 -> 5
                                 create: ingress-alb, ingress-cert, ingress-https, ingress-nodes,
                                   ingress-tg
  networks                     3 -> 17
                                 retire: vps-ip, vps-ip-assignment, vps-vpc
                                 create: network-flow-logs, network-igw, network-nat-us-east-1a
                                   (x2), network-private-us-east-1a (x3), network-private-us-east-1b
                                   (x3), network-public, network-public-us-east-1a (x2),
                                   network-public-us-east-1b (x2), network-s3, network-vpc
  firewalls / security groups  1 -> 8
                                 retire: vps-firewall
                                 create: cache-sg, cluster-node-sg, cluster-node-sg-egress,
                                   cluster-node-sg-self, database-sg, ingress-node-ingress,
                                   ingress-sg, network-default-sg
  alarms and alert topics      9 -> 13
                                 retire: vps-backup-alert, vps-backup-check, vps-cpu-alert,
                                   vps-disk-alert, vps-memory-alert, vps-site-alert, vps-site-check,
                                   vps-volume-alert, vps-volume-check
                                 create: alerts-ops-example-com, alerts-policy, alerts-topic,
                                   cache-001-engine-cpu-alarm, cache-001-memory-alarm,
                                   cache-002-engine-cpu-alarm, cache-002-memory-alarm,
                                   cluster-node-cpu-alarm, database-connections-alarm,
                                   database-cpu-alarm, database-free-storage-alarm, ingress-elb-5xx,
                                   ingress-unhealthy-hosts
  logs                         0 -> 8
                                 create: cluster-control-plane-logs, ingress-logs (x6),
                                   network-flow-logs
  identity and keys            4 -> 24
                                 retire: backups-token, vps-db-password, vps-droplet-host-key,
                                   vps-redis-password
                                 create: autoscaler-irsa-role, autoscaler-irsa-scaling,
                                   backups-token, cache-auth-token, cache-final-snapshot,
                                   cluster-aws-ebs-csi-driver-amazonebscsidriverpolicy,
                                   cluster-aws-ebs-csi-driver-role,
                                   cluster-cluster-amazoneksclusterpolicy, cluster-cluster-role,
                                   cluster-node-amazonec2containerregistryreadonly,
                                   cluster-node-amazoneksworkernodepolicy, cluster-node-role,
                                   cluster-secrets-key (x2), cluster-vpc-cni-amazoneks-cni-policy,
                                   cluster-vpc-cni-role, database-app-password,
                                   database-final-snapshot, database-master-secret-reader,
                                   database-master-secret-reader-policy, database-monitoring-policy,
                                   database-monitoring-role, network-flow-logs (x2)
  DNS / edge                   8 -> 8
                                 same names, new stack: edge-always-use-https, edge-min-tls-version,
                                   edge-origin-cert, edge-origin-csr, edge-origin-key, edge-record,
                                   edge-ssl, edge-tls-1-3
  object storage               3 -> 3
                                 same names, new stack: backups-bucket, backups-lifecycle,
                                   edge-media
  Kubernetes objects           0 -> 26
                                 create: app-database-role, app-database-role-account,
                                   app-database-role-password, app-database-role-sql,
                                   app-default-deny, app-deployment, app-egress, app-env, app-hpa,
                                   app-namespace, app-pdb, app-release, app-service,
                                   app-web-ingress, autoscaler-cluster-role,
                                   autoscaler-cluster-role-binding, autoscaler-deployment,
                                   autoscaler-pdb, autoscaler-role, autoscaler-role-binding,
                                   autoscaler-sa, cluster-gp3, logical-backup,
                                   logical-backup-account, logical-backup-credentials,
                                   logical-backup-egress
  rollout steps                3 -> 0
                                 retire: vps-droplet-host-key-install,
                                   vps-droplet-host-key-install-read, vps-rollout
  console organisation         1 -> 0
                                 retire: vps-project

Data to move
  PostgreSQL: droplet vps-droplet (phase1) -> RDS phasekit-phase3-db (phase3): phasekit db migrate
    (write freeze, pg_dump / pg_restore, both sides verified)
  media: R2 bucket phasekit-phase1-media -> phasekit-phase3-media: object copy
  hostname: app.example.com: the DNS record moves from phase1 to phase3 at the cutover
  Redis: not copied (cache and queues): drain queues before the freeze; the cache starts cold

Monthly cost (USD)
  before (phase1):  16.40
  after (phase3):  400.58 (+ 1.40 unconfirmed)
  during the overlap (phase1 + phase3):  416.98 (+ 1.40 unconfirmed)
  keeping phase1 7 days after the cutover:  4.10

Runbook
  1. Create the target stack phase3 beside phase1
     phase1 keeps serving app.example.com; phase3 comes up on the temporary hostname
       phase3-app.example.com (one label under the zone, so Cloudflare's Universal SSL covers it),
       because both stacks declare a DNS record and only one may own app.example.com.
     These commands edit Pulumi.phase3.yaml; step 4 sets its hostname back to app.example.com.
     No secret goes on a command line, where ps and the shell history would show it: pulumi prompts
       for each value (or reads it from a pipe), and phasekit db reads the database passwords from a
       private password file.
         pulumi stack init phase3
         pulumi config set --stack phase3 --secret cloudflare:apiToken   \
             # no value argument: pulumi prompts for it without echo
         # AWS credentials come from the environment (AWS_PROFILE, SSO or OIDC); the principal must
             # be listed in cluster.adminPrincipalArns
         pulumi config get --stack phase1 --path 'secrets.SECRET_KEY_BASE' | pulumi config set \
             --stack phase3 --secret --path 'secrets.SECRET_KEY_BASE'   \
             # the source's value through a pipe, so sessions survive the move
         pulumi config get --stack phase1 --path 'secrets.BACKUP_PASSPHRASE' | pulumi config set \
             --stack phase3 --secret --path 'secrets.BACKUP_PASSPHRASE'   \
             # the source's value through a pipe, so sessions survive the move
         pulumi config set --stack phase3 --path 'phasekit:edge.hostname' phase3-app.example.com
         pulumi up --stack phase3
  2. Copy the data (a rehearsal: the app keeps writing to the source)
     Tunnels bring both databases to 127.0.0.1; each password goes from pulumi through a pipe into
       `phasekit db pgpass`, which keeps it in migration.pgpass (mode 0600), never on a command
       line.
     phase3's app connects as its role app_user, into schema app_user: the target URL is RDS's
       master user (its password from Secrets Manager, through pipes), which restores into public;
       in the frozen run (step 3), once verified, --target-role app_user renames public to app_user
       and gives it to the role, keeping the release command's empty schema as
       app_user_replaced_<UTC time>. The rehearsal leaves its copy in public.
     Without the freeze, writes the app makes meanwhile show up as differences (exit 1): expected in
       a rehearsal, which proves the tunnels and the copy and times it (the freeze lasts about as
       long).
     R2 credentials: an R2 API token with read and write on both buckets, as AWS CLI profile r2.
         export PGPASSFILE="$PWD/migration.pgpass"
         SOURCE_DB_HOST="$(doctl compute droplet get "$(pulumi stack output --stack phase1 \
             droplet_id)" --template '{{.PublicIPv4}}')"
         SOURCE_DB_ADDRESS="$(ssh root@"$SOURCE_DB_HOST" \
             'docker compose --file /opt/phasekit/compose.yaml exec -T db hostname -i')"
         ssh -f -N -M -S source-tunnel.sock -o ExitOnForwardFailure=yes -L \
             "127.0.0.1:15432:$SOURCE_DB_ADDRESS:5432" root@"$SOURCE_DB_HOST"
         pulumi stack output --stack phase1 --show-secrets database_url | phasekit db pgpass \
             --host 127.0.0.1 --port 15432 > source.url
         pulumi stack output --stack phase3 --show-secrets kubeconfig > kubeconfig-phase3
         kubectl --kubeconfig kubeconfig-phase3 run pg-relay-target --namespace default \
             --restart=Never --image alpine/socat:1.8.0.3 -- tcp-listen:5432,fork,reuseaddr \
             "tcp-connect:$(pulumi stack output --stack phase3 database_address):5432"
         kubectl --kubeconfig kubeconfig-phase3 wait pod/pg-relay-target --namespace default \
             --for=condition=Ready --timeout=120s
         kubectl --kubeconfig kubeconfig-phase3 port-forward pod/pg-relay-target --namespace \
             default 25432:5432 > /dev/null &
         TARGET_PORT_FORWARD=$!
         TARGET_DB_ADDRESS="$(pulumi stack output --stack phase3 database_address)"
         TARGET_MASTER_ARN=$(aws rds describe-db-instances --query \
             "DBInstances[?Endpoint.Address=='$TARGET_DB_ADDRESS'].MasterUserSecret.SecretArn|[0]" \
             --output text)
         aws secretsmanager get-secret-value --secret-id "$TARGET_MASTER_ARN" --query SecretString \
             --output text | python3 -c \
             'import json, sys; from urllib.parse import quote; s = json.load(sys.stdin); '\
'print("postgresql://" + quote(s["username"], safe="") + ":" + quote(s["password"], '\
'safe="") + "@rds/" + sys.argv[1])' app | phasekit db pgpass --host 127.0.0.1 --port 25432 > \
             target.url
         phasekit db migrate --source "$(cat source.url)" --target "$(cat target.url)" \
             --allow-non-empty --target-role app_user --no-freeze
         aws s3 sync s3://phasekit-phase1-media s3://phasekit-phase3-media --profile r2 \
             --endpoint-url https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com
  3. Freeze writes on phase1, copy and verify
     phasekit db migrate makes phase1's database read-only (reads keep working, writes fail with an
       error until the cutover), ends its open sessions, copies, compares every table, sequence,
       large object and view on both sides, and prints the write-freeze window. Announce the window
       first.
     Exit 0: the copy is whole and phase1 stays read-only for the cutover. A failed copy lifts the
       freeze by itself; differences (exit 1) leave it frozen until you settle them. To roll back:
       `phasekit db unfreeze --source "$(cat source.url)"`.
         phasekit db migrate --source "$(cat source.url)" --target "$(cat target.url)" \
             --allow-non-empty --target-role app_user
         aws s3 sync s3://phasekit-phase1-media s3://phasekit-phase3-media --profile r2 \
             --endpoint-url https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com
  4. Cut Cloudflare over to phase3
     app.example.com has no record from the first command until the last one ends (writes are
       already frozen). The last two point phase3's record at app.example.com and re-issue its
       origin certificate.
         pulumi destroy --stack phase1 --target \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'dnsRecord:DnsRecord::edge-record' --yes
         pulumi config set --stack phase3 --path 'phasekit:edge.hostname' app.example.com
         pulumi up --stack phase3 --yes
  5. Verify
     The health path /healthz answers 200 through Cloudflare; then the tunnels close and the
       password file goes.
         curl -fsS https://app.example.com/healthz
         curl -sS -o /dev/null -w '%{http_code}\n' https://app.example.com/
         dig +short app.example.com   # Cloudflare's addresses: the record is proxied
         kubectl --kubeconfig kubeconfig-phase3 --namespace app rollout status deployment/app
         aws s3 ls s3://phasekit-phase1-media --recursive --summarize --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com | tail -2
         aws s3 ls s3://phasekit-phase3-media --recursive --summarize --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com | tail -2
         ssh -S source-tunnel.sock -O exit root@"$SOURCE_DB_HOST"
         kill "$TARGET_PORT_FORWARD"
         kubectl --kubeconfig kubeconfig-phase3 delete pod pg-relay-target --namespace default
         rm -f migration.pgpass source.url target.url
  6. Keep phase1 for 7 days
     phase1 still holds the data as it was at the freeze. The way back: `pulumi destroy --stack
       phase3 --target 'urn:pulumi:phase3::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/
       dnsRecord:DnsRecord::edge-record' --yes`, `pulumi up --stack phase1` (recreates its record),
       then `ALTER DATABASE app RESET default_transaction_read_only` on phase1 (or `phasekit db
       unfreeze` through step 2's tunnel); writes made on phase3 meanwhile stay behind. Both stacks
       bill meanwhile: 7 more days of phase1 cost about $4.10.
  7. Retire phase1
     Take a final backup first; delete the old media bucket only after step 5 showed the copy whole.
       The zone settings are zone-wide and also managed by phase3: drop them from phase1's state so
       destroying phase1 leaves them alone. Protected resources need `pulumi state unprotect`;
       resources retained on delete survive `pulumi destroy` and keep billing until deleted by hand:
       hosts and databases before the destroy (the network cannot go around them), volumes and
       buckets after.
         SOURCE_DB_HOST="$(doctl compute droplet get "$(pulumi stack output --stack phase1 \
             droplet_id)" --template '{{.PublicIPv4}}')"
         ssh root@"$SOURCE_DB_HOST" \
             'docker compose --file /opt/phasekit/compose.yaml exec -T db pg_dump --username app '\
'--format custom app' > phase1-final.dump
         doctl compute volume snapshot "$(pulumi stack output --stack phase1 volume_id)" \
             --snapshot-name phase1-final
         RETIRED_VOLUME_ID="$(pulumi stack output --stack phase1 volume_id)"
         pulumi state delete --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-always-use-https' --yes
         pulumi state delete --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-min-tls-version' --yes
         pulumi state delete --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-ssl' --yes
         pulumi state delete --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'zoneSetting:ZoneSetting::edge-tls-1-3' --yes
         pulumi state unprotect --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:BackupStore$cloudflare:index/r2Bucket:'\
'R2Bucket::backups-bucket' --yes
         pulumi state unprotect --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\
'r2Bucket:R2Bucket::edge-media' --yes
         pulumi state unprotect --stack phase1 \
             'urn:pulumi:phase1::phasekit::phasekit:index:SingleVps$digitalocean:index/volume:'\
'Volume::vps-data' --yes
         pulumi destroy --stack phase1
         doctl compute volume delete "$RETIRED_VOLUME_ID" --force   # vps-data
         # keep s3://phasekit-phase1-backups (phase1's backups and WAL) until no restore of phase1
             # can be needed; then delete it like the media bucket
         aws s3 rb s3://phasekit-phase1-media --force --profile r2 --endpoint-url \
             https://01a7362d577a6c3019a474fd6f485823.r2.cloudflarestorage.com   # edge-media
         pulumi stack rm --preserve-config phase1
"""


def test_migration_text_phase1_to_phase3(plans):
    assert_lines(migration_text(plans["phase1"], plans["phase3"]), MIGRATION_1_TO_3)


def test_migration_json_phase1_to_phase2(plans):
    document = migration_json(plans["phase1"], plans["phase2"])
    assert (document["from"], document["to"]) == ("phase1", "phase2")
    assert document["cost"] == {
        "beforeUsd": "16.40", "afterUsd": "76.00", "duringOverlapUsd": "92.40", "beforeUnconfirmedLeadUsd": "0.00",
        "afterUnconfirmedLeadUsd": "12.00", "keepSourceDays": 7, "keepSourceUsd": "4.10",
        "keepSourceUnconfirmedLeadUsd": "0.00"}
    assert [step["title"] for step in document["runbook"]] == [
        "Create the target stack phase2 beside phase1", "Copy the data (a rehearsal: the app keeps writing to the source)",
        "Freeze writes on phase1, copy and verify", "Cut Cloudflare over to phase2", "Verify", "Keep phase1 for 7 days",
        "Retire phase1"]
    assert document["retired"]["block storage"] == ["vps-data"]
    assert document["created"]["databases"] == ["split-db"]


def test_keeping_an_aws_source_a_week_costs_its_hourly_share(plans):
    document = migration_json(plans["phase3"], plans["phase1"])
    # AWS bills by the hour: 7 days = 168 of the month's 730 hours; the leads (KMS key, master secret) stay apart.
    assert document["cost"]["keepSourceUsd"] == str((Decimal("400.58") * 168 / 730).quantize(Decimal("0.01")))
    assert document["cost"]["keepSourceUsd"] == "92.19"
    assert document["cost"]["keepSourceUnconfirmedLeadUsd"] == "0.32"


def test_a_stack_compared_with_itself_is_refused(plans):
    with pytest.raises(ConfigError) as raised:
        compare_text([plans["phase1"], plans["phase2"], plans["phase1"]])
    assert str(raised.value) == ("--compare: phase1 is listed twice; allowed: each stack once, e.g. --compare phase1 "
                                 "phase2 phase3")


def with_rds_version(plan: Plan, version: str) -> Plan:
    """The same stack with its RDS instance on another PostgreSQL major version."""
    resources = [replace(resource, inputs={**resource.inputs, "engineVersion": version})
                 if resource.type == "aws:rds/instance:Instance" else resource for resource in plan.recording.resources]
    return replace(plan, recording=replace(plan.recording, resources=resources))


@pytest.mark.parametrize(("source", "target"), [("phase1", "phase2"), ("phase2", "phase3"), ("phase1", "phase3"),
                                                ("phase3", "phase1")])
def test_the_runbook_moves_the_database_with_phasekit_db_migrate(plans, source, target):
    """A rehearsal without the freeze, then one frozen, verified copy; no hand-typed dump, restore or freeze."""
    steps = migration_json(plans[source], plans[target])["runbook"]
    migrate = ('phasekit db migrate --source "$(cat source.url)" --target "$(cat target.url)" --allow-non-empty'
               + (" --target-role app_user" if target == "phase3" else ""))
    assert [command for command in steps[1]["commands"] if command.startswith("phasekit db migrate")] == [
        f"{migrate} --no-freeze"]
    assert steps[2]["title"] == f"Freeze writes on {source}, copy and verify"
    assert steps[2]["commands"][0] == migrate
    commands = [command for step in steps[:5] for command in step["commands"]]
    assert not [command for command in commands if re.search(r"pg_dump|pg_restore|ALTER DATABASE|psql", command)]
    passwords = [command for command in commands if "phasekit db pgpass" in command]
    # Into phase 3 the target is RDS's master user, its password from Secrets Manager (the app's role gets the
    # copy through --target-role).
    target_password = (
        "aws secretsmanager get-secret-value --secret-id \"$TARGET_MASTER_ARN\" --query SecretString --output text"
        f" | python3 -c {shlex.quote(MASTER_URL_PYTHON)} app | phasekit db pgpass --host 127.0.0.1 --port 25432 "
        "> target.url") if target == "phase3" else (
        f"pulumi stack output --stack {target} --show-secrets database_url | phasekit db pgpass --host 127.0.0.1 "
        "--port 25432 > target.url")
    assert passwords == [
        f"pulumi stack output --stack {source} --show-secrets database_url | phasekit db pgpass --host 127.0.0.1 "
        "--port 15432 > source.url", target_password]
    assert steps[4]["commands"][-1] == "rm -f migration.pgpass source.url target.url"


def test_a_droplet_target_is_drilled_before_the_cutover(plans):
    notes = migration_json(plans["phase1"], plans["phase2"])["runbook"][2]["notes"]
    assert notes[-1] == ("Before the cutover, `phasekit db drill --stack phase2` proves phase2's backups restore "
                         "(docs/migration.md).")
    assert not any("phasekit db drill" in note
                   for note in migration_json(plans["phase2"], plans["phase3"])["runbook"][2]["notes"])


def test_an_rds_site_is_reached_through_a_relay_pod_and_port_forward(plans):
    commands = migration_json(plans["phase2"], plans["phase3"])["runbook"][1]["commands"]
    assert commands[commands.index("pulumi stack output --stack phase3 --show-secrets kubeconfig > kubeconfig-phase3")
                    + 1:][:4] == [
        "kubectl --kubeconfig kubeconfig-phase3 run pg-relay-target --namespace default --restart=Never --image "
        "alpine/socat:1.8.0.3 -- tcp-listen:5432,fork,reuseaddr "
        '"tcp-connect:$(pulumi stack output --stack phase3 database_address):5432"',
        "kubectl --kubeconfig kubeconfig-phase3 wait pod/pg-relay-target --namespace default "
        "--for=condition=Ready --timeout=120s",
        "kubectl --kubeconfig kubeconfig-phase3 port-forward pod/pg-relay-target --namespace default 25432:5432 "
        "> /dev/null &",
        "TARGET_PORT_FORWARD=$!"]


def test_the_retired_stacks_backups_bucket_is_kept(plans):
    retire = migration_json(plans["phase1"], plans["phase2"])["runbook"][-1]["commands"]
    assert "# keep s3://phasekit-phase1-backups (phase1's backups and WAL) until no restore of phase1 can be " \
           "needed; then delete it like the media bucket" in retire
    assert not [command for command in retire if command.startswith("aws s3 rb s3://phasekit-phase1-backups")]


def test_a_target_on_an_older_postgresql_major_version_is_refused(plans):
    with pytest.raises(ConfigError) as raised:
        migration_text(plans["phase2"], with_rds_version(plans["phase3"], "15"))
    assert str(raised.value) == ("--to phase3: PostgreSQL 15 is older than phase2's PostgreSQL 16; allowed: a target "
                                 "running PostgreSQL 16 or newer")


def test_migration_to_the_same_stack_is_refused(plans):
    with pytest.raises(ConfigError) as raised:
        migration_text(plans["phase1"], plans["phase1"])
    assert str(raised.value) == ("--from phase1 --to phase1: the same stack; allowed: two different stacks, e.g. "
                                 "--from phase1 --to phase2")


@pytest.mark.parametrize(("hostname", "stack", "expected"), [
    ("app.example.com", "phase2", "phase2-app.example.com"),
    ("shop.eu.example.co.uk", "phase3", "phase3-shop.eu.example.co.uk"),
    ("example.com", "phase2", "phase2.example.com"),
])
def test_temporary_hostname_stays_one_label_under_the_zone(hostname, stack, expected):
    assert temporary_hostname(hostname, stack) == expected


# --- The runbook never puts a secret on a command line ------------------------------------------------------
#
# A value in a process's arguments is readable by every local user (``ps``, /proc/<pid>/cmdline), lands in
# shell history and, for ``kubectl run``, in the pod spec anyone who may read pods can see. Secrets must
# reach the CLIs through a prompt or stdin instead: what these tests scan every runbook line for.

RUNBOOK_PAIRS = [("phase1", "phase2"), ("phase2", "phase3"), ("phase1", "phase3"), ("phase3", "phase1")]
"""Forwards, and back from an RDS source (the database URL then belongs to the source)."""

URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'\"]+:[^\s/@'\"]*@")
SECRET_ASSIGNMENT = re.compile(r"\b[A-Z][A-Z0-9_]*(PASSWORD|TOKEN|SECRET|API_KEY|DATABASE_URL)[A-Z0-9_]*=")
SECRET_FLAG = re.compile(r"(?<![\w-])--(password|from-literal|env)\b")
SECRET_VARIABLE = re.compile(r"(?i)(PASSWORD|TOKEN|SECRET|API_KEY|DATABASE_URL|REDIS_URL|DSN|CREDENTIAL)")
SECRET_PRINTERS = ("pulumi config get", "--show-secrets")
PLACEHOLDER = re.compile(r"<[^<>\s|]+>")
CONFIG_SET_FLAGS_WITH_VALUE = {"--stack", "-s", "--config-file", "--type"}


def printed_commands(text: str) -> list[list[str]]:
    """The runbook's commands as printed: each a list of lines, the first indented 9 columns, its
    continuations 13 or, for the second part of a cut quoted word, 0 (notes sit at 5 and wrap to 7)."""
    runbook = text[text.index("\nRunbook\n"):].splitlines()
    commands: list[list[str]] = []
    for line in runbook:
        indent = len(line) - len(line.lstrip(" "))
        if indent == len(COMMAND_INDENT):
            commands.append([line])
        elif indent == len(CONTINUATION_INDENT) or (line[:1] in ("'", '"') and commands[-1][-1].endswith("\\")):
            commands[-1].append(line)  # in column 0: the second part of a quoted word cut in two
    return commands


def runbook_commands(plans, source: str, target: str) -> list[str]:
    """Every command of the printed runbook, its continuations joined, checked against the JSON form's
    commands (each one line) so both outputs are covered."""
    commands = [joined_command(lines) for lines in printed_commands(migration_text(plans[source], plans[target]))]
    assert commands == [command for step in migration_json(plans[source], plans[target])["runbook"]
                        for command in step["commands"]]
    return commands


def local_expansions(command: str) -> list[str]:
    """What the operator's own shell expands into the arguments it passes: ``$NAME``, ``${NAME}`` and
    ``$(command)`` outside single quotes and before a comment (text in single quotes reaches the program
    verbatim, e.g. a ``sh -c`` script a pod runs)."""
    found: list[str] = []
    quote, index = "", 0
    while index < len(command):
        char = command[index]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            index += 1
        elif char == "'" and quote != '"':
            quote = "'"
        elif char == '"':
            quote = "" if quote == '"' else '"'
        elif char == "#" and not quote and (index == 0 or command[index - 1].isspace()):
            break
        elif char == "$" and command[index + 1:index + 2] == "(":
            depth, end = 0, index + 1
            while end < len(command):
                depth += {"(": 1, ")": -1}.get(command[end], 0)
                if depth == 0:
                    break
                end += 1
            found += [command[index:end + 1], *local_expansions(command[index + 2:end])]
            index = end  # the substitution's own quotes are its own: scanned by the recursive call
        elif char == "$" and (match := re.match(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", command[index:])):
            found.append(match[0])
        index += 1
    return found


def config_set_values(command: str) -> list[list[str]]:
    """For each ``pulumi config set --secret`` in the line, the arguments after the key (a value on the
    command line); a placeholder such as ``<token>`` counts as the value the operator would type there."""
    lexer = shlex.shlex(PLACEHOLDER.sub("PLACEHOLDER", command), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True  # split words as the shell does: at blanks and operators, not at ':'
    words = list(lexer)
    found: list[list[str]] = []
    segments: list[list[str]] = [[]]
    for word in words:
        if word in {"|", "||", "&&", ";", "(", ")"}:
            segments.append([])
        else:
            segments[-1].append(word)
    for segment in segments:
        if segment[:3] != ["pulumi", "config", "set"] or "--secret" not in segment:
            continue
        positional, skip = [], False
        for word in segment[3:]:
            if skip:
                skip = False
            elif word in CONFIG_SET_FLAGS_WITH_VALUE:
                skip = True
            elif not word.startswith("-") and word not in {"<", ">"}:
                positional.append(word)
        found.append(positional[1:])
    return found


def secrets_on_the_command_line(command: str) -> list[str]:
    """Why ``command`` would put a secret in some process's arguments; empty when it does not."""
    problems = []
    if URL_WITH_PASSWORD.search(command):
        problems.append("a URL with a password")
    if match := SECRET_ASSIGNMENT.search(command):
        problems.append(f"a secret assigned on the line: {match[0]}")
    if match := SECRET_FLAG.search(command):
        problems.append(f"a secret passed as {match[0]}")
    for expansion in local_expansions(command):
        if expansion.startswith("$(") and any(printer in expansion for printer in SECRET_PRINTERS):
            problems.append(f"a secret expanded on the command line: {expansion}")
        elif not expansion.startswith("$(") and SECRET_VARIABLE.search(expansion):
            problems.append(f"a secret variable expanded into the arguments: {expansion}")
    problems += [f"pulumi config set --secret with a value argument: {values}"
                 for values in config_set_values(command) if values]
    return problems


@pytest.mark.parametrize(("source", "target"), RUNBOOK_PAIRS)
def test_no_runbook_command_puts_a_secret_on_the_command_line(plans, source, target):
    commands = runbook_commands(plans, source, target)
    found = {command: problems for command in commands if (problems := secrets_on_the_command_line(command))}
    assert found == {}


@pytest.mark.parametrize(("command", "problems"), [
    ("pulumi config set --stack phase2 --secret digitalocean:token <token>",
     ["pulumi config set --secret with a value argument: ['PLACEHOLDER']"]),
    ("pulumi config set --stack p --secret --path 'secrets.K' \"$(pulumi config get --stack q --path 'secrets.K')\"",
     ["a secret expanded on the command line: $(pulumi config get --stack q --path 'secrets.K')",
      "pulumi config set --secret with a value argument: [\"$(pulumi config get --stack q --path 'secrets.K')\"]"]),
    ("kubectl run psql --image postgres:16 --command -- psql \"$TARGET_DATABASE_URL\"",
     ["a secret variable expanded into the arguments: $TARGET_DATABASE_URL"]),
    ("psql postgresql://app:hunter2@db:5432/app", ["a URL with a password"]),
    ("PGPASSWORD=hunter2 psql --host db", ["a secret assigned on the line: PGPASSWORD="]),
    ("kubectl create secret generic db --from-literal=url=x", ["a secret passed as --from-literal"]),
    # Comments and single-quoted scripts (expanded by the pod, not by the operator's shell) are fine.
    ("kubectl run x --command -- sh -c 'exec psql \"$DATABASE_URL\"'   # $TOKEN", []),
    ("pulumi config get --stack q --path 'secrets.K' | pulumi config set --stack p --secret --path 'secrets.K'", []),
    ("pulumi config set --stack p --secret cloudflare:apiToken", []),
    ("curl -H \"Authorization: Bearer $(echo \"$API_TOKEN\")\" https://api", [
        "a secret variable expanded into the arguments: $API_TOKEN"]),
])
def test_the_secret_scan_catches_each_way_a_secret_reaches_the_arguments(command, problems):
    assert secrets_on_the_command_line(command) == problems


def runbook_script(plans, source: str, target: str, *, printed: bool = False) -> str:
    """The runbook's commands one a line, or (``printed``) exactly as printed, continuations and all:
    what an operator pastes."""
    if printed:
        text = migration_text(plans[source], plans[target])
        return "".join(f"{line}\n" for lines in printed_commands(text) for line in lines)
    return "".join(f"{command}\n" for command in runbook_commands(plans, source, target))


@pytest.mark.parametrize("printed", [False, True], ids=["one-line", "printed"])
@pytest.mark.parametrize(("source", "target"), RUNBOOK_PAIRS)
def test_runbook_commands_are_valid_bash(plans, source, target, printed, tmp_path):
    script = tmp_path / "runbook.sh"
    script.write_text(runbook_script(plans, source, target, printed=printed))
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr) == (0, "")


def test_the_runbook_wraps_long_commands_at_argument_boundaries(plans):
    text = migration_text(plans["phase2"], plans["phase3"])
    assert [lines for lines in printed_commands(text) if "edge-record" in lines[-1]][0] == [
        "         pulumi destroy --stack phase2 --target \\",
        "             'urn:pulumi:phase2::phasekit::phasekit:index:CloudflareEdge$cloudflare:index/'\\",
        "'dnsRecord:DnsRecord::edge-record' --yes",
    ]
    printed = [lines for lines in printed_commands(text) if len(lines) > 1]
    assert len(printed) > 10
    # Joining the continuations gives back the one-line command, and bash splits both into the same words.
    for lines in printed:
        command = joined_command(lines)
        assert command_lines(command) == lines
        assert len(command) + len(COMMAND_INDENT) > WIDTH
        assert shlex.split("\n".join(lines).replace("\\\n", ""), comments=True) == shlex.split(command, comments=True)


@pytest.mark.parametrize(("command", "expected"), [
    # a blank inside $(...) is a place to break; one inside double quotes is not
    ('X="$(doctl compute droplet get "$(pulumi stack output --stack phase2 db_droplet_id)" --template '
     "'{{.PublicIPv4}}')\"",
     ['         X="$(doctl compute droplet get "$(pulumi stack output --stack phase2 db_droplet_id)" \\',
      "             --template '{{.PublicIPv4}}')\""]),
    # a trailing comment may take a line of its own; a comment-only line wraps as comments
    ("pulumi config set --stack phase3 --secret --path 'secrets.SECRET_KEY_BASE'   # " + "word " * 9 + "end",
     ["         pulumi config set --stack phase3 --secret --path 'secrets.SECRET_KEY_BASE'   \\",
      "             # word word word word word word word word word end"]),
    ("# " + "word " * 20 + "end",
     ["         # word word word word word word word word word word word word word word word word word word",
      "             # word word end"]),
    # a double-quoted word bash would expand is never cut; a plain one is
    ('printf "%s" "' + "a" * 90 + '"', ['         printf "%s" \\', '             "' + "a" * 84 + '"\\',
                                        '"aaaaaa"']),
    ('echo "$' + "A" * 90 + '"', ['         echo \\', '             "$' + "A" * 90 + '"']),
])
def test_command_lines_break_only_where_bash_reads_the_same_command(command, expected):
    assert command_lines(command) == expected
    assert joined_command(expected) == command


@pytest.mark.parametrize("pair", [*RUNBOOK_PAIRS, "compare"])
def test_no_line_of_the_plain_outputs_is_wider_than_the_width(plans, pair):
    """The risk report's width is tested in test_change_risk.py."""
    if pair == "compare":
        text = compare_text([plans["phase1"], plans["phase2"], plans["phase3"]])
    else:
        text = migration_text(plans[pair[0]], plans[pair[1]])
    assert [line for line in text.splitlines() if len(line) > WIDTH] == []
    assert len(text.splitlines()) > 5


SHELLCHECK_EXCLUDED = {
    # Single quotes on purpose: a URN's `$` is literal, and the pod's shell expands $DATABASE_URL, not the
    # operator's (that keeps the URL out of kubectl's arguments).
    "SC2016": "Expressions don't expand in single quotes",
}
SHELLCHECK_EXCLUDED_WHEN_PRINTED = {
    # The printed runbook cuts a double-quoted word too long for a line into adjacent quoted parts ("ab"\
    # then "cd"); bash reads them as one word, which the stub run below proves by comparing arguments.
    "SC2140": 'Word is of the form "A"B"C"',
}


@pytest.mark.parametrize("printed", [False, True], ids=["one-line", "printed"])
@pytest.mark.parametrize(("source", "target"), RUNBOOK_PAIRS)
def test_runbook_commands_pass_shellcheck(plans, source, target, printed):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (Debian package shellcheck)"
    excluded = {**SHELLCHECK_EXCLUDED, **(SHELLCHECK_EXCLUDED_WHEN_PRINTED if printed else {})}
    result = subprocess.run([shellcheck, "--shell=bash", "--format=gcc", f"--exclude={','.join(excluded)}", "-"],
                            input=runbook_script(plans, source, target, printed=printed), capture_output=True,
                            text=True, check=False)
    assert (result.returncode, result.stdout) == (0, "")


FAKE_DATABASE_URL = "postgresql://app:Fake0Password0For0Tests@db.internal:5432/app?sslmode=require"
FAKE_SECRET_KEY_BASE = "fake-secret-key-base-for-tests"
STUB = """\
import json, os, sys
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["RUNBOOK_LOG"], "a") as log:
    log.write(json.dumps({"argv": [name, *args], "stdin": sys.stdin.read()}) + "\\n")
if name == "kubectl" and "port-forward" in args:
    import time
    time.sleep(120)  # runs in the background until the runbook kills it, as the real one would
if name == "pulumi" and args[:2] == ["stack", "output"]:
    print("DATABASE_URL" if "database_url" in args else "kubeconfig" if "kubeconfig" in args else "id-1")
elif name == "pulumi" and args[:2] == ["config", "get"]:
    print(os.environ["FAKE_SECRET_KEY_BASE"])
elif name == "doctl" and "--template" in args:
    print("203.0.113.10")
elif name == "aws" and args[:2] == ["rds", "describe-db-instances"]:
    print("arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1")
elif name == "aws" and args[:2] == ["secretsmanager", "get-secret-value"]:
    print(json.dumps({"username": "master", "password": os.environ["FAKE_MASTER_PASSWORD"]}))
""".replace('"DATABASE_URL"', "os.environ['FAKE_DATABASE_URL']")
FAKE_MASTER_PASSWORD = "Fake:Master/Password@1"
"""RDS's master password as Secrets Manager returns it (characters a URL must escape)."""


@pytest.mark.parametrize(("source", "target"), RUNBOOK_PAIRS)
def test_runbook_runs_with_stub_clis_and_secrets_travel_only_through_pipes(plans, source, target, tmp_path):
    """The whole runbook under ``bash -e -o pipefail`` with pulumi, kubectl, doctl, ssh, aws, curl, dig and phasekit
    replaced by stubs that record their arguments and stdin: no fake secret reaches any process's
    arguments, and each arrives whole on the stdin of the command that stores it."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("pulumi", "kubectl", "doctl", "ssh", "aws", "curl", "dig", "phasekit"):
        (stubs / name).write_text(f"#!{sys.executable} -S\n{STUB}")  # -S: no site import, a faster start
        (stubs / name).chmod(0o755)

    def run(printed: bool) -> list[dict]:
        log = tmp_path / f"calls-{printed}.jsonl"
        script = tmp_path / f"runbook-{printed}.sh"
        script.write_text("set -e -o pipefail\n" + runbook_script(plans, source, target, printed=printed))
        environment = {"PATH": f"{stubs}:{os.environ['PATH']}", "RUNBOOK_LOG": str(log),
                       "FAKE_DATABASE_URL": FAKE_DATABASE_URL, "FAKE_SECRET_KEY_BASE": FAKE_SECRET_KEY_BASE,
                       "FAKE_MASTER_PASSWORD": FAKE_MASTER_PASSWORD}
        result = subprocess.run(["bash", str(script)], cwd=tmp_path, env=environment, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=120, check=False)
        assert (result.returncode, result.stderr) == (0, "")
        return [json.loads(line) for line in log.read_text().splitlines()]

    def in_order(calls: list[dict]) -> tuple[list[dict], list[dict]]:
        """(the calls in the order they ran, the background port-forwards: they log when they happen to start)."""
        background = [call for call in calls if "port-forward" in call["argv"]]
        return [call for call in calls if call not in background], sorted(background, key=json.dumps)

    calls = run(printed=False)
    # Pasted as printed (continuations, cut quoted words), every CLI gets the same arguments and stdin.
    assert in_order(run(printed=True)) == in_order(calls)
    leaked = [call["argv"] for call in calls
              if any(secret in " ".join(call["argv"]) for secret in (FAKE_DATABASE_URL, "Fake0Password0For0Tests",
                                                                   FAKE_SECRET_KEY_BASE, FAKE_MASTER_PASSWORD))]
    assert leaked == []
    copied = [call["stdin"] for call in calls if call["argv"][:3] == ["pulumi", "config", "set"]
              and "secrets.SECRET_KEY_BASE" in call["argv"]]
    assert copied == [FAKE_SECRET_KEY_BASE + "\n"]  # pulumi drops the trailing newline (configSetCmd.Run)
    stored = [call["stdin"] for call in calls if call["argv"][0] == "kubectl" and "create" in call["argv"]]
    assert stored == ([FAKE_DATABASE_URL] if source == "phase3" else [])  # the RDS source's final backup
    piped = [call["stdin"] for call in calls if call["argv"][:3] == ["phasekit", "db", "pgpass"]]
    # Both passwords reach the password file through a pipe; an RDS target's is the master user's, from its
    # secret, URL-escaped.
    master_url = "postgresql://master:Fake%3AMaster%2FPassword%401@rds/app\n"
    assert piped == [FAKE_DATABASE_URL + "\n", master_url if target == "phase3" else FAKE_DATABASE_URL + "\n"]


# --- Processes and schedules -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_worker(tmp_path_factory):
    """Each committed stack with a worker and two schedules (tests/builders.py), phase 3's worker autoscaled, planned
    as ``phasekit plan`` plans a stack file (the config travels in ``Plan.config``)."""
    from phasekit.stack_file import read_stack_file
    from tests.builders import with_processes

    folder = tmp_path_factory.mktemp("workers")
    found = []
    for stack, extra in (("phase1", {}), ("phase2", {}), ("phase3", {"maxCount": 4})):
        raw = with_processes(read_stack_file(ROOT / f"Pulumi.{stack}.yaml"), **extra)
        path = folder / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": raw}, sort_keys=False))  # the order the user wrote
        found.append(run_plan(stack, ROOT, stack_file=path))
    return found


WORKLOADS = r"""
Processes and schedules (from the stack files)
  process worker
    phase1  2 containers on the droplet (768Mi limit each)
    phase2  2 containers on each of 2 app droplets, 4 in all (768Mi limit each)
    phase3  Deployment, 2 replicas (autoscaled up to 4 on CPU), and a PodDisruptionBudget (250m CPU
      request, 768Mi limit each)
  schedule refresh-trending ('*/15 * * * *', UTC)
    phase1  systemd timer phasekit-schedule-refresh-trending on the droplet, timeout 600s
    phase2  systemd timer phasekit-schedule-refresh-trending on split-app-0 only, timeout 600s
    phase3  CronJob (concurrencyPolicy Forbid, timeZone Etc/UTC), timeout 600s
  schedule expire-sessions ('30 4 * * *', UTC)
    phase1  systemd timer phasekit-schedule-expire-sessions on the droplet, timeout 3600s
    phase2  systemd timer phasekit-schedule-expire-sessions on split-app-0 only, timeout 3600s
    phase3  CronJob (concurrencyPolicy Forbid, timeZone Etc/UTC), timeout 3600s

What each stack adds over the previous one
"""


def test_compare_shows_where_each_phase_runs_processes_and_schedules(with_worker):
    found = with_worker
    text = compare_text(found)
    start = text.index("Processes and schedules")
    assert_lines(text[start:text.index("What each stack adds") + len("What each stack adds over the previous one\n")],
                 WORKLOADS)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    document = compare_json(found)
    assert document["stacks"][1]["processesAndSchedules"] == {
        "process worker": "2 containers on each of 2 app droplets, 4 in all (768Mi limit each)",
        "schedule refresh-trending ('*/15 * * * *', UTC)":
            "systemd timer phasekit-schedule-refresh-trending on split-app-0 only, timeout 600s",
        "schedule expire-sessions ('30 4 * * *', UTC)":
            "systemd timer phasekit-schedule-expire-sessions on split-app-0 only, timeout 3600s",
    }


def test_stacks_without_processes_compare_as_before(plans, with_worker):
    committed = [plans["phase1"], plans["phase2"], plans["phase3"]]
    assert all(plan.config is not None for plan in committed)  # run_plan hands over the config it validated
    unconfigured = [dataclasses.replace(plan, config=None) for plan in committed]
    assert compare_text(committed) == compare_text(unconfigured)
    assert compare_json(committed) == compare_json(unconfigured)
    # A stack without any beside one with some reads "none".
    text = compare_text([plans["phase1"], with_worker[1]])
    assert "    phase1  none" in text.splitlines()
