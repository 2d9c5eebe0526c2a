"""PostgreSQL endpoints named by URLs that carry no password, and the one way a password reaches a child tool.

A password on a command line is readable by every local user (``/proc/<pid>/cmdline``, ``ps``); one in a URL ends
up in shell history and logs. So a URL with a password is refused, and passwords come from the user's own
PGPASSFILE / ``~/.pgpass`` or from ``PHASEKIT_SOURCE_PASSWORD`` / ``PHASEKIT_TARGET_PASSWORD``. They reach
``psql``, ``pg_dump`` and ``pg_restore`` only through a private temporary password file (mode 0600, deleted
afterwards) named by ``PGPASSFILE`` in the child's environment; ``PGPASSWORD`` is removed from the children's
environment so the password file is the only channel (libpq: "Environment Variables" and "The Password File",
https://www.postgresql.org/docs/15/libpq-pgpass.html: ``hostname:port:database:username:password``, with ``:``
and ``\\`` escaped by a backslash, ignored unless the file's mode is 0600 or stricter).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

PASSWORD_VARIABLES = {"source": "PHASEKIT_SOURCE_PASSWORD", "target": "PHASEKIT_TARGET_PASSWORD"}
APPLICATION_NAME = "phasekit-db"

# The same output settings on both sides, so the text of a value (hence its checksum) depends on the value
# alone: float digits, date and interval styles, time zone, bytea encoding, money's locale. search_path is
# pinned so names in view definitions and reg* values print the same way.
SESSION_SETTINGS = {
    "extra_float_digits": "3",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "search_path": "pg_catalog",
    "jit": "off",
    "statement_timeout": "0",
}


class DatabaseError(Exception):
    """A refusal or a failed tool, with a one-line message for the user."""


@dataclass(frozen=True)
class Endpoint:
    """One side of a migration: its role (``source`` or ``target``) and its password-free URL."""

    role: str
    url: str
    host: str
    port: int
    dbname: str
    user: str

    @property
    def label(self) -> str:
        return f"{self.role} {self.host}:{self.port}/{self.dbname}"


def refuse_embedded_password(flag: str, parts: SplitResult, where: str) -> None:
    """Every URL flag refuses a password in the URL the same way: it would show in ps and the shell history."""
    if parts.password is not None:
        raise DatabaseError(f"{flag}: the URL holds a password, which would show in the process list and the shell "
                            f"history; remove it and put the password in {where}")


def endpoint(role: str, url: str) -> Endpoint:
    """Parse ``postgresql://user@host:port/dbname[?params]``; a URL with a password is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseError(f"--{role} {_redacted(url)}: not a PostgreSQL URL; expected "
                            "postgresql://USER@HOST:PORT/DBNAME")
    refuse_embedded_password(f"--{role}", parts, f"{PASSWORD_VARIABLES[role]} or in your PGPASSFILE (~/.pgpass)")
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname or not parts.username:
        raise DatabaseError(f"--{role} {url}: name the user, host and database: postgresql://USER@HOST:PORT/DBNAME")
    return Endpoint(role=role, url=url, host=parts.hostname, port=parts.port or 5432, dbname=dbname,
                    user=unquote(parts.username))


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _user_passfile(environ: Mapping[str, str]) -> Path | None:
    named = environ.get("PGPASSFILE")
    path = Path(named) if named else Path.home() / ".pgpass"
    return path if path.is_file() else None


@dataclass(frozen=True)
class Session:
    """How every child tool of one run is started: the environment that names the private password file."""

    environment: dict[str, str]

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """A client tool (``pg_dump``, ``pg_restore``) with this session's environment, its output captured."""
        return subprocess.run(argv, env=self.environment, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              check=False)

    def psql(self, target: Endpoint, sql: str, *, read_write: bool = False) -> str:
        """Run ``sql`` (one statement, or several in one implicit transaction) with ``SESSION_SETTINGS`` and
        return psql's unaligned, tuples-only output; a failure raises ``DatabaseError`` with psql's message.
        ``read_write`` starts the session read-write even in a frozen database (startup options outrank a
        database's own settings), as lifting or checking the freeze must."""
        argv = [tool("psql"), "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "--dbname", target.url,
                "-c", sql]
        env = {**self.environment, "PGOPTIONS": _options(read_write)}
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            message = " ".join((proc.stderr or proc.stdout).split()) or f"exit {proc.returncode}"
            raise DatabaseError(f"{target.label}: {message}")
        return proc.stdout.rstrip("\n")

    def rows(self, target: Endpoint, sql: str) -> list[Any]:
        """The rows of ``sql`` as JSON values (each row a JSON object of its columns)."""
        text = self.psql(target, f"SELECT coalesce(json_agg(row_to_json(q)), '[]') FROM ({sql}) q")
        return json.loads(text)


def _options(read_write: bool) -> str:
    settings = {**SESSION_SETTINGS, **({"default_transaction_read_only": "off"} if read_write else {})}
    # PGOPTIONS words are separated by spaces; "ISO, YMD" is written "ISO,YMD" (the server accepts both).
    return " ".join(f"-c {name}={value.replace(' ', '')}" for name, value in settings.items())


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DatabaseError(f"{name} is not installed: install the PostgreSQL client (Debian: postgresql-client)")
    return path


@contextlib.contextmanager
def session(*endpoints: Endpoint, environ: Mapping[str, str] | None = None) -> Iterator[Session]:
    """A ``Session`` whose children find passwords in a private temporary PGPASSFILE: one line per endpoint
    whose ``PHASEKIT_<ROLE>_PASSWORD`` is set, then the user's own password file. The file is 0600 in a 0700
    directory and deleted when the block ends, however it ends."""
    environ = os.environ if environ is None else environ
    lines = []
    for end in endpoints:
        password = environ.get(PASSWORD_VARIABLES.get(end.role, ""))
        if password:
            fields = [end.host, str(end.port), end.dbname, end.user, password]
            lines.append(":".join(_pgpass_field(value) for value in fields))
    user_file = _user_passfile(environ)
    if user_file is not None:
        with contextlib.suppress(OSError):
            lines.append(user_file.read_text().rstrip("\n"))
    child_env = {key: value for key, value in environ.items()
                 if key not in ("PGPASSWORD", "PGPASSFILE", "PGOPTIONS") and key not in PASSWORD_VARIABLES.values()
                 and not key.startswith("PHASEKIT_REDIS_")}
    child_env.setdefault("PGAPPNAME", APPLICATION_NAME)
    child_env.setdefault("PGCONNECT_TIMEOUT", "15")
    with tempfile.TemporaryDirectory(prefix="phasekit-db-") as folder:
        passfile = Path(folder) / "pgpass"
        descriptor = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
        child_env["PGPASSFILE"] = str(passfile)
        yield Session(environment=child_env)


def store_password(url: str, *, host: str, port: int, environ: Mapping[str, str] | None = None) -> str:
    """Keep ``url``'s password in the user's password file (PGPASSFILE, else ~/.pgpass; created 0600, a line
    for the same host, port, database and user replaced) for ``host``:``port``, and return the URL pointing
    there without its password. The URL arrives on stdin, so the password is on no command line."""
    environ = os.environ if environ is None else environ
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or parts.password is None or not parts.username:
        raise DatabaseError("pgpass: stdin holds no postgresql://USER:PASSWORD@HOST/DBNAME URL")
    user, dbname = unquote(parts.username), unquote(parts.path.lstrip("/"))
    key = ":".join(_pgpass_field(value) for value in (host, str(port), dbname, user))
    path = Path(environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    kept = [line for line in (path.read_text().splitlines() if path.is_file() else [])
            if not line.startswith(key + ":")]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # libpq ignores a password file others can read
    with os.fdopen(descriptor, "w") as handle:
        handle.write("".join(f"{line}\n" for line in [*kept, f"{key}:{_pgpass_field(unquote(parts.password))}"]))
    netloc = f"{parts.username}@{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'
