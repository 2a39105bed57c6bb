"""gdi: a regional geodata infrastructure for a county and its member municipalities."""

__version__ = "0.1.0"
