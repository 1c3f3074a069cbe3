// A live orders table and a notification bell, each one hook over pgfeed.
// Both subscriptions (and those of every other tab) share one connection.
import { createRoot } from 'react-dom/client';
import { useLiveRows } from './useLiveRows.js';
import { useNotifications } from './useNotifications.js';

function App() {
  const { rows, status } = useLiveRows('/demo/orders', 'orders');
  const { items, unread, markRead } = useNotifications('notifications');
  const orders = [...rows.values()].sort((a, b) => b.id - a.id);
  return (
    <main>
      <header>
        <h1>Orders <small>React</small></h1>
        <span id="status" data-status={status}>{status}</span>
        <button id="bell" type="button" onClick={markRead} aria-label={`${unread} unread notifications`}>
          🔔 <span id="badge" data-count={unread} hidden={unread === 0}>{unread}</span>
        </button>
      </header>
      <section>
        <h2>Notifications</h2>
        <ul id="notifications">
          {items.map((n) => <li key={n.version} data-version={n.version}>{n.data?.text ?? n.type}</li>)}
        </ul>
      </section>
      <section>
        <h2>{orders.length} orders</h2>
        <table id="rows">
          <tbody>
            {orders.map((o) => (
              <tr key={o.id} data-id={o.id}><td>#{o.id}</td><td>{o.item}</td><td>{o.quantity}</td></tr>
            ))}
          </tbody>
        </table>
      </section>
    </main>
  );
}

createRoot(document.getElementById('app')).render(<App />);
