"""Settings of the django-scim2 service provider the integration tests start (tests/it/django_scim.rs).

Only configuration of the third-party package: an SQLite file, the package's middleware and
URLs, and the user and group models it documents (scimapp/models.py). Loopback only.
"""
import os

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django_scim",
    "scimapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_scim.middleware.SCIMAuthCheckMiddleware",
]
ROOT_URLCONF = "urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["SCIM_DB"]}}
AUTH_USER_MODEL = "scimapp.User"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SCIM_SERVICE_PROVIDER = {
    "NETLOC": "127.0.0.1",
    "SCHEME": "http",
    "AUTHENTICATION_SCHEMES": [
        {"type": "oauthbearertoken", "name": "OAuth Bearer Token", "description": "loopback test server"}
    ],
    "GROUP_MODEL": "scimapp.models.ScimGroup",
    "GET_IS_AUTHENTICATED_PREDICATE": "scimapp.models.anyone",
    "SERVICE_PROVIDER_CONFIG_MODEL": (
        "scimapp.models.WithoutPatch" if os.environ.get("SCIM_NO_PATCH") else "django_scim.models.SCIMServiceProviderConfig"
    ),
}
LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.server": {"handlers": ["stderr"], "level": "INFO"}},
}
