"""Django settings for the example app: everything a test may vary comes from the environment.

DJANGOAPP_DB_HOST / _PORT / _NAME / _USER   where `default` connects (the proxy under test)
DJANGOAPP_TAGGING                            sqlcommenter | application_name | none
                                             (read per request from settings.PGTALLY_TAGGING)

DEBUG is on so that `connection.queries` lists every query Django ran: that list is what the
test compares pgtally's figures against.
"""

import os

SECRET_KEY = "pgtally-example-app-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    # DRF's default unauthenticated user is django.contrib.auth's AnonymousUser; no auth table
    # is ever queried (authentication is off below), so no migrations are needed for them.
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "djangoapp",
]

MIDDLEWARE = ["djangoapp.middleware.RequestTaggingMiddleware"]
ROOT_URLCONF = "djangoapp.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("DJANGOAPP_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DJANGOAPP_DB_PORT", "6432"),
        "NAME": os.environ.get("DJANGOAPP_DB_NAME", "pgtally"),
        "USER": os.environ.get("DJANGOAPP_DB_USER", "trust_user"),
        "PASSWORD": "",
        # Django's defaults: autocommit, no ATOMIC_REQUESTS, a new connection per request
        # (CONN_MAX_AGE=0). Read-only endpoints therefore send no BEGIN/COMMIT at all.
        "CONN_MAX_AGE": 0,
        "ATOMIC_REQUESTS": False,
        "OPTIONS": {
            "sslmode": "disable",
            # With the session already in UTC, Django's ensure_timezone() has nothing to do.
            # Otherwise every new connection starts with `SET TIME ZONE 'UTC'`, issued on the
            # raw psycopg2 cursor: Postgres runs it, connection.queries never lists it.
            "options": "-c TimeZone=UTC",
        },
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

REST_FRAMEWORK = {
    # No sessions, no users: a request's queries are only the endpoint's own.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": None,
}

PGTALLY_TAGGING = os.environ.get("DJANGOAPP_TAGGING", "sqlcommenter")

LOGGING_CONFIG = None
