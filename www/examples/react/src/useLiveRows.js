import { useEffect, useState } from 'react';
import { subscribe } from 'pgfeed';

/**
 * A tracked table's rows by id, kept live: a snapshot from your API
 * ({[key]: rows, cursor}, read in one transaction), then the feed's events
 * after that cursor, applied by id. On a reset (the events after the cursor
 * were pruned away) it starts over from a fresh snapshot.
 */
export function useLiveRows(api, channel, { feed: base = '/feed', key = channel } = {}) {
  const [rows, setRows] = useState(() => new Map());
  const [status, setStatus] = useState('connecting');
  useEffect(() => {
    let feed = null;
    let gone = false;
    const apply = ({ type, data }) => setRows((m) => {
      const next = new Map(m); // set/delete by id: replaying an event is harmless
      if (type === 'delete') next.delete(data.old.id);
      else next.set(data.new.id, data.new);
      return next;
    });
    const start = async () => {
      feed?.close();
      try {
        const res = await fetch(api, { cache: 'no-store' });
        if (!res.ok) throw new Error(`${api}: ${res.status}`);
        const snap = await res.json();
        if (gone) return;
        setRows(new Map(snap[key].map((row) => [row.id, row])));
        feed = subscribe(base, channel, { since: snap.cursor, onEvent: apply, onStatus: setStatus, onReset: start });
      } catch {
        if (!gone) setTimeout(start, 2000); // the API is down: try again
      }
    };
    start();
    return () => { gone = true; feed?.close(); };
  }, [api, channel, base, key]);
  return { rows, status };
}
