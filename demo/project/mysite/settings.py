"""Settings of the demo project deployed by hgext_envdeploy's demo and tests.

Deliberately minimal: no contrib apps, so that `migrate` stays fast.
"""
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "insecure-placeholder-override-me-in-local-settings"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["bar"]
MIDDLEWARE = []
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"

# Per-host overrides (secrets, database...) go in local_settings.py beside manage.py;
# it is not under version control (see .hgignore). Checking for the file rather than
# catching ImportError keeps a broken local_settings.py from being silently ignored.
# manage.py puts BASE_DIR on sys.path, a WSGI server started elsewhere may not.
if (BASE_DIR / "local_settings.py").exists():
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    from local_settings import *  # noqa: E402,F401,F403
