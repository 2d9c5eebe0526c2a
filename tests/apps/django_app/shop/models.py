"""One table the page writes to, created by the release command's migration."""

from django.db import models


class Visit(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    forwarded_for = models.TextField(blank=True, default="")
    """The X-Forwarded-For header the app received: the visitor's address as the proxies passed it on."""
