// Runs sandbox/assets/bx24.js in node with a fake framed window whose parent answers like the
// sandbox portal page. Prints one JSON line with what the app page would observe.
const fs = require("fs");
const vm = require("vm");
const [scriptPath, bitrixUrl, token, memberId] = process.argv.slice(2);
const listeners = [];
const sent = [];
const parent = {
  postMessage(message) {
    sent.push(message.cmd);
    let result = null;
    if (message.cmd === "init") {
      result = {
        auth: { access_token: token, refresh_token: "r", expires_in: 3600, domain: "d",
                member_id: memberId, client_endpoint: bitrixUrl + "/rest/" },
        placement: "CRM_LEAD_DETAIL_TAB", options: { ID: "7" }
      };
    }
    setTimeout(() => listeners.forEach((fn) => fn({ data: { bx24: true, reply: true, cbid: message.cbid, result } })), 0);
  }
};
const window = {
  parent,
  addEventListener: (name, fn) => { if (name === "message") listeners.push(fn); }
};
const context = {
  window, fetch, URL, URLSearchParams, setTimeout, console,
  location: { search: "?APP_SID=abc", href: bitrixUrl + "/app" },
  document: { currentScript: { src: bitrixUrl + "/bx24.js" }, documentElement: { scrollHeight: 300 } }
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(scriptPath, "utf8"), context);
const BX24 = context.window.BX24;
BX24.init(() => {
  BX24.fitWindow();
  BX24.callMethod("user.current", {}, (result) => {
    BX24.installFinish();
    setTimeout(() => {
      console.log(JSON.stringify({
        placement: BX24.placement.info(),
        auth: BX24.getAuth(),
        user: result.data(),
        error: result.error(),
        sent
      }));
    }, 20);
  });
});
