// hearth's household page: the admin token lives in this tab's sessionStorage (never
// a cookie: a cross-site request carries no cookie-borne credential; never a URL) and
// is sent as "Authorization: Bearer" with each change. Nothing is fetched from
// anywhere but this hub.
"use strict";
(function () {
  const KEY = "hearth.admin.token";
  const $ = (s) => document.querySelector(s);
  const msg = (text, error) => { const m = $("#message"); m.textContent = text; m.className = error ? "error" : ""; };
  const token = () => sessionStorage.getItem(KEY) || "";
  function showLogin() {
    $("#login-form").hidden = !!token();
    $("#logged-in").hidden = !token();
  }
  async function call(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (token()) headers["Authorization"] = "Bearer " + token();
    const r = await fetch(path, { method, headers, body: JSON.stringify(body), credentials: "omit", cache: "no-store" });
    let data = {};
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    if (r.status === 401) {
      sessionStorage.removeItem(KEY);
      showLogin();
      throw new Error("Refused: enter the admin token first (" + (data.error || "401") + ")");
    }
    if (!r.ok) throw new Error(data.error || r.statusText);
    return data;
  }
  $("#login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("#token").value.trim());
    $("#token").value = "";
    showLogin();
    msg("Unlocked.");
  });
  $("#logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); showLogin(); msg("Locked."); });
  document.querySelectorAll("input.consent").forEach((box) => {
    box.addEventListener("change", async () => {
      const cat = box.dataset.category, want = box.checked;
      try {
        const ch = await call("PUT", "/v1/consent/" + encodeURIComponent(cat), { granted: want, by: "household page", via: "page" });
        msg((want ? "Allowed: " : "Withdrawn: ") + cat + (ch.purged ? " (" + ch.purged + " waiting message(s) removed)" : ""));
        setTimeout(() => location.reload(), 600);
      } catch (err) {
        box.checked = !want;
        msg(err.message, true);
      }
    });
  });
  const dlg = $("#confirm");
  function confirmThen(text, word, action) {
    $("#confirm-text").textContent = text;
    $("#confirm-word").textContent = word;
    const input = $("#confirm-input"), ok = $("#confirm-ok");
    input.value = "";
    ok.disabled = true;
    input.oninput = () => { ok.disabled = input.value.trim() !== word; };
    dlg.onclose = () => { if (dlg.returnValue === "ok" && input.value.trim() === word) action(); };
    dlg.showModal();
    input.focus();
  }
  async function forget(body, what) {
    try {
      const acc = await call("POST", "/v1/forget", Object.assign({ by: "household page", via: "page" }, body));
      msg("Erasing " + what + ": hearth restarts to rewrite its files…");
      waitBack(acc.audit_after || 0);
    } catch (err) { msg(err.message, true); }
  }
  // Reload once the restarted agent has audited the erasure (an entry after the one
  // that was newest when it was asked for): not on the first answer, which may come
  // from the agent before it stops.
  function waitBack(after) {
    let n = 0;
    const t = setInterval(async () => {
      n++;
      try {
        const r = await fetch("/v1/audit?kind=erasure&limit=1&after=" + after, { cache: "no-store" });
        const l = r.ok ? await r.json() : { entries: [] };
        if (l.entries && l.entries.length > 0) { clearInterval(t); location.reload(); }
      } catch (e) { /* restarting */ }
      if (n > 600) { clearInterval(t); msg("hearth has not come back: look at its log.", true); }
    }, 500);
  }
  document.querySelectorAll("button.erase").forEach((b) => {
    b.addEventListener("click", () => {
      const id = b.dataset.device;
      confirmThen("Erase every reading, summary and record of " + id + " from this hub for good, and ask the receiver to erase its copy?", id,
        () => forget({ device: id }, id));
    });
  });
  $("#forget-household").addEventListener("click", () => {
    confirmThen("Erase EVERYTHING hearth holds about your home, here for good, and ask the receiver to erase its copy? The pseudonym changes.", "forget",
      () => forget({ household: true }, "the household"));
  });
  showLogin();
})();
