"""``phasekit db restore --logical``: restore phase 3's logical copy (``logical/<UTC stamp>.dump.enc``) into a database.

    phasekit db restore --stack S --logical [--object logical/<stamp>.dump.enc] --to-url URL [--allow-non-empty]
                        [--repo-endpoint HOST[:PORT]] [--repo-ca-file F] [--scratch-dir DIR]

The copy lives outside AWS in the stack's backups bucket (components/logical_backup.py writes it: ``pg_dump
--format=custom | openssl enc`` with ``OPENSSL_ENC_ARGS``). The steps:

1. list ``logical/`` (S3 ListObjectsV2, path-style, parsed with ``xml.etree``) and take the newest copy, or
   ``--object``; the stamp in the name sorts in time order;
2. download it with ``curl --aws-sigv4 "aws:amz:<region>:s3"`` (the same signer ``backup.sh`` uses for Redis);
   the key pair reaches curl only in a private 0600 ``--config`` file, never argv;
3. decrypt it with ``openssl enc -d`` and the same ``OPENSSL_ENC_ARGS``, the passphrase read by openssl from its
   environment (``-pass env:NAME``: the name is on the command line, not the value); a wrong passphrase or a
   damaged copy stops here (openssl's "bad decrypt", or no pg_dump archive header) and nothing is restored;
4. ``pg_restore --no-owner --no-acl --exit-on-error --single-transaction`` into the target, its password only via
   the private PGPASSFILE of ``phasekit.db.connection.session``. ``--single-transaction``: a copy that decrypts
   but breaks half way (a damaged block inside the archive) rolls back whole instead of leaving half a database.

The credentials are the same environment variables the pgBackRest path reads (``restore.CREDENTIAL_SOURCES``),
so one set of exports serves both restores.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, urlencode

from components.backups import OPENSSL_ENC_ARGS, BackupSpec, render_r2_curl_config
from phasekit.db.connection import DatabaseError, Endpoint, Session, endpoint, session, tool

LOGICAL_PREFIX = "logical/"
"""Where phase 3's CronJob puts its copies (``components.logical_backup.LOGICAL_PREFIX``; spelled here too so
this module does not import the Pulumi Kubernetes and AWS SDKs; tests/test_db_logical_restore.py pins the two)."""
COPY_NAME = re.compile(r"logical/\d{8}T\d{6}Z\.dump\.enc")
"""A finished copy: ``STAMP_FORMAT`` (``%Y%m%dT%H%M%SZ``) plus ``COPY_SUFFIX``; ``.partial`` and strays are not."""
S3_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
"""``x-amz-content-sha256`` of a GET (no body): S3 and R2 require the header; curl signs the value given."""
PGDMP_MAGIC = b"PGDMP"
"""The first bytes of a ``pg_dump --format=custom`` archive (pg_backup_archiver.c, ``ReadHead``)."""
PASSPHRASE_VARIABLE = "PGBACKREST_REPO1_CIPHER_PASS"
KEY_VARIABLES = ("PGBACKREST_REPO1_S3_KEY", "PGBACKREST_REPO1_S3_KEY_SECRET")
TOOL_TIMEOUT = 3600.0


@dataclass(frozen=True)
class LogicalCopy:
    """One object under ``logical/``: its key and its size in bytes as the bucket lists it."""

    key: str
    size: int


def bucket_url(spec: BackupSpec) -> str:
    """Path-style URL of the stack's bucket (R2 and the test server both take path-style)."""
    port = "" if spec.storage_port == 443 else f":{spec.storage_port}"
    return f"https://{spec.endpoint}{port}/{quote(spec.bucket)}"


def parse_listing(xml_text: str) -> tuple[list[LogicalCopy], str | None]:
    """One ListObjectsV2 page: (the finished copies on it, the continuation token or None)."""
    root = ElementTree.fromstring(xml_text)
    copies = [LogicalCopy(key=item.findtext(f"{S3_NAMESPACE}Key", ""),
                          size=int(item.findtext(f"{S3_NAMESPACE}Size", "0")))
              for item in root.iter(f"{S3_NAMESPACE}Contents")]
    truncated = root.findtext(f"{S3_NAMESPACE}IsTruncated", "false") == "true"
    token = root.findtext(f"{S3_NAMESPACE}NextContinuationToken") if truncated else None
    return [copy for copy in copies if COPY_NAME.fullmatch(copy.key)], token


def choose_copy(copies: list[LogicalCopy], wanted: str | None, where: str) -> LogicalCopy:
    """The newest copy (the UTC stamp in the name sorts in time order), or ``wanted``; refuses none or unknown."""
    if not copies:
        raise DatabaseError(f"no logical copy in {where}: phase 3's CronJob has not uploaded one yet "
                            "(kubectl get cronjobs shows its last run)")
    newest = max(copies, key=lambda copy: copy.key)
    if wanted is None:
        return newest
    key = wanted if wanted.startswith(LOGICAL_PREFIX) else LOGICAL_PREFIX + wanted
    for copy in copies:
        if copy.key == key:
            return copy
    raise DatabaseError(f"--object {wanted}: no such copy in {where} ({len(copies)} copies, the newest "
                        f"{newest.key})")


class S3Client:
    """curl with ``--aws-sigv4`` against the stack's bucket; the key pair only in a private ``--config`` file."""

    def __init__(self, spec: BackupSpec, folder: Path, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.config = folder / "curl.conf"
        descriptor = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(render_r2_curl_config(*(environ[name] for name in KEY_VARIABLES)))
        # curl reads no ~/.curlrc (-q first) and gets no secret through its environment.
        self.environment = {key: value for key, value in environ.items() if not key.startswith("PGBACKREST_")}

    def _argv(self, url: str, *extra: str) -> list[str]:
        return [tool_curl(), "-q", "--config", str(self.config), "--fail-with-body", "--silent", "--show-error",
                "--aws-sigv4", f"aws:amz:{self.spec.region}:s3", "--header",
                f"x-amz-content-sha256: {EMPTY_BODY_SHA256}",
                *(["--cacert", self.spec.ca_file] if self.spec.ca_file else []), *extra, url]

    def get(self, url: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = subprocess.run(self._argv(url, *extra), env=self.environment, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=TOOL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise DatabaseError(f"curl {url} did not finish within {TOOL_TIMEOUT:g} s") from None
        if proc.returncode != 0:
            raise DatabaseError(f"the backups bucket refused {url}: {_s3_problem(proc)}")
        return proc

    def list_copies(self) -> list[LogicalCopy]:
        copies: list[LogicalCopy] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": LOGICAL_PREFIX, **({"continuation-token": token} if token else {})}
            page, token = parse_listing(self.get(f"{bucket_url(self.spec)}?{urlencode(query)}").stdout.decode())
            copies += page
            if token is None:
                return copies

    def download(self, copy: LogicalCopy, destination: Path) -> None:
        self.get(f"{bucket_url(self.spec)}/{quote(copy.key)}", "--output", str(destination))
        size = destination.stat().st_size
        if size != copy.size:
            raise DatabaseError(f"{copy.key}: downloaded {size} bytes, the bucket lists {copy.size}; nothing was "
                                "restored")


def tool_curl() -> str:
    path = shutil.which("curl")
    if path is None:
        raise DatabaseError("curl is not installed: install curl 7.75 or newer (it signs S3 requests)")
    return path


def _s3_problem(proc: subprocess.CompletedProcess[bytes]) -> str:
    """S3's error code and message from the body (--fail-with-body keeps it), else curl's own line."""
    with contextlib.suppress(ElementTree.ParseError):
        root = ElementTree.fromstring(proc.stdout)
        if root.tag == "Error":
            return f"{root.findtext('Code', '')}: {root.findtext('Message', '')}".strip(": ")
    return " ".join(proc.stderr.decode(errors="replace").split()) or f"curl exit {proc.returncode}"


def decrypt(encrypted: Path, decrypted: Path, copy: LogicalCopy, environ: Mapping[str, str]) -> None:
    """``openssl enc -d`` with OPENSSL_ENC_ARGS; refuses output that is not a pg_dump archive (a wrong passphrase
    passes openssl's padding check about once in 256 tries, and then yields noise)."""
    argv = ["openssl", "enc", "-d", *OPENSSL_ENC_ARGS, "-pass", f"env:{PASSPHRASE_VARIABLE}",
            "-in", str(encrypted), "-out", str(decrypted)]
    env = {"PATH": environ.get("PATH", "/usr/bin:/bin"), PASSPHRASE_VARIABLE: environ[PASSPHRASE_VARIABLE]}
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT, check=False)
    header = b""
    if decrypted.exists():
        with open(decrypted, "rb") as handle:
            header = handle.read(len(PGDMP_MAGIC))
    if proc.returncode != 0 or header != PGDMP_MAGIC:
        cause = " ".join(proc.stderr.split())[:200] if proc.returncode != 0 else "no pg_dump archive inside"
        raise DatabaseError(f"{copy.key} does not decrypt with {PASSPHRASE_VARIABLE} (openssl: {cause}): the "
                            "passphrase is wrong or the copy is damaged; nothing was restored")


def check_target_empty(db_session: Session, target: Endpoint) -> None:
    from phasekit.db.migrate import NON_EMPTY_SQL, check_empty

    check_empty(db_session.psql(target, NON_EMPTY_SQL).splitlines(), target)


def pg_restore(db_session: Session, archive: Path, target: Endpoint, *, allow_non_empty: bool) -> None:
    clean = ["--clean", "--if-exists"] if allow_non_empty else []
    proc = db_session.run([tool("pg_restore"), "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
                           *clean, "--dbname", target.url, str(archive)])
    if proc.returncode != 0:
        raise DatabaseError(f"pg_restore ({target.label}) failed, nothing was restored (one transaction): "
                            f"{' '.join(proc.stderr.split()) or f'exit {proc.returncode}'}")


@contextlib.contextmanager
def _private_folder(parent: Path | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="phasekit-logical-", dir=parent) as folder:
        Path(folder).chmod(0o700)
        yield Path(folder)


def restore_logical(spec: BackupSpec, url: str, *, out: TextIO, wanted: str | None = None,
                    allow_non_empty: bool = False, scratch_parent: Path | None = None,
                    environ: Mapping[str, str] | None = None) -> LogicalCopy:
    """Restore the newest logical copy (or ``wanted``) of the stack into ``url``; returns the copy restored."""
    from phasekit.db.restore import check_credentials

    environ = os.environ if environ is None else environ
    check_credentials(environ)
    target = endpoint("target", url)  # a URL with a password is refused before any work
    where = f"s3://{spec.bucket}/{LOGICAL_PREFIX} at {spec.endpoint}"
    # pg_restore and psql get no backup secret in their environment.
    client_environ = {key: value for key, value in environ.items() if not key.startswith("PGBACKREST_")}
    with session(target, environ=client_environ) as db_session:
        if not allow_non_empty:
            check_target_empty(db_session, target)
        with _private_folder(scratch_parent) as folder:
            client = S3Client(spec, folder, environ)
            copy = choose_copy(client.list_copies(), wanted, where)
            out.write(f"restore: logical copy {copy.key} ({copy.size} bytes) from {where}\n")
            client.download(copy, folder / "copy.dump.enc")
            decrypt(folder / "copy.dump.enc", folder / "copy.dump", copy, environ)
            pg_restore(db_session, folder / "copy.dump", target, allow_non_empty=allow_non_empty)
    out.write(f"restore: ok; {copy.key} ({copy.size} bytes) restored into {target.label}\n")
    return copy
