/* People on app pages: Bitrix24's own user pickers (BX24.selectUser / selectUsers) in place of
 * typed user ids. A picker is a [data-user-picker] box whose hidden input carries the chosen
 * ids (comma-separated) for the form; chips show name and avatar (docs/pages.md "People"). */
(function () {
  "use strict";
  var $ = App.h.$, $$ = App.h.$$, esc = App.h.esc, S = App.h.S, fit = App.h.fit;

  function chip(user) {
    var face = user.photo ? '<img class="avatar" src="' + esc(user.photo) + '" alt="" referrerpolicy="no-referrer">' :
      '<span class="avatar initials" aria-hidden="true">' + esc((user.name || "?").charAt(0).toUpperCase()) + "</span>";
    return '<span class="chip" data-id="' + esc(user.id) + '"><span class="person" data-user="' + esc(user.id) + '">' + face +
      '<span class="person-name">' + esc(user.name) + '</span></span><button type="button" class="unpick" aria-label="' + esc(S.remove || "×") + '">×</button></span>';
  }

  // Bitrix24's own dialogs (BX24.selectUser / selectUsers, docs/bitrix24.md "User pickers"); the
  // hidden input carries the ids the form sends.
  function pickers(root) {
    $$("[data-user-picker]", root).forEach(function (box) {
      var input = $("input[type=hidden]", box), chosen = $(".chosen", box);
      var multiple = box.getAttribute("data-multiple") === "1";
      function sync() {
        input.value = $$(".chip", chosen).map(function (c) { return c.getAttribute("data-id"); }).join(",");
        box.dispatchEvent(new Event("change", { bubbles: true }));
        fit();
      }
      function add(users) {
        if (!multiple) chosen.innerHTML = "";
        users.forEach(function (u) {
          if (!u || !u.id || $('.chip[data-id="' + String(u.id).replace(/\D/g, "") + '"]', chosen)) return;
          chosen.insertAdjacentHTML("beforeend", chip({ id: String(u.id).replace(/\D/g, ""), name: u.name, photo: u.photo }));
        });
        sync();
      }
      $(".pick-user", box).addEventListener("click", function () {
        if (!window.BX24 || !BX24.selectUser) return;
        if (multiple) BX24.selectUsers(function (users) { add(users || []); });
        else BX24.selectUser(function (user) { if (user) add([user]); });
      });
      chosen.addEventListener("click", function (e) {
        var x = e.target.closest(".unpick"); if (!x) return;
        x.closest(".chip").remove(); sync();
      });
    });
  }

  window.AppPeople = { pickers: pickers };
})();
