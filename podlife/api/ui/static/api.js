// Talking to the server: JSON reads and the Server-Sent-Events stream (cookies go with both).

/** A JSON read; a lost session (401) reloads the page, which shows the login page. */
export async function getJSON(url) {
  const r = await fetch(url, {credentials: 'same-origin', headers: {Accept: 'application/json'}});
  if (r.status === 401) { location.reload(); throw new Error('logged out'); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || `${r.status}`);
  return body;
}

/** The log as text (or the error the API gave). */
export async function getText(url) {
  const r = await fetch(url, {credentials: 'same-origin'});
  const text = await r.text();
  if (r.ok) return text;
  try { return `(${JSON.parse(text).message})`; } catch { return `(${r.status} ${text})`; }
}

/**
 * The live stream: handlers get the snapshot, then each batched update. The browser reconnects by
 * itself (and gets a new snapshot); a stream refused for a lost session sends the user to log in.
 */
export function stream(url, {snapshot, update, state}) {
  const source = new EventSource(url);
  source.addEventListener('snapshot', (e) => snapshot(JSON.parse(e.data)));
  source.addEventListener('update', (e) => update(JSON.parse(e.data)));
  source.onopen = () => state('live');
  source.onerror = async () => {
    state(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    if (source.readyState === EventSource.CLOSED) {
      const r = await fetch('/ui/api/whoami', {credentials: 'same-origin'});
      if (r.status === 401) location.reload();
    }
  };
  return () => source.close();
}
