"""The planners' map: a static Leaflet page (via folium) built from the published data."""
from gdi.viewer.build import build_viewer

__all__ = ["build_viewer"]
