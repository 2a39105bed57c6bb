/*
 * gdi planners' map: the layout.  Nothing covers anything: the layer list, the
 * legend, the popups and the scale bar stay clear of each other, of the other
 * controls (zoom, full screen, search, table button, attribution) and of the
 * area the map opens on.  map.js builds the map and its layers; this file only
 * places things (see layout.css), mostly through Leaflet's own options:
 *
 * - the opening view is fitted with paddingTopLeft/paddingBottomRight chosen so
 *   that every control lies outside the fitted box (fitBounds);
 * - a popup is panned clear of every control (autoPanPadding, widened per popup
 *   the same way) and is drawn above them: the popup and tooltip panes move out
 *   of the map pane (which is a stacking context below the controls) into the
 *   map container, following the map pane's position;
 * - the layer list and the legend fold (folded at first where there is no room,
 *   as on a phone; on a phone one opens, the other folds), by buttons named in
 *   the page's language, usable with the keyboard (Enter, Space, Escape);
 *   an open list or legend never grows over the controls of the other corners;
 * - long popup texts are capped with a "mehr"/"more" button (text, never HTML).
 */
(function (global) {
  'use strict';

  var NARROW = 600;  // px of map width below which the layer list and the legend start folded
  var GAP = 8;       // px kept free between a control and the fitted area or a popup
  var CAP = 300;     // characters of a popup text shown before "mehr"
  var LIST_WIDTH = 320;  // px at most for the layer list: long layer names wrap (leaves room for the counties)
  var MIN_FIT = 80;  // px: a padding that leaves less than this for the fitted area is no choice

  /** The visible controls' rectangles, relative to the map container, with the side of the map they are on. */
  function controlRects(map) {
    var box = map.getContainer().getBoundingClientRect();
    var size = map.getSize();
    var out = [];
    var nodes = map.getContainer().querySelectorAll('.leaflet-control-container .leaflet-control');
    for (var i = 0; i < nodes.length; i++) {
      var r = nodes[i].getBoundingClientRect();
      if (!r.width || !r.height) continue;
      var rect = { left: r.left - box.left, top: r.top - box.top, right: r.right - box.left, bottom: r.bottom - box.top };
      rect.east = (rect.left + rect.right) / 2 > size.x / 2;
      rect.south = (rect.top + rect.bottom) / 2 > size.y / 2;
      out.push(rect);
    }
    return out;
  }

  /**
   * The paddings (paddingTopLeft, paddingBottomRight) that keep a box inside them
   * clear of every control: each control is kept out either sideways (the left or
   * right padding reaches past it) or up/down (the top or bottom padding does).
   * One candidate per combination, duplicates dropped.
   */
  function paddings(map, gap) {
    var rects = controlRects(map);
    var size = map.getSize();
    var seen = {};
    var out = [];
    var n = Math.min(rects.length, 12);
    for (var mask = 0; mask < (1 << n); mask++) {
      var tl = [gap, gap];
      var br = [gap, gap];
      for (var i = 0; i < n; i++) {
        var r = rects[i];
        if (mask & (1 << i)) {      // sideways
          if (r.east) br[0] = Math.max(br[0], size.x - r.left + gap);
          else tl[0] = Math.max(tl[0], r.right + gap);
        } else if (r.south) {
          br[1] = Math.max(br[1], size.y - r.top + gap);
        } else {
          tl[1] = Math.max(tl[1], r.bottom + gap);
        }
      }
      var key = tl.concat(br).join(',');
      if (seen[key]) continue;
      seen[key] = true;
      out.push({ tl: L.point(tl), br: L.point(br) });
    }
    return out;
  }

  /** The padding among paddings(map) with which bounds show largest (then: the most room around them). */
  function fitPadding(map, bounds, maxZoom) {
    var size = map.getSize();
    var best = null;
    paddings(map, GAP).forEach(function (p) {
      var room = size.subtract(p.tl).subtract(p.br);
      if (room.x < MIN_FIT || room.y < MIN_FIT) return;
      var zoom = Math.min(map.getBoundsZoom(bounds, false, p.tl.add(p.br)), maxZoom);
      var area = room.x * room.y;
      if (!best || zoom > best.zoom || (zoom === best.zoom && area > best.area)) {
        best = { zoom: zoom, area: area, tl: p.tl, br: p.br };
      }
    });
    return best;
  }

  /** map.fitBounds, with the padding that keeps bounds clear of every control. */
  function fitBounds(map, bounds, options) {
    bounds = L.latLngBounds(bounds);
    var opts = L.extend({}, options);
    var best = fitPadding(map, bounds, opts.maxZoom === undefined ? map.getMaxZoom() : opts.maxZoom);
    if (best) {
      opts.paddingTopLeft = best.tl;
      opts.paddingBottomRight = best.br;
    }
    map.fitBounds(bounds, opts);
    return map;
  }

  // ---- popups: above the controls, panned clear of them ----------------------------------

  /**
   * The map pane has a CSS transform (Leaflet moves it to pan), so it is a
   * stacking context and nothing in it can be drawn above the controls.  The
   * popup and tooltip panes go into the map container instead (above the control
   * corners, layout.css) and take over the map pane's position whenever it moves.
   */
  function lift(map) {
    var container = map.getContainer();
    var mapPane = map.getPane('mapPane');
    var panes = ['tooltipPane', 'popupPane'].map(function (name) { return map.getPane(name); });
    function follow() {
      panes.forEach(function (pane) { pane.style.transform = mapPane.style.transform; });
    }
    panes.forEach(function (pane) {
      pane.classList.add('gdi-lifted');
      container.appendChild(pane);
    });
    follow();
    new MutationObserver(follow).observe(mapPane, { attributes: true, attributeFilter: ['style'] });
    map.gdiFollow = follow;
  }

  /**
   * Leaflet pans an opening popup into the map less autoPanPadding.  Before it
   * does, the padding is widened (for this pan only) to the candidate of
   * paddings() that the popup fits into with the shortest pan, so the popup ends
   * up clear of every control.  When none fits (a tiny map) Leaflet pans as
   * usual, and the popup is still drawn above the controls.
   */
  function popupsAvoidControls() {
    var proto = L.Popup.prototype;
    if (proto.gdiAvoidControls) return;
    proto.gdiAvoidControls = true;
    var adjustPan = proto._adjustPan;
    proto._adjustPan = function () {
      var options = this.options;
      var map = this._map;
      var saved = [options.autoPanPaddingTopLeft, options.autoPanPaddingBottomRight];
      if (options.autoPan && map && this._container && !this._autopanning) {
        if (map.gdiFollow) map.gdiFollow();
        var m = map.getContainer().getBoundingClientRect();
        var p = this._container.getBoundingClientRect();
        var x = p.left - m.left;
        var y = p.top - m.top;
        var w = p.width;
        var h = p.height + (parseInt(L.DomUtil.getStyle(this._container, 'marginBottom'), 10) || 0);
        var size = map.getSize();
        var base = L.point(options.autoPanPadding);
        var best = null;
        paddings(map, Math.max(base.x, base.y)).forEach(function (c) {
          if (w + c.tl.x + c.br.x > size.x || h + c.tl.y + c.br.y > size.y) return;
          var dx = 0;
          var dy = 0;
          if (x + w + c.br.x > size.x) dx = x + w - size.x + c.br.x;
          if (x - dx - c.tl.x < 0) dx = x - c.tl.x;
          if (y + h + c.br.y > size.y) dy = y + h - size.y + c.br.y;
          if (y - dy - c.tl.y < 0) dy = y - c.tl.y;
          var cost = Math.abs(dx) + Math.abs(dy);
          if (!best || cost < best.cost) best = { cost: cost, tl: c.tl, br: c.br };
        });
        if (best) {
          options.autoPanPaddingTopLeft = best.tl;
          options.autoPanPaddingBottomRight = best.br;
        }
      }
      adjustPan.call(this);
      options.autoPanPaddingTopLeft = saved[0];
      options.autoPanPaddingBottomRight = saved[1];
    };
  }

  /**
   * A popup text: as it is when short, else its first CAP characters (cut at a
   * space near there) with a button that shows all of it ("mehr") and folds it
   * again ("weniger").  Text only: the value is an upload's.
   */
  function capped(value, text) {
    var full = String(value);
    if (full.length <= CAP) return full;
    var cut = full.lastIndexOf(' ', CAP);
    var short = full.slice(0, cut > CAP * 0.8 ? cut : CAP).replace(/\s+$/, '') + ' …';
    var box = document.createElement('span');
    box.className = 'gdi-capped';
    var shown = document.createElement('span');
    shown.textContent = short;
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'gdi-more';
    function show(all) {
      shown.textContent = all ? full : short;
      button.textContent = all ? text.less : text.more;
      button.setAttribute('aria-expanded', String(all));
    }
    button.addEventListener('click', function (e) {
      L.DomEvent.stop(e);
      show(button.getAttribute('aria-expanded') !== 'true');
      // the popup measures itself again (maxHeight, position, pan): see relayoutPopups()
      box.dispatchEvent(new CustomEvent('gdi-resized', { bubbles: true }));
    });
    show(false);
    box.appendChild(shown);
    box.appendChild(document.createTextNode(' '));
    box.appendChild(button);
    return box;
  }

  /**
   * A popup whose text was unfolded or folded is laid out again: setContent with
   * the same node keeps it as it is and makes Leaflet measure it again (maxHeight:
   * scroll inside), place it and pan it clear of the controls.
   */
  function relayoutPopups(map) {
    var open = null;
    map.on('popupopen', function (e) { open = e.popup; });
    map.on('popupclose', function (e) { if (open === e.popup) open = null; });
    map.getContainer().addEventListener('gdi-resized', function () {
      var element = open && open.getElement();
      var content = element && element.querySelector('.leaflet-popup-content');
      if (content && content.firstChild) open.setContent(content.firstChild);
    });
  }

  // ---- the layer list and the legend: folding, and room for both --------------------------

  function narrow(map) {
    return map.getSize().x < NARROW;
  }

  /** Enter and Space press a link that acts as a button (Leaflet's layers toggle knows Enter only). */
  function pressable(link, press) {
    L.DomEvent.on(link, 'keydown', function (e) {
      if (e.key === ' ' || e.key === 'Spacebar') {
        L.DomEvent.preventDefault(e);
        press();
      }
    });
  }

  /**
   * The layer list folds into a button "Ebenen" (Leaflet's layers toggle,
   * labelled) and has a "Ebenen" button at its top that folds it; Escape folds
   * it too.  On a narrow map it starts folded and folds when the map is clicked.
   */
  function layerList(map, control, text, onChange) {
    var container = control.getContainer();
    var link = control._layersLink;
    var section = control._section;
    link.textContent = text.layers;
    link.title = text.layers_show;
    link.setAttribute('aria-label', text.layers_show);
    var fold = L.DomUtil.create('button', 'gdi-fold-button gdi-layers-fold');
    fold.type = 'button';
    fold.textContent = text.layers;
    fold.title = text.layers_hide;
    fold.setAttribute('aria-label', text.layers_hide);
    fold.setAttribute('aria-expanded', 'true');
    section.insertBefore(fold, section.firstChild);

    var expand = control.expand;
    var collapse = control.collapse;
    control.expand = function () {
      expand.call(this);
      section.style.height = '';   // layout.css and fitPanels() limit its height instead
      link.setAttribute('aria-expanded', 'true');
      onChange('layers', true);
      return this;
    };
    control.collapse = function () {
      collapse.call(this);
      link.setAttribute('aria-expanded', 'false');
      onChange('layers', false);
      return this;
    };
    L.DomEvent.on(fold, 'click', function (e) {
      L.DomEvent.stop(e);
      control.collapse();
      link.focus();
    });
    pressable(link, function () { control.expand(); fold.focus(); });
    L.DomEvent.on(link, 'keydown', function (e) { if (e.key === 'Enter') setTimeout(function () { fold.focus(); }, 0); });
    L.DomEvent.on(container, 'keydown', function (e) {
      if (e.key === 'Escape' && L.DomUtil.hasClass(container, 'leaflet-control-layers-expanded')) {
        control.collapse();
        link.focus();
      }
    });
    if (narrow(map)) {
      control.collapse();
      map.on('click', function () { control.collapse(); });
    } else {
      link.setAttribute('aria-expanded', 'true');
    }
  }

  /**
   * The room of the open panels: the legend (bottom right) no taller than 40 %
   * of the map and no higher than the buttons above it; the layer list (top
   * right) no wider than what the top-left controls leave and no lower than the
   * legend, scale bar and attribution below it (it scrolls within that).
   */
  function fitPanels(map) {
    var size = map.getSize();
    var box = map.getContainer().getBoundingClientRect();
    var corners = map._controlCorners;
    function rel(node) {
      var r = node.getBoundingClientRect();
      return { left: r.left - box.left, top: r.top - box.top, right: r.right - box.left, bottom: r.bottom - box.top,
               width: r.width, height: r.height };
    }
    var legend = map.getContainer().querySelector('.gdi-legend');
    var topLeft = rel(corners.topleft);
    if (legend) {
      // what stays above it: the top-right controls but an open layer list (which yields, below)
      var above = 0;
      Array.prototype.forEach.call(corners.topright.children, function (node) {
        if (!L.DomUtil.hasClass(node, 'leaflet-control-layers-expanded')) above = Math.max(above, rel(node).bottom);
      });
      var bottomRight = rel(corners.bottomright);
      var l = rel(legend);
      var below = bottomRight.bottom - l.bottom;      // the scale bar and the attribution under it
      legend.style.maxHeight = Math.max(60, Math.min(0.4 * size.y, size.y - below - above - 2 * GAP)) + 'px';
    }
    var list = map.getContainer().querySelector('.leaflet-control-layers');
    if (list) {
      var section = list.querySelector('.leaflet-control-layers-list');
      list.style.maxWidth = Math.max(120, Math.min(LIST_WIDTH, size.x - (topLeft.width ? topLeft.right : 0) - GAP - 10)) + 'px';
      if (L.DomUtil.hasClass(list, 'leaflet-control-layers-expanded')) {
        var bottom = rel(corners.bottomright).top;
        var sectionTop = rel(section).top;
        section.style.maxHeight = Math.max(80, bottom - GAP - sectionTop - 8) + 'px';
      }
    }
  }

  /**
   * The link to the page in the other language (?lang=…, the rest of the query
   * kept), a control at the top of the top-right corner: on the map it is there
   * whether the table is shown or not.
   */
  function languageSwitch(map, other, text) {
    var control = L.control({ position: 'topright' });
    control.onAdd = function () {
      var box = L.DomUtil.create('div', 'gdi-lang leaflet-bar');
      var params = new URLSearchParams(global.location.search);
      params.set('lang', other);
      var a = L.DomUtil.create('a', 'gdi-lang-link', box);
      a.href = '?' + params.toString();
      a.hreflang = other;
      a.lang = other;
      a.textContent = text.other_lang;
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    control.addTo(map);
    var corner = map._controlCorners.topright;
    corner.insertBefore(control.getContainer(), corner.firstChild);
  }

  /**
   * The marker clusters are computed once, for the final opening view: map.js
   * adds its markers after its first fit (made before the layer control exists),
   * and start() fits again once every control is there.  Markers that a cluster
   * group on the map is given before then wait and go in after that fit (adding
   * them at once would cluster and draw them twice: some 0.4 s for 10,000 points).
   */
  var waiting = [];
  var started = false;
  var ClusterGroup = L.MarkerClusterGroup;
  var addMarkers = ClusterGroup && ClusterGroup.prototype.addLayers;
  if (addMarkers) {
    ClusterGroup.prototype.addLayers = function (layers, skipLayerAddEvent) {
      if (!started && this._map) {
        waiting.push([this, layers, skipLayerAddEvent]);
        return this;
      }
      return addMarkers.call(this, layers, skipLayerAddEvent);
    };
  }

  function addWaitingMarkers() {
    started = true;
    waiting.forEach(function (w) { addMarkers.call(w[0], w[1], w[2]); });
    waiting = [];
  }

  /**
   * After the layer control exists (folium adds it after gdiMap.init): label and
   * fold the layer list and the legend, give them their room, lift the popups,
   * and fit the opening view again, now that every control has its size.
   */
  function start(map, control, text, otherLang) {
    if (otherLang) languageSwitch(map, otherLang, text);
    lift(map);
    relayoutPopups(map);
    var legend = map.getContainer().querySelector('.gdi-legend');
    function onChange(what, open) {
      if (open && narrow(map)) {          // on a phone one panel at a time
        if (what === 'layers' && legend && legend.gdiFold) legend.gdiFold(true);
        if (what === 'legend' && control) control.collapse();
      }
      fitPanels(map);
    }
    if (control) layerList(map, control, text, onChange);
    if (legend) {
      var toggle = legend.querySelector('.gdi-legend-toggle');
      if (toggle) toggle.addEventListener('click', function () {
        onChange('legend', !legend.classList.contains('gdi-legend-folded'));
      });
    }
    map.on('overlayadd overlayremove resize', function () { fitPanels(map); });
    fitPanels(map);
    if (global.gdiMap && global.gdiMap.openingView) global.gdiMap.openingView();
    addWaitingMarkers();
  }

  // Quarter zoom steps for fitBounds: the opening view fits the room the controls leave much more
  // closely than whole steps (which halve the scale); the zoom buttons still step by 1 (zoomDelta).
  L.Map.mergeOptions({ zoomSnap: 0.25 });
  L.Popup.mergeOptions({ autoPanPadding: [GAP, GAP] });
  popupsAvoidControls();

  global.gdiLayout = { start: start, fitBounds: fitBounds, fitPadding: fitPadding, capped: capped,
                       NARROW: NARROW, CAP: CAP };
})(window);
