// A pod's page: its stages on a timeline, its network port, its events, the field diffs of every
// recorded write (from the trace), and its logs. Re-read when the stream says the pod changed.

import {getJSON, getText, stream} from './api.js';
import {clock, duration, h, stageColour} from './dom.js';

const value = (v) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
const LONG = 160;  // characters of a diff value shown; the whole value is its tooltip
const cell = (cls, v) => {
  const text = value(v);
  return h('td', {class: cls, title: text.length > LONG ? text : null}, text.length > LONG ? `${text.slice(0, LONG)}…` : text);
};
const epoch = (ts) => (ts ? Date.parse(ts) / 1000 : null);

export class PodPage {
  constructor(root, namespace, name, setState) {
    this.root = root;
    this.namespace = namespace;
    this.name = name;
    this.logsLoaded = false;
    this.pending = 0;
    this.root.replaceChildren(h('p', {class: 'muted'}, 'loading…'));
    this.logBox = h('pre', {class: 'logs', dataset: {logs: ''}}, '');
    this.load();
    this.stop = stream(`/ui/api/stream?pod=${encodeURIComponent(`${namespace}/${name}`)}`, {
      snapshot: () => {}, update: () => this.soon(), state: setState});
  }

  destroy() { this.stop(); clearTimeout(this.pending); }

  soon() {  // a burst of changes is one re-read
    if (!this.pending) this.pending = setTimeout(() => { this.pending = 0; this.load(); }, 300);
  }

  async load() {
    let data;
    try {
      data = await getJSON(`/ui/api/pods/${encodeURIComponent(this.namespace)}/${encodeURIComponent(this.name)}`);
    } catch (err) {
      this.root.replaceChildren(h('p', {class: 'error'}, `${this.namespace}/${this.name}: ${err.message}`));
      return;
    }
    const scroll = window.scrollY;
    this.root.replaceChildren(this.header(data), this.timeline(data.trace), this.network(data),
      this.events(data.events), this.changes(data.trace), this.logs(data));
    window.scrollTo(0, scroll);
    if (!this.logsLoaded && data.canLogs && data.pod?.spec?.nodeName) this.fetchLogs(data);
  }

  header({pod, trace, forbidden}) {
    const st = trace?.status || {};
    const stages = st.stages || [];
    const current = stages.length ? stages[stages.length - 1].name : '';
    const phase = pod?.status?.phase || st.phase || '';
    const fields = [
      ['namespace', this.namespace], ['node', pod?.spec?.nodeName || st.nodeName || '(not scheduled)'],
      ['phase', phase], ['stage', current], ['pod IP', pod?.status?.podIP],
      ['created', pod?.metadata?.creationTimestamp || trace?.metadata?.creationTimestamp],
      ['uid', pod?.metadata?.uid || st.podUID]];
    return h('section', {class: 'pod-head', dataset: {podPage: `${this.namespace}/${this.name}`, stage: current}},
      h('h1', {}, this.name, st.deleted || !pod ? h('span', {class: 'badge gone'}, 'deleted') : null),
      h('dl', {}, fields.filter(([, v]) => v).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      forbidden?.length ? h('p', {class: 'muted'}, `not allowed to read: ${forbidden.join(', ')}`) : null,
      !trace ? h('p', {class: 'muted'}, 'No trace for this pod (tracing is off, or it is older than the retention).') : null);
  }

  timeline(trace) {
    const stages = trace?.status?.stages || [];
    if (!stages.length) return h('section', {});
    const starts = stages.map((s) => epoch(s.start));
    const t0 = starts[0];
    const ends = stages.map((s, i) => (s.durationSeconds != null ? starts[i] + s.durationSeconds : Date.now() / 1000));
    const span = Math.max(Math.max(...ends) - t0, 0.001);
    const bar = h('div', {class: 'stagebar'}, stages.map((s, i) => h('div', {
      class: `seg ${s.failed ? 'failed' : ''}`, title: `${s.name}: ${duration(ends[i] - starts[i])}`,
      style: {left: `${((starts[i] - t0) / span) * 100}%`, width: `${Math.max(((ends[i] - starts[i]) / span) * 100, 0.3)}%`,
              background: stageColour(s.name, s.failed)}})));
    const rows = stages.map((s) => h('tr', {dataset: {stageName: s.name}, class: s.failed ? 'failed' : ''},
      h('td', {}, h('i', {class: 'swatch', style: {background: stageColour(s.name, s.failed)}}), s.name),
      h('td', {class: 'num'}, `+${duration(s.offsetSeconds || 0) || '0ms'}`),
      h('td', {class: 'num'}, s.durationSeconds == null ? 'now' : duration(s.durationSeconds)),
      h('td', {}, s.writer || ''), h('td', {}, [s.reason, s.message].filter(Boolean).join(': '))));
    return h('section', {},
      h('h2', {}, 'Stages'), bar,
      h('table', {class: 'grid'}, h('thead', {}, h('tr', {}, ['stage', 'at', 'lasted', 'by', 'why'].map((c) => h('th', {}, c)))),
        h('tbody', {}, rows)));
  }

  network({network, port}) {
    const doc = network?.port && typeof network.port === 'object' ? network.port : {};
    const subnet = network?.subnet && typeof network.subnet === 'object' ? network.subnet : doc.subnet || {};
    const ips = (port?.spec?.fixedIPs || []).map((ip) => ip.ipAddress)
      .concat(port ? [] : (doc.fixed_ips || []).map((ip) => ip.ip_address));
    const fields = [
      ['port', port?.metadata?.name || doc.name], ['port id', doc.id || port?.metadata?.uid],
      ['status', port?.status?.phase || doc.status], ['addresses', ips.join(', ')],
      ['MAC', port?.spec?.macAddress || doc.mac_address], ['host', port?.spec?.hostID || doc['binding:host_id']],
      ['subnet', subnet.name || subnet.id || port?.spec?.subnet], ['CIDR', subnet.cidr], ['gateway', subnet.gateway_ip],
      ['security groups', (port?.spec?.securityGroups || doc.security_groups || []).join(', ')]];
    const shown = fields.filter(([, v]) => v);
    return h('section', {dataset: {network: ''}}, h('h2', {}, 'Network'),
      shown.length ? h('dl', {}, shown.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))
        : h('p', {class: 'muted'}, 'No port yet.'));
  }

  events(events) {
    return h('section', {}, h('h2', {}, `Events (${events.length})`),
      events.length ? h('table', {class: 'grid'},
        h('thead', {}, h('tr', {}, ['type', 'reason', 'from', 'count', 'last', 'message'].map((c) => h('th', {}, c)))),
        h('tbody', {}, events.map((e) => h('tr', {class: e.type === 'Warning' ? 'warning' : '', dataset: {event: e.reason}},
          h('td', {}, e.type), h('td', {}, e.reason), h('td', {}, e.source?.component || e.reportingComponent || ''),
          h('td', {class: 'num'}, e.count || 1), h('td', {}, e.lastTimestamp ? clock(epoch(e.lastTimestamp)) : ''),
          h('td', {}, e.message)))))
        : h('p', {class: 'muted'}, 'None.'));
  }

  changes(trace) {
    const records = trace?.status?.records || [];
    const items = records.slice().reverse().map((r) => h('li', {class: 'record', dataset: {kind: r.kind, verb: r.verb}},
      h('div', {class: 'record-head'},
        h('span', {class: 'num'}, `+${duration(r.offsetSeconds || 0) || '0ms'}`),
        h('b', {}, `${r.verb} ${r.kind}/${r.name}`),
        h('span', {class: 'muted'}, `by ${r.writer || '?'}${r.user && r.user !== r.writer ? ` (${r.user})` : ''}, rv ${r.resourceVersion}`)),
      (r.diff || []).length ? h('details', {open: r.verb !== 'create'},
        h('summary', {}, `${r.diff.length} field${r.diff.length === 1 ? '' : 's'}`),
        h('table', {class: 'diff'}, h('tbody', {}, r.diff.map((d) =>
          h('tr', {dataset: {diffPath: d.path, op: d.op}},
            h('td', {class: 'op'}, d.op), h('td', {class: 'path'}, d.path),
            cell('old', d.old), h('td', {class: 'arrow'}, '→'), cell('new', d.new))))))
        : null));
    return h('section', {}, h('h2', {}, `Changes (${records.length} writes, newest first)`),
      items.length ? h('ol', {class: 'records'}, items) : h('p', {class: 'muted'}, 'None recorded.'));
  }

  logs({pod, canLogs}) {
    const containers = [...(pod?.spec?.initContainers || []), ...(pod?.spec?.containers || [])].map((c) => c.name);
    if (!this.select) {
      this.select = h('select', {class: 'container'}, containers.map((c) => h('option', {value: c}, c)));
      this.reload = h('button', {type: 'button', onclick: () => this.fetchLogs({pod, canLogs})}, 'Reload');
    }
    return h('section', {}, h('h2', {}, 'Logs'),
      !canLogs ? h('p', {class: 'muted'}, 'Not allowed to read pods/log.')
        : !pod?.spec?.nodeName ? h('p', {class: 'muted'}, 'Not on a node yet.')
          : [h('div', {class: 'toolbar'}, this.select, this.reload), this.logBox]);
  }

  async fetchLogs() {
    this.logsLoaded = true;
    const container = this.select?.value || '';
    const url = `/ui/api/pods/${encodeURIComponent(this.namespace)}/${encodeURIComponent(this.name)}/log?` +
      new URLSearchParams({container, tailLines: '500'});
    this.logBox.textContent = (await getText(url)) || '(empty)';
  }
}
