"""Connection strings of the app contract (``DATABASE_URL``, ``REDIS_URL``), one shape in every phase.

User and password are percent-encoded, so a generated secret with URL-special characters still parses.
"""

from __future__ import annotations

from urllib.parse import quote


def postgres_url(*, user: str, password: str, host: str, database: str, port: int = 5432,
                 sslmode: str | None = None) -> str:
    """``postgresql://user:password@host:port/database`` plus ``?sslmode=`` when TLS is required."""
    query = f"?sslmode={sslmode}" if sslmode else ""
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}{query}"


def redis_url(*, password: str, host: str, port: int = 6379, db: int = 0, tls: bool = False) -> str:
    """``redis://`` (or ``rediss://`` over TLS) with the password as the default user's."""
    scheme = "rediss" if tls else "redis"
    return f"{scheme}://:{quote(password, safe='')}@{host}:{port}/{db}"
