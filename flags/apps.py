from django.apps import AppConfig


class FlagsConfig(AppConfig):
    """Per-account feature flags with a deterministic percentage rollout.

    Sits above ``kb`` (flags belong to an account) and below ``ingest`` and ``chat``, which
    read them through ``flags.selectors``. Variants of the keys chat understands are
    checked by validators chat registers (``flags.registry``), since flags cannot import it.
    """

    name = "flags"
    verbose_name = "Feature flags"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from flags.models import Flag
        from flags.selectors import flags_cache_invalidate

        # Every save or delete, whether from the admin, a service or the shell, bumps the
        # account's cache version, so this process sees the change at once and others
        # sharing the cache backend (Redis) on their next read.
        post_save.connect(flags_cache_invalidate, sender=Flag, dispatch_uid="flags.saved")
        post_delete.connect(flags_cache_invalidate, sender=Flag, dispatch_uid="flags.deleted")
