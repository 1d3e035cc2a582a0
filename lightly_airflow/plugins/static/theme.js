// Follow Airflow's light/dark mode: the parent page (same origin) carries class "dark" on <html>; its choice is
// stored by next-themes under localStorage "theme". ?theme=light|dark in the URL wins (links, screenshots).
(function () {
  "use strict";
  function pick() {
    var forced = new URLSearchParams(location.search).get("theme");
    if (forced === "light" || forced === "dark") return forced;
    try {
      var top = window.parent && window.parent !== window ? window.parent.document.documentElement : null;
      if (top && top.classList.contains("dark")) return "dark";
      if (top && top.classList.contains("light")) return "light";
    } catch (e) { /* another origin: ignore */ }
    try {
      var stored = localStorage.getItem("theme");
      if (stored === "light" || stored === "dark") return stored;
    } catch (e) { /* no storage */ }
    return null; // the CSS follows prefers-color-scheme
  }
  function apply() {
    var t = pick();
    if (t) document.documentElement.setAttribute("data-theme", t);
    else document.documentElement.removeAttribute("data-theme");
  }
  apply();
  window.addEventListener("storage", apply);
  try {
    if (window.parent && window.parent !== window) {
      new MutationObserver(apply).observe(window.parent.document.documentElement, {attributes: true, attributeFilter: ["class"]});
    }
  } catch (e) { /* another origin */ }
})();
