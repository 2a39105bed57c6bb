"""Ingest: read → normalise → validate a member upload, then store and publish it."""
from gdi.messages import Text, as_text


class IngestRefused(Exception):
    """The whole upload is refused; nothing is changed. The message is one line for the user,
    in German and English (a :class:`gdi.messages.Text`)."""

    @property
    def text(self) -> Text:
        return as_text(self.args[0] if self.args else "")
