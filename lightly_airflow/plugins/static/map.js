// The embedding map: density of every sample in the scope, up to N sampled points coloured by the chosen field,
// hover shows the thumbnail, click opens the sample, lasso or box selection fills the "save as tag" form.
// Served by the plugin; no network access beyond the plugin's own JSON and thumbnails.
(function () {
  "use strict";
  // One palette per theme, each colour at least 3:1 against the map's ground (WCAG 1.4.11: #fafbfc light, #1a2230
  // dark), chosen greedily for the largest smallest distance (CIE76) between any two colours in normal vision and
  // in Machado et al.'s deuteranopia and protanopia simulations: 16.9 at worst over all 12 (the first 6: 22), where
  // the old palette had 1.7 (its blue #2563eb and violet #7c3aed for deuteranopia) and 7 of its colours were under
  // 3:1 on one ground (#f97316 2.7:1 light, #4b5563 2.1:1 dark). The 12th, "other", stays grey.
  var PALETTES = {
    light: ["#0072b2", "#d55e00", "#5a0fff", "#963c2d", "#3c78ff", "#5a9669", "#782dc3", "#a53c00", "#3c5a78",
            "#78964b", "#8787b4", "#737b86"],
    dark: ["#56b4e9", "#e69f00", "#695aff", "#a5693c", "#f0c396", "#2d78d2", "#b45a69", "#f0a55a", "#b46900",
           "#9669a5", "#2de1f0", "#9ca3af"]
  };
  // Numbers: a stretch of viridis (its luminance rises steadily, so it reads the same for every colour vision) that
  // keeps 3:1 on the theme's ground: its dark half on light, its light half on dark (the whole ramp's yellow end was
  // 1.2:1 on the light ground, its purple end 1.5:1 on the dark one). No value: the palette's grey.
  // Selected / not (the payload's "groups"): the report's colours and meaning (report/plots.py GROUP_COLOURS): not
  // selected grey, selected by earlier runs blue, selected vermillion; on the light ground 3.6, 5.0 and 3.7:1, on
  // the dark one 4.3, 6.9 (the lighter Okabe-Ito sky blue: the report's #0072b2 was 3.1:1 there) and 4.1:1, and at
  // least 35.9 apart (CIE76) for deuteranopia and protanopia. Before, the larger group took the palette's first
  // colour, so "not selected" was mostly blue here and grey in the report.
  var GROUP_COLOURS = {light: ["#858585", "#0072b2", "#d55e00"], dark: ["#858585", "#56b4e9", "#d55e00"]};
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  var RAMP = {light: [0, 0.5], dark: [0.4, 1]};
  var root = document.getElementById("mapdata");
  if (!root) return;
  var canvas = document.getElementById("map");
  var ctx = canvas.getContext("2d");
  var hover = document.getElementById("hover");
  var status = document.getElementById("mapstatus");
  var legendBox = document.getElementById("legend");
  var polyInput = document.getElementById("polygon");
  var saveBtn = document.getElementById("savesel");
  var selInfo = document.getElementById("selinfo");
  var dragged = 0, last = null, data = null, mode = "lasso", drawing = false, poly = [], W = 0, H = 0, dpr = window.devicePixelRatio || 1;

  function dark() {
    return getComputedStyle(document.documentElement).getPropertyValue("--bg").trim().toLowerCase() !== "#fff";
  }
  var theme = "light";  // set by draw() and legend(): one style lookup a drawing, not one a point
  function palette() { return PALETTES[theme]; }
  function catColor(code) {
    if (data.groups) return GROUP_COLOURS[theme][data.groups[code]];
    var p = palette(); return p[Math.min(code, p.length - 1)];
  }
  function rampColor(code) {
    var p = palette();
    if (code < 0) return p[p.length - 1];
    var span = RAMP[theme], t = (span[0] + code / 255 * (span[1] - span[0])) * (VIRIDIS.length - 1);
    var i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return "rgb(" + [0, 1, 2].map(function (k) { return Math.round(a[k] + f * (b[k] - a[k])); }).join(",") + ")";
  }
  function toPx(x, y) {
    var b = data.bounds;
    return [(x - b[0]) / (b[1] - b[0]) * W, H - (y - b[2]) / (b[3] - b[2]) * H];
  }
  function toData(px, py) {
    var b = data.bounds;
    return [b[0] + px / W * (b[1] - b[0]), b[2] + (H - py) / H * (b[3] - b[2])];
  }
  function resize() {
    var r = canvas.getBoundingClientRect();
    W = r.width; H = r.height;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw();
  }
  function draw() {
    theme = dark() ? "dark" : "light";
    ctx.clearRect(0, 0, W, H);
    if (!data || !data.points) return;
    var n = data.bins, dens = data.points.x.length < data.total ? data.density : [], max = 0, i;
    for (i = 0; i < dens.length; i++) if (dens[i] > max) max = dens[i];
    var cw = W / n, ch = H / n, base = theme === "dark" ? "255,255,255" : "0,0,0";
    for (i = 0; i < dens.length; i++) {
      if (!dens[i]) continue;
      var gx = i % n, gy = Math.floor(i / n);
      ctx.fillStyle = "rgba(" + base + "," + (0.05 + 0.25 * Math.log(1 + dens[i]) / Math.log(1 + max)).toFixed(3) + ")";
      ctx.fillRect(gx * cw, H - (gy + 1) * ch, cw + 0.5, ch + 0.5);
    }
    var p = data.points, r = p.x.length > 5000 ? 2 : p.x.length > 1000 ? 3.5 : 5;
    // (by selected/not the selected are drawn last, on top of the others, as in the report's map)
    var layers = data.groups ? data.groups.map(function (g, code) { return code; }) : [null];
    layers.forEach(function (layer) {
      for (i = 0; i < p.x.length; i++) {
        if (layer !== null && p.c[i] !== layer) continue;
        var xy = toPx(p.x[i], p.y[i]);
        ctx.fillStyle = data.legend_kind === "number" ? rampColor(p.c[i]) : catColor(p.c[i]);
        ctx.beginPath(); ctx.arc(xy[0], xy[1], r / 2, 0, 6.2832); ctx.fill();
      }
    });
    if (poly.length > 1) {
      ctx.strokeStyle = theme === "dark" ? "#fff" : "#111";
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      var a = toPx(poly[0][0], poly[0][1]);
      ctx.moveTo(a[0], a[1]);
      for (i = 1; i < poly.length; i++) { var q = toPx(poly[i][0], poly[i][1]); ctx.lineTo(q[0], q[1]); }
      if (!drawing) ctx.closePath();
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
  function pill(background, text, cls) {
    var w = document.createElement("span"), sw = document.createElement("span");
    sw.className = cls || "sw"; sw.style.background = background;
    w.className = "pill"; w.appendChild(sw); w.appendChild(document.createTextNode(text));
    legendBox.appendChild(w);
  }
  function legend() {
    // (drawn again when the theme changes: the colours are the theme's)
    theme = dark() ? "dark" : "light";
    legendBox.textContent = "";
    if (data.legend_kind === "number") {
      // the ramp itself between its two values (the text alone did not say which colour is low), and the grey of
      // the points without a value when there are any
      pill("linear-gradient(to right," + [0, 64, 128, 192, 255].map(rampColor).join(",") + ")",
           "low " + Number(data.legend[0]).toPrecision(4) + " → high " + Number(data.legend[1]).toPrecision(4), "sw ramp");
      if (data.points.c.some(function (c) { return c < 0; })) pill(rampColor(-1), "no value");
      return;
    }
    data.legend.forEach(function (item, i) { pill(catColor(i), item[0] + " (" + item[1] + ")"); });
  }
  function number(v) { return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4))); }
  function nearest(px, py) {
    var p = data.points, best = -1, bd = 64, i;
    for (i = 0; i < p.x.length; i++) {
      var xy = toPx(p.x[i], p.y[i]), d = (xy[0] - px) * (xy[0] - px) + (xy[1] - py) * (xy[1] - py);
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }
  function inside(x, y, pg) {
    var c = false;
    for (var i = 0, j = pg.length - 1; i < pg.length; j = i++) {
      if ((pg[i][1] > y) !== (pg[j][1] > y) && x < (pg[j][0] - pg[i][0]) * (y - pg[i][1]) / (pg[j][1] - pg[i][1]) + pg[i][0]) c = !c;
    }
    return c;
  }
  function pos(ev) { var r = canvas.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; }

  canvas.addEventListener("mousedown", function (ev) {
    if (!data || !data.points) return;
    drawing = true; var q = pos(ev); poly = [toData(q[0], q[1])]; dragged = 0; last = q;
  });
  canvas.addEventListener("mousemove", function (ev) {
    if (!data || !data.points) return;
    var q = pos(ev);
    if (drawing) {
      dragged += Math.abs(q[0] - last[0]) + Math.abs(q[1] - last[1]); last = q;
      var d = toData(q[0], q[1]);
      if (mode === "box") { var a = poly[0]; poly = [a, [d[0], a[1]], d, [a[0], d[1]]]; } else poly.push(d);
      hover.style.display = "none"; draw(); return;
    }
    var i = nearest(q[0], q[1]);
    if (i < 0) { hover.style.display = "none"; canvas.style.cursor = "crosshair"; return; }
    canvas.style.cursor = "pointer";
    var id = data.points.id[i];
    if (hover.dataset.id !== id) {
      hover.dataset.id = id; hover.textContent = "";
      var img = document.createElement("img"); img.src = root.dataset.thumb + id; img.alt = id;
      // the caption: the sample's key (its file name) and the value the map is coloured by, as text
      var key = data.points.key ? data.points.key[i] : null, value = data.points.value ? data.points.value[i] :
        data.legend_kind === "number" ? null : (data.legend[data.points.c[i]] || [null])[0];
      var cap = document.createElement("div"); cap.className = "hover-key"; cap.textContent = key == null ? id : key;
      var val = document.createElement("div"); val.className = "hover-value";
      val.textContent = data.color + ": " + (value == null ? "—" : data.legend_kind === "number" ? number(value) : value);
      img.alt = cap.textContent;
      hover.appendChild(img); hover.appendChild(cap); hover.appendChild(val);
    }
    hover.style.left = (ev.clientX + 14) + "px"; hover.style.top = (ev.clientY + 14) + "px"; hover.style.display = "block";
  });
  window.addEventListener("mouseup", function (ev) {
    if (!drawing) return;
    drawing = false;
    var q = pos(ev);
    if (poly.length < 3 || dragged < 6) {
      poly = []; draw();
      var i = nearest(q[0], q[1]);
      if (i >= 0 && ev.target === canvas) window.location.href = root.dataset.sample + data.points.id[i] + root.dataset.suffix;
      return;
    }
    var p = data.points, n = 0;
    for (var k = 0; k < p.x.length; k++) if (inside(p.x[k], p.y[k], poly)) n++;
    polyInput.value = JSON.stringify(poly.map(function (v) { return [+v[0].toFixed(6), +v[1].toFixed(6)]; }));
    saveBtn.disabled = false;
    selInfo.textContent = n + " of the " + p.x.length + " drawn points are inside (the tag takes every sample of the scope inside: about " +
      Math.round(n * data.total / Math.max(1, data.shown)) + ").";
    draw();
  });
  document.querySelectorAll("input[name=mapmode]").forEach(function (el) {
    el.addEventListener("change", function () { mode = el.value; });
  });
  window.addEventListener("resize", resize);
  // theme.js switches data-theme when Airflow's theme changes: redraw in that theme's colours
  function retheme() { if (data && data.points) { legend(); draw(); } }
  new MutationObserver(retheme).observe(document.documentElement, {attributes: true, attributeFilter: ["data-theme"]});
  if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", retheme);
  fetch(root.dataset.api, {credentials: "same-origin"}).then(function (r) {
    if (r.ok) return r.json();
    // the server's reason ({"detail": …}: a bad colour, an unreadable version), not only its status code
    return r.text().then(function (text) {
      var detail = null;
      try { detail = JSON.parse(text).detail; } catch (e) { /* not JSON: a proxy's page */ }
      throw new Error((detail ? String(detail) + " " : "") + "(HTTP " + r.status + ")");
    });
  }).then(function (d) {
    data = d;
    if (!d.points) { status.textContent = d.reason || "Nothing to show."; return; }
    status.textContent = d.shown < d.total ? "Showing " + d.shown.toLocaleString() + " of " + d.total.toLocaleString() +
      " samples as points (a uniform sample by sample id); the grey density layer counts all " + d.total.toLocaleString() + "."
      : "Showing all " + d.total.toLocaleString() + " samples.";
    legend(); resize();
  }).catch(function (e) { status.textContent = "Could not load the map: " + e.message; });
})();
