// The chat page: one WebSocket to /ws speaking the chat protocol (docs/chat-protocol.md).
// Requests carry an id and resolve a promise when their reply (or error) comes back; pushes
// (message, joined, left, presence, ...) update the page. The server's ping is answered with pong.
"use strict";

const $ = (id) => document.getElementById(id);

const chat = {
  ws: null,
  nextId: 1,
  waiting: new Map(), // request id -> {resolve, reject}
  user: null,
  room: null, // the room shown
  rooms: new Map(), // name -> room info, for the rooms this user can see
  members: new Map(), // user -> {online, last_seen} for the room shown
};

function request(op, fields = {}) {
  const id = chat.nextId++;
  chat.ws.send(JSON.stringify({ op, id, ...fields }));
  return new Promise((resolve, reject) => chat.waiting.set(id, { resolve, reject }));
}

function showError(text) {
  $("error").textContent = text || "";
}

function time(ms) {
  return new Date(ms).toLocaleTimeString();
}

function item(tag, className, ...parts) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  for (const part of parts) element.append(part);
  return element;
}

// -- connection ---------------------------------------------------------------------------------

function connect(name, token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  chat.ws = ws;
  $("status").textContent = "connecting…";
  ws.onopen = async () => {
    const hello = { v: 1, user: name };
    if (token) hello.token = token;
    try {
      const reply = await request("hello", hello);
      chat.user = reply.user;
      $("status").textContent = `signed in as ${reply.user}${reply.guest ? " (guest)" : ""}`;
      $("signin").hidden = true;
      $("chat").hidden = false;
      await refreshRooms();
      await refreshOnline();
      const first = reply.rooms[0] || (chat.rooms.has("lobby") ? "lobby" : null);
      if (first) await enter(first);
    } catch (error) {
      showError(`sign-in refused: ${error.code} ${error.detail || ""}`);
      ws.close();
    }
  };
  ws.onmessage = (event) => receive(JSON.parse(event.data));
  ws.onclose = () => {
    $("status").textContent = "disconnected";
    for (const { reject } of chat.waiting.values()) reject({ code: "disconnected" });
    chat.waiting.clear();
    $("signin").hidden = false;
    $("chat").hidden = true;
  };
}

function receive(message) {
  if (message.id !== undefined && chat.waiting.has(message.id)) {
    const { resolve, reject } = chat.waiting.get(message.id);
    chat.waiting.delete(message.id);
    if (message.op === "error") reject(message);
    else resolve(message);
    return;
  }
  const handler = pushes[message.op];
  if (handler) handler(message);
}

const pushes = {
  ping: () => chat.ws.send('{"op":"pong"}'),
  message: (m) => {
    if (m.room === chat.room) showMessage(m);
    else refreshRooms();
  },
  direct: (m) => showDirect(m),
  joined: (m) => {
    refreshRooms();
    if (m.room !== chat.room) return;
    setMember(m.user, { online: true });
    showEvent(`${m.user} joined`);
  },
  left: (m) => {
    refreshRooms();
    if (m.room !== chat.room) return;
    chat.members.delete(m.user);
    drawMembers();
    showEvent(`${m.user} left`);
  },
  presence: (m) => {
    if (m.room === chat.room) setMember(m.user, { online: m.online, last_seen: m.last_seen });
    refreshOnline();
    refreshRooms();
  },
  "topic-changed": (m) => {
    if (m.room === chat.room) $("room-topic").textContent = m.topic;
  },
  invited: (m) => {
    showEvent(`${m.by} invited you to ${m.room}`);
    refreshRooms();
  },
  error: (m) => showError(`${m.code} ${m.detail || ""}`),
  bye: (m) => showError(`the server is closing: ${m.reason}`),
};

// -- rooms and people ---------------------------------------------------------------------------

async function refreshRooms() {
  const reply = await request("rooms");
  chat.rooms = new Map(reply.rooms.map((room) => [room.room, room]));
  const list = $("rooms");
  list.replaceChildren();
  for (const room of reply.rooms) {
    const li = item("li", room.room === chat.room ? "current" : "",
      item("span", "", room.private ? `🔒 ${room.room}` : room.room),
      item("span", "count", `${room.online}/${room.members}`));
    li.dataset.room = room.room;
    li.onclick = () => enter(room.room).catch((e) => showError(`${e.code} ${e.detail || ""}`));
    list.append(li);
  }
}

async function refreshOnline() {
  const reply = await request("who", { limit: 200 });
  $("online-count").textContent = reply.online;
  const list = $("online");
  list.replaceChildren();
  for (const user of reply.users) {
    const li = item("li", "", user.user);
    li.dataset.user = user.user;
    list.append(li);
  }
}

async function enter(name) {
  const joined = await request("join", { room: name });
  chat.room = name;
  $("room-title").textContent = name;
  $("room-topic").textContent = joined.room.topic;
  $("text").disabled = $("send").disabled = $("leave").disabled = false;
  $("invite").hidden = !joined.room.private;
  $("messages").replaceChildren();
  const [history, who] = await Promise.all([
    request("history", { room: name, limit: 50 }),
    request("who", { room: name, limit: 500 }),
  ]);
  for (const m of history.messages) showMessage(m);
  chat.members = new Map(who.users.map((u) => [u.user, u]));
  drawMembers();
  await refreshRooms();
}

function setMember(user, state) {
  chat.members.set(user, { user, ...state });
  drawMembers();
}

function drawMembers() {
  const list = $("members");
  list.replaceChildren();
  const sorted = [...chat.members.values()].sort(
    (a, b) => (b.online - a.online) || a.user.localeCompare(b.user));
  for (const member of sorted) {
    const seen = member.online || !member.last_seen ? "" : ` (seen ${time(member.last_seen)})`;
    const li = item("li", member.online ? "online" : "offline", member.user + seen);
    li.dataset.user = member.user;
    list.append(li);
  }
}

// -- messages -----------------------------------------------------------------------------------

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function showMessage(m) {
  const li = item("li", "message",
    item("span", "when", time(m.ts)), item("span", "who", m.user), m.text);
  li.dataset.seq = m.seq;
  $("messages").append(li);
  scrollDown();
}

function showDirect(m) {
  const other = m.from === chat.user ? `to ${m.to}` : `from ${m.from}`;
  $("messages").append(item("li", "direct",
    item("span", "when", time(m.ts)), item("span", "who", `(direct ${other})`), m.text));
  scrollDown();
}

function showEvent(text) {
  $("messages").append(item("li", "event", text));
  scrollDown();
}

// -- forms --------------------------------------------------------------------------------------

$("signin").onsubmit = (event) => {
  event.preventDefault();
  showError("");
  connect($("name").value.trim(), $("token").value.trim());
};

$("post").onsubmit = async (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text || !chat.room) return;
  $("text").value = "";
  const direct = text.match(/^\/dm ([\w.\-]+) (.+)$/);
  try {
    if (direct) await request("dm", { to: direct[1], text: direct[2] });
    else await request("post", { room: chat.room, text });
    showError("");
  } catch (error) {
    showError(`${error.code} ${error.detail || ""}`);
  }
};

$("create").onsubmit = async (event) => {
  event.preventDefault();
  const room = $("new-room").value.trim();
  try {
    await request("create", { room, private: $("new-private").checked });
    $("new-room").value = "";
    await enter(room);
  } catch (error) {
    showError(`${error.code} ${error.detail || ""}`);
  }
};

$("invite").onsubmit = async (event) => {
  event.preventDefault();
  try {
    await request("invite", { room: chat.room, user: $("invite-user").value.trim() });
    showEvent(`invited ${$("invite-user").value.trim()}`);
    $("invite-user").value = "";
  } catch (error) {
    showError(`${error.code} ${error.detail || ""}`);
  }
};

$("leave").onclick = async () => {
  if (!chat.room) return;
  await request("leave", { room: chat.room });
  chat.room = null;
  $("room-title").textContent = "no room";
  $("room-topic").textContent = "";
  $("messages").replaceChildren();
  chat.members.clear();
  drawMembers();
  $("text").disabled = $("send").disabled = $("leave").disabled = true;
  await refreshRooms();
};

// Who is online server-wide is asked for, not pushed (it would cost a push per sign-in to
// everyone); every few seconds is enough for a page.
setInterval(() => {
  if (chat.ws && chat.ws.readyState === WebSocket.OPEN && chat.user) refreshOnline();
}, 5000);
