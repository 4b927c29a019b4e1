// The console's pages: charts from the JSON the server put in the page, live figures over
// server-sent events, and the verify job's progress. No data is fetched from elsewhere.
"use strict";

function pageData(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

function chartOn(id) {
  const node = document.getElementById(id);
  if (!node || typeof echarts === "undefined") return null;
  return echarts.init(node, null, { renderer: "canvas" });
}

function seriesOption(data, labels) {
  return {
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 40, right: 20, top: 36, bottom: 30 },
    xAxis: { type: "category", data: data.dates },
    yAxis: { type: "value", minInterval: 1 },
    series: Object.keys(data.series).map((key) => ({
      name: labels[key] || key, type: "line", data: data.series[key], smooth: false, symbolSize: 8,
    })),
  };
}

function overview() {
  const data = pageData("figures-data");
  if (!data) return;
  const holder = document.getElementById("series-chart");
  const labels = JSON.parse(holder.dataset.labels);
  const chart = chartOn("series-chart");
  if (chart) chart.setOption(seriesOption(data, labels));
  const live = document.getElementById("live");
  const source = new EventSource(pageData("stream-url"));
  source.addEventListener("figures", (message) => {
    const figures = JSON.parse(message.data);
    const cells = document.querySelectorAll("a.figure[data-agency][data-column]");
    const rows = Object.fromEntries(figures.rows.map((row) => [row.agency, row]));
    for (const cell of cells) {
      const row = cell.dataset.agency === "_all" ? figures.totals : rows[cell.dataset.agency];
      const value = String(row ? row[cell.dataset.column] : "");
      if (cell.textContent !== value) {
        cell.textContent = value;
        cell.classList.add("changed");
      }
    }
    document.querySelector('[data-figure="records"]').textContent = figures.records;
    document.getElementById("records").textContent = figures.records;
    document.body.dataset.version = figures.version;
    if (chart) chart.setOption(seriesOption(figures, labels), { replaceMerge: ["series"] });
    live.classList.remove("off");
  });
  source.onerror = () => live.classList.add("off");
}

function flow() {
  const data = pageData("flow-data");
  if (!data) return;
  const chart = chartOn("flow-chart");
  if (chart) {
    const name = (id) => data.names[id] || id;
    const sources = [...new Set(data.links.map((l) => l.source))];
    const targets = [...new Set(data.links.map((l) => l.target))];
    // two columns, so a pair of agencies sending clues both ways is no cycle
    const nodes = [
      ...sources.map((id) => ({ name: "from:" + id, label: { formatter: name(id) }, depth: 0 })),
      ...targets.map((id) => ({ name: "to:" + id, label: { formatter: name(id), position: "left" }, depth: 1 })),
    ];
    chart.setOption({
      animation: false,
      title: { text: data.from + " → " + data.to, left: "center", textStyle: { fontSize: 13 } },
      tooltip: {
        trigger: "item",
        formatter: (p) => p.dataType === "edge"
          ? name(p.data.source.slice(5)) + " → " + name(p.data.target.slice(3)) + ": " + p.data.value
          : name(p.name.replace(/^(from|to):/, "")),
      },
      series: [{
        type: "sankey", top: 40, bottom: 10, left: 10, right: 10, nodeAlign: "justify",
        emphasis: { focus: "adjacency" }, lineStyle: { color: "gradient", curveness: 0.5, opacity: 0.45 },
        data: nodes,
        links: data.links.map((l) => ({ source: "from:" + l.source, target: "to:" + l.target, value: l.value })),
      }],
    });
  }
  const bars = chartOn("outcome-chart");
  if (bars) {
    const receivers = Object.keys(data.outcomes);
    bars.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 110, right: 20, top: 36, bottom: 30 },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: receivers.map((id) => data.names[id] || id) },
      series: data.kinds.map((kind) => ({
        name: data.kind_names[kind] || kind, type: "bar", stack: "clues",
        data: receivers.map((id) => data.outcomes[id][kind] || 0),
      })),
    });
  }
}

function verifyJob() {
  const form = document.getElementById("verify-form");
  if (!form) return;
  const bar = document.getElementById("verify-progress");
  const state = document.getElementById("verify-state");
  const lines = document.getElementById("verify-lines");
  async function poll() {
    const job = await (await fetch("/api/verify")).json();
    state.textContent = job.state;
    state.dataset.state = job.state;
    if (job.total) { bar.max = job.total; bar.value = job.done; }
    lines.textContent = (job.lines || []).join("\n");
    if (job.state === "running") setTimeout(poll, 300);
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await fetch(form.action, { method: "POST" });
    poll();
  });
  if (state.dataset.state === "running") poll();
}

document.addEventListener("DOMContentLoaded", () => {
  overview();
  flow();
  verifyJob();
});
