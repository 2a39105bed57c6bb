"""The catalogue's records for pygeoapi: its own TinyDBCatalogue, refusing as a bad request what that
provider does not check itself.

pygeoapi 0.24's TinyDBCatalogue answers with a 500 when a query names a property no record has
(a KeyError; for ``queryables?profile=actual-domain&properties=q`` pygeoapi does not even catch a
provider's error, so there the properties no record has simply get no domain) or a bbox of six
numbers (its bbox test unpacks four). Found by Schemathesis against the served OpenAPI document
(tests/test_clients.py); a provider plugin is pygeoapi's seam for exactly this.
"""
from __future__ import annotations

from pygeoapi.provider.base import ProviderInvalidQueryError
from pygeoapi.provider.tinydb_ import TinyDBCatalogueProvider

from gdi.messages import t


class CatalogueProvider(TinyDBCatalogueProvider):
    def _known(self, names) -> None:
        fields = set(self.get_fields()) | {"id"}
        unknown = sorted({str(n) for n in names} - fields)
        if unknown:
            text = t(f"unbekannte Eigenschaft der Metadatensätze: {', '.join(unknown)}",
                     f"unknown property of the records: {', '.join(unknown)}")
            raise ProviderInvalidQueryError(user_msg=str(text))

    def get_domains(self, properties=[], current=False) -> tuple:  # noqa: B006 — pygeoapi's signature
        if not properties:                            # every property of the records (same_keys gave each all)
            return super().get_domains([], current)
        records = set(self.get_fields()) - {"q"}      # q: the provider's search text, no property of a record
        wanted = [name for name in properties if name in records]
        return super().get_domains(wanted, current) if wanted else ({}, True)

    def query(self, offset=0, limit=10, resulttype="results", bbox=[], datetime_=None, properties=[],  # noqa: B006
              sortby=[], select_properties=[], skip_geometry=False, q=None, **kwargs):
        if bbox and len(bbox) != 4:
            raise ProviderInvalidQueryError(user_msg=str(t(
                "bbox der Metadatensätze: vier Zahlen (West, Süd, Ost, Nord)",
                "bbox of the records: four numbers (west, south, east, north)")))
        self._known([name for name, _ in properties or []])
        self._known([s["property"] for s in sortby or []])
        self._known(select_properties or [])
        return super().query(offset=offset, limit=limit, resulttype=resulttype, bbox=bbox, datetime_=datetime_,
                             properties=properties, sortby=sortby, select_properties=select_properties,
                             skip_geometry=skip_geometry, q=q, **kwargs)
