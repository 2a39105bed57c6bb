/*
 * gdi planners' map.  folium creates the map, the empty layers (one cluster
 * group per category, one group for the municipal boundaries) and the layer
 * control; gdiMap.init() fills them from the data embedded in the page.
 *
 * Security: every attribute value comes from a member's upload and is
 * untrusted.  It reaches the page only through textContent and DOM properties,
 * never as HTML.  Colours and icon names come from the collection YAML and are
 * checked against strict patterns in gdi/viewer/style.py before they get here.
 *
 * Speed (10,000 points, see bench/viewer.py): the data comes as JSON elements
 * (JSON.parse, not the JS parser) with the points column by column; markers
 * are plain L.marker objects sharing one divIcon per category, get their
 * popup/tooltip bound on first hover/click/search, and go into the cluster
 * groups only after the view is set (no cluster re-computation for a zoom).
 * The analysis layers are built when switched on; the distance bands are
 * fetched then from a file next to the page (inline in the single file).
 */
(function (global) {
  'use strict';

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
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

  function telHref(value) {
    var digits = String(value).replace(/[^0-9+]/g, '');
    return digits.length >= 3 ? 'tel:' + digits : null;
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

  /** A round coloured badge with the category's icon (legend, layer control, popup). */
  function swatch(style) {
    var badge = el('span', 'gdi-swatch');
    badge.style.background = style.colour;
    badge.appendChild(el('i', 'fa-solid fa-' + style.icon));
    return badge;
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

  /** Cluster bubble in the category's colour (called by L.markerClusterGroup). */
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

  /** A function i -> point i as an object keyed by field name (lat, lon, category, name, ...). */
  function recorder(points, fields) {
    var columns = fields.map(function (f) { return points.fields[f]; });
    return function (i) {
      var out = { lat: points.lat[i], lon: points.lon[i] };
      for (var j = 0; j < fields.length; j++) out[fields[j]] = columnValue(columns[j], i);
      return out;
    };
  }

  function addRow(table, label, value) {
    if (value === null || value === undefined || value === '') return;
    var tr = el('tr');
    tr.appendChild(el('th', null, label));
    var td = el('td');
    if (value instanceof Node) td.appendChild(value);
    else td.textContent = String(value);
    tr.appendChild(td);
    table.appendChild(tr);
  }

  function joined(parts, sep) {
    return parts.filter(function (p) { return p; }).join(sep);
  }

  function pointPopup(p, cfg) {
    var style = cfg.categories[p.category];
    var labels = cfg.labels;
    var box = el('div', 'gdi-popup');
    box.appendChild(el('h3', null, p.name || style.label));
    var category = el('div', 'gdi-popup-category');
    category.appendChild(swatch(style));
    category.appendChild(el('span', null, style.label));
    box.appendChild(category);

    var table = el('table');
    addRow(table, labels.address, joined([joined([p.street, p.housenumber], ' '), joined([p.postcode, p.city], ' ')], ', '));
    addRow(table, labels.opening_hours, p.opening_hours);
    var web = safeHttpUrl(p.website);
    addRow(table, labels.website, web ? link(p.website, web, true) : p.website);
    var tel = p.phone ? telHref(p.phone) : null;
    addRow(table, labels.phone, tel ? link(p.phone, tel, false) : p.phone);
    addRow(table, labels.operator, p.operator);
    addRow(table, labels.member, p.member);
    addRow(table, labels.dataset, p.dataset);
    addRow(table, labels.updated, p.updated);
    box.appendChild(table);
    return box;
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

  function boundaryTooltip(props, cfg, table) {
    var box = el('div', 'gdi-tooltip');
    box.appendChild(el('strong', null, props.name));
    box.appendChild(el('div', null, 'AGS ' + (props.ags || '–')));
    if (props.population !== null && props.population !== undefined) {
      box.appendChild(el('div', null, cfg.labels.population + ': ' + integer(props.population, cfg)));
    }
    var row = table && table[props.row];
    if (row) {
      var t = tableRecord(row, cfg);
      box.appendChild(el('div', null, cfg.text.points + ': ' + t.total + ' (' +
        (t.rate === null ? cfg.text.no_population : fmt(t.rate, cfg, 2) + ' ' + cfg.text.density_short) + ')'));
      t.shares.forEach(function (share, i) {
        box.appendChild(el('div', null, cfg.shareLabels[i] + ': ' + percent(share, cfg)));
      });
      box.appendChild(el('div', null, cfg.text.beyond_area + ': ' + fmt(t.beyondKm2, cfg, 1) + ' km²'));
    }
    return box;
  }

  /** A table row as an object (layout written by build.supply_table). */
  function tableRecord(row, cfg) {
    var n = cfg.tableCategories.length;
    var k = cfg.shareLabels.length;
    return {
      ags: row[0], name: row[1], population: row[2],
      counts: row.slice(3, 3 + n), total: row[3 + n], rate: row[4 + n],
      shares: row.slice(5 + n, 5 + n + k), beyondKm2: row[5 + n + k]
    };
  }

  function legendSection(title, entries, className) {
    var section = el('div', 'gdi-legend-section ' + className);
    section.appendChild(el('h4', null, title));
    entries.forEach(function (entry) {
      var item = el('div', 'gdi-legend-item');
      var box = el('span', 'gdi-swatch gdi-swatch-area');
      box.style.background = entry.colour;
      item.appendChild(box);
      item.appendChild(el('span', null, entry.label));
      section.appendChild(item);
    });
    return section;
  }

  function legend(cfg, present, map, layers) {
    var control = L.control({ position: 'bottomright' });
    control.onAdd = function () {
      var box = el('div', 'gdi-legend');
      box.appendChild(el('h4', null, cfg.text.legend));
      present.forEach(function (id) {
        var item = el('div', 'gdi-legend-item');
        item.appendChild(swatch(cfg.categories[id]));
        item.appendChild(el('span', null, cfg.categories[id].label));
        box.appendChild(item);
      });
      var outline = el('div', 'gdi-legend-item');
      outline.appendChild(el('span', 'gdi-swatch gdi-swatch-boundary'));
      outline.appendChild(el('span', null, cfg.text.boundaries));
      box.appendChild(outline);
      var county = el('div', 'gdi-legend-item');
      county.appendChild(el('span', 'gdi-swatch gdi-swatch-county'));
      county.appendChild(el('span', null, cfg.text.county));
      box.appendChild(county);
      var density = legendSection(cfg.text.density, cfg.densityLegend, 'gdi-legend-density');
      var distance = legendSection(cfg.text.distance, cfg.bandLabels.map(function (label, i) {
        return { label: label, colour: cfg.bandColours[i] };
      }), 'gdi-legend-distance');
      box.appendChild(density);
      box.appendChild(distance);
      function sync() {
        density.hidden = !map.hasLayer(layers.density);
        distance.hidden = !map.hasLayer(layers.distance);
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
    var header = ['AGS', cfg.text.municipality, cfg.labels.population].concat(
      cfg.tableCategories.map(function (id) { return cfg.categories[id].label; }),
      [cfg.text.points, cfg.text.density_short], cfg.shareLabels, [cfg.text.beyond_area + ' (km²)']);
    var lines = [header.map(function (h) { return csvCell(h, sep); }).join(sep)];
    rows.forEach(function (row) {
      lines.push(row.map(function (v) { return csvCell(v, sep); }).join(sep));
    });
    return '\ufeff' + lines.join('\r\n') + '\r\n';
  }

  function panel(map, cfg, rows, byRow) {
    var aside = el('aside', 'gdi-panel');
    aside.id = 'gdi-panel';
    var head = el('div', 'gdi-panel-head');
    head.appendChild(el('h2', null, cfg.text.table));
    var download = el('a', 'gdi-csv', cfg.text.csv);
    download.download = cfg.lang === 'de' ? 'nahversorgung_gemeinden.csv' : 'local_supply_municipalities.csv';
    download.href = '#';
    download.addEventListener('click', function () {
      // Built on click from the embedded rows; also works in the single-file map.
      var blob = new Blob([tableCsv(cfg, rows)], { type: 'text/csv;charset=utf-8' });
      if (download.href.indexOf('blob:') === 0) URL.revokeObjectURL(download.href);
      download.href = URL.createObjectURL(blob);
    });
    head.appendChild(download);
    if (cfg.langSwitch) {
      var params = new URLSearchParams(global.location.search);
      params.set('lang', cfg.langSwitch);
      head.appendChild(link(cfg.text.other_lang, '?' + params.toString(), false));
    }
    aside.appendChild(head);

    var table = el('table', 'gdi-table');
    var thead = el('thead');
    var tr = el('tr');
    tr.appendChild(el('th', null, cfg.text.municipality));
    tr.appendChild(el('th', 'num', cfg.labels.population));
    cfg.tableCategories.forEach(function (id) {
      var th = el('th', 'num');
      th.title = cfg.categories[id].label;
      th.appendChild(swatch(cfg.categories[id]));
      tr.appendChild(th);
    });
    tr.appendChild(el('th', 'num', cfg.text.points));
    tr.appendChild(el('th', 'num', cfg.text.density_short));
    cfg.shareShort.forEach(function (label, i) {
      var th = el('th', 'num', label);
      th.title = cfg.shareLabels[i];
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    table.appendChild(thead);
    var tbody = el('tbody');
    rows.forEach(function (row, i) {
      var t = tableRecord(row, cfg);
      var line = el('tr');
      line.setAttribute('data-ags', t.ags || '');
      var name = el('td', 'name', t.name);
      name.title = 'AGS ' + (t.ags || '–');
      line.appendChild(name);
      line.appendChild(el('td', 'num', t.population === null ? '–' : integer(t.population, cfg)));
      t.counts.forEach(function (c) { line.appendChild(el('td', 'num', c || '')); });
      line.appendChild(el('td', 'num', t.total));
      line.appendChild(el('td', 'num', t.rate === null ? '–' : fmt(t.rate, cfg, 2)));
      t.shares.forEach(function (share) { line.appendChild(el('td', 'num', percent(share, cfg))); });
      line.addEventListener('click', function () { if (byRow[i]) selectMunicipality(map, byRow[i]); });
      tbody.appendChild(line);
    });
    table.appendChild(tbody);
    var wrap = el('div', 'gdi-table-wrap');
    wrap.appendChild(table);
    aside.appendChild(wrap);
    aside.appendChild(el('p', 'gdi-note', cfg.tableNote));
    if (cfg.unassigned) aside.appendChild(el('p', 'gdi-note', cfg.unassigned));
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

  var selected = null;

  /** Zoom to a municipality and outline it (animated unless animate === false). */
  function selectMunicipality(map, layer, animate) {
    if (selected && selected !== layer) selected.setStyle({ weight: 1.5, color: '#37474f' });
    selected = layer;
    layer.setStyle({ weight: 4, color: '#e65100' });
    layer.bringToFront();
    map.fitBounds(layer.getBounds(), { maxZoom: 14, animate: animate !== false });
    var ags = layer.feature.properties.ags;
    document.querySelectorAll('.gdi-table tr.selected').forEach(function (tr) { tr.classList.remove('selected'); });
    document.querySelectorAll('.gdi-table tr').forEach(function (tr) {
      if (ags && tr.getAttribute('data-ags') === ags) {
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

  /** Show a point with its popup, or zoom to a municipality. */
  function focus(map, layer) {
    if (layer instanceof L.Marker && layer.gdiGroup) {
      showPoint(map, layer);
    } else if (layer && layer.getBounds) {
      selectMunicipality(map, layer);
    }
  }

  /** Search entries "label → position with .layer"; labels made unique for the control. */
  function searchRecords(cfg, markers, boundaryLayer) {
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
    boundaryLayer.eachLayer(function (layer) {
      var props = layer.feature.properties;
      add(joined([props.name, cfg.text.municipality], ' – '), layer.getBounds().getCenter(), layer);
    });
    markers.forEach(function (marker) {
      var p = marker.gdiPoint;
      add(joined([p.name || cfg.categories[p.category].label, p.city], ' – '), marker.getLatLng(), marker);
    });
    return records;
  }

  function searchControl(map, cfg, getRecords) {
    return new L.Control.Search({
      sourceData: function (text, callResponse) {
        callResponse(getRecords());
        return { abort: function () {} };
      },
      formatData: function (data) { return data; },
      buildTip: function (text) { return el('li', null, text); },  // text, not HTML
      moveToLocation: function (latlng) { focus(map, latlng.layer); },
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

  /** The URL of a file next to the page (the server answers /viewer for /viewer/index.html). */
  function besidePage(name) {
    var here = new URL(global.location.href);
    var path = here.pathname;
    if (!/\/$/.test(path) && path.split('/').pop().indexOf('.') < 0) path += '/';
    return new URL(name, new URL(path, here.href)).href;
  }

  /** The distance bands: inline (single file) or fetched from beside the page. */
  function loadBands(cfg) {
    var inline = document.getElementById('gdi-bands');
    if (inline) return Promise.resolve(JSON.parse(inline.textContent));
    if (!cfg.bandsUrl) return Promise.resolve({ type: 'FeatureCollection', features: [] });
    return fetch(besidePage(cfg.bandsUrl)).then(function (response) {
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

  function init(map, cfg, layers, data) {
    var started = performance.now();
    // Without a base map no layer sets maxZoom, which the clusters need.
    if (!map.options.maxZoom) map.options.maxZoom = 19;
    var table = data.table || [];
    var byRow = {};
    var params = new URLSearchParams(global.location.search);
    gdiMap.layers = { boundaries: null, density: null, distance: null, groups: layers.groups,
                      densityGroup: layers.density, distanceGroup: layers.distance };
    gdiMap.stats = { points: data.points.n, boundaries: data.boundaries.features.length, bands: cfg.bandCount,
                     bandsDrawn: false, tableRows: table.length, initMs: null, readyMs: null, drawnMs: null };

    // The table beside the map (hidden in embeds and on narrow screens) first:
    // it decides the map's size, and the view below is fitted to that size.
    var aside = panel(map, cfg, table, byRow);
    aside.hidden = params.get('embed') === '1' || params.get('table') === '0' || global.innerWidth < 800;
    document.body.classList.add('gdi-with-panel');
    document.body.appendChild(aside);
    map.invalidateSize();

    // The analysis draws below the boundaries (which keep the tooltips); built when switched on.
    map.createPane('gdiAnalysis').style.zIndex = 350;
    whenShown(map, layers.density, function () {
      gdiMap.layers.density = L.geoJSON(data.boundaries, {
        pane: 'gdiAnalysis', interactive: false, className: 'gdi-density',
        style: function (f) {
          var cls = f.properties.cls;
          var entry = cls === null || cls === undefined ? null : cfg.densityLegend[cls];
          return { stroke: false, fillColor: entry ? entry.colour : '#bdbdbd', fillOpacity: 0.7 };
        }
      }).addTo(layers.density);
    });
    whenShown(map, layers.distance, function () {
      loadBands(cfg).then(function (bands) {
        gdiMap.layers.distance = L.geoJSON(bands, {
          pane: 'gdiAnalysis', interactive: false, className: 'gdi-band',
          style: function (f) {
            return { stroke: false, fillColor: cfg.bandColours[f.properties.band], fillOpacity: 0.5 };
          }
        }).addTo(layers.distance);
        gdiMap.stats.bands = bands.features.length;
        gdiMap.stats.bandsDrawn = true;
      }, function (error) {
        console.warn(String(error));
      });
    });

    var boundaryLayer = L.geoJSON(data.boundaries, {
      className: 'gdi-boundary',
      style: { color: '#37474f', weight: 1.5, fillColor: '#90a4ae', fillOpacity: 0.08 },
      onEachFeature: function (feature, layer) {
        byRow[feature.properties.row] = layer;
        layer.bindTooltip(function () { return boundaryTooltip(feature.properties, cfg, table); }, { sticky: true });
      }
    }).addTo(layers.boundaries);
    L.geoJSON(data.counties, {
      interactive: false, className: 'gdi-county',
      style: { color: '#263238', weight: 3.5, fill: false, opacity: 0.9 }
    }).addTo(layers.boundaries);
    gdiMap.layers.boundaries = boundaryLayer;

    // ?ags=06534014: open on that municipality; otherwise on all the data.  Set
    // before the markers go in, so the clusters are computed once, for this view.
    var ags = params.get('ags');
    var target = null;
    if (ags) {
      boundaryLayer.eachLayer(function (layer) {
        if (!target && layer.feature.properties.ags === ags) target = layer;
      });
    }
    if (target) selectMunicipality(map, target, false);
    else if (cfg.bounds) map.fitBounds(cfg.bounds, { maxZoom: cfg.maxFitZoom, animate: false });

    // The points.  A marker gets its popup and tooltip when first needed
    // (hover, click, search, openPoint): binding 10,000 up front costs time.
    var recordAt = recorder(data.points, cfg.fields);
    var categoryColumn = data.points.fields.category;
    var PointMarker = L.Marker.extend({
      gdiBind: function () {
        if (this.getPopup()) return this;
        var p = this.gdiPoint;
        this.bindPopup(function () { return pointPopup(p, cfg); }, { maxWidth: 320 });
        this.bindTooltip(function () { return el('span', null, p.name || cfg.categories[p.category].label); });
        return this;
      }
    });
    Object.defineProperty(PointMarker.prototype, 'gdiPoint', {
      get: function () { return this._gdiPoint || (this._gdiPoint = recordAt(this.gdiIndex)); }
    });
    var icons = {};
    var byCategory = {};
    var markers = new Array(data.points.n);
    for (var i = 0; i < data.points.n; i++) {
      var category = columnValue(categoryColumn, i);
      var icon = icons[category] || (icons[category] = markerIcon(cfg.categories[category]));
      var marker = new PointMarker([data.points.lat[i], data.points.lon[i]], { icon: icon });
      marker.gdiIndex = i;
      marker.gdiGroup = layers.groups[category];
      (byCategory[category] = byCategory[category] || []).push(marker);
      markers[i] = marker;
    }
    function bindOn(e, open) {
      var marker = e.layer;
      if (marker instanceof PointMarker && !marker.getPopup()) open(marker.gdiBind());
    }
    Object.keys(byCategory).forEach(function (id) {
      var group = layers.groups[id];
      group.on('click', function (e) { bindOn(e, function (m) { m.openPopup(); }); });
      group.on('mouseover', function (e) { bindOn(e, function (m) { m.openTooltip(); }); });
      group.addLayers(byCategory[id]);
    });

    L.control.scale({ imperial: false }).addTo(map);
    var records = null;  // the search entries, made on the first search
    searchControl(map, cfg, function () {
      return records || (records = searchRecords(cfg, markers, boundaryLayer));
    }).addTo(map);
    legend(cfg, Object.keys(cfg.categories).filter(function (id) { return byCategory[id]; }), map, layers).addTo(map);
    cfg.attribution.forEach(function (text) { map.attributionControl.addAttribution(text); });
    panelToggle(map, cfg, aside).addTo(map);

    gdiMap.map = map;
    gdiMap.markers = markers;
    gdiMap.csv = function () { return tableCsv(cfg, table); };
    gdiMap.selected = target ? ags : null;
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
                 tableCsv: tableCsv, map: null, stats: null, markers: [] };
  global.gdiMap = gdiMap;
})(window);
