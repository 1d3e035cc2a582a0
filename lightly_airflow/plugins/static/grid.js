// The grid's thumbnail size: the range input #cellsize sets the grid's cell width (--cell), like a zoom; the
// choice is kept in this browser (localStorage "lightly.cell") for every grid page.
(function () {
  "use strict";
  var KEY = "lightly.cell";
  var input = document.getElementById("cellsize");
  function apply(px) {
    document.documentElement.style.setProperty("--cell", px + "px");
  }
  var saved = null;
  try { saved = localStorage.getItem(KEY); } catch (e) { /* no storage */ }
  if (saved && /^[0-9]{2,3}$/.test(saved)) {
    apply(saved);
    if (input) input.value = saved;
  }
  if (input) {
    input.addEventListener("input", function () {
      apply(input.value);
      try { localStorage.setItem(KEY, input.value); } catch (e) { /* no storage */ }
    });
  }
})();
