from django.db import models


class Bar(models.Model):
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    created = models.DateTimeField(null=True, blank=True)
    # tests/djangoproject.py add_migration() appends new fields at the end of
    # this file: keep Bar the last class.
