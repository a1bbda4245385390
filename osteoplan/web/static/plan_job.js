// Follows a planning job: polls its JSON state every second and updates the stages; reloads the page when the
// job ends (the server renders the result, the error or the cancel state). No framework, no external code.
(function () {
  "use strict";
  var box = document.getElementById("plan-job");
  if (!box) { return; }
  var url = box.getAttribute("data-poll");
  var finals = ["done", "failed", "cancelled"];
  if (finals.indexOf(box.getAttribute("data-state")) >= 0) { return; }
  function render(job) {
    var list = document.getElementById("job-stages");
    job.stages.forEach(function (s) {
      var li = list.querySelector('li[data-stage="' + s.key + '"]');
      if (li) {
        li.className = "stage-" + s.status;
        var small = li.querySelector("small");
        if (small) { small.textContent = s.detail || s.status_words || s.status; }
      }
    });
    var badge = document.getElementById("job-state");
    badge.textContent = job.state;
  }
  function poll() {
    fetch(url, {credentials: "same-origin", cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (job) {
      render(job);
      if (finals.indexOf(job.state) >= 0) { window.location.reload(); return; }
      window.setTimeout(poll, 1000);
    }).catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
}());
