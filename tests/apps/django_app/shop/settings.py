"""Settings as a production Django app has them: everything from phasekit's app contract (the environment).

DEBUG off; only ``APP_HOSTNAME`` is served (Django answers 400 to any other Host); plain HTTP is redirected to
https unless the proxy says the visitor used https (``SECURE_PROXY_SSL_HEADER``); the database from
``DATABASE_URL`` (in phase 2, PgBouncer in transaction mode), the visit counter in Redis from ``REDIS_URL``. These
are the settings that made Caddy's old health check (Host ``app:<port>``, no X-Forwarded-Proto) see 400 and 301
instead of 200.
"""

import os
from urllib.parse import unquote, urlsplit

SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = [os.environ["APP_HOSTNAME"]]
SECURE_SSL_REDIRECT = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = ["shop"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
HEALTH_PATH = os.environ.get("HEALTH_PATH", "/healthz")
BROKEN_HEALTH = os.environ.get("BROKEN_HEALTH") == "1"
REDIS_URL = os.environ["REDIS_URL"]


def _database(url: str) -> dict:
    """``postgresql://user:password@host:port/name?sslmode=...`` as Django's DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL: not a PostgreSQL URL (scheme {parts.scheme!r})")
    options = dict(pair.split("=", 1) for pair in parts.query.split("&") if pair)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or 5432),
        "OPTIONS": {**options, "connect_timeout": 5},
        # What production apps set behind PgBouncer in transaction mode (phase 2): a server-side cursor lives on one
        # server connection, and the next transaction may get another one from the pool. A key of the DATABASES
        # entry, not a top-level setting (Django 5.2: QuerySet.iterator() reads settings_dict
        # ["DISABLE_SERVER_SIDE_CURSORS"]; docs: ref/databases, "Transaction pooling and server-side cursors").
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }


DATABASES = {"default": _database(os.environ["DATABASE_URL"])}

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "WARNING"}},
}
