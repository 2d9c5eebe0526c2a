"""CloudflareEdge under the recording mock monitor: record, zone TLS settings, origin cert, R2 bucket.

Mocks cannot prove that Cloudflare accepts these values for this zone or plan; a real ``pulumi preview``
(with a token that may edit the zone) does.
"""

from __future__ import annotations

import pulumi
import pytest

from components.cloudflare_edge import CloudflareEdge
from components.testing import run_recorded
from tests.builders import edge_args

RECORD = "cloudflare:index/dnsRecord:DnsRecord"
SETTING = "cloudflare:index/zoneSetting:ZoneSetting"
BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
ORIGIN_CERT = "cloudflare:index/originCaCertificate:OriginCaCertificate"


def record(**overrides):
    def program():
        edge = CloudflareEdge("edge", edge_args(**overrides))
        pulumi.export("key", edge.origin_private_key_pem)
        pulumi.export("cert", edge.origin_certificate_pem)
        pulumi.export("bucket", edge.media_bucket_name)
    return run_recorded(program)


def test_proxied_record_points_at_the_origin():
    assert record().one(RECORD).inputs == {
        "zoneId": "023e105f4ecef8ad9ca31a8372d0c353",
        "name": "app.example.com",
        "type": "A",
        "content": "198.51.100.7",
        "proxied": True,
        "ttl": 1,
        "comment": "managed by phasekit",
    }


def test_zone_enforces_full_strict_https_and_tls12():
    settings = {setting.inputs["settingId"]: setting.inputs["value"] for setting in record().of_type(SETTING)}
    assert settings == {"ssl": "strict", "always_use_https": "on", "min_tls_version": "1.2", "tls_1_3": "on"}


def test_zone_settings_can_be_left_alone():
    assert record(manage_zone_settings=False).of_type(SETTING) == []


def test_origin_certificate_is_ecc_for_the_hostname_and_its_key_secret():
    recording = record()
    certificate = recording.one(ORIGIN_CERT).inputs
    assert certificate["hostnames"] == ["app.example.com"]
    assert certificate["requestType"] == "origin-ecc"
    assert certificate["requestedValidity"] == 5475
    key = recording.one("tls:index/privateKey:PrivateKey").inputs
    assert key == {"algorithm": "ECDSA", "ecdsaCurve": "P256"}
    assert "key" in recording.secret_outputs
    assert recording.outputs["cert"].startswith("-----BEGIN CERTIFICATE-----")


def test_no_origin_certificate_when_not_issued():
    recording = record(issue_origin_certificate=False, proxied=False)
    assert recording.of_type(ORIGIN_CERT) == []
    assert recording.outputs["key"] is None and recording.outputs["cert"] is None
    assert recording.one(RECORD).inputs["proxied"] is False


def test_media_bucket_is_named_protected_and_retained():
    recording = record()
    bucket = recording.one(BUCKET)
    assert bucket.inputs == {"accountId": "01a7362d577a6c3019a474fd6f485823", "name": "phasekit-test-media"}
    assert (bucket.protect, bucket.retain_on_delete) == (True, True)
    assert bucket.urn == ("urn:pulumi:test::phasekit::phasekit:index:CloudflareEdge$"
                          "cloudflare:index/r2Bucket:R2Bucket::edge-media")
    assert recording.outputs["bucket"] == "phasekit-test-media"


def test_cname_origin_for_a_load_balancer_hostname():
    recording = record(origin="lb.example.net", origin_record_type="CNAME")
    assert recording.one(RECORD).inputs["type"] == "CNAME"
    assert recording.one(RECORD).inputs["content"] == "lb.example.net"


def test_zone_settings_follow_the_stack_config():
    from tests.test_program import PHASE1, run_phase1
    raw = {**PHASE1, "phasekit:edge": {**PHASE1["phasekit:edge"], "manageZoneSettings": False}}
    assert run_phase1(raw).of_type(SETTING) == []


@pytest.mark.parametrize(("overrides", "message"), [
    ({"media_bucket_name": "Media_Bucket"},
     "CloudflareEdgeArgs.media_bucket_name: 'Media_Bucket' is not an R2 bucket name; allowed: 3-63 lowercase "
     "letters, digits and hyphens, not starting or ending with a hyphen"),
    ({"origin_record_type": "MX"}, "CloudflareEdgeArgs.origin_record_type: 'MX'; allowed: A, AAAA, CNAME"),
    ({"proxied": False},
     "CloudflareEdgeArgs.issue_origin_certificate: only Cloudflare trusts an Origin CA certificate, so it "
     "needs proxied=True"),
])
def test_invalid_args_are_refused_with_exact_messages(overrides, message):
    with pytest.raises(ValueError) as raised:
        record(**overrides)
    assert str(raised.value) == message
