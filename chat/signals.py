"""What chat tells the apps above it, without importing them.

``chat`` is below ``tickets`` (and anything else that reacts to answers), so it cannot call
them; it sends these signals and they connect receivers in their ``AppConfig.ready``.
Receivers run inside the sender's transaction; one that queues work uses
``transaction.on_commit``.
"""

from django.dispatch import Signal

# An answer reached a final status. kwargs: message (chat.models.Message, saved, with
# status/problem/sentences), supported_share (float | None: share of checked sentences
# supported; None when nothing was checked).
answer_finished = Signal()

# Feedback was given or changed. kwargs: feedback (chat.models.Feedback), created (bool).
feedback_given = Signal()
