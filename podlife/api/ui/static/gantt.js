// The live Gantt chart: one row per node (Ready or not, pod counts by stage), under it a bar per pod,
// coloured by stage. Virtualised: the body is a tall spacer and only the rows in view (plus a margin)
// are in the DOM, so 10,000 pods cost what 50 do. Rendering happens at most once per animation frame,
// after updates (batched by the server) and once a second as time moves on.

import {clock, duration, h, navigate, stageColour} from './dom.js';

const ROW = 24;             // px per row (style.css .row height)
const MARGIN = 10;          // rows rendered beyond the visible ones
const WINDOWS = [['fit', 0], ['1m', 60], ['5m', 300], ['15m', 900], ['1h', 3600]];  // fit: since the oldest pod

// row fields (podlife/api/ui/timeline.py)
const KEY = 0, NS = 1, NAME = 2, NODE = 3, PHASE = 4, STAGE = 5, CREATED = 6, DELETED = 7, STAGES = 8;

export class Gantt {
  constructor(root) {
    this.root = root;
    this.stages = [];
    this.pods = new Map();       // key -> row
    this.nodes = new Map();      // name -> {name, ready, known, pods, stages}
    this.collapsed = new Set();
    this.items = [];             // [{node}] and [{key}] in display order
    this.orderDirty = true;
    this.statsDirty = true;
    this.oldest = Infinity;
    this.offset = 0;             // server clock - browser clock (s)
    this.filter = '';
    this.span = 0;
    this.frame = 0;
    this.build();
    this.ticker = setInterval(() => this.schedule(), 1000);
  }

  destroy() { clearInterval(this.ticker); cancelAnimationFrame(this.frame); }

  build() {
    const windows = h('select', {class: 'window', title: 'time window', onchange: (e) => {
      this.span = Number(e.target.value); this.schedule();
    }}, WINDOWS.map(([label, s]) => h('option', {value: s, selected: s === this.span}, label)));
    const filter = h('input', {type: 'search', placeholder: 'filter: namespace/name or node', class: 'filter',
      oninput: (e) => { this.filter = e.target.value.trim(); this.orderDirty = true; this.schedule(); }});
    this.summary = h('span', {class: 'summary'});
    this.legend = h('div', {class: 'legend'});
    this.axis = h('div', {class: 'axis'});
    this.spacer = h('div', {class: 'spacer'});
    this.layer = h('div', {class: 'layer'});
    this.body = h('div', {class: 'gantt-body', onscroll: () => this.schedule()}, this.spacer, this.layer);
    this.body.addEventListener('click', (e) => this.click(e));
    this.root.replaceChildren(
      h('div', {class: 'toolbar'}, filter, windows, this.summary),
      this.legend,
      h('div', {class: 'gantt-head'}, h('div', {class: 'label'}, 'node / pod'), this.axis),
      this.body);
  }

  // ---- data ---------------------------------------------------------------------------------

  snapshot(msg) {
    this.offset = msg.now - Date.now() / 1000;
    this.stages = msg.stages;
    this.pods = new Map(msg.rows.map((r) => [r[KEY], r]));
    this.nodes = new Map(msg.nodes.map((n) => [n.name, n]));
    this.orderDirty = this.statsDirty = true;
    this.schedule();
  }

  update(msg) {
    this.offset = msg.now - Date.now() / 1000;
    if (msg.stages) this.stages = msg.stages;
    for (const r of msg.rows) {
      const old = this.pods.get(r[KEY]);
      if (!old || old[NODE] !== r[NODE]) this.orderDirty = true;
      this.pods.set(r[KEY], r);
    }
    for (const key of msg.removed) { this.pods.delete(key); this.orderDirty = true; }
    this.statsDirty = true;
    for (const n of msg.nodes) {
      if (!this.nodes.has(n.name)) this.orderDirty = true;
      if (n.known || n.pods) this.nodes.set(n.name, n);
      else { this.nodes.delete(n.name); this.orderDirty = true; }
    }
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  /** The display order: unscheduled pods first, then nodes by name; a node's pods by creation. */
  rebuild() {
    const byNode = new Map();
    const f = this.filter.toLowerCase();
    for (const r of this.pods.values()) {
      if (f && !r[KEY].toLowerCase().includes(f) && !r[NODE].toLowerCase().includes(f)) continue;
      let list = byNode.get(r[NODE]);
      if (!list) byNode.set(r[NODE], list = []);
      list.push(r);
    }
    const names = new Set([...this.nodes.keys(), ...byNode.keys()]);
    const items = [];
    for (const name of [...names].sort()) {
      const pods = byNode.get(name) || [];
      if (f && !pods.length && !name.toLowerCase().includes(f)) continue;
      if (name === '' && !pods.length) continue;
      items.push({node: name, shown: pods.length});
      if (this.collapsed.has(name)) continue;
      pods.sort((a, b) => a[CREATED] - b[CREATED] || (a[KEY] < b[KEY] ? -1 : 1));
      for (const r of pods) items.push({key: r[KEY]});
    }
    this.items = items;
    this.orderDirty = false;
  }

  // ---- drawing ------------------------------------------------------------------------------

  render() {
    const started = performance.now();
    if (this.orderDirty) this.rebuild();
    const now = Date.now() / 1000 + this.offset;
    let t0 = now - this.span;
    if (this.statsDirty) this.stats();
    if (!this.span) {  // fit: from a little before the oldest pod, at least 10 s
      t0 = Math.min(now - 10, this.oldest);
      t0 -= (now - t0) * 0.02;
    }
    const span = Math.max(now - t0, 1);
    this.maxPods = 1;  // node rows' count bars are drawn to one scale
    for (const n of this.nodes.values()) if (n.pods > this.maxPods) this.maxPods = n.pods;
    this.spacer.style.height = `${this.items.length * ROW}px`;
    const first = Math.max(0, Math.floor(this.body.scrollTop / ROW) - MARGIN);
    const last = Math.min(this.items.length, Math.ceil((this.body.scrollTop + this.body.clientHeight) / ROW) + MARGIN);
    const rows = [];
    for (let i = first; i < last; i++) {
      const item = this.items[i];
      rows.push(item.node !== undefined ? this.nodeRow(item) : this.podRow(this.pods.get(item.key), t0, span, now));
    }
    this.layer.style.transform = `translateY(${first * ROW}px)`;
    this.layer.replaceChildren(...rows);
    this.drawAxis(t0, span);
    this.root.dataset.totalPods = this.pods.size;
    this.root.dataset.renderedRows = rows.length;
    this.root.dataset.renderMs = (performance.now() - started).toFixed(1);  // what the last frame cost in JS
  }

  nodeRow(item) {
    const name = item.node;
    const node = this.nodes.get(name) || {pods: item.shown, stages: {}, known: false};
    const ready = node.ready === true ? 'true' : node.ready === false ? 'false' : 'unknown';
    const state = name === '' ? 'unscheduled' : !node.known ? 'gone' : ready === 'true' ? 'Ready' : 'NotReady';
    const counts = Object.entries(node.stages || {}).map(([i, n]) => [this.stages[i] || '?', n])
      .sort((a, b) => b[1] - a[1]);
    const total = counts.reduce((s, [, n]) => s + n, 0) || 1;
    return h('div', {class: `row node ${this.collapsed.has(name) ? 'collapsed' : ''}`,
                     dataset: {nodeRow: name, ready, pods: node.pods || 0}},
      h('div', {class: 'label'},
        h('button', {class: 'toggle', title: 'show or hide its pods', dataset: {toggle: name}},
          this.collapsed.has(name) ? '▸' : '▾'),
        h('span', {class: `dot ${state}`, title: state}),
        h('span', {class: 'node-name'}, name || '(not scheduled)'),
        h('span', {class: 'count'}, `${node.pods || 0} pods`)),
      h('div', {class: 'track counts', title: counts.map(([s, n]) => `${s}: ${n}`).join(', ')},
        h('div', {class: 'count-bar', style: {width: `${(100 * (node.pods || 0)) / this.maxPods}%`}},
          counts.map(([stage, n]) => h('div', {class: 'count-seg',
            style: {width: `${(100 * n) / total}%`, background: stageColour(stage)}}, n / total > 0.08 ? `${stage} ${n}` : '')))));
  }

  podRow(r, t0, span, now) {
    const stage = this.stages[r[STAGE]] || '';
    const segs = [];
    const flat = r[STAGES];
    for (let i = 0; i < flat.length; i += 4) {
      // stage times are milliseconds after the pod's creation
      const name = this.stages[flat[i]] || '', start = r[CREATED] + flat[i + 1] / 1000;
      const end = flat[i + 2] !== null ? r[CREATED] + flat[i + 2] / 1000 : r[DELETED] ? start : now;
      if (end < t0) continue;
      const left = Math.max(0, (start - t0) / span);
      const width = Math.max((Math.min(end, now) - Math.max(start, t0)) / span, 0.002);
      segs.push(h('div', {class: `seg ${flat[i + 3] ? 'failed' : ''}`, dataset: {stageName: name},
        title: `${name} at ${clock(start)} for ${duration(end - start)}`,
        style: {left: `${left * 100}%`, width: `${width * 100}%`, background: stageColour(name, flat[i + 3])}}));
    }
    return h('div', {class: `row pod ${r[DELETED] ? 'deleted' : ''}`,
                     dataset: {pod: r[KEY], stage, phase: r[PHASE], node: r[NODE], deleted: r[DELETED] ? 'true' : 'false'}},
      h('div', {class: 'label'},
        h('a', {href: `/ui/pods/${encodeURIComponent(r[NS])}/${encodeURIComponent(r[NAME])}`, class: 'pod-link'}, r[NAME]),
        h('span', {class: 'ns'}, r[NS]),
        h('span', {class: 'stage-name', style: {color: stageColour(stage)}}, stage)),
      h('div', {class: 'track'}, segs));
  }

  drawAxis(t0, span) {
    const step = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].find((s) => span / s <= 8) || 14400;
    const ticks = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t0 + span; t += step) {
      ticks.push(h('span', {class: 'tick', style: {left: `${((t - t0) / span) * 100}%`}}, clock(t)));
    }
    this.axis.replaceChildren(...ticks);
  }

  /** What needs every pod (the oldest creation, counts by stage): only after the data changed. */
  stats() {
    this.statsDirty = false;
    const counts = new Map();
    let oldest = Infinity;
    for (const r of this.pods.values()) {
      const s = this.stages[r[STAGE]] || '';
      counts.set(s, (counts.get(s) || 0) + 1);
      if (r[CREATED] && r[CREATED] < oldest) oldest = r[CREATED];
    }
    this.oldest = oldest;
    const ready = [...this.nodes.values()].filter((n) => n.ready === true).length;
    const known = [...this.nodes.values()].filter((n) => n.known).length;
    this.summary.textContent = `${this.pods.size} pods on ${known} nodes (${ready} Ready)`;
    const legend = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([s, n]) =>
      h('span', {class: 'key'}, h('i', {style: {background: stageColour(s)}}), `${s} ${n}`));
    this.legend.replaceChildren(...legend);
  }

  click(e) {
    const toggle = e.target.closest('[data-toggle]');
    if (toggle) {
      const name = toggle.dataset.toggle;
      if (this.collapsed.has(name)) this.collapsed.delete(name); else this.collapsed.add(name);
      this.orderDirty = true;
      this.schedule();
      return;
    }
    const link = e.target.closest('a.pod-link');
    if (link && !e.ctrlKey && !e.metaKey) { e.preventDefault(); navigate(link.getAttribute('href')); }
  }
}
