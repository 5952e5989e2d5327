// The single-page app: routes /ui/ (the timeline) and /ui/pods/<ns>/<name> (a pod's page).

import {getJSON, stream} from './api.js';
import {h, navigate} from './dom.js';
import {Gantt} from './gantt.js';
import {PodPage} from './pod.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');
const conn = document.getElementById('conn');
let page = null;

function setState(state) {
  conn.dataset.state = state;
  conn.textContent = state;
}

function route() {
  page?.destroy();
  const m = location.pathname.match(/^\/ui\/pods\/([^/]+)\/([^/]+)\/?$/);
  if (m) {
    const [namespace, name] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])];
    crumbs.replaceChildren(h('a', {href: '/ui/', dataset: {nav: ''}}, 'timeline'), ' / ', `${namespace}/${name}`);
    document.title = `${name} · podlife`;
    page = new PodPage(main, namespace, name, setState);
    return;
  }
  crumbs.replaceChildren('timeline');
  document.title = 'podlife';
  const root = h('div', {class: 'gantt', id: 'gantt'});
  main.replaceChildren(root);
  const gantt = new Gantt(root);
  const stop = stream('/ui/api/stream', {snapshot: (m) => gantt.snapshot(m), update: (m) => gantt.update(m), state: setState});
  page = {destroy: () => { stop(); gantt.destroy(); }};
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (a && !e.ctrlKey && !e.metaKey) { e.preventDefault(); navigate(a.getAttribute('href')); }
});
window.addEventListener('popstate', route);
getJSON('/ui/api/whoami').then(({user}) => { document.getElementById('who').textContent = user.username; });
route();
