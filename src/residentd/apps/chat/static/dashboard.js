// The dashboard: fetches /stats every second and draws the last two minutes on canvases.
// Each chart is a few lines over a shared time axis; no library, no build step.
"use strict";

const $ = (id) => document.getElementById(id);

const COLORS = ["#2a6fdb", "#e07b00", "#2a9d4b"];

function format(value, unit) {
  if (unit === "B") {
    if (value >= 1 << 20) return `${(value / (1 << 20)).toFixed(1)} MiB`;
    if (value >= 1024) return `${(value / 1024).toFixed(1)} KiB`;
    return `${Math.round(value)} B`;
  }
  if (unit === "ms") return `${value.toFixed(value < 10 ? 2 : 0)} ms`;
  if (value >= 10000) return `${(value / 1000).toFixed(0)}k`;
  return `${Math.round(value * 10) / 10}`;
}

function draw(canvas, samples, series, unit) {
  const ctx = canvas.getContext("2d");
  const width = canvas.width;
  const height = canvas.height;
  const left = 56;
  const bottom = height - 18;
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  if (samples.length === 0) return;
  let top = 0;
  for (const { key } of series) for (const s of samples) top = Math.max(top, s[key]);
  top = top > 0 ? top * 1.15 : 1;
  const t0 = samples[samples.length - 1].t - 120;
  const x = (t) => left + ((t - t0) / 120) * (width - left - 6);
  const y = (v) => bottom - (v / top) * (bottom - 8);
  ctx.strokeStyle = "#dde";
  ctx.fillStyle = "#667";
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    ctx.beginPath();
    ctx.moveTo(left, y(v));
    ctx.lineTo(width - 6, y(v));
    ctx.stroke();
    ctx.fillText(format(v, unit), 2, y(v) + 4);
  }
  ctx.fillText("-2 min", left, height - 4);
  ctx.fillText("now", width - 30, height - 4);
  series.forEach(({ key, label }, index) => {
    ctx.strokeStyle = COLORS[index];
    ctx.lineWidth = 2;
    ctx.beginPath();
    samples.forEach((s, i) => (i ? ctx.lineTo(x(s.t), y(s[key])) : ctx.moveTo(x(s.t), y(s[key]))));
    ctx.stroke();
    if (series.length > 1) {
      ctx.fillStyle = COLORS[index];
      ctx.fillText(label, left + 8 + index * 110, 12);
    }
  });
}

const CHARTS = [
  { canvas: "chart-online", now: "now-online", unit: "",
    series: [{ key: "online", label: "users" }, { key: "tcp", label: "TCP conns" },
      { key: "ws", label: "WS conns" }] },
  { canvas: "chart-rate", now: "now-rate", unit: "",
    series: [{ key: "posts_per_s", label: "posted" },
      { key: "deliveries_per_s", label: "delivered" }] },
  { canvas: "chart-memory", now: "now-memory", unit: "B",
    series: [{ key: "bytes_per_user", label: "RSS growth / user" }] },
  { canvas: "chart-lag", now: "now-lag", unit: "ms",
    series: [{ key: "lag_ms", label: "lag" }] },
];

async function update() {
  try {
    const response = await fetch("/stats", { cache: "no-store" });
    const { samples } = await response.json();
    for (const chart of CHARTS) {
      draw($(chart.canvas), samples, chart.series, chart.unit);
      const last = samples[samples.length - 1];
      if (last) {
        $(chart.now).textContent = chart.series
          .map(({ key, label }) => `${label} ${format(last[key], chart.unit)}`).join(" · ");
      }
    }
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
