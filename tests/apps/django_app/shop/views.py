"""The health view the rollout and Caddy check, and a page that writes to PostgreSQL and Redis."""

from functools import cache

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from shop.models import Visit


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def health(request):
    """200 while the database answers (counted in Redis); ``BROKEN_HEALTH=1`` answers 500 (a release that must not go live)."""
    if settings.BROKEN_HEALTH:
        return JsonResponse({"status": "broken"}, status=500)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    # Counts the checks that passed, so a test can tell that a checker's request reached this view.
    _redis().incr("phasekit:health_checks")
    return JsonResponse({"status": "ok"})


def index(request):
    forwarded_for = request.headers.get("X-Forwarded-For", "")
    visit = Visit.objects.create(forwarded_for=forwarded_for)
    visits = _redis().incr("phasekit:visits")
    return JsonResponse({"app": "django", "visit_id": visit.id, "visits": visits, "forwarded_for": forwarded_for})
