// Runs sandbox/assets/bx24.js in node with a fake framed window whose parent answers like the
// sandbox portal page. Prints one JSON line with what the app page would observe.
const fs = require("fs");
const vm = require("vm");
const [scriptPath, bitrixUrl, token, memberId] = process.argv.slice(2);
const listeners = [];
const sent = [];
let picks = 0;
const parent = {
  postMessage(message) {
    sent.push(message.cmd);
    let result = null;
    if (message.cmd === "selectUser") {
      // The portal's dialog: the first time a person is chosen, the second time it is closed.
      result = picks++ === 0 ? { id: 2, name: "Oleg Operator" } : null;
    } else if (message.cmd === "selectUsers") {
      result = [{ id: 1, name: "Anna Admin" }, { id: 2, name: "Oleg Operator" }];
    } else if (message.cmd === "init") {
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
    const picked = [];
    BX24.selectUser((user) => picked.push(user));
    BX24.selectUser((user) => picked.push(user));  // closed: never called back
    BX24.selectUsers((users) => picked.push(users));
    setTimeout(() => {
      console.log(JSON.stringify({
        placement: BX24.placement.info(),
        auth: BX24.getAuth(),
        user: result.data(),
        error: result.error(),
        picked,
        sent
      }));
    }, 20);
  });
});
