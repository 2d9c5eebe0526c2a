"""BackupStore: where a stack's off-site backups live, and the only key that opens it.

Creates
- a private R2 bucket for backups, apart from the media bucket, so that media credentials never reach the
  backups and a backup credential never reaches the app (R2 buckets are private until a custom domain or r2.dev
  access is added; phasekit adds neither);
- a Cloudflare API token (``cloudflare.ApiToken``, a user token) whose one policy allows the permission group
  "Workers R2 Storage Bucket Item Write" (read, write and list objects) on that bucket alone: resource
  ``com.cloudflare.edge.r2.bucket.<account id>_default_<bucket>``. The permission group's id is looked up by name
  with ``cloudflare.get_api_token_permission_groups_list`` (pulumi-cloudflare v6; the name filter must be
  URL-encoded, as its docstring says), not hard-coded; today it is ``2efd5506f9c8494dacb1fa10a3e7d5b6``.

S3 credentials come from the token as Cloudflare documents ("Get S3 API credentials from an API token",
developers.cloudflare.com/r2/api/tokens/): the access key id is the token's id, the secret access key is the
SHA-256 hex digest of the token's value. The endpoint is ``<account id>.r2.cloudflarestorage.com``, region
``auto``.

- an object lifecycle (``cloudflare.R2BucketLifecycle``) that deletes Redis snapshots (``redis/``) after
  ``redis_keep_days`` and aborts multipart uploads left unfinished for 7 days. Nothing else in the bucket expires:
  pgBackRest expires its own backups and the WAL they need by retention, and a rule on ``pgbackrest/`` could delete
  WAL a kept backup still needs. R2 counts ``maxAge`` in seconds (its API's own examples: 2592000 for 30 days).
  R2 documents a default rule that aborts multipart uploads after seven days
  (developers.cloudflare.com/r2/buckets/object-lifecycles/); phasekit states it explicitly, so the bucket keeps it
  whether or not a configuration of its own replaces the default.

Does not create the account, R2 itself (it must be enabled on the account) or any public access. The
provider's own API token must be allowed to create tokens ("API Tokens Write") and buckets.

Cost: R2 storage beyond the free 10 GB-month, and Class A/B operations beyond the free tier; no egress fees.
The cost estimate shows it as a usage-based line.

Stateful: the bucket holds the only off-site copies of the database. With ``protect`` it is protected and
retained on delete; the token is not (a replaced token only means new credentials on the next rollout).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_cloudflare as cloudflare

from components.stateful import stateful_options

R2_BUCKET_ITEM_WRITE = "Workers R2 Storage Bucket Item Write"
"""The permission group that reads, writes and lists a bucket's objects (not the bucket's settings)."""

R2_BUCKET_SCOPE = "com.cloudflare.edge.r2.bucket"
"""The scope of the permission groups that apply to one R2 bucket."""

R2_JURISDICTION = "default"
"""The bucket's jurisdiction as a token resource names it; phasekit creates buckets without one."""

SECONDS_PER_DAY = 86400
MULTIPART_UPLOAD_DAYS = 7
"""R2's own default for unfinished multipart uploads, stated explicitly in phasekit's lifecycle."""

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@dataclass
class BackupStoreArgs:
    account_id: pulumi.Input[str]
    """The Cloudflare account (32 hex characters) the bucket is created in."""

    bucket_name: str
    """Physical R2 bucket name (3-63 lowercase letters, digits, hyphens); ``infra`` derives
    ``<project>-<stack>-backups``."""

    protect: bool = True
    """Protect and retain the bucket. Default true."""

    redis_keep_days: int = 30
    """Days a Redis snapshot (``redis/``) is kept before R2 deletes it."""


class BackupStore(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    """The backups bucket's name."""

    endpoint: pulumi.Output[str]
    """The S3 API host of the bucket's account, ``<account id>.r2.cloudflarestorage.com`` (no scheme)."""

    access_key_id: pulumi.Output[str]
    """S3 access key id: the scoped token's id."""

    secret_access_key: pulumi.Output[str]
    """S3 secret access key: the SHA-256 hex digest of the scoped token's value; a secret."""

    def __init__(self, name: str, args: BackupStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_args(args)
        super().__init__("phasekit:index:BackupStore", name, None, opts)

        bucket = cloudflare.R2Bucket(
            f"{name}-bucket",
            account_id=args.account_id,
            name=args.bucket_name,
            opts=stateful_options(self, args.protect),
        )
        groups = cloudflare.get_api_token_permission_groups_list_output(
            name=_url_encoded(R2_BUCKET_ITEM_WRITE), scope=R2_BUCKET_SCOPE, opts=pulumi.InvokeOptions(parent=self))
        group_id = groups.results.apply(lambda found: permission_group_id(found, R2_BUCKET_ITEM_WRITE))
        token = cloudflare.ApiToken(
            f"{name}-token",
            name=bucket.name.apply(lambda bucket_name: f"{bucket_name} backups (phasekit)"),
            policies=[cloudflare.ApiTokenPolicyArgs(
                effect="allow",
                permission_groups=[cloudflare.ApiTokenPolicyPermissionGroupArgs(id=group_id)],
                resources=pulumi.Output.all(args.account_id, bucket.name).apply(
                    lambda ids: bucket_token_resources(ids[0], ids[1])),
            )],
            opts=pulumi.ResourceOptions(parent=self),
        )

        cloudflare.R2BucketLifecycle(
            f"{name}-lifecycle",
            account_id=args.account_id,
            bucket_name=bucket.name,
            rules=lifecycle_rules(args.redis_keep_days),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.bucket_name = bucket.name
        self.endpoint = pulumi.Output.from_input(args.account_id).apply(r2_endpoint)
        self.access_key_id = token.id
        self.secret_access_key = pulumi.Output.secret(token.value.apply(s3_secret_access_key))
        self.register_outputs({
            "bucket_name": self.bucket_name,
            "endpoint": self.endpoint,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        })


def lifecycle_rules(redis_keep_days: int) -> list[cloudflare.R2BucketLifecycleRuleArgs]:
    """Redis snapshots expire after ``redis_keep_days``; unfinished multipart uploads after 7 days; nothing else."""
    def age(days: int) -> dict:
        return {"condition": {"type": "Age", "max_age": days * SECONDS_PER_DAY}}
    return [
        cloudflare.R2BucketLifecycleRuleArgs(
            id="phasekit-redis-snapshots-expire", enabled=True, conditions={"prefix": "redis/"},
            delete_objects_transition=age(redis_keep_days)),
        cloudflare.R2BucketLifecycleRuleArgs(
            id="phasekit-abort-stale-multipart-uploads", enabled=True, conditions={"prefix": ""},
            abort_multipart_uploads_transition=age(MULTIPART_UPLOAD_DAYS)),
    ]


def r2_endpoint(account_id: str) -> str:
    """The S3 API host of an account's R2 buckets."""
    return f"{account_id}.r2.cloudflarestorage.com"


def bucket_token_resources(account_id: str, bucket_name: str) -> str:
    """The token policy's ``resources``: a JSON object naming exactly one bucket."""
    return json.dumps({f"{R2_BUCKET_SCOPE}.{account_id}_{R2_JURISDICTION}_{bucket_name}": "*"})


def s3_secret_access_key(token_value: str) -> str:
    """The S3 secret access key of an R2-capable API token: the SHA-256 hex digest of its value."""
    return hashlib.sha256(token_value.encode()).hexdigest()


def permission_group_id(groups: Sequence[Any], name: str) -> str:
    """The id of the permission group called ``name`` among a lookup's results; a clear error when the account's
    API does not list it (for example when R2 is not enabled)."""
    for group in groups or ():
        group_name = group.get("name") if isinstance(group, dict) else getattr(group, "name", None)
        if group_name == name:
            return group.get("id") if isinstance(group, dict) else group.id
    raise ValueError(f"Cloudflare lists no API token permission group {name!r} in scope {R2_BUCKET_SCOPE}; "
                     "enable R2 on the account, and let the provider's token read permission groups")


def _url_encoded(text: str) -> str:
    return text.replace(" ", "%20")


def _check_args(args: BackupStoreArgs) -> None:
    if not 1 <= args.redis_keep_days <= 3650:
        raise ValueError(f"BackupStoreArgs.redis_keep_days: {args.redis_keep_days}; allowed: 1..3650")
    if not _BUCKET_NAME.fullmatch(args.bucket_name):
        raise ValueError(f"BackupStoreArgs.bucket_name: {args.bucket_name!r} is not an R2 bucket name; allowed: "
                         "3-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen")
