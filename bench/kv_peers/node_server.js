// A minimal Redis on Node.js `net`: a hand-written RESP request parser (multibulk only), the
// same commands as the Python peers (see common.py), one write per chunk.
"use strict";
const net = require("net");

const data = new Map();
const OK = Buffer.from("+OK\r\n");
const NIL = Buffer.from("$-1\r\n");
const bulk = (value) =>
  Buffer.concat([Buffer.from("$" + value.length + "\r\n"), value, Buffer.from("\r\n")]);
const int = (n) => Buffer.from(":" + n + "\r\n");

// A list as two stacks, so that pushes and pops at either end are O(1) (amortized).
class Deque {
  constructor() { this.front = []; this.back = []; }
  get length() { return this.front.length + this.back.length; }
  pushLeft(x) { this.front.push(x); }
  pushRight(x) { this.back.push(x); }
  popLeft() {
    if (!this.front.length) { this.front = this.back.reverse(); this.back = []; }
    return this.front.pop();
  }
  popRight() {
    if (!this.back.length) { this.back = this.front.reverse(); this.front = []; }
    return this.back.pop();
  }
}

function push(argv, left) {
  const key = argv[1].toString("latin1");
  let items = data.get(key);
  if (!(items instanceof Deque)) data.set(key, (items = new Deque()));
  for (const item of argv.slice(2)) left ? items.pushLeft(item) : items.pushRight(item);
  return int(items.length);
}

function pop(argv, left) {
  const items = data.get(argv[1].toString("latin1"));
  if (!(items instanceof Deque) || items.length === 0) return NIL;
  return bulk(left ? items.popLeft() : items.popRight());
}

const commands = {
  SET: (argv) => (data.set(argv[1].toString("latin1"), argv[2]), OK),
  GET: (argv) => {
    const value = data.get(argv[1].toString("latin1"));
    return value === undefined ? NIL : bulk(value);
  },
  INCR: (argv) => {
    const key = argv[1].toString("latin1");
    const value = Number(data.has(key) ? data.get(key).toString() : "0") + 1;
    data.set(key, Buffer.from(String(value)));
    return int(value);
  },
  LPUSH: (argv) => push(argv, true),
  RPUSH: (argv) => push(argv, false),
  LPOP: (argv) => pop(argv, true),
  RPOP: (argv) => pop(argv, false),
  SADD: (argv) => {
    const key = argv[1].toString("latin1");
    let members = data.get(key);
    if (!(members instanceof Set)) data.set(key, (members = new Set()));
    const before = members.size;
    for (const m of argv.slice(2)) members.add(m.toString("latin1"));
    return int(members.size - before);
  },
  HSET: (argv) => {
    const key = argv[1].toString("latin1");
    let fields = data.get(key);
    if (!(fields instanceof Map)) data.set(key, (fields = new Map()));
    const before = fields.size;
    for (let i = 2; i + 1 < argv.length; i += 2) fields.set(argv[i].toString("latin1"), argv[i + 1]);
    return int(fields.size - before);
  },
  MSET: (argv) => {
    for (let i = 1; i + 1 < argv.length; i += 2) data.set(argv[i].toString("latin1"), argv[i + 1]);
    return OK;
  },
  PING: () => Buffer.from("+PONG\r\n"),
  CONFIG: () => Buffer.from("*0\r\n"),
};

// Parse as many whole commands as `buf` holds from `pos`; returns [commands, newPos].
function parse(buf, pos) {
  const out = [];
  for (;;) {
    const start = pos;
    if (pos >= buf.length || buf[pos] !== 42) break; // '*'
    let nl = buf.indexOf(13, pos);
    if (nl < 0 || nl + 1 >= buf.length) break;
    const count = parseInt(buf.toString("latin1", pos + 1, nl), 10);
    pos = nl + 2;
    const argv = [];
    let complete = true;
    for (let i = 0; i < count; i++) {
      nl = buf.indexOf(13, pos);
      if (nl < 0 || nl + 1 >= buf.length) { complete = false; break; }
      const size = parseInt(buf.toString("latin1", pos + 1, nl), 10);
      pos = nl + 2;
      if (pos + size + 2 > buf.length) { complete = false; break; }
      argv.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
    if (!complete) { pos = start; break; }
    out.push(argv);
  }
  return [out, pos];
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let pending = null;
  socket.on("data", (chunk) => {
    const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    const [cmds, pos] = parse(buf, 0);
    pending = pos < buf.length ? buf.subarray(pos) : null;
    if (cmds.length === 0) return;
    const replies = cmds.map((argv) => {
      const fn = commands[argv[0].toString("latin1").toUpperCase()];
      return fn ? fn(argv) : Buffer.from("-ERR unknown command\r\n");
    });
    socket.write(Buffer.concat(replies));
  });
  socket.on("error", () => {});
});

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
server.listen({ port, host: "127.0.0.1", backlog: 1024 });
