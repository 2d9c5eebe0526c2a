"""Backup, restore, migration and recovery-point figures on a generated database, with real servers.

Everything is real and local: PostgreSQL from Debian (``tests/realtools.py``), pgBackRest from Debian with the
configuration phasekit renders (``components/backups.py``), an S3 API server on loopback (moto behind a real Caddy
terminating TLS, ``tests/s3server.py``), ``phasekit db restore``'s and ``phasekit db migrate``'s own functions.
It prints figures and asserts nothing (goals in brackets):

1. backup: a full pgBackRest backup to the S3 server, beside the floor ``pg_dump --dbname app > /dev/null``
   (the time a logical read of the same database takes) [backup <= 1.3x the floor];
2. restore: ``restore_to_dir`` of that backup, until the restored server has replayed and promoted (the
   recovery time);
3. migration: ``migrate_database`` to a second empty server, with its write freeze (the freeze window)
   [<= 60 s for 1 GiB];
4. recovery point: a steady write load (pgbench at a fixed rate) with the default recovery point (5 minutes,
   ``archive_timeout`` 150 s), then every process of the server and of its archiver is killed (the host is gone);
   the newest row a restore of the latest copy holds is compared with the last row committed before the kill
   [<= the configured recovery point].

    .venv/bin/python bench/data_bench.py [--scale 68] [--load-seconds 240] [--rate 20] [--recovery-point 300]

``--scale 68`` makes pgbench's tables about 1 GiB. Needs root or the postgres OS user (the servers run as
``postgres``), and the test tools (``bash scripts/bootstrap.sh --with-test-tools``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.backups import (  # noqa: E402
    BackupSpec,
    postgres_archive_settings,
    render_pgbackrest_conf,
    render_pgbackrest_secrets,
)
from phasekit.db import restore  # noqa: E402
from phasekit.db.migrate import migrate_database  # noqa: E402
from tests.realtools import PostgresServer, running_postgres  # noqa: E402
from tests.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, running_s3  # noqa: E402

BUCKET = "bench-backups"
PASSPHRASE = "bench-passphrase-not-a-secret"
AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
REPOSITORY_ENV = {"PGBACKREST_REPO1_S3_KEY": ACCESS_KEY_ID, "PGBACKREST_REPO1_S3_KEY_SECRET": SECRET_ACCESS_KEY,
                  "PGBACKREST_REPO1_CIPHER_PASS": PASSPHRASE}


class Source:
    """The benchmarked primary: a real server archiving to the S3 server with the rendered configuration."""

    def __init__(self, server: PostgresServer, spec: BackupSpec, conf: Path) -> None:
        self.server, self.spec, self.conf = server, spec, conf

    def sql(self, statement: str, database: str = "app") -> str:
        proc = self.server.psql(statement, dbname=database)
        if proc.returncode != 0:
            raise SystemExit(f"psql failed: {proc.stderr}")
        return proc.stdout.strip()

    def pgbackrest(self, *args: str) -> float:
        return timed([*AS_POSTGRES, "pgbackrest", f"--config={self.conf}", f"--stanza={self.spec.stanza}", *args])

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.server.port}/app"


def timed(argv: list[str], stdout: int = subprocess.PIPE) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout or ''}{proc.stderr}")
    return time.perf_counter() - started


def open_folder(prefix: str) -> Path:
    """A temp folder the postgres OS user can use."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    if AS_POSTGRES:
        shutil.chown(folder, "postgres", "postgres")
    return folder


def start_source(stack: ExitStack, spec: BackupSpec) -> Source:
    folder = open_folder("data-bench-")
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    conf = folder / "pgbackrest.conf"
    settings = {**postgres_archive_settings(spec, config_path=str(conf)), "max_wal_size": "2GB",
                "shared_buffers": "256MB", "maintenance_work_mem": "256MB"}
    server = stack.enter_context(running_postgres("".join(f"{name} = '{value}'\n" for name, value in settings.items())))
    for name in ("spool", "log", "lock"):
        (folder / name).mkdir()
    conf.write_text(render_pgbackrest_conf(spec, pg_path=str(server.data_dir), socket_path=str(server.socket_dir),
                                           spool_path=str(folder / "spool"), log_path=str(folder / "log"),
                                           lock_path=str(folder / "lock"), pg_user="postgres", pg_port=server.port)
                    + render_pgbackrest_secrets(access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY,
                                                cipher_pass=PASSPHRASE))
    conf.chmod(0o600)
    if AS_POSTGRES:
        for path in (conf, *(folder / name for name in ("spool", "log", "lock"))):
            shutil.chown(path, "postgres", "postgres")
    source = Source(server, spec, conf)
    source.sql("CREATE DATABASE app", "postgres")
    source.pgbackrest("stanza-create")
    return source


def generate(source: Source, scale: int) -> str:
    bin_dir = source.server.bin_dir
    timed([str(bin_dir / "pgbench"), "--initialize", "--quiet", f"--scale={scale}", "--host=127.0.0.1",
           f"--port={source.server.port}", "--username=postgres", "app"])
    return source.sql("SELECT pg_size_pretty(pg_database_size('app'))")


def dump_floor(source: Source) -> float:
    return timed([str(source.server.bin_dir / "pg_dump"), "--host=127.0.0.1", f"--port={source.server.port}",
                  "--username=postgres", "--dbname=app"], stdout=subprocess.DEVNULL)


def restore_seconds(spec: BackupSpec) -> float:
    folder = open_folder("data-bench-restore-")
    try:
        started = time.perf_counter()
        restore.restore_to_dir(spec, folder / "data", None, out=io.StringIO())
        return time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def freeze_seconds(source: Source) -> tuple[float, float]:
    """(freeze window, whole migration) of a migration to a fresh empty server; the source is unfrozen after."""
    with running_postgres("max_wal_size = '2GB'\nmaintenance_work_mem = '256MB'\n") as target:
        target.admin("CREATE DATABASE app")
        started = time.perf_counter()
        report = migrate_database(source.url, f"postgresql://postgres@127.0.0.1:{target.port}/app",
                                  out=io.StringIO(), jobs=2)
        elapsed = time.perf_counter() - started
    source.sql("ALTER DATABASE app RESET default_transaction_read_only", "postgres")
    if not report.ok:
        raise SystemExit(f"migration found differences: {report.differences}")
    return report.freeze_seconds or 0.0, elapsed


def achieved_recovery_point(source: Source, load_seconds: int, rate: int) -> float:
    """Seconds of committed writes a restore of the latest copy loses when the host dies under load."""
    source.sql("CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    script = Path(open_folder("data-bench-load-")) / "tick.sql"
    script.write_text("INSERT INTO ticks DEFAULT VALUES;\n")
    subprocess.run([str(source.server.bin_dir / "pgbench"), "--no-vacuum", f"--file={script}",
                    f"--rate={rate}", f"--time={load_seconds}", "--host=127.0.0.1",
                    f"--port={source.server.port}", "--username=postgres", "app"],
                   capture_output=True, check=True)
    last_committed = datetime.fromisoformat(source.sql("SELECT max(at) FROM ticks"))
    kill_host(source)
    folder = open_folder("data-bench-latest-")
    try:
        restore.restore_to_dir(source.spec, folder / "data", None, out=io.StringIO())
        bin_dir = restore.server_bin_dir(folder / "data", None)
        run = open_folder("data-bench-run-")
        with restore.recovered_server(folder / "data", bin_dir, run, run_as=tuple(AS_POSTGRES)) as restored:
            newest = datetime.fromisoformat(restored.psql("SELECT max(at) FROM ticks", "app").strip())
        shutil.rmtree(run, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return (last_committed - newest).total_seconds()


def kill_host(source: Source) -> None:
    """SIGKILL the server's whole process group (postmaster, backends, archiver) and every pgBackRest process of
    its configuration (the async archiver detaches): nothing more leaves the host."""
    postmaster = int((source.server.data_dir / "postmaster.pid").read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgid(postmaster), signal.SIGKILL)
    pids = subprocess.run(["pgrep", "-f", str(source.conf)], capture_output=True, text=True).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=68, help="pgbench scale (68: about 1 GiB)")
    parser.add_argument("--load-seconds", type=int, default=240, help="write load before the host is killed")
    parser.add_argument("--rate", type=int, default=20, help="write transactions per second during the load")
    parser.add_argument("--recovery-point", type=int, default=300, help="configured recovery point, seconds")
    args = parser.parse_args()
    for name, value in REPOSITORY_ENV.items():
        os.environ[name] = value
    with ExitStack() as stack:
        s3 = stack.enter_context(running_s3(BUCKET))
        spec = BackupSpec(bucket=BUCKET, endpoint=s3.endpoint_host, storage_port=s3.port, ca_file=s3.ca_file,
                          recovery_point_seconds=args.recovery_point)
        source = start_source(stack, spec)
        size = generate(source, args.scale)
        print(f"database: pgbench scale {args.scale}, {size}")
        floor = dump_floor(source)
        backup = source.pgbackrest("--type=full", "backup")
        print(f"backup:   pgBackRest full {backup:6.1f} s   floor pg_dump > /dev/null {floor:6.1f} s   "
              f"ratio {backup / floor:.2f} x   [goal <= 1.3 x]")
        print(f"restore:  {restore_seconds(spec):6.1f} s to a promoted server (recovery time)")
        freeze, whole = freeze_seconds(source)
        print(f"migrate:  write freeze {freeze:6.1f} s (whole migration {whole:.1f} s)   [goal <= 60 s]")
        lost = achieved_recovery_point(source, args.load_seconds, args.rate)
        print(f"recovery point: {lost:6.1f} s of writes lost after killing the host under {args.rate} tps "
              f"(configured {args.recovery_point} s, archive_timeout {spec.archive_timeout_seconds} s)   "
              f"[goal <= {args.recovery_point} s]")


if __name__ == "__main__":
    main()
