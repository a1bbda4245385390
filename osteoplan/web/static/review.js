// Review page (start): each pane shows a server-rendered slice; the slider or the mouse wheel moves it along the
// plane's normal; the window buttons switch preset. One request per pane at a time (the newest wins).
(function () {
  "use strict";
  var viewer = document.getElementById("viewer");
  if (!viewer) { return; }
  var base = viewer.getAttribute("data-base");
  var win = "bone";
  var panes = Array.prototype.slice.call(viewer.querySelectorAll("figure.pane"));
  Array.prototype.forEach.call(viewer.querySelectorAll(".swatch[data-colour]"), function (s) {
    s.style.backgroundColor = s.getAttribute("data-colour");
  });
  function setup(pane) {
    var img = pane.querySelector("img");
    var range = pane.querySelector("input[type=range]");
    var label = pane.querySelector(".offset");
    var view = pane.getAttribute("data-view");
    var busy = false, wanted = null;
    var stepMm = Number(range.getAttribute("data-step-mm")) || 1;
    function offset() { return Number(range.value) * stepMm; }
    function url() {  // data-extra: the path moved by the adjust block (adjust.js), when any
      return base + view + ".png?offset_mm=" + offset().toFixed(2) + "&window=" + win + (viewer.getAttribute("data-extra") || "");
    }
    function load() {
      var u = url();
      label.textContent = offset().toFixed(1);
      if (busy) { wanted = u; return; }
      busy = true;
      img.src = u;
    }
    img.addEventListener("load", function () {
      busy = false;
      pane.setAttribute("data-loaded", img.getAttribute("src"));
      if (wanted && wanted !== img.getAttribute("src")) { var u = wanted; wanted = null; busy = true; img.src = u; }
      else { wanted = null; }
    });
    img.addEventListener("error", function () { busy = false; });
    range.addEventListener("input", load);
    img.addEventListener("wheel", function (e) {
      e.preventDefault();
      var v = Number(range.value) + (e.deltaY > 0 ? -1 : 1);
      range.value = Math.min(Number(range.max), Math.max(Number(range.min), v));
      load();
    }, {passive: false});
    pane.reload = load;
  }
  panes.forEach(setup);
  Array.prototype.forEach.call(viewer.querySelectorAll(".window-preset"), function (b) {
    b.addEventListener("click", function () {
      win = b.getAttribute("data-window");
      Array.prototype.forEach.call(viewer.querySelectorAll(".window-preset"), function (o) { o.classList.remove("active"); });
      b.classList.add("active");
      panes.forEach(function (p) { p.reload(); });
    });
  });
}());
