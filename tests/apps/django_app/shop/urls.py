from django.conf import settings
from django.urls import path

from shop import views

urlpatterns = [
    path(settings.HEALTH_PATH.lstrip("/"), views.health),
    path("", views.index),
]
