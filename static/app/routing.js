/* The routing page: the one-click dial of a call handed to me, and the admins' chain and backup
 * lines (integration/routing/views.py). Field errors come back as {errors: {field: text}}. */
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var S = JSON.parse((document.getElementById("app-strings") || { textContent: "{}" }).textContent);

  function errors(root, errs) {
    $$(".field-error", root).forEach(function (el) { el.textContent = ""; });
    Object.keys(errs || {}).forEach(function (name) {
      var el = $('[data-error="' + name + '"]', root);
      if (el) el.textContent = errs[name];
    });
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
  $$("[data-move]", form).forEach(function (btn) {
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
      steps: $$("#chain-steps li").map(function (li) { return { step: li.getAttribute("data-step"), on: $("[data-on]", li).checked }; })
    };
    $("#chain-msg").textContent = S.saving || "";
    App.api("POST", "routing/policy/", body).then(function (r) {
      errors(form, r.data.errors);
      $("#chain-msg").textContent = r.ok ? S.saved : (r.data.errors ? S.fix_fields : S.failed);
    });
  });

  var overrides = JSON.parse(($("#routing-overrides") || { textContent: "[]" }).textContent);
  overrides.forEach(function (o) {
    var row = $('#overrides-table tr[data-user="' + o.user_id + '"] [data-backup]');
    if (row) row.value = o.backup_line;
  });
  $$("[data-save-override]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var tr = btn.closest("tr");
      App.api("POST", "routing/overrides/", { user_id: tr.getAttribute("data-user"), backup_line: $("[data-backup]", tr).value }).then(function (r) {
        errors(tr, r.data.errors);
        btn.textContent = r.ok ? S.saved : btn.textContent;
      });
    });
  });
})();
