from django.db.migrations.recorder import MigrationRecorder
from django.db import connection
from django.http import HttpResponse
from django.urls import path


def index(request):
    """Plain-text list of the applied migrations: shows which version is deployed."""
    applied = MigrationRecorder(connection).applied_migrations()
    lines = [f"{app} {name}" for app, name in sorted(applied)]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain")


urlpatterns = [path("", index)]
