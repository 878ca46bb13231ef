"""A minimal Django project shaped like HeLx appstore, for the smoke test in
tests/appstore/test_django.py: settings with TYCHO_MODE / APPLICATION_BRAND and LOGGING for the
tycho loggers, and a views module that builds its tycho context at import time exactly
as appstore does."""
