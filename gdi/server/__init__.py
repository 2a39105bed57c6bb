"""The HTTP server: pygeoapi's OGC API plus the viewer and vendored assets."""
