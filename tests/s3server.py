"""A real S3 server on loopback for backup tests: moto's server mode behind a real Caddy that terminates TLS.

Why the pair: pgBackRest speaks S3 only over HTTPS; moto's own TLS (Werkzeug's adhoc certificate) makes pgBackRest
2.45 fail with "unexpected eof", and pgBackRest cannot match an IP address in a certificate's subjectAltName. So
moto listens over plain HTTP on 127.0.0.1 and Caddy (Debian ``caddy``) terminates TLS on another loopback port with
a throwaway self-signed certificate for the DNS name ``localhost`` (the certificate is its own CA: ``ca_file``).

moto does not check signatures, so any key pair works; it does keep objects byte for byte, so tests can tamper with
them through ``S3Server.client`` (boto3). Every wait is bounded; both servers are stopped and their temp directory
removed however the ``with`` body ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from tests.realtools import READY_TIMEOUT, _free_port, _hermetic_env, _read, _stop_process, _tool, self_signed_cert

__all__ = ["ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "S3Server", "running_s3"]

ACCESS_KEY_ID = "phasekit-test-key"
SECRET_ACCESS_KEY = "phasekit-test-secret"
"""moto accepts any credentials; these are what the tests hand to pgBackRest and curl."""


@dataclass
class S3Server:
    """A running moto + Caddy pair (see ``running_s3``)."""

    endpoint_host: str
    port: int
    ca_file: str
    bucket: str
    client: object
    """A boto3 S3 client talking to the TLS endpoint (for listing and tampering with objects)."""
    tmpdir: Path

    @property
    def endpoint_url(self) -> str:
        return f"https://{self.endpoint_host}:{self.port}"

    def log(self) -> str:
        """What moto and Caddy wrote so far."""
        return (f"--- moto ---\n{_read(self.tmpdir / 'moto.log')}\n"
                f"--- caddy ---\n{_read(self.tmpdir / 'caddy.log')}")

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in the bucket, sorted."""
        paginator = self.client.get_paginator("list_objects_v2")
        return sorted(item["Key"] for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
                      for item in page.get("Contents", []))


def _moto_argv(port: int) -> list[str]:
    venv_server = Path(sys.executable).parent / "moto_server"
    program = [str(venv_server)] if venv_server.exists() else [sys.executable, "-m", "moto.server"]
    return [*program, "-H", "127.0.0.1", "-p", str(port)]


def _caddy_config(tls_port: int, moto_port: int, cert: Path, key: Path) -> str:
    return json.dumps({
        "admin": {"disabled": True},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {
            "http": {"servers": {"s3": {
                "listen": [f"127.0.0.1:{tls_port}"],
                "automatic_https": {"disable": True},
                "tls_connection_policies": [{}],
                "routes": [{"handle": [{"handler": "reverse_proxy",
                                        "upstreams": [{"dial": f"127.0.0.1:{moto_port}"}]}]}],
            }}},
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
        },
    }, indent=2)


def _wait_until(ready, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}\n{_read(log)}")
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.1)
    raise AssertionError(f"{what} was not ready within {READY_TIMEOUT:g} s\n{_read(log)}")


def _start(argv: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def running_s3(bucket: str) -> Iterator[S3Server]:
    """Start moto (HTTP) and Caddy (HTTPS in front of it) on free loopback ports, create ``bucket``, and yield
    the server: endpoint ``localhost:<port>``, ``ca_file`` to trust, a boto3 ``client``."""
    caddy = _tool("caddy", "caddy")
    tmpdir = Path(tempfile.mkdtemp(prefix="s3server-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        moto_port, tls_port = _free_port(), _free_port()
        env = _hermetic_env(tmpdir, XDG_DATA_HOME=str(tmpdir / ".data"), XDG_CONFIG_HOME=str(tmpdir / ".config"))
        moto = _start(_moto_argv(moto_port), tmpdir / "moto.log", {**env, "PYTHONPATH": os.pathsep.join(sys.path)},
                      tmpdir)
        processes.append(moto)
        _wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{moto_port}/", timeout=1).status == 200,
                    moto, "moto_server", tmpdir / "moto.log")
        cert, key = self_signed_cert(tmpdir, "localhost")
        # Tools under test may run as another OS user (pgBackRest as postgres): they must read the CA file.
        tmpdir.chmod(0o755)
        cert.chmod(0o644)
        (tmpdir / "caddy.json").write_text(_caddy_config(tls_port, moto_port, cert, key))
        proxy = _start([caddy, "run", "--config", str(tmpdir / "caddy.json"), "--adapter", ""],
                       tmpdir / "caddy.log", env, tmpdir)
        processes.append(proxy)
        client = boto3.client(
            "s3", endpoint_url=f"https://localhost:{tls_port}", verify=str(cert), region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, connect_timeout=2,
                          read_timeout=10),
        )
        _wait_until(lambda: client.list_buckets() is not None, proxy, "caddy in front of moto",
                    tmpdir / "caddy.log")
        client.create_bucket(Bucket=bucket)
        yield S3Server(endpoint_host="localhost", port=tls_port, ca_file=str(cert), bucket=bucket, client=client,
                       tmpdir=tmpdir)
    finally:
        for proc in reversed(processes):
            _stop_process(proc)
        shutil.rmtree(tmpdir, ignore_errors=True)
