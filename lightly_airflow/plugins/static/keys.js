// The ← and → keys follow the page's rel="prev" and rel="next" links: a sample's neighbours in the grid it was
// opened from, a grid's previous and next page. Not while typing in a form field, nor in a focused video or
// audio player (a frame's video below it: its arrow keys seek; they left the page for the next sample), nor with
// a modifier key held.
(function () {
  "use strict";
  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    var rel = ev.key === "ArrowLeft" ? "prev" : ev.key === "ArrowRight" ? "next" : null;
    var t = ev.target;
    if (!rel || (t && (t.isContentEditable || /^(INPUT|SELECT|TEXTAREA|VIDEO|AUDIO)$/.test(t.tagName)))) return;
    var a = document.querySelector('a[rel="' + rel + '"]');
    if (a) {
      ev.preventDefault();
      window.location.assign(a.href);
    }
  });
})();
