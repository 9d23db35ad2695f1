// The chat page: uses @roomcast/client the way an app would.
import { RoomcastClient } from "/sdk/index.js";

const params = new URLSearchParams(location.search);
const user = params.get("user") || "guest-" + Math.random().toString(36).slice(2, 7);
const ttl = params.get("ttl") || "3600"; // token lifetime the page asks for (seconds)
const $ = (id) => document.getElementById(id);

const config = await (await fetch("/config")).json();
let current = params.get("room") || config.rooms[0];

// What the tests (and the curious) can look at: window.chat.
const chat = { user, tokenCalls: 0, states: [], refreshes: [], client: null };
window.chat = chat;

const client = new RoomcastClient({
  url: config.url,
  // Called for every connection and before the token expires.
  getToken: async () => {
    const res = await fetch(`/token?user=${encodeURIComponent(user)}&ttl=${encodeURIComponent(ttl)}`);
    if (!res.ok) throw new Error(`token endpoint: ${res.status}`);
    chat.tokenCalls++;
    return (await res.json()).token;
  },
  refreshToken: params.get("refresh") !== "0",
});
chat.client = client;

// ---- state -----------------------------------------------------------------

const messages = new Map(config.rooms.map((r) => [r, []]));
const members = new Map(config.rooms.map((r) => [r, new Map()]));
const unread = new Map(config.rooms.map((r) => [r, 0]));

const explain = {
  invalid_token: "the token was refused (unknown or rotated-out key, bad signature)",
  forbidden: "access was revoked: the API key was revoked or the token asks for more than its key allows",
  token_expired: "the token expired and no new one could be had",
  kicked: "you were removed from the service",
  origin_rejected: "this page's origin is not allowed",
};

client.on("state", (ch) => {
  chat.states.push({ state: ch.state, code: ch.error?.code, recovered: ch.recovered, node: ch.info?.node, at: Date.now() });
  $("conn").dataset.state = ch.state;
  $("state").textContent = ch.state === "reconnecting" ? `reconnecting (attempt ${ch.attempt})` : ch.state;
  if (ch.info) $("node").textContent = "· " + ch.info.node;
  if (ch.state === "resumed") {
    for (const rr of ch.rooms ?? []) {
      if (rr.presence && !rr.recovered) loadMembers(rr.room);
      if (!rr.presence && !rr.recovered) notice(`Some messages of ${rr.room} may be missing (could not recover after reconnecting).`);
    }
  }
  if (ch.state === "closed") {
    const err = ch.error;
    const cause = err?.cause ?? err;
    const code = cause?.code;
    $("conn").dataset.code = code ?? "";
    const why = typeof code === "number" ? `${cause.codeName} (${code}): ${explain[cause.codeName] ?? cause.reason ?? ""}` : err?.message ?? "closed";
    $("reason").textContent = "Disconnected for good — " + why;
    $("reason").hidden = false;
  }
});
client.on("tokenRefreshed", (r) => chat.refreshes.push(r));

// ---- rendering ---------------------------------------------------------------

function renderRooms() {
  $("rooms").replaceChildren(
    ...config.rooms.map((r) => {
      const li = document.createElement("li");
      li.dataset.room = r;
      li.className = r === current ? "active" : "";
      li.innerHTML = `<span></span><span class="badge"></span>`;
      li.firstChild.textContent = "#" + r.replace(/^chat\./, "");
      li.lastChild.textContent = unread.get(r) ? String(unread.get(r)) : "";
      li.onclick = () => select(r);
      return li;
    }),
  );
}

function messageItem(m) {
  const li = document.createElement("li");
  li.className = "msg" + (m.from === user ? " mine" : "");
  li.dataset.offset = String(m.offset ?? "");
  li.dataset.epoch = m.epoch ?? "";
  li.dataset.id = m.data?.id ?? "";
  li.dataset.from = m.from;
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.data?.text ?? JSON.stringify(m.data);
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `#${m.offset} · ${new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  li.append(from, text, meta);
  return li;
}

function renderMessages() {
  $("room-title").textContent = "#" + current.replace(/^chat\./, "");
  $("messages").replaceChildren(...messages.get(current).map(messageItem));
  $("messages").scrollTop = $("messages").scrollHeight;
}

function renderMembers() {
  const list = [...members.get(current).values()].sort((a, b) => a.client_id.localeCompare(b.client_id) || a.connection_id.localeCompare(b.connection_id));
  $("members").replaceChildren(
    ...list.map((m) => {
      const li = document.createElement("li");
      li.dataset.client = m.client_id;
      li.textContent = m.data?.name ?? m.client_id;
      return li;
    }),
  );
  $("count").textContent = list.length ? `(${new Set(list.map((m) => m.client_id)).size})` : "";
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = false;
}

function select(room) {
  current = room;
  unread.set(room, 0);
  renderRooms();
  renderMessages();
  renderMembers();
}

async function loadMembers(room) {
  const all = await client.room(room).presence.members();
  members.set(room, new Map(all.map((m) => [m.connection_id, m])));
  if (room === current) renderMembers();
}

// ---- rooms -------------------------------------------------------------------

for (const name of config.rooms) {
  const room = client.room(name);
  room.on("msg", (_data, m) => {
    messages.get(name).push(m);
    if (name === current) {
      $("messages").append(messageItem(m));
      $("messages").scrollTop = $("messages").scrollHeight;
    } else {
      unread.set(name, unread.get(name) + 1);
      renderRooms();
    }
  });
  room.presence.on("*", (ev) => {
    const set = members.get(name);
    if (ev.action === "leave") set.delete(ev.member.connection_id);
    else set.set(ev.member.connection_id, ev.member);
    if (name === current) renderMembers();
  });
}

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  const id = `${user}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  try {
    // The id doubles as the idempotency key: a retry after a reconnect is stored once.
    await client.room(current).publish("msg", { text, id }, { idempotencyKey: id });
  } catch (err) {
    notice("Not sent: " + err.message);
  }
});

renderRooms();
renderMessages();
try {
  await client.connect();
  for (const name of config.rooms) {
    const room = client.room(name);
    await room.join();
    await room.presence.subscribe();
    await room.presence.enter({ name: user });
  }
  await Promise.all(config.rooms.map(loadMembers));
  chat.ready = true;
} catch (err) {
  chat.error = String(err);
  $("reason").textContent = "Could not connect — " + (err.codeName ? `${err.codeName} (${err.code})` : err.message);
  $("reason").hidden = false;
}

// Leaving the page ends the session at once (close code 1000): the others see
// us leave now rather than after the presence grace a dropped connection gets.
addEventListener("pagehide", () => client.close());
