/* Sandbox BX24.js: the subset of the Bitrix24 JS SDK the app pages use (docs/bitrix24.md §6.3).
 * Talks to the parent portal page over postMessage (auth, resize, installFinish) and to the
 * sandbox REST API over HTTP (CORS) with the iframe's access token. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script ? new URL(script.src, location.href).origin : "";
  var query = new URLSearchParams(location.search);
  var sid = query.get("APP_SID") || "";
  var framed = window.parent !== window;
  var state = { auth: null, placement: "DEFAULT", options: {} };
  var callbacks = {};
  var seq = 0;

  function send(cmd, params, cb) {
    var id = ++seq;
    if (cb) callbacks[id] = cb;
    if (!framed) { if (cb) setTimeout(function () { cb(null); }, 0); return; }
    window.parent.postMessage({ bx24: true, sid: sid, cmd: cmd, params: params || {}, cbid: id }, "*");
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || !data.bx24 || !data.reply) return;
    var cb = callbacks[data.cbid];
    delete callbacks[data.cbid];
    if (cb) cb(data.result);
  });

  function Result(status, answer, method, params) {
    this.status = status;
    this.answer = answer || {};
    this.query = { method: method, data: params };
  }
  Result.prototype.data = function () { return this.answer.result; };
  Result.prototype.error = function () {
    return this.answer.error !== undefined
      ? { status: this.status, ex: { error: this.answer.error, error_description: this.answer.error_description } }
      : null;
  };
  Result.prototype.error_description = function () { return this.answer.error_description; };
  Result.prototype.more = function () { return this.answer.next !== undefined; };
  Result.prototype.total = function () { return this.answer.total; };
  Result.prototype.time = function () { return this.answer.time; };
  Result.prototype.next = function (cb) {
    if (!this.more()) return false;
    var params = Object.assign({}, this.query.data || {}, { start: this.answer.next });
    BX24.callMethod(this.query.method, params, cb);
    return true;
  };

  function restBase() {
    return (state.auth && state.auth.client_endpoint) || base + "/rest/";
  }

  var BX24 = {
    init: function (cb) {
      var done = false;
      function ready() { if (!done) { done = true; if (cb) cb(); } }
      if (!framed) { ready(); return; }
      send("init", {}, function (result) {
        if (result) state = result;
        ready();
      });
      setTimeout(ready, 2000);
    },
    installFinish: function () { send("installFinish"); },
    fitWindow: function (cb) {
      send("resize", { height: document.documentElement.scrollHeight }, cb);
    },
    resizeWindow: function (width, height, cb) {
      send("resize", { width: width, height: height }, cb);
    },
    getAuth: function () {
      if (!state.auth) return false;
      return {
        access_token: state.auth.access_token,
        refresh_token: state.auth.refresh_token,
        expires_in: state.auth.expires_in,
        domain: state.auth.domain,
        member_id: state.auth.member_id
      };
    },
    refreshAuth: function (cb) {
      send("refreshAuth", {}, function (auth) {
        if (auth) state.auth = Object.assign({}, state.auth, auth);
        if (cb) cb(BX24.getAuth());
      });
    },
    getDomain: function () { return state.auth ? state.auth.domain : ""; },
    isAdmin: function () { return !!state.isAdmin; },
    placement: {
      info: function () { return { placement: state.placement, options: state.options }; },
      call: function (command, params, cb) { send("placement.call", { command: command, params: params }, cb); },
      bindEvent: function (name, cb) { /* call-card events are not simulated */ }
    },
    callMethod: function (method, params, cb) {
      var body = Object.assign({}, params || {});
      if (state.auth) body.auth = state.auth.access_token;
      fetch(restBase() + method, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().then(
          function (json) { return new Result(response.status, json, method, params); },
          function () { return new Result(response.status, { error: "NON_JSON", error_description: "non-JSON answer" }, method, params); }
        );
      }, function (err) {
        return new Result(0, { error: "NETWORK_ERROR", error_description: String(err) }, method, params);
      }).then(function (result) { if (cb) cb(result); });
    },
    callBatch: function (calls, cb, halt) {
      var cmd = Array.isArray(calls) ? [] : {};
      Object.keys(calls).forEach(function (key) {
        var item = calls[key];
        var method = Array.isArray(item) ? item[0] : item.method;
        var params = Array.isArray(item) ? item[1] : item.params;
        cmd[key] = method + "?" + new URLSearchParams(flatten(params || {})).toString();
      });
      BX24.callMethod("batch", { halt: halt ? 1 : 0, cmd: cmd }, function (result) {
        if (!cb) return;
        var data = result.data() || {};
        var out = Array.isArray(calls) ? [] : {};
        Object.keys(calls).forEach(function (key) {
          out[key] = new Result(200, {
            result: data.result ? data.result[key] : undefined,
            error: data.result_error && data.result_error[key] ? data.result_error[key].error : undefined,
            total: data.result_total ? data.result_total[key] : undefined,
            next: data.result_next ? data.result_next[key] : undefined
          });
        });
        cb(out);
      });
    },
    // BX24.im.phoneTo (docs/bitrix24.md §6.3): the portal starts the call through the app that
    // handles its telephony, exactly as when a number is clicked in the CRM (click-to-call).
    im: { phoneTo: function (number) { send("phoneTo", { number: String(number) }); } },
    // Bitrix24's people dialogs (docs/bitrix24.md §6.3, docs/sandbox.md "User pickers"): the
    // portal page shows them and answers {id, name} (selectUsers: a list of those); a dialog
    // closed without a choice calls nothing back.
    selectUser: function (cb) { send("selectUser", {}, function (user) { if (user && cb) cb(user); }); },
    selectUsers: function (cb) { send("selectUsers", {}, function (users) { if (users && cb) cb(users); }); },
    openApplication: function (params, cb) { send("openApplication", params || {}, cb); },
    closeApplication: function () { send("closeApplication"); },
    reloadWindow: function () { location.reload(); }
  };

  function flatten(obj, prefix, out) {
    out = out || [];
    Object.keys(obj).forEach(function (key) {
      var name = prefix ? prefix + "[" + key + "]" : key;
      var value = obj[key];
      if (value !== null && typeof value === "object") flatten(value, name, out);
      else out.push([name, value === null || value === undefined ? "" : String(value)]);
    });
    return out;
  }

  window.BX24 = BX24;
})();
