// Small DOM helpers shared by the pages: element building, time formatting, stage colours.

/** h('div', {class: 'x', dataset: {pod: 'a'}, onclick: f}, child, 'text', [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') Object.assign(el.style, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** 0.0123 -> "12ms", 75 -> "1m15s" */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)}s`;
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  if (m < 60) return `${m}m${s}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}

/** HH:MM:SS local time (by hand: toLocaleTimeString costs tens of microseconds, and rows have many). */
export function clock(epoch) {
  const d = new Date(epoch * 1000);
  const two = (n) => (n < 10 ? '0' : '') + n;
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

// Stage colours: the stages of docs/tracing.md by meaning (waiting greys, node work blues,
// running greens, ending purples, failures reds); an unknown stage gets a stable hue of its own.
const COLOURS = {
  Created: '#9aa3b5', Pending: '#9aa3b5', Unschedulable: '#d9534f', Scheduled: '#5b8def',
  PortAllocated: '#4aa3c7', PortActive: '#3fb5b5', SandboxCreated: '#38a3a5', VolumesMounted: '#6c8ebf',
  Pulling: '#8e7cc3', Pulled: '#7e6bc4', ContainerCreating: '#e0a030', Started: '#58b368', Running: '#3e9e4f',
  Ready: '#2e8b3e', NotReady: '#c9a227', Terminating: '#e07b39', Killing: '#e07b39', Succeeded: '#7a5cc4',
  Completed: '#7a5cc4', Failed: '#c0392b', Deleted: '#596273', Evicted: '#b03a2e', OOMKilled: '#b03a2e',
  CrashLoopBackOff: '#c0392b', ErrImagePull: '#c0392b', ImagePullBackOff: '#c0392b', Unknown: '#777',
};

export function stageColour(name, failed) {
  if (COLOURS[name]) return COLOURS[name];
  if (failed) return '#c0392b';
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 55% 55%)`;
}

/** Go to a UI path without reloading (app.js routes it). */
export function navigate(path) {
  history.pushState(null, '', path);
  window.dispatchEvent(new Event('popstate'));
}
