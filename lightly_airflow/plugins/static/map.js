// The embedding map: density of every sample in the scope, up to N sampled points coloured by the chosen field,
// hover shows the thumbnail, click opens the sample, lasso or box selection fills the "save as tag" form.
// Served by the plugin; no network access beyond the plugin's own JSON and thumbnails.
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777",
                 "#4b5563", "#65a30d", "#7c3aed", "#94a3b8"];
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
  function rampColor(code) {
    if (code < 0) return "#9ca3af";
    var t = code / 255, r = Math.round(68 + t * (253 - 68)), g = Math.round(1 + t * (231 - 1)), b = Math.round(84 + t * (37 - 84));
    return "rgb(" + r + "," + g + "," + b + ")";
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
    ctx.clearRect(0, 0, W, H);
    if (!data || !data.points) return;
    var n = data.bins, dens = data.points.x.length < data.total ? data.density : [], max = 0, i;
    for (i = 0; i < dens.length; i++) if (dens[i] > max) max = dens[i];
    var cw = W / n, ch = H / n, base = dark() ? "255,255,255" : "0,0,0";
    for (i = 0; i < dens.length; i++) {
      if (!dens[i]) continue;
      var gx = i % n, gy = Math.floor(i / n);
      ctx.fillStyle = "rgba(" + base + "," + (0.05 + 0.25 * Math.log(1 + dens[i]) / Math.log(1 + max)).toFixed(3) + ")";
      ctx.fillRect(gx * cw, H - (gy + 1) * ch, cw + 0.5, ch + 0.5);
    }
    var p = data.points, r = p.x.length > 5000 ? 2 : p.x.length > 1000 ? 3.5 : 5;
    for (i = 0; i < p.x.length; i++) {
      var xy = toPx(p.x[i], p.y[i]);
      ctx.fillStyle = data.legend_kind === "number" ? rampColor(p.c[i]) : PALETTE[Math.min(p.c[i], PALETTE.length - 1)];
      ctx.beginPath(); ctx.arc(xy[0], xy[1], r / 2, 0, 6.2832); ctx.fill();
    }
    if (poly.length > 1) {
      ctx.strokeStyle = dark() ? "#fff" : "#111";
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
  function legend() {
    legendBox.textContent = "";
    if (data.legend_kind === "number") {
      var s = document.createElement("span");
      s.textContent = "low " + Number(data.legend[0]).toPrecision(4) + " → high " + Number(data.legend[1]).toPrecision(4);
      legendBox.appendChild(s);
      return;
    }
    data.legend.forEach(function (item, i) {
      var w = document.createElement("span"), sw = document.createElement("span");
      sw.className = "sw"; sw.style.background = PALETTE[Math.min(i, PALETTE.length - 1)];
      w.className = "pill"; w.appendChild(sw);
      w.appendChild(document.createTextNode(item[0] + " (" + item[1] + ")"));
      legendBox.appendChild(w);
    });
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
