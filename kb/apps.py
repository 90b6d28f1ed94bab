from django.apps import AppConfig


class KbConfig(AppConfig):
    """Tenants, knowledge bases, documents, chunks and retrieval."""

    name = "kb"
    verbose_name = "Knowledge base"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from kb.metrics import DocumentCollector
        from kb.services.sign_in_audit import login_failed_record, login_succeeded_record
        from observability.metrics import scrape_time_collector_register

        # Sign-ins go to the audit log (kb.services.sign_in_audit); the uid keeps one connection.
        user_logged_in.connect(login_succeeded_record, dispatch_uid="kb.audit.login_succeeded")
        user_login_failed.connect(login_failed_record, dispatch_uid="kb.audit.login_failed")
        scrape_time_collector_register(DocumentCollector())
