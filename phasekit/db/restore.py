"""``phasekit db restore`` and ``phasekit db drill``: bring a stack's database back from its pgBackRest repository.

    phasekit db restore --stack S (--time 'YYYY-MM-DD HH:MM:SS+00' | --latest) (--to-dir DIR | --to-url URL)
                        [--pg-bin DIR] [--repo-endpoint HOST[:PORT]] [--repo-ca-file F] [--project-dir DIR]
    phasekit db restore --stack S --logical [--object logical/<stamp>.dump.enc] --to-url URL [--allow-non-empty]
                        (phase 3's logical copy: phasekit/db/logical.py)
    phasekit db drill --stack S [--pg-bin DIR] [--repo-endpoint HOST[:PORT]] [--repo-ca-file F] [--scratch-dir DIR]

The repository's settings come from the stack file (``infra.backups.backup_spec``, rendered by
``components.backups.render_pgbackrest_conf`` into a private temporary folder); its credentials and the encryption
passphrase only from pgBackRest's own environment variables (never a command line or a file left behind).

Every restore first refuses a backup written by a newer pgBackRest than the one installed here (an older reader
may not read a newer repository format), then runs ``pgbackrest verify`` (2.45 exits 0 even when it finds damage,
so its report is read) and refuses a damaged repository; a restore to the latest point then checks that recovery
replayed every WAL segment the repository holds, because PostgreSQL treats the first missing segment as the end of
the WAL and would otherwise stop early without a word. A restored cluster is started privately (its own
configuration ignored, archiving off so it never pushes into the stack's repository, no TCP unless a copy needs it)
to replay and promote it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from components.backups import BackupSpec, render_pgbackrest_conf
from components.compose_stack import DB_NAME, DB_USER
from phasekit.db.connection import DatabaseError, quote_ident, quote_literal

CREDENTIAL_SOURCES = {
    "PGBACKREST_REPO1_S3_KEY": "accessKeyId of `pulumi stack output --show-secrets backupCredentials`",
    "PGBACKREST_REPO1_S3_KEY_SECRET": "secretAccessKey of `pulumi stack output --show-secrets backupCredentials`",
    "PGBACKREST_REPO1_CIPHER_PASS": "output of `pulumi config get --path secrets.BACKUP_PASSPHRASE`",
}
"""pgBackRest reads ``PGBACKREST_<OPTION>`` itself; where each value comes from (``infra/backups.py`` exports
``backupCredentials``; the passphrase is the user's own secret)."""

TIME_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:?\d{2})?")
"""--time: a moment with its UTC offset, as PostgreSQL's ``recovery_target_time`` reads it."""
RECOVERY_TIMEOUT = 3600.0
"""Seconds a restored cluster may take to replay its WAL and promote (a large database replays for a while)."""
STOP_TIMEOUT = 60.0
TOOL_TIMEOUT = 3600.0
EXIT_FAILED = 1


# --------------------------------------------------------------------------------------------
# Command line


def _repository_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="the stack whose backups to use (its Pulumi.<stack>.yaml)")
    parser.add_argument("--project-dir", metavar="DIR", help="folder holding Pulumi.yaml (default: the current "
                                                             "folder or a parent)")
    parser.add_argument("--pg-bin", metavar="DIR", help="PostgreSQL server programs of the backup's major version "
                                                        "(default /usr/lib/postgresql/<major>/bin)")
    parser.add_argument("--repo-endpoint", metavar="HOST[:PORT]", help="another S3 endpoint for the repository "
                                                                      "(default: the stack's R2 endpoint)")
    parser.add_argument("--repo-ca-file", metavar="FILE", help="CA certificates that sign the endpoint's "
                                                              "certificate (default: the system's)")


CREDENTIALS_HELP = """\
credentials (pgBackRest's own environment variables, never a command line):
  PGBACKREST_REPO1_S3_KEY         accessKeyId of `pulumi stack output --show-secrets backupCredentials`
  PGBACKREST_REPO1_S3_KEY_SECRET  secretAccessKey of the same output
  PGBACKREST_REPO1_CIPHER_PASS    `pulumi config get --path secrets.BACKUP_PASSPHRASE`

exit status: 0 ok; 1 a refusal, a damaged repository or a failed check; 2 a usage error"""


def _describe(parser: argparse.ArgumentParser, description: str) -> None:
    parser.description = description
    parser.epilog = CREDENTIALS_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    """``phasekit db restore``'s options."""
    _describe(parser, "Restore the stack's database from its pgBackRest repository to a moment or the latest point:\n"
                      "verify the repository, restore, replay and promote; into an empty folder, or copied and\n"
                      "verified into an empty database. See docs/backups.md.")
    _repository_arguments(parser)
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--time", metavar="'YYYY-MM-DD HH:MM:SS+00'", help="restore to this moment (with its UTC "
                                                                        "offset): every transaction committed "
                                                                        "before it, none after")
    when.add_argument("--latest", action="store_true", help="restore to the newest archived WAL")
    when.add_argument("--logical", action="store_true", help="restore phase 3's logical copy (logical/<stamp>"
                                                             ".dump.enc, the newest unless --object) into --to-url "
                                                             "with pg_restore (phasekit/db/logical.py)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-dir", metavar="DIR", help="an empty folder that becomes the restored data directory")
    where.add_argument("--to-url", metavar="URL", help="an empty database (postgresql://USER@HOST:PORT/DBNAME, "
                                                       "password in PHASEKIT_TARGET_PASSWORD or PGPASSFILE) that "
                                                       "receives a verified copy")
    parser.add_argument("--database", default=DB_NAME, help=f"the database copied with --to-url (default {DB_NAME})")
    parser.add_argument("--scratch-dir", metavar="DIR", help="where --to-url restores before copying (default: "
                                                             "the system's temporary folder)")
    parser.add_argument("--object", metavar="logical/<stamp>.dump.enc", help="with --logical: this copy instead "
                                                                             "of the newest")
    parser.add_argument("--allow-non-empty", action="store_true", help="with --logical: restore over a database "
                                                                       "that already holds objects (pg_restore "
                                                                       "--clean --if-exists)")


def add_drill_arguments(parser: argparse.ArgumentParser) -> None:
    """``phasekit db drill``'s options."""
    _describe(parser, "Prove the latest backup restores: verify the repository, restore into a scratch folder,\n"
                      "replay every WAL segment, read every table, run pg_amcheck, delete the scratch copy.")
    _repository_arguments(parser)
    parser.add_argument("--scratch-dir", metavar="DIR", help="where the drill restores (default: the system's "
                                                             "temporary folder)")


def run_restore(ns: argparse.Namespace, out: TextIO) -> int:
    """``phasekit db restore``: 0 when the database is restored; DatabaseError (exit 1) otherwise."""
    if not ns.logical and (ns.object is not None or ns.allow_non_empty):
        raise DatabaseError("--object and --allow-non-empty go with --logical only")
    if ns.logical:
        return _run_logical_restore(ns, out)
    spec = stack_backup_spec(ns)
    target = None if ns.latest else restore_time(ns.time)
    if ns.to_dir is not None:
        restore_to_dir(spec, Path(ns.to_dir), target, out=out, pg_bin=_path(ns.pg_bin))
    else:
        restore_to_url(spec, ns.to_url, target, out=out, pg_bin=_path(ns.pg_bin), database=ns.database,
                       scratch_parent=_path(ns.scratch_dir))
    return 0


def _run_logical_restore(ns: argparse.Namespace, out: TextIO) -> int:
    from phasekit.db.logical import restore_logical

    if ns.to_url is None:
        raise DatabaseError("--logical restores into a database: use --to-url URL, not --to-dir")
    restore_logical(stack_backup_spec(ns), ns.to_url, out=out, wanted=ns.object,
                    allow_non_empty=ns.allow_non_empty, scratch_parent=_path(ns.scratch_dir))
    return 0


def run_drill(ns: argparse.Namespace, out: TextIO) -> int:
    """``phasekit db drill``: 0 only when every check passed."""
    spec = stack_backup_spec(ns)
    return 0 if drill(spec, out=out, pg_bin=_path(ns.pg_bin), scratch_parent=_path(ns.scratch_dir)) else EXIT_FAILED


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def restore_time(value: str) -> str:
    if not TIME_FORMAT.fullmatch(value):
        raise DatabaseError(f"--time {value!r}: expected 'YYYY-MM-DD HH:MM:SS+00' (a moment with its UTC offset)")
    return value


def stack_backup_spec(ns: argparse.Namespace) -> BackupSpec:
    """The stack's BackupSpec from its stack file, with ``--repo-endpoint``/``--repo-ca-file`` applied."""
    from infra.backups import backup_spec
    from infra.config import load_config
    from infra.errors import ConfigError
    from phasekit.project import check_project_dir, find_project_dir, project_name, stack_file_of, stack_name
    from phasekit.stack_file import read_stack_file

    try:
        project_dir = check_project_dir(Path(ns.project_dir)) if ns.project_dir else find_project_dir(Path.cwd())
        config = load_config(read_stack_file(stack_file_of(ns.stack, project_dir)))
        spec = backup_spec(config, project_name(project_dir), stack_name(ns.stack))
    except ConfigError as error:
        raise DatabaseError(str(error)) from None
    return with_repository_flags(spec, ns.repo_endpoint, ns.repo_ca_file)


def with_repository_flags(spec: BackupSpec, endpoint: str | None, ca_file: str | None) -> BackupSpec:
    if endpoint is not None:
        host, _, port = endpoint.partition(":")
        if not host or "/" in endpoint or (port and not port.isdigit()):
            raise DatabaseError(f"--repo-endpoint {endpoint!r}: expected HOST or HOST:PORT (no scheme, no path)")
        spec = replace(spec, endpoint=host, storage_port=int(port) if port else 443)
    if ca_file is not None:
        if not Path(ca_file).is_file():
            raise DatabaseError(f"--repo-ca-file {ca_file}: no such file")
        spec = replace(spec, ca_file=str(Path(ca_file).resolve()))
    return spec


def missing_credentials(environ: Mapping[str, str]) -> list[str]:
    return [name for name in CREDENTIAL_SOURCES if not environ.get(name)]


def check_credentials(environ: Mapping[str, str]) -> None:
    missing = missing_credentials(environ)
    if missing:
        sources = "; ".join(f"{name} to the {CREDENTIAL_SOURCES[name]}" for name in missing)
        raise DatabaseError(f"missing {', '.join(missing)} in the environment: set {sources} "
                            "(in the project folder, with the stack selected)")


# --------------------------------------------------------------------------------------------
# pgBackRest


@dataclass(frozen=True)
class Repository:
    """pgBackRest pointed at a stack's repository from a private folder (config, logs, locks, spool)."""

    spec: BackupSpec
    folder: Path
    run_as: tuple[str, ...]
    """``runuser -u postgres --`` when running as root (PostgreSQL refuses root; files must be postgres')."""

    @property
    def config(self) -> Path:
        return self.folder / "pgbackrest.conf"

    def run(self, *args: str, pg_path: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = [*self.run_as, _pgbackrest(), f"--config={self.config}", f"--stanza={self.spec.stanza}",
                *([f"--pg1-path={pg_path}"] if pg_path else []), *args]
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=TOOL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise DatabaseError(f"pgbackrest {args[-1]} did not finish within {TOOL_TIMEOUT:g} s") from None

    def checked(self, *args: str, pg_path: Path | None = None) -> str:
        proc = self.run(*args, pg_path=pg_path)
        if proc.returncode != 0:
            raise DatabaseError(f"pgbackrest {args[-1]} failed (exit {proc.returncode}): {_errors(proc)}")
        return proc.stdout


def _pgbackrest() -> str:
    path = shutil.which("pgbackrest")
    if path is None:
        raise DatabaseError("pgbackrest is not installed: install pgBackRest 2.45 or newer (Debian/Ubuntu: "
                            "apt-get install pgbackrest)")
    return path


def _errors(proc: subprocess.CompletedProcess[str]) -> str:
    """pgBackRest's ERROR/WARN lines (its console log), else its last output line."""
    text = f"{proc.stdout}\n{proc.stderr}"
    lines = [" ".join(line.split()) for line in text.splitlines() if re.search(r"\b(ERROR|WARN):", line)]
    if not lines:
        lines = [line.strip() for line in text.splitlines() if line.strip()][-1:]
    return " | ".join(lines) or "no output"


def _run_as() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return (runuser, "-u", "postgres", "--")


def _give_to_runner(run_as: tuple[str, ...], *paths: Path) -> None:
    if run_as:
        for path in paths:
            shutil.chown(path, "postgres", "postgres")


@contextlib.contextmanager
def repository(spec: BackupSpec, pg_path: Path, environ: Mapping[str, str] | None = None) -> Iterator[Repository]:
    """A Repository whose config names ``pg_path`` as the cluster; the folder is removed afterwards."""
    check_credentials(os.environ if environ is None else environ)
    run_as = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="phasekit-pgbackrest-"))
    try:
        for name in ("log", "lock", "spool"):
            (folder / name).mkdir()
        repo = Repository(spec=spec, folder=folder, run_as=run_as)
        repo.config.write_text(render_pgbackrest_conf(
            spec, pg_path=str(pg_path), socket_path=str(folder), spool_path=str(folder / "spool"),
            log_path=str(folder / "log"), lock_path=str(folder / "lock")))
        _give_to_runner(run_as, folder, repo.config, *(folder / name for name in ("log", "lock", "spool")))
        yield repo
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def verify_problems(repo: Repository) -> list[str]:
    """What ``pgbackrest verify`` found wrong (empty: every backup and WAL file is whole). pgBackRest 2.45 exits 0
    after finding damage, so its summary is read: ``status: error`` and the lines under it."""
    proc = repo.run("verify")
    text = f"{proc.stdout}\n{proc.stderr}"
    if proc.returncode != 0:
        return [f"pgbackrest verify failed (exit {proc.returncode}): {_errors(proc)}"]
    if not re.search(r"status: error", text):
        return []
    problems = [" ".join(line.split()) for line in text.splitlines()
                if re.search(r"INFO: (invalid|missing|.*error)|checksum invalid|missing|size invalid|"
                             r"other|status: invalid", line)]
    return problems or ["pgbackrest verify reports status: error"]


def stanza_info(repo: Repository) -> dict:
    """The stanza's entry of ``pgbackrest info --output=json``; refuses a repository without a backup."""
    info = json.loads(repo.checked("--output=json", "info") or "[]")
    stanzas = [entry for entry in info if entry.get("name") == repo.spec.stanza]
    if not stanzas or not stanzas[0].get("backup"):
        raise DatabaseError(f"the repository holds no backup of stanza {repo.spec.stanza} "
                            f"(s3://{repo.spec.bucket}{repo.spec.repo_path} at {repo.spec.endpoint})")
    return stanzas[0]


def archive_max(repo: Repository, stanza: dict | None = None) -> str | None:
    """The newest WAL segment in the repository for the current database (``pgbackrest info``)."""
    stanza = stanza_info(repo) if stanza is None else stanza
    archives = [archive for archive in stanza.get("archive", []) if archive.get("max")]
    return max((archive["max"] for archive in archives), key=_segment_number, default=None)


def installed_pgbackrest_version() -> str:
    """This machine's pgBackRest version (``pgbackrest version`` prints ``pgBackRest 2.45``)."""
    proc = subprocess.run([_pgbackrest(), "version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)
    found = re.fullmatch(r"pgBackRest (\S+)", proc.stdout.strip())
    if proc.returncode != 0 or not found:
        raise DatabaseError(f"cannot read pgBackRest's version from `pgbackrest version`: {proc.stdout.strip()!r}")
    return found.group(1)


def _version_key(version: str) -> tuple[int, ...]:
    """``2.54.1`` -> (2, 54, 1); a suffix such as ``dev`` is ignored (``2.55dev`` -> (2, 55))."""
    found = re.match(r"\d+(\.\d+)*", version)
    if not found:
        raise DatabaseError(f"unreadable pgBackRest version {version!r}")
    return tuple(int(part) for part in found.group(0).split("."))


def backup_to_restore(backups: list[dict], target_time: str | None) -> dict:
    """The backup pgBackRest restores: the newest, or for a time target the newest that stopped before it (the
    newest when none did: pgBackRest then falls back to it too)."""
    if target_time is not None:
        target = datetime.fromisoformat(target_time).timestamp()
        before = [backup for backup in backups if backup["timestamp"]["stop"] <= target]
        if before:
            return max(before, key=lambda backup: backup["timestamp"]["stop"])
    return max(backups, key=lambda backup: backup["timestamp"]["stop"])


def check_reader_version(installed: str, backup: dict) -> None:
    """Refuse a backup written by a newer pgBackRest than ``installed``: pgBackRest reads the repository formats
    of its own and older versions; an older reader may not read a newer repository."""
    written_by = backup["backrest"]["version"]
    if _version_key(written_by) > _version_key(installed):
        raise DatabaseError(
            f"backup {backup['label']} was written by pgBackRest {written_by}, newer than this machine's pgBackRest "
            f"{installed}: an older pgBackRest may not read a newer repository; install pgBackRest {written_by} or "
            "newer (apt.postgresql.org) and run the restore again; nothing was restored")


def _segment_number(segment: str) -> int:
    """Log and segment number of a WAL file name (its last 16 hex digits; the timeline is left out)."""
    return int(segment[8:24], 16)


def restore_backup(repo: Repository, data_dir: Path, target_time: str | None, *, archiving_off: bool) -> str:
    """``pgbackrest restore`` into ``data_dir``; returns the backup set's label."""
    options = ["--type=time", f"--target={target_time}", "--target-action=promote"] if target_time else []
    if archiving_off:
        options.append("--archive-mode=off")
    output = repo.checked(*options, "restore", pg_path=data_dir)
    found = re.search(r"restore backup set ([^\s,]+)", output)
    return found.group(1) if found else "(label not reported)"


def check_empty_dir(path: Path, option: str = "--to-dir") -> None:
    if path.exists() and not path.is_dir():
        raise DatabaseError(f"{option} {path}: not a folder")
    if path.exists() and any(path.iterdir()):
        raise DatabaseError(f"{option} {path}: not empty; restore into an empty folder (nothing is overwritten)")


# --------------------------------------------------------------------------------------------
# The restored cluster, started privately


@dataclass(frozen=True)
class Recovery:
    """What replay reached, from the server's log."""

    stopped: str | None
    """``recovery stopping before commit of transaction N, time T`` (a time target), else None."""
    last_transaction: str | None
    """Time of the last transaction replayed (``last completed transaction was at log time T``)."""
    last_segment: str | None
    """The newest WAL segment restored from the repository."""

    def describe(self) -> str:
        parts = [f"newest committed transaction {self.last_transaction or 'unknown (no transaction replayed)'}"]
        if self.stopped:
            parts.append(self.stopped)
        if self.last_segment:
            parts.append(f"last WAL segment {self.last_segment}")
        return "; ".join(parts)


def recovery_from_log(log: str) -> Recovery:
    stopped = re.findall(r"LOG:\s+(recovery stopping (?:before|after) [^\n]*)", log)
    last = re.findall(r"last completed transaction was at log time ([^\n]+)", log)
    segments = re.findall(r'restored log file "([0-9A-F]{24})" from archive', log)
    return Recovery(stopped=stopped[-1].strip() if stopped else None,
                    last_transaction=last[-1].strip() if last else None,
                    last_segment=max(segments, key=_segment_number) if segments else None)


@dataclass(frozen=True)
class RestoredServer:
    bin_dir: Path
    socket_dir: Path
    port: int
    user: str
    recovery: Recovery

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs ``sql`` sent on psql's stdin, never its command line: statements such as ``ALTER ROLE ... PASSWORD``
        would otherwise show in the process list."""
        argv = [str(self.bin_dir / "psql"), "-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, "-d", database]
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False,
                              env=_client_env(), timeout=TOOL_TIMEOUT)
        if proc.returncode != 0:
            raise DatabaseError(f"restored database {database}: {' '.join(proc.stderr.split())}")
        return proc.stdout.rstrip("\n")


def _client_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PG", "PHASEKIT_")) or key == "PGCONNECT_TIMEOUT"}
    env["PGPASSFILE"] = os.devnull
    return env


def server_bin_dir(data_dir: Path, pg_bin: Path | None) -> Path:
    """``pg_bin`` or /usr/lib/postgresql/<the backup's major>/bin; it must hold ``postgres``."""
    major = (data_dir / "PG_VERSION").read_text().strip()
    bin_dir = pg_bin or Path(f"/usr/lib/postgresql/{major}/bin")
    if not (bin_dir / "postgres").is_file():
        raise DatabaseError(f"no PostgreSQL {major} server programs in {bin_dir}: the backup is of PostgreSQL "
                            f"{major}; install them (Debian: postgresql-{major}) or name them with --pg-bin")
    return bin_dir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def recovered_server(data_dir: Path, bin_dir: Path, folder: Path, *, tcp_password: str | None = None,
                     run_as: tuple[str, ...] = (), keep_wal_for_archiving: bool = False) -> Iterator[RestoredServer]:
    """Start the restored cluster in ``data_dir`` with a configuration of our own (in ``folder``): no hot standby
    (replay needs no settings as large as the source's), the Unix socket in ``folder``, TCP on 127.0.0.1 only when
    ``tcp_password`` is given (password login only), and nothing archived from here: archiving off for a scratch
    copy; with ``keep_wal_for_archiving`` (a restore the user keeps) archive_mode on with no archive_command, so the
    new timeline's history file and segments wait, marked ready, for the server the user starts on it to archive.
    Waits until replay ended and the cluster promoted; a server that stops instead (a target past the end of the
    WAL, a damaged segment) raises DatabaseError with its log. Stopped (fast shutdown) when the block ends."""
    port = _free_port()
    (folder / "postgresql.conf").write_text("# phasekit: settings come from the command line\n")
    (folder / "pg_hba.conf").write_text("local all all trust\n" + (
        "host all all 127.0.0.1/32 scram-sha-256\n" if tcp_password else ""))
    (folder / "pg_ident.conf").write_text("")
    log_path = folder / "server.log"
    _give_to_runner(run_as, folder, *(folder / name for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf")))
    argv = [*run_as, str(bin_dir / "postgres"), "-D", str(data_dir),
            "-c", f"config_file={folder / 'postgresql.conf'}", "-c", f"data_directory={data_dir}",
            "-c", f"hba_file={folder / 'pg_hba.conf'}", "-c", f"ident_file={folder / 'pg_ident.conf'}",
            "-c", f"port={port}", "-c", f"unix_socket_directories={folder}",
            "-c", f"listen_addresses={'127.0.0.1' if tcp_password else ''}",
            *(["-c", "archive_mode=on", "-c", "archive_command="] if keep_wal_for_archiving
              else ["-c", "archive_mode=off"]),
            "-c", "hot_standby=off", "-c", "shared_preload_libraries=",
            "-c", "logging_collector=off", "-c", "password_encryption=scram-sha-256"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_until_promoted(proc, data_dir, log_path)
        recovery = recovery_from_log(log_path.read_text(errors="replace"))
        server = RestoredServer(bin_dir=bin_dir, socket_dir=folder, port=port, user=_superuser(bin_dir, folder, port),
                                recovery=recovery)
        if tcp_password:
            server.psql(f"ALTER ROLE {quote_ident(server.user)} PASSWORD {quote_literal(tcp_password)}")
        yield server
    finally:
        _stop(proc, data_dir)


def _wait_until_promoted(proc: subprocess.Popen[bytes], data_dir: Path, log_path: Path) -> None:
    """Until postmaster.pid says ``ready`` (after replay and promotion: hot standby is off), bounded."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DatabaseError(f"the restored cluster did not start (exit {proc.returncode}): "
                                f"{_log_problem(log_path.read_text(errors='replace'))}")
        with contextlib.suppress(OSError):
            lines = (data_dir / "postmaster.pid").read_text().split("\n")
            if len(lines) > 7 and lines[7].strip() == "ready":
                return
        time.sleep(0.1)
    raise DatabaseError(f"the restored cluster did not finish recovery within {RECOVERY_TIMEOUT:g} s")


def _log_problem(log: str) -> str:
    lines = [" ".join(line.split()) for line in log.splitlines() if re.search(r"\b(FATAL|PANIC|ERROR):", line)]
    return " | ".join(lines[-3:]) or (log.strip().splitlines() or ["no output"])[-1]


def _superuser(bin_dir: Path, socket_dir: Path, port: int) -> str:
    """The role to connect as: the stack's (``app``, the official image's superuser) or ``postgres``."""
    for user in (DB_USER, "postgres"):
        proc = subprocess.run([str(bin_dir / "psql"), "-X", "-A", "-t", "-w", "-h", str(socket_dir), "-p",
                               str(port), "-U", user, "-d", "postgres", "-c", "SELECT rolsuper FROM pg_roles "
                               "WHERE rolname = current_user"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, check=False, env=_client_env(), timeout=60)
        if proc.returncode == 0 and proc.stdout.strip() == "t":
            return user
    raise DatabaseError(f"the restored cluster has no superuser named {DB_USER} or postgres")


def _stop(proc: subprocess.Popen[bytes], data_dir: Path) -> None:
    if proc.poll() is not None:
        return
    pid = proc.pid
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def check_complete(recovery: Recovery, newest_in_repository: str | None) -> None:
    """A restore to the latest point must have replayed the repository's newest WAL segment: PostgreSQL takes
    the first segment it cannot fetch for the end of the WAL, so a hole would otherwise end recovery early."""
    if newest_in_repository is None or recovery.last_segment is None:
        return
    if _segment_number(recovery.last_segment) < _segment_number(newest_in_repository):
        raise DatabaseError(f"WAL segment {next_segment(recovery.last_segment)} is missing from the repository: "
                            f"recovery stopped after {recovery.last_segment} although the repository holds WAL up "
                            f"to {newest_in_repository}; the restore would silently end early")


def next_segment(segment: str, segments_per_log: int = 0x100) -> str:
    """The WAL file after ``segment`` on its timeline (16 MiB segments: 256 per log file number)."""
    log, number = int(segment[8:16], 16), int(segment[16:24], 16) + 1
    if number == segments_per_log:
        log, number = log + 1, 0
    return f"{segment[:8]}{log:08X}{number:08X}"


# --------------------------------------------------------------------------------------------
# restore and drill


def _describe_repository(spec: BackupSpec) -> str:
    port = "" if spec.storage_port == 443 else f":{spec.storage_port}"
    return f"stanza {spec.stanza} in s3://{spec.bucket}{spec.repo_path} at {spec.endpoint}{port}"


def _checked_restore(repo: Repository, data_dir: Path, target_time: str | None, out: TextIO, *,
                     archiving_off: bool) -> tuple[str, str | None]:
    """reader version check, verify, then restore; returns (backup label, the repository's newest WAL segment)."""
    stanza = stanza_info(repo)
    check_reader_version(installed_pgbackrest_version(), backup_to_restore(stanza["backup"], target_time))
    problems = verify_problems(repo)
    if problems:
        raise DatabaseError("the repository is damaged, nothing was restored: " + " | ".join(problems))
    out.write("verify: ok (every backup and WAL file matches its checksum)\n")
    newest = archive_max(repo, stanza)
    label = restore_backup(repo, data_dir, target_time, archiving_off=archiving_off)
    out.write(f"restored backup set {label} into {data_dir}, target: {target_time or 'latest'}\n")
    return label, newest


def restore_to_dir(spec: BackupSpec, data_dir: Path, target_time: str | None, *, out: TextIO,
                   pg_bin: Path | None = None) -> Recovery:
    """Restore into the empty ``data_dir``, replay it to the target and promote it (then stop it)."""
    check_credentials(os.environ)
    check_empty_dir(data_dir)
    out.write(f"restore: {_describe_repository(spec)}\n")
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    with repository(spec, data_dir) as repo:
        _give_to_runner(repo.run_as, data_dir)
        try:
            _, newest = _checked_restore(repo, data_dir, target_time, out, archiving_off=False)
            bin_dir = server_bin_dir(data_dir, pg_bin)
            with recovered_server(data_dir, bin_dir, repo.folder, run_as=repo.run_as,
                                  keep_wal_for_archiving=True) as server:
                recovery = server.recovery
            if target_time is None:
                check_complete(recovery, newest)
        except DatabaseError as error:
            # Whatever landed in the folder is not the database asked for: it must not be mistaken for it.
            _empty(data_dir)
            raise DatabaseError(f"{error} ({data_dir} was emptied again)") from None
    out.write(f"recovery reached: {recovery.describe()}\n")
    out.write(f"restore: ok; {data_dir} is a promoted data directory (PostgreSQL {bin_dir.parent.name})\n")
    return recovery


def restore_to_url(spec: BackupSpec, url: str, target_time: str | None, *, out: TextIO, pg_bin: Path | None = None,
                   database: str = DB_NAME, scratch_parent: Path | None = None) -> None:
    """Restore into a scratch folder, start it, copy ``database`` to ``url`` with the migration (which verifies
    both sides), then stop and delete the scratch cluster."""
    from phasekit.db.connection import PASSWORD_VARIABLES, endpoint
    from phasekit.db.migrate import migrate_database

    check_credentials(os.environ)
    endpoint("target", url)  # refuse a password in the URL before any work
    out.write(f"restore: {_describe_repository(spec)}\n")
    with _scratch_dir(scratch_parent) as scratch, repository(spec, scratch / "data") as repo:
        data_dir = scratch / "data"
        data_dir.mkdir(mode=0o700)
        _give_to_runner(repo.run_as, scratch, data_dir)
        _, newest = _checked_restore(repo, data_dir, target_time, out, archiving_off=True)
        password = os.urandom(24).hex()
        with recovered_server(data_dir, server_bin_dir(data_dir, pg_bin), repo.folder, tcp_password=password,
                              run_as=repo.run_as) as server:
            if target_time is None:
                check_complete(server.recovery, newest)
            out.write(f"recovery reached: {server.recovery.describe()}\n")
            source = f"postgresql://{server.user}@127.0.0.1:{server.port}/{database}"
            with _environment(PASSWORD_VARIABLES["source"], password):
                report = migrate_database(source, url, freeze=False, out=out)
        if not report.ok:
            raise DatabaseError(f"the copy to {url} differs from the restored database (see above)")
    out.write(f"restore: ok; {database} copied to {url} and verified\n")


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@contextlib.contextmanager
def _scratch_dir(parent: Path | None) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="phasekit-restore-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


TABLES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text, c.relispopulated
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND NOT c.relispartition
ORDER BY 1
"""


def read_every_table(server: RestoredServer) -> tuple[int, int, list[str]]:
    """Read every row of every table (each row cast to text, so TOAST is read too) in every database that
    accepts connections; returns (tables, rows, problems)."""
    databases = server.psql("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
                            "ORDER BY 1").splitlines()
    tables = rows = 0
    problems: list[str] = []
    for database in databases:
        for line in server.psql(TABLES_SQL, database).splitlines():
            name, kind, populated = line.split("|")
            if kind == "m" and populated != "t":
                continue
            try:
                count = server.psql(f"SELECT count(*), sum(length(t::text)) FROM {name} t", database).split("|")[0]
            except DatabaseError as error:
                problems.append(f"{database}.{name}: {error}")
                continue
            tables += 1
            rows += int(count)
    return tables, rows, problems


def amcheck(server: RestoredServer) -> tuple[bool | None, str]:
    """``pg_amcheck --all --install-missing`` (PostgreSQL >= 14): (True, note) clean, (False, its report) damage,
    (None, why) when it is not available."""
    program = server.bin_dir / "pg_amcheck"
    if not program.is_file():
        return None, f"skipped: no pg_amcheck in {server.bin_dir} (PostgreSQL 14 or newer has it)"
    proc = subprocess.run([str(program), "-h", str(server.socket_dir), "-p", str(server.port), "-U", server.user,
                           "--all", "--install-missing"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=False, env=_client_env(), timeout=TOOL_TIMEOUT)
    if proc.returncode == 0:
        return True, "ok (pg_amcheck: heap and B-tree indexes of every database)"
    if "could not open extension control file" in proc.stderr:  # contrib's amcheck is not installed
        return None, f"skipped: the amcheck extension is not installed ({' '.join(proc.stderr.split())[:200]})"
    return False, " | ".join(" ".join(line.split()) for line in (proc.stdout + proc.stderr).splitlines()[:10])


def drill(spec: BackupSpec, *, out: TextIO, pg_bin: Path | None = None, scratch_parent: Path | None = None) -> bool:
    """verify the repository, restore the latest point into a scratch cluster, read every table, amcheck it;
    prints a short report and returns True only when every check passed. The scratch cluster is deleted."""
    check_credentials(os.environ)
    out.write(f"drill: {_describe_repository(spec)}\n")
    failures: list[str] = []
    with _scratch_dir(scratch_parent) as scratch, repository(spec, scratch / "data") as repo:
        data_dir = scratch / "data"
        data_dir.mkdir(mode=0o700)
        _give_to_runner(repo.run_as, scratch, data_dir)
        try:
            _, newest = _checked_restore(repo, data_dir, None, out, archiving_off=True)
            with recovered_server(data_dir, server_bin_dir(data_dir, pg_bin), repo.folder,
                                  run_as=repo.run_as) as server:
                check_complete(server.recovery, newest)
                out.write(f"recovery reached: {server.recovery.describe()}\n")
                tables, rows, problems = read_every_table(server)
                failures += problems
                out.write(f"tables: {tables} read, {rows} rows" + (f", {len(problems)} unreadable" if problems
                                                                    else ", all readable") + "\n")
                checked, note = amcheck(server)
                if checked is False:
                    failures.append(f"amcheck: {note}")
                out.write(f"amcheck: {note}\n")
        except DatabaseError as error:
            failures.append(str(error))
    for failure in failures:
        out.write(f"FAILED: {failure}\n")
    out.write("drill: ok\n" if not failures else f"drill: {len(failures)} check(s) failed\n")
    return not failures
