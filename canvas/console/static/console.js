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

// Schedule page: while the cron expression, its syntax or the time zone is edited, show the next fire times (or the
// error in words) from the schedule preview fragment. Without JavaScript the form's Preview button does the same.
(function () {
  "use strict";
  var DELAY_MS = 400;
  var FIELDS = ["cronSchedule", "timeZone", "cronDialect"];

  function setUp() {
    var form = document.querySelector("form[data-preview-url]");
    var area = document.getElementById("schedule-preview");
    if (!form || !area || !window.fetch) { return; }
    var timer = null;
    var latest = 0;

    function ask() {
      var query = new URLSearchParams({cron: form.elements.cronSchedule.value,
        timeZone: form.elements.timeZone.value, cronDialect: form.elements.cronDialect.value});
      var asked = ++latest;
      fetch(form.getAttribute("data-preview-url") + "?" + query.toString(),
            {headers: {"X-Console-Fragment": "1"}, credentials: "same-origin"})
        .then(function (answer) {
          // 400 carries the error in words; a redirect (signed out) or anything else is left alone
          return !answer.redirected && (answer.status === 200 || answer.status === 400) ? answer.text() : null;
        })
        .then(function (html) { if (html !== null && asked === latest) { area.innerHTML = html; } })
        .catch(function () { /* the Preview button still works */ });
    }

    function edited(event) {
      if (FIELDS.indexOf(event.target.name) < 0) { return; }
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, DELAY_MS);
    }

    form.addEventListener("input", edited);
    form.addEventListener("change", edited);
  }

  document.addEventListener("DOMContentLoaded", setUp);
})();
