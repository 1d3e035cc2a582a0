// The grid's check boxes across its pages: the samples ticked on one page stay ticked on the others (and after a
// re-sort) while they show the same samples (the tag form's filters), in this browser tab (sessionStorage
// "lightly.checked:<form action>?<filters>"). Ticked samples of other pages travel with the tag form as hidden
// "sample" fields, so "Save the checked samples as a tag" tags every ticked sample, not only this page's.
(function () {
  "use strict";
  var form = document.getElementById("tagform");
  var count = document.getElementById("checkcount");
  if (!form || !count) return;
  var max = parseInt(form.getAttribute("data-max-checked") || "0", 10);
  var boxes = [].slice.call(document.querySelectorAll('input[type="checkbox"][name="sample"][form="tagform"]'));
  var filters = [].slice.call(form.querySelectorAll('input[type="hidden"]'))
    .filter(function (h) { return h.name !== "polygon" && h.name !== "sample"; })
    .map(function (h) { return encodeURIComponent(h.name) + "=" + encodeURIComponent(h.value); })
    .sort();
  var KEY = "lightly.checked:" + form.getAttribute("action") + "?" + filters.join("&");
  var holder = document.createElement("span");
  holder.hidden = true;
  form.appendChild(holder);
  var clear = document.getElementById("checkclear");
  var all = document.getElementById("checkpage");

  function load() {
    try {
      var v = JSON.parse(sessionStorage.getItem(KEY) || "[]");
      return Array.isArray(v) ? v.filter(function (s) { return typeof s === "string"; }) : [];
    } catch (e) { return []; }
  }
  var ticked = [];
  function store() {
    try {
      if (ticked.length) sessionStorage.setItem(KEY, JSON.stringify(ticked));
      else sessionStorage.removeItem(KEY);
    } catch (e) { /* no storage: this page's boxes only */ }
  }
  function render() {
    var here = {};
    boxes.forEach(function (b) { here[b.value] = true; });
    holder.textContent = "";
    var elsewhere = 0;
    ticked.forEach(function (id) {
      if (here[id]) return;
      elsewhere += 1;
      var h = document.createElement("input");
      h.type = "hidden";
      h.name = "sample";
      h.value = id;
      holder.appendChild(h);
    });
    var n = ticked.length;
    count.textContent = n ? n.toLocaleString() + " checked" + (elsewhere ? " (" + elsewhere.toLocaleString() +
      " on other pages)" : "") + (max && n > max ? ": at most " + max.toLocaleString() + " can be saved" : "") : "";
    if (clear) clear.hidden = !n;
  }
  function sync() {  // (also when the page comes back from the browser's back/forward cache)
    ticked = load();
    var set = {};
    ticked.forEach(function (id) { set[id] = true; });
    boxes.forEach(function (b) { b.checked = !!set[b.value]; });
    render();
  }
  function changed(b) {
    var i = ticked.indexOf(b.value);
    if (b.checked && i < 0) ticked.push(b.value);
    if (!b.checked && i >= 0) ticked.splice(i, 1);
  }
  boxes.forEach(function (b) {
    b.addEventListener("change", function () { changed(b); store(); render(); });
  });
  if (clear) {
    clear.addEventListener("click", function () {
      ticked = [];
      boxes.forEach(function (b) { b.checked = false; });
      store();
      render();
    });
  }
  if (all) {
    all.addEventListener("click", function () {
      var every = boxes.every(function (b) { return b.checked; });
      boxes.forEach(function (b) { b.checked = !every; changed(b); });
      store();
      render();
    });
  }
  form.addEventListener("submit", function (ev) {
    var by = ev.submitter;
    if (!by || by.value !== "checked") return;
    if (!ticked.length || (max && ticked.length > max)) {
      ev.preventDefault();
      count.textContent = ticked.length ? ticked.length.toLocaleString() + " checked: at most " +
        max.toLocaleString() + " can be saved as a tag this way; save a filter as a tag instead" :
        "Tick the boxes of the samples to save first";
      return;
    }
    ticked = [];  // (saved: the ticks are done with; the tag's grid opens next)
    store();
  });
  window.addEventListener("pageshow", sync);
  sync();
})();
