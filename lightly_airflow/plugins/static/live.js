// A sample page's "LIVE" control (pages.live_control): plays the photo's Live Photo clip, muted and inline, in
// place of the photo; pressing it again or the clip's end shows the photo. A clip the browser cannot play (gone
// since the page was made, a codec it lacks) leaves the photo shown and says so in the control's title.
(function () {
  "use strict";
  document.querySelectorAll("button.live-btn[data-clip]").forEach(function (btn) {
    var video = btn.parentNode.querySelector("video.live");
    if (!video) return;
    function photo() {
      video.pause();
      video.hidden = true;
      btn.setAttribute("aria-pressed", "false");
    }
    function broken(why) {
      photo();
      if (btn.getAttribute("aria-disabled") === "true") return;
      btn.setAttribute("aria-disabled", "true");
      btn.title = "Its Live Photo clip " + btn.getAttribute("data-clip") + " cannot be played (" + why +
        "): the photo is shown.";
    }
    video.addEventListener("ended", photo);
    video.addEventListener("error", function () {
      var e = video.error;
      broken(e ? (e.message || "media error " + e.code) : "media error");
    });
    btn.addEventListener("click", function () {
      if (btn.getAttribute("aria-disabled") === "true") return;
      if (btn.getAttribute("aria-pressed") === "true") {
        photo();
        return;
      }
      btn.setAttribute("aria-pressed", "true");
      video.hidden = false;
      if (video.ended) video.currentTime = 0;
      var played = video.play();
      if (played && played.catch) {
        played.catch(function (err) {
          if (err && err.name === "AbortError") return; // pressed again before it started
          broken((err && err.name) || "refused");
        });
      }
    });
  });
})();
