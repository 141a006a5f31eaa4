/* Unitalk app pages: navigation between pages, JSON actions with the page token, lists, settings.
 * The page token goes only in the X-App-Token header (never a cookie, never the URL): a
 * cross-site form cannot set it, which is what protects the actions from CSRF (docs/pages.md). */
(function () {
  "use strict";
  var meta = function (name) { var el = document.querySelector('meta[name="' + name + '"]'); return el ? el.content : ""; };
  var TOKEN = meta("app-token");
  var LANG = meta("app-lang");
  var BASE = meta("app-actions").replace(/overview\/$/, "");
  var S = JSON.parse((document.getElementById("app-strings") || { textContent: "{}" }).textContent);
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var esc = function (s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  };

  function fit() { if (window.BX24 && BX24.fitWindow) { try { BX24.fitWindow(); } catch (e) { /* outside a portal */ } } }
  if (window.BX24) { BX24.init(fit); }

  function api(method, path, body) {
    var opts = { method: method, headers: { "X-App-Token": TOKEN, "X-App-Lang": LANG } };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(BASE + path, opts).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, status: r.status, data: data }; },
        function () { return { ok: false, status: r.status, data: {} }; });
    }, function () { return { ok: false, status: 0, data: {} }; });
  }

  // Another page: re-post the entry fields (AUTH_ID is checked again, cached) keeping the query
  // string Bitrix24 put on the iframe URL (APP_SID links BX24.js to the portal frame).
  function go(url, kind) {
    var form = $("#nav-form");
    form.action = url + location.search;
    form.elements.kind.value = kind || "";
    form.submit();
  }
  $$("[data-go]").forEach(function (el) {
    el.addEventListener("click", function () { go(el.getAttribute("data-go"), el.getAttribute("data-kind")); });
  });

  var PAGE = document.body.getAttribute("data-page");
  var bannersBox = $("#banners");
  if (bannersBox) {
    bannersBox.addEventListener("click", function (e) {
      var btn = e.target.closest("[data-dismiss]"); if (!btn) return;
      api("POST", "problems/" + btn.getAttribute("data-dismiss") + "/dismiss/", {}).then(function (r) {
        if (r.ok) { btn.closest(".banner").remove(); fit(); }
      });
    });
  }
  function setBadge(el, n) { if (!el) return; el.textContent = n; el.classList.toggle("zero", !n); }
  // The tab badges: each sums the lists named in its data-total.
  function setTotals(counts) {
    $$("[data-total]").forEach(function (el) {
      var n = 0;
      el.getAttribute("data-total").split(" ").forEach(function (k) { n += counts[k] || 0; });
      setBadge(el, n);
    });
  }
  // Banners follow their causes: redrawn from the server after every change and every 15 s,
  // so a fixed problem disappears without a reload (docs/pages.md "Banners").
  function refreshBanners() {
    if (!bannersBox) return;
    api("GET", "overview/?page=" + encodeURIComponent(PAGE)).then(function (r) {
      if (!r.ok) return;
      bannersBox.innerHTML = r.data.banners_html;
      setTotals(r.data.counts || {});
      fit();
    });
  }
  if (bannersBox) setInterval(refreshBanners, 15000);

  function showErrors(form, errors) {
    $$(".field-error", form).forEach(function (el) { el.textContent = ""; });
    Object.keys(errors || {}).forEach(function (name) {
      var el = $('[data-error-for="' + name + '"]', form);
      if (el) el.textContent = errors[name];
    });
  }
  function detail(text) {
    return text ? '<details class="detail"><summary>' + esc(S.details) + "</summary><code>" + esc(text) + "</code></details>" : "";
  }

  // A Bitrix24 user as lists show them: avatar and name; the id only when the name could not
  // be read (docs/pages.md "People").
  function person(p) {
    if (!p || !p.id) return "—";
    var face = p.photo ? '<img class="avatar" src="' + esc(p.photo) + '" alt="" referrerpolicy="no-referrer">' :
      '<span class="avatar initials" aria-hidden="true">' + esc(p.known ? p.name.charAt(0).toUpperCase() : "?") + "</span>";
    var name = p.known ? p.name : (S.user_id || "ID %(id)s").replace("%(id)s", p.id);
    return '<span class="person' + (p.known ? "" : " unknown") + '" data-user="' + esc(p.id) + '">' + face + '<span class="person-name">' + esc(name) + "</span></span>";
  }

  // `step(progress)` hears {done, total, step} while a long job reports it (docs/pages.md
  // "Progress").
  function pollJob(id, done, step) {
    api("GET", "jobs/" + id + "/").then(function (r) {
      if (r.ok && r.data.done) { done(r.data); return; }
      if (step && r.ok && r.data.progress) step(r.data.progress);
      setTimeout(function () { pollJob(id, done, step); }, 500);
    });
  }
  function progressHtml(done, total, text) {
    var pct = total ? Math.round(done * 100 / total) : 0;
    return '<span class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="' + total + '" aria-valuenow="' + done + '"><span style="width:' + pct + '%"></span></span> ' + esc(text);
  }

  function startCall(number) {
    // Real portal: BX24.im.phoneTo (older SDK) or the messenger extension (docs/bitrix24.md §6.3).
    if (window.BX24 && BX24.im && BX24.im.phoneTo) { BX24.im.phoneTo(number); return; }
    if (window.BX && BX.Runtime) {
      BX.Runtime.loadExtension("im.public.iframe").then(function (e) { e.Messenger.startPhoneCall(number, {}); });
      return;
    }
    window.open("tel:" + number, "_top"); // outside any portal
  }

  function failedPage() {
    var form = $("#filters");
    var state = { kind: form.getAttribute("data-kind"), page: 1 };
    var status = $("#list-status");

    function query() {
      var q = new URLSearchParams(new FormData(form));
      q.set("kind", state.kind); q.set("page", state.page);
      return q.toString();
    }
    var H = S.headers || {};
    function cell(name, html, cls) {
      return '<td data-label="' + esc(H[name] || "") + '"' + (cls ? ' class="' + cls + '"' : "") + ">" + html + "</td>";
    }
    function row(item) {
      var actions = "";
      if (item.state !== "resolved") {
        if (item.retryable) actions += '<button type="button" data-act="retry">' + esc(S.retry) + "</button> ";
        if (item.phone) actions += '<button type="button" data-act="call">' + esc(S.call_back) + "</button> ";
        actions += '<button type="button" data-act="resolve">' + esc(S.resolve) + "</button>";
      }
      var more = item.occurrences_text ? ' <span class="muted">(' + esc(item.occurrences_text) + ")</span>" : "";
      var tries = item.attempts_text ? ' <span class="muted">(' + esc(item.attempts_text) + ")</span>" : "";
      if (item.dialer) tries += ' <span class="muted dialer">' + esc(item.dialer) + "</span>";
      return '<tr data-id="' + item.id + '" data-phone="' + esc(item.phone) + '" data-state="' + esc(item.state) + '">' +
        '<td class="pick-col"><input type="checkbox" class="pick"' + (item.retryable ? "" : " disabled") + "></td>" +
        cell("when", esc(item.created_at.slice(0, 16).replace("T", " "))) +
        cell("number", esc(item.phone) + more) + cell("user", person(item.owner_person)) +
        cell("reason", esc(item.reason) + tries + detail(item.detail), "reason") +
        cell("state", esc(S[item.state === "open" ? "open" : item.state + "_state"] || item.state), "state") +
        cell("actions", actions, "acts") + "</tr>";
    }
    function load() {
      api("GET", "failed/?" + query()).then(function (r) {
        showErrors(form, r.data.errors);
        if (!r.ok) {
          status.textContent = r.data.errors ? "" : (r.data.error || S.failed);
          if (r.data.errors) $("#failed-rows").innerHTML = "";
          fit(); return;
        }
        status.textContent = "";
        var rows = r.data.items.map(row).join("");
        var selectable = r.data.items.some(function (i) { return i.retryable; });
        // Selecting only makes sense where something can be retried (never for missed calls).
        $("#failed-table").classList.toggle("no-pick", !selectable);
        $("#bulk-retry").hidden = !selectable;
        $("#failed-rows").innerHTML = rows || '<tr><td colspan="7" class="muted">' + esc(S.none) + "</td></tr>";
        $("#pageinfo").textContent = S.page + " " + r.data.page + " " + S.of + " " + r.data.pages;
        $("#prev").disabled = r.data.page <= 1; $("#next").disabled = r.data.page >= r.data.pages;
        Object.keys(r.data.counts).forEach(function (k) {
          setBadge($('[data-count="' + k + '"]'), r.data.counts[k]);
        });
        setTotals(r.data.counts);
        fit();
      });
    }
    form.addEventListener("submit", function (e) { e.preventDefault(); state.page = 1; load(); });
    $("#prev").addEventListener("click", function () { state.page -= 1; load(); });
    $("#next").addEventListener("click", function () { state.page += 1; load(); });
    $$(".subtab").forEach(function (el) {
      el.addEventListener("click", function () {
        $$(".subtab").forEach(function (t) { t.classList.remove("active"); });
        el.classList.add("active"); state.kind = el.getAttribute("data-kind"); state.page = 1; load();
      });
    });
    $("#select-all").addEventListener("change", function (e) {
      $$(".pick").forEach(function (c) { if (!c.disabled) c.checked = e.target.checked; });
    });
    $("#failed-rows").addEventListener("click", function (e) {
      var btn = e.target.closest("button[data-act]"); if (!btn) return;
      var tr = btn.closest("tr"); var id = tr.getAttribute("data-id"); var act = btn.getAttribute("data-act");
      if (act === "call") { startCall(tr.getAttribute("data-phone")); return; }
      btn.disabled = true; status.textContent = act === "retry" ? S.retrying : "";
      api("POST", "failed/" + id + "/" + act + "/", {}).then(function (r) {
        status.textContent = r.ok ? "" : (r.data.error || S.failed);
        if (act === "retry" && r.ok) { watch(id); }
        load(); refreshBanners();
      });
    });
    // After a retry, follow the item until its job settles (resolved, or open again).
    function watch(id, settled) {
      var tries = 0;
      (function tick() {
        api("GET", "failed/?" + query()).then(function (r) {
          var item = r.ok && r.data.items.filter(function (i) { return String(i.id) === String(id); })[0];
          if (!item || item.state !== "retrying" || ++tries > 60) { if (settled) settled(); load(); return; }
          setTimeout(tick, 1000);
        });
      })();
    }
    $("#bulk-retry").addEventListener("click", function () {
      var ids = $$(".pick").filter(function (c) { return c.checked; }).map(function (c) { return Number(c.closest("tr").getAttribute("data-id")); });
      if (!ids.length) return;
      status.textContent = S.retrying;
      api("POST", "failed/retry/", { ids: ids }).then(function (r) {
        if (!r.ok) { status.textContent = S.failed; return; }
        // done / total as each retried item settles (resolved, or open again with its reason)
        var retrying = ids.filter(function (id) { return r.data.results[id] === "retrying"; });
        var settled = 0, total = retrying.length, box = $("#bulk-progress");
        status.textContent = "";
        function show() {
          box.hidden = !total;
          box.innerHTML = progressHtml(settled, total, S.bulk_progress.replace("%(done)s", settled).replace("%(total)s", total));
          box.setAttribute("data-settled", settled); box.setAttribute("data-of", total);
          fit();
        }
        show();
        retrying.forEach(function (id) { watch(id, function () { settled += 1; show(); }); });
        load();
      });
    });
    load();
  }

  function formData(form) {
    var data = {};
    $$("input, select", form).forEach(function (el) {
      if (!el.name) return;
      data[el.name] = el.type === "checkbox" ? el.checked : el.value;
    });
    return data;
  }

  function settingsPage() {
    var keyForm = $("#key-form");
    var out = $("#test-result");
    // Everything the page says about the connection comes from settings/status/ (one source).
    function showStatus(data) {
      if (data.health_html) $("#health-panel").innerHTML = data.health_html;
      if (data.key_masked !== undefined) $("#key-masked").textContent = data.key_masked || "—";
      refreshBanners(); fit();
    }
    function refreshStatus() { api("GET", "settings/status/").then(function (r) { if (r.ok) showStatus(r.data); }); }
    function testResult(job) {
      var res = job.result || {};
      var box = $("#test-detail");
      box.hidden = true;
      if (res.ok) {
        out.textContent = S.test_ok_n.replace("%(n)s", res.operators); out.className = "ok";
      } else {
        out.textContent = S.test_problem[res.status] || S.test_problem[""]; out.className = "error";
        var why = res.error || job.error;
        if (why) { $("code", box).textContent = why; box.hidden = false; }
      }
      refreshStatus();
    }
    function runTest(jobId) {
      out.textContent = S.testing; out.className = ""; $("#test-detail").hidden = true;
      pollJob(jobId, testResult);
    }
    keyForm.addEventListener("submit", function (e) {
      e.preventDefault();
      api("POST", "settings/key/", { api_key: $("#api_key").value }).then(function (r) {
        showErrors(keyForm, r.data.errors);
        if (r.ok) {
          $("#api_key").value = "";
          $("#webhook-url").value = r.data.webhook_url; $("#webhook-secret").value = r.data.webhook_secret;
          showStatus(r.data);
          runTest(r.data.job); // the key is checked on save; the answer arrives from a job
        }
      });
    });
    $("#test-connection").addEventListener("click", function () {
      showErrors(keyForm, {});
      api("POST", "settings/test/", {}).then(function (r) {
        if (!r.ok) {
          showErrors(keyForm, r.data.errors);
          out.textContent = r.data.errors ? "" : (r.data.error || S.failed); out.className = "error";
          return;
        }
        runTest(r.data.job);
      });
    });
    var options = $("#options-form");
    options.addEventListener("submit", function (e) {
      e.preventDefault();
      var out = $("#options-status"); out.textContent = S.saving; out.className = "";
      api("POST", "settings/", formData(options)).then(function (r) {
        showErrors(options, r.data.errors);
        // Field errors say what is wrong; a generic line under them would say nothing true.
        out.textContent = r.ok ? S.saved : (r.data.errors ? S.fix_fields : S.failed);
        out.className = r.ok ? "ok" : "error"; fit();
      });
    });
    $("#operators-sync").addEventListener("click", function () {
      var out = $("#operators-status"); out.textContent = S.syncing;
      api("POST", "operators/sync/", {}).then(function (r) {
        if (!r.ok) { out.textContent = r.data.error || S.failed; return; }
        pollJob(r.data.job, function (job) {
          out.textContent = job.state === "succeeded" ? S.synced : S.sync_failed;
          refreshMappings(); refreshBanners();
        }, function (p) {
          var n = Math.min(p.done + 1, p.total); // the step being worked on
          out.innerHTML = progressHtml(p.done, p.total, S.sync_steps.replace("%(done)s", n).replace("%(total)s", p.total) + " " + (S.sync_step[p.step] || ""));
          fit();
        });
      });
    });
    function refreshMappings() {
      api("GET", "operators/rows/").then(function (r) {
        if (r.ok) { $("#mapping-table tbody").innerHTML = r.data.html; fit(); }
      });
    }
    var mapForm = $("#map-form");
    var confirmBox = $("#map-confirm");
    function map(body) {
      confirmBox.hidden = true;
      api("POST", "operators/", body).then(function (r) {
        showErrors(mapForm, r.data.errors);
        if (r.status === 409) {
          // A line would change hands: say what would change and ask first.
          $("ul", confirmBox).innerHTML = r.data.confirm.map(function (t) { return "<li>" + esc(t) + "</li>"; }).join("");
          confirmBox.hidden = false;
          $("#map-confirm-yes").onclick = function () { map(Object.assign({}, body, { confirm: true })); };
          fit(); return;
        }
        if (r.ok) { $("#operators-status").textContent = S.saved; refreshMappings(); refreshBanners(); }
      });
    }
    $("#map-confirm-no").addEventListener("click", function () { confirmBox.hidden = true; fit(); });
    mapForm.addEventListener("submit", function (e) { e.preventDefault(); map(formData(mapForm)); });
    $("#mapping-table").addEventListener("click", function (e) {
      var btn = e.target.closest("[data-unmap]"); if (!btn) return;
      btn.disabled = true;
      api("POST", "operators/", { user_id: btn.getAttribute("data-unmap"), remove: true }).then(function (r) {
        $("#operators-status").textContent = r.ok ? S.removed : (r.data.error || S.failed);
        refreshMappings(); refreshBanners();
      });
    });
    $$("[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var input = document.getElementById(btn.getAttribute("data-copy"));
        input.select();
        var done = function () { btn.textContent = S.copied; };
        if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
        else { document.execCommand("copy"); done(); }
      });
    });
  }

  // A click's dial (issue 21 item 1): attempts and time left while Unitalk is retried, then
  // the reason and "Try again" (a fresh dial with a new deadline) once it failed.
  function dialShow(d) {
    var progress = $("#dial-progress"), failed = $("#dial-failed");
    if (!progress || !d) return false;
    failed.hidden = d.state !== "failed" || !d.retry_item;
    if (d.state === "retrying") {
      progress.textContent = S.dial_retrying.replace("%(n)s", d.attempts).replace("%(s)s", d.seconds_left);
    } else if (d.state === "dialing") {
      progress.textContent = S.dial_dialing;
    } else if (d.state === "dialled") {
      progress.textContent = S.dial_dialled;
    } else {
      progress.textContent = S.dial_failed_note;
      $('[data-field="dial-reason"]').textContent = d.reason || "";
    }
    failed.setAttribute("data-item", d.retry_item || "");
    return d.state === "dialing" || d.state === "retrying";
  }

  function callCard(pollMs) {
    var box = $("#placement"); var id = box.getAttribute("data-call-id");
    if (!id) return;
    var again = $("#dial-try-again");
    if (again) again.addEventListener("click", function () {
      var item = $("#dial-failed").getAttribute("data-item");
      if (!item) return;
      again.disabled = true; $("#dial-progress").textContent = S.dial_again;
      api("POST", "failed/" + item + "/retry/", {}).then(function (r) {
        again.disabled = false;
        if (r.ok) { $("#dial-failed").hidden = true; tick(); }
        else $("#dial-progress").textContent = (r.data && r.data.error) || S.failed;
      });
    });
    function tick() {
      api("GET", "call-card/?call_id=" + encodeURIComponent(id)).then(function (r) {
        var c = r.ok && r.data.call;
        var dialing = false;
        if (c) {
          $('[data-field="stage"]').textContent = (S.stages || {})[c.stage] || c.stage;
          $('[data-field="status"]').textContent = c.status_label || "—";
          $('[data-field="duration"]').textContent = c.duration === null ? "—" : c.duration;
          if (c.steps_html !== undefined && $("#call-steps")) $("#call-steps").innerHTML = c.steps_html;
          $("#call-note").textContent = "";
          dialing = dialShow(c.dial);
        }
        // Stop once the call is settled in Bitrix24; a live call keeps being followed, a dial
        // in progress every second (its deadline is seconds away).
        if (!c || dialing || ["recorded", "failed", "not_placed"].indexOf(c.stage) < 0) {
          var moving = dialing || (c && c.live && ["dialing", "ringing", "talking"].indexOf(c.live.step) >= 0);
          setTimeout(tick, moving ? Math.min(pollMs, 1000) : pollMs);
        }
      });
    }
    tick();
  }

  window.App = { failedPage: failedPage, settingsPage: settingsPage, callCard: callCard, api: api,
    // for the other page scripts (calls.js, people.js): one copy of the small helpers
    h: { $: $, $$: $$, esc: esc, S: S, fit: fit } };
})();
