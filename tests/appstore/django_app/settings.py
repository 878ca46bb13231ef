"""Settings of the appstore-like smoke project (no database, no templates).

As in appstore: TYCHO_MODE is "null" when DEV_PHASE=stub, else "live"; APPLICATION_BRAND
names the registry context; an external registry comes from TYCHO_CONFIG_URL (appstore
joins REGISTRY_REPO and REGISTRY_BRANCH). LOGGING configures the "tycho.client" and
"tycho.kube" loggers (and "tycho.context") the way appstore's settings do, with a
handler that keeps the records in memory so the test can read them.
"""

import os

SECRET_KEY = "django-smoke-test-only"  # noqa: S105 - test project
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "django_app.urls"
INSTALLED_APPS: list = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict = {}
USE_TZ = True

DEV_PHASE = os.environ.get("DEV_PHASE", "local")
TYCHO_MODE = os.environ.get("TYCHO_MODE") or ("null" if DEV_PHASE == "stub" else "live")
APPLICATION_BRAND = os.environ.get("APPLICATION_BRAND", "braini")
TYCHO_CONFIG_URL = os.environ.get("TYCHO_CONFIG_URL", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"memory": {"class": "django_app.logs.MemoryHandler", "formatter": "plain", "level": "DEBUG"}},
    "loggers": {
        "tycho.client": {"handlers": ["memory"], "level": "DEBUG", "propagate": True},
        "tycho.kube": {"handlers": ["memory"], "level": "DEBUG", "propagate": True},
        "tycho.context": {"handlers": ["memory"], "level": "DEBUG", "propagate": True},
    },
}
