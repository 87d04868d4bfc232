// Live update: while a page's live section says runs are active, fetch that section again every few seconds and
// swap it in. Without JavaScript the pages work as they are (reload to refresh).
(function () {
  "use strict";
  var INTERVAL_MS = 4000;

  function refresh() {
    var section = document.getElementById("live");
    if (!section || section.getAttribute("data-live") !== "on" || document.hidden) {
      return schedule();
    }
    fetch(window.location.href, {headers: {"X-Console-Fragment": "1"}, credentials: "same-origin"})
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var fresh = holder.querySelector("#live");
          if (fresh) { section.replaceWith(fresh); }
        }
      })
      .catch(function () { /* the next round tries again */ })
      .then(schedule);
  }

  function schedule() { window.setTimeout(refresh, INTERVAL_MS); }

  document.addEventListener("DOMContentLoaded", schedule);
})();
