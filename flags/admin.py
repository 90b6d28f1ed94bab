"""The flags' admin: tenant-scoped and audited like every Cairn admin page.

An account's admins see and edit only their account's flags (AccountScopedAdmin); every
add, change and delete leaves an AuditEvent (AuditedAdmin). The change page previews who
the rollout picks among the account's real members and API keys. Saving bumps the
account's flag cache (the post_save receiver in FlagsConfig.ready), so answers follow.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from flags.models import Flag
from flags.registry import known_keys
from flags.selectors import flag_reach
from kb.admin.audit import AuditedAdmin
from kb.admin.scoping import AccountScopedAdmin


@admin.register(Flag)
class FlagAdmin(AuditedAdmin, AccountScopedAdmin):
    list_display = ["key", "account", "variant", "rollout_percent", "enabled", "updated_at"]
    list_filter = ["enabled", ("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["key", "variant", "description"]
    list_select_related = ["account"]
    readonly_fields = ["reach", "updated_at"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "account",
                    "key",
                    "variant",
                    "rollout_percent",
                    "enabled",
                    "description",
                    "reach",
                    "updated_at",
                ]
            },
        ),  # fmt: skip
        ("Bucketing", {"classes": ["collapse"], "fields": ["salt"]}),
    ]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        key_field = form.base_fields.get("key")
        if key_field is not None:
            key_field.help_text = (
                f"{key_field.help_text} Checked variants: {', '.join(known_keys())}."
            )
        return form

    @admin.display(description="Who gets the variant now")
    def reach(self, obj: Flag) -> str:
        if obj.pk is None:
            return "Save the flag to see which of the account's users and API keys it picks."
        reach = flag_reach(flag=obj)
        if reach.share is None:
            return "The account has no members or API keys yet."
        state = "" if obj.enabled else " (the flag is disabled)"
        return (
            f"{reach.users_in} of {reach.users} members and {reach.api_keys_in} of "
            f"{reach.api_keys} API keys: {reach.share:.1%} of them, for a rollout of "
            f"{obj.rollout_percent}%{state}. Over many users the share converges on the "
            "rollout; each keeps their side on every request."
        )
