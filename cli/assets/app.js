// The jetstation dashboard: a hash-routed page over the JSON API of
// `jetstation ui`. Every text reaches the page through textContent, never
// as HTML. Live pages follow server-sent events.
"use strict";

const main = document.getElementById("main");
const banner = document.getElementById("banner");
let session = null;
let live = null;

// ---------- helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const rate = (r) => (r === null || r === undefined ? "–" : `${r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString("en-US")}/s`);

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function ago(iso) {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function seconds(s) {
  if (s === null || s === undefined) return "none";
  if (s % 86400 === 0) return `${s / 86400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

const badge = (text, kind) => h("span", { class: `badge ${kind || text}` }, text);
const card = (label, value, id) => h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", "data-testid": id }, value));
const chip = (label, value) => h("span", { class: "chip" }, `${label} `, h("b", {}, value));

function table(columns, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows));
}

function showBanner(text, info) {
  banner.textContent = text;
  banner.className = info ? "banner info" : "banner";
  banner.hidden = !text;
}

class AuthError extends Error {}

async function api(path, options) {
  const res = await fetch(`/api${path}`, { credentials: "same-origin", ...options });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) throw new AuthError(body.message || "log in");
  if (!res.ok) throw new Error(`${body.kind || res.status}: ${body.message || res.statusText}`);
  return body;
}

function follow(path, event, render) {
  stopLive();
  live = new EventSource(`/api${path}`);
  live.addEventListener(event, (e) => { showBanner(""); render(JSON.parse(e.data)); });
  live.addEventListener("failure", (e) => {
    const f = JSON.parse(e.data);
    showBanner(`${f.kind}: ${f.message}`);
  });
  live.onerror = async () => {
    // The stream broke: find out whether the session ended or the tool stopped.
    try { await api("/session"); } catch (err) {
      if (err instanceof AuthError) { stopLive(); renderLogin(""); return; }
      showBanner("the dashboard's server cannot be reached; retrying");
    }
  };
}

function stopLive() {
  if (live) { live.close(); live = null; }
}

function setPage(nav, ...content) {
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
  main.replaceChildren(...content);
}

// ---------- login ----------

function renderLogin(message) {
  stopLive();
  document.getElementById("logout").hidden = true;
  const error = h("div", { class: "error", "data-testid": "login-error", role: "alert" }, message || "");
  const input = h("input", { type: "password", id: "token", name: "token", placeholder: "Token", autocomplete: "current-password", required: true, autofocus: true });
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      const res = await fetch("/api/login", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: input.value }), credentials: "same-origin",
      });
      if (res.ok) { route(); return; }
      const body = await res.json().catch(() => ({}));
      error.textContent = `Login failed: ${body.message || res.statusText}`;
      input.select();
    },
  }, h("h1", {}, "Log in"), h("p", { class: "muted" }, "This dashboard asks for the token it was started with (--ui-token)."), input, h("button", { class: "primary", type: "submit" }, "Log in"), error);
  setPage(null, h("div", { class: "login panel" }, form));
}

// ---------- overview ----------

function renderOverview() {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  setPage("overview", h("h1", {}, "Stations"), body);
  follow("/live/overview", "overview", (data) => {
    const st = data.stations;
    const total = (f) => st.reduce((a, s) => a + (s[f] || 0), 0);
    const healthy = st.filter((s) => s.health === "healthy").length;
    const rows = st.map((s) => h("tr", { "data-station": s.name },
      h("td", {}, h("a", { href: `#/stations/${encodeURIComponent(s.name)}` }, s.name)),
      h("td", {}, badge(s.health)),
      h("td", { class: "num" }, num(s.partitions)),
      h("td", { class: "num" }, num(s.replicas)),
      h("td", { class: "num" }, num(s.messages)),
      h("td", { class: "num" }, bytes(s.bytes)),
      h("td", { class: "num" }, rate(s.in_rate)),
      h("td", { class: "num" }, rate(s.out_rate)),
      h("td", { class: "num" }, num(s.groups)),
      h("td", { class: "num", "data-testid": "station-lag" }, num(s.lag)),
      h("td", { class: "num" }, s.dead_letters
        ? h("a", { href: `#/stations/${encodeURIComponent(s.name)}/dead-letters` }, num(s.dead_letters))
        : "0"),
      h("td", {}, s.schema ? h("a", { href: `#/schemas/${encodeURIComponent(s.schema)}` }, s.schema + (s.schema_version ? ` v${s.schema_version}` : "")) : "–")));
    body.replaceChildren(
      h("div", { class: "cards" },
        card("Stations", num(st.length), "stations-count"),
        card("Healthy", `${healthy} / ${st.length}`, "healthy-count"),
        card("Messages", num(total("messages"))),
        card("Stored", bytes(total("bytes"))),
        card("Lag", num(total("lag"))),
        card("Dead letters", num(total("dead_letters")))),
      h("div", { class: "panel" }, st.length
        ? table([{ label: "Station" }, { label: "Health" }, { label: "Partitions", num: 1 }, { label: "Replicas", num: 1 },
          { label: "Messages", num: 1 }, { label: "Size", num: 1 }, { label: "In", num: 1 }, { label: "Out", num: 1 },
          { label: "Groups", num: 1 }, { label: "Lag", num: 1 }, { label: "Dead letters", num: 1 }, { label: "Schema" }],
          rows, { "data-testid": "stations" })
        : h("div", { class: "empty" }, "No stations yet.")));
  });
}

// ---------- station ----------

function replicaText(r) {
  if (r.offline) return badge(`${r.server} offline`, "offline");
  if (r.current) return badge(r.server, "current");
  return badge(`${r.server} lag ${num(r.lag)}`, "behind");
}

function renderStation(name) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const title = h("h1", {}, name);
  setPage("overview", h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Stations"), " / ", name), title, body);
  follow(`/live/stations/${encodeURIComponent(name)}`, "station", (s) => {
    title.replaceChildren(name, badge(s.health));
    const settings = h("div", { class: "chips" },
      chip("partitions", s.partitions), chip("replicas", s.replicas), chip("storage", s.storage),
      chip("max age", seconds(s.max_age)), chip("dedup window", seconds(s.dedup_window)),
      chip("max deliveries", s.max_deliveries), chip("compaction", s.compaction ? "on" : "off"),
      s.compaction ? chip("state keys", num(s.state_keys)) : null,
      s.schema ? chip("schema", `${s.schema}${s.schema_version ? ` v${s.schema_version}` : " (latest)"}`) : null);
    const parts = s.partitions_detail.map((p) => h("tr", { "data-partition": p.partition },
      h("td", { class: "num" }, p.partition),
      h("td", { class: "num" }, num(p.messages)),
      h("td", { class: "num" }, bytes(p.bytes)),
      h("td", { class: "num" }, `${num(p.first_sequence)} – ${num(p.last_sequence)}`),
      h("td", {}, ago(p.last_time)),
      h("td", { class: "num" }, rate(p.in_rate)),
      h("td", {}, p.leader || "–"),
      h("td", {}, p.replicas ? p.replicas.map(replicaText) : "single node")));
    const groups = s.groups_detail.map((g) => h("div", { class: "panel group", "data-group": g.group },
      h("div", { class: "group-head" },
        h("span", { class: "name" }, g.group),
        h("span", {}, "lag ", h("b", { "data-testid": "group-lag" }, num(g.lag)), " ", g.lag === 0 ? badge("caught up", "zero") : null),
        h("span", { class: "muted" }, `out ${rate(g.out_rate)}`),
        h("span", { class: "muted" }, `${g.members.length} member${g.members.length === 1 ? "" : "s"}`)),
      h("div", { class: "members" }, g.members.length
        ? g.members.map((m, i) => h("span", {}, i ? " · " : "", h("b", {}, m.member), m.standby ? " stands by (back from a stall)" : ` owns ${m.partitions.length ? m.partitions.join(", ") : "nothing"}`, ` (seen ${m.last_seen.toFixed(1)} s ago)`))
        : "no member is running"),
      table([{ label: "Partition", num: 1 }, { label: "Owner" }, { label: "Reading" }, { label: "Pending", num: 1 },
        { label: "Unacked", num: 1 }, { label: "Redelivered", num: 1 }, { label: "Lag", num: 1 }, { label: "Last active" }],
      g.partitions.map((p) => h("tr", {},
        h("td", { class: "num" }, p.partition), h("td", {}, p.owner || "–"), h("td", {}, p.reading),
        h("td", { class: "num" }, num(p.pending)), h("td", { class: "num" }, num(p.unacknowledged)),
        h("td", { class: "num" }, num(p.redelivered)), h("td", { class: "num" }, num(p.lag)),
        h("td", {}, ago(p.last_active)))))));
    body.replaceChildren(settings,
      h("div", { class: "cards" },
        card("Messages", num(s.messages)), card("In", rate(s.in_rate)),
        card("Groups", num(s.groups_detail.length)),
        h("a", { class: "card", href: `#/stations/${encodeURIComponent(name)}/dead-letters`, "data-testid": "dead-letters-link" },
          h("div", { class: "label" }, "Dead letters"), h("div", { class: "value" }, num(s.dead_letters)))),
      h("h2", {}, "Partitions"),
      h("div", { class: "panel" }, table([{ label: "Partition", num: 1 }, { label: "Messages", num: 1 }, { label: "Size", num: 1 },
        { label: "Sequences", num: 1 }, { label: "Last message" }, { label: "In", num: 1 }, { label: "Leader" }, { label: "Replicas" }], parts)),
      h("h2", {}, "Groups"),
      ...(groups.length ? groups : [h("div", { class: "panel empty" }, "No group reads this station yet.")]));
  });
}

// ---------- dead letters ----------

async function renderDeadLetters(name, selected) {
  stopLive();
  const list = h("div", { class: "panel" }, h("div", { class: "empty" }, "Loading…"));
  const detail = h("div", { class: "panel detail", "data-testid": "dead-letter-detail" }, h("p", { class: "muted" }, "Select a dead letter to see its payload and headers."));
  const status = h("span", { class: "muted", "data-testid": "action-status", role: "status" });
  const replayAll = session.read_only ? null : h("button", { "data-testid": "replay-all", onclick: async () => {
    if (!confirm(`Send every dead letter back to ${name}?`)) return;
    replayAll.disabled = true;
    try {
      const r = await api(`/stations/${encodeURIComponent(name)}/dead-letters/replay-all`, { method: "POST" });
      status.textContent = `Replayed ${r.replayed} dead letters.`;
    } catch (e) { status.textContent = e.message; }
    replayAll.disabled = false;
    load();
  } }, "Replay all");
  setPage("overview",
    h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Stations"), " / ", h("a", { href: `#/stations/${encodeURIComponent(name)}` }, name), " / dead letters"),
    h("h1", {}, `Dead letters of ${name}`),
    h("div", { class: "toolbar" }, status, h("span", { class: "spacer" }),
      h("button", { onclick: () => load() }, "Refresh"), replayAll),
    h("div", { class: "split" }, list, detail));

  async function replay(d) {
    try {
      const r = await api(`/stations/${encodeURIComponent(name)}/dead-letters/${d.sequence}/replay`, { method: "POST" });
      status.textContent = `Replayed dead letter ${d.sequence} to partition ${r.partition}, sequence ${r.sequence}.`;
    } catch (e) { status.textContent = e.message; }
  }

  function show(d) {
    selected = d.sequence;
    list.querySelectorAll("tr[data-sequence]").forEach((tr) => tr.classList.toggle("selected", Number(tr.dataset.sequence) === d.sequence));
    const payload = d.decoded !== undefined ? JSON.stringify(d.decoded, null, 2) : d.payload;
    detail.replaceChildren(
      h("h3", {}, `Dead letter ${d.sequence}`),
      h("dl", { class: "kv" },
        h("dt", {}, "origin"), h("dd", {}, `${d.origin_station} partition ${d.origin_partition}, sequence ${d.origin_sequence}`),
        h("dt", {}, "key"), h("dd", {}, d.key || "–"),
        h("dt", {}, "group"), h("dd", {}, d.group),
        h("dt", {}, "deliveries"), h("dd", {}, d.deliveries),
        h("dt", {}, "last error"), h("dd", {}, d.last_error),
        h("dt", {}, "at"), h("dd", {}, d.dead_lettered_at)),
      h("h3", {}, d.decoded !== undefined ? "Payload (decoded through the station's schema)" : "Payload"),
      h("pre", { "data-testid": "payload" }, payload),
      h("h3", {}, "Headers"),
      Object.keys(d.headers).length
        ? h("dl", { class: "kv" }, Object.entries(d.headers).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))
        : h("p", { class: "muted" }, "none"));
  }

  async function load() {
    let data;
    try { data = await api(`/stations/${encodeURIComponent(name)}/dead-letters`); } catch (e) {
      if (e instanceof AuthError) { renderLogin(""); return; }
      list.replaceChildren(h("div", { class: "empty" }, e.message));
      return;
    }
    const letters = data.dead_letters;
    if (!letters.length) {
      list.replaceChildren(h("div", { class: "empty", "data-testid": "no-dead-letters" }, "No dead letters."));
      return;
    }
    list.replaceChildren(table([{ label: "Sequence", num: 1 }, { label: "Key" }, { label: "Group" }, { label: "Deliveries", num: 1 }, { label: "Last error" }, { label: "At" }, { label: "" }],
      letters.map((d) => h("tr", { "data-sequence": d.sequence, onclick: () => show(d), style: "cursor: pointer" },
        h("td", { class: "num" }, d.sequence), h("td", {}, d.key || "–"), h("td", {}, d.group),
        h("td", { class: "num" }, d.deliveries), h("td", { class: "wrap" }, d.last_error), h("td", {}, ago(d.dead_lettered_at)),
        h("td", {}, session.read_only ? null : h("button", { "data-testid": "replay", onclick: (e) => { e.stopPropagation(); replay(d); } }, "Replay")))),
      { "data-testid": "dead-letters" }));
    const again = letters.find((d) => d.sequence === selected);
    if (again) show(again);
  }
  await load();
}

// ---------- schemas ----------

async function renderSchemas() {
  stopLive();
  const body = h("div", { class: "panel" }, h("div", { class: "empty" }, "Loading…"));
  setPage("schemas", h("h1", {}, "Schemas"), h("div", { style: "height: 12px" }), body);
  const data = await api("/schemas");
  body.replaceChildren(data.schemas.length
    ? table([{ label: "Schema" }, { label: "Format" }, { label: "Compatibility" }, { label: "Versions", num: 1 }, { label: "Latest", num: 1 }],
      data.schemas.map((s) => h("tr", { "data-schema": s.name },
        h("td", {}, h("a", { href: `#/schemas/${encodeURIComponent(s.name)}` }, s.name)), h("td", {}, s.format),
        h("td", {}, s.compatibility), h("td", { class: "num" }, s.versions.length), h("td", { class: "num" }, s.latest))),
      { "data-testid": "schemas" })
    : h("div", { class: "empty" }, "No schemas registered."));
}

// JSON sources (JSON Schema, Avro) indented; other sources as written.
function pretty(source) {
  try { return JSON.stringify(JSON.parse(source), null, 2); } catch (_) { return source; }
}

function diffView(text) {
  return h("pre", { class: "diff", "data-testid": "diff" }, text.split("\n").map((line) => {
    const kind = line.startsWith("@@") ? "hunk" : line.startsWith("+") && !line.startsWith("+++") ? "add"
      : line.startsWith("-") && !line.startsWith("---") ? "del" : null;
    return h("span", { class: kind }, line + "\n");
  }));
}

async function renderSchema(name) {
  stopLive();
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  setPage("schemas", h("div", { class: "crumbs" }, h("a", { href: "#/schemas" }, "Schemas"), " / ", name), h("h1", {}, name), body);
  const s = await api(`/schemas/${encodeURIComponent(name)}`);
  const versions = s.sources.map((v) => v.version);
  const source = h("div", {});
  const diff = h("div", {});
  const pick = (id, value, onchange) => h("select", { "data-testid": id, onchange }, versions.map((v) => h("option", { value: v, selected: v === value }, `v${v}`)));
  const showSource = (version) => {
    const v = s.sources.find((x) => x.version === Number(version));
    source.replaceChildren(h("p", { class: "muted" }, `Registered ${v.created}${v.message_type ? `, message type ${v.message_type}` : ""}`), h("pre", { "data-testid": "source" }, pretty(v.source)));
  };
  let from = versions.length > 1 ? versions[versions.length - 2] : versions[0];
  let to = versions[versions.length - 1];
  const showDiff = async () => {
    const d = await api(`/schemas/${encodeURIComponent(name)}/diff?from=${from}&to=${to}`);
    diff.replaceChildren(d.diff ? diffView(d.diff) : h("p", { class: "muted" }, "The two versions are the same."));
  };
  body.replaceChildren(
    h("div", { class: "chips" }, chip("format", s.format), chip("compatibility", s.compatibility), chip("latest", `v${s.latest}`),
      chip("stations", s.stations.length ? s.stations.map((b) => b.station + (b.version ? ` (v${b.version})` : "")).join(", ") : "none")),
    h("h2", {}, "Source"),
    h("div", { class: "toolbar" }, "Version ", pick("version", to, (e) => showSource(e.target.value))),
    source,
    h("h2", {}, "Changes"),
    h("div", { class: "toolbar" }, "From ", pick("diff-from", from, (e) => { from = Number(e.target.value); showDiff(); }),
      " to ", pick("diff-to", to, (e) => { to = Number(e.target.value); showDiff(); })),
    diff);
  showSource(to);
  await showDiff();
}

// ---------- routing ----------

async function route() {
  try {
    session = await api("/session");
  } catch (e) {
    if (e instanceof AuthError) { renderLogin(""); return; }
    showBanner(e.message);
    return;
  }
  document.getElementById("server").textContent =
    `nats-server ${session.server_version}${session.clustered ? " · cluster" : ""}${session.namespace ? ` · namespace ${session.namespace}` : ""}${session.read_only ? " · read-only" : ""}`;
  document.getElementById("logout").hidden = !session.login_required;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "stations" && parts[1] && parts[2] === "dead-letters") await renderDeadLetters(parts[1]);
    else if (parts[0] === "stations" && parts[1]) renderStation(parts[1]);
    else if (parts[0] === "schemas" && parts[1]) await renderSchema(parts[1]);
    else if (parts[0] === "schemas") await renderSchemas();
    else renderOverview();
  } catch (e) {
    if (e instanceof AuthError) renderLogin("");
    else main.replaceChildren(h("div", { class: "panel empty" }, e.message));
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
  renderLogin("");
});
window.addEventListener("hashchange", route);
route();
