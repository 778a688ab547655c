/* autoresearch pages: the dashboard (live: polls /api/state) and report.html (static: data embedded).
   No libraries and no network beyond the page's own server: charts are SVG drawn here. */
"use strict";

(function () {
  const BOOT = JSON.parse(document.getElementById("boot").textContent);
  const LIVE = BOOT.live;
  const SVGNS = "http://www.w3.org/2000/svg";
  const COLORS = { keep: "#1e9e52", discard: "#9aa3ad", crash: "#d64541", timeout: "#8e44ad", invalid: "#e67e22" };
  let state = BOOT.data || null;
  let selected = null;
  let version = null;
  const detailCache = {};

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  function fmt(v, d) {
    if (v === null || v === undefined || typeof v !== "number" || !isFinite(v)) return "-";
    return v.toFixed(d === undefined ? 6 : d);
  }
  function signed(v) { return (v === null || v === undefined) ? "-" : (v >= 0 ? "+" : "") + fmt(v); }
  function better(delta) {
    if (delta === null || delta === undefined) return "";
    return (state.direction === "minimize" ? delta < 0 : delta > 0) ? "good" : "bad";
  }

  // ------------------------------------------------------------------ cards
  function renderCards() {
    const c = $("cards");
    c.replaceChildren();
    const b = state.baseline, best = state.best;
    const gain = (b && best && best.number !== b.number) ? best.value - b.value : null;
    const add = (label, value, sub, cls) => {
      const card = el("div", { class: "card" + (cls ? " " + cls : "") });
      card.append(el("div", { class: "label" }, label), el("div", { class: "value" }, value));
      if (sub) card.append(el("div", { class: "sub" }, sub));
      c.append(card);
    };
    add("baseline " + state.metric, b ? fmt(b.value) : "-", b ? b.runs + " runs" : "not measured yet");
    add("best", best ? fmt(best.value) : "-", best ? "trial " + best.number + ": " + best.description : "", better(gain));
    add("gain vs baseline", gain === null ? "-" : signed(gain), "noise sd " + fmt(state.noise_sd), better(gain));
    const n = state.counts;
    add("trials", String(state.trials.filter(t => t.kind !== "baseline").length),
        Object.keys(n).map(k => k + " " + n[k]).join(", "));
    if (state.cost) add("agent cost", "$" + fmt(state.cost, 4), "");
    const r = state.running || [];
    add("running", r.length ? "trial " + r.map(x => x.number).join(", ") : "nothing",
        r.length ? (r[0].description || "") : (LIVE ? "waiting for the study" : ""));
  }

  // ------------------------------------------------------------------ the progress chart
  function scale(lo, hi, a, b) {
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    return v => a + (v - lo) / (hi - lo) * (b - a);
  }
  function renderChart() {
    const box = $("chart");
    box.replaceChildren();
    const W = 900, H = 320, L = 70, R = 20, T = 20, B = 40;
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
    const trials = state.trials;
    const ran = trials.filter(t => t.value !== null);
    if (!trials.length) {
      const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" });
      t.textContent = "no trials recorded yet";
      s.append(t); box.append(s); return;
    }
    const xs = trials.map(t => t.number);
    const x = scale(Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1), L, W - R);
    const vals = ran.map(t => t.value);
    let lo = vals.length ? Math.min(...vals) : 0, hi = vals.length ? Math.max(...vals) : 1;
    const pad = (hi - lo) * 0.08 || 0.01;
    lo -= pad; hi += pad;
    const failY = T + 6;
    const y = scale(lo, hi, H - B, T + 20);
    // axes and grid
    for (let i = 0; i <= 4; i++) {
      const v = lo + (hi - lo) * i / 4, yy = y(v);
      s.append(svg("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "grid" }));
      const t = svg("text", { x: L - 6, y: yy + 4, "text-anchor": "end", class: "tick" });
      t.textContent = v.toFixed(4); s.append(t);
    }
    const first = Math.min(...xs), last = Math.max(...xs), every = Math.max(1, Math.ceil((last - first + 1) / 20));
    for (let n = first; n <= last; n += every) {
      const t = svg("text", { x: x(n), y: H - B + 16, "text-anchor": "middle", class: "tick" });
      t.textContent = String(n); s.append(t);
    }
    const xl = svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "tick" });
    xl.textContent = "trial"; s.append(xl);
    const yl = svg("text", { x: 14, y: (T + H - B) / 2, transform: `rotate(-90 14 ${(T + H - B) / 2})`,
                             "text-anchor": "middle", class: "tick" });
    yl.textContent = state.metric + (state.direction === "minimize" ? " (lower is better)" : " (higher is better)");
    s.append(yl);
    // running best (step line)
    if (state.best_line.length) {
      let d = "", prev = null;
      for (const [n, v] of state.best_line) {
        d += prev === null ? `M${x(n)},${y(v)}` : `H${x(n)}V${y(v)}`;
        prev = v;
      }
      s.append(svg("path", { d: d, class: "bestline" }));
    }
    // points
    for (const t of trials) {
      const failed = t.value === null;
      const cx = x(t.number), cy = failed ? failY : y(t.value);
      const shape = failed
        ? svg("path", { d: `M${cx - 4},${cy - 4}L${cx + 4},${cy + 4}M${cx - 4},${cy + 4}L${cx + 4},${cy - 4}`,
                        stroke: COLORS[t.state] || "#555", "stroke-width": 2 })
        : svg("circle", { cx: cx, cy: cy, r: t.state === "keep" ? 6 : 4, fill: COLORS[t.state] || "#555",
                          stroke: t.state === "keep" ? "#0b4d27" : "none" });
      shape.setAttribute("class", "point state-" + t.state + (selected === t.number ? " selected" : ""));
      shape.setAttribute("data-number", t.number);
      shape.addEventListener("mouseenter", ev => showTip(ev, t));
      shape.addEventListener("mousemove", ev => moveTip(ev));
      shape.addEventListener("mouseleave", hideTip);
      shape.addEventListener("click", () => select(t.number));
      s.append(shape);
    }
    box.append(s);
    const legend = el("div", { class: "legend" });
    for (const k of Object.keys(COLORS)) {
      const item = el("span", { class: "item" });
      item.append(el("span", { class: "swatch", style: "background:" + COLORS[k] }), document.createTextNode(k));
      legend.append(item);
    }
    const bl = el("span", { class: "item" });
    bl.append(el("span", { class: "swatch line" }), document.createTextNode("running best"));
    legend.append(bl);
    box.append(legend);
  }
  function showTip(ev, t) {
    const tip = $("tip");
    tip.replaceChildren();
    tip.append(el("b", {}, "trial " + t.number + " · " + t.state), el("div", {}, t.description));
    const lines = [
      [state.metric, fmt(t.value) + (t.runs > 1 ? " (mean of " + t.runs + ")" : "")],
      ["vs baseline", signed(t.delta_baseline)],
      ["vs best before", signed(t.delta_best)],
      ["noise sd", fmt(state.noise_sd)],
    ];
    if (t.reason) lines.push(["why", t.reason]);
    for (const [k, v] of lines) tip.append(el("div", { class: "kv" }, k + ": " + v));
    tip.style.display = "block";
    moveTip(ev);
  }
  function moveTip(ev) {
    const tip = $("tip");
    const w = tip.offsetWidth || 300;
    const right = ev.pageX + 14 + w > window.scrollX + document.documentElement.clientWidth;
    tip.style.left = (right ? ev.pageX - 14 - w : ev.pageX + 14) + "px";
    tip.style.top = (ev.pageY + 14) + "px";
  }
  function hideTip() { $("tip").style.display = "none"; }

  // ------------------------------------------------------------------ the trial table
  function renderTable() {
    const body = $("trials").querySelector("tbody");
    body.replaceChildren();
    for (const t of state.trials.slice().reverse()) {
      const tr = el("tr", { class: "trial-row state-" + t.state + (selected === t.number ? " selected" : ""),
                            "data-number": t.number });
      const cells = [t.number, t.state, fmt(t.value), signed(t.delta_best), t.runs, fmt(t.seconds, 0),
                     t.cost ? fmt(t.cost, 4) : "-", t.agent || "-", t.description, t.reason];
      cells.forEach((c, i) => {
        const td = el("td", {}, c);
        if (i === 1) td.className = "badge state-" + t.state;
        if (i === 3) td.className = better(t.delta_best);
        tr.append(td);
      });
      tr.addEventListener("click", () => select(t.number));
      body.append(tr);
    }
  }

  // ------------------------------------------------------------------ one trial: diff, log, answer
  function select(n) {
    selected = n;
    for (const e of document.querySelectorAll(".selected")) e.classList.remove("selected");
    for (const e of document.querySelectorAll(`[data-number="${n}"]`)) e.classList.add("selected");
    renderDetail();
  }
  function renderDetail() {
    const box = $("detail");
    if (selected === null) { box.hidden = true; return; }
    const t = state.trials.find(x => x.number === selected);
    if (!t) { box.hidden = true; return; }
    box.hidden = false;
    $("detail-title").textContent = "trial " + t.number + " · " + t.state + " · " + t.description;
    $("detail-meta").textContent = `${state.metric} ${fmt(t.value)}  runs ${t.runs}  commit ${t.commit || "-"}  ` +
      `parent ${t.parent || "-"}${t.holdout !== null ? "  holdout " + fmt(t.holdout) : ""}  ${t.reason}`;
    const d = detailCache[t.number] || (state.details && state.details[String(t.number)]);
    if (d) { fillDetail(t, d); return; }
    $("diff").replaceChildren(el("span", { class: "muted" }, "loading..."));
    if (LIVE) {
      fetch("api/trial/" + t.number).then(r => r.json()).then(d => {
        detailCache[t.number] = d;
        if (selected === t.number) fillDetail(t, d);
      }).catch(() => { $("diff").textContent = "(the dashboard's server did not answer)"; });
    }
  }
  function fillDetail(t, d) {
    const diff = $("diff");
    diff.replaceChildren();
    const text = d.diff || (t.commit ? "(no change against the parent)" : "(nothing was run: no commit)");
    for (const line of text.split("\n")) {
      let cls = "";
      if (line.startsWith("+") && !line.startsWith("+++")) cls = "add";
      else if (line.startsWith("-") && !line.startsWith("---")) cls = "del";
      else if (line.startsWith("@@")) cls = "hunk";
      diff.append(el("div", { class: "dl " + cls }, line === "" ? " " : line));
    }
    $("log").textContent = d.log_tail || d.crash_tail || "(no log)";
    // the agent's answer where its proposal recorded one (extra.answer / reasoning), else what it did record
    const rec = d.agent || {};
    let answer = t.answer || rec.answer || rec.reasoning || "";
    if (!answer && Object.keys(rec).length) {
      answer = Object.keys(rec).map(k => k + ": " + (typeof rec[k] === "object" ? JSON.stringify(rec[k]) : rec[k])).join("\n");
    }
    $("answer-box").hidden = !answer;
    $("answer").textContent = answer;
  }

  // ------------------------------------------------------------------ live training curve
  function renderRunning() {
    const box = $("live");
    const r = (state.running || [])[0];
    box.hidden = !r;
    if (!r) return;
    const since = r.since ? Math.max(0, Date.now() / 1000 - r.since) : 0;
    $("live-title").textContent = `trial ${r.number} running: ${r.description || ""} ` +
      `(${since.toFixed(0)} s so far${r.budget ? ", budget " + r.budget + " s" : ""})`;
    const c = $("curve");
    c.replaceChildren();
    const pts = r.curve || [];
    const W = 900, H = 200, L = 70, R = 20, T = 10, B = 30;
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart" });
    if (pts.length < 2) {
      const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" });
      t.textContent = pts.length ? "step " + pts[0][0] + ", loss " + fmt(pts[0][1], 4) : "waiting for the first steps";
      s.append(t); c.append(s); return;
    }
    const x = scale(pts[0][0], pts[pts.length - 1][0], L, W - R);
    const ys = pts.map(p => p[1]);
    const y = scale(Math.min(...ys), Math.max(...ys), H - B, T);
    for (let i = 0; i <= 2; i++) {
      const v = Math.min(...ys) + (Math.max(...ys) - Math.min(...ys)) * i / 2;
      const t = svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" });
      t.textContent = v.toFixed(3); s.append(t);
    }
    const xlab = svg("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "tick" });
    xlab.textContent = "step " + pts[pts.length - 1][0] + ", loss " + fmt(ys[ys.length - 1], 4);
    s.append(xlab);
    s.append(svg("path", { d: pts.map((p, i) => (i ? "L" : "M") + x(p[0]) + "," + y(p[1])).join(""), class: "curve" }));
    c.append(s);
  }

  // ------------------------------------------------------------------ lineage tree
  function renderLineage() {
    const box = $("lineage");
    box.hidden = !state.branching;
    if (!state.branching) return;
    const c = $("tree");
    c.replaceChildren();
    const nodes = state.trials.filter(t => t.commit);
    const kids = {};
    const roots = [];
    for (const t of nodes) {
      if (t.parent_number === null || t.parent_number === undefined) roots.push(t);
      else (kids[t.parent_number] = kids[t.parent_number] || []).push(t);
    }
    const rows = [];
    const walk = (t, depth) => { rows.push([t, depth]); for (const k of kids[t.number] || []) walk(k, depth + 1); };
    roots.forEach(r => walk(r, 0));
    const H = 22 * rows.length + 10, W = 900;
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "tree" });
    const pos = {};
    rows.forEach(([t, depth], i) => { pos[t.number] = [20 + depth * 24, 16 + i * 22]; });
    rows.forEach(([t]) => {
      const p = t.parent_number;
      if (p !== null && p !== undefined && pos[p]) {
        const [x0, y0] = pos[p], [x1, y1] = pos[t.number];
        s.append(svg("path", { d: `M${x0},${y0}V${y1}H${x1}`, class: "edge" }));
      }
    });
    rows.forEach(([t]) => {
      const [x0, y0] = pos[t.number];
      const dot = svg("circle", { cx: x0, cy: y0, r: 5, fill: COLORS[t.state] || "#555", "data-number": t.number,
                                  class: "point" });
      dot.addEventListener("click", () => select(t.number));
      const label = svg("text", { x: x0 + 10, y: y0 + 4, class: "tick" });
      label.textContent = `${t.number} ${t.state} ${fmt(t.value)} ${t.description}`.slice(0, 110);
      s.append(dot, label);
    });
    c.append(s);
  }

  // ------------------------------------------------------------------ finalize's ablation
  function renderFinal() {
    const box = $("final");
    const f = state.final;
    box.hidden = !(f && f.rows && f.rows.length);
    if (box.hidden) return;
    $("final-meta").textContent = `branch ${f.branch}: final code ${fmt(f.final_mean)} over ${f.repeats} runs ` +
      `(noise sd ${fmt(f.noise_sd)}); each kept change reverted alone:`;
    const body = $("final-table").querySelector("tbody");
    body.replaceChildren();
    for (const r of f.rows) {
      const tr = el("tr", { class: r.flag ? "flag" : "" });
      for (const c of [r.trial, r.description, signed(r.gain), fmt(r.without_mean), signed(r.contribution),
                       r.verdict]) tr.append(el("td", {}, c));
      body.append(tr);
    }
  }

  function render() {
    $("title").textContent = `autoresearch · tag ${state.tag}` + (state.profile ? ` · profile ${state.profile}` : "");
    $("updated").textContent = (LIVE ? "live, updated " : "written ") + new Date(state.updated * 1000).toLocaleString();
    renderCards(); renderChart(); renderTable(); renderRunning(); renderLineage(); renderFinal();
    if (selected !== null) renderDetail();
  }

  function poll() {
    fetch("api/state?since=" + encodeURIComponent(version || "")).then(r => r.json()).then(s => {
      if (s && s.trials) {
        if (s.version !== version) { for (const k in detailCache) delete detailCache[k]; }
        version = s.version; state = s; render();
      }
      $("status").textContent = "";
    }).catch(() => { $("status").textContent = "the dashboard's server is not answering; retrying"; })
      .finally(() => setTimeout(poll, BOOT.interval_ms || 2000));
  }

  if (LIVE) poll(); else render();
})();
