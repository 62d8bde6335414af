// Live status on a processing run's admin page: while the run is not finished, poll its status URL
// (actions/admin/runs.py, ProcessingRunAdmin.status_view) and redraw the timeline and the status field
// whenever it reads differently (a step moved, a log line came, someone paused it); stop once the run
// has finished.
(function () {
  "use strict";
  var POLL_MILLISECONDS = 2000;

  function follow(box) {
    var seen = null;
    var timer = null;

    function show(run) {
      box.dataset.finished = run.finished ? "true" : "false";
      box.dataset.updatedAt = run.updated_at;
      if (run.timeline_html === seen) return;
      seen = run.timeline_html;
      box.innerHTML = run.timeline_html;
      var field = document.querySelector(".field-status .readonly");
      if (field) field.textContent = run.status_label;
      var reason = document.querySelector(".field-reason .readonly");
      if (reason) reason.textContent = run.reason || "-";
    }

    function poll() {
      fetch(box.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status >= 400 && response.status < 500) {
            // Gone, or no longer allowed: asking again would not help.
            clearInterval(timer);
            throw new Error("HTTP " + response.status);
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (run) {
          show(run);
          if (run.finished) clearInterval(timer);
        })
        .catch(function () {
          // A failed poll (server restarting, network) is tried again at the next tick.
        });
    }

    timer = setInterval(poll, Number(box.dataset.pollMs) || POLL_MILLISECONDS);
  }

  function start() {
    document.querySelectorAll(".mr-run[data-status-url]").forEach(function (box) {
      if (box.dataset.finished !== "true") follow(box);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
