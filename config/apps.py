from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Holds project-level management commands (serve, preflight, embedded_db)."""

    name = "config"
    verbose_name = "Cairn configuration"
