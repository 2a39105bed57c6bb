/*
 * gdi planners' map.  folium creates the map, the empty layers (per collection:
 * one cluster group per term or one cluster group for points, one group for
 * lines, polygons and the territory; the analysis groups) and the layer
 * control; gdiMap.init() fills them from the data embedded in the page.  What a
 * layer shows and how it looks is described by cfg.layers (from the collection
 * YAML, see gdi/viewer/layers.py): no collection or field is named here.
 *
 * Security: every attribute value comes from a member's upload and is
 * untrusted.  It reaches the page only through textContent and DOM properties,
 * never as HTML.  Colours and icon names come from the collection YAML and are
 * checked against strict patterns in Python before they get here.
 *
 * Speed (10,000 points, see bench/viewer.py): the data comes as JSON elements
 * (JSON.parse, not the JS parser) with the points column by column; markers
 * are plain L.marker objects sharing one divIcon per term, get their
 * popup/tooltip bound on first hover/click/search, and go into the cluster
 * groups only after the view is set (no cluster re-computation for a zoom).
 * The analysis layers are built when switched on; the distance bands are
 * fetched then from a file next to the page (inline in the single file).
 */
(function (global) {
  'use strict';

  var OTHER = null;  // the term of values outside the vocabulary (cfg.other, from gdi/viewer/style.py)
  var SELECTED = { weight: 4, color: '#e65100' };
  var POPUP_MAX_HEIGHT = 320;  // px; a popup with long texts scrolls instead of covering the map and its buttons

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function blank(value) {
    return value === null || value === undefined || value === '';
  }

  /** The value as an absolute http(s) URL, or null (no javascript:, data:, relative links). */
  function safeHttpUrl(value) {
    if (!value) return null;
    var text = String(value).trim();
    if (/^www\./i.test(text)) text = 'https://' + text;
    try {
      var url = new URL(text);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(text, href, external) {
    var a = el('a', null, text);
    a.href = href;
    if (external) {
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
    }
    return a;
  }

  /** A round coloured badge with the term's icon (legend, popup). */
  function swatch(style) {
    var badge = el('span', 'gdi-swatch');
    badge.style.background = style.colour;
    badge.appendChild(el('i', 'fa-solid fa-' + style.icon));
    return badge;
  }

  /** A line or area swatch (legend) in colour; dashed for dashed lines. fillColour: a CSS colour. */
  function shapeSwatch(kind, colour, fillColour, dashed) {
    var box = el('span', 'gdi-swatch ' + (kind === 'line' ? 'gdi-swatch-line' : 'gdi-swatch-shape') +
      (dashed ? ' gdi-swatch-dashed' : ''));
    box.style.borderColor = colour;
    if (kind !== 'line') box.style.background = fillColour;
    return box;
  }

  function markerIcon(style) {
    // style.colour and style.icon are validated in Python; no data goes in here.
    return L.divIcon({
      className: 'gdi-marker',
      html: '<span style="background:' + style.colour + '"><i class="fa-solid fa-' + style.icon + '"></i></span>',
      iconSize: [26, 26],
      iconAnchor: [13, 13],
      popupAnchor: [0, -12],
      tooltipAnchor: [12, 0]
    });
  }

  /** Cluster bubble in the term's colour (called by L.markerClusterGroup). */
  function clusterIcon(cluster, colour) {
    var count = Number(cluster.getChildCount());
    var size = count < 10 ? 30 : count < 100 ? 36 : 44;
    return L.divIcon({
      className: 'gdi-cluster',
      html: '<span style="background:' + colour + '">' + count + '</span>',
      iconSize: [size, size]
    });
  }

  /** The value of a column (see data.point_columns: null, a list, or {values, codes}) at i. */
  function columnValue(column, i) {
    if (column === null || column === undefined) return null;
    if (Array.isArray(column)) return column[i];
    return column.values[column.codes[i]];
  }

  /** A function i -> point i as an object keyed by field name (lat, lon, and the layer's fields). */
  function recorder(points, fields) {
    var columns = fields.map(function (f) { return points.fields[f]; });
    return function (i) {
      var out = { lat: points.lat[i], lon: points.lon[i] };
      for (var j = 0; j < fields.length; j++) out[fields[j]] = columnValue(columns[j], i);
      return out;
    };
  }

  function addRow(table, label, value, cfg) {
    if (blank(value)) return;
    var tr = el('tr');
    tr.appendChild(el('th', null, label));
    var td = el('td');
    if (value instanceof Node) td.appendChild(value);
    else td.append(gdiLayout.capped(value, cfg.text));  // a long text folded, with a button for all of it
    tr.appendChild(td);
    table.appendChild(tr);
  }

  function joined(parts, sep) {
    return parts.filter(function (p) { return !blank(p); }).join(sep);
  }

  var formats = {};

  /** Number formatting (Intl.NumberFormat is slow to create: one per language and digits). */
  function fmt(value, cfg, digits) {
    var key = cfg.lang + ':' + digits;
    var format = formats[key] || (formats[key] = digits === null ? new Intl.NumberFormat(cfg.lang)
      : new Intl.NumberFormat(cfg.lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }));
    return format.format(Number(value));
  }

  function integer(value, cfg) {
    return fmt(value, cfg, null);
  }

  function percent(value, cfg) {
    return value === null || value === undefined ? '–' : fmt(100 * value, cfg, 0) + ' %';
  }

  // ---- one feature: its style, name and popup, from the layer's declaration -------------

  /** The style of a feature's term (colour_by layers), OTHER for values outside the vocabulary. */
  function termOf(spec, props) {
    if (!spec.colourBy) return null;
    return spec.terms[props[spec.colourBy]] || spec.terms[OTHER];
  }

  /** What a feature is called: its label, else its term, else the layer's title. */
  function featureName(spec, props) {
    var name = spec.label ? props[spec.label] : null;
    if (!blank(name)) return String(name);
    var term = termOf(spec, props);
    return term ? term.label : spec.title;
  }

  /** Leaflet path options of a line or polygon feature (map.line, map.fill, colour or term colour). */
  function pathStyle(spec, props) {
    var s = spec.style;
    var term = termOf(spec, props);
    var colour = term ? term.colour : s.colour;
    var out = { color: colour, weight: s.weight, opacity: s.opacity, dashArray: s.dash || null };
    if (spec.kind === 'line') {
      out.fill = false;
    } else {
      out.fillColor = term ? colour : s.fillColour;
      out.fillOpacity = s.fillOpacity;
    }
    return out;
  }

  /** A popup value: uri values as safe external links, numbers formatted, booleans as yes/no, the rest text. */
  function popupValue(row, props, cfg) {
    var text = joined(row.groups.map(function (group) {
      return joined(group.map(function (f) { return props[f]; }), ' ');
    }), ', ');
    if (blank(text) || row.groups.length !== 1 || row.groups[0].length !== 1) return text;
    if (row.terms && Object.prototype.hasOwnProperty.call(row.terms, text)) return row.terms[text];
    if (row.type === 'uri') {
      var href = safeHttpUrl(text);
      return href ? link(text, href, true) : text;
    }
    if ((row.type === 'integer' || row.type === 'number') && isFinite(Number(text))) return fmt(text, cfg, null);
    if (row.type === 'boolean' && (text === 'true' || text === 'false')) return cfg.text[text === 'true' ? 'yes' : 'no'];
    return text;
  }

  function popupBox(spec, props, cfg) {
    var box = el('div', 'gdi-popup');
    var heading = el('h3');
    heading.append(gdiLayout.capped(featureName(spec, props), cfg.text));
    box.appendChild(heading);
    var term = termOf(spec, props);
    if (term) {
      var badge = el('div', 'gdi-popup-category');
      badge.appendChild(swatch(term));
      badge.appendChild(el('span', null, term.label));
      box.appendChild(badge);
    }
    var table = el('table');
    spec.popup.forEach(function (row) { addRow(table, row.label, popupValue(row, props, cfg), cfg); });
    box.appendChild(table);
    return box;
  }

  /** A table row as an object (layout written by supply.supply_table). */
  function tableRecord(row, supply) {
    var n = supply.tableTerms.length;
    var k = supply.shareLabels.length;
    return {
      key: row[0], name: row[1], population: row[2],
      counts: row.slice(3, 3 + n), total: row[3 + n], rate: row[4 + n],
      shares: row.slice(5 + n, 5 + n + k), beyondKm2: row[5 + n + k]
    };
  }

  function territoryTooltip(spec, props, cfg, table) {
    var t = cfg.territory;
    var box = el('div', 'gdi-tooltip');
    box.appendChild(el('strong', null, featureName(spec, props)));
    box.appendChild(el('div', null, t.keyLabel + ' ' + (props[t.key] || '–')));
    if (t.population && !blank(props[t.population])) {
      box.appendChild(el('div', null, t.populationLabel + ': ' + integer(props[t.population], cfg)));
    }
    var row = cfg.supply && table && table[props._row];
    if (row) {
      var r = tableRecord(row, cfg.supply);
      var rate = r.rate === null ? (cfg.supply.density ? ' (' + cfg.text.no_population + ')' : '')
        : ' (' + fmt(r.rate, cfg, 2) + ' ' + cfg.text.density_short + ')';
      box.appendChild(el('div', null, cfg.text.points + ': ' + r.total + rate));
      r.shares.forEach(function (share, i) {
        box.appendChild(el('div', null, cfg.supply.shareLabels[i] + ': ' + percent(share, cfg)));
      });
      box.appendChild(el('div', null, cfg.supply.beyondLabel + ': ' + fmt(r.beyondKm2, cfg, 1) + ' km²'));
    }
    return box;
  }

  // ---- legend -------------------------------------------------------------------------

  function legendItem(badge, label) {
    var item = el('div', 'gdi-legend-item');
    item.appendChild(badge);
    item.appendChild(el('span', null, label));
    return item;
  }

  function legendSection(title, entries, className) {
    var section = el('div', 'gdi-legend-section ' + className);
    section.appendChild(el('h4', null, title));
    entries.forEach(function (entry) {
      var box = el('span', 'gdi-swatch gdi-swatch-area');
      box.style.background = entry.colour;
      section.appendChild(legendItem(box, entry.label));
    });
    return section;
  }

  /** The legend of one layer: its swatch and title, or its title and a swatch per term. */
  function layerLegend(spec, cfg, hasCounties) {
    var part = el('div', 'gdi-legend-layer');
    part.setAttribute('data-gdi-layer', spec.id);
    var s = spec.style;
    if (spec.colourBy) {
      part.appendChild(el('div', 'gdi-legend-title', spec.title));
      spec.present.forEach(function (id) {
        var term = spec.terms[id];
        part.appendChild(legendItem(spec.kind === 'point' ? swatch(term)
          : shapeSwatch(spec.kind, term.colour, term.swatchFill, !!s.dash), term.label));
      });
      return part;
    }
    var badge = spec.kind === 'point' ? swatch(s) : shapeSwatch(spec.kind, s.colour, s.swatchFill, !!s.dash);
    if (spec.territory) badge.classList.add('gdi-swatch-boundary');
    part.appendChild(legendItem(badge, spec.title));
    if (spec.territory && hasCounties) {
      part.appendChild(legendItem(el('span', 'gdi-swatch gdi-swatch-county'), cfg.text.county));
    }
    return part;
  }

  function legend(cfg, map, analysis, hasCounties) {
    var control = L.control({ position: 'bottomright' });
    control.onAdd = function () {
      var box = el('div', 'gdi-legend');
      // The heading folds the legend (folded at first on a phone, where it would cover the map).
      var heading = el('button', 'gdi-legend-toggle', cfg.text.legend);
      heading.type = 'button';
      function fold(folded) {
        box.classList.toggle('gdi-legend-folded', folded);
        heading.setAttribute('aria-expanded', String(!folded));
      }
      heading.addEventListener('click', function () { fold(!box.classList.contains('gdi-legend-folded')); });
      box.gdiFold = fold;  // layout.js folds it when the layer list opens on a phone
      fold(map.getSize().x < gdiLayout.NARROW);
      box.appendChild(heading);
      cfg.layers.forEach(function (spec) { box.appendChild(layerLegend(spec, cfg, hasCounties)); });
      var sections = [];
      if (cfg.supply) {
        if (analysis.density) {
          sections.push([analysis.density, legendSection(cfg.text.density, cfg.supply.densityLegend, 'gdi-legend-density')]);
        }
        if (analysis.distance) {
          sections.push([analysis.distance, legendSection(cfg.text.distance, cfg.supply.bandLabels.map(function (label, i) {
            return { label: label, colour: cfg.supply.bandColours[i] };
          }), 'gdi-legend-distance')]);
        }
      }
      sections.forEach(function (s) { box.appendChild(s[1]); });
      function sync() {
        sections.forEach(function (s) { s[1].hidden = !map.hasLayer(s[0]); });
      }
      map.on('overlayadd overlayremove', sync);
      sync();
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    };
    return control;
  }

  // ---- the table beside the map --------------------------------------------------

  function csvCell(value, sep) {
    if (value === null || value === undefined) return '';
    var text = String(value);
    if (typeof value === 'number' && sep === ';') text = text.replace('.', ',');
    if (/^[=+\-@\t\r]/.test(text) && typeof value !== 'number') text = "'" + text;  // no spreadsheet formulas
    return /["\n\r;,]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  /** The table as CSV text (German: ';' and decimal comma, for Excel). */
  function tableCsv(cfg, rows) {
    var sep = cfg.lang === 'de' ? ';' : ',';
    var s = cfg.supply;
    var header = [cfg.territory.keyLabel, cfg.text.municipality, cfg.territory.populationLabel || ''].concat(
      s.tableTerms.map(function (id) { return s.terms[id].label; }),
      [cfg.text.points, cfg.text.density_short], s.shareLabels, [s.beyondLabel + ' (km²)']);
    var lines = [header.map(function (h) { return csvCell(h, sep); }).join(sep)];
    rows.forEach(function (row) {
      lines.push(row.map(function (v) { return csvCell(v, sep); }).join(sep));
    });
    return '\ufeff' + lines.join('\r\n') + '\r\n';
  }

  function panel(map, cfg, rows, byRow) {
    var s = cfg.supply;
    var aside = el('aside', 'gdi-panel');
    aside.id = 'gdi-panel';
    var head = el('div', 'gdi-panel-head');
    head.appendChild(el('h2', null, s.tableTitle));
    var download = el('a', 'gdi-csv', cfg.text.csv);
    download.download = cfg.text.csv_file;
    download.href = '#';
    download.addEventListener('click', function () {
      // Built on click from the embedded rows; also works in the single-file map.
      var blob = new Blob([tableCsv(cfg, rows)], { type: 'text/csv;charset=utf-8' });
      if (download.href.indexOf('blob:') === 0) URL.revokeObjectURL(download.href);
      download.href = URL.createObjectURL(blob);
    });
    head.appendChild(download);  // (the language switch is a map control: layout.js)
    aside.appendChild(head);

    var table = el('table', 'gdi-table');
    var thead = el('thead');
    var tr = el('tr');
    tr.appendChild(el('th', null, cfg.text.municipality));
    tr.appendChild(el('th', 'num', cfg.territory.populationLabel || ''));
    s.tableTerms.forEach(function (id) {
      var th = el('th', 'num');
      th.title = s.terms[id].label;
      th.appendChild(swatch(s.terms[id]));
      tr.appendChild(th);
    });
    tr.appendChild(el('th', 'num', cfg.text.points));
    tr.appendChild(el('th', 'num', s.density ? cfg.text.density_short : ''));
    s.shareShort.forEach(function (label, i) {
      var th = el('th', 'num', label);
      th.title = s.shareLabels[i];
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    table.appendChild(thead);
    var tbody = el('tbody');
    rows.forEach(function (row, i) {
      var t = tableRecord(row, s);
      var line = el('tr');
      line.setAttribute('data-key', t.key || '');
      var name = el('td', 'name', t.name);
      name.title = cfg.territory.keyLabel + ' ' + (t.key || '–');
      line.appendChild(name);
      line.appendChild(el('td', 'num', t.population === null ? '–' : integer(t.population, cfg)));
      t.counts.forEach(function (c) { line.appendChild(el('td', 'num', c || '')); });
      line.appendChild(el('td', 'num', t.total));
      line.appendChild(el('td', 'num', t.rate === null ? '–' : fmt(t.rate, cfg, 2)));
      t.shares.forEach(function (share) { line.appendChild(el('td', 'num', percent(share, cfg))); });
      line.addEventListener('click', function () { if (byRow[i]) selectTerritory(map, byRow[i]); });
      tbody.appendChild(line);
    });
    table.appendChild(tbody);
    var wrap = el('div', 'gdi-table-wrap');
    wrap.appendChild(table);
    aside.appendChild(wrap);
    aside.appendChild(el('p', 'gdi-note', s.tableNote));
    if (s.unassigned) aside.appendChild(el('p', 'gdi-note', s.unassigned));
    return aside;
  }

  function panelToggle(map, cfg, aside) {
    var control = L.control({ position: 'topright' });
    control.onAdd = function () {
      var button = el('button', 'gdi-panel-toggle leaflet-bar');
      button.type = 'button';
      function sync() {
        button.textContent = aside.hidden ? cfg.text.panel_show : cfg.text.panel_hide;
        button.setAttribute('aria-expanded', String(!aside.hidden));
      }
      L.DomEvent.on(button, 'click', function (e) {
        L.DomEvent.stop(e);
        aside.hidden = !aside.hidden;
        sync();
        map.invalidateSize();
      });
      L.DomEvent.disableClickPropagation(button);
      sync();
      return button;
    };
    return control;
  }

  // ---- selecting, showing, searching ------------------------------------------------

  var selected = null;

  /** Zoom to a territory feature and outline it (animated unless animate === false). */
  function selectTerritory(map, layer, animate) {
    if (selected && selected !== layer) selected.setStyle(selected.gdiStyle);
    selected = layer;
    if (layer.gdiGroup && !map.hasLayer(layer.gdiGroup)) map.addLayer(layer.gdiGroup);
    layer.setStyle(SELECTED);
    layer.bringToFront();
    gdiLayout.fitBounds(map, layer.getBounds(), { maxZoom: 14, animate: animate !== false });
    var key = layer.gdiKey;
    document.querySelectorAll('.gdi-table tr.selected').forEach(function (tr) { tr.classList.remove('selected'); });
    document.querySelectorAll('.gdi-table tr').forEach(function (tr) {
      if (key && tr.getAttribute('data-key') === key) {
        tr.classList.add('selected');
        if (tr.scrollIntoView) tr.scrollIntoView({ block: 'nearest' });
      }
    });
  }

  /**
   * Zoom to a point (out of its cluster) and open its popup; resolves with the
   * popup's element.  zoomToShowLayer does not always call back (points at the
   * same place, a marker already spiderfied), so after a while the popup opens
   * at the point's position anyway.
   */
  function showPoint(map, marker) {
    return new Promise(function (resolve) {
      var done = false;
      function finish() {
        if (done) return;
        done = true;
        marker.gdiBind();
        if (marker._map) marker.openPopup();
        var popup = marker.getPopup();
        if (!popup.isOpen()) map.openPopup(popup, marker.getLatLng());
        resolve(popup.isOpen() ? popup.getElement() : null);
      }
      if (!map.hasLayer(marker.gdiGroup)) map.addLayer(marker.gdiGroup);
      marker.gdiGroup.zoomToShowLayer(marker, function () { setTimeout(finish, 0); });
      setTimeout(finish, 1200);
    });
  }

  /** Show a line or polygon feature with its popup. */
  function showFeature(map, layer) {
    if (layer.gdiGroup && !map.hasLayer(layer.gdiGroup)) map.addLayer(layer.gdiGroup);
    gdiLayout.fitBounds(map, layer.getBounds(), { maxZoom: 16 });
    layer.openPopup(layer.getBounds().getCenter());
  }

  /** Show a point with its popup, zoom to a territory feature, or show a line/polygon. */
  function focus(map, layer) {
    if (layer instanceof L.Marker && layer.gdiGroup) showPoint(map, layer);
    else if (layer && layer.gdiTerritory) selectTerritory(map, layer);
    else if (layer && layer.getBounds) showFeature(map, layer);
  }

  /** Search entries "label – layer or term → position with .layer"; labels made unique for the control. */
  function searchRecords(layers) {
    var records = {};
    function add(text, latlng, layer) {
      var key = text;
      for (var n = 2; key === '__proto__' || Object.prototype.hasOwnProperty.call(records, key); n++) {
        key = text + ' (' + n + ')';
      }
      var loc = L.latLng(latlng);
      loc.layer = layer;
      records[key] = loc;
    }
    function kindOf(spec, props) {
      var term = termOf(spec, props);
      return term ? term.label : spec.title;
    }
    layers.forEach(function (entry) {
      var spec = entry.spec;
      if (entry.features) {
        entry.features.eachLayer(function (layer) {
          var props = layer.feature.properties;
          add(joined([featureName(spec, props), kindOf(spec, props)], ' – '), layer.getBounds().getCenter(), layer);
        });
      }
      (entry.markers || []).forEach(function (marker) {
        var p = marker.gdiPoint;
        var name = spec.label ? p[spec.label] : null;
        add(joined([name, kindOf(spec, p)], ' – '), marker.getLatLng(), marker);
      });
    });
    return records;
  }

  function searchControl(map, cfg, getRecords, tiledSpecs) {
    return new L.Control.Search({
      sourceData: function (text, callResponse) {
        if (!tiledSpecs || !tiledSpecs.length) {
          callResponse(getRecords());
          return { abort: function () {} };
        }
        return searchWithTiled(getRecords(), tiledSpecs, text, callResponse);
      },
      formatData: function (data) { return data; },
      buildTip: function (text) { return el('li', null, text); },  // text, not HTML
      moveToLocation: function (latlng) {
        if (latlng.gdiHit) showTiledHit(map, cfg, latlng.gdiHit);
        else focus(map, latlng.layer);
      },
      marker: false,
      initial: false,
      tooltipLimit: 30,
      autoType: false,
      textPlaceholder: cfg.text.search,
      textErr: cfg.text.not_found,
      textCancel: cfg.text.cancel,
      position: 'topleft'
    });
  }

  /** The embedded search entries plus the tiled layers' hits from the API (answered when they arrive). */
  function searchWithTiled(local, specs, text, callResponse) {
    var aborted = false;
    searchTiled(specs, text).then(function (hits) {
      if (aborted) return;
      var records = {};
      Object.keys(local).forEach(function (key) { records[key] = local[key]; });
      hits.forEach(function (hit) {
        var props = hit.feature.properties || {};
        var term = termOf(hit.spec, props);
        var text = joined([featureName(hit.spec, props), term ? term.label : hit.spec.title], ' – ');
        var key = text;
        for (var n = 2; key === '__proto__' || Object.prototype.hasOwnProperty.call(records, key); n++) {
          key = text + ' (' + n + ')';
        }
        var at = featureAnchor(hit.feature);
        if (!at) return;
        at.gdiHit = hit;
        records[key] = at;
      });
      callResponse(records);
    });
    return { abort: function () { aborted = true; } };
  }

  /** The URL of a file next to the page (the server answers /viewer for /viewer/index.html). */
  function besidePage(name) {
    var here = new URL(global.location.href);
    var path = here.pathname;
    if (!/\/$/.test(path) && path.split('/').pop().indexOf('.') < 0) path += '/';
    return new URL(name, new URL(path, here.href)).href;
  }

  /** The distance bands: inline (single file) or fetched from beside the page. */
  function loadBands(supply) {
    var inline = document.getElementById('gdi-bands');
    if (inline) return Promise.resolve(JSON.parse(inline.textContent));
    if (!supply.bandsUrl) return Promise.resolve({ type: 'FeatureCollection', features: [] });
    return fetch(besidePage(supply.bandsUrl)).then(function (response) {
      if (!response.ok) throw new Error('distance bands: HTTP ' + response.status);
      return response.json();
    });
  }

  /** Calls build() once, the first time group is on the map (now or later). */
  function whenShown(map, group, build) {
    var built = false;
    function run() {
      if (built) return;
      built = true;
      build();
    }
    group.on('add', run);
    if (map.hasLayer(group)) run();
  }

  /**
   * A collection whose terms are separate cluster groups gets its title above
   * them in the layer control: the layer control has no headings, so the entry
   * of a group with options.gdiHeading is preceded by one (text, not HTML).
   */
  function headingsInLayerControl() {
    var proto = L.Control.Layers.prototype;
    if (proto.gdiHeadings) return;
    proto.gdiHeadings = true;
    var addItem = proto._addItem;
    proto._addItem = function (obj) {
      var label = addItem.call(this, obj);
      var heading = obj.overlay && obj.layer.options && obj.layer.options.gdiHeading;
      if (heading && label.parentNode) {
        label.parentNode.insertBefore(el('div', 'gdi-layer-heading', heading), label);
      }
      return label;
    };
  }

  // ---- the layers ----------------------------------------------------------------

  /** The markers of a point layer, with their cluster group, not yet in it. */
  function pointMarkers(spec, payload, groups, cfg) {
    var recordAt = recorder(payload, spec.fields);
    var termColumn = spec.colourBy ? payload.fields[spec.colourBy] : null;
    var PointMarker = L.Marker.extend({
      gdiBind: function () {
        if (this.getPopup()) return this;
        var p = this.gdiPoint;
        this.bindPopup(function () { return popupBox(spec, p, cfg); }, { maxWidth: 320, maxHeight: POPUP_MAX_HEIGHT });
        this.bindTooltip(function () { return el('span', null, featureName(spec, p)); });
        return this;
      }
    });
    Object.defineProperty(PointMarker.prototype, 'gdiPoint', {
      get: function () { return this._gdiPoint || (this._gdiPoint = recordAt(this.gdiIndex)); }
    });
    var icons = {};
    var byGroup = {};
    var markers = new Array(payload.n);
    for (var i = 0; i < payload.n; i++) {
      var key = '*';
      var style = spec.style;
      if (spec.colourBy) {
        key = columnValue(termColumn, i);
        if (!spec.terms[key] || !groups[key]) key = OTHER;
        style = spec.terms[key];
      }
      var icon = icons[key] || (icons[key] = markerIcon(style));
      var marker = new PointMarker([payload.lat[i], payload.lon[i]], { icon: icon });
      marker.gdiIndex = i;
      marker.gdiGroup = groups[key] || groups['*'];
      (byGroup[key] = byGroup[key] || []).push(marker);
      markers[i] = marker;
    }
    return { markers: markers, byGroup: byGroup };
  }

  /** A line, polygon or territory layer (L.geoJSON) into group. */
  function featureLayer(spec, payload, group, cfg, table, byRow) {
    var territory = spec.territory && cfg.territory;
    return L.geoJSON(payload, {
      className: territory ? 'gdi-boundary' : 'gdi-feature gdi-layer-' + spec.id,
      style: function (f) { return pathStyle(spec, f.properties); },
      onEachFeature: function (feature, layer) {
        var props = feature.properties;
        layer.gdiStyle = pathStyle(spec, props);
        layer.gdiGroup = group;
        if (territory) {
          layer.gdiTerritory = true;
          layer.gdiKey = blank(props[territory.key]) ? null : String(props[territory.key]);
          byRow[props._row] = layer;
          layer.bindTooltip(function () { return territoryTooltip(spec, props, cfg, table); }, { sticky: true });
        } else {
          layer.bindTooltip(function () { return el('span', null, featureName(spec, props)); }, { sticky: true });
        }
        layer.bindPopup(function () { return popupBox(spec, props, cfg); }, { maxWidth: 320, maxHeight: POPUP_MAX_HEIGHT });
      }
    }).addTo(group);
  }

  // ---- tiled layers: large collections from the server's vector tiles --------------------
  //
  // A collection above viewer.tiles_above is not in the page: Leaflet.VectorGrid draws it from
  // /collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt (gdi/viewer/tiles.py).  A tile
  // feature carries its fid (the MVT id) and the title, colour_by and label fields; a click
  // fetches the feature from the API for its popup, and the search asks the API.

  // Above the shapes (overlayPane, 400), which would take the clicks meant for a tile's points,
  // and below the markers and popups.
  var TILE_PANE = 'gdiTiles';

  /** The API's base URL: configured (single file), else the server the page came from, at the root the
   *  page was served under (/viewer on the server itself, /gdi/viewer behind a proxy's path prefix). */
  function apiRoot(spec) {
    if (spec.tiled.api && /^https?:/.test(spec.tiled.api)) return spec.tiled.api;
    return global.location.origin + global.location.pathname.replace(/\/viewer(\/[^\/]*)?$/, '');
  }

  /** A served page's tile URL (written below spec.tiled.api) below the root the page came from. */
  function servedTileUrl(spec, url) {
    if (/^https?:/.test(spec.tiled.api || '') || url.indexOf((spec.tiled.api || '') + '/') !== 0) return url;
    return apiRoot(spec) + url.slice((spec.tiled.api || '').length);
  }

  /**
   * VectorGrid keeps no feature id on what it draws: the MVT id (the fid) goes onto it here, once.
   * And a tile's point has no position in degrees (it is drawn in tile pixels), so Leaflet 1.9,
   * which places the events of small circle markers at their getLatLng(), would fail on a click:
   * without getLatLng the event is placed where the mouse is.
   */
  function keepTileFeatureIds() {
    var proto = L.VectorGrid && L.VectorGrid.prototype;
    if (!proto || proto.gdiFids) return;
    proto.gdiFids = true;
    var create = proto._createLayer;
    proto._createLayer = function (feat, pxPerExtent, layerStyle) {
      var layer = create.call(this, feat, pxPerExtent, layerStyle);
      if (layer) {
        layer.gdiFid = feat.id;
        if (layer.getLatLng) layer.getLatLng = null;
      }
      return layer;
    };
  }

  /** The path options of a tile feature: a circle for points, else as pathStyle. */
  function tileStyle(spec, props) {
    if (spec.kind !== 'point') return pathStyle(spec, props);
    var term = termOf(spec, props);
    var colour = term ? term.colour : spec.style.colour;
    return { radius: 5, weight: 1.5, color: '#ffffff', opacity: 1, fill: true, fillColor: colour, fillOpacity: 0.9 };
  }

  /** VectorGrid's options for a tiled layer (called from the layer's script, before init). */
  function tileOptions(spec) {
    keepTileFeatureIds();
    if (OTHER === null) OTHER = spec.tiled.other;
    var styles = {};
    styles[spec.id] = function (props) { return tileStyle(spec, props); };
    return {
      vectorTileLayerStyles: styles,
      interactive: true,
      getFeatureId: function (feat) { return feat.id; },
      pane: TILE_PANE,
      minZoom: spec.tiled.minZoom,
      maxNativeZoom: spec.tiled.maxNativeZoom,
      gdiSpec: spec
    };
  }

  /** A feature of a tiled layer from the API (GeoJSON), by its fid. */
  function fetchTiledFeature(spec, fid) {
    var url = apiRoot(spec) + '/collections/' + encodeURIComponent(spec.id) + '/items/' +
      encodeURIComponent(fid) + '?f=json';
    return fetch(url, { headers: { Accept: 'application/geo+json' } }).then(function (response) {
      if (!response.ok) throw new Error(spec.id + '/' + fid + ': HTTP ' + response.status);
      return response.json();
    });
  }

  /** Where a feature's popup opens: a point at itself, anything else at the middle of its bounds. */
  function featureAnchor(feature) {
    var g = feature.geometry;
    if (g && g.type === 'Point') return L.latLng(g.coordinates[1], g.coordinates[0]);
    return g ? L.geoJSON(feature).getBounds().getCenter() : null;
  }

  /** The API's properties as the embedded ones look: date-times as "YYYY-MM-DD HH:MM" (data.plain). */
  function apiProperties(spec, props) {
    var out = {};
    Object.keys(props || {}).forEach(function (k) { out[k] = props[k]; });
    spec.popup.forEach(function (row) {
      if (row.type !== 'datetime') return;
      row.groups.forEach(function (group) {
        group.forEach(function (f) {
          var m = typeof out[f] === 'string' && /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(out[f]);
          if (m) out[f] = m[1] + ' ' + m[2];
        });
      });
    });
    return out;
  }

  /** Open the popup of a tiled feature (values from the API, as text); resolves with its element. */
  function openTiledPopup(map, spec, cfg, feature, latlng) {
    var popup = L.popup({ maxWidth: 320, maxHeight: POPUP_MAX_HEIGHT })
      .setLatLng(featureAnchor(feature) || latlng)
      .setContent(popupBox(spec, apiProperties(spec, feature.properties), cfg));
    popup.openOn(map);
    return popup.getElement();
  }

  /** A click on a tile feature: fetch it and show its popup. */
  function openTiled(map, spec, cfg, fid, latlng) {
    return fetchTiledFeature(spec, fid).then(function (feature) {
      return openTiledPopup(map, spec, cfg, feature, latlng);
    });
  }

  /** Wire a tiled layer's clicks and tooltips. */
  function tiledLayer(map, spec, grid, cfg) {
    grid.on('click', function (e) {
      if (!e.layer || e.layer.gdiFid === undefined) return;
      L.DomEvent.stop(e);
      openTiled(map, spec, cfg, e.layer.gdiFid, e.latlng).catch(function (error) { console.warn(String(error)); });
    });
    var tip = L.tooltip({ direction: 'top', offset: [0, -6] });
    grid.on('mouseover', function (e) {
      if (!e.layer || !e.layer.properties || !e.latlng) return;
      tip.setLatLng(e.latlng).setContent(el('span', null, featureName(spec, e.layer.properties)));
      map.openTooltip(tip);
    });
    grid.on('mouseout', function () { map.closeTooltip(tip); });
    grid.gdiSpec = spec;
    grid.setUrl(servedTileUrl(spec, grid._url), true);
    // bench/map_tiles.py's first draw of a tiled map: every tile of the first view drawn
    grid.once('load', function () { gdiMap.stats.tilesMs = performance.now(); });
    return grid;
  }

  /** A CQL2 text filter: the label field contains text, case-insensitively. The text is literal, as in
   *  the embedded search: LIKE's wildcards % and _ and its escape \ are escaped (CQL2's backslash). */
  function labelFilter(spec, text) {
    var literal = String(text).replace(/[\\%_]/g, function (ch) { return '\\' + ch; });
    var quoted = "'%" + literal.replace(/'/g, "''") + "%'";
    return 'CASEI("' + spec.label + '") LIKE CASEI(' + quoted + ')';
  }

  /** Search the tiled layers through the API: resolves with search entries (as searchRecords). */
  function searchTiled(specs, text) {
    return Promise.all(specs.map(function (spec) {
      var url = apiRoot(spec) + '/collections/' + encodeURIComponent(spec.id) + '/items?f=json&limit=' +
        spec.tiled.searchLimit + '&filter-lang=cql2-text&filter=' + encodeURIComponent(labelFilter(spec, text));
      return fetch(url, { headers: { Accept: 'application/geo+json' } }).then(function (response) {
        return response.ok ? response.json() : { features: [] };
      }).then(function (collection) {
        return (collection.features || []).map(function (feature) {
          return { spec: spec, feature: feature };
        });
      }, function () { return []; });
    })).then(function (lists) { return [].concat.apply([], lists); });
  }

  /** Fly to a tiled search hit and open its popup. */
  function showTiledHit(map, cfg, hit) {
    var at = featureAnchor(hit.feature);
    if (!at) return;
    var grid = gdiMap.layers.groups[hit.spec.id] && gdiMap.layers.groups[hit.spec.id]['*'];
    if (grid && !map.hasLayer(grid)) map.addLayer(grid);
    map.once('moveend', function () { openTiledPopup(map, hit.spec, cfg, hit.feature, at); });
    map.flyTo(at, Math.max(map.getZoom(), 15), { duration: 0.5 });
  }

  function init(map, cfg, layers, data) {
    var started = performance.now();
    // Without a base map no layer sets maxZoom, which the clusters need.
    if (!map.options.maxZoom) map.options.maxZoom = 19;
    headingsInLayerControl();
    OTHER = cfg.other;
    var table = data.table || [];
    var byRow = {};
    var params = new URLSearchParams(global.location.search);
    var supply = cfg.supply;
    gdiMap.layers = { territory: null, density: null, distance: null, groups: layers.groups, byId: {},
                      densityGroup: layers.density, distanceGroup: layers.distance };
    gdiMap.stats = { points: 0, layers: {}, bands: supply ? supply.bandCount : 0, bandsDrawn: false,
                     tableRows: table.length, initMs: null, readyMs: null, drawnMs: null, tilesMs: null };

    // The table beside the map (hidden in embeds and on narrow screens) first:
    // it decides the map's size, and the view below is fitted to that size.
    var aside = null;
    if (supply && cfg.territory) {
      aside = panel(map, cfg, table, byRow);
      aside.hidden = params.get('embed') === '1' || params.get('table') === '0' || global.innerWidth < 800;
      document.body.classList.add('gdi-with-panel');
      document.body.appendChild(aside);
      map.invalidateSize();
    }

    // The analysis draws below the features (which keep the tooltips); built when switched on.
    map.createPane('gdiAnalysis').style.zIndex = 350;
    if (supply && layers.density) {
      whenShown(map, layers.density, function () {
        gdiMap.layers.density = L.geoJSON(data.layers[cfg.territory.layer], {
          pane: 'gdiAnalysis', interactive: false, className: 'gdi-density',
          style: function (f) {
            var cls = f.properties._cls;
            var entry = cls === null || cls === undefined ? null : supply.densityLegend[cls];
            return { stroke: false, fillColor: entry ? entry.colour : '#bdbdbd', fillOpacity: 0.7 };
          }
        }).addTo(layers.density);
      });
    }
    if (supply && layers.distance) {
      whenShown(map, layers.distance, function () {
        loadBands(supply).then(function (bands) {
          gdiMap.layers.distance = L.geoJSON(bands, {
            pane: 'gdiAnalysis', interactive: false, className: 'gdi-band',
            style: function (f) {
              return { stroke: false, fillColor: supply.bandColours[f.properties.band], fillOpacity: 0.5 };
            }
          }).addTo(layers.distance);
          gdiMap.stats.bands = bands.features.length;
          gdiMap.stats.bandsDrawn = true;
        }, function (error) {
          console.warn(String(error));
        });
      });
    }

    // Lines, polygons and the territory; the county outlines with the territory.
    var drawn = [];  // {spec, features | markers}, in layer order (search, legend)
    var points = [];
    var tiled = [];  // the VectorGrid layers of tiled collections
    cfg.layers.forEach(function (spec) {
      var groups = layers.groups[spec.id] || {};
      var payload = data.layers[spec.id];
      gdiMap.stats.layers[spec.id] = spec.count;
      if (spec.tiled) {
        tiled.push(tiledLayer(map, spec, groups['*'], cfg));
        return;
      }
      if (spec.kind === 'point') {
        var firstTerm = spec.colourBy ? spec.present[0] : null;
        if (firstTerm && groups[firstTerm]) groups[firstTerm].options.gdiHeading = spec.title;
        var entry = { spec: spec, groups: groups, payload: payload };
        points.push(entry);
        drawn.push(entry);
        return;
      }
      var group = groups['*'];
      var features = featureLayer(spec, payload, group, cfg, table, byRow);
      gdiMap.layers.byId[spec.id] = features;
      if (spec.territory && cfg.territory) {
        gdiMap.layers.territory = features;
        L.geoJSON(data.counties, {
          interactive: false, className: 'gdi-county',
          style: { color: '#263238', weight: 3.5, fill: false, opacity: 0.9 }
        }).addTo(group);
      }
      drawn.push({ spec: spec, features: features });
    });

    // ?key=06534014 (or ?<key field>=…): open on that territory feature; otherwise
    // on all the data.  Set before the markers go in, so the clusters are computed
    // once, for this view (layout.js sets it again once the layer control is there,
    // and the markers of clusters on the map wait for that).
    var wanted = cfg.territory ? (params.get('key') || params.get(cfg.territory.key)) : null;
    var target = null;
    if (wanted && gdiMap.layers.territory) {
      gdiMap.layers.territory.eachLayer(function (layer) {
        if (!target && layer.gdiKey === wanted) target = layer;
      });
    }
    function openingView() {  // again from layout.js once every control is there
      if (target) selectTerritory(map, target, false);
      else if (cfg.bounds) gdiLayout.fitBounds(map, cfg.bounds, { maxZoom: cfg.maxFitZoom, animate: false });
    }
    openingView();
    gdiMap.openingView = openingView;

    // The tiled layers go on the map once the view is set (no tiles fetched for the default view).
    if (tiled.length) map.createPane(TILE_PANE).style.zIndex = 450;
    tiled.forEach(function (grid) { if (grid.gdiSpec.show) map.addLayer(grid); });

    // The points.  A marker gets its popup and tooltip when first needed
    // (hover, click, search, openPoint): binding 10,000 up front costs time.
    var allMarkers = [];
    function bindOn(e, open) {
      var marker = e.layer;
      if (marker && marker.gdiBind && !marker.getPopup()) open(marker.gdiBind());
    }
    points.forEach(function (entry) {
      var made = pointMarkers(entry.spec, entry.payload, entry.groups, cfg);
      entry.markers = made.markers;
      allMarkers = allMarkers.concat(made.markers);
      Object.keys(made.byGroup).forEach(function (key) {
        var group = entry.groups[key] || entry.groups['*'];
        group.on('click', function (e) { bindOn(e, function (m) { m.openPopup(); }); });
        group.on('mouseover', function (e) { bindOn(e, function (m) { m.openTooltip(); }); });
        group.addLayers(made.byGroup[key]);
      });
      gdiMap.stats.points += made.markers.length;
    });

    L.control.scale({ imperial: false, position: 'bottomright' }).addTo(map);  // above the attribution
    var records = null;  // the search entries, made on the first search
    searchControl(map, cfg, function () {
      return records || (records = searchRecords(drawn));
    }, tiled.map(function (grid) { return grid.gdiSpec; }).filter(function (spec) { return spec.label; })).addTo(map);
    legend(cfg, map, { density: layers.density, distance: layers.distance },
           data.counties && data.counties.features.length > 0).addTo(map);
    cfg.attribution.forEach(function (text) { map.attributionControl.addAttribution(text); });
    if (aside) panelToggle(map, cfg, aside).addTo(map);

    gdiMap.map = map;
    gdiMap.markers = allMarkers;
    gdiMap.tiled = tiled;
    gdiMap.csv = function () { return supply && cfg.territory ? tableCsv(cfg, table) : ''; };
    gdiMap.selected = target ? wanted : null;
    gdiMap.stats.initMs = performance.now() - started;
    gdiMap.stats.readyMs = performance.now();  // since navigation start
    // drawnMs: after the next frame is painted (bench/viewer.py's "first draw").
    requestAnimationFrame(function () { setTimeout(function () { gdiMap.stats.drawnMs = performance.now(); }, 0); });
    document.documentElement.setAttribute('data-gdi-ready', '1');
  }

  /** Show the i-th point (out of its cluster) and open its popup; resolves with the popup's element. */
  function openPoint(i) {
    return showPoint(gdiMap.map, gdiMap.markers[i]);
  }

  var gdiMap = { init: init, clusterIcon: clusterIcon, focus: focus, openPoint: openPoint, safeHttpUrl: safeHttpUrl,
                 tableCsv: tableCsv, tileOptions: tileOptions, map: null, stats: null, markers: [], tiled: [] };
  global.gdiMap = gdiMap;
})(window);
