"""BackupStore under the recording mock monitor: the private backups bucket and the token scoped to it.

Mocks cannot prove that Cloudflare accepts the token's policy, that the permission group's name still resolves
on a real account, or that R2 accepts the derived S3 credentials; a real ``pulumi up`` followed by the rollout's
``pgbackrest check`` (which fails the rollout when archiving to the bucket does not work) does.
"""

from __future__ import annotations

import hashlib
import json

import pulumi
import pytest

from components.backup_store import (
    BackupStore,
    BackupStoreArgs,
    bucket_token_resources,
    permission_group_id,
    s3_secret_access_key,
)
from components.testing import INVOKE_RESULTS, run_recorded

BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
TOKEN = "cloudflare:index/apiToken:ApiToken"
ACCOUNT_ID = "01a7362d577a6c3019a474fd6f485823"
GROUPS_LIST = "cloudflare:index/getApiTokenPermissionGroupsList:getApiTokenPermissionGroupsList"


def record(preview: bool = False, protect: bool = True, invoke_results=None):
    def program():
        store = BackupStore("backups", BackupStoreArgs(account_id=ACCOUNT_ID, bucket_name="shop-prod-backups",
                                                       protect=protect))
        pulumi.export("bucket", store.bucket_name)
        pulumi.export("endpoint", store.endpoint)
        pulumi.export("key_id", store.access_key_id)
        pulumi.export("secret", store.secret_access_key)
    return run_recorded(program, preview=preview, invoke_results=invoke_results)


def test_the_bucket_is_named_protected_and_retained():
    bucket = record().one(BUCKET)
    assert bucket.inputs == {"accountId": ACCOUNT_ID, "name": "shop-prod-backups"}
    assert (bucket.protect, bucket.retain_on_delete) == (True, True)
    assert bucket.urn.endswith("phasekit:index:BackupStore$cloudflare:index/r2Bucket:R2Bucket::backups-bucket")


def test_an_unprotected_stack_leaves_the_bucket_deletable():
    bucket = record(protect=False).one(BUCKET)
    assert (bucket.protect, bucket.retain_on_delete) == (False, False)


def test_the_token_may_only_touch_the_backups_buckets_objects():
    token = record().one(TOKEN)
    assert token.inputs == {
        "name": "shop-prod-backups backups (phasekit)",
        "policies": [{
            "effect": "allow",
            "permissionGroups": [{"id": "2efd5506f9c8494dacb1fa10a3e7d5b6"}],
            "resources": json.dumps({f"com.cloudflare.edge.r2.bucket.{ACCOUNT_ID}_default_shop-prod-backups": "*"}),
        }],
    }
    assert (token.protect, token.retain_on_delete) == (False, False)


def test_s3_credentials_are_the_token_id_and_the_sha256_of_its_value():
    recording = record()
    token = recording.one(TOKEN)
    token_value = f"offline-token-{hashlib.sha256(b'backups-token').hexdigest()[:32]}"
    assert recording.outputs == {
        "bucket": "shop-prod-backups",
        "endpoint": f"{ACCOUNT_ID}.r2.cloudflarestorage.com",
        "key_id": token.id,
        "secret": hashlib.sha256(token_value.encode()).hexdigest(),
    }
    assert recording.secret_outputs == {"secret"}


def test_preview_creates_the_same_three_resources():
    assert record(preview=True).type_counts() == {"phasekit:index:BackupStore": 1, BUCKET: 1, TOKEN: 1,
                                                  LIFECYCLE: 1}


def test_a_lookup_without_the_permission_group_fails_with_a_clear_message():
    with pytest.raises(Exception, match="Cloudflare lists no API token permission group 'Workers R2 Storage Bucket "
                                        "Item Write' in scope com.cloudflare.edge.r2.bucket"):
        record(invoke_results={**INVOKE_RESULTS, GROUPS_LIST: {"results": []}})


@pytest.mark.parametrize("name", ["Shop", "a", "-shop-", "shop_prod"])
def test_a_bad_bucket_name_is_refused(name: str):
    with pytest.raises(ValueError) as caught:
        BackupStore("backups", BackupStoreArgs(account_id=ACCOUNT_ID, bucket_name=name))
    assert str(caught.value) == (
        f"BackupStoreArgs.bucket_name: {name!r} is not an R2 bucket name; allowed: 3-63 lowercase letters, digits "
        "and hyphens, not starting or ending with a hyphen")


def test_pure_helpers():
    # Cloudflare's documented derivation: the secret access key is the SHA-256 hex digest of the token value.
    assert s3_secret_access_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert bucket_token_resources("acct", "b-backups") == '{"com.cloudflare.edge.r2.bucket.acct_default_b-backups": "*"}'
    groups = [{"id": "1", "name": "Workers R2 Storage Bucket Item Read"}, {"id": "2", "name": "Workers R2 Storage "
                                                                                             "Bucket Item Write"}]
    assert permission_group_id(groups, "Workers R2 Storage Bucket Item Write") == "2"


LIFECYCLE = "cloudflare:index/r2BucketLifecycle:R2BucketLifecycle"


def test_redis_snapshots_expire_and_nothing_else_in_the_bucket_does():
    lifecycle = record().one(LIFECYCLE)
    assert lifecycle.inputs == {
        "accountId": ACCOUNT_ID,
        "bucketName": "shop-prod-backups",
        "rules": [
            {"id": "phasekit-redis-snapshots-expire", "enabled": True, "conditions": {"prefix": "redis/"},
             "deleteObjectsTransition": {"condition": {"type": "Age", "maxAge": 30 * 86400}}},
            {"id": "phasekit-abort-stale-multipart-uploads", "enabled": True, "conditions": {"prefix": ""},
             "abortMultipartUploadsTransition": {"condition": {"type": "Age", "maxAge": 7 * 86400}}},
        ],
    }
    assert lifecycle.urn.endswith("R2BucketLifecycle::backups-lifecycle")


def test_redis_snapshot_days_are_configurable():
    def program():
        BackupStore("backups", BackupStoreArgs(account_id=ACCOUNT_ID, bucket_name="shop-prod-backups",
                                               redis_keep_days=90))
    rules = run_recorded(program).one(LIFECYCLE).inputs["rules"]
    assert rules[0]["deleteObjectsTransition"] == {"condition": {"type": "Age", "maxAge": 90 * 86400}}
