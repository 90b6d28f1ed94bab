"""The gateway's models (LlmCall, LlmRoute, SemanticCacheEntry) move to the llm app.

State only: their tables keep their names and rows (llm 0001 takes them over with
``db_table``); nothing is dropped.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0014_escalation_and_flags"),
        ("llm", "0001_initial"),
    ]

    state_operations = [
        migrations.RemoveField(
            model_name="llmcall",
            name="account",
        ),
        migrations.RemoveField(
            model_name="llmcall",
            name="user",
        ),
        migrations.DeleteModel(
            name="LlmRoute",
        ),
        migrations.RemoveField(
            model_name="semanticcacheentry",
            name="account",
        ),
        migrations.DeleteModel(
            name="LlmCall",
        ),
        migrations.DeleteModel(
            name="SemanticCacheEntry",
        ),
    ]

    operations = [migrations.SeparateDatabaseAndState(state_operations=state_operations)]
