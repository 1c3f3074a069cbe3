import { useCallback, useEffect, useState } from 'react';
import { subscribe } from 'pgfeed';

/**
 * The newest events of a channel from now on, and how many arrived since
 * markRead(): a notification list with a badge.
 */
export function useNotifications(channel, { feed: base = '/feed', keep = 20 } = {}) {
  const [items, setItems] = useState([]);
  const [unread, setUnread] = useState(0);
  useEffect(() => {
    const feed = subscribe(base, channel, {
      onEvent: (event) => {
        setItems((list) => [event, ...list].slice(0, keep));
        setUnread((n) => n + 1);
      },
    });
    return () => feed.close();
  }, [channel, base, keep]);
  const markRead = useCallback(() => setUnread(0), []);
  return { items, unread, markRead };
}
