"""Django settings, built from the typed configuration (see ``twostep.config``).

Nothing here is meant to be edited: change ``data/config.toml`` or set
``TWOSTEP_*`` environment variables instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from csp.constants import NONE, SELF

from twostep.config import load_config

CONFIG = load_config()
DATA_DIR: Path = CONFIG.data_dir.resolve()
BASE_DIR = Path(__file__).resolve().parent

DEBUG = CONFIG.debug


def _read_secret_key() -> str:
    path = CONFIG.path(CONFIG.secret_key_file)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        # Commands such as `twostep init` run before the key exists;
        # `twostep serve` refuses to start without it (see core.checks).
        return ""


SECRET_KEY = os.environ.get("TWOSTEP_SECRET_KEY") or _read_secret_key()
ENCRYPTION_KEYS_PATH = CONFIG.path(CONFIG.encryption_keys_file)

_public = urlsplit(CONFIG.server.public_url)
ALLOWED_HOSTS = [_public.hostname or "127.0.0.1", "127.0.0.1", "localhost", "[::1]"]
# Names the reverse proxy uses to reach /auth/request, /auth/forward (forward-auth), e.g. a Docker service.
ALLOWED_HOSTS += CONFIG.forward_auth.internal_hosts
CSRF_TRUSTED_ORIGINS = [CONFIG.server.public_url]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "twostep.core",
    "twostep.accounts",
    "twostep.usersessions",
    "twostep.audit",
    "twostep.mfa",
    "twostep.console",
    "twostep.notifications",
    "twostep.api",
    "twostep.forwardauth",
]

MIDDLEWARE = [
    "twostep.core.middleware.DrainRequestBodyMiddleware",
    # Before SecurityMiddleware, which reads X-Forwarded-Proto (see its docstring).
    "twostep.core.middleware.ClientInfoMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before everything that uses the database: an outage answers 503 (see its docstring).
    "twostep.core.middleware.DatabaseOutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "twostep.usersessions.middleware.SessionLifetimeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "twostep.core.middleware.NoStoreMiddleware",
    # Inside the ones above, so that its 400 page gets their headers too.
    "twostep.core.middleware.RefuseNulMiddleware",
    # Last, so its redirects get every header above: a signed-in user who must
    # enrol a second factor reaches only the enrolment pages.
    "twostep.mfa.enforcement.EnrolmentMiddleware",
]

ROOT_URLCONF = "twostep.urls"
WSGI_APPLICATION = "twostep.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "twostep.core.context_processors.twostep",
                "twostep.console.context_processors.console",
            ],
        },
    },
]


def _database() -> dict[str, object]:
    if CONFIG.database.url:
        # libpq's parameters, decoded and checked at config load; everything
        # but the five Django names (sslmode, sslrootcert, ...) goes to psycopg.
        parameters = CONFIG.database.connection_parameters()
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parameters.pop("dbname", ""),
            "USER": parameters.pop("user", ""),
            "PASSWORD": parameters.pop("password", ""),
            "HOST": parameters.pop("host", ""),
            "PORT": parameters.pop("port", ""),
            # Persistent connections: one per worker thread, checked before reuse.
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
            # A connect_timeout in the URL wins over the default.
            "OPTIONS": {"connect_timeout": 5, **parameters},
            "TEST": {"NAME": os.environ.get("TWOSTEP_TEST_DATABASE_NAME") or None},
        }
    return {
        "ENGINE": "twostep.core.sqlite",
        "NAME": str(CONFIG.path(CONFIG.database.sqlite_path)),
        # One connection per worker thread, kept: opening one per request
        # doubled the cost of the cheapest requests.
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/account"
PASSWORD_HASHERS = [
    "twostep.accounts.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "twostep.accounts.validators.MaximumLengthValidator"},
]

# Sessions live in the database (one table that every instance shares) and
# record who, from where and when; see twostep.usersessions.
SESSION_ENGINE = "twostep.usersessions.backend"
SESSION_COOKIE_AGE = CONFIG.security.session_absolute_timeout
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CONFIG.server.https
SESSION_COOKIE_NAME = "__Host-twostep_session" if CONFIG.server.https else "twostep_session"
# Forward-auth on sub-domains: the session cookie is shared with a parent
# domain.  A __Host- cookie cannot carry a Domain, so it becomes __Secure-.
# The CSRF cookie stays host-only: only twostep's own forms use it.
SESSION_COOKIE_DOMAIN = CONFIG.forward_auth.cookie_domain_for(_public.hostname or "")
if SESSION_COOKIE_DOMAIN and CONFIG.server.https:
    SESSION_COOKIE_NAME = "__Secure-twostep_session"
CSRF_COOKIE_SECURE = CONFIG.server.https
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_NAME = "__Host-twostep_csrf" if CONFIG.server.https else "twostep_csrf"
CSRF_FAILURE_VIEW = "twostep.core.views.csrf_failure"

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_HSTS_SECONDS = 31536000 if CONFIG.server.https else 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if CONFIG.server.trusted_proxies else None
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}
# After sign-in the browser goes back to the protected application it came
# from (forward-auth).  Chromium applies form-action to the redirects that
# follow a form post, so those hosts must be listed (ports vary: any port).
CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] += [
    f"{rule.host}:*" for rule in CONFIG.forward_auth.rules if rule.policy != "deny"
]
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

STATIC_URL = "/static/"
STATIC_ROOT = None
STORAGES = {
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app folders: no collectstatic step at deployment.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"database_outage": {"()": "twostep.core.middleware.DatabaseOutageLogFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": CONFIG.log_level},
    "loggers": {
        # A database outage is logged once, as one line, by DatabaseOutageMiddleware.
        "django.request": {"level": "ERROR", "filters": ["database_outage"]},
        # httpx logs every request's full URL at INFO: an SMS webhook's URL may
        # carry its token in the query string.  twostep logs deliveries itself.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # A request for a host name not in ALLOWED_HOSTS is scanners' noise; its 400 answer is enough.
        "django.security.DisallowedHost": {"level": "CRITICAL"},
    },
}
