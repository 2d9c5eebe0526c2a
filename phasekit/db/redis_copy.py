"""Redis keys copied with DUMP/RESTORE and compared, for ``phasekit db migrate --redis-source/--redis-target``.

Every key of the URL's database is read with ``SCAN`` and copied with ``DUMP`` + ``PTTL`` and ``RESTORE key ttl
payload`` (https://redis.io/commands/restore/): the serialized value keeps its type and encoding, and the
remaining time to live goes with it (0 = none). ``REPLACE`` is used only with ``--allow-non-empty``; otherwise a
non-empty target is refused before anything is copied. The comparison counts keys on both sides (``DBSIZE``) and
compares each key's ``DUMP`` payload by SHA-256; when two payloads differ, the values themselves (by type, in a
canonical order) decide, because equal values do not always serialise alike (hash-table encodings, and the RDB
version a payload carries).

Redis has no write freeze: keys the app writes during the copy (sessions, cache) show up as differences. Stop
the app's writers (or drain its queues) first; a cache may simply start cold instead of being copied.

Passwords: never in the URL (refused), from ``PHASEKIT_REDIS_SOURCE_PASSWORD`` / ``PHASEKIT_REDIS_TARGET_PASSWORD``,
handed to the ``redis`` client library in this process (no child process, no command line).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

import redis

from phasekit.db.connection import DatabaseError, refuse_embedded_password

PASSWORD_VARIABLES = {"source": "PHASEKIT_REDIS_SOURCE_PASSWORD", "target": "PHASEKIT_REDIS_TARGET_PASSWORD"}
BATCH = 500
"""Keys per pipeline round trip."""


@dataclass(frozen=True)
class RedisEndpoint:
    role: str
    url: str

    def client(self) -> redis.Redis:
        password = os.environ.get(PASSWORD_VARIABLES[self.role]) or None
        return redis.Redis.from_url(self.url, password=password, socket_timeout=30)

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        return f"redis {self.role} {parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def redis_endpoint(role: str, url: str) -> RedisEndpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise DatabaseError(f"--redis-{role} {url}: not a Redis URL; expected redis://HOST:PORT/DB "
                            "(or rediss:// for TLS)")
    refuse_embedded_password(f"--redis-{role}", parts, PASSWORD_VARIABLES[role])
    return RedisEndpoint(role=role, url=url)


def check_redis_target(source: RedisEndpoint, target: RedisEndpoint, *, allow_non_empty: bool) -> None:
    """Both servers answer; the target holds no key unless ``allow_non_empty``."""
    source.client().ping()
    keys = target.client().dbsize()
    if keys and not allow_non_empty:
        raise DatabaseError(f"{target.label} is not empty ({keys} keys); copy into an empty Redis database, or "
                            "pass --allow-non-empty to replace keys of the same name")


def _batches(client: redis.Redis) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in client.scan_iter(count=BATCH):
        batch.append(key)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def copy_redis(source: RedisEndpoint, target: RedisEndpoint, *, allow_non_empty: bool,
               out: TextIO) -> tuple[str, ...]:
    """Copy every key, then compare; returns the differences (empty when both sides hold the same keys)."""
    reader, writer = source.client(), target.client()
    copied = 0
    for keys in _batches(reader):
        fetch = reader.pipeline(transaction=False)
        for key in keys:
            fetch.dump(key)
            fetch.pttl(key)
        answers = fetch.execute()
        store = writer.pipeline(transaction=False)
        for key, payload, ttl in zip(keys, answers[0::2], answers[1::2], strict=True):
            if payload is None:  # expired or deleted since SCAN saw it
                continue
            store.restore(key, max(ttl, 0), payload, replace=allow_non_empty)
            copied += 1
        store.execute()
    differences = compare_redis(reader, writer)
    out.write(f"redis: copied {copied} keys; " + ("no differences\n" if not differences else
                                                   f"{len(differences)} difference(s)\n"))
    return differences


def _digests(client: redis.Redis, keys: list[bytes]) -> list[str | None]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    return [None if payload is None else hashlib.sha256(payload).hexdigest() for payload in pipe.execute()]


def _shown(key: bytes) -> str:
    return repr(key.decode("utf-8", "backslashreplace"))


def compare_redis(source: Any, target: Any) -> tuple[str, ...]:
    """Key counts and each source key's DUMP digest against the target's."""
    differences = []
    source_keys, target_keys = source.dbsize(), target.dbsize()
    if source_keys != target_keys:
        differences.append(f"redis: {source_keys} keys on the source, {target_keys} on the target")
    for keys in _batches(source):
        for key, before, after in zip(keys, _digests(source, keys), _digests(target, keys), strict=True):
            if before is None:
                continue
            if after is None:
                differences.append(f"redis key {_shown(key)}: only on the source")
            elif before != after and _content(source, key) != _content(target, key):
                differences.append(f"redis key {_shown(key)}: different value")
    return tuple(differences)


def _content(client: Any, key: bytes) -> tuple[Any, ...]:
    """The key's type and value in a canonical order. DUMP payloads of equal values can differ: a set or hash
    kept as a hash table serialises in its table's iteration order, which RESTORE does not reproduce (seen with
    Redis 7.0's ``SADD tags x y``). So a differing payload is settled by the value itself."""
    kind = client.type(key).decode()
    readers = {
        "string": lambda: client.get(key),
        "list": lambda: tuple(client.lrange(key, 0, -1)),
        "set": lambda: tuple(sorted(client.smembers(key))),
        "hash": lambda: tuple(sorted(client.hgetall(key).items())),
        "zset": lambda: tuple(client.zrange(key, 0, -1, withscores=True)),
        "stream": lambda: tuple((entry_id, tuple(sorted(fields.items())))
                                for entry_id, fields in client.xrange(key)),
    }
    reader = readers.get(kind)
    return (kind, reader() if reader else client.dump(key))
