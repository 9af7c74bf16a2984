// QuantumFlow dashboard: polls the JSON API and renders queues (instance
// queues grouped under theirs), charts of the last hour, the instance
// registry, dead letters (filtered by queue and error text) and the audit
// log. Everything untrusted (payloads, errors, ids) goes into the page
// through textContent, never as HTML.
//
// The token (read or admin) is kept in sessionStorage, for this tab only,
// and sent as a bearer token with every request: no cookie, so no request
// another site makes the browser send carries it.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const TOKEN_KEY = "quantumflow.token";
  const EXPANDED_KEY = "quantumflow.expandedQueues";
  const $ = (sel) => document.querySelector(sel);
  let timer = null;
  let adminEnabled = false;
  let role = "";
  let errorTimer = null;
  // The queue groups whose instance rows are shown, kept for the tab.
  const expanded = new Set((() => {
    try { return JSON.parse(sessionStorage.getItem(EXPANDED_KEY) || "[]"); } catch (_) { return []; }
  })());

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }

  // reconcile makes tbody's rows match items, in order, keeping the row
  // (and its buttons) of an item that was already shown: a refresh then
  // never swaps a button out from under a click, nor disarms a purge
  // waiting for its confirmation. cells(item) describes the row's cells;
  // a cell with build is filled once, when the row is made.
  function reconcile(tbody, items, key, attr, cells, decorate) {
    const old = new Map();
    for (const tr of tbody.children) old.set(tr.getAttribute(attr), tr);
    const rows = items.map((item, i) => {
      const k = key(item, i);
      let tr = old.get(k);
      old.delete(k);
      const spec = cells(item);
      if (!tr) {
        tr = el("tr", { [attr]: k });
        for (const c of spec) {
          const td = el("td", c.class ? { class: c.class } : {});
          if (c.build) c.build(td);
          tr.append(td);
        }
      }
      spec.forEach((c, i) => {
        if (c.text !== undefined && tr.children[i].textContent !== c.text) tr.children[i].textContent = c.text;
      });
      if (decorate) decorate(tr, item);
      return tr;
    });
    for (const tr of old.values()) tr.remove();
    rows.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
  }

  function age(seconds, zero) {
    if (!seconds) return zero || "–";
    const s = Math.round(seconds);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // Backends keep different counters; "published" and "acked" (in and
  // out) are the ones an operator reads first, the depth trend always.
  function rateText(rates) {
    if (!rates) return "–";
    const parts = [];
    if (rates.published !== undefined) parts.push("in " + rates.published.toFixed(2) + "/s");
    if (rates.acked !== undefined) parts.push("out " + rates.acked.toFixed(2) + "/s");
    const d = rates.pending || 0;
    parts.push("depth " + (d > 0 ? "+" : "") + d.toFixed(2) + "/s");
    return parts.join(" · ");
  }

  function payloadText(m) {
    let s;
    if (m.payload !== undefined) s = typeof m.payload === "string" ? m.payload : JSON.stringify(m.payload);
    else if (m.payload_base64) s = "base64:" + m.payload_base64;
    else s = "";
    return s.length > 200 ? s.slice(0, 200) + "…" : s;
  }

  function show(text, kind) {
    const m = $("#message");
    m.textContent = text;
    m.dataset.kind = kind || "info";
    m.hidden = false;
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token()) headers["Authorization"] = "Bearer " + token();
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    let data = null;
    try { data = await res.json(); } catch (_) { /* empty body */ }
    if (!res.ok) {
      const err = new Error((data && data.error) || (res.status + " " + res.statusText));
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function renderQueues(ov) {
    $("#backend").textContent = ov.backend + " · " + (ov.capabilities || "");
    const status = $("#status");
    status.dataset.state = ov.degraded ? "degraded" : "ok";
    status.textContent = ov.degraded ? "degraded" : "ok";
    const alert = $("#alert");
    if (ov.degraded) {
      alert.textContent = "Degraded: " + ov.dead_letters + " dead letters exceed the alert threshold of " + ov.dlq_alert_threshold + ".";
      alert.hidden = false;
    } else {
      alert.hidden = true;
    }
    adminEnabled = ov.admin_enabled;
    role = ov.role || "";
    let state;
    if (role === "admin") state = "admin token: reads and changes";
    else if (role === "read") state = "read token: changes will be refused";
    else if (token()) state = "token not recognised";
    else state = "no token: retry and purge will be refused";
    if (!adminEnabled) state += " · admin operations disabled on the server (no QUANTUM_FLOW_ADMIN_TOKEN)";
    $("#token-state").textContent = state;
    document.body.dataset.role = role || "none";

    // A queue with instance queues is a group: its row shows the totals
    // and a toggle; its instances' rows follow it, shown while expanded.
    const rows = [];
    for (const q of ov.queues) {
      rows.push({ q, key: q.name, group: q.instances ? q.instances.length : 0, count: (q.instances || []).filter((i) => i.instance).length });
      for (const i of q.instances || []) rows.push({ q: i, key: i.instance ? q.name + "@" + i.instance : q.name + "@", parent: q.name });
    }
    reconcile($("#queues tbody"), rows, (r) => r.key, "data-queue", (r) => [
      { class: "name", build: (td) => td.append(
        el("button", { type: "button", class: "toggle", hidden: true, onclick: () => toggleGroup(td.parentElement.getAttribute("data-queue")) }),
        el("span", { class: "qname" })) },
      { text: r.q.priority > 0 ? "high (" + r.q.priority + ")" : "normal" },
      { class: "num pending", text: String(r.q.pending) },
      { class: "num", text: String(r.q.in_flight) },
      { class: "num", text: String(r.q.scheduled) },
      { class: "num dead", text: String(r.q.dead_letters) },
      { class: "num", text: age(r.q.oldest_pending_age_seconds) },
      { class: "rate", text: rateText(r.q.rates) },
    ], (tr, r) => {
      tr.classList.toggle("has-dead", r.q.dead_letters > 0);
      const name = tr.querySelector(".qname");
      const toggle = tr.querySelector(".toggle");
      if (r.parent !== undefined) {
        tr.classList.add("instance-row");
        tr.setAttribute("data-parent", r.parent);
        tr.hidden = !expanded.has(r.parent);
        const text = "@ " + (r.q.instance || "(no instance)");
        if (name.textContent !== text) name.textContent = text;
        return;
      }
      if (name.textContent !== r.q.name) name.textContent = r.q.name;
      toggle.hidden = r.group === 0;
      tr.classList.toggle("group", r.group > 0);
      const open = expanded.has(r.key);
      const label = (open ? "▾ " : "▸ ") + r.count + " instance" + (r.count === 1 ? "" : "s");
      if (toggle.textContent !== label) toggle.textContent = label;
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });

    // A queue selects its instance queues' dead letters too; each
    // instance queue can be chosen alone.
    const sel = $("#dlq-queue");
    const current = sel.value;
    const options = [el("option", { value: "", text: "all queues" })];
    const names = [];
    for (const q of ov.queues) {
      names.push(q.name);
      options.push(el("option", { value: q.name, text: q.instances ? q.name + " (all instances)" : q.name }));
      for (const i of q.instances || []) {
        if (!i.instance) continue;
        names.push(q.name + "@" + i.instance);
        options.push(el("option", { value: q.name + "@" + i.instance, text: "  " + q.name + "@" + i.instance }));
      }
    }
    sel.replaceChildren(...options);
    sel.value = names.includes(current) ? current : "";

    const chart = $("#chart-queue");
    const chartCurrent = chart.value;
    chart.replaceChildren(el("option", { value: "", text: "all queues" }),
      ...ov.queues.map((q) => el("option", { value: q.name, text: q.name })));
    chart.value = ov.queues.some((q) => q.name === chartCurrent) ? chartCurrent : "";
  }

  // Charts of the last hour, sampled by the server (GET api/history).
  function renderHistory(h) {
    const points = h.points || [];
    QFChart.draw($("#chart-depth"), points, [
      { key: "pending", cls: "s-pending" }, { key: "in_flight", cls: "s-inflight" }, { key: "dead_letters", cls: "s-dead" },
    ]);
    QFChart.draw($("#chart-throughput"), points, [
      { key: "in_per_second", cls: "s-in" }, { key: "out_per_second", cls: "s-out" },
    ]);
    const counted = points.some((p) => p.in_per_second !== undefined || p.out_per_second !== undefined);
    let note = points.length + " samples, every " + h.interval_seconds + "s";
    if (points.length > 1 && !counted) note += " · this backend keeps no throughput counters: depth only";
    $("#chart-note").textContent = note;
  }

  function renderAudit(entries) {
    $("#audit-unsupported").hidden = entries !== null;
    const items = entries || [];
    $("#audit-empty").hidden = entries === null || items.length > 0;
    reconcile($("#audit tbody"), items, (e, i) => e.at + "/" + e.action + "/" + e.remote + "/" + e.count + "/" + (items.length - i), "data-key", (e) => [
      { text: when(e.at) },
      { class: "role", text: e.role },
      { text: e.remote || "–" },
      { class: "action", text: e.action },
      { class: "queue", text: e.queue || "–" },
      { class: "num count", text: String(e.count) },
      { class: e.error ? "error" : "detail", text: [e.detail, e.error && "error: " + e.error].filter(Boolean).join(" · ") || "–" },
    ], (tr, e) => tr.setAttribute("data-action", e.action));
  }

  function toggleGroup(queue) {
    if (expanded.has(queue)) expanded.delete(queue); else expanded.add(queue);
    sessionStorage.setItem(EXPANDED_KEY, JSON.stringify([...expanded]));
    for (const tr of document.querySelectorAll("#queues tr.instance-row")) {
      tr.hidden = !expanded.has(tr.getAttribute("data-parent"));
    }
    const tr = document.querySelector('#queues tr[data-queue="' + CSS.escape(queue) + '"]');
    const toggle = tr && tr.querySelector(".toggle");
    if (toggle) {
      const open = expanded.has(queue);
      toggle.textContent = toggle.textContent.replace(/^[▸▾]/, open ? "▾" : "▸");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    }
  }

  // Instances of the registry: live ones heartbeat, stale ones stopped
  // (or are stuck), gone ones have been silent past the TTL.
  function renderInstances(list) {
    const items = list ? list.instances : [];
    $("#instances-none").hidden = list === null || items.length > 0;
    $("#instances-unsupported").hidden = list !== null;
    const counts = {};
    for (const i of items) counts[i.state] = (counts[i.state] || 0) + 1;
    $("#instances-count").textContent = list === null ? "" :
      "(" + ["live", "stale", "gone"].filter((s) => counts[s]).map((s) => counts[s] + " " + s).join(", ") + ")";
    reconcile($("#instances tbody"), items, (i) => i.service + "/" + i.id, "data-instance", (i) => [
      { text: i.service },
      { class: "id", text: i.id },
      { class: "state", text: i.state },
      { text: i.host || "–" },
      { class: "num", text: String(i.pid) },
      { text: i.version || "–" },
      { class: "num heartbeat", text: age(i.heartbeat_age_seconds, "0s") + " ago" },
      { text: (i.consumers || []).map((c) => c.queue + " ×" + c.workers).join(", ") || "–" },
    ], (tr, i) => tr.setAttribute("data-state", i.state));
  }

  function actionButton(label, cls, onClick) {
    const b = el("button", { type: "button", class: cls, text: label });
    b.setAttribute("data-admin", "");
    b.addEventListener("click", onClick);
    return b;
  }

  // Destructive actions need a second click within a few seconds.
  function confirmThen(button, run) {
    if (button.dataset.armed === "1") { run(); return; }
    const label = button.textContent;
    button.dataset.armed = "1";
    button.classList.add("confirm");
    button.textContent = "Confirm " + label.toLowerCase() + "?";
    setTimeout(() => { button.dataset.armed = ""; button.classList.remove("confirm"); button.textContent = label; }, 4000);
  }

  function renderDeadLetters(list) {
    const tbody = $("#dead-letters tbody");
    $("#dlq-count").textContent = "(" + list.length + (list.length >= 100 ? "+" : "") + ")";
    $("#dlq-empty").hidden = list.length > 0;
    reconcile(tbody, list, (d) => d.id, "data-id", (d) => [
      { class: "id", text: d.id },
      { text: d.queue },
      { class: "instance", text: d.instance || "–" },
      { class: "error", text: d.error || "" },
      { class: "num", text: String(d.attempts) },
      { text: [d.service, d.handler].filter(Boolean).join(" / ") },
      { text: when(d.last_failure_at || d.created_at) },
      { class: "payload", text: payloadText(d) },
      { class: "actions", build: (td) => td.append(
        actionButton("Retry", "retry", () => mutate("retry", { ids: [d.id] })),
        " ",
        actionButton("Purge", "danger purge", (ev) => confirmThen(ev.target, () => mutate("purge", { ids: [d.id] })))) },
    ], (tr, d) => tr.setAttribute("data-queue", d.instance ? d.queue + "@" + d.instance : d.queue));
  }

  async function mutate(action, selection) {
    if (!adminEnabled) { show("Admin operations are disabled on the server.", "error"); return; }
    if (!token()) { show("Enter the admin token first.", "error"); $("#token").focus(); return; }
    if (role === "read") { show(action + " refused: the read token cannot change anything; enter the admin token.", "error"); return; }
    try {
      const res = await api("POST", "api/dlq/" + action, selection);
      const n = action === "retry" ? res.retried : res.purged;
      show((action === "retry" ? "Retried " : "Purged ") + n + " dead letter" + (n === 1 ? "" : "s") + ".", "info");
    } catch (e) {
      show(action + " refused: " + e.message, "error");
    }
    refresh();
  }

  // dlqFilter is the dead letters' filter as the page shows it: a
  // selection for retry and purge, and the query string of the list.
  function dlqFilter() {
    const queue = $("#dlq-queue").value;
    const text = $("#dlq-error").value.trim();
    const sel = {};
    if (queue) sel.queue = queue;
    if (text) sel.error_contains = text;
    const query = Object.entries(sel).map(([k, v]) => "&" + k + "=" + encodeURIComponent(v)).join("");
    return { selection: Object.keys(sel).length ? sel : { all: true }, query, filtered: Object.keys(sel).length > 0 };
  }

  // optional returns what get resolves to, or null when the answer is
  // one of statuses: 501, the backend does not keep it, by default.
  async function optional(get, statuses) {
    try {
      return await get();
    } catch (e) {
      if ((statuses || [501]).includes(e.status)) return null;
      throw e;
    }
  }

  async function refresh() {
    try {
      const ov = await api("GET", "api/queues");
      renderQueues(ov);
      const f = dlqFilter();
      const dl = await api("GET", "api/dlq?limit=100" + f.query);
      renderDeadLetters(dl.dead_letters);
      for (const [id, verb] of [["#retry-selected-queue", "Retry"], ["#purge-selected-queue", "Purge"]]) {
        const b = $(id);
        if (b.dataset.armed !== "1") b.textContent = verb + (f.filtered ? " all matching" : " all shown");
      }
      const cq = $("#chart-queue").value;
      // 404: a queue too new to have been sampled yet.
      renderHistory(await optional(() => api("GET", "api/history" + (cq ? "?queue=" + encodeURIComponent(cq) : "")), [404]) ||
        { points: [], interval_seconds: 0 });
      renderInstances(await optional(() => api("GET", "api/instances")));
      const audit = await optional(() => api("GET", "api/audit?limit=50"));
      renderAudit(audit && audit.entries);
      // controls.js adds the queue controls and pages to what is drawn.
      document.dispatchEvent(new CustomEvent("quantumflow:refreshed", { detail: ov }));
      $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.loaded = "1";
    } catch (e) {
      const status = $("#status");
      const denied = e.status === 401 || e.status === 403;
      status.dataset.state = denied ? "locked" : "unreachable";
      status.textContent = denied ? "token needed" : "unreachable";
      $("#updated").textContent = "error: " + e.message;
      if (denied) {
        $("#token-state").textContent = e.status === 401 ? "this dashboard needs a read or admin token" : "token refused: " + e.message;
        document.body.dataset.role = "none";
        // What an earlier token showed goes too.
        for (const t of document.querySelectorAll("tbody, #charts svg")) t.replaceChildren();
      }
    }
  }

  // What controls.js shares with this file.
  window.QuantumFlow = { api, show, confirmThen, refresh, el, when, age, payloadText, token, admin: () => adminEnabled };

  function schedule() {
    clearInterval(timer);
    if ($("#auto-refresh").checked) timer = setInterval(refresh, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#token").value = token();
    $("#save-token").addEventListener("click", () => {
      const t = $("#token").value.trim();
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
      refresh();
    });
    $("#token").addEventListener("keydown", (ev) => { if (ev.key === "Enter") $("#save-token").click(); });
    $("#forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("#token").value = "";
      refresh();
    });
    $("#chart-queue").addEventListener("change", refresh);
    $("#dlq-error").addEventListener("input", () => {
      clearTimeout(errorTimer);
      errorTimer = setTimeout(refresh, 300);
    });
    $("#refresh").addEventListener("click", refresh);
    $("#auto-refresh").addEventListener("change", schedule);
    $("#dlq-queue").addEventListener("change", refresh);
    // Bulk actions work on the whole filtered set (the server selects
    // it again by the same filter), after a confirmation.
    $("#retry-selected-queue").addEventListener("click", (ev) => {
      confirmThen(ev.target, () => mutate("retry", dlqFilter().selection));
    });
    $("#purge-selected-queue").addEventListener("click", (ev) => {
      confirmThen(ev.target, () => mutate("purge", dlqFilter().selection));
    });
    refresh();
    schedule();
  });
})();
