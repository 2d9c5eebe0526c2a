"""The app the rollout benchmark rolls: a WSGI app that answers like a production app behind a proxy.

400 for another Host than ``APP_HOSTNAME``, 301 without ``X-Forwarded-Proto: https``, else 200 with its
``APP_VERSION`` after ``APP_WORK_MS`` of work (so requests are in flight when a rollout stops it). Served by gunicorn,
which finishes requests in flight on SIGTERM, as a container's app server does when Docker stops it.
"""

from __future__ import annotations

import os
import time


def application(environ, start_response):
    if environ.get("HTTP_HOST") != os.environ["APP_HOSTNAME"]:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"bad host\n"]
    if environ.get("HTTP_X_FORWARDED_PROTO") != "https":
        start_response("301 Moved Permanently", [("Location", f"https://{os.environ['APP_HOSTNAME']}/")])
        return [b""]
    time.sleep(int(os.environ.get("APP_WORK_MS", "5")) / 1000)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"version {os.environ.get('APP_VERSION', '0')}\n".encode()]
