from django.apps import AppConfig


class BarConfig(AppConfig):
    name = "bar"
