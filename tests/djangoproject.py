"""Helpers around the demo Django project (demo/project), the application the tests deploy.

Plain functions, usable from tests and fixtures alike.
"""
import contextlib
import os
import pathlib
import re
import shutil
import sqlite3

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_PROJECT = os.path.join(PROJECT_ROOT, "demo", "project")

# Files a run of the project leaves behind; the same ones its .hgignore lists.
_NOT_COPIED = shutil.ignore_patterns("db.sqlite3", "*.pyc", "__pycache__", "local_settings.py")

_MIGRATION_FILE = re.compile(r"^(\d{4})_\w+\.py$")


def copy_project(dest):
    """Copy the demo project's files directly into dest (created if missing; may exist)."""
    shutil.copytree(DEMO_PROJECT, dest, ignore=_NOT_COPIED, dirs_exist_ok=True)
    return dest


def _migrations_dir(project_dir):
    return os.path.join(project_dir, "bar", "migrations")


def _previous_migration(project_dir, number):
    """Name of the existing migration with the highest number below `number`."""
    found = {}
    for filename in os.listdir(_migrations_dir(project_dir)):
        match = _MIGRATION_FILE.match(filename)
        if match:
            found[int(match.group(1))] = filename[: -len(".py")]
    if number in found:
        raise ValueError(f"migration {found[number]} already exists in {project_dir}")
    earlier = [n for n in found if n < number]
    if not earlier:
        raise ValueError(f"no migration before {number:04d} in {project_dir}")
    return found[max(earlier)]


_FIELD_MIGRATION = '''\
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bar", "{previous}")]

    operations = [
        migrations.AddField(
            model_name="bar",
            name="{field}",
            field=models.IntegerField(null=True),
        ),
    ]
'''

_IRREVERSIBLE_MIGRATION = '''\
from django.db import migrations


def forward(apps, schema_editor):
    """Does nothing; having no reverse function makes unapplying raise IrreversibleError."""


class Migration(migrations.Migration):
    dependencies = [("bar", "{previous}")]

    operations = [migrations.RunPython(forward)]
'''

_FAILING_MIGRATION = '''\
from django.db import migrations


def forward(apps, schema_editor):
    raise RuntimeError("migration {number:04d} failed on purpose")


class Migration(migrations.Migration):
    dependencies = [("bar", "{previous}")]

    operations = [migrations.RunPython(forward)]
'''


def add_migration(project_dir, number, kind="field"):
    """Write bar/migrations/NNNN_<name>.py after the highest-numbered earlier migration.

    kind "field": adds the nullable field fNNNN to Bar (reversible) and to models.py;
    "irreversible": a RunPython without reverse (unapplying raises IrreversibleError);
    "failing": a RunPython raising RuntimeError("migration NNNN failed on purpose").
    Returns the migration name, e.g. "0004_bar_f0004".
    """
    previous = _previous_migration(project_dir, number)
    field = f"f{number:04d}"
    if kind == "field":
        name, template = f"{number:04d}_bar_{field}", _FIELD_MIGRATION
        # Keep models.py in step with the migrations (Bar is the file's last class).
        with open(os.path.join(project_dir, "bar", "models.py"), "a") as models_py:
            models_py.write(f"    {field} = models.IntegerField(null=True)\n")
    elif kind == "irreversible":
        name, template = f"{number:04d}_irreversible", _IRREVERSIBLE_MIGRATION
    elif kind == "failing":
        name, template = f"{number:04d}_failing", _FAILING_MIGRATION
    else:
        raise ValueError(f"unknown migration kind {kind!r}")
    with open(os.path.join(_migrations_dir(project_dir), name + ".py"), "w") as f:
        f.write(template.format(previous=previous, field=field, number=number))
    return name


def applied_migrations(db_path):
    """(app, name) of the migrations recorded in the SQLite database, in the order applied.

    Empty if the database or its django_migrations table does not exist.
    """
    if not os.path.exists(db_path):
        return []
    # Read-only, so that looking never creates or locks the file for writing.
    uri = pathlib.Path(db_path).resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        try:
            rows = db.execute("SELECT app, name FROM django_migrations ORDER BY id").fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            return []
    return [tuple(row) for row in rows]


_REVISION_MODULE = '''\
"""Which revision this worker's code came from: read once, when the worker starts
(mysite/wsgi.py imports it), so it stays what the worker imported, whatever the
working copy holds later."""
import time
from pathlib import Path

from django.http import HttpResponse

_DIRSTATE = Path(__file__).resolve().parent.parent / ".hg" / "dirstate"
_V2 = b"dirstate-v2\\n"  # a docket: the parents follow the marker


def _parent():
    data = _DIRSTATE.read_bytes()
    if data.startswith(_V2):
        data = data[len(_V2):]
    return data[:20].hex()


REVISION = _parent()
time.sleep({boot})  # an application that takes its time to start


def revision(request):
    return HttpResponse(REVISION + "\\n", content_type="text/plain")


def health(request):
    {health}
    return HttpResponse(REVISION + "\\n", content_type="text/plain")
'''

_REVISION_URLS = '''
from mysite.revision import health, revision  # noqa: E402

urlpatterns += [path("revision/", revision), path("health/", health)]
'''


def add_revision_views(project_dir, healthy=True, boot=1.0):
    """Give the project /revision/ and /health/: both answer the revision the
    answering worker imported (the working copy's parent when it started); a
    worker takes `boot` seconds to start.  healthy=False: /health/ raises (HTTP
    500).  Called again, it only rewrites the views (the URLs stay)."""
    module = os.path.join(project_dir, "mysite", "revision.py")
    new = not os.path.exists(module)
    health = "pass" if healthy else 'raise RuntimeError("health view broken on purpose")'
    with open(module, "w") as f:
        f.write(_REVISION_MODULE.format(boot=boot, health=health))
    if new:
        with open(os.path.join(project_dir, "mysite", "urls.py"), "a") as f:
            f.write(_REVISION_URLS)
        with open(os.path.join(project_dir, "mysite", "wsgi.py"), "a") as f:
            f.write("\nimport mysite.revision  # noqa: E402,F401  (at start)\n")
