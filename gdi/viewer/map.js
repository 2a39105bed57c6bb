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
 * Speed: markers are plain L.marker objects sharing one divIcon per category;
 * the cluster groups only create DOM for what is visible, and popups/tooltips
 * are built when opened.  10,000 points draw well under a second.
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

  /** One point row ([lat, lon, ...fields]) as an object keyed by field name. */
  function record(row, fields) {
    var out = { lat: row[0], lon: row[1] };
    for (var i = 0; i < fields.length; i++) out[fields[i]] = row[i + 2];
    return out;
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

  function boundaryTooltip(props, cfg) {
    var box = el('div', 'gdi-tooltip');
    box.appendChild(el('strong', null, props.name));
    box.appendChild(el('div', null, 'AGS ' + (props.ags || '–')));
    if (props.population !== null && props.population !== undefined) {
      box.appendChild(el('div', null, cfg.labels.population + ': ' + Number(props.population).toLocaleString(cfg.lang)));
    }
    return box;
  }

  function legend(cfg, present) {
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
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    };
    return control;
  }

  /** Zoom to a point (out of its cluster) and open its popup, or to a municipality. */
  function focus(map, layer) {
    if (layer instanceof L.Marker && layer.gdiGroup) {
      if (!map.hasLayer(layer.gdiGroup)) map.addLayer(layer.gdiGroup);
      layer.gdiGroup.zoomToShowLayer(layer, function () { layer.openPopup(); });
    } else if (layer && layer.getBounds) {
      map.fitBounds(layer.getBounds());
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

  function searchControl(map, cfg, records) {
    return new L.Control.Search({
      sourceData: function (text, callResponse) {
        callResponse(records);
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

  function init(map, cfg, layers, data) {
    var started = performance.now();

    var boundaryLayer = L.geoJSON(data.boundaries, {
      className: 'gdi-boundary',
      style: { color: '#37474f', weight: 1.5, fillColor: '#90a4ae', fillOpacity: 0.08 },
      onEachFeature: function (feature, layer) {
        layer.bindTooltip(function () { return boundaryTooltip(feature.properties, cfg); }, { sticky: true });
      }
    }).addTo(layers.boundaries);

    var icons = {};
    var byCategory = {};
    var markers = data.points.map(function (row) {
      var p = record(row, cfg.fields);
      var icon = icons[p.category] || (icons[p.category] = markerIcon(cfg.categories[p.category]));
      var marker = L.marker([p.lat, p.lon], { icon: icon });
      marker.gdiPoint = p;
      marker.gdiGroup = layers.groups[p.category];
      marker.bindPopup(function () { return pointPopup(p, cfg); }, { maxWidth: 320 });
      marker.bindTooltip(function () { return el('span', null, p.name || cfg.categories[p.category].label); });
      (byCategory[p.category] = byCategory[p.category] || []).push(marker);
      return marker;
    });
    Object.keys(byCategory).forEach(function (id) { layers.groups[id].addLayers(byCategory[id]); });

    L.control.scale({ imperial: false }).addTo(map);
    searchControl(map, cfg, searchRecords(cfg, markers, boundaryLayer)).addTo(map);
    legend(cfg, Object.keys(cfg.categories).filter(function (id) { return byCategory[id]; })).addTo(map);
    cfg.attribution.forEach(function (text) { map.attributionControl.addAttribution(text); });

    gdiMap.map = map;
    gdiMap.stats = {
      points: markers.length,
      boundaries: data.boundaries.features.length,
      initMs: performance.now() - started
    };
    document.documentElement.setAttribute('data-gdi-ready', '1');
  }

  var gdiMap = { init: init, clusterIcon: clusterIcon, focus: focus, safeHttpUrl: safeHttpUrl, map: null, stats: null };
  global.gdiMap = gdiMap;
})(window);
