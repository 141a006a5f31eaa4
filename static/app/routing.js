/* The routing page: the one-click dial of a call handed to me, and the admins' chain and the
 * per-user chains (own steps or the portal's, a backup line) (integration/routing/views.py,
 * docs/routing.md "Pages"). Field errors come back as {errors: {field: text}} and are shown
 * next to their field; nothing was stored then. */
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var S = JSON.parse((document.getElementById("app-strings") || { textContent: "{}" }).textContent);
  var fit = function () { App.h.fit(); };  // the portal's frame follows the page's height

  function errors(root, errs) {
    $$(".field-error", root).forEach(function (el) { el.textContent = ""; });
    Object.keys(errs || {}).forEach(function (name) {
      var el = $('[data-error="' + name + '"]', root);
      if (el) el.textContent = errs[name];
    });
    fit();
  }

  function stepsOf(list) {
    return $$("li", list).map(function (li) { return { step: li.getAttribute("data-step"), on: $("[data-on]", li).checked }; });
  }

  $$("[data-dial]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      btn.disabled = true;
      App.api("POST", "routing/reroutes/" + btn.getAttribute("data-dial") + "/dial/", {}).then(function (r) {
        $("#dial-msg").textContent = r.ok ? (S.dial_dialing || "") : ((r.data && r.data.error) || S.failed || "");
        if (!r.ok) btn.disabled = false;
      });
    });
  });

  var form = $("#chain-form");
  if (!form) return;
  // Reordering, the same in the portal's chain and every user's: the callback task stays last.
  $$("[data-move]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var li = btn.closest("li"), list = li.parentNode;
      if (btn.getAttribute("data-move") === "-1" && li.previousElementSibling) list.insertBefore(li, li.previousElementSibling);
      else if (btn.getAttribute("data-move") === "1" && li.nextElementSibling && li.nextElementSibling.getAttribute("data-step") !== "callback") list.insertBefore(li.nextElementSibling, li);
    });
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var body = {
      enabled: $('[name="enabled"]', form).checked,
      mode: ($('[name="mode"]:checked', form) || {}).value,
      duty_line: $('[name="duty_line"]', form).value,
      escalate_after_min: $('[name="escalate_after_min"]', form).value,
      callbacks_in_dialer: $('[name="callbacks_in_dialer"]', form).checked,
      steps: stepsOf($("#chain-steps"))
    };
    $("#chain-msg").textContent = S.saving || "";
    App.api("POST", "routing/policy/", body).then(function (r) {
      errors(form, r.data.errors);
      $("#chain-msg").textContent = r.ok ? S.saved : (r.data.errors ? S.fix_fields : S.failed);
    });
  });

  // A user's row shows what is stored: their own chain or the portal's, and Clear when there
  // is anything of theirs to clear.
  function showStored(tr, overrides) {
    var uid = tr.getAttribute("data-user");
    var mine = (overrides || []).filter(function (o) { return String(o.user_id) === uid; })[0];
    var own = !!(mine && mine.own_steps);
    tr.setAttribute("data-own", own ? "1" : "0");
    $('[data-badge="own"]', tr).hidden = !own;
    $('[data-badge="portal"]', tr).hidden = own;
    $("[data-clear-override]", tr).hidden = !mine;
    if (!mine) { $("[data-backup]", tr).value = ""; $("[data-chain]", tr).value = "portal"; $("[data-steps]", tr).hidden = true; }
    fit();
  }

  $$("#user-chains tr[data-user]").forEach(function (tr) {
    var chain = $("[data-chain]", tr), list = $("[data-steps]", tr), msg = $("[data-msg]", tr);
    chain.addEventListener("change", function () { list.hidden = chain.value !== "own"; fit(); });
    $("[data-save-override]", tr).addEventListener("click", function () {
      var body = { user_id: tr.getAttribute("data-user"), backup_line: $("[data-backup]", tr).value,
                   steps: chain.value === "own" ? stepsOf(list) : null };
      msg.textContent = S.saving || "";
      App.api("POST", "routing/overrides/", body).then(function (r) {
        errors(tr, r.data.errors);
        if (r.ok) showStored(tr, r.data.overrides);
        msg.textContent = r.ok ? S.saved : (r.data.errors ? S.fix_fields : S.failed);
      });
    });
    $("[data-clear-override]", tr).addEventListener("click", function () {
      App.api("POST", "routing/overrides/" + tr.getAttribute("data-user") + "/delete/", {}).then(function (r) {
        errors(tr, {});
        if (r.ok) showStored(tr, r.data.overrides);
        msg.textContent = r.ok ? S.removed : S.failed;
      });
    });
  });
})();
