"""Tests for ``infra.config``: the stack config model, its messages, and the stack-file checks.

Pure logic, no Pulumi runtime. What these tests cannot prove: that DigitalOcean still sells a size the SDK
enum lists, that a Cloudflare zone or account id exists, that an SSH fingerprint names a key in the account,
or that an image tag has been pushed.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pulumi_digitalocean import DropletSlug
from pydantic import TypeAdapter, ValidationError

from infra.config import (
    IMPLEMENTED_PHASES,
    App,
    ConfigError,
    Phase1Stack,
    check_secrets_encrypted,
    config_warnings,
    load_config,
    required_secret_names,
    secret_env_names_missing,
)
from infra.domain import CpuQuantity, DropletResources, PostgresMajorVersion, droplet_resources
from infra.stack_secrets import decode_stored_secrets
from phasekit.stack_file import read_stack_file

REPO_ROOT = Path(__file__).resolve().parents[1]

ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
ACCOUNT_ID = "01a7362d577a6c3019a474fd6f485823"
FINGERPRINT = "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"

BASE: dict[str, Any] = {
    "digitalocean:token": {"secure": "AAABADigitalOceanToken"},
    "cloudflare:apiToken": {"secure": "AAABACloudflareToken"},
    "pulumi:tags": {"owner": "web"},
    "phasekit:phase": 1,
    "phasekit:app": {"image": "ghcr.io/acme/shop:1.4.2", "secretEnv": ["SECRET_KEY_BASE"]},
    "phasekit:edge": {"zoneId": ZONE_ID, "accountId": ACCOUNT_ID, "hostname": "app.example.com"},
    "phasekit:vps": {
        "region": "nyc3",
        "size": "s-1vcpu-2gb",
        "sshAdminCidrs": ["203.0.113.0/24"],
        "sshKeyFingerprints": [FINGERPRINT],
        "alertEmails": ["ops@example.com"],
    },
    "phasekit:secrets": {"SECRET_KEY_BASE": {"secure": "AAABASecretKeyBase"}},
}

DELETE = object()
"""Marks a path ``edited`` removes."""


def edited(changes: Mapping[str, object], base: Mapping[str, Any] = BASE) -> dict[str, Any]:
    """A copy of ``base`` with each dotted path (``phasekit:vps.size``) set to its value, or removed for DELETE."""
    raw = copy.deepcopy(dict(base))
    for path, value in changes.items():
        top, *nested = path.split(".")
        parent, key = raw, top
        for part in nested:
            parent, key = parent[key], part
        if value is DELETE:
            del parent[key]
        else:
            parent[key] = value
    return raw


def error_message(raw: Mapping[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    return str(caught.value)


REGIONS = "ams2, ams3, blr1, fra1, lon1, nyc1, nyc2, nyc3, sfo1, sfo2, sfo3, sgp1, syd1, tor1"
SIZES = "a slug from pulumi_digitalocean.DropletSlug such as s-1vcpu-2gb, s-2vcpu-4gb, s-4vcpu-8gb"
TOP_KEYS = (
    "phasekit:app, phasekit:backups, phasekit:edge, phasekit:phase, phasekit:protect, phasekit:secrets, "
    "phasekit:services, phasekit:sshPrivateKey, phasekit:tags, phasekit:vps"
)
VPS_KEYS = "alertEmails, alertSlack, backupPlan, backups, region, size, sshAdminCidrs, sshKeyFingerprints, volumeSizeGib"
APP_KEYS = "dbPoolSize, env, healthPath, image, port, processes, registry, releaseCommand, schedules, secretEnv, workers"
EDGE_KEYS = "accountId, hostname, manageZoneSettings, proxied, zoneId"
PINNED_IMAGE = "an explicit tag or digest, e.g. ghcr.io/acme/shop:1.4.2 or ghcr.io/acme/shop@sha256:<64 hex>"
HOSTNAMES = (
    "a lowercase fully qualified domain name of two or more labels of a-z, 0-9 and '-', e.g. app.example.com"
)
CLOUDFLARE_IDS = "32 lowercase hex characters, as the Cloudflare dashboard shows it"
ENV_NAMES = ("upper-case letters, digits and '_', not starting with a digit, e.g. LOG_LEVEL, "
             "or a lower-case proxy variable (all_proxy, ftp_proxy, http_proxy, https_proxy, no_proxy)")
RESERVED = "DATABASE_URL, MEDIA_BUCKET, PORT, REDIS_URL, WEB_CONCURRENCY"
FINGERPRINTS = (
    "16 colon-separated lowercase hex pairs as DigitalOcean lists the key "
    "(ssh-keygen -l -E md5 -f key.pub prints them after 'MD5:'), e.g. 3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"
)
SET_SECRET = "plain-text secret in the stack file; set it with: pulumi config set --secret"

BAD_CONFIGS = [
    # private registry
    pytest.param(
        {"phasekit:app.registry": {"server": "ghcr.io", "username": "acme"},
         "phasekit:app.image": "registry.digitalocean.com/acme/shop:1.4.2"},
        "phasekit:app.registry.server: 'ghcr.io' is not the registry of app.image (registry.digitalocean.com); "
        "allowed: registry.digitalocean.com",
        id="registry-not-the-images",
    ),
    pytest.param(
        {"phasekit:app.registry": {"server": "ghcr.io", "username": "acme"}, "phasekit:app.image": "acme/shop:1.4.2"},
        "phasekit:app.registry.server: 'ghcr.io' is not the registry of app.image (docker.io); allowed: docker.io",
        id="registry-docker-hub-image",
    ),
    pytest.param(
        {"phasekit:app.registry": {"server": "ghcr.io"}},
        "phasekit:app.registry.username: missing; allowed: a non-empty string",
        id="registry-without-username",
    ),
    # processes and schedules
    pytest.param(
        {'phasekit:app.processes': {'web': {'command': ['celery', '-A', 'shop', 'worker']}}},
        "phasekit:app.processes.web: 'web' is a name phasekit uses itself; allowed: 1 to 20 lowercase letters, digits or '-', starting with a letter, not ending with '-', and not one of app, web, release, migrate, proxy, db, redis, pgbouncer, status, backup, candidate, logical-backup, database-role",
        id='process-named-like-the-web-one',
    ),
    pytest.param(
        {'phasekit:app.processes': {'db': {'command': ['celery', '-A', 'shop', 'worker']}}},
        "phasekit:app.processes.db: 'db' is a name phasekit uses itself; allowed: 1 to 20 lowercase letters, digits or '-', starting with a letter, not ending with '-', and not one of app, web, release, migrate, proxy, db, redis, pgbouncer, status, backup, candidate, logical-backup, database-role",
        id='process-named-like-a-service',
    ),
    pytest.param(
        {'phasekit:app.processes': {'Worker_1': {'command': ['celery', '-A', 'shop', 'worker']}}},
        "phasekit:app.processes.Worker_1: 'Worker_1' is not a process name; allowed: 1 to 20 lowercase letters, digits or '-', starting with a letter, not ending with '-', and not one of app, web, release, migrate, proxy, db, redis, pgbouncer, status, backup, candidate, logical-backup, database-role",
        id='process-name-not-a-label',
    ),
    pytest.param(
        {'phasekit:app.processes': {'worker': {'count': 2}}},
        'phasekit:app.processes.worker.command: missing; allowed: an exec-form list of non-empty strings, e.g. [celery, -A, shop, worker]',
        id='process-without-command',
    ),
    pytest.param(
        {'phasekit:app.processes': {'worker': {'command': 'celery worker'}}},
        "phasekit:app.processes.worker.command: 'celery worker' is not a list; allowed: an exec-form list of non-empty strings, e.g. [celery, -A, shop, worker]",
        id='process-shell-string-command',
    ),
    pytest.param(
        {'phasekit:app.processes': {'worker': {'command': ['celery', '-A', 'shop', 'worker'], 'count': 0}}},
        'phasekit:app.processes.worker.count: 0 is out of range; allowed: 1..50',
        id='process-zero-replicas',
    ),
    pytest.param(
        {'phasekit:app.processes': {'worker': {'command': ['celery', '-A', 'shop', 'worker'], 'maxCount': 4}}},
        'phasekit:app.processes.worker.maxCount: 4 autoscales, which phase 1 cannot: a droplet runs a fixed number of containers; allowed: null (count sets how many run on each app droplet)',
        id='process-autoscales-on-a-droplet',
    ),
    pytest.param(
        {'phasekit:app.processes': {'worker': {'command': ['celery', '-A', 'shop', 'worker'], 'replicas': 2}}},
        'phasekit:app.processes.worker.replicas: unknown key; allowed: command, count, cpu, maxCount, memory, stopTimeoutSeconds',
        id='process-unknown-key',
    ),
    pytest.param(
        {'phasekit:app.processes': {'worker': {'command': ['celery', '-A', 'shop', 'worker'], 'memory': '512MB'}}},
        "phasekit:app.processes.worker.memory: '512MB' is not a Kubernetes quantity phasekit reads; allowed: Mi or Gi, e.g. 512Mi or 2Gi",
        id='process-bad-memory',
    ),
    pytest.param(
        {'phasekit:app.processes': {'worker': {'command': ['celery', '-A', 'shop', 'worker'], 'stopTimeoutSeconds': 0}}},
        'phasekit:app.processes.worker.stopTimeoutSeconds: 0 is out of range; allowed: 1..3600',
        id='process-stop-timeout-zero',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '*/15 * * * *'}}},
        'phasekit:app.schedules.refresh.command: missing; allowed: an exec-form list of non-empty strings, e.g. [python, manage.py, clearsessions]',
        id='schedule-without-command',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'command': ['x']}}},
        "phasekit:app.schedules.refresh.cron: missing; allowed: five fields (minute hour day-of-month month day-of-week, UTC) of numbers, *, ranges a-b, steps /n and lists a,b, e.g. '*/15 * * * *'",
        id='schedule-without-cron',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '60 * * * *', 'command': ['x']}}},
        "phasekit:app.schedules.refresh.cron: '60 * * * *': minute 60 is out of range; allowed: 0-59",
        id='schedule-cron-out-of-range',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '*/15 * * *', 'command': ['x']}}},
        "phasekit:app.schedules.refresh.cron: '*/15 * * *' has 4 fields; allowed: five fields (minute hour day-of-month month day-of-week, UTC) of numbers, *, ranges a-b, steps /n and lists a,b, e.g. '*/15 * * * *'",
        id='schedule-cron-four-fields',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '@hourly', 'command': ['x']}}},
        "phasekit:app.schedules.refresh.cron: '@hourly' has 1 field; allowed: five fields (minute hour day-of-month month day-of-week, UTC) of numbers, *, ranges a-b, steps /n and lists a,b, e.g. '*/15 * * * *'",
        id='schedule-cron-macro',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '0 3 * * MON', 'command': ['x']}}},
        "phasekit:app.schedules.refresh.cron: '0 3 * * MON': day-of-week 'MON' is not a number, *, range or step; allowed: five fields (minute hour day-of-month month day-of-week, UTC) of numbers, *, ranges a-b, steps /n and lists a,b, e.g. '*/15 * * * *'",
        id='schedule-cron-names',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '*/0 * * * *', 'command': ['x']}}},
        "phasekit:app.schedules.refresh.cron: '*/0 * * * *': minute step 0; allowed: a step of 1 or more",
        id='schedule-cron-zero-step',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '0 3 1 * 1', 'command': ['x']}}},
        "phasekit:app.schedules.refresh.cron: '0 3 1 * 1' restricts both day-of-month and day-of-week, which cron runs when either matches and systemd only when both do; allowed: one of the two as *, e.g. two schedules, one per field",
        id='schedule-cron-day-and-weekday',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '0 3 30 2 *', 'command': ['x']}}},
        "phasekit:app.schedules.refresh.cron: '0 3 30 2 *' never runs: no month in its month field has day 30; allowed: a day those months have",
        id='schedule-cron-never',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'refresh': {'cron': '* * * * *', 'command': ['x'], 'timeoutSeconds': 10}}},
        'phasekit:app.schedules.refresh.timeoutSeconds: 10 is out of range; allowed: 60..86400',
        id='schedule-timeout-too-short',
    ),
    pytest.param(
        {'phasekit:app.processes': {'refresh': {'command': ['celery', '-A', 'shop', 'worker']}}, 'phasekit:app.schedules': {'refresh': {'cron': '* * * * *', 'command': ['x']}}},
        "phasekit:app.schedules.refresh: 'refresh' is also a process; allowed: a name used by one process or one schedule",
        id='schedule-named-like-a-process',
    ),
    pytest.param(
        {'phasekit:app.schedules': {'migrate': {'cron': '* * * * *', 'command': ['x']}}},
        "phasekit:app.schedules.migrate: 'migrate' is a name phasekit uses itself; allowed: 1 to 20 lowercase letters, digits or '-', starting with a letter, not ending with '-', and not one of app, web, release, migrate, proxy, db, redis, pgbouncer, status, backup, candidate, logical-backup, database-role",
        id='schedule-named-migrate',
    ),
    # keys
    pytest.param(
        {"phasekit:colour": "blue"}, f"phasekit:colour: unknown key; allowed: {TOP_KEYS}", id="unknown-top-key"
    ),
    pytest.param(
        {"phasekit:phse": 1},
        f"phasekit:phse: unknown key; allowed: {TOP_KEYS} (did you mean 'phasekit:phase'?)",
        id="unknown-top-key-suggests",
    ),
    pytest.param(
        {"phasekit:vps.sizee": "s-1vcpu-2gb"},
        f"phasekit:vps.sizee: unknown key; allowed: {VPS_KEYS} (did you mean 'size'?)",
        id="unknown-nested-key",
    ),
    pytest.param(
        {"phasekit:app.health_path": "/up"},
        f"phasekit:app.health_path: unknown key; allowed: {APP_KEYS} (did you mean 'healthPath'?)",
        id="snake-case-key",
    ),
    pytest.param(
        {"phasekit:edge": DELETE},
        f"phasekit:edge: missing; allowed: a mapping with keys {EDGE_KEYS}",
        id="missing-section",
    ),
    pytest.param(
        {"phasekit:edge": "app.example.com"},
        f"phasekit:edge: 'app.example.com' is not a mapping; allowed: a mapping with keys {EDGE_KEYS}",
        id="section-not-mapping",
    ),
    # phase
    pytest.param({"phasekit:phase": 4}, "phasekit:phase: 4 is not a phase; allowed: 1, 2, 3", id="phase-4"),
    pytest.param({"phasekit:phase": "one"}, "phasekit:phase: 'one' is not a phase; allowed: 1, 2, 3", id="phase-word"),
    pytest.param({"phasekit:phase": True}, "phasekit:phase: true is not a phase; allowed: 1, 2, 3", id="phase-bool"),
    pytest.param({"phasekit:phase": "0"}, "phasekit:phase: '0' is not a phase; allowed: 1, 2, 3", id="phase-0-string"),
    pytest.param({"phasekit:phase": DELETE}, "phasekit:phase: missing; allowed: 1, 2, 3", id="phase-missing"),
    pytest.param(
        {"phasekit:protect": "maybe"},
        "phasekit:protect: 'maybe' is not true or false; allowed: true or false",
        id="protect-not-bool",
    ),
    # app
    pytest.param(
        {"phasekit:app.image": DELETE},
        f"phasekit:app.image: missing; allowed: a container image with {PINNED_IMAGE}",
        id="image-missing",
    ),
    pytest.param(
        {"phasekit:app.image": "ghcr.io/acme/shop"},
        f"phasekit:app.image: 'ghcr.io/acme/shop' has no tag; allowed: {PINNED_IMAGE}",
        id="image-untagged",
    ),
    pytest.param(
        {"phasekit:app.image": "ghcr.io/acme/shop:latest"},
        f"phasekit:app.image: 'ghcr.io/acme/shop:latest' uses the moving tag 'latest'; allowed: {PINNED_IMAGE}",
        id="image-latest",
    ),
    pytest.param(
        {"phasekit:app.image": "ghcr.io/acme/shop@sha256:abc123"},
        "phasekit:app.image: 'ghcr.io/acme/shop@sha256:abc123' has a malformed digest; "
        "allowed: sha256: and 64 lowercase hex characters, e.g. ghcr.io/acme/shop@sha256:<64 hex>",
        id="image-bad-digest",
    ),
    pytest.param(
        {"phasekit:app.image": "localhost:5000/shop"},
        "phasekit:app.image: 'localhost:5000/shop' has no tag; allowed: an explicit tag or digest, "
        "e.g. localhost:5000/shop:1.4.2 or localhost:5000/shop@sha256:<64 hex>",
        id="image-registry-port-is-not-a-tag",
    ),
    pytest.param(
        {"phasekit:app.image": "ghcr.io/Acme/Shop:1.4.2"},
        f"phasekit:app.image: 'ghcr.io/Acme/Shop:1.4.2' is not a container image reference; "
        f"allowed: a container image with {PINNED_IMAGE}",
        id="image-uppercase-repository",
    ),
    pytest.param(
        {"phasekit:app.port": "eighty"},
        "phasekit:app.port: 'eighty' is not an integer; allowed: 1..65535",
        id="port-wrong-type",
    ),
    pytest.param(
        {"phasekit:app.port": True}, "phasekit:app.port: true is not an integer; allowed: 1..65535", id="port-bool"
    ),
    pytest.param({"phasekit:app.port": 0}, "phasekit:app.port: 0 is out of range; allowed: 1..65535", id="port-0"),
    pytest.param(
        {"phasekit:app.port": 70000}, "phasekit:app.port: 70000 is out of range; allowed: 1..65535", id="port-70000"
    ),
    pytest.param(
        {"phasekit:app.healthPath": "healthz"},
        "phasekit:app.healthPath: 'healthz' does not start with '/'; "
        "allowed: an absolute URL path without spaces, e.g. /healthz",
        id="health-path-relative",
    ),
    pytest.param(
        {"phasekit:app.healthPath": "/health check"},
        "phasekit:app.healthPath: '/health check' contains whitespace; "
        "allowed: an absolute URL path without spaces, e.g. /healthz",
        id="health-path-space",
    ),
    pytest.param(
        {"phasekit:app.env": {"DATABASE_URL": "postgres://db/app"}},
        f"phasekit:app.env.DATABASE_URL: 'DATABASE_URL' is set by phasekit; allowed: a name other than {RESERVED}",
        id="env-reserved-name",
    ),
    pytest.param(
        {"phasekit:app.secretEnv": ["REDIS_URL"]},
        f"phasekit:app.secretEnv[0]: 'REDIS_URL' is set by phasekit; allowed: a name other than {RESERVED}",
        id="secret-env-reserved-name",
    ),
    pytest.param(
        {"phasekit:app.env": {"log_level": "info"}},
        f"phasekit:app.env.log_level: 'log_level' is not an environment variable name; "
        f"allowed: {ENV_NAMES} (did you mean 'LOG_LEVEL'?)",
        id="env-lowercase-name",
    ),
    pytest.param(
        {"phasekit:app.env": {"WORKERS": 4}},
        "phasekit:app.env.WORKERS: 4 is not a string; "
        "allowed: a string (quote numbers and booleans in YAML, e.g. '4' or 'true')",
        id="env-value-not-string",
    ),
    pytest.param(
        {"phasekit:app.env": {"LOG_LEVEL": "info"}, "phasekit:app.secretEnv": ["SECRET_KEY_BASE", "LOG_LEVEL"]},
        "phasekit:app.secretEnv: 'LOG_LEVEL' is also set in phasekit:app.env; "
        "allowed: each name in env or secretEnv, not both",
        id="env-secret-env-overlap",
    ),
    pytest.param(
        {"phasekit:app.secretEnv": ["SECRET_KEY_BASE", "SECRET_KEY_BASE"]},
        "phasekit:app.secretEnv[1]: 'SECRET_KEY_BASE' is listed twice; allowed: each name once",
        id="secret-env-duplicate",
    ),
    pytest.param(
        {"phasekit:app.releaseCommand": "python manage.py migrate"},
        "phasekit:app.releaseCommand: 'python manage.py migrate' is not a list; "
        "allowed: an exec-form list of non-empty strings, e.g. [python, manage.py, migrate]",
        id="release-command-shell-string",
    ),
    pytest.param(
        {"phasekit:app.releaseCommand": ["python", ""]},
        "phasekit:app.releaseCommand[1]: '' is empty; allowed: a non-empty string",
        id="release-command-empty-argument",
    ),
    pytest.param(
        {"phasekit:app.workers": 65}, "phasekit:app.workers: 65 is out of range; allowed: 1..64", id="workers-65"
    ),
    pytest.param(
        {"phasekit:app.dbPoolSize": 0},
        "phasekit:app.dbPoolSize: 0 is out of range; allowed: 1..50",
        id="db-pool-size-0",
    ),
    # edge
    pytest.param(
        {"phasekit:edge.zoneId": DELETE},
        f"phasekit:edge.zoneId: missing; allowed: {CLOUDFLARE_IDS}",
        id="zone-id-missing",
    ),
    pytest.param(
        {"phasekit:edge.zoneId": ZONE_ID.upper()},
        f"phasekit:edge.zoneId: '{ZONE_ID.upper()}' is not a Cloudflare id; "
        f"allowed: {CLOUDFLARE_IDS} (did you mean '{ZONE_ID}'?)",
        id="zone-id-uppercase",
    ),
    pytest.param(
        {"phasekit:edge.accountId": "acme"},
        f"phasekit:edge.accountId: 'acme' is not a Cloudflare id; allowed: {CLOUDFLARE_IDS}",
        id="account-id-bad",
    ),
    pytest.param(
        {"phasekit:edge.hostname": "localhost"},
        f"phasekit:edge.hostname: 'localhost' is not a valid hostname: it has a single label; allowed: {HOSTNAMES}",
        id="hostname-single-label",
    ),
    pytest.param(
        {"phasekit:edge.hostname": "shop_1.example.com"},
        "phasekit:edge.hostname: 'shop_1.example.com' is not a valid hostname: "
        f"label 'shop_1' has characters other than a-z, 0-9 and '-'; allowed: {HOSTNAMES}",
        id="hostname-underscore",
    ),
    pytest.param(
        {"phasekit:edge.hostname": "-app.example.com"},
        "phasekit:edge.hostname: '-app.example.com' is not a valid hostname: "
        f"label '-app' starts or ends with '-'; allowed: {HOSTNAMES}",
        id="hostname-leading-hyphen",
    ),
    pytest.param(
        {"phasekit:edge.hostname": "App.Example.com"},
        "phasekit:edge.hostname: 'App.Example.com' is not a valid hostname: it has upper-case letters; "
        f"allowed: {HOSTNAMES} (did you mean 'app.example.com'?)",
        id="hostname-uppercase",
    ),
    pytest.param(
        {"phasekit:edge.hostname": "203.0.113.7"},
        f"phasekit:edge.hostname: '203.0.113.7' is not a valid hostname: it is an IP address; allowed: {HOSTNAMES}",
        id="hostname-ip-address",
    ),
    # vps
    pytest.param(
        {"phasekit:vps.region": DELETE},
        f"phasekit:vps.region: missing; allowed: one of {REGIONS}",
        id="region-missing",
    ),
    pytest.param(
        {"phasekit:vps.region": "nyc4"},
        f"phasekit:vps.region: 'nyc4' is not a DigitalOcean region; allowed: one of {REGIONS} (did you mean 'nyc3'?)",
        id="region-bad",
    ),
    pytest.param(
        {"phasekit:vps.region": "AMS3"},
        f"phasekit:vps.region: 'AMS3' is not a DigitalOcean region; allowed: one of {REGIONS} (did you mean 'ams3'?)",
        id="region-uppercase",
    ),
    pytest.param(
        # difflib ties s-2vcpu-2gb and s-2vcpu-4gb (one character each) and picks the greater string.
        {"phasekit:vps.size": "s-2vcpu-3gb"},
        f"phasekit:vps.size: 's-2vcpu-3gb' is not a DigitalOcean droplet size; allowed: {SIZES} "
        "(did you mean 's-2vcpu-4gb'?)",
        id="size-unknown-suggests",
    ),
    pytest.param(
        {"phasekit:vps.size": "huge"},
        f"phasekit:vps.size: 'huge' is not a DigitalOcean droplet size; allowed: {SIZES}",
        id="size-unknown",
    ),
    pytest.param(
        {"phasekit:vps.size": "s-1vcpu-512mb-10gb"},
        "phasekit:vps.size: 's-1vcpu-512mb-10gb' has 512 MiB of memory; "
        "allowed: a size with at least 1 GiB, e.g. s-1vcpu-2gb",
        id="size-under-1gib",
    ),
    pytest.param(
        {"phasekit:vps.size": "1gb"},
        f"phasekit:vps.size: '1gb' is a legacy size whose vCPU count phasekit cannot derive; allowed: {SIZES}",
        id="size-legacy",
    ),
    pytest.param(
        {"phasekit:vps.size": "gpu-h100x1-80gb"},
        f"phasekit:vps.size: 'gpu-h100x1-80gb' is a GPU size, which phasekit does not run; allowed: {SIZES}",
        id="size-gpu",
    ),
    pytest.param(
        {"phasekit:vps.volumeSizeGib": 0},
        "phasekit:vps.volumeSizeGib: 0 is out of range; allowed: 1..16384",
        id="volume-zero",
    ),
    pytest.param(
        {"phasekit:vps.volumeSizeGib": -20},
        "phasekit:vps.volumeSizeGib: -20 is out of range; allowed: 1..16384",
        id="volume-negative",
    ),
    pytest.param(
        {"phasekit:vps.backupPlan": "monthly"},
        "phasekit:vps.backupPlan: 'monthly' is not a backup plan; allowed: daily or weekly",
        id="backup-plan-monthly",
    ),
    pytest.param(
        {"phasekit:vps.backups": False, "phasekit:vps.backupPlan": "daily"},
        "phasekit:vps.backupPlan: 'daily' has no effect while backups is false; "
        "allowed: remove backupPlan, or set backups: true",
        id="backup-plan-without-backups",
    ),
    pytest.param(
        {"phasekit:vps.sshAdminCidrs": ["203.0.113.300/24"]},
        "phasekit:vps.sshAdminCidrs[0]: '203.0.113.300/24' is not an IP network; "
        "allowed: an IPv4 or IPv6 network in CIDR form, e.g. 203.0.113.0/24",
        id="cidr-bad",
    ),
    pytest.param(
        {"phasekit:vps.sshAdminCidrs": ["203.0.113.0/24", "198.51.100.7/24"]},
        "phasekit:vps.sshAdminCidrs[1]: '198.51.100.7/24' has host bits set; "
        "allowed: the network '198.51.100.0/24', or '198.51.100.7/32' for that one host",
        id="cidr-host-bits",
    ),
    pytest.param(
        {"phasekit:vps.sshAdminCidrs": ["2001:db8::1/32"]},
        "phasekit:vps.sshAdminCidrs[0]: '2001:db8::1/32' has host bits set; "
        "allowed: the network '2001:db8::/32', or '2001:db8::1/128' for that one host",
        id="cidr-host-bits-v6",
    ),
    pytest.param(
        {"phasekit:vps.sshAdminCidrs": ["0.0.0.0/0"]},
        "phasekit:vps.sshAdminCidrs[0]: '0.0.0.0/0' opens SSH to the whole internet; "
        "allowed: the networks you administer from, e.g. 203.0.113.0/24",
        id="ssh-open-v4",
    ),
    pytest.param(
        {"phasekit:vps.sshAdminCidrs": ["203.0.113.0/24", "::/0"]},
        "phasekit:vps.sshAdminCidrs[1]: '::/0' opens SSH to the whole internet; "
        "allowed: the networks you administer from, e.g. 203.0.113.0/24",
        id="ssh-open-v6",
    ),
    pytest.param(
        {"phasekit:vps.sshAdminCidrs": "203.0.113.0/24"},
        "phasekit:vps.sshAdminCidrs: '203.0.113.0/24' is not a list; "
        "allowed: one or more networks you administer from, e.g. [203.0.113.0/24]",
        id="cidrs-not-list",
    ),
    pytest.param(
        {"phasekit:vps.sshKeyFingerprints": ["3b:16:bf:e4"]},
        f"phasekit:vps.sshKeyFingerprints[0]: '3b:16:bf:e4' is not an MD5 SSH key fingerprint; allowed: {FINGERPRINTS}",
        id="fingerprint-bad",
    ),
    pytest.param(
        {"phasekit:vps.sshKeyFingerprints": [f"MD5:{FINGERPRINT.upper()}"]},
        f"phasekit:vps.sshKeyFingerprints[0]: 'MD5:{FINGERPRINT.upper()}' is not written as DigitalOcean lists "
        f"fingerprints; allowed: {FINGERPRINTS} (did you mean '{FINGERPRINT}'?)",
        id="fingerprint-ssh-keygen-form",
    ),
    pytest.param(
        {"phasekit:vps.alertEmails": ["ops@example"]},
        "phasekit:vps.alertEmails[0]: 'ops@example' is not an e-mail address; allowed: an address like ops@example.com",
        id="email-bad",
    ),
    pytest.param(
        {"phasekit:vps.alertEmails": []},
        "phasekit:vps.alertEmails: [] is empty; allowed: one or more e-mail addresses, e.g. [ops@example.com]",
        id="emails-empty",
    ),
    # tags
    pytest.param(
        {"phasekit:tags": {"Team": "web"}},
        "phasekit:tags.Team: 'Team' is not a tag key; allowed: 1 to 63 lowercase letters, digits, '-' or '_'",
        id="tag-key-uppercase",
    ),
    pytest.param(
        {"phasekit:tags": {"cost.center": "web"}},
        "phasekit:tags[\"cost.center\"]: 'cost.center' is not a tag key; "
        "allowed: 1 to 63 lowercase letters, digits, '-' or '_'",
        id="tag-key-dot-quoted-in-path",
    ),
    pytest.param(
        {"phasekit:tags": {"team": "Web Team"}},
        "phasekit:tags.team: 'Web Team' is not a tag value; allowed: 1 to 63 lowercase letters, digits, '-' or '_'",
        id="tag-value-bad",
    ),
    # secrets
    pytest.param(
        {"phasekit:secrets.SECRET_KEY_BASE": "hunter2"},
        f"phasekit:secrets.SECRET_KEY_BASE: {SET_SECRET} --path 'secrets.SECRET_KEY_BASE'",
        id="plain-text-secret",
    ),
    pytest.param(
        {"digitalocean:token": "dop_v1_hunter2"},
        f"digitalocean:token: {SET_SECRET} digitalocean:token",
        id="plain-text-provider-token",
    ),
    pytest.param(
        {"phasekit:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY----- hunter2"},
        f"phasekit:sshPrivateKey: {SET_SECRET} sshPrivateKey",
        id="plain-text-ssh-private-key",
    ),
    pytest.param(
        {"phasekit:app.env": {"STRIPE_API_TOKEN": {"secure": "AAABAToken"}}},
        "phasekit:app.env.STRIPE_API_TOKEN: an encrypted value cannot be used here; allowed: a string (quote numbers "
        "and booleans in YAML, e.g. '4' or 'true') (app secrets go under phasekit:secrets, named in app.secretEnv)",
        id="encrypted-value-in-env",
    ),
    pytest.param(
        {"phasekit:app.env": {"STRIPE_API_TOKEN": "hunter2"}},
        f"phasekit:app.env.STRIPE_API_TOKEN: {SET_SECRET} --path 'secrets.STRIPE_API_TOKEN', "
        "and list STRIPE_API_TOKEN in app.secretEnv instead of app.env",
        id="plain-text-secret-in-env",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_CONFIGS)
def test_bad_config_is_refused_with_one_exact_line(changes: Mapping[str, object], expected: str) -> None:
    assert error_message(edited(changes)) == expected


@pytest.mark.parametrize(
    "changes",
    [param.values[0] for param in BAD_CONFIGS if param.id is not None and param.id.startswith("plain-text")],
)
def test_plain_text_secret_value_never_appears_in_the_message(changes: Mapping[str, object]) -> None:
    assert "hunter2" not in error_message(edited(changes))


def test_several_problems_are_listed_one_per_line() -> None:
    raw = edited(
        {
            "phasekit:colour": "blue",
            "phasekit:app.port": 0,
            "phasekit:vps.region": DELETE,
            "phasekit:vps.sshAdminCidrs": ["0.0.0.0/0", "::/0"],
            "phasekit:secrets.SECRET_KEY_BASE": "hunter2",
        }
    )
    assert error_message(raw) == (
        "invalid stack config (6 problems):\n"
        f"  phasekit:secrets.SECRET_KEY_BASE: {SET_SECRET} --path 'secrets.SECRET_KEY_BASE'\n"
        "  phasekit:app.port: 0 is out of range; allowed: 1..65535\n"
        f"  phasekit:vps.region: missing; allowed: one of {REGIONS}\n"
        "  phasekit:vps.sshAdminCidrs[0]: '0.0.0.0/0' opens SSH to the whole internet; "
        "allowed: the networks you administer from, e.g. 203.0.113.0/24\n"
        "  phasekit:vps.sshAdminCidrs[1]: '::/0' opens SSH to the whole internet; "
        "allowed: the networks you administer from, e.g. 203.0.113.0/24\n"
        f"  phasekit:colour: unknown key; allowed: {TOP_KEYS}"
    )


def test_config_error_keeps_its_problems() -> None:
    error = ConfigError("phasekit:a: first", "phasekit:b: second")
    assert error.problems == ("phasekit:a: first", "phasekit:b: second")
    assert str(error) == "invalid stack config (2 problems):\n  phasekit:a: first\n  phasekit:b: second"
    assert str(ConfigError("phasekit:a: only")) == "phasekit:a: only"


def test_base_config_loads_with_every_default() -> None:
    config = load_config(BASE)
    assert config.model_dump() == {
        "phase": 1,
        "protect": True,
        "tags": {},
        "backups": {
            "retention_full": 4,
            "retention_diff": 7,
            "recovery_point_minutes": 5,
            "full_schedule": "Sun *-*-* 03:30:00",
            "diff_schedule": "Mon..Sat *-*-* 03:30:00",
            "redis_schedule": "*-*-* 04:00:00",
            "redis_keep_days": 30,
            "logical_schedule": "30 3 * * *",
            "logical_keep": 35,
        },
        "app": {
            "image": "ghcr.io/acme/shop:1.4.2",
            "port": 8000,
            "health_path": "/healthz",
            "env": {},
            "secret_env": ("SECRET_KEY_BASE",),
            "release_command": None,
            "workers": None,
            "db_pool_size": 5,
            "registry": None,
            "processes": {},
            "schedules": {},
        },
        "edge": {"zone_id": ZONE_ID, "account_id": ACCOUNT_ID, "hostname": "app.example.com", "proxied": True,
                 "manage_zone_settings": True},
        "vps": {
            "region": "nyc3",
            "size": "s-1vcpu-2gb",
            "volume_size_gib": 10,
            "backups": True,
            "backup_plan": "weekly",
            "ssh_admin_cidrs": ("203.0.113.0/24",),
            "ssh_key_fingerprints": (FINGERPRINT,),
            "alert_emails": ("ops@example.com",),
            "alert_slack": (),
        },
        "services": {"caddy": "caddy:2.11.4", "postgres": "postgres:16.15-bookworm",
                     "redis": "redis:7.4.11-bookworm"},
    }
    assert (config.vps.vcpus, config.vps.memory_mib, config.worker_count) == (1, 2048, 1)


def test_every_key_set_and_string_scalars_as_pulumi_config_set_writes_them() -> None:
    digest = "ghcr.io/acme/shop@sha256:" + "ab" * 32
    raw = edited(
        {
            "phasekit:phase": "1",
            "phasekit:protect": "false",
            "phasekit:tags": {"team": "web", "cost_center": "shop-1"},
            "phasekit:app": {
                "image": digest,
                "port": "8080",
                "healthPath": "/up",
                "env": {"LOG_LEVEL": "info"},
                "secretEnv": ["SECRET_KEY_BASE", "STRIPE_KEY"],
                "releaseCommand": ["python", "manage.py", "migrate"],
                "workers": 3,
                "dbPoolSize": 10,
            },
            "phasekit:edge.proxied": False,
            "phasekit:edge.manageZoneSettings": False,
            "phasekit:vps": {
                "region": "fra1",
                "size": "c-2",
                "volumeSizeGib": 50,
                "backups": "true",
                "backupPlan": "daily",
                "sshAdminCidrs": ["203.0.113.0/24", "2001:DB8::/32"],
                "sshKeyFingerprints": [FINGERPRINT],
                "alertEmails": ["ops@example.com", "on-call+web@example.org"],
            },
        }
    )
    config = load_config(raw)
    assert config.phase == 1
    assert config.protect is False
    assert config.tags == {"team": "web", "cost_center": "shop-1"}
    assert config.app == App(
        image=digest,
        port=8080,
        health_path="/up",
        env={"LOG_LEVEL": "info"},
        secret_env=("SECRET_KEY_BASE", "STRIPE_KEY"),
        release_command=("python", "manage.py", "migrate"),
        workers=3,
        db_pool_size=10,
    )
    assert config.edge.proxied is False
    assert config.edge.manage_zone_settings is False
    assert config.vps.region == "fra1"
    assert config.vps.size == DropletSlug.DROPLET_C2
    assert config.vps.backup_plan == "daily"
    assert config.vps.ssh_admin_cidrs == ("203.0.113.0/24", "2001:db8::/32")  # canonical form
    assert config.vps.alert_emails == ("ops@example.com", "on-call+web@example.org")
    assert (config.vps.vcpus, config.vps.memory_mib, config.worker_count) == (2, 4096, 3)


@pytest.mark.parametrize(
    ("size", "vcpus", "memory_mib", "default_workers"),
    [
        ("s-1vcpu-1gb", 1, 1024, 1),
        ("s-1vcpu-2gb", 1, 2048, 1),
        ("s-2vcpu-4gb", 2, 4096, 2),
        ("s-1vcpu-1gb-35gb-intel", 1, 1024, 1),
        ("s-4vcpu-16gb-amd", 4, 16384, 4),
        ("c-2", 2, 4096, 2),
        ("c-8-intel", 8, 16384, 8),
        ("c-60-intel", 60, 122880, 60),
        ("c2-4vcpu-8gb", 4, 8192, 4),
        ("so1_5-2vcpu-16gb", 2, 16384, 2),
        ("gd-40vcpu-160gb", 40, 163840, 40),
    ],
)
def test_size_derives_vcpus_memory_and_default_workers(
    size: str, vcpus: int, memory_mib: int, default_workers: int
) -> None:
    config = load_config(edited({"phasekit:vps.size": size}))
    assert (config.vps.vcpus, config.vps.memory_mib, config.worker_count) == (vcpus, memory_mib, default_workers)


def test_explicit_workers_win_over_vcpus() -> None:
    config = load_config(edited({"phasekit:vps.size": "s-4vcpu-8gb", "phasekit:app.workers": 2}))
    assert config.worker_count == 2
    assert config.app.worker_count(vcpus=16) == 2


@pytest.mark.parametrize(
    ("slug", "resources"),
    [
        ("s-1vcpu-512mb-10gb", DropletResources(1, 512)),
        ("m-2vcpu-16gb", DropletResources(2, 16384)),
        ("c-48", DropletResources(48, 98304)),
        ("c-60", None),  # only the Intel variant of the 60-vCPU size exists
        ("1gb", None),
        ("512mb", None),
        ("gpu-h100x1-80gb", None),
    ],
)
def test_droplet_resources(slug: str, resources: DropletResources | None) -> None:
    assert droplet_resources(slug) == resources


def test_sdk_slugs_phasekit_cannot_size_are_only_legacy_and_gpu() -> None:
    # Fails when a pulumi-digitalocean upgrade adds a slug format droplet_resources does not read yet.
    unreadable = sorted(slug.value for slug in DropletSlug if droplet_resources(slug.value) is None)
    assert unreadable == [
        "16gb",
        "1gb",
        "2gb",
        "32gb",
        "48gb",
        "4gb",
        "512mb",
        "64gb",
        "8gb",
        "gpu-h100x1-80gb",
        "gpu-h100x1-80gb-200",
        "gpu-h100x8-640gb",
        "gpu-h100x8-640gb-200",
    ]


def test_models_are_frozen() -> None:
    config = load_config(BASE)
    with pytest.raises(ValidationError):
        config.vps.size = DropletSlug.DROPLET_S2_VCPU4_GB  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.app.port = 9000  # type: ignore[misc]
    assert isinstance(config.vps.ssh_admin_cidrs, tuple)


def test_accepted_keys_and_phases() -> None:
    assert Phase1Stack.accepted_keys() == {
        "phase",
        "protect",
        "tags",
        "backups",
        "app",
        "edge",
        "vps",
        "services",
        "secrets",
        "sshPrivateKey",
    }
    assert IMPLEMENTED_PHASES == (1, 2, 3)


def test_other_namespaces_are_ignored() -> None:
    raw = edited({"kubernetes:context": "dev", "aws:region": "eu-west-1", "pulumi:template": "phasekit"})
    assert load_config(raw) == load_config(BASE)


def test_secrets_check_accepts_encrypted_values_and_secret_names() -> None:
    check_secrets_encrypted(edited({"phasekit:sshPrivateKey": {"secure": "AAABAKey"}}))


def test_secrets_must_be_a_mapping_of_names() -> None:
    with pytest.raises(ConfigError) as caught:
        check_secrets_encrypted(edited({"phasekit:secrets": "hunter2"}))
    assert str(caught.value) == (
        "phasekit:secrets: not a mapping; allowed: a mapping of NAME to a secret set with: "
        "pulumi config set --secret --path 'secrets.<NAME>'"
    )


def test_secret_looking_keys_are_checked_anywhere_in_the_tree() -> None:
    raw = edited({"phasekit:edge.origin": {"tls": [{"privateKey": "hunter2"}]}, "aws:secretKey": "hunter2"})
    with pytest.raises(ConfigError) as caught:
        check_secrets_encrypted(raw)
    assert str(caught.value) == (
        "invalid stack config (2 problems):\n"
        f"  phasekit:edge.origin.tls[0].privateKey: {SET_SECRET} --path 'edge.origin.tls[0].privateKey'\n"
        f"  aws:secretKey: {SET_SECRET} aws:secretKey"
    )


def test_secret_env_names_missing() -> None:
    raw = edited({"phasekit:app.secretEnv": ["SECRET_KEY_BASE", "STRIPE_KEY", "SENTRY_DSN"]})
    assert secret_env_names_missing(raw, load_config(raw)) == ["STRIPE_KEY", "SENTRY_DSN", "BACKUP_PASSPHRASE"]
    assert secret_env_names_missing(edited({"phasekit:secrets": DELETE}), load_config(BASE)) == [
        "SECRET_KEY_BASE", "BACKUP_PASSPHRASE"]
    whole_mapping_encrypted = edited({"phasekit:secrets": {"secure": "AAABAAll"}})
    assert secret_env_names_missing(whole_mapping_encrypted, load_config(whole_mapping_encrypted)) == []


def test_registry_password_is_a_required_secret() -> None:
    raw = edited({"phasekit:app.registry": {"server": "ghcr.io", "username": "acme"},
                  "phasekit:app.image": "ghcr.io/acme/shop:1.4.2"})
    config = load_config(raw)
    assert (config.app.registry.server, config.app.registry.username) == ("ghcr.io", "acme")
    assert required_secret_names(config) == ["SECRET_KEY_BASE", "REGISTRY_PASSWORD", "BACKUP_PASSPHRASE"]
    assert secret_env_names_missing(raw, config) == ["REGISTRY_PASSWORD", "BACKUP_PASSPHRASE"]


def test_read_stack_file(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(
        "config:\n"
        "  phasekit:phase: 1\n"
        "  phasekit:secrets:\n"
        "    SECRET_KEY_BASE:\n"
        "      secure: AAABAD\n"
    )
    assert read_stack_file(stack_file) == {
        "phasekit:phase": 1,
        "phasekit:secrets": {"SECRET_KEY_BASE": {"secure": "AAABAD"}},
    }


@pytest.mark.parametrize("text", ["", "encryptionsalt: v1:abc\n", "config:\n"])
def test_read_stack_file_without_config(tmp_path: Path, text: str) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(text)
    assert read_stack_file(stack_file) == {}


def test_read_stack_file_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  phasekit:phase: 1\n  phasekit:app: {image: [\n")
    with pytest.raises(ConfigError) as caught:
        read_stack_file(stack_file)
    assert str(caught.value) == f"{stack_file}:4:1: not valid YAML: expected the node content, but found '<stream end>'"


@pytest.mark.parametrize(
    "stack_file", sorted(REPO_ROOT.glob("Pulumi.*.yaml")), ids=lambda path: path.name
)
def test_committed_stack_files_load(stack_file: Path) -> None:
    raw = read_stack_file(stack_file)
    config = load_config(raw)
    assert config.phase in IMPLEMENTED_PHASES


# --- keys as the Pulumi CLI reads them (issue 10) ---------------------------------------------------------------


def test_keys_without_a_namespace_belong_to_the_project() -> None:
    bare = {key.removeprefix("phasekit:"): value for key, value in BASE.items()}
    assert "app" in bare and "phasekit:app" not in bare
    assert load_config(bare) == load_config(BASE)
    assert load_config(edited({"tags": {"team": "web"}})).tags == {"team": "web"}


def test_the_old_config_spelling_of_a_key_is_the_same_key() -> None:
    assert load_config(edited({"phasekit:config:protect": False})).protect is False


def test_a_bare_key_and_its_namespaced_twin_are_a_duplicate() -> None:
    assert error_message(edited({"tags": {"team": "web"}, "phasekit:tags": {"team": "shop"}})) == (
        "phasekit:tags: duplicate key: it is phasekit:tags, which is already set; allowed: each key once")


NAMESPACE_SLIPS = [
    pytest.param("phasekit:phasekit.vps", "phasekit.vps: unknown key; allowed: phasekit:<name>, with ':' after the "
                 "namespace (did you mean 'phasekit:vps'?)", id="dot-for-colon-as-the-engine-hands-it"),
    pytest.param("phasekit.vps", "phasekit.vps: unknown key; allowed: phasekit:<name>, with ':' after the namespace "
                 "(did you mean 'phasekit:vps'?)", id="dot-for-colon-bare"),
    pytest.param("phaskit:vps", "phaskit:vps: unknown namespace 'phaskit'; allowed: phasekit for phasekit's keys "
                 "(did you mean 'phasekit:vps'?)", id="letter-missing"),
    pytest.param("Phasekit:vps", "Phasekit:vps: unknown namespace 'Phasekit'; allowed: phasekit for phasekit's "
                 "keys (did you mean 'phasekit:vps'?)", id="capital"),
    pytest.param("PHASEKIT:vps", "PHASEKIT:vps: unknown namespace 'PHASEKIT'; allowed: phasekit for phasekit's "
                 "keys (did you mean 'phasekit:vps'?)", id="upper-case"),
]


@pytest.mark.parametrize(("key", "expected"), NAMESPACE_SLIPS)
def test_a_misspelt_namespace_is_named_as_written_and_not_reported_missing_again(key: str, expected: str) -> None:
    raw = edited({"phasekit:vps": DELETE})
    raw[key] = BASE["phasekit:vps"]
    assert error_message(raw) == expected


@pytest.mark.parametrize("namespace", ["digitalocean", "cloudflare", "aws", "kubernetes", "pulumi", "random", "tls",
                                       "command", "phasekit-extras"])
def test_foreign_namespaces_stay_accepted(namespace: str) -> None:
    assert load_config(edited({f"{namespace}:anything": "x"})) == load_config(BASE)


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param({"phasekit:secrets": {"SECRET_KEY_BASE": ""}},
                 "phasekit:secrets.SECRET_KEY_BASE: empty; allowed: a secret value set with: pulumi config set "
                 "--secret --path 'secrets.SECRET_KEY_BASE'", id="empty-string"),
    pytest.param({"phasekit:secrets": {"SECRET_KEY_BASE": None}},
                 "phasekit:secrets.SECRET_KEY_BASE: empty; allowed: a secret value set with: pulumi config set "
                 "--secret --path 'secrets.SECRET_KEY_BASE'", id="null"),
    pytest.param({"phasekit:secrets": None},
                 "phasekit:secrets: empty; allowed: a mapping of NAME to a secret set with: pulumi config set "
                 "--secret --path 'secrets.<NAME>'", id="whole-mapping-null"),
    pytest.param({"phasekit:sshPrivateKey": " "},
                 "phasekit:sshPrivateKey: empty; allowed: a private key set with: pulumi config set --secret "
                 "sshPrivateKey, or no sshPrivateKey (the rollout then uses the SSH agent)", id="ssh-key"),
    pytest.param({"digitalocean:token": ""},
                 "digitalocean:token: empty; allowed: a value set with: pulumi config set --secret "
                 "digitalocean:token", id="provider-token"),
])
def test_an_empty_secret_is_called_empty_and_named(changes: Mapping[str, object], expected: str) -> None:
    assert error_message(edited(changes)) == expected


@pytest.mark.parametrize("name", [
    "DB_PASSWORD", "SMTP_PASSWD", "STRIPE_API_TOKEN", "GITHUB_TOKEN", "CLIENT_SECRET", "SECRET", "RAILS_SECRET_KEY_BASE",
    "DJANGO_SECRET_KEY", "SSH_PRIVATE_KEY", "DBPASSWORD",
])
def test_a_name_that_ends_in_a_secret_word_is_refused_in_plain_text(name: str) -> None:
    assert error_message(edited({"phasekit:app.env": {name: "hunter2"}})) == (
        f"phasekit:app.env.{name}: {SET_SECRET} --path 'secrets.{name}', and list {name} in app.secretEnv "
        "instead of app.env")


@pytest.mark.parametrize("name", [
    "OPENAI_MAX_TOKENS", "PASSWORD_MIN_LENGTH", "AUTH_TOKEN_TTL", "SECRET_ROTATION_DAYS", "SECRET_KEY_BASE_PATH",
    "TOKENIZER", "PASSWORD_RESET_URL",
])
def test_a_setting_named_after_a_secret_is_neither_refused_nor_warned_about(name: str) -> None:
    raw = edited({"phasekit:app.env": {name: "30"}})
    assert config_warnings(raw, load_config(raw)) == []


@pytest.mark.parametrize(("tag", "path"), [("db-password", "tags.db-password"), ("apiToken", "tags.apiToken")])
def test_a_phasekit_key_ending_in_a_secret_word_is_refused_however_its_words_are_joined(tag: str, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_secrets_encrypted(edited({"phasekit:tags": {tag: "hunter2"}}))
    assert str(caught.value) == f"phasekit:{path}: {SET_SECRET} --path '{path}'"


def test_a_tag_named_after_a_secret_word_is_not_refused() -> None:
    assert load_config(edited({"phasekit:tags": {"secret-tier": "gold"}})).tags["secret-tier"] == "gold"


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param({"phasekit:sshPrivateKey": {"secure": ""}},
                 "phasekit:sshPrivateKey: empty; allowed: a private key set with: pulumi config set --secret "
                 "sshPrivateKey, or no sshPrivateKey (the rollout then uses the SSH agent)", id="ssh-key"),
    pytest.param({"phasekit:secrets": {"SECRET_KEY_BASE": {"secure": " "}}},
                 "phasekit:secrets.SECRET_KEY_BASE: empty; allowed: a secret value set with: pulumi config set "
                 "--secret --path 'secrets.SECRET_KEY_BASE'", id="entry"),
    pytest.param({"phasekit:secrets": {"secure": ""}},
                 "phasekit:secrets: empty; allowed: a mapping of NAME to a secret set with: pulumi config set "
                 "--secret --path 'secrets.<NAME>'", id="whole-mapping"),
    pytest.param({"aws:secretKey": {"secure": None}},
                 "aws:secretKey: empty; allowed: a value set with: pulumi config set --secret aws:secretKey",
                 id="provider-key"),
])
def test_an_empty_ciphertext_is_called_empty_and_not_counted_as_set(changes: Mapping[str, object],
                                                                     expected: str) -> None:
    assert error_message(edited(changes)) == expected


def test_sensible_values_are_read_as_meant() -> None:
    config = load_config(edited({
        "phasekit:tags": {"cost-center": 1234},
        "phasekit:app.env": {"http_proxy": "http://proxy:3128", "https_proxy": "http://proxy:3128",
                             "no_proxy": "localhost", "HTTP_PROXY": "http://proxy:3128"},
    }))
    assert config.tags == {"cost-center": "1234"}
    assert sorted(config.app.env) == ["HTTP_PROXY", "http_proxy", "https_proxy", "no_proxy"]


# --- secret-looking plain env: warnings -----------------------------------------------------------------------

WARNING_VALUE = "sk_live_51HxYzNeverPrinted"


def warning_for(name: str, why: str = "looks like a secret") -> list[str]:
    return [f"phasekit:app.env.{name}: {why} but is plain text in the stack file; move it to secretEnv: "
            f"pulumi config set --secret --path 'secrets.{name}', and list {name} in app.secretEnv"]


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("STRIPE_API_KEY", WARNING_VALUE, warning_for("STRIPE_API_KEY")),
    ("API_KEY", WARNING_VALUE, warning_for("API_KEY")),
    ("MAPS_APIKEY", WARNING_VALUE, warning_for("MAPS_APIKEY")),
    ("AWS_ACCESS_KEY", WARNING_VALUE, warning_for("AWS_ACCESS_KEY")),
    ("SENTRY_DSN", WARNING_VALUE, warning_for("SENTRY_DSN")),
    ("GCP_CREDENTIALS", WARNING_VALUE, warning_for("GCP_CREDENTIALS")),
    ("DB_PASSWORD_OLD", WARNING_VALUE, warning_for("DB_PASSWORD_OLD")),
    ("SECRET_VALUE", WARNING_VALUE, warning_for("SECRET_VALUE")),
    ("GITHUB_TOKEN_PROD", WARNING_VALUE, warning_for("GITHUB_TOKEN_PROD")),
    ("APP_SECRETS", WARNING_VALUE, warning_for("APP_SECRETS")),
    ("ADMIN_PASSWORDS", WARNING_VALUE, warning_for("ADMIN_PASSWORDS")),
    ("CLIENT_SECRETS_JSON", WARNING_VALUE, warning_for("CLIENT_SECRETS_JSON")),
    ("SSH_PRIVATE_KEY_B64", WARNING_VALUE, warning_for("SSH_PRIVATE_KEY_B64")),
    ("DB_PWD", WARNING_VALUE, warning_for("DB_PWD")),
    ("BASIC_AUTH", WARNING_VALUE, warning_for("BASIC_AUTH")),
    ("PROXY_AUTH_HEADER", WARNING_VALUE, warning_for("PROXY_AUTH_HEADER")),
    ("JWT_SIGNING_KEY", WARNING_VALUE, warning_for("JWT_SIGNING_KEY")),
    ("GPG_PASSPHRASE", WARNING_VALUE, warning_for("GPG_PASSPHRASE")),
    ("REPLICA_URL", "postgres://app:hunter2@db.internal/app", warning_for("REPLICA_URL", "holds a URL with a password")),
    ("http_proxy", "http://user:hunter2@proxy:3128", warning_for("http_proxy", "holds a URL with a password")),
    # Not secrets: configuration around credentials, public keys, ids and plain URLs.
    ("LOG_LEVEL", "info", []),
    ("AUTH_URL", "https://login.example.com", []),
    ("AUTH", "on", []),
    ("OAUTH_ISSUER", "https://login.example.com", []),
    ("PWD", "/srv/app", []),
    ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", []),
    ("STRIPE_PUBLISHABLE_KEY", "pk_live_x", []),
    ("CACHE_KEY_PREFIX", "shop", []),
    ("http_proxy", "http://proxy:3128", []),
])
def test_secret_looking_plain_env_warns_without_the_value(name: str, value: str, expected: list[str]) -> None:
    raw = edited({"phasekit:app.env": {name: value}})
    warnings = config_warnings(raw, load_config(raw))
    assert warnings == expected
    assert not any(value in warning for warning in warnings)


def test_the_committed_stacks_have_no_warnings() -> None:
    for stack_file in sorted(REPO_ROOT.glob("Pulumi.phase*.yaml")):
        raw = read_stack_file(stack_file)
        assert config_warnings(raw, load_config(raw)) == [], stack_file.name


# --- stack files read as the Pulumi CLI reads them -----------------------------------------------------------


def test_read_stack_file_qualifies_bare_keys_and_strips_a_byte_order_mark(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_bytes("\ufeffconfig:\r\n  phase: 1\r\n  digitalocean:token: x\r\n  tls:config:a: b\r\n"
                           .encode())
    assert read_stack_file(stack_file) == {"phasekit:phase": 1, "digitalocean:token": "x", "tls:a": "b"}


def test_read_stack_file_refuses_duplicate_keys_at_any_depth(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  phasekit:app:\n    env:\n      A: x\n      B: y\n      A: z\n")
    with pytest.raises(ConfigError) as caught:
        read_stack_file(stack_file)
    assert str(caught.value) == f"{stack_file}:6:7: not valid YAML: duplicate key 'A' (first on line 4)"


@pytest.mark.parametrize(("scalar", "expected"), [
    # YAML 1.1 (PyYAML) reads these as booleans; yaml.v3 (YAML 1.2 core schema) reads them as strings.
    ("on", "on"), ("off", "off"), ("yes", "yes"), ("no", "no"), ("y", "y"), ("n", "n"), ("Yes", "Yes"),
    ("OFF", "OFF"),
    ("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False), ("FALSE", False),
    # Base 60 was dropped in YAML 1.2 and yaml.v3 keeps it a string; 0o octal is YAML 1.2's, 0x/0b/0 as in Go.
    ("1:30", "1:30"), ("1:30.5", "1:30.5"), ("0o17", 15), ("0x1F", 31), ("0b101", 5), ("017", 15), ("-0o17", -15),
    ("1_000", 1000), ("42", 42), ("-7", -7), ("0", 0),
    # yaml.v3's float rule: an exponent alone makes a float, its sign optional.
    ("1e3", 1000.0), ("2.5", 2.5), (".5", 0.5), ("-1.5E-2", -0.015),
    # Everything else as before.
    ("~", None), ("null", None), ("nyc3", "nyc3"), ("v1.2", "v1.2"), ("'on'", "on"),
])
def test_scalars_resolve_as_the_pulumi_cli_reads_them(tmp_path: Path, scalar: str, expected: object) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(f"config:\n  phasekit:tags:\n    value: {scalar}\n")
    value = read_stack_file(stack_file)["phasekit:tags"]["value"]
    assert (value, type(value)) == (expected, type(expected))


def test_a_large_document_without_aliases_is_not_refused(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  phasekit:tags:\n" + "".join(f"    t{index}: v\n" for index in range(2000)))
    assert len(read_stack_file(stack_file)["phasekit:tags"]) == 2000


def test_aliases_that_stay_small_are_accepted(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  a:b: &l [x, x, x]\n  phasekit:tags: {k: &m [*l, *l, *l]}\n  c:d: [*m, *m]\n")
    assert read_stack_file(stack_file)["c:d"] == [[["x"] * 3] * 3] * 2


def test_merged_keys_may_be_overridden_without_being_duplicates(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  phasekit:tags:\n    <<: {team: shop, tier: web}\n    team: web\n")
    assert read_stack_file(stack_file) == {"phasekit:tags": {"team": "web", "tier": "web"}}


@pytest.mark.parametrize(("text", "expected"), [
    ('{"SECRET_KEY_BASE": "x"}', {"SECRET_KEY_BASE": "x"}),
    (None, {}),
])
def test_decode_stored_secrets(text: str | None, expected: dict[str, str]) -> None:
    assert decode_stored_secrets(text) == expected


@pytest.mark.parametrize("text", ["hunter2", '["SECRET_KEY_BASE"]', '"x"'])
def test_decode_stored_secrets_refuses_anything_but_a_mapping_without_showing_it(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        decode_stored_secrets(text)
    assert str(caught.value) == ("phasekit:secrets: not a mapping; allowed: a mapping of NAME to a secret set with: "
                                 "pulumi config set --secret --path 'secrets.<NAME>'")


@pytest.mark.parametrize(("value", "expected"), [(2, "2"), (2.0, "2"), (0.5, "500m"), (1.25, "1250m"), ("250m", "250m")])
def test_a_number_of_cores_is_the_same_cpu_quantity(value: object, expected: str) -> None:
    assert TypeAdapter(CpuQuantity).validate_python(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(16, "16"), ("16", "16"), (14, "14")])
def test_a_postgres_major_version_may_be_a_number(value: object, expected: str) -> None:
    assert TypeAdapter(PostgresMajorVersion).validate_python(value) == expected


ON_CALENDAR = ("a systemd OnCalendar expression of letters, digits, spaces and * : . , / ~ + -, "
               "e.g. 'Sun *-*-* 03:30:00'")
CRON = ("five fields (minute hour day-of-month month day-of-week, UTC) of numbers, *, ranges a-b, steps /n and lists "
        "a,b, e.g. '*/15 * * * *'")
BACKUPS_KEYS = ("diffSchedule, fullSchedule, logicalKeep, logicalSchedule, recoveryPointMinutes, redisKeepDays, "
                "redisSchedule, retentionDiff, retentionFull")


@pytest.mark.parametrize(("backups", "expected"), [
    ({"recoveryPointMinutes": 0}, "phasekit:backups.recoveryPointMinutes: 0 is out of range; allowed: 1..60"),
    ({"recoveryPointMinutes": 61}, "phasekit:backups.recoveryPointMinutes: 61 is out of range; allowed: 1..60"),
    ({"retentionFull": 0}, "phasekit:backups.retentionFull: 0 is out of range; allowed: 1..52"),
    ({"retentionFull": True}, "phasekit:backups.retentionFull: true is not an integer; allowed: 1..52"),
    ({"retentionDiff": 366}, "phasekit:backups.retentionDiff: 366 is out of range; allowed: 1..365"),
    ({"logicalKeep": 0}, "phasekit:backups.logicalKeep: 0 is out of range; allowed: 1..1000"),
    ({"redisKeepDays": 0}, "phasekit:backups.redisKeepDays: 0 is out of range; allowed: 1..3650"),
    ({"fullSchedule": "  "}, f"phasekit:backups.fullSchedule: '  ' is empty; allowed: {ON_CALENDAR}"),
    ({"diffSchedule": "Mon 03:30\nExecStart=/bin/sh"},
     "phasekit:backups.diffSchedule: 'Mon 03:30\\nExecStart=/bin/sh' is not a systemd calendar expression; "
     f"allowed: {ON_CALENDAR}"),
    ({"redisSchedule": 'daily"'},
     f"phasekit:backups.redisSchedule: 'daily\"' is not a systemd calendar expression; allowed: {ON_CALENDAR}"),
    ({"redisSchedule": "%H:00"},
     f"phasekit:backups.redisSchedule: '%H:00' is not a systemd calendar expression; allowed: {ON_CALENDAR}"),
    ({"logicalSchedule": "@daily"},
     f"phasekit:backups.logicalSchedule: '@daily' has 1 field; allowed: {CRON}"),
    ({"logicalSchedule": "30 3 * *"},
     f"phasekit:backups.logicalSchedule: '30 3 * *' has 4 fields; allowed: {CRON}"),
    ({"logicalSchedule": "Sun *-*-* 03:30:00"},
     f"phasekit:backups.logicalSchedule: 'Sun *-*-* 03:30:00' has 3 fields; allowed: {CRON}"),
    # read as the API server reads a CronJob's schedule (robfig/cron v3): the loose check passed these
    ({"logicalSchedule": "30 25 * * *"},
     "phasekit:backups.logicalSchedule: '30 25 * * *': hour 25 is out of range; allowed: 0-23"),
    ({"logicalSchedule": "30 3 * * 7"},
     "phasekit:backups.logicalSchedule: '30 3 * * 7': day-of-week 7 is out of range; allowed: 0-6"),
    ({"retention": 3}, f"phasekit:backups.retention: unknown key; allowed: {BACKUPS_KEYS} (did you mean 'retentionFull'?)"),
])
def test_bad_backups_settings_are_refused_with_one_exact_line(backups: dict[str, object], expected: str) -> None:
    assert error_message(edited({"phasekit:backups": backups})) == expected


def test_backups_settings_are_read_as_written() -> None:
    config = load_config(edited({"phasekit:backups": {
        "retentionFull": "2", "retentionDiff": 14, "recoveryPointMinutes": 1, "fullSchedule": " Sat 02:00 ",
        "diffSchedule": "Sun..Fri 02:00", "redisSchedule": "hourly", "logicalSchedule": "0  */6 * * *",
        "logicalKeep": 10, "redisKeepDays": 7}}))
    assert config.backups.model_dump() == {
        "retention_full": 2, "retention_diff": 14, "recovery_point_minutes": 1, "full_schedule": "Sat 02:00",
        "diff_schedule": "Sun..Fri 02:00", "redis_schedule": "hourly", "redis_keep_days": 7,
        "logical_schedule": "0 */6 * * *", "logical_keep": 10}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_default_schedules_are_calendar_expressions_systemd_accepts() -> None:
    defaults = load_config(BASE).backups
    for expression in (defaults.full_schedule, defaults.diff_schedule, defaults.redis_schedule):
        checked = subprocess.run(["systemd-analyze", "calendar", expression], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


# --- issue 11: Slack alert channels and service images ------------------------------------------------------

PG_ALLOWED = "allowed: the official image with a PostgreSQL 16 tag, e.g. postgres:16.15-bookworm"


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param({"phasekit:vps.alertSlack": [{"channel": "", "webhook": "OPS_SLACK"}]},
                 "phasekit:vps.alertSlack[0].channel: '' is empty; allowed: a non-empty string", id="empty-channel"),
    pytest.param({"phasekit:vps.alertSlack": [{"channel": "#ops",
                                                "webhook": "https://hooks.slack.com/services/T0/B0/abc"}]},
                 "phasekit:vps.alertSlack[0].webhook: is a URL, which would put the secret in the stack file in plain "
                 "text; allowed: the NAME of a phasekit:secrets entry that holds it, set with: pulumi config set "
                 "--secret --path 'secrets.<NAME>', e.g. SLACK_WEBHOOK_URL", id="url-in-plain-text"),
    pytest.param({"phasekit:vps.alertSlack": [{"channel": "#ops", "webhook": "ops-slack"}]},
                 "phasekit:vps.alertSlack[0].webhook: 'ops-slack' is not a secret name; allowed: upper-case letters, "
                 "digits and '_', not starting with a digit: the NAME of a phasekit:secrets entry that holds it, set "
                 "with: pulumi config set --secret --path 'secrets.<NAME>', e.g. SLACK_WEBHOOK_URL",
                 id="bad-secret-name"),
    pytest.param({"phasekit:vps.alertSlack": [{"channel": "#ops"}]},
                 "phasekit:vps.alertSlack[0].webhook: missing; allowed: the NAME of a phasekit:secrets entry that "
                 "holds it, set with: pulumi config set --secret --path 'secrets.<NAME>', e.g. SLACK_WEBHOOK_URL",
                 id="no-webhook"),
    pytest.param({"phasekit:services": {"postgres": "postgres:17.2-bookworm"}},
                 "phasekit:services.postgres: 'postgres:17.2-bookworm' is PostgreSQL 17, not 16: a major upgrade is a "
                 f"migration to a new stack (phasekit db migrate, docs/migration.md); {PG_ALLOWED}", id="pg-major"),
    pytest.param({"phasekit:services": {"postgres": "bitnami/postgresql:16.4.0"}},
                 "phasekit:services.postgres: 'bitnami/postgresql:16.4.0' is not Docker Hub's official postgres "
                 f"image, which phasekit's backups build on; {PG_ALLOWED}", id="pg-unofficial"),
    pytest.param({"phasekit:services": {"postgres": "postgres:16.15-alpine"}},
                 "phasekit:services.postgres: 'postgres:16.15-alpine' is the Alpine variant; the backups' Dockerfile "
                 "installs pgBackRest with apt and the data files belong to the Debian variant's postgres user (uid "
                 f"999); {PG_ALLOWED}", id="pg-alpine"),
    pytest.param({"phasekit:services": {"postgres": "postgres@sha256:" + "a" * 64}},
                 # Values are shown cut at 80 characters (infra.config_keys.show_value).
                 "phasekit:services.postgres: 'postgres@sha256:" + "a" * 60 + "... does not name its PostgreSQL "
                 f"version in a tag; {PG_ALLOWED}", id="pg-digest"),
    pytest.param({"phasekit:services": {"postgres": "postgres:latest"}},
                 "phasekit:services.postgres: 'postgres:latest' uses the moving tag 'latest'; allowed: an explicit "
                 "tag or digest, e.g. postgres:1.4.2 or postgres@sha256:<64 hex>", id="pg-latest"),
    pytest.param({"phasekit:services": {"caddy": "caddy:latest"}},
                 "phasekit:services.caddy: 'caddy:latest' uses the moving tag 'latest'; allowed: an explicit "
                 "tag or digest, e.g. caddy:1.4.2 or caddy@sha256:<64 hex>", id="caddy-latest"),
    pytest.param({"phasekit:services": {"redis": "redis"}},
                 "phasekit:services.redis: 'redis' has no tag; allowed: an explicit tag or digest, e.g. redis:1.4.2 "
                 "or redis@sha256:<64 hex>", id="redis-untagged"),
    pytest.param({"phasekit:services": {"postgres": "postgres:16"}},
                 "phasekit:services.postgres: 'postgres:16' does not pin both the minor version and the Debian release "
                 "(bookworm): a moving tag or another release changes the C library under the data, and with it how "
                 "text sorts, which silently corrupts text indexes until they are rebuilt; "
                 f"{PG_ALLOWED}", id="pg-moving-major-tag"),
    pytest.param({"phasekit:services": {"postgres": "postgres:16.16"}},
                 "phasekit:services.postgres: 'postgres:16.16' does not pin both the minor version and the Debian "
                 "release (bookworm): a moving tag or another release changes the C library under the data, and with "
                 f"it how text sorts, which silently corrupts text indexes until they are rebuilt; {PG_ALLOWED}",
                 id="pg-no-debian-release"),
    pytest.param({"phasekit:services": {"caddy": "caddy:2.7.6"}},
                 "phasekit:services.caddy: 'caddy:2.7.6' is not Caddy 2.8 or newer by its tag: the rendered config "
                 "uses active health-check tolerances, trusted proxies and the PROXY protocol wrapper; allowed: a tag "
                 "starting with the version, e.g. caddy:2.11.4", id="caddy-too-old"),
    pytest.param({"phasekit:services": {"redis": "redis:8.0.2"}},
                 "phasekit:services.redis: 'redis:8.0.2' is not Redis 7: a new major version rewrites the data files, "
                 "which the old one then cannot read, so it cannot be rolled back; allowed: a Redis 7 tag, e.g. "
                 "redis:7.4.11-bookworm", id="redis-major"),
    pytest.param({"phasekit:services": {"mysql": "mysql:8.4"}},
                 "phasekit:services.mysql: unknown key; allowed: caddy, postgres, redis", id="unknown-service"),
])
def test_bad_alert_channels_and_service_images_are_refused_with_one_exact_line(changes, expected):
    assert error_message(edited(changes)) == expected


def test_a_slack_channel_and_same_major_images_are_accepted_and_their_webhook_is_a_required_secret():
    from infra.config import required_secret_names

    config = load_config(edited({
        "phasekit:vps.alertSlack": [{"channel": "#ops", "webhook": "OPS_SLACK"}],
        "phasekit:services": {"postgres": "docker.io/library/postgres:16.16-bookworm", "redis": "redis:7.4.12"},
    }))
    assert [(slack.channel, slack.webhook) for slack in config.vps.alert_slack] == [("#ops", "OPS_SLACK")]
    assert config.services.images().postgres == "docker.io/library/postgres:16.16-bookworm"
    assert config.services.images().caddy == "caddy:2.11.4"
    assert required_secret_names(config) == ["SECRET_KEY_BASE", "BACKUP_PASSPHRASE", "OPS_SLACK"]
