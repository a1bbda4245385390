// Adjust block of the review page: choose a point (skin entry, bone entry, target), nudge it 1 mm along R/L, A/P,
// S/I (buttons or keys) or drag it on a slice; the server re-checks the trajectory with the planner's kernel
// (POST .../evaluate) and the page shows the moved path on every slice, the clearances and the plan's verdict.
// Each pane's pixel <-> LPS geometry comes from the server (response "panes"). One request at a time, the newest
// wanted state wins. Saving posts the same points to .../versions (the server re-checks them again).
(function () {
  "use strict";
  var box = document.getElementById("adjust");
  var viewer = document.getElementById("viewer");
  if (!box || !viewer) { return; }
  var evalUrl = box.getAttribute("data-evaluate");
  var saveUrl = box.getAttribute("data-save");
  var csrf = box.getAttribute("data-csrf");
  var original = JSON.parse(box.getAttribute("data-points"));
  var needles = JSON.parse(box.getAttribute("data-needles") || "[]");  // the plan's needles (several: a selector)
  var needleSel = document.getElementById("adjust-needle");
  var index = 0;             // the trajectory moved (0-based)
  var screwMm = box.getAttribute("data-screw") || "";
  var statusEl = document.getElementById("adjust-status");
  var saveBtn = document.getElementById("adjust-save");
  var approveForm = document.getElementById("adjust-approve-form");
  var NAMES = {skin_entry: "skin entry", bone_entry: "bone entry", target: "target"};
  var AXES = ["R/L", "A/P", "S/I"];
  var state = {skin_entry: original.skin_entry.slice(), bone_entry: original.bone_entry.slice(),
               target: original.target.slice()};
  var pivot = "bone_entry";
  var chosen = "target";
  var panes = null;          // geometry from the server
  var baseline = null;       // clearances of the stored version (first answer)
  var busy = false, pending = false, moved = false;
  var seq = 0;               // counts the user's moves: an answer to older points is not shown

  function round2(x) { return Math.round(x * 100) / 100; }
  function fmt(x, n) { return (x === null || x === undefined) ? "—" : Number(x).toFixed(n === undefined ? 2 : n); }
  function setStatus(t) { statusEl.textContent = t; }

  function body(extra) {
    var b = {skin_entry_lps_mm: state.skin_entry, bone_entry_lps_mm: state.bone_entry,
             target_lps_mm: state.target, pivot: pivot, trajectory_index: index};
    if (extra) { for (var k in extra) { b[k] = extra[k]; } }
    return JSON.stringify(b);
  }

  function post(url, payload) {
    return fetch(url, {method: "POST", credentials: "same-origin", body: payload,
                       headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}})
      .then(function (r) { return r.json().then(function (j) { return {status: r.status, json: j}; }); });
  }

  function evaluate() {
    if (busy) { pending = true; return; }
    busy = true; pending = false;
    box.setAttribute("data-state", "busy");
    var t0 = performance.now();
    var sent = seq;
    post(evalUrl, body()).then(function (res) {
      busy = false;
      if (sent !== seq) { evaluate(); return; }  // moved again meanwhile: re-check the newest points
      if (res.status !== 200) {
        setStatus((res.json && res.json.detail) || "The re-check failed.");
        box.setAttribute("data-state", "error");
        if (pending) { evaluate(); }
        return;
      }
      var j = res.json;
      // the kernel's points on the line become the state (the dragged point may come back to the cortex)
      state = {skin_entry: j.points.skin_entry, bone_entry: j.points.bone_entry, target: j.points.target};
      panes = j.panes;
      if (baseline === null) { baseline = {}; j.clearances.forEach(function (c) { baseline[c.structure] = c.clearance_mm; }); }
      show(j);
      setStatus("re-checked in " + Math.round(performance.now() - t0) + " ms (server " +
                Math.round(j.seconds.wall * 1000) + " ms)");
      box.setAttribute("data-state", "ready");
      if (pending) { evaluate(); }
    }).catch(function () {
      busy = false;
      setStatus("The server did not answer; try again.");
      box.setAttribute("data-state", "error");
    });
  }

  function show(j) {
    // verdict box at the top of the page: the plan's one verdict with the moved trajectory
    var vb = document.querySelector(".verdict-box");
    if (vb) {
      vb.className = "verdict-box " + j.verdict["class"];
      vb.setAttribute("data-verdict", j.verdict.code);
      var p = vb.querySelector("#review-verdict");
      if (p) { p.textContent = j.verdict.text; }
      var ul = vb.querySelector("ul");
      if (!ul) { ul = document.createElement("ul"); vb.appendChild(ul); }
      ul.textContent = "";
      j.verdict.details.forEach(function (d) { var li = document.createElement("li"); li.textContent = d; ul.appendChild(li); });
    }
    // the warnings card: the re-checked plan's (trajectory warnings change with the path)
    var wcard = document.getElementById("review-warnings");
    if (wcard && j.warnings) {
      var wl = wcard.querySelector("ul");
      wl.textContent = "";
      j.warnings.forEach(function (w) {
        var li = document.createElement("li"); li.textContent = w; wl.appendChild(li);
      });
      wcard.hidden = j.warnings.length === 0;
    }
    // what moved
    var parts = [];
    box.setAttribute("data-needle", String(j.trajectory_index));
    Object.keys(j.moved).forEach(function (k) {
      var d = j.moved[k].delta_lps_mm;
      var words = [];
      [["R", "L"], ["A", "P"], ["I", "S"]].forEach(function (pair, i) {
        var v = i === 2 ? d[i] : d[i];
        if (Math.abs(v) >= 0.005) { words.push((v > 0 ? pair[1] : pair[0]) + " " + Math.abs(v).toFixed(2)); }
      });
      parts.push(NAMES[k] + " moved " + j.moved[k].distance_mm.toFixed(2) + " mm (" + words.join(", ") + ")");
    });
    moved = parts.length > 0;
    var who = (j.needle && j.needle !== "the path") ? j.needle[0].toUpperCase() + j.needle.slice(1) + ": " : "";
    document.getElementById("adjust-moved").textContent = moved ? who + parts.join("; ")
      : (who ? who + "as saved (nothing moved)." : "As saved (nothing moved).");
    box.setAttribute("data-moved", moved ? "1" : "0");
    if (saveBtn) {
      saveBtn.disabled = !moved || !j.feasible;
      saveBtn.title = j.feasible ? "" : "The moved path breaks the protocol's rules: it cannot be saved.";
    }
    if (approveForm) {
      var ab = approveForm.querySelector("button");
      ab.disabled = moved;
      ab.title = moved ? "Save the moved points as a version first, then approve that version." : "";
    }
    var ul2 = document.getElementById("adjust-violations");
    ul2.textContent = "";
    j.violations.forEach(function (t) { var li = document.createElement("li"); li.textContent = t; ul2.appendChild(li); });
    // figures
    var fig = document.getElementById("adjust-figures");
    fig.textContent = "";
    var rows = [["Points (LPS mm)", ["skin_entry", "bone_entry", "target"].map(function (k) {
      return NAMES[k] + " " + j.points[k].map(function (x) { return fmt(x, 1); }).join(", "); }).join(" · ")],
                ["Containment (smallest margin)", fmt(j.containment_min_margin_mm) + " mm"],
                [j.screw ? "Screw (catalogue)" : "Needle", j.screw ? (j.screw.diameter_mm + " × " + j.screw.length_mm +
                   " mm (" + j.screw.catalogue_ref + ")") : (fmt(j.needle_diameter_mm, 1) + " mm")],
                ["Depth (skin → target)", fmt(j.depth_total_mm, 1) + " mm"],
                ["Angles", "cranio-caudal " + fmt(j.angle_craniocaudal_deg, 1) + "°, medio-lateral " +
                   fmt(j.angle_mediolateral_deg, 1) + "°"]];
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      var th = document.createElement("th"); th.textContent = r[0]; tr.appendChild(th);
      var td = document.createElement("td"); td.textContent = r[1]; tr.appendChild(td);
      fig.appendChild(tr);
    });
    if (j.screw) { screwMm = String(j.screw.length_mm); }
    // clearance table
    var tb = document.querySelector("#adjust-clearances tbody");
    tb.textContent = "";
    j.clearances.forEach(function (c) {
      var tr = document.createElement("tr");
      tr.className = "status-" + c.status + (c.structure === j.nearest ? " nearest" : "");
      tr.setAttribute("data-structure", c.structure);
      var b0 = baseline[c.structure];
      var ch = (c.clearance_mm !== null && b0 !== null && b0 !== undefined) ? round2(c.clearance_mm - b0) : null;
      var cells = [[c.name, ""], [fmt(c.margin_mm, 1), "num"], [fmt(c.clearance_mm), "num clearance"],
                   [ch === null ? "—" : (ch > 0 ? "+" : "") + ch.toFixed(2), "num change" + (ch > 0 ? " up" : ch < 0 ? " down" : "")],
                   [c.status.replace(/_/g, " "), "status"], [c.how + (c.note ? " — " + c.note : ""), "how"]];
      cells.forEach(function (x) {
        var td = document.createElement("td"); td.textContent = x[0]; if (x[1]) { td.className = x[1]; } tr.appendChild(td);
      });
      tb.appendChild(tr);
    });
    // slices: the moved path on every pane, orientation letters of the new planes
    var pts = state.skin_entry.concat(state.bone_entry, state.target).map(function (x) { return x.toFixed(2); }).join(",");
    viewer.setAttribute("data-extra", "&pts=" + pts + (screwMm ? "&screw_mm=" + screwMm : "") + "&needle=" + index);
    Array.prototype.forEach.call(viewer.querySelectorAll("figure.pane"), function (pane) {
      var g = panes[pane.getAttribute("data-view")];
      if (g) {
        ["left", "right", "top", "bottom"].forEach(function (s) {
          var el = pane.querySelector(".ol." + s); if (el) { el.textContent = g.letters[s]; }
        });
        labelOthers(pane, g);
      }
      if (pane.reload) { pane.reload(); }
    });
  }

  // the plan's other needles (as saved in this version; the server draws them fainter on every slice): a label by
  // each one's projected target, never a handle (pointer events pass through to the slice)
  function others() { return needles.filter(function (n) { return n.index !== index; }); }
  function labelOthers(pane, g) {
    var frame = pane.querySelector(".frame");
    var img = pane.querySelector("img");
    Array.prototype.forEach.call(frame.querySelectorAll(".other-needle"), function (el) { el.remove(); });
    var w = img.clientWidth || img.width, h = img.clientHeight || img.height;
    others().forEach(function (n) {
      var px = toPixel(g, n.points.target);
      var x = Math.min(Math.max(px[0], 0), g.n_cols - 1) / g.n_cols * w;
      var y = Math.min(Math.max(px[1], 0), g.n_rows - 1) / g.n_rows * h;
      var el = document.createElement("span");
      el.className = "other-needle" + (x > w * 0.6 ? " flip" : "");
      el.setAttribute("data-needle", String(n.index));
      el.textContent = n.name;
      el.title = n.name + ": as saved, drawn for reference (choose it in 'Needle to move' to move it)";
      el.style.left = (img.offsetLeft + x) + "px";
      el.style.top = (img.offsetTop + y) + "px";
      frame.appendChild(el);
    });
  }

  function choose(point) {
    chosen = point;
    Array.prototype.forEach.call(box.querySelectorAll(".adjust-point"), function (b) {
      b.classList.toggle("active", b.getAttribute("data-point") === point);
      b.setAttribute("aria-pressed", b.getAttribute("data-point") === point ? "true" : "false");
    });
    box.setAttribute("data-chosen", point);
  }

  function moveBy(delta) {
    var p = state[chosen];
    state[chosen] = [round2(p[0] + delta[0]), round2(p[1] + delta[1]), round2(p[2] + delta[2])];
    seq += 1;
    pivot = chosen === "skin_entry" ? "skin_entry" : "bone_entry";
    evaluate();
  }

  function nudge(axis, sign, mm) {
    var d = [0, 0, 0];
    d[axis] = sign * mm;
    moveBy(d);
  }

  Array.prototype.forEach.call(box.querySelectorAll(".adjust-point"), function (b) {
    b.addEventListener("click", function () { choose(b.getAttribute("data-point")); });
  });
  Array.prototype.forEach.call(box.querySelectorAll(".adjust-nudge"), function (b) {
    b.addEventListener("click", function (e) {
      nudge(Number(b.getAttribute("data-axis")), Number(b.getAttribute("data-sign")), e.shiftKey ? 0.5 : 1.0);
    });
  });
  document.getElementById("adjust-reset").addEventListener("click", function () {
    state = {skin_entry: original.skin_entry.slice(), bone_entry: original.bone_entry.slice(), target: original.target.slice()};
    pivot = "bone_entry";
    seq += 1;
    evaluate();
  });
  var KEYS = {r: [0, -1], l: [0, 1], a: [1, -1], p: [1, 1], s: [2, 1], i: [2, -1]};
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) { return; }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var k = e.key.toLowerCase();
    if (k === "1" || k === "2" || k === "3") { choose(["skin_entry", "bone_entry", "target"][Number(k) - 1]); e.preventDefault(); return; }
    if (k === "0") { document.getElementById("adjust-reset").click(); e.preventDefault(); return; }
    if (KEYS[k]) { nudge(KEYS[k][0], KEYS[k][1], e.shiftKey ? 0.5 : 1.0); e.preventDefault(); }
  });

  // drag on a slice: the chosen point (or the point grabbed, when the pointer starts near one) moves in the plane
  function toPixel(g, p) {
    var d = [p[0] - g.centre[0], p[1] - g.centre[1], p[2] - g.centre[2]];
    var x = d[0] * g.u[0] + d[1] * g.u[1] + d[2] * g.u[2];
    var y = d[0] * g.v[0] + d[1] * g.v[1] + d[2] * g.v[2];
    return [x / g.pixel_mm + (g.n_cols - 1) / 2, y / g.pixel_mm + (g.n_rows - 1) / 2];
  }
  Array.prototype.forEach.call(viewer.querySelectorAll("figure.pane"), function (pane) {
    var img = pane.querySelector("img");
    var view = pane.getAttribute("data-view");
    img.classList.add("adjust-drag");
    img.setAttribute("draggable", "false");
    var start = null;
    function natural(e) {  // slice pixels (the pane's n_cols: naturalWidth is 0 while a new slice loads)
      var r = img.getBoundingClientRect();
      var s = panes[view].n_cols / r.width;
      return [(e.clientX - r.left) * s, (e.clientY - r.top) * s];
    }
    img.addEventListener("pointerdown", function (e) {
      if (!panes || !panes[view]) { return; }
      var g = panes[view];
      var at = natural(e);
      var best = null, bestD = 14 * g.n_cols / img.getBoundingClientRect().width;
      ["target", "bone_entry", "skin_entry"].forEach(function (k) {
        var px = toPixel(g, state[k]);
        var dd = Math.hypot(px[0] - at[0], px[1] - at[1]);
        if (dd < bestD) { best = k; bestD = dd; }
      });
      // a point of another needle grabbed (nearer than any of the moved needle's): it is not moved here
      var other = null;
      others().forEach(function (n) {
        ["target", "bone_entry", "skin_entry"].forEach(function (k) {
          var px = toPixel(g, n.points[k]);
          var dd = Math.hypot(px[0] - at[0], px[1] - at[1]);
          if (dd < bestD) { other = n; bestD = dd; }
        });
      });
      if (other) {
        start = null;
        setStatus(other.name[0].toUpperCase() + other.name.slice(1) + " is drawn as saved, for reference: it does " +
                  "not move here. To move it, choose it in 'Needle to move'.");
        e.preventDefault();
        return;
      }
      if (best) { choose(best); }
      start = {at: at, p: state[chosen].slice()};
      img.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    img.addEventListener("pointerup", function (e) {
      if (!start || !panes || !panes[view]) { start = null; return; }
      var g = panes[view];
      var at = natural(e);
      var dx = (at[0] - start.at[0]) * g.pixel_mm, dy = (at[1] - start.at[1]) * g.pixel_mm;
      start = null;
      if (Math.hypot(dx, dy) < 0.25) { return; }  // a click, not a drag
      moveBy([dx * g.u[0] + dy * g.v[0], dx * g.u[1] + dy * g.v[1], dx * g.u[2] + dy * g.v[2]]);
    });
  });

  if (saveBtn) {
    saveBtn.addEventListener("click", function () {
      saveBtn.disabled = true;
      setStatus("saving…");
      var note = document.getElementById("adjust-note");
      post(saveUrl, body({note: note && note.value ? note.value : null})).then(function (res) {
        if (res.status === 201) {
          window.location.href = res.json.review_url;
        } else {
          setStatus((res.json && res.json.detail) || "The version was not saved.");
          saveBtn.disabled = false;
        }
      });
    });
  }
  if (needleSel) {
    // another needle: its saved points become the state; the one moved so far goes back (one needle per version)
    needleSel.addEventListener("change", function () {
      var n = needles.filter(function (x) { return x.index === Number(needleSel.value); })[0];
      if (!n) { return; }
      index = n.index;
      original = n.points;
      screwMm = n.screw_mm ? String(n.screw_mm) : "";
      state = {skin_entry: original.skin_entry.slice(), bone_entry: original.bone_entry.slice(), target: original.target.slice()};
      pivot = "bone_entry";
      baseline = null;
      seq += 1;
      setStatus("re-checking " + n.name + "…");
      evaluate();
    });
  }
  choose("target");
  setStatus("preparing the re-check…");
  evaluate();
}());
