// A live orders table and a notification bell, each one composable over
// pgfeed. Both subscriptions (and those of every other tab) share one
// connection. The template is compiled in the browser (vue.esm-bundler).
import { computed, createApp } from 'vue';
import { useLiveRows, useNotifications } from './liveRows.js';

createApp({
  setup() {
    const { rows, status } = useLiveRows('/demo/orders', 'orders');
    const { items, unread, markRead } = useNotifications('notifications');
    const orders = computed(() => [...rows.value.values()].sort((a, b) => b.id - a.id));
    return { orders, status, items, unread, markRead };
  },
  template: `
    <main>
      <header>
        <h1>Orders <small>Vue</small></h1>
        <span id="status" :data-status="status">{{ status }}</span>
        <button id="bell" type="button" @click="markRead" :aria-label="unread + ' unread notifications'">
          🔔 <span id="badge" :data-count="unread" :hidden="unread === 0">{{ unread }}</span>
        </button>
      </header>
      <section>
        <h2>Notifications</h2>
        <ul id="notifications">
          <li v-for="n in items" :key="n.version" :data-version="n.version">{{ n.data?.text ?? n.type }}</li>
        </ul>
      </section>
      <section>
        <h2>{{ orders.length }} orders</h2>
        <table id="rows">
          <tbody>
            <tr v-for="o in orders" :key="o.id" :data-id="o.id"><td>#{{ o.id }}</td><td>{{ o.item }}</td><td>{{ o.quantity }}</td></tr>
          </tbody>
        </table>
      </section>
    </main>`,
}).mount('#app');
