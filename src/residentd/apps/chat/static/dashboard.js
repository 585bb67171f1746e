// The dashboard: fetches /stats every second and draws the last two minutes on canvases.
// Each chart is a few lines over a shared time axis, drawn at the device's pixel ratio, with
// evenly spaced round ticks from 0; its legend is HTML above it, off the grid. No library, no
// build step.
"use strict";

const $ = (id) => document.getElementById(id);

const COLORS = ["#2a6fdb", "#e07b00", "#2a9d4b"];
const SPAN = 120; // seconds shown
const MIN_USERS = 100; // memory per user is shown from this many users online
const MEMORY_WHY = `shown from ${MIN_USERS} users online: with fewer, the daemon's own growth `
  + "since start (buffers, caches, the allocator) outweighs what the users cost";
const KIB = 1024;
const MIB = 1024 * 1024;

function format(value, unit) {
  if (value === null || value === undefined) return "—";
  if (unit === "B") {
    if (value >= MIB) return `${+(value / MIB).toFixed(1)} MiB`;
    if (value >= KIB) return `${+(value / KIB).toFixed(1)} KiB`;
    return `${Math.round(value)} B`;
  }
  if (unit === "ms") return `${+value.toFixed(value < 10 ? 2 : 0)} ms`;
  if (value >= 10000) return `${+(value / 1000).toFixed(1)}k`;
  return `${+value.toFixed(1)}`;
}

// The unit a byte axis is written in: one for all its ticks.
function byteBase(top) {
  return top >= MIB ? MIB : top >= KIB ? KIB : 1;
}

function tickLabel(value, unit, base) {
  if (unit !== "B") return format(value, unit);
  const name = base === MIB ? "MiB" : base === KIB ? "KiB" : "B";
  return `${+(value / base).toFixed(2)} ${name}`;
}

// Ticks from 0 past the largest value, a round step apart: 1, 2 or 5 times a power of ten (of
// KiB or MiB for bytes), at most four steps; counts and bytes never step below 1.
function ticks(samples, series, unit) {
  let top = 0;
  for (const { key } of series) {
    for (const s of samples) if (s[key] !== null) top = Math.max(top, s[key]);
  }
  if (top <= 0) top = unit === "ms" ? 1 : 4;
  const base = unit === "B" ? byteBase(top) : 1;
  const rough = top / base / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) * base;
  if (unit !== "ms") step = Math.max(1, step);
  const count = Math.max(1, Math.ceil(top / step - 1e-9));
  const marks = Array.from({ length: count + 1 }, (_, i) => +(i * step).toPrecision(12));
  return { marks, base };
}

// The canvas's backing store matches its CSS size times the device's pixel ratio, so lines and
// text are sharp and nothing is stretched.
function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

function draw(canvas, samples, series, unit, empty) {
  const { ctx, width, height } = prepare(canvas);
  ctx.font = "11px system-ui, sans-serif";
  if (empty && !series.some(({ key }) => samples.some((s) => s[key] !== null))) {
    canvas.dataset.ticks = "[]"; // nothing to show: no axis either, just why
    ctx.fillStyle = "#5b6170";
    ctx.textAlign = "center";
    ctx.fillText(empty, width / 2, height / 2);
    return;
  }
  const { marks, base } = ticks(samples, series, unit);
  const labels = marks.map((v) => tickLabel(v, unit, base));
  canvas.dataset.ticks = JSON.stringify(marks);
  canvas.dataset.labels = JSON.stringify(labels);
  const top = marks[marks.length - 1];
  const left = 62;
  const right = width - 8;
  const bottom = height - 20;
  const upper = 8;
  const t0 = (samples.length ? samples[samples.length - 1].t : Date.now() / 1000) - SPAN;
  const x = (t) => left + ((t - t0) / SPAN) * (right - left);
  const y = (v) => bottom - (v / top) * (bottom - upper);
  ctx.lineWidth = 1;
  ctx.strokeStyle = "#dde1ea";
  ctx.fillStyle = "#5b6170";
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  marks.forEach((v, i) => {
    const at = Math.round(y(v)) + 0.5; // on the pixel grid: one sharp line
    ctx.beginPath();
    ctx.moveTo(left, at);
    ctx.lineTo(right, at);
    ctx.stroke();
    ctx.fillText(labels[i], left - 6, at);
  });
  ctx.textBaseline = "alphabetic";
  for (const [ago, label] of [[SPAN, "-2 min"], [SPAN / 2, "-1 min"], [0, "now"]]) {
    ctx.textAlign = ago === SPAN ? "left" : ago === 0 ? "right" : "center";
    ctx.fillText(label, x(t0 + SPAN - ago), height - 4);
  }
  series.forEach(({ key }, index) => {
    ctx.strokeStyle = COLORS[index];
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let drawing = false;
    for (const s of samples) {
      if (s[key] === null || s.t < t0) {
        drawing = false;
        continue;
      }
      if (drawing) ctx.lineTo(x(s.t), y(s[key]));
      else ctx.moveTo(x(s.t), y(s[key]));
      drawing = true;
    }
    ctx.stroke();
  });
}

// The legend: a swatch of each line's colour, its label and, with several lines, its latest
// value (a single line's value stands in the chart's title).
function legend(list, series, last, unit) {
  if (list.childElementCount !== series.length) {
    list.replaceChildren(...series.map((_, index) => {
      const li = document.createElement("li");
      li.style.setProperty("--swatch", COLORS[index]);
      return li;
    }));
  }
  series.forEach(({ key, label }, index) => {
    const value = series.length > 1 && last ? ` ${format(last[key], unit)}` : "";
    list.children[index].textContent = label + value;
  });
}

// Memory per user only where it means something: a second with MIN_USERS users online or more.
function memoryPerUser(s) {
  return { ...s, bytes_per_user: s.online >= MIN_USERS ? s.bytes_per_user : null };
}

const CHARTS = [
  { name: "online", unit: "",
    series: [{ key: "online", label: "users" }, { key: "tcp", label: "TCP connections" },
      { key: "ws", label: "WebSocket connections" }] },
  { name: "rate", unit: "",
    series: [{ key: "posts_per_s", label: "posted" },
      { key: "deliveries_per_s", label: "delivered" }] },
  { name: "memory", unit: "B", view: memoryPerUser,
    empty: `shown from ${MIN_USERS} users online`,
    series: [{ key: "bytes_per_user", label: "RSS growth since start / users online" }] },
  { name: "lag", unit: "ms", series: [{ key: "lag_ms", label: "worst lag" }] },
];

let samples = [];

function render() {
  for (const chart of CHARTS) {
    const shown = chart.view ? samples.map(chart.view) : samples;
    const last = shown[shown.length - 1];
    legend($(`legend-${chart.name}`), chart.series, last, chart.unit);
    draw($(`chart-${chart.name}`), shown, chart.series, chart.unit, chart.empty);
    if (!last || chart.series.length > 1) continue;
    const now = $(`now-${chart.name}`);
    now.textContent = format(last[chart.series[0].key], chart.unit);
    if (chart.name === "memory") now.title = last.bytes_per_user === null ? MEMORY_WHY : "";
  }
}

async function update() {
  try {
    const response = await fetch("/stats", { cache: "no-store" });
    samples = (await response.json()).samples;
    render();
    const last = samples[samples.length - 1];
    $("status").textContent = last
      ? `updated ${new Date(last.t * 1000).toLocaleTimeString()}, RSS ${format(last.rss, "B")}`
      : "no samples yet";
    document.body.dataset.samples = samples.length;
  } catch (error) {
    $("status").textContent = `cannot reach the daemon: ${error}`;
  }
}

update();
setInterval(update, 1000);
window.addEventListener("resize", render);
