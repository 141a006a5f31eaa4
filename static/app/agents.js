/* Agent status on app pages: my own toggle (overview, agents panel, call card) and the managers'
 * panel, refreshed by polling the agents actions. Uses App.api (page token in X-App-Token). */
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var esc = function (s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  };
  var S = JSON.parse((document.getElementById("app-strings") || { textContent: "{}" }).textContent);

  function showMe(agent) {
    var box = $("#agent-me");
    if (!box || !agent) return;
    box.setAttribute("data-state", agent.state);
    box.setAttribute("data-reason", agent.reason);
    var status = $("#my-status");
    status.textContent = agent.summary;
    status.className = "status st-" + agent.state;
    $$("[data-toggle]", box).forEach(function (b) { b.classList.toggle("active", b.getAttribute("data-toggle") === agent.toggle); });
  }

  function me() {
    $$("[data-toggle]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var msg = $("#toggle-msg");
        msg.textContent = S.saving || "";
        App.api("POST", "agents/me/", { toggle: btn.getAttribute("data-toggle"), note: $("#toggle-note").value }).then(function (r) {
          if (r.ok && r.data.agent) { showMe(r.data.agent); msg.textContent = S.saved || ""; }
          else { msg.textContent = (r.data && r.data.error) || S.failed || ""; }
        });
      });
    });
  }

  function row(a, admin) {
    return '<tr data-agent="' + a.id + '" data-user="' + a.user_id + '" data-state="' + esc(a.state) + '" data-reason="' + esc(a.reason) + '">' +
      "<td>" + esc(a.name) + '</td><td class="st-' + esc(a.state) + '" data-field="state">' + esc(a.state_label) + "</td>" +
      '<td data-field="reason">' + esc(a.reason_label) + (a.sync_error ? ' <span class="error">' + esc(a.sync_error.slice(0, 120)) + "</span>" : "") + "</td>" +
      '<td data-field="since">' + esc(a.since_label) + "</td><td>" + esc(a.line || "—") + '</td><td data-field="last_sync">' + esc(a.last_sync_label) + "</td>" +
      (admin ? '<td><button type="button" data-retry="' + a.id + '">' + esc(S.retry_sync || "Retry") + "</button></td>" : "") + "</tr>";
  }

  function panel(pollMs) {
    me();
    var admin = document.body.getAttribute("data-admin") === "1";
    var tbody = $("#agents-rows");
    tbody.addEventListener("click", function (ev) {
      var btn = ev.target.closest("[data-retry]");
      if (!btn) return;
      btn.disabled = true;
      App.api("POST", "agents/" + btn.getAttribute("data-retry") + "/retry/", {}).then(function () { btn.disabled = false; });
    });
    function refresh() {
      App.api("GET", "agents/").then(function (r) {
        if (r.ok && r.data.agents && r.data.agents.length) {
          tbody.innerHTML = r.data.agents.map(function (a) { return row(a, admin); }).join("");
          var mine = $("#agent-me");
          r.data.agents.forEach(function (a) { if (mine && String(a.user_id) === mine.getAttribute("data-user")) showMe(a); });
        }
        setTimeout(refresh, pollMs);
      });
    }
    setTimeout(refresh, pollMs);
    $$("#push-enabled, #reverse-enabled").forEach(function (box) {
      box.addEventListener("change", function () {
        var msg = $("#sync-msg");
        App.api("POST", "agents/settings/", { push_enabled: $("#push-enabled").checked, reverse_enabled: $("#reverse-enabled").checked }).then(function (r) {
          msg.textContent = r.ok ? (S.saved || "") : (S.failed || "");
        });
      });
    });
  }

  window.AppAgents = { me: me, panel: panel };
})();
