"""WSGI entry point: ``gunicorn twostep.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "twostep.settings")

application = get_wsgi_application()

from twostep.core import background  # noqa: E402  (needs the settings above)

# Security notices and housekeeping go out beside the requests, not in them.
background.enable()
