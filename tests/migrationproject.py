"""A Django project whose migrations real `makemigrations` wrote, committed in hg.

The demo project (app `bar`) plus an app `foo`, changed commit by commit the way
people change models, each migration written by Django itself: `makemigrations`
for model changes, `makemigrations --empty` then edited for RunPython and RunSQL
(how Django's documentation says to write data migrations).
"""
import os
import subprocess
import sys

from djangoproject import copy_project

PYTHON = sys.executable

_FOO_MODELS = '''\
from django.db import models


class Foo(models.Model):
    title = models.CharField(max_length=50)
'''

_FOO_TAG = '''

class Tag(models.Model):
    label = models.CharField(max_length=20)
'''


def manage(project, *args, input=None):
    proc = subprocess.run([PYTHON, "manage.py", *args], cwd=project, input=input,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"manage.py {args} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def add_foo_app(project):
    """App foo, in INSTALLED_APPS; its models have no migration yet."""
    app = os.path.join(project, "foo")
    os.makedirs(os.path.join(app, "migrations"))
    for name, text in (("__init__.py", ""), ("migrations/__init__.py", ""),
                       ("models.py", _FOO_MODELS)):
        with open(os.path.join(app, name), "w") as f:
            f.write(text)
    with open(os.path.join(project, "mysite", "settings.py"), "a") as f:
        f.write('\nINSTALLED_APPS = INSTALLED_APPS + ["foo"]\n')


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text, (old, path)
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def empty_migration(project, app, name, operations, head="", atomic=None):
    """`makemigrations --empty APP --name NAME`, then its operations written in."""
    manage(project, "makemigrations", "--empty", app, "--name", name)
    migrations = os.path.join(project, app, "migrations")
    (path,) = [os.path.join(migrations, f) for f in os.listdir(migrations)
               if f.endswith(f"_{name}.py")]
    edit(path, "    operations = [\n    ]", f"    operations = [\n{operations}    ]")
    if atomic is not None:
        edit(path, "class Migration(migrations.Migration):\n",
             f"class Migration(migrations.Migration):\n    atomic = {atomic}\n")
    if head:
        edit(path, "\n\nclass Migration", f"\n\n{head}\n\nclass Migration")
    return os.path.basename(path)[:-3]


def build(hgenv, repo):
    """Commit, in an hg repository at `repo`, the project in five steps.

    Returns {step: (node, {app: [migration names added]})}; the steps:
    base      the demo project (bar 0001-0003) and app foo, without migrations
    plain     foo.0001_initial (CreateModel) and bar.0004 (AddField): nothing to flag
    flagged   bar: RunPython without reverse (irreversible), RunSQL with reverse
              and atomic = False (nonatomic), RemoveField (destructive);
              foo: RenameField (destructive), RunPython with reverse_code
    dropped   foo: DeleteModel (destructive), RunSQL without reverse_sql
    custom    bar: an operation Django does not ship (unknown)
    """
    hgenv.hg("init", repo, check=True)
    copy_project(repo)
    add_foo_app(str(repo))
    project = str(repo)
    steps = {}

    def commit(step, message):
        hgenv.hg("commit", "-q", "-A", "-m", message, cwd=repo, check=True)
        node = hgenv.hg("log", "-r", ".", "-T", "{node}", cwd=repo, check=True).out
        steps[step] = node

    commit("base", "project with app foo")
    manage(project, "makemigrations", "foo")
    with open(os.path.join(project, "bar", "models.py"), "a") as f:
        f.write("    rank = models.IntegerField(null=True)\n")
    manage(project, "makemigrations", "bar")
    commit("plain", "foo models; bar.rank")

    empty_migration(project, "bar", "backfill",
                    "        migrations.RunPython(backfill),\n",
                    head="def backfill(apps, schema_editor):\n    pass")
    empty_migration(project, "bar", "concurrently",
                    '        migrations.RunSQL("CREATE INDEX bar_name ON bar_bar (name)",\n'
                    '                          reverse_sql="DROP INDEX bar_name"),\n',
                    atomic=False)
    edit(os.path.join(project, "bar", "models.py"),
         "    created = models.DateTimeField(null=True, blank=True)\n", "")
    manage(project, "makemigrations", "bar")
    edit(os.path.join(project, "foo", "models.py"), "    title =", "    heading =")
    manage(project, "makemigrations", "foo", input="y\n")  # yes, it was renamed
    empty_migration(project, "foo", "fill",
                    "        migrations.RunPython(fill, migrations.RunPython.noop),\n",
                    head="def fill(apps, schema_editor):\n    pass")
    commit("flagged", "bar: backfill, index, drop created; foo: rename title")

    with open(os.path.join(project, "foo", "models.py"), "a") as f:
        f.write(_FOO_TAG)
    manage(project, "makemigrations", "foo")
    edit(os.path.join(project, "foo", "models.py"), _FOO_TAG, "\n")
    manage(project, "makemigrations", "foo")
    empty_migration(project, "foo", "purge",
                    '        migrations.RunSQL("DELETE FROM foo_foo"),\n')
    commit("dropped", "foo: Tag comes and goes, purge")

    empty_migration(project, "bar", "custom",
                    "        Vacuum(),\n",
                    head="from bar.operations import Vacuum")
    with open(os.path.join(project, "bar", "operations.py"), "w") as f:
        f.write("from django.db.migrations.operations.base import Operation\n\n\n"
                "class Vacuum(Operation):\n"
                "    reversible = True\n\n"
                "    def state_forwards(self, app_label, state):\n        pass\n\n"
                "    def database_forwards(self, *args):\n        pass\n\n"
                "    def database_backwards(self, *args):\n        pass\n")
    commit("custom", "bar: custom operation")
    return steps


def irreversible_by_django(project):
    """The migrations real Django says it cannot unapply: `migrate --plan APP zero`
    after applying everything (SQLite), IRREVERSIBLE operations."""
    manage(project, "migrate", "--noinput")
    found = set()
    for app in ("bar", "foo"):
        current = None
        for line in manage(project, "migrate", "--plan", app, "zero").splitlines():
            if not line.startswith(" ") and "." in line:
                current = line.strip()
            elif "IRREVERSIBLE" in line:
                found.add(current)
    return found
