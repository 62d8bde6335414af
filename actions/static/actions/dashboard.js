// The admin dashboard refreshes itself: every few seconds it fetches the figures (the snapshot of
// GET /api/v1/stats/) and sets each element that names a figure by its path (see actions/admin/dashboard.py,
// whose FORMATS and lookup() these mirror).
(function () {
  "use strict";
  var root = document.getElementById("mr-dashboard");
  if (!root) return;

  function lookup(data, dotted) {
    var parts = dotted.split(".");
    for (var i = 0; i < parts.length && data != null; i++) {
      var part = parts[i];
      data = Array.isArray(data)
        ? data.find(function (item) { return item.key === part || item.name === part; })
        : data[part];
    }
    return data == null ? null : data;
  }

  function duration(seconds) {
    if (seconds == null) return "-";
    if (seconds < 1) return (seconds * 1000).toFixed(0) + " ms";
    var units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) return (seconds / units[i][1]).toFixed(1) + " " + units[i][0];
    }
    return seconds.toFixed(1) + " s";
  }

  var FORMATS = {
    count: function (value) { return value == null ? "-" : String(value); },
    rate: function (value) { return value == null ? "-" : (value * 100).toFixed(1) + "%"; },
    duration: duration,
    state: function (value) { return String(value || "-").replace(/_/g, " "); },
  };

  function pad(n) { return String(n).padStart(2, "0"); }

  function clock(iso) {
    var at = new Date(iso);
    return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) + " " +
      pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds());
  }

  function render(figures) {
    root.querySelectorAll("[data-path]").forEach(function (element) {
      var value = lookup(figures, element.dataset.path);
      var format = element.dataset.format || "count";
      element.textContent = FORMATS[format](value);
      var holder = format === "state" && element.closest("[data-state]");
      if (holder) holder.dataset.state = value;
    });
    var bars = Array.prototype.slice.call(root.querySelectorAll("[data-bar]"));
    var longest = {};
    bars.forEach(function (bar) {
      var group = bar.dataset.group;
      longest[group] = Math.max(longest[group] || 0, lookup(figures, bar.dataset.bar) || 0);
    });
    bars.forEach(function (bar) {
      var value = lookup(figures, bar.dataset.bar) || 0;
      var group = bar.dataset.group;
      // A "share" is already a fraction of the whole; other bars are measured against the group's longest.
      var width = group === "share" ? value * 100 : (longest[group] ? (100 * value) / longest[group] : 0);
      bar.style.width = width.toFixed(1) + "%";
    });
    root.querySelectorAll("[data-ring]").forEach(function (ring) {
      var share = lookup(figures, ring.dataset.ring) || 0;
      ring.setAttribute("stroke-dasharray", (share * 100).toFixed(1) + " 100");
    });
    root.querySelector("[data-updated]").textContent = clock(figures.generated_at);
  }

  var timer = null;

  function refresh() {
    fetch(root.dataset.statsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          // Signed out or no longer allowed: asking again would not help.
          clearInterval(timer);
          throw new Error("refused: " + response.status);
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (figures) {
        render(figures);
        delete root.dataset.stale;
        root.dataset.refreshes = String(Number(root.dataset.refreshes) + 1);
      })
      .catch(function () {
        // Keep the last figures on screen, marked stale, and try again at the next tick.
        root.dataset.stale = "true";
      });
  }

  timer = setInterval(refresh, Number(root.dataset.refreshMs) || 5000);
})();
