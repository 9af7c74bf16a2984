// QuantumFlow dashboard, operator controls: pause and resume buttons on
// the queue table, a page per queue (#queue=NAME) with its pending
// messages a page at a time, and a page per message (#message=ID) with
// its detail and a delete button. Built on what app.js shares
// (window.QuantumFlow); untrusted text goes in through textContent only.
"use strict";

(function () {
  const PAGE = 20;
  const $ = (sel) => document.querySelector(sel);
  let qf = null;
  let page = 0;

  // route reads the location's hash: #queue=NAME[&page=N] or
  // #message=ID[&queue=NAME]; anything else is the overview.
  function route() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.get("message")) return { view: "message", id: p.get("message"), queue: p.get("queue") || "" };
    if (p.get("queue")) return { view: "queue", queue: p.get("queue"), page: Math.max(0, parseInt(p.get("page") || "0", 10) || 0) };
    return { view: "" };
  }

  function link(hash, text, cls) {
    const a = qf.el("a", { href: hash, text });
    if (cls) a.className = cls;
    return a;
  }

  function hashOf(params) {
    return "#" + new URLSearchParams(params).toString();
  }

  // setPaused pauses or resumes a queue, after a confirming second click.
  function setPaused(button, queue, paused) {
    if (!qf.admin()) { qf.show("Admin operations are disabled on the server.", "error"); return; }
    if (!qf.token()) { qf.show("Enter the admin token first.", "error"); $("#token").focus(); return; }
    qf.confirmThen(button, async () => {
      try {
        await qf.api("POST", "api/queues/" + encodeURIComponent(queue) + (paused ? "/pause" : "/resume"));
        qf.show((paused ? "Paused " : "Resumed ") + queue + ".", "info");
      } catch (e) {
        qf.show((paused ? "pause" : "resume") + " refused: " + e.message, "error");
      }
      qf.refresh();
    });
  }

  // decorateQueues adds, to each queue's row, the paused mark, a link to
  // its page and a pause or resume button.
  function decorateQueues(ov) {
    const byName = new Map(ov.queues.map((q) => [q.name, q]));
    for (const tr of document.querySelectorAll("#queues tbody tr")) {
      const name = tr.getAttribute("data-queue");
      const q = byName.get(name);
      let td = tr.querySelector("td.controls");
      if (!td) {
        td = qf.el("td", { class: "controls" });
        tr.append(td);
      }
      if (!q) { td.replaceChildren(); continue; } // an instance queue's row: its queue's controls apply
      tr.classList.toggle("paused", !!q.paused);
      tr.setAttribute("data-paused", q.paused ? "1" : "0");
      const want = q.paused ? "resume" : "pause";
      if (td.getAttribute("data-action") === want && td.children.length) continue;
      td.setAttribute("data-action", want);
      const b = qf.el("button", { type: "button", class: want, text: q.paused ? "Resume" : "Pause" });
      b.setAttribute("data-admin", "");
      b.addEventListener("click", () => setPaused(b, name, !q.paused));
      td.replaceChildren(link(hashOf({ queue: name }), "open", "open"), " ", b);
    }
  }

  async function showQueue(r) {
    const queue = r.queue;
    page = r.page;
    $("#qp-name").textContent = queue;
    const [q, pending] = await Promise.all([
      qf.api("GET", "api/queues/" + encodeURIComponent(queue)),
      qf.api("GET", "api/queues/" + encodeURIComponent(queue) + "/pending?limit=" + PAGE + "&offset=" + page * PAGE),
    ]);
    const state = $("#qp-state");
    state.dataset.state = q.paused ? "paused" : "running";
    state.textContent = q.paused ? "paused" : "running";
    $("#qp-pause").hidden = !!q.paused;
    $("#qp-resume").hidden = !q.paused;
    $("#qp-counts").textContent = q.pending + " pending · " + q.in_flight + " in flight · " + q.scheduled + " scheduled · " + q.dead_letters + " dead letters";
    const tbody = $("#qp-pending tbody");
    tbody.replaceChildren(...pending.messages.map((m) => {
      const full = m.instance ? m.queue + "@" + m.instance : m.queue;
      const tr = qf.el("tr", { "data-id": m.id });
      tr.append(
        qf.el("td", { class: "id" }, link(hashOf({ message: m.id, queue: full }), m.id)),
        qf.el("td", { text: m.instance || "–" }),
        qf.el("td", { text: qf.when(m.created_at) }),
        qf.el("td", { class: "num", text: String(m.attempts) }),
        qf.el("td", { class: "num", text: String(m.priority || 0) }),
        qf.el("td", { class: "available", text: m.available_at ? qf.when(m.available_at) : "now" }),
        qf.el("td", { class: "payload", text: qf.payloadText(m) }));
      return tr;
    }));
    $("#qp-empty").hidden = pending.messages.length > 0 || page > 0;
    $("#qp-page").textContent = "page " + (page + 1);
    $("#qp-prev").disabled = page === 0;
    $("#qp-next").disabled = !pending.more;
  }

  async function showMessage(r) {
    $("#md-id").textContent = r.id;
    const path = "api/messages/" + encodeURIComponent(r.id) + (r.queue ? "?queue=" + encodeURIComponent(r.queue) : "");
    const m = await qf.api("GET", path);
    const full = m.instance ? m.queue + "@" + m.instance : m.queue;
    $("#md-back").setAttribute("href", hashOf({ queue: full }));
    const rows = [
      ["queue", full], ["state", m.state], ["attempts", String(m.attempts)], ["last error", m.error || "–"],
      ["priority", String(m.priority || 0)], ["created", qf.when(m.created_at)],
      ["available at", m.available_at ? qf.when(m.available_at) : "–"],
      ["first failure", qf.when(m.first_failure_at)], ["last failure", qf.when(m.last_failure_at)],
    ];
    for (const k of Object.keys(m.metadata || {}).sort()) rows.push(["metadata " + k, m.metadata[k]]);
    $("#md-fields tbody").replaceChildren(...rows.map(([k, v]) => {
      const tr = qf.el("tr", { "data-field": k });
      tr.append(qf.el("th", { text: k }), qf.el("td", { class: "value", text: v }));
      return tr;
    }));
    let payload = "";
    if (m.payload !== undefined) payload = typeof m.payload === "string" ? m.payload : JSON.stringify(m.payload, null, 2);
    else if (m.payload_base64) payload = "base64:" + m.payload_base64;
    $("#md-payload").textContent = payload;
    $("#md-delete").hidden = m.state === "dead_letter";
    $("#md-delete").dataset.queue = full;
  }

  async function deleteMessage(button) {
    const r = route();
    if (!qf.admin()) { qf.show("Admin operations are disabled on the server.", "error"); return; }
    if (!qf.token()) { qf.show("Enter the admin token first.", "error"); $("#token").focus(); return; }
    qf.confirmThen(button, async () => {
      const queue = button.dataset.queue || r.queue;
      try {
        await qf.api("DELETE", "api/messages/" + encodeURIComponent(r.id) + (queue ? "?queue=" + encodeURIComponent(queue) : ""));
        qf.show("Deleted message " + r.id + ".", "info");
        location.hash = hashOf({ queue });
      } catch (e) {
        qf.show("delete refused: " + e.message, "error");
      }
    });
  }

  // render shows the page the hash names.
  async function render() {
    const r = route();
    document.body.dataset.view = r.view;
    $("#queue-page").hidden = r.view !== "queue";
    $("#message-detail").hidden = r.view !== "message";
    try {
      if (r.view === "queue") await showQueue(r);
      if (r.view === "message") await showMessage(r);
    } catch (e) {
      qf.show(e.message, "error");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    qf = window.QuantumFlow;
    document.addEventListener("quantumflow:refreshed", (ev) => {
      decorateQueues(ev.detail);
      if (route().view === "queue") render();
    });
    window.addEventListener("hashchange", render);
    $("#qp-pause").addEventListener("click", (ev) => setPaused(ev.target, route().queue, true));
    $("#qp-resume").addEventListener("click", (ev) => setPaused(ev.target, route().queue, false));
    $("#qp-prev").addEventListener("click", () => { location.hash = hashOf({ queue: route().queue, page: Math.max(0, page - 1) }); });
    $("#qp-next").addEventListener("click", () => { location.hash = hashOf({ queue: route().queue, page: page + 1 }); });
    $("#md-delete").addEventListener("click", (ev) => deleteMessage(ev.target));
    render();
  });
})();
