// The chat page's connection: one WebSocket to /ws speaking docs/chat-protocol.md, with no
// knowledge of the page. It signs in, matches replies to requests by id, hands pushes on, and
// answers the server's ping. Requests wait in one queue that keeps under a local rate and
// pauses for the server's `retry_after` when it answers `rate-limited`, then sends the refused
// request again. A lost connection is opened again with capped exponential backoff and jitter
// until the page signs out, and its hello asks to resume where the page stopped reading.
"use strict";

const RATE = 5; // requests a second the page allows itself (the server's default is 20)
const BURST = 10;
const RETRY_MS = 15000; // a rate-limited request is sent again until it has waited this long
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000]; // then 15 s; each ±25%
const HELLO_ID = 0; // requests count from 1
// Refusals of a hello that pass by themselves: after a drop, the server may still hold the old
// connection (a guest's name, a user's connection count) until its ping times out.
const PASSING = new Set(["name-taken", "too-many-connections", "server-full"]);

// `events`: signedIn(reply), refused(error), push(message), connecting(again),
// lost(retryInMs), and resume(): the `resume` of the next hello (the last seq seen per room),
// or null. Each is called with `this` unbound.
export class ChatConnection {
  constructor(events) {
    this.events = events;
    this.ws = null;
    this.name = "";
    this.token = "";
    this.wanted = false; // signed in, or signing in: a lost connection is opened again
    this.ready = false; // the hello of the current WebSocket was accepted
    this.attempt = 0;
    this.retryTimer = null;
    this.signedInOnce = false; // since signIn: a refusal that passes is then retried
    this.nextId = 1;
    this.waiting = new Map(); // request id -> job
    this.queue = [];
    this.pausedUntil = 0; // the server said rate-limited: nothing goes out before this
    this.tokens = BURST;
    this.refilled = performance.now();
    this.pumpTimer = null;
  }

  signIn(name, token) {
    this.name = name;
    this.token = token;
    this.wanted = true;
    this.attempt = 0;
    this.signedInOnce = false;
    this.open();
  }

  signOut() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
  }

  open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    this.events.connecting(this.attempt > 0);
    ws.onopen = () => {
      const hello = { op: "hello", v: 1, user: this.name, id: HELLO_ID };
      if (this.token) hello.token = this.token;
      const resume = this.events.resume();
      if (resume) hello.resume = resume;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (this.ws === ws) this.receive(JSON.parse(event.data));
    };
    ws.onclose = () => {
      if (this.ws === ws) this.closed();
    };
  }

  // Queue a request; the promise resolves with its reply or rejects with its error (a
  // `disconnected` one when there is no connection, or it goes first). `onWait(ms)` hears of
  // each wait for `retry_after`.
  request(op, fields = {}, onWait = null) {
    if (!this.ready) return Promise.reject({ code: "disconnected" });
    return new Promise((resolve, reject) => {
      this.queue.push({ op, fields, resolve, reject, onWait, waited: 0 });
      this.pump();
    });
  }

  pump() {
    if (this.pumpTimer !== null || !this.ready) return;
    while (this.queue.length) {
      const now = performance.now();
      this.tokens = Math.min(BURST, this.tokens + ((now - this.refilled) / 1000) * RATE);
      this.refilled = now;
      const wait = Math.max(this.pausedUntil - Date.now(), this.tokens < 1 ? 1000 / RATE : 0);
      if (wait > 0) {
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = null;
          this.pump();
        }, wait);
        return;
      }
      this.tokens -= 1;
      const job = this.queue.shift();
      const id = this.nextId++;
      this.waiting.set(id, job);
      this.ws.send(JSON.stringify({ op: job.op, id, ...job.fields }));
    }
  }

  receive(message) {
    if (message.id === HELLO_ID) {
      if (message.op === "hello") {
        this.ready = true;
        this.attempt = 0;
        this.signedInOnce = true;
        this.events.signedIn(message);
        this.pump();
      } else if (this.signedInOnce && PASSING.has(message.code)) {
        this.ws.close(); // and try again after the next backoff
      } else {
        this.wanted = false; // the server turned the hello down: reconnecting would not help
        this.ws.close();
        this.events.refused(message);
      }
      return;
    }
    const job = message.id !== undefined ? this.waiting.get(message.id) : undefined;
    if (job) {
      this.waiting.delete(message.id);
      this.answered(job, message);
    } else if (message.op === "ping") {
      this.ws.send('{"op":"pong"}');
    } else {
      this.events.push(message);
    }
  }

  answered(job, reply) {
    if (reply.op !== "error") {
      job.resolve(reply);
    } else if (reply.code === "rate-limited" && job.waited < RETRY_MS) {
      // Nothing goes out before the server's retry_after; then this request goes first.
      const waitMs = Math.max(1, (reply.retry_after || 1) * 1000);
      this.pausedUntil = Math.max(this.pausedUntil, Date.now() + waitMs);
      job.waited += waitMs;
      if (job.onWait) job.onWait(waitMs);
      this.queue.unshift(job);
      this.pump();
    } else {
      job.reject(reply);
    }
  }

  closed() {
    this.ready = false;
    const jobs = [...this.waiting.values(), ...this.queue];
    this.waiting.clear();
    this.queue = [];
    clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    for (const job of jobs) job.reject({ code: "disconnected" });
    if (!this.wanted) return;
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    const jittered = Math.round(delay * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.open(), jittered);
    this.events.lost(jittered);
  }
}

// One run of `task` at a time; callers while it runs share the next run.
export function coalesced(task) {
  let running = null;
  let again = null;
  const run = () => {
    running = task().finally(() => {
      running = null;
    });
    return running;
  };
  return () => {
    if (!running) return run();
    if (!again) {
      again = running.catch(() => {}).then(() => {
        again = null;
        return run();
      });
    }
    return again;
  };
}

// `draw` at the next frame, however often it is asked for before then.
export function soon(draw) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      draw();
    });
  };
}
