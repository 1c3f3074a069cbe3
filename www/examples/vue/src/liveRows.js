import { onMounted, onUnmounted, ref, shallowRef } from 'vue';
import { subscribe } from 'pgfeed';

/**
 * A tracked table's rows by id, kept live: a snapshot from your API
 * ({[key]: rows, cursor}, read in one transaction), then the feed's events
 * after that cursor, applied by id. On a reset (the events after the cursor
 * were pruned away) it starts over from a fresh snapshot.
 */
export function useLiveRows(api, channel, { feed: base = '/feed', key = channel } = {}) {
  const rows = shallowRef(new Map());
  const status = ref('connecting');
  let feed = null;
  let gone = false;
  const apply = ({ type, data }) => {
    const next = new Map(rows.value); // set/delete by id: replaying an event is harmless
    if (type === 'delete') next.delete(data.old.id);
    else next.set(data.new.id, data.new);
    rows.value = next;
  };
  const start = async () => {
    feed?.close();
    try {
      const res = await fetch(api, { cache: 'no-store' });
      if (!res.ok) throw new Error(`${api}: ${res.status}`);
      const snap = await res.json();
      if (gone) return;
      rows.value = new Map(snap[key].map((row) => [row.id, row]));
      feed = subscribe(base, channel, {
        since: snap.cursor,
        onEvent: apply,
        onStatus: (s) => { status.value = s; },
        onReset: start,
      });
    } catch {
      if (!gone) setTimeout(start, 2000); // the API is down: try again
    }
  };
  onMounted(start);
  onUnmounted(() => { gone = true; feed?.close(); });
  return { rows, status };
}

/**
 * The newest events of a channel from now on, and how many arrived since
 * markRead(): a notification list with a badge.
 */
export function useNotifications(channel, { feed: base = '/feed', keep = 20 } = {}) {
  const items = ref([]);
  const unread = ref(0);
  let feed = null;
  onMounted(() => {
    feed = subscribe(base, channel, {
      onEvent: (event) => {
        items.value = [event, ...items.value].slice(0, keep);
        unread.value++;
      },
    });
  });
  onUnmounted(() => feed?.close());
  return { items, unread, markRead: () => { unread.value = 0; } };
}
