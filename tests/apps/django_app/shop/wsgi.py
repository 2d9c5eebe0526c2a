"""The WSGI application gunicorn serves (``gunicorn shop.wsgi``; PORT and WEB_CONCURRENCY are gunicorn's own
environment defaults)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()
