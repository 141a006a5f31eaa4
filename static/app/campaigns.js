/* Campaign pages: move between list, detail, filters and pages by re-posting the entry form
 * (pages.py), and start/pause/stop through the JSON actions with the page token (X-App-Token). */
(function () {
  "use strict";
  var meta = function (name) { var el = document.querySelector('meta[name="' + name + '"]'); return el ? el.content : ""; };
  var $ = function (sel) { return document.querySelector(sel); };
  var $$ = function (sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); };
  var heading = $("#campaign-name");
  var current = heading ? heading.getAttribute("data-campaign") : "";

  function post(fields) {
    var form = $("#nav-form");
    form.action = location.pathname + location.search;
    Object.keys(fields).forEach(function (name) {
      var input = form.elements[name];
      if (!input) { input = document.createElement("input"); input.type = "hidden"; input.name = name; form.appendChild(input); }
      input.value = fields[name];
    });
    form.submit();
  }
  function act(path, status) {
    var base = meta("app-actions").replace(/overview\/$/, "campaigns/");
    fetch(base + current + "/" + path, {
      method: "POST", headers: { "X-App-Token": meta("app-token"), "X-App-Lang": meta("app-lang") }
    }).then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); })
      .then(function (r) {
        if (r.ok) { post({ campaign: current }); return; }
        if (status) status.textContent = r.data.error || "";
      });
  }
  $$(".open-campaign").forEach(function (a) {
    a.addEventListener("click", function (e) { e.preventDefault(); post({ campaign: a.getAttribute("data-campaign") }); });
  });
  $$("[data-action]").forEach(function (b) {
    b.addEventListener("click", function () { act(b.getAttribute("data-action") + "/", $("#action-status")); });
  });
  $$("[data-self]").forEach(function (b) {
    b.addEventListener("click", function () { act("agent/" + b.getAttribute("data-self") + "/", null); });
  });
  var create = $("#create-form");
  if (create) {
    create.addEventListener("submit", function (e) {
      e.preventDefault();
      var f = create.elements;
      var body = {
        name: f.name.value, source: f.source.value, entity_type_id: f.entity_type_id.value,
        list_id: f.list_id.value, window_start: f.window_start.value, window_end: f.window_end.value,
        max_attempts: f.max_attempts.value,
        agents: f.agents.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean)
      };
      fetch(meta("app-actions").replace(/overview\/$/, "campaigns/"), {
        method: "POST", body: JSON.stringify(body),
        headers: { "X-App-Token": meta("app-token"), "X-App-Lang": meta("app-lang"), "Content-Type": "application/json" }
      }).then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); })
        .then(function (r) {
          if (r.ok) { post({ campaign: r.data.campaign.id }); return; }
          var errors = r.data.errors || {};
          $("#create-status").textContent = Object.keys(errors).map(function (k) { return k + ": " + errors[k]; }).join("; ");
        });
    });
  }
  var csvFile = $("#csv-file");
  if (csvFile) {
    csvFile.addEventListener("change", function () {
      if (!csvFile.files.length) return;
      csvFile.files[0].text().then(function (text) {
        fetch(meta("app-actions").replace(/overview\/$/, "campaigns/") + current + "/csv/", {
          method: "POST", body: text,
          headers: { "X-App-Token": meta("app-token"), "X-App-Lang": meta("app-lang"), "Content-Type": "text/csv" }
        }).then(function (r) { return r.json().then(function (d) { return { ok: r.ok, data: d }; }); })
          .then(function (r) {
            if (r.ok) { post({ campaign: current }); return; }
            $("#action-status").textContent = r.data.error || JSON.stringify(r.data.errors || r.data);
          });
      });
    });
  }
  var filter = $("#item-filter");
  if (filter) {
    filter.addEventListener("submit", function (e) {
      e.preventDefault(); post({ campaign: current, state: filter.elements.state.value, page: "1" });
    });
  }
  $$("[data-page-go]").forEach(function (b) {
    b.addEventListener("click", function () {
      post({ campaign: current, state: filter ? filter.elements.state.value : "", page: b.getAttribute("data-page-go") });
    });
  });
})();
