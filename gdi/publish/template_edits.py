"""Edits to our copies of pygeoapi's HTML templates, where its pages cannot be fixed by translation.

The German and English texts come from the message catalogues (gdi/publish/translations.py). What
a catalogue cannot fix is changed here, in the copies gdi/publish/templates.py makes at publish:

* the ``<title>``: the items page leaves it empty (pygeoapi puts no title in its data), the others
  give only the page name; every page now says "page – service";
* ``None``: pygeoapi prints a null property as the word None; a null is an empty cell in the items
  table and "–" on the item page;
* the items table: every property in half of the page was unreadable at 1366 px; it shows the
  collection's title field and the first ``server.html_columns`` properties, headed by their
  titles in the page's language (vocabulary values by their term's name), inside a horizontally
  scrolling box for phones;
* texts pygeoapi left out of its catalogue (the schema's headings, the tiles page, the storage
  CRS epoch's literal ``_(not specified)``, the link titles it writes into its documents);
* the Contact link, which pointed at an empty ``mailto:`` when no e-mail is configured, and the
  landing page's empty contact lines;
* on a phone, long words and URIs wrap instead of widening the page (static/css/gdi.css, from
  gdi/publish/pygeoapi.css); the items page gives the table three quarters of a wide screen.

What the pages know of a collection's properties (columns, titles, term names) is in the provider's
``options.html`` of the generated configuration (gdi/publish/config.py); pygeoapi translates its
``{de, en}`` values to the request's language like any other text of the configuration.

Each edit must match pygeoapi's template exactly as often as it says, or publishing stops: the
pinned pygeoapi (gdi/server/fixes.py refuses another version) is what these were written against.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edit:
    template: str          # path below the templates directory
    old: str
    new: str
    count: int = 1         # how often old occurs (each is replaced)
    through: str = ""      # if given: old starts a passage that ends with the first `through` after it,
                           # and the whole passage is replaced


# The collection id and its options.html on the items, item and queryables pages.
_HTML_OPTIONS = ("{%- set gdi_html = ((config['resources'].get(gdi_cid) or {}).get('providers') or [{}])[0]"
                 ".get('options', {}).get('html', {}) -%}")
_CID_FROM_DATASET_PATH = "{%- set gdi_cid = data['dataset_path'].split('?')[0].rstrip('/').split('/')[-1] -%}"
_CID_FROM_LINKS = ("{%- set gdi_cid = ((data['links'] | selectattr('rel', 'equalto', 'collection') | first or {})"
                   ".get('href') or '').split('?')[0].rstrip('/').split('/')[-1] -%}")
_SERVICE_TITLE = "config['metadata']['identification']['title']"

_ITEMS_TABLE_OLD = """      <div class="col-sm-12 col-md-6" style="overflow-x: scroll;">
        {% set props = [] %}
        <table class="table table-striped table-bordered">"""

_ITEMS_TABLE_NEW = """      <div class="col-sm-12 col-lg-8 col-xl-9">
        """ + _CID_FROM_DATASET_PATH + _HTML_OPTIONS + """
        {%- set labels = gdi_html.get('labels', {}) -%}
        {%- set terms = gdi_html.get('terms', {}) -%}
        {%- set columns = gdi_html.get('columns') or (data['features'][0]['properties'].keys() | list) -%}
        <div class="gdi-table-scroll">
        <table class="table table-striped table-bordered table-sm gdi-items">
          <thead>
            <tr>
              <th title="{{ data.title_field or 'id' }}">{{ labels.get(data.title_field, data.title_field) if data.title_field else 'id' }}</th>
              {%- for k in columns if k not in [data.title_field, 'extent'] %}
              <th title="{{ k }}">{{ labels.get(k, k) }}</th>
              {%- endfor %}
            </tr>
          </thead>
          <tbody>
            {%- for ft in data.features %}
              {%- set name = ft.properties.get(data.title_field) if data.title_field else none %}
              <tr>
                <td data-label="{{ data.title_field or 'id' }}">
                  <a href="{{ data.items_path }}/{{ ft.id }}">{{ (ft.id if name is none or name == '' else name) | string | truncate(35) }}</a>
                </td>
                {%- for k in columns if k not in [data.title_field, 'extent'] %}
                {%- set v = ft.properties.get(k) %}
                <td data-label="{{ k }}">{% if v is not none %}{{ terms.get(k, {}).get(v | string, v) | string | truncate(35) }}{% endif %}</td>
                {%- endfor %}
              </tr>
            {%- endfor %}
          </tbody>
        </table>
        </div>
      </div>
    </div>
    {% elif data['numberMatched'] %}"""

EDITS: tuple[Edit, ...] = (
    # -- every page -------------------------------------------------------------------------------
    Edit("_base.html",
         "<title>{% block title %}{% endblock %}{% if not self.title() %}"
         "{{ config['metadata']['identification']['title'] }}{% endif %}</title>",
         "{%- set gdi_page = self.title() | trim -%}{% if false %}{% block title %}{% endblock %}{% endif %}\n"
         "    <title>{{ gdi_page }}{{ ' – ' if gdi_page }}{{ " + _SERVICE_TITLE + " }}</title>"),
    Edit("_base.html",
         "{{ self.title() }}{% if not self.title() %}{{ config['metadata']['identification']['title'] }}{% endif %}",
         "{{ gdi_page }}{{ ' – ' if gdi_page }}{{ " + _SERVICE_TITLE + " }}", count=2),
    Edit("_base.html",
         """<meta name="language" content="{{ config['server']['language'] }}">""",
         """<meta name="language" content="{{ (locale | lower)[:2] }}">"""),
    Edit("_base.html",
         """          <li class="nav-item">
            <a href="mailto:{{ config['metadata']['contact']['email'] }}" class="nav-link" aria-current="page">"""
         """{% trans %}Contact{% endtrans%}</a>
          </li>""",
         """          {% if config['metadata']['contact']['email'] %}
          <li class="nav-item">
            <a href="mailto:{{ config['metadata']['contact']['email'] }}" class="nav-link" aria-current="page">"""
         """{% trans %}Contact{% endtrans%}</a>
          </li>
          {% endif %}"""),
    Edit("_base.html",
         """<link rel="stylesheet" href="{{ config['server']['url'] }}/static/css/default.css">""",
         """<link rel="stylesheet" href="{{ config['server']['url'] }}/static/css/default.css">
    <link rel="stylesheet" href="{{ config['server']['url'] }}/static/css/gdi.css">"""),
    # -- landing page: only the contact details that are given -------------------------------------
    Edit("landing_page.html",
         "{% if key in config['metadata']['contact'] %}",
         "{% if config['metadata']['contact'].get(key) %}"),
    Edit("landing_page.html",
         """          <b>{% trans %}Email{% endtrans %}</b><br/>
          <span><a href="mailto:{{ config['metadata']['contact']['email'] }}">{{ config['metadata']['contact']['email'] }}</a></span><br/>""",
         """          {% if config['metadata']['contact']['email'] %}
          <b>{% trans %}Email{% endtrans %}</b><br/>
          <span><a href="mailto:{{ config['metadata']['contact']['email'] }}">{{ config['metadata']['contact']['email'] }}</a></span><br/>
          {% endif %}"""),
    # -- collection -------------------------------------------------------------------------------
    Edit("collections/collection.html",
         "{{ data['storageCrsCoordinateEpoch'] or '_(not specified)' }}",
         "{{ data['storageCrsCoordinateEpoch'] or _('not specified') }}"),
    Edit("collections/collection.html",
         "<span>{{ link['title'] }}</span> (<span>{{ link['type'] }}</span>)",
         "<span>{{ _(link['title']) if link['title'] }}</span> (<span>{{ link['type'] }}</span>)"),
    # -- items ------------------------------------------------------------------------------------
    Edit("collections/items/index.html",
         "{% block title %}{{ super() }} {{ data['title'] }} {% endblock %}",
         "{% block title %}{% for l in data['links'] if l.rel == 'collection' %}{{ l['title'] }} – {% endfor %}"
         "{% trans %}Items{% endtrans %}{% endblock %}"),
    Edit("collections/items/index.html",
         """    <div class="row">
      <div class="col-sm-12 col-md-6">
        <div class="row">
          <div class="col-sm-12">
            <div id="items-map"></div>""",
         """    <div class="row">
      <div class="col-sm-12 col-lg-4 col-xl-3">
        <div class="row">
          <div class="col-sm-12">
            <div id="items-map"></div>"""),
    Edit("collections/items/index.html",  # a new page size keeps the other parameters (lang, filter …)
         "document.location.search = `limit=${limit}`;",
         "params.set('limit', limit); params.delete('offset'); document.location.search = params.toString();"),
    Edit("collections/items/index.html", _ITEMS_TABLE_OLD, _ITEMS_TABLE_NEW,
         through="""          </table>
      </div>
    </div>
    {% elif data['numberMatched'] %}"""),
    Edit("collections/items/index.html",
         "{% if data['title_field'] %} feature['properties']['{{ data['title_field'] }}'] {% else %} feature.id {% endif %}",
         "{% if data['title_field'] %} (feature['properties']['{{ data['title_field'] }}'] || feature.id) "
         "{% else %} feature.id {% endif %}"),
    # -- item -------------------------------------------------------------------------------------
    Edit("collections/items/item.html",
         "{% set ptitle = data['properties'][data['title_field']] or data['id'] | string %}",
         _CID_FROM_LINKS + _HTML_OPTIONS + "\n"
         "{%- set ptitle = (data['properties'].get(data['title_field']) if data['title_field']) "
         "or data['id'] | string -%}"),
    Edit("collections/items/item.html",
         "{% block title %}{{ ptitle }}{% endblock %}",
         "{% block title %}{{ ptitle }} – {{ data['title'] }}{% endblock %}"),
    Edit("collections/items/item.html",
         """                  <td>{{ k | striptags }}</td>
                  <td>{{ render_item_value(v, 80) }}</td>""",
         """                  <td title="{{ k }}">{{ gdi_html.get('labels', {}).get(k, k) | striptags }}</td>
                  <td>{% if v is none %}–{% else %}"""
         """{{ render_item_value(gdi_html.get('terms', {}).get(k, {}).get(v | string, v), 80) }}{% endif %}</td>"""),
    Edit("collections/items/item.html",
         """title="{{ l['title'] or l['href'].split('/') }}">{{ l['title'] or (l['href'].split('/') | last) | truncate( 25 ) }}</a>""",
         """title="{{ _(l['title']) if l['title'] else l['href'] }}">"""
         """{{ _(l['title']) if l['title'] else (l['href'].split('/') | last) | truncate( 25 ) }}</a>"""),
    # -- queryables -------------------------------------------------------------------------------
    Edit("collections/queryables.html",
         "        <li>{{ qname }} (<code>{{ qinfo['type'] }}</code>)",
         "        " + _CID_FROM_DATASET_PATH + _HTML_OPTIONS + "\n"
         "        <li>{{ gdi_html.get('labels', {}).get(qname, qinfo.get('title') or qname) }} "
         "<code>{{ qname }}</code> (<code>{{ qinfo['type'] }}</code>)"),
    # -- schema -----------------------------------------------------------------------------------
    Edit("collections/schema.html",
         """        <th>Name</th>
        <th>Title</th>
        <th>Type</th>
        <th>Units</th>
        <th>Values</th>""",
         """        <thead><tr>
        <th>{% trans %}Name{% endtrans %}</th>
        <th>{% trans %}Title{% endtrans %}</th>
        <th>{% trans %}Type{% endtrans %}</th>
        <th>{% trans %}Units{% endtrans %}</th>
        <th>{% trans %}Values{% endtrans %}</th>
        </tr></thead>"""),
    Edit("collections/schema.html",
         "<td>{{ qinfo['x-ogc-unit'] }}</td>",
         "<td>{{ qinfo['x-ogc-unit'] or '' }}</td>"),
    # -- tiles (for later: no collection has tiles yet) -------------------------------------------
    Edit("collections/tiles/index.html", "<h3>Tiles</h3>", "<h3>{% trans %}Tiles{% endtrans %}</h3>"),
    Edit("collections/tiles/index.html",
         """target="_blank">Metadata</a>""", """target="_blank">{% trans %}Metadata{% endtrans %}</a>"""),
    Edit("collections/tiles/index.html",
         """<div class="col-md-2 col-sm-12">Map</div>""",
         """<div class="col-md-2 col-sm-12">{% trans %}Map{% endtrans %}</div>"""),
    Edit("collections/tiles/metadata.html",
         "<h1>{{ data['tileset'] }} map tileset for {{ data['title'] }}</h1>",
         """<h1>{% trans tileset=data['tileset'], title=data['title'] %}{{ tileset }} map tileset for {{ title }}"""
         """{% endtrans %}</h1>
      <p>
      {% if data['tilejson_url'] %}<a href="{{ data['tilejson_url'] }}">{% trans %}TileJSON{% endtrans %}</a> · {% endif %}
      <a href="{{ data['json_url'] }}">{% trans %}JSON{% endtrans %}</a>
      </p>
      <p>
        <h2>{% trans %}Tile URL template{% endtrans %}</h2>
        <b>{{ data['collections_path'] }}</b>
      </p>
      {% if data['metadata'] %}
      <h2>{% trans %}Metadata{% endtrans %}</h2>""",
         through="<h2>Metadata:</h2>"),
)


def apply_edit(text: str, edit: Edit) -> str:
    """text with edit made; an edit that does not match exactly as often as declared is an error
    (the template is not the one it was written for)."""
    found = text.count(edit.old)
    if found != edit.count:
        raise RuntimeError(f"pygeoapi template {edit.template}: expected {edit.count} × {edit.old[:60]!r}, "
                           f"found {found}")
    if not edit.through:
        return text.replace(edit.old, edit.new)
    start = text.index(edit.old)
    end = text.find(edit.through, start + len(edit.old))
    if end < 0:
        raise RuntimeError(f"pygeoapi template {edit.template}: no {edit.through[:60]!r} after {edit.old[:60]!r}")
    return text[:start] + edit.new + text[end + len(edit.through):]


def apply_edits(templates_dir: Path, edits: tuple[Edit, ...] = EDITS) -> None:
    """Make every edit in the copied templates under templates_dir."""
    by_template: dict[str, list[Edit]] = {}
    for edit in edits:
        by_template.setdefault(edit.template, []).append(edit)
    for name, group in by_template.items():
        page = templates_dir / name
        text = page.read_text(encoding="utf-8")
        for edit in group:
            text = apply_edit(text, edit)
        page.write_text(text, encoding="utf-8")


def edits_key(edits: tuple[Edit, ...] = EDITS) -> str:
    """What the edits are (the templates' build stamp includes it, so a changed edit rebuilds them)."""
    return hashlib.sha256(repr(edits).encode()).hexdigest()[:16]
