/* Calls on app pages: "Calls now" on the overview (a short poll, docs/pages.md "Live calls"),
 * and the call history (filters, pages, CSV). Uses App.api (page token
 * in X-App-Token; the token never goes into a URL, so the CSV is fetched and saved as a blob). */
(function () {
  "use strict";
  var $ = App.h.$, $$ = App.h.$$, esc = App.h.esc, S = App.h.S, fit = App.h.fit;

  // One request at a time, the next one pollMs after the answer: a slow server is never piled on,
  // and a hidden tab asks nothing (visibilitychange restarts it).
  function live() {
    var box = $("#live"); if (!box) return;
    var pollMs = Number(box.getAttribute("data-poll")) || 1000;
    var timer = null;
    function tick() {
      timer = null;
      if (document.hidden) return;
      App.api("GET", "calls/live/").then(function (r) {
        if (r.ok) {
          $("#live-rows").innerHTML = r.data.html;
          var badge = $("#live-count"); badge.textContent = r.data.count; badge.classList.toggle("zero", !r.data.count);
          fit();
        }
        timer = setTimeout(tick, pollMs);
      });
    }
    document.addEventListener("visibilitychange", function () { if (!document.hidden && !timer) tick(); });
    timer = setTimeout(tick, pollMs);
  }

  function showErrors(form, errors) {
    $$(".field-error", form).forEach(function (el) { el.textContent = ""; });
    Object.keys(errors || {}).forEach(function (name) {
      var el = $('[data-error-for="' + name + '"]', form);
      if (el) el.textContent = errors[name];
    });
  }

  function history() {
    var form = $("#history-filters"), status = $("#history-status");
    var state = { page: 1 };
    function query(withPage) {
      var q = new URLSearchParams(new FormData(form));
      if (withPage) q.set("page", state.page);
      return q.toString();
    }
    function load() {
      status.textContent = S.loading || "";
      App.api("GET", "calls/history/?" + query(true)).then(function (r) {
        showErrors(form, r.data.errors);
        if (!r.ok) {
          status.textContent = r.data.errors ? (S.fix_filters || "") : (r.data.error || S.failed);
          $("#history-rows").innerHTML = ""; fit(); return;
        }
        status.textContent = r.data.total_text;
        $("#history-rows").innerHTML = r.data.html;
        $("#history-pageinfo").textContent = S.page + " " + r.data.page + " " + S.of + " " + r.data.pages;
        $("#history-prev").disabled = r.data.page <= 1; $("#history-next").disabled = r.data.page >= r.data.pages;
        fit();
      });
    }
    form.addEventListener("submit", function (e) { e.preventDefault(); state.page = 1; load(); });
    form.addEventListener("change", function (e) { if (e.target.closest("[data-user-picker]")) { state.page = 1; load(); } });
    $("#history-prev").addEventListener("click", function () { state.page -= 1; load(); });
    $("#history-next").addEventListener("click", function () { state.page += 1; load(); });
    $("#history-csv").addEventListener("click", function () {
      var btn = this; btn.disabled = true;
      var meta = function (n) { return document.querySelector('meta[name="' + n + '"]').content; };
      var base = meta("app-actions").replace(/overview\/$/, "");
      fetch(base + "calls/history.csv?" + query(false), { headers: { "X-App-Token": meta("app-token"), "X-App-Lang": meta("app-lang") } })
        .then(function (r) {
          if (!r.ok) return r.json().then(function (d) { showErrors(form, d.errors); status.textContent = d.error || S.failed; });
          var name = (/filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "") || [])[1] || "calls.csv";
          return r.blob().then(function (blob) {
            var a = document.createElement("a");
            a.href = URL.createObjectURL(blob); a.download = name; a.id = "history-csv-link";
            document.body.appendChild(a); a.click();
            setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 60000);
          });
        }, function () { status.textContent = S.failed; })
        .then(function () { btn.disabled = false; });
    });
    load();
  }

  window.AppCalls = { live: live, history: history };
})();
