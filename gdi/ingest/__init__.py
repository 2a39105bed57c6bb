"""Ingest: read → normalise → validate a member upload, then store and publish it."""

class IngestRefused(Exception):
    """The whole upload is refused; nothing is changed. The message is one line for the user."""
