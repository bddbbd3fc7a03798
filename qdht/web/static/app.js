// The live page of a qdht node: one WebSocket, one update per second, no dependencies.
"use strict";

const HISTORY = 300;
let state = null;
let history = [];
let selected = null; // target hex of the lookup drawn in the keyspace
let pinned = false; // the user chose one: stop following the newest

const token = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, cls) {
  const tr = el("tr", undefined, cls);
  for (const c of cells) {
    const td = typeof c === "object" && c !== null && c.nodeType ? c : el("td", c);
    if (typeof c === "number") td.className = "num";
    tr.appendChild(td.tagName === "TD" ? td : wrap(td));
  }
  return tr;
}
function wrap(node) { const td = el("td"); td.appendChild(node); return td; }
function short(hex) { return hex ? hex.slice(0, 12) + "…" : ""; }
function fmt(n) {
  if (n === null || n === undefined) return "–";
  if (typeof n !== "number") return String(n);
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + " M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + " k";
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}
function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/ws` + (token ? `?token=${encodeURIComponent(token)}` : "");
  const ws = new WebSocket(url);
  ws.onopen = () => { $("status").textContent = "live"; $("status").className = "status live"; };
  ws.onmessage = (msg) => {
    const update = JSON.parse(msg.data);
    if (update.history.length > 1 || state === null) history = update.history;
    else history = history.concat(update.history).slice(-HISTORY);
    state = update;
    render();
  };
  ws.onclose = () => {
    $("status").textContent = "disconnected: retrying";
    $("status").className = "status down";
    setTimeout(connect, 2000);
  };
}

function render() {
  const s = state;
  $("node-id").textContent = s.node.id.slice(0, 16) + (s.node.client_mode ? " (client)" : "");
  const cards = [
    ["peers", s.routing.size], ["sessions", s.counters.sessions],
    ["lookups ok", `${s.lookups.succeeded}/${s.lookups.started}`],
    ["latency p50 ms", s.lookups.latency && s.lookups.latency.p50 !== null && s.lookups.latency.p50 !== undefined
      ? (s.lookups.latency.p50 * 1000).toFixed(1) : "–"],
    ["bytes out", fmt(s.counters.bytes_sent)], ["bytes in", fmt(s.counters.bytes_received)],
    ["records", s.records.count], ["drops", s.counters.drops_total], ["uptime s", fmt(s.node.uptime)],
  ];
  $("summary").replaceChildren(...cards.map(([k, v]) => { const c = el("div", k, "card"); c.prepend(el("b", v)); return c; }));
  renderPeers(s); renderLookups(s); renderCounters(s); renderRecords(s);
  drawKeyspace(s);
  drawChart($("chart-bytes"), "bytes/s", [["bytes_out", "#5fb3f9", "out"], ["bytes_in", "#7fd88f", "in"]]);
  drawChart($("chart-rpcs"), "RPCs/s", [["rpcs_out", "#f2c46d", "out"], ["rpcs_in", "#c792ea", "in"]]);
  drawChart($("chart-drops"), "drops/s", [["drops", "#f27878", "all"]]);
  renderLayers(s);
}

function cardsInto(box, cards) {
  box.replaceChildren(...cards.map(([k, v, alarm]) => {
    const c = el("div", k, alarm ? "card alarm" : "card"); c.prepend(el("b", v)); return c;
  }));
}

function pct(x) { return x === null || x === undefined ? "–" : (x <= 1 ? x * 100 : x).toFixed(1) + " %"; }

// The mixnet, messaging and training panels (shown only when the layer is on),
// then the counters of any other layer as they come.
function renderLayers(s) {
  const v = s.views || {};
  for (const name of ["mixnet", "messaging", "training"]) $("panel-" + name).hidden = !v[name];
  if (v.mixnet) {
    const m = v.mixnet;
    cardsInto($("mixnet-cards"), [
      ["role", m.mix ? "mix" : "client"], ["directory epoch", fmt(m.directory_epoch)],
      ["mixes listed", m.directory_mixes], ["queued", m.queued], ["mixed", fmt(m.mixed)],
      ["dropped", fmt(m.dropped)], ["loops sent", fmt(m.loops_sent)],
      ["loops returned", fmt(m.loops_returned)], ["loop alarm", m.loop_alarm ? "yes" : "no", m.loop_alarm],
    ]);
    drawChart($("chart-mix-packets"), "packets/s", [["mix_mixed", "#5fb3f9", "mixed"], ["mix_dropped", "#f27878", "dropped"], ["mix_queued", "#f2c46d", "queued (level)"]]);
    drawChart($("chart-mix-loops"), "loops/s", [["mix_loops_sent", "#c792ea", "sent"], ["mix_loops_returned", "#7fd88f", "returned"]]);
    const drops = Object.entries(m.drops).sort((a, b) => b[1] - a[1]);
    fill($("mixnet-drops").tBodies[0], drops.length ? drops.map(([k, n]) => row([k, n])) : [row(["none", ""], "muted")]);
  }
  if (v.messaging) {
    const g = v.messaging;
    cardsInto($("messaging-cards"), [
      ["contacts", g.contacts], ["sessions", g.sessions], ["outbox", g.outbox], ["awaiting reply", g.waiting],
      ["delivery", g.delivery || "–"], ["writes", fmt(g.writes)], ["polls", fmt(g.polls)],
      ["one-time prekeys", g.one_time_prekeys], ["dropped", fmt(g.dropped), g.dropped > 0],
    ]);
    drawChart($("chart-msg-polls"), "polls and writes/s", [["msg_polls", "#5fb3f9", "polls"], ["msg_writes", "#7fd88f", "writes"]]);
    drawChart($("chart-msg-outbox"), "outbox (messages waiting)", [["msg_outbox", "#f2c46d", "outbox"]]);
  }
  if (v.training) {
    const t = v.training;
    cardsInto($("training-cards"), [
      ["role", t.role || "–"], ["round", fmt(t.round)], ["participants", fmt(t.participants)],
      ["accuracy", pct(t.accuracy)], ["ε spent", t.epsilon === null ? "–" : t.epsilon.toFixed(2)],
      ["abandoned", fmt(t.abandoned)], ["dropped", fmt(t.dropped), t.dropped > 0],
    ]);
    drawChart($("chart-train-accuracy"), "test accuracy", [["train_accuracy", "#7fd88f", "accuracy"]]);
    drawChart($("chart-train-epsilon"), "round and ε spent", [["train_round", "#5fb3f9", "round"], ["train_epsilon", "#f27878", "ε"]]);
  }
  const others = Object.fromEntries(Object.entries(s.layers).filter(([k]) => !v[k]));
  $("layers").textContent = Object.keys(others).length ? JSON.stringify(others, null, 1) : "none";
}

function renderPeers(s) {
  const rows = [];
  for (const b of s.routing.buckets.slice().reverse()) {
    for (const p of b.peers) {
      const rep = el("td", p.reputation.toFixed(2), p.reputation < 0 ? "num bad" : "num");
      rows.push(row([b.index, p.shared_bits, el("code", short(p.id)), p.rtt_ms === null ? "–" : p.rtt_ms, rep]));
    }
  }
  fill($("peers").tBodies[0], rows);
}

function allLookups(s) {
  return s.lookups.in_flight.map((l) => ({ ...l, running: true })).concat(s.lookups.recent);
}

function renderLookups(s) {
  const lookups = allLookups(s);
  if (!pinned) {
    // Follow the newest finished lookup the user asked for (not the table refreshes).
    const newest = s.lookups.recent.find((l) => l.kind !== "refresh") || lookups[0];
    selected = newest ? newest.target : null;
  }
  fill($("lookups").tBodies[0], lookups.map((l) => {
    const st = l.running ? el("td", "running", "muted") : el("td", l.succeeded ? "ok" : "failed", l.succeeded ? "ok" : "bad");
    const tr = row([l.kind, el("code", short(l.target)), st, l.hops, l.rpcs, Math.round(l.duration * 1000)],
      l.target === selected ? "selected" : "");
    tr.onclick = () => { selected = l.target; pinned = true; render(); };
    return tr;
  }));
}

function renderCounters(s) {
  const c = s.counters;
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  const rows = [
    ["bytes sent", c.bytes_sent], ["bytes received", c.bytes_received],
    ["datagrams sent", c.datagrams_sent], ["datagrams received", c.datagrams_received],
    ["RPCs sent", sum(c.rpcs_sent)], ["RPCs received", sum(c.rpcs_received)],
    ["handshakes failed", c.handshakes_failed], ["events dropped", c.events_dropped],
  ];
  for (const [t, n] of Object.entries(c.rpcs_sent)) rows.push([`  sent ${t}`, n]);
  fill($("counters").tBodies[0], rows.map(([k, v]) => row([k, v])));
  const drops = Object.entries(c.drops).sort((a, b) => b[1] - a[1]);
  fill($("drops").tBodies[0], drops.length ? drops.map(([k, v]) => row([k, v])) : [row(["none", ""], "muted")]);
}

function renderRecords(s) {
  fill($("records").tBodies[0], s.records.shown.map((r) => row([el("code", short(r.key)), r.kind, r.size, r.seq])));
  $("published").textContent = `${s.records.count} held, ${fmt(s.records.bytes)} bytes; published: ` +
    (s.records.published.length ? s.records.published.map(short).join(", ") : "none");
}

// An ID's place on the ring: its first 32 bits as an angle.
function angle(hex) { return (parseInt(hex.slice(0, 8), 16) / 4294967296) * 2 * Math.PI - Math.PI / 2; }

function drawKeyspace(s) {
  const cv = $("keyspace"), g = cv.getContext("2d");
  const W = cv.width, cx = W / 2, cy = cv.height / 2, R = W / 2 - 30;
  g.clearRect(0, 0, W, cv.height);
  g.strokeStyle = "#2a3948"; g.lineWidth = 1;
  g.beginPath(); g.arc(cx, cy, R, 0, 2 * Math.PI); g.stroke();
  // Radius shrinks with closeness to the lookup target (shared prefix bits).
  const at = (hex, r) => [cx + r * Math.cos(angle(hex)), cy + r * Math.sin(angle(hex))];
  for (const b of s.routing.buckets) for (const p of b.peers) {
    const [x, y] = at(p.id, R); g.fillStyle = "#5fb3f9"; g.beginPath(); g.arc(x, y, 3, 0, 2 * Math.PI); g.fill();
  }
  const [sx, sy] = at(s.node.id, R); g.fillStyle = "#ffffff"; g.beginPath(); g.arc(sx, sy, 6, 0, 2 * Math.PI); g.fill();
  const lookup = allLookups(s).find((l) => l.target === selected);
  const info = $("trace-info");
  cv.dataset.hops = lookup ? String(lookup.queried.length) : "0";
  if (!lookup) { info.textContent = "no lookup yet"; return; }
  const radius = (bits) => R * (1 - Math.min(bits, 24) / 28);
  const [tx, ty] = at(lookup.target, radius(256));
  g.strokeStyle = "#f2c46d"; g.beginPath(); g.moveTo(tx - 7, ty); g.lineTo(tx + 7, ty); g.moveTo(tx, ty - 7); g.lineTo(tx, ty + 7); g.stroke();
  const colours = ["#7fd88f", "#c792ea", "#f2c46d", "#5fb3f9"];
  const byPath = {};
  for (const q of lookup.queried) (byPath[q.path] = byPath[q.path] || []).push(q);
  for (const [path, hops] of Object.entries(byPath)) {
    g.strokeStyle = colours[path % colours.length]; g.globalAlpha = 0.7; g.beginPath(); g.moveTo(sx, sy);
    for (const q of hops) { const [x, y] = at(q.id, radius(q.shared_bits)); g.lineTo(x, y); }
    g.stroke(); g.globalAlpha = 1;
    for (const q of hops) {
      const [x, y] = at(q.id, radius(q.shared_bits));
      g.fillStyle = q.outcome === "answered" ? colours[path % colours.length] : q.outcome === "failed" ? "#f27878" : "#7b8794";
      g.beginPath(); g.arc(x, y, 4, 0, 2 * Math.PI); g.fill();
    }
  }
  info.textContent = `${lookup.kind} ${short(lookup.target)}: ${lookup.queried.length} nodes queried over ` +
    `${Object.keys(byPath).length} paths, ${lookup.hops} hops, ${lookup.timeouts} timeouts, ` +
    `${Math.round(lookup.duration * 1000)} ms (nearer the centre: more bits shared with the target)`;
}

function drawChart(cv, label, series) {
  const g = cv.getContext("2d"), W = cv.width, H = cv.height, pad = 22;
  g.clearRect(0, 0, W, H);
  let max = 1;
  for (const [key] of series) for (const p of history) max = Math.max(max, p[key] || 0);
  g.fillStyle = "#7b8794"; g.font = "11px sans-serif";
  g.fillText(`${label} (max ${fmt(max)})`, 6, 13);
  let lx = W - 8;
  for (const [, colour, name] of series.slice().reverse()) {
    const w = g.measureText(name).width; lx -= w; g.fillStyle = colour; g.fillText(name, lx, 13); lx -= 10;
  }
  const n = Math.max(history.length - 1, 1);
  for (const [key, colour] of series) {
    g.strokeStyle = colour; g.lineWidth = 1.5; g.beginPath();
    history.forEach((p, i) => {
      const x = pad + (i / n) * (W - pad - 6), y = H - 6 - ((p[key] || 0) / max) * (H - pad - 8);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
}

connect();
