// The chat page: what a person sees and does, over the connection of client.js.
//
// It keeps what the server pushes (rooms, their members and presence, unread counts, direct
// messages) and asks only when it must: a room's history and members when the room is opened,
// older messages when the reader scrolls back, the room list and who is online every POLL_MS
// and when the page gets the focus back. The DOM holds at most MAX_MESSAGES messages however
// busy the room. After a lost connection it signs in again and resumes: its hello names the last
// seq it saw in each room (`last`, with the room's `epoch`, from the replies that list rooms
// and from the messages pushed since), and the server's reply brings what was missed, which the
// page shows as if it had been pushed. A room that cannot be recovered (another epoch, a history
// too short, a membership gone with a restart) is re-joined and its conversation reloaded.
import { ChatConnection, coalesced, soon } from "./client.js";

const $ = (id) => document.getElementById(id);

const MAX_MESSAGES = 200; // message items kept in the DOM
const PAGE = 50; // messages per history request
const MAX_DIRECT = 200; // direct messages kept per conversation
const POLL_MS = 30000; // room list and who is online
const REFOCUS_MS = 3000; // ... and when the page gets the focus back, at most this often
const QUIET_ROOM = 50; // rooms larger than this show no "joined" and "left" lines
const RESUME_ROOMS = 100; // rooms one hello may resume (the server's limit)

const chat = {
  user: null,
  guest: false,
  lostTicker: null, // counts down to the next reconnect on the page
  rooms: new Map(), // name -> {room, topic, private, members, online, joined, invited, unread}
  directs: new Map(), // user -> {messages: [], unread}
  view: null, // {kind: "room", name} or {kind: "direct", user}
  viewToken: 0, // changes with the view: late replies for an old view are dropped
  loading: false, // the shown room's history is on its way; pushes wait in `early`
  shown: false, // the message list holds the shown room's history and every push since
  early: [],
  members: new Map(), // user -> {user, online, last_seen}: the shown room's members
  online: new Map(), // user -> true: who is online server-wide, as last asked and pushed
  onlineCount: 0,
  atLatest: true, // the DOM ends at the room's newest message
  newBelow: 0, // messages that arrived while the reader was away from the end
  more: false, // older messages can still be loaded
  loadingOlder: false,
};

// -- words --------------------------------------------------------------------------------------

const WORDS = {
  "rate-limited": "Too many requests: the server asked the page to slow down.",
  "not-a-member": "You are not a member of this room.",
  "no-such-room": "There is no such room (any more).",
  "no-such-user": "The server does not know this user.",
  "user-offline": "This user is offline: direct messages reach only people who are online.",
  "too-long": "The text is too long.",
  "room-exists": "A room with this name exists already.",
  "not-invited": "This room is private: a member has to invite you first.",
  "too-many-rooms": "You are in as many rooms as the server allows: leave one first.",
  "rooms-full": "The server holds as many rooms as it allows.",
  "name-taken": "This name is taken: pick another one.",
  "bad-token": "The token was refused (missing, expired, or not for this name).",
  "unsupported-version": "The server speaks another version of the protocol.",
  "too-many-connections": "This name has too many connections open already.",
  "server-full": "The server is full: try again later.",
  "state-full": "The state document is full.",
  disconnected: "The connection to the server is down: try again once it is back.",
};

const USER_GONE = new Set(["user-offline", "no-such-user"]); // a guest is gone when offline

function words(error) {
  if (error.code === "invalid-value" || error.code === "wrong-type") {
    return error.detail || "The server refused this value.";
  }
  return WORDS[error.code] || error.detail || error.code || String(error);
}

function say(id, text) {
  $(id).textContent = text || "";
}

function setStatus(text) {
  say("status", text);
}

// -- connection ---------------------------------------------------------------------------------

const connection = new ChatConnection({
  signedIn: (reply) => signedIn(reply),
  refused: (error) => showSignIn(`Sign-in refused: ${words(error)}`),
  push: (message) => pushes[message.op]?.(message),
  connecting: (again) => setStatus(again ? "reconnecting…" : "connecting…"),
  lost: (retryInMs) => lost(retryInMs),
  resume: () => resumePoints(),
});

// The last seq seen in each joined room whose numbering (epoch) the page knows.
function resumePoints() {
  if (chat.user === null) return null;
  const points = {};
  let count = 0;
  for (const room of chat.rooms.values()) {
    if (!room.joined || room.epoch === undefined || count >= RESUME_ROOMS) continue;
    points[room.room] = { seq: room.last, epoch: room.epoch };
    count += 1;
  }
  return count ? points : null;
}

// Apply a hello's `resumed`: the names of the rooms recovered, whose missed messages are shown
// (or counted as unread) in order, as pushes would have been.
function resumed(entries) {
  const recovered = new Set();
  for (const entry of entries || []) {
    const room = chat.rooms.get(entry.room);
    if (!room) continue;
    if (entry.epoch !== undefined) Object.assign(room, { epoch: entry.epoch, last: entry.last });
    if (!entry.recovered) continue;
    recovered.add(entry.room);
    for (const m of entry.messages) pushes.message(m);
  }
  return recovered;
}

function request(op, fields = {}, onWait = null) {
  return connection.request(op, fields, onWait);
}

function signedIn(reply) {
  const again = chat.user !== null;
  chat.user = reply.user;
  chat.guest = reply.guest;
  clearInterval(chat.lostTicker);
  setStatus(`signed in as ${reply.user}${reply.guest ? " (guest)" : ""}`);
  $("connection").hidden = true;
  $("signin").hidden = true;
  $("chat").hidden = false;
  $("signout").hidden = false;
  chat.onlineCount = reply.online;
  const theirs = new Set(reply.rooms);
  const rejoin = again ? joinedRooms().filter((name) => !theirs.has(name)) : [];
  for (const room of chat.rooms.values()) room.joined = theirs.has(room.room);
  const recovered = resumed(reply.resumed);
  start(rejoin, reply.rooms, recovered);
}

async function start(rejoin, rooms, recovered) {
  const token = chat.viewToken;
  // After a restart the server may have forgotten the memberships: join them again.
  await Promise.all(rejoin.map((name) => request("join", { room: name })
    .then((r) => roomInfo(r.room, { joined: true }))
    .catch(() => {})));
  polled = performance.now();
  try {
    await refreshRooms();
  } catch (error) {
    showNotice(words(error));
  }
  refreshOnline().catch(() => {});
  if (chat.viewToken !== token) return; // the reader opened something meanwhile
  if (chat.view?.kind === "room" && isJoined(chat.view.name)) {
    // A recovered room shown whole before the drop is whole again: nothing to reload.
    if (!(chat.shown && recovered.has(chat.view.name))) openRoom(chat.view.name);
  } else if (chat.view?.kind === "direct") openDirect(chat.view.user);
  else {
    const first = rooms[0] || (chat.rooms.has("lobby") ? "lobby" : null);
    if (first) openRoom(first);
  }
}

function lost(retryInMs) {
  setStatus("disconnected");
  const until = Date.now() + retryInMs;
  const tell = () => {
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    say("connection-text", left ? `Connection to the server lost. Reconnecting in ${left} s…`
      : "Connection to the server lost. Reconnecting now…");
  };
  tell();
  $("connection").hidden = false;
  clearInterval(chat.lostTicker);
  chat.lostTicker = setInterval(tell, 1000);
}

function showSignIn(error) {
  clearInterval(chat.lostTicker);
  $("connection").hidden = true;
  $("chat").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  setStatus("signed out");
  say("signin-error", error);
  chat.user = null;
  chat.view = null;
  chat.rooms.clear();
  chat.directs.clear();
  $("name").focus();
}

// -- pushes -------------------------------------------------------------------------------------

const pushes = {
  message: (m) => {
    const known = chat.rooms.get(m.room);
    if (known?.epoch !== undefined && m.seq > known.last) known.last = m.seq;
    if (chat.view?.kind === "room" && chat.view.name === m.room) {
      if (chat.loading) chat.early.push(m);
      else liveMessage(m);
      return;
    }
    const room = chat.rooms.get(m.room) || roomInfo({ room: m.room }, { joined: true });
    room.unread += 1;
    drawRoomsSoon();
  },
  direct: (m) => {
    const other = m.from === chat.user ? m.to : m.from;
    const talk = conversation(other);
    talk.messages.push(m);
    if (talk.messages.length > MAX_DIRECT) talk.messages.shift();
    if (chat.view?.kind === "direct" && chat.view.user === other) liveMessage(m);
    else if (m.from !== chat.user) talk.unread += 1;
    drawDirects();
  },
  joined: (m) => {
    const room = chat.rooms.get(m.room) || roomInfo({ room: m.room }, {});
    if (m.user === chat.user) room.joined = true;
    else {
      room.members += 1;
      room.online += 1;
    }
    drawRoomsSoon();
    if (!showing(m.room)) return;
    setMember(m.user, { online: true });
    if (room.members <= QUIET_ROOM) showEvent(`${m.user} joined`);
  },
  left: (m) => {
    const room = chat.rooms.get(m.room);
    if (!room) return;
    if (m.user === chat.user) room.joined = false;
    room.members = Math.max(0, room.members - 1);
    if (chat.members.get(m.user)?.online !== false) room.online = Math.max(0, room.online - 1);
    drawRoomsSoon();
    if (!showing(m.room)) return;
    chat.members.delete(m.user);
    drawMembersSoon();
    if (room.members <= QUIET_ROOM) showEvent(`${m.user} left`);
  },
  presence: (m) => {
    const room = chat.rooms.get(m.room);
    if (room) room.online = Math.max(0, room.online + (m.online ? 1 : -1));
    if (m.online !== chat.online.has(m.user)) {
      chat.onlineCount = Math.max(0, chat.onlineCount + (m.online ? 1 : -1));
      if (m.online) chat.online.set(m.user, true);
      else chat.online.delete(m.user);
      drawOnlineSoon();
    }
    drawRoomsSoon();
    if (showing(m.room)) setMember(m.user, { online: m.online, last_seen: m.last_seen });
    drawDirects();
  },
  "topic-changed": (m) => {
    const room = chat.rooms.get(m.room);
    if (room) room.topic = m.topic;
    if (showing(m.room)) say("room-topic", m.topic);
  },
  invited: (m) => {
    roomInfo({ room: m.room, private: true }, { invited: true });
    drawRooms();
    showNotice(`${m.by} invited you to the private room ${m.room}: it is in your room list.`);
  },
  error: (m) => showNotice(`The server closed the connection: ${words(m)}`),
  bye: () => showNotice("The server is shutting down; the page will reconnect."),
};

function showing(room) {
  return chat.view?.kind === "room" && chat.view.name === room;
}

function isJoined(name) {
  return Boolean(chat.rooms.get(name)?.joined);
}

function showNotice(text) {
  say("notice", text);
  $("notice").hidden = !text;
}

// -- rooms --------------------------------------------------------------------------------------

function roomInfo(info, flags) {
  const known = chat.rooms.get(info.room) || {
    room: info.room, topic: "", private: false, members: 0, online: 0,
    joined: false, invited: false, unread: 0,
  };
  Object.assign(known, info, flags);
  chat.rooms.set(info.room, known);
  return known;
}

function joinedRooms() {
  return [...chat.rooms.values()].filter((room) => room.joined).map((room) => room.room);
}

const refreshRooms = coalesced(async () => {
  const reply = await request("rooms");
  const seen = new Set();
  for (const info of reply.rooms) {
    seen.add(info.room);
    roomInfo(info, {});
  }
  for (const [name, room] of chat.rooms) {
    if (!seen.has(name) && !room.joined) chat.rooms.delete(name);
  }
  drawRooms();
});

const drawRoomsSoon = soon(() => drawRooms());

// Unread messages in the tab's title too, for a reader in another tab.
function drawTitle() {
  let unread = 0;
  for (const room of chat.rooms.values()) unread += room.unread;
  for (const talk of chat.directs.values()) unread += talk.unread;
  document.title = unread ? `(${unread}) residentd chat` : "residentd chat";
}

function drawRooms() {
  drawTitle();
  const list = $("rooms");
  const focused = document.activeElement?.dataset?.room;
  list.replaceChildren();
  const rooms = [...chat.rooms.values()].sort(
    (a, b) => (b.joined - a.joined) || a.room.localeCompare(b.room));
  for (const room of rooms) {
    const button = element("button", "pick", element("span", "name", room.room));
    button.type = "button";
    button.dataset.room = room.room;
    if (room.private) button.append(element("span", "badge", "private"));
    if (room.unread) {
      const unread = element("span", "unread", String(room.unread));
      unread.setAttribute("aria-label", `${room.unread} unread`);
      button.append(unread);
    }
    const counts = room.joined ? `${room.online}/${room.members}` : (room.invited ? "invited" : "join");
    button.append(element("span", "count", counts));
    button.title = room.joined ? `${room.online} of ${room.members} members online`
      : `join ${room.room}`;
    if (showing(room.room)) button.setAttribute("aria-current", "true");
    button.onclick = () => openRoom(room.room);
    list.append(element("li", room.joined ? "joined" : "", button));
    if (focused === room.room) button.focus();
  }
}

async function openRoom(name) {
  const token = setView({ kind: "room", name });
  const room = chat.rooms.get(name) || roomInfo({ room: name }, {});
  say("room-title", name);
  say("room-topic", room.topic);
  $("leave").hidden = false;
  $("invite").hidden = !room.private;
  chat.loading = true;
  chat.early = [];
  try {
    if (!room.joined) {
      const reply = await request("join", { room: name });
      roomInfo(reply.room, { joined: true, invited: false });
    }
    if (token !== chat.viewToken) return;
    say("room-topic", chat.rooms.get(name).topic);
    $("invite").hidden = !chat.rooms.get(name).private;
    room.unread = 0;
    drawRooms();
    const [history, who] = await Promise.all([
      request("history", { room: name, limit: PAGE }),
      request("who", { room: name, limit: 200 }),
    ]);
    if (token !== chat.viewToken) return;
    chat.members = new Map(who.users.map((u) => [u.user, u]));
    drawMembers();
    showHistory(history);
  } catch (error) {
    if (token !== chat.viewToken) return;
    chat.loading = false;
    showEvent(`Could not open ${name}: ${words(error)}`, "problem");
  }
}

function setView(view) {
  chat.viewToken += 1;
  chat.view = view;
  chat.loading = false;
  chat.shown = false;
  chat.early = [];
  chat.atLatest = true;
  chat.newBelow = 0;
  chat.more = false;
  chat.loadingOlder = false;
  chat.members = new Map();
  $("messages").replaceChildren();
  $("latest").hidden = true;
  $("older").hidden = true;
  for (const error of ["compose-error", "create-error", "invite-error"]) say(error, "");
  $("text").disabled = $("send").disabled = false;
  $("chat").dataset.panel = "conversation";
  drawTabs();
  drawMembers();
  drawRooms();
  drawDirects();
  return chat.viewToken;
}

// -- history and the message list ---------------------------------------------------------------

function showHistory(history) {
  const list = $("messages");
  list.replaceChildren(...history.messages.map(messageItem));
  const newest = history.messages.length ? history.messages[history.messages.length - 1].seq : 0;
  chat.loading = false;
  chat.shown = true;
  chat.more = history.more;
  chat.atLatest = true;
  for (const m of chat.early) if (m.seq > newest) liveMessage(m);
  chat.early = [];
  drawOlder();
  scrollDown();
}

function drawOlder() {
  const room = chat.view?.kind === "room";
  $("older").hidden = !room;
  $("older").disabled = !chat.more || chat.loadingOlder;
  say("older", chat.loadingOlder ? "Loading older messages…"
    : chat.more ? "Load older messages" : "Start of the kept history");
}

async function loadOlder() {
  if (chat.view?.kind !== "room" || !chat.more || chat.loadingOlder || chat.loading) return;
  const first = $("messages").querySelector("li[data-seq]");
  if (!first) return;
  const token = chat.viewToken;
  chat.loadingOlder = true;
  drawOlder();
  try {
    const reply = await request("history", {
      room: chat.view.name, before: Number(first.dataset.seq), limit: PAGE,
    });
    if (token !== chat.viewToken) return;
    const scroller = $("scroller");
    const anchor = first.offsetTop; // keeps its place on screen while older ones go above it
    $("messages").prepend(...reply.messages.map(messageItem));
    chat.more = reply.more;
    // Bounded: what falls off the end is reloaded by "Show the latest messages".
    const list = $("messages");
    while (list.children.length > MAX_MESSAGES) {
      list.lastElementChild.remove();
      chat.atLatest = false;
    }
    scroller.scrollTop += first.offsetTop - anchor;
    drawLatest();
  } catch (error) {
    if (token === chat.viewToken) showEvent(`Could not load older messages: ${words(error)}`, "problem");
  } finally {
    if (token === chat.viewToken) {
      chat.loadingOlder = false;
      drawOlder();
    }
  }
}

function nearBottom() {
  const scroller = $("scroller");
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
}

function liveMessage(m) {
  if (!append(messageItem(m))) {
    // The reader is further up and the list is full: count what arrives instead.
    chat.atLatest = false;
    chat.newBelow += 1;
    drawLatest();
  }
}

// Add `li` at the end of the list, keeping at most MAX_MESSAGES items: the oldest go, unless
// the reader is further up with a full list (then nothing is added: false). A problem is
// always shown.
function append(li, always = false) {
  const list = $("messages");
  const following = nearBottom();
  if (!always && (!chat.atLatest || (!following && list.children.length >= MAX_MESSAGES))) {
    return false;
  }
  list.append(li);
  while (list.children.length > MAX_MESSAGES) {
    list.firstElementChild.remove();
    chat.more = true;
  }
  if (following) scrollDown();
  drawOlder();
  return true;
}

function drawLatest() {
  const button = $("latest");
  button.hidden = chat.atLatest;
  say("latest", chat.newBelow
    ? `${chat.newBelow} new message${chat.newBelow === 1 ? "" : "s"}: show the latest`
    : "Show the latest messages");
}

async function jumpToLatest() {
  if (chat.view?.kind !== "room") return;
  const token = chat.viewToken;
  chat.loading = true;
  chat.shown = false;
  chat.early = [];
  chat.newBelow = 0;
  try {
    const history = await request("history", { room: chat.view.name, limit: PAGE });
    if (token !== chat.viewToken) return;
    showHistory(history);
    drawLatest();
  } catch (error) {
    chat.loading = false;
    if (token === chat.viewToken) showEvent(`Could not load messages: ${words(error)}`, "problem");
  }
}

function scrollDown() {
  const scroller = $("scroller");
  scroller.scrollTop = scroller.scrollHeight;
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function element(tag, className, ...parts) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const part of parts) node.append(part);
  return node;
}

function messageItem(m) {
  const who = m.user ?? m.from;
  const when = element("time", "when", time(m.ts));
  when.dateTime = new Date(m.ts).toISOString();
  const li = element("li", m.op === "direct" ? "message direct" : "message",
    when, element("span", "who", who), element("span", "text", m.text));
  if (m.seq !== undefined) li.dataset.seq = m.seq;
  return li;
}

function showEvent(text, kind = "event") {
  const li = element("li", kind, text);
  if (kind === "problem") li.setAttribute("role", "alert");
  append(li, kind === "problem");
}

// -- direct messages ----------------------------------------------------------------------------

function conversation(user) {
  if (!chat.directs.has(user)) chat.directs.set(user, { messages: [], unread: 0 });
  return chat.directs.get(user);
}

function openDirect(user) {
  if (user === chat.user) return;
  setView({ kind: "direct", user });
  const talk = conversation(user);
  talk.unread = 0;
  say("room-title", user);
  say("room-topic", "direct messages; only delivered while they are online");
  $("leave").hidden = true;
  $("invite").hidden = true;
  $("messages").replaceChildren(...talk.messages.map(messageItem));
  drawDirects();
  scrollDown();
  $("text").focus();
}

function drawDirects() {
  drawTitle();
  const list = $("directs");
  const focused = document.activeElement?.dataset?.direct;
  list.replaceChildren();
  for (const [user, talk] of chat.directs) {
    const button = element("button", "pick", element("span", "name", user));
    button.type = "button";
    button.dataset.direct = user;
    if (talk.unread) {
      const unread = element("span", "unread", String(talk.unread));
      unread.setAttribute("aria-label", `${talk.unread} unread`);
      button.append(unread);
    }
    button.append(element("span", "count", chat.online.has(user) ? "online" : ""));
    if (chat.view?.kind === "direct" && chat.view.user === user) {
      button.setAttribute("aria-current", "true");
    }
    button.onclick = () => openDirect(user);
    list.append(element("li", "", button));
    if (focused === user) button.focus();
  }
  $("directs-hint").hidden = chat.directs.size > 0;
}

// -- people -------------------------------------------------------------------------------------

const refreshOnline = coalesced(async () => {
  const reply = await request("who", { limit: 100 });
  chat.onlineCount = reply.online;
  chat.online = new Map(reply.users.map((u) => [u.user, true]));
  drawOnline();
  drawDirects();
});

function setMember(user, state) {
  chat.members.set(user, { user, ...state });
  drawMembersSoon();
}

function personButton(user, label) {
  const button = element("button", "person", label);
  button.type = "button";
  button.dataset.user = user;
  if (user === chat.user) {
    button.disabled = true;
    button.title = "you";
  } else {
    button.title = `write to ${user} directly`;
    button.onclick = () => openDirect(user);
  }
  return button;
}

const drawMembersSoon = soon(() => drawMembers());

function drawMembers() {
  const list = $("members");
  list.replaceChildren();
  const sorted = [...chat.members.values()].sort(
    (a, b) => (b.online - a.online) || a.user.localeCompare(b.user));
  const shown = sorted.slice(0, 200);
  for (const member of shown) {
    const seen = member.online || !member.last_seen ? "" : ` (seen ${time(member.last_seen)})`;
    const li = element("li", member.online ? "online" : "offline",
      personButton(member.user, member.user + seen));
    li.dataset.user = member.user;
    list.append(li);
  }
  const room = chat.view?.kind === "room" ? chat.rooms.get(chat.view.name) : null;
  const count = Math.max(room?.members || 0, chat.members.size);
  say("members-count", !room ? "" : count > shown.length ? `${shown.length} of ${count}`
    : String(count));
  $("members-section").hidden = chat.view?.kind !== "room";
}

const drawOnlineSoon = soon(() => drawOnline());

function drawOnline() {
  const list = $("online");
  list.replaceChildren();
  for (const user of [...chat.online.keys()].sort().slice(0, 100)) {
    const li = element("li", "online", personButton(user, user));
    li.dataset.user = user;
    list.append(li);
  }
  say("online-count", String(chat.onlineCount));
}

// -- panels (one at a time on a narrow screen) --------------------------------------------------

function drawTabs() {
  const shown = $("chat").dataset.panel;
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.panel === shown));
  }
}

for (const tab of document.querySelectorAll("#tabs button")) {
  tab.onclick = () => {
    $("chat").dataset.panel = tab.dataset.panel;
    drawTabs();
  };
}

// -- forms --------------------------------------------------------------------------------------

$("signin").onsubmit = (event) => {
  event.preventDefault();
  say("signin-error", "");
  connection.signIn($("name").value.trim(), $("token").value.trim());
};

$("signout").onclick = () => {
  connection.signOut();
  showSignIn("");
};

$("reconnect-now").onclick = () => {
  clearInterval(chat.lostTicker);
  say("connection-text", "Connection to the server lost. Reconnecting now…");
  connection.open();
};

$("compose").onsubmit = async (event) => {
  event.preventDefault();
  const view = chat.view;
  const text = $("text").value;
  if (!text.trim() || !view || $("send").disabled) return;
  say("compose-error", "");
  $("send").disabled = true;
  say("send", "Sending…");
  const waiting = (ms) => say("compose-error",
    `The server asked to slow down: sending again in ${Math.ceil(ms / 1000)} s.`);
  try {
    if (view.kind === "direct") await request("dm", { to: view.user, text }, waiting);
    else await request("post", { room: view.name, text }, waiting);
    // The draft goes only once the server has it.
    if (chat.view === view && $("text").value === text) $("text").value = "";
    say("compose-error", "");
  } catch (error) {
    const why = view.kind === "direct" && USER_GONE.has(error.code)
      ? `${view.user} is offline: direct messages reach only people who are online.`
      : words(error);
    if (chat.view === view) say("compose-error", `Not sent: ${why} Your text is kept.`);
  } finally {
    $("send").disabled = false;
    say("send", "Send");
  }
};

$("create").onsubmit = async (event) => {
  event.preventDefault();
  const room = $("new-room").value.trim();
  say("create-error", "");
  try {
    const reply = await request("create", { room, private: $("new-private").checked });
    roomInfo(reply.room, { joined: true });
    $("new-room").value = "";
    $("new-private").checked = false;
    await openRoom(room);
  } catch (error) {
    say("create-error", `Could not create ${room}: ${words(error)}`);
  }
};

$("invite").onsubmit = async (event) => {
  event.preventDefault();
  if (chat.view?.kind !== "room") return;
  const user = $("invite-user").value.trim();
  say("invite-error", "");
  try {
    await request("invite", { room: chat.view.name, user });
    $("invite-user").value = "";
    showEvent(`You invited ${user}.`);
  } catch (error) {
    say("invite-error", `Could not invite ${user}: ${words(error)}`);
  }
};

$("leave").onclick = async () => {
  if (chat.view?.kind !== "room") return;
  const name = chat.view.name;
  try {
    await request("leave", { room: name });
    const room = chat.rooms.get(name);
    if (room) room.joined = false;
    setView(null);
    say("room-title", "no conversation");
    say("room-topic", "");
    $("leave").hidden = $("invite").hidden = true;
    $("text").disabled = $("send").disabled = true;
    $("older").hidden = true;
    $("chat").dataset.panel = "sidebar";
    drawTabs();
    refreshRooms().catch(() => {});
  } catch (error) {
    showEvent(`Could not leave ${name}: ${words(error)}`, "problem");
  }
};

for (const [input, error] of [["new-room", "create-error"], ["invite-user", "invite-error"]]) {
  $(input).addEventListener("input", () => say(error, ""));
}
$("text").addEventListener("input", () => {
  if (!$("send").disabled) say("compose-error", "");
});

$("older").onclick = loadOlder;
$("latest").onclick = jumpToLatest;
$("scroller").addEventListener("scroll", () => {
  if ($("scroller").scrollTop < 40) loadOlder();
  if (!chat.atLatest || !nearBottom()) return;
  if (chat.newBelow) drawLatest();
});

// The room list (rooms made by others are not pushed) and who is online server-wide (not
// pushed either: it would cost a push per sign-in to everyone) are asked for every POLL_MS,
// and when the reader comes back to the page, at most every REFOCUS_MS.
let polled = 0;
function poll(after) {
  if (!connection.ready || document.hidden || performance.now() - polled < after) return;
  polled = performance.now();
  refreshRooms().catch(() => {});
  refreshOnline().catch(() => {});
}
setInterval(() => poll(POLL_MS / 2), POLL_MS);
window.addEventListener("focus", () => poll(REFOCUS_MS));
document.addEventListener("visibilitychange", () => poll(REFOCUS_MS));

// A backend that has signed its user in sends the browser here with `#user=NAME&token=TOKEN`
// (a token from POST /api/v1/users/NAME/token; examples/flask_backend.py). The fragment never
// reaches a server, and the page takes it out of the address bar and the history at once, so
// the token is not left on screen, in a bookmark or behind the back button; then it signs in.
function signInFromFragment() {
  const given = new URLSearchParams(location.hash.slice(1));
  const user = given.get("user");
  if (!user) return;
  history.replaceState(history.state, "", location.pathname + location.search);
  $("name").value = user;
  $("token").value = given.get("token") || "";
  connection.signIn(user, $("token").value);
}
signInFromFragment();
