// bicameral console: live overview over server-sent events, a lag chart drawn as SVG.
// Plain JavaScript, no library; every value is set as text, never as HTML.
(function () {
  "use strict";
  var page = document.body.dataset.page;
  var SVG = "http://www.w3.org/2000/svg";
  var POINTS = 120;
  var history = [];   // [{t: seconds, lag: {service: events behind}}]

  function checkSession() {
    fetch("/console/session", { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { location.assign("/console/sign-in?expired=1"); }
      })
      .catch(function () { /* the server is away: EventSource keeps trying */ });
  }

  function cell(row, field) { return row.querySelector('td[data-field="' + field + '"]'); }

  function newRow(body, c) {
    var tr = document.createElement("tr");
    tr.dataset.key = c.service + "/" + c.name;
    [c.service, c.name].forEach(function (text) {
      var td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
    });
    ["position", "head", "lag", "lag_seconds", "parked", "owner", "state"].forEach(function (f) {
      var td = document.createElement("td"); td.dataset.field = f; tr.appendChild(td);
    });
    body.appendChild(tr);
    return tr;
  }

  function updateTable(consumers) {
    var body = document.querySelector("#consumers tbody");
    var rows = {};
    body.querySelectorAll("tr").forEach(function (tr) { rows[tr.dataset.key] = tr; });
    consumers.forEach(function (c) {
      var tr = rows[c.service + "/" + c.name] || newRow(body, c);
      cell(tr, "position").textContent = String(c.position);
      cell(tr, "head").textContent = String(c.head);
      cell(tr, "lag").textContent = String(c.lag);
      cell(tr, "lag_seconds").textContent = Number(c.lag_seconds).toFixed(1);
      cell(tr, "parked").textContent = String(c.parked);
      cell(tr, "owner").textContent = c.owner || "";
      cell(tr, "state").textContent = c.state || "";
      tr.classList.toggle("behind", c.lag > 0);
    });
  }

  function partitionsText(held) {  // as pages.py writes it
    return Object.keys(held).map(function (base) {
      return held[base].length ? base + " #" + held[base].join(",") : base;
    }).join("; ");
  }

  function updateProcesses(processes) {
    var body = document.querySelector("#processes tbody");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    processes.forEach(function (p) {
      var tr = document.createElement("tr");
      [p.process, p.roles.join(", "), partitionsText(p.partitions || {})].forEach(function (text) {
        var td = document.createElement("td"); td.textContent = text; tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function svg(name, attrs, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  function drawChart() {
    var chart = document.getElementById("lag-chart");
    var legend = document.getElementById("lag-legend");
    if (!chart || history.length === 0) { return; }
    var services = Object.keys(history[history.length - 1].lag).sort();
    var max = 1;
    history.forEach(function (h) {
      services.forEach(function (s) { max = Math.max(max, h.lag[s] || 0); });
    });
    var W = Math.max(300, Math.round(chart.clientWidth || 600)), H = 140, L = 40, T = 10, B = 20;
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    var t0 = history[0].t, t1 = Math.max(history[history.length - 1].t, t0 + 1);
    while (chart.firstChild) { chart.removeChild(chart.firstChild); }
    [0, 0.5, 1].forEach(function (f) {
      var y = T + (H - T - B) * (1 - f);
      chart.appendChild(svg("line", { x1: L, x2: W - 5, y1: y, y2: y, "class": "grid" }));
      chart.appendChild(svg("text", { x: 4, y: y + 3, "class": "axis" }, String(Math.round(max * f))));
    });
    chart.appendChild(svg("text", { x: L, y: H - 4, "class": "axis" },
      Math.round(t1 - t0) + " s shown, newest right"));
    while (legend.firstChild) { legend.removeChild(legend.firstChild); }
    services.forEach(function (s, i) {
      var points = history.map(function (h) {
        var x = L + (W - 5 - L) * (h.t - t0) / (t1 - t0);
        var y = T + (H - T - B) * (1 - (h.lag[s] || 0) / max);
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" ");
      chart.appendChild(svg("polyline", { points: points, "class": "s" + (i % 5), "data-service": s }));
      var item = document.createElement("span");
      item.className = "s" + (i % 5);
      item.textContent = "\u25A0 " + s;
      legend.appendChild(item);
    });
  }

  function update(data) {
    var consumers = data.consumers || [];
    var total = 0, lag = {};
    consumers.forEach(function (c) {
      total += c.lag;
      lag[c.service] = (lag[c.service] || 0) + c.lag;
    });
    document.getElementById("lag-total").textContent = String(total);
    document.getElementById("updated").textContent = new Date(data.time * 1000).toLocaleTimeString();
    updateTable(consumers);
    updateProcesses(data.processes || []);
    history.push({ t: data.time, lag: lag });
    if (history.length > POINTS) { history.shift(); }
    drawChart();
  }

  if (page === "overview") {
    var source = new EventSource("/console/stream");
    source.addEventListener("status", function (e) { update(JSON.parse(e.data)); });
    source.addEventListener("error", checkSession);
  }
  if (page === "rebuilds") {
    var table = document.getElementById("rebuilds");
    if (table && table.dataset.building === "1") {
      setTimeout(function () { location.reload(); }, 2000);
    }
  }
  if (page === "parked") {
    document.querySelectorAll("button.skip").forEach(function (b) {
      b.addEventListener("click", function (e) {
        if (!window.confirm("Drop these parked events for good?")) { e.preventDefault(); }
      });
    });
  }
})();
