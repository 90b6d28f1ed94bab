"""Services of the chat app: they write (conversations, answers, feedback)."""
