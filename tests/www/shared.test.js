// @ts-check
/**
 * Unit tests of the connection that tabs share (SharedFeed, Hub in
 * www/pgfeed.js): several fake tabs in one realm, each with its own lock
 * handle and BroadcastChannel endpoint, over one fake clock, server and
 * EventSource class.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { subscribe, SharedFeed, Feed } from '../../www/pgfeed.js';
import { FakeClock, FakeLockManager, FakeServer, fakeBroadcastBus, fakeEventSource, flush, makeEnv, page, ev } from './fakes.js';

/** One browser: tabs sharing a lock manager, a BroadcastChannel bus, the clock, the server and EventSource. */
function browser() {
  const clock = new FakeClock();
  const server = new FakeServer();
  const ES = fakeEventSource();
  const locks = new FakeLockManager();
  const bus = fakeBroadcastBus();
  /** @type {ReturnType<typeof makeEnv>[]} */
  const tabs = [];
  const openTab = () => {
    const env = makeEnv({ clock, server, EventSource: ES, locks: locks.tab(), BroadcastChannel: bus.tab() });
    tabs.push(env);
    return env;
  };
  /** Lets messages, lock grants and the leader's gathering delay run. */
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await flush();
      await clock.advance(60);
    }
  };
  /** The EventSources still open. */
  const streams = () => ES.instances.filter((/** @type {any} */ es) => !es.closed);
  /**
   * The browser discards a tab without any goodbye (a crash, a kill): its
   * messages stop, its locks are released. What it had opened is closed by
   * the caller (a fake EventSource does not know its tab).
   */
  const crash = (/** @type {ReturnType<typeof makeEnv>} */ env) => {
    bus.closeTab(env.deps.BroadcastChannel);
    locks.closeTab(env.deps.locks);
  };
  return { clock, server, ES, locks, openTab, tabs, settle, streams, crash };
}

const versions = (/** @type {any[]} */ events) => events.map((e) => `${e.channel}:${e.version}`);

describe('shared connection', () => {
  test('tabs elect one leader that holds the only stream, for the union of their channels', async () => {
    const b = browser();
    const [a, c, d] = [b.openTab(), b.openTab(), b.openTab()];
    const fa = subscribe('/feed', 'orders', { ...a.callbacks, since: 10 });
    const fc = subscribe('/feed', 'orders', { ...c.callbacks, since: 10 });
    const fd = subscribe('/feed', 'user:42', { ...d.callbacks, since: 3 });
    assert.ok(fa instanceof SharedFeed);
    await b.settle();
    assert.equal(b.streams().length, 1, 'one connection for three tabs');
    const es = b.streams()[0];
    assert.equal(es.url, '/feed/?channel=orders&channel=user:42&since=orders=10,user:42=3');
    es.open();
    es.message(ev('orders', 11), 'orders=11,user:42=3');
    es.message(ev('user:42', 4), 'orders=11,user:42=4');
    es.message(ev('orders', 12), 'orders=12,user:42=4');
    await b.settle();
    assert.deepEqual(versions(a.events), ['orders:11', 'orders:12']);
    assert.deepEqual(versions(c.events), ['orders:11', 'orders:12']);
    assert.deepEqual(versions(d.events), ['user:42:4']);
    for (const f of [fa, fc, fd]) assert.equal(f.status, 'live');
    assert.equal(fc.transport, 'sse');
    assert.equal(fa.cursor, '12');
    assert.equal(fd.cursor, '4');
    for (const f of [fa, fc, fd]) f.close();
    await b.settle();
    assert.equal(b.streams().length, 0);
    assert.equal(b.locks.holder('pgfeed:http://localhost/feed'), null);
  });

  test('the leader tab goes away: another takes over from the lowest cursor, nothing lost or repeated', async () => {
    const b = browser();
    const [a, c, d] = [b.openTab(), b.openTab(), b.openTab()];
    subscribe('/feed', 'orders', { ...a.callbacks, since: 10 });
    const fc = subscribe('/feed', 'orders', { ...c.callbacks, since: 10 });
    const fd = subscribe('/feed', 'orders', { ...d.callbacks, since: 10 });
    await b.settle();
    const first = b.streams()[0];
    first.open();
    first.message(ev('orders', 11), '11');
    first.message(ev('orders', 12), '12');
    await b.settle();
    // Tab a leads; it crashes after having delivered 13 to itself only.
    first.message(ev('orders', 13), '13');
    first.close();
    b.crash(a);
    await b.settle();
    const second = b.streams()[0];
    assert.ok(second && second !== first, 'a new leader opened its own stream');
    assert.equal(b.streams().length, 1);
    assert.equal(second.params.get('since'), '12', 'from the lowest cursor of the remaining tabs');
    second.open();
    second.message(ev('orders', 13), '13');
    second.message(ev('orders', 14), '14');
    await b.settle();
    for (const t of [c, d]) assert.deepEqual(versions(t.events), ['orders:11', 'orders:12', 'orders:13', 'orders:14']);
    assert.equal(fc.status, 'live');
    fc.close();
    fd.close();
  });

  test('a frozen leader hands over at once and queues again when it resumes', async () => {
    const b = browser();
    const [a, c] = [b.openTab(), b.openTab()];
    const fa = subscribe('/feed', 'orders', { ...a.callbacks, since: 5 });
    const fc = subscribe('/feed', 'orders', { ...c.callbacks, since: 5 });
    await b.settle();
    const first = b.streams()[0];
    first.open();
    first.message(ev('orders', 6), '6');
    await b.settle();
    a.doc.fire('freeze');
    await b.settle();
    assert.equal(first.closed, true, 'the frozen tab closed its stream');
    const second = b.streams()[0];
    assert.equal(second.params.get('since'), '6');
    assert.equal(b.locks.holder('pgfeed:http://localhost/feed'), c.deps.locks);
    second.open();
    second.message(ev('orders', 7), '7');
    await b.settle();
    a.doc.fire('resume');
    await b.settle();
    assert.deepEqual(versions(a.events), ['orders:6', 'orders:7'], 'the resumed tab follows as a follower');
    assert.deepEqual(versions(c.events), ['orders:6', 'orders:7']);
    assert.equal(b.streams().length, 1);
    fc.close();
    await b.settle();
    assert.equal(b.locks.holder('pgfeed:http://localhost/feed'), a.deps.locks, 'it leads again once the other tab is gone');
    assert.equal(b.streams().length, 1);
    fa.close();
  });

  test('a tab that subscribes later from an older cursor gets the events it lacks; the others no repeat', async () => {
    const b = browser();
    const [a, c] = [b.openTab(), b.openTab()];
    const fa = subscribe('/feed', 'orders', { ...a.callbacks, since: 20 });
    await b.settle();
    const first = b.streams()[0];
    first.open();
    first.message(ev('orders', 21), '21');
    first.message(ev('orders', 22), '22');
    await b.settle();
    const fc = subscribe('/feed', 'orders', { ...c.callbacks, since: 19 }); // its snapshot is older
    await b.settle();
    const second = b.streams()[0];
    assert.notEqual(second, first);
    assert.equal(second.params.get('since'), '19');
    second.open();
    for (const v of [20, 21, 22, 23]) second.message(ev('orders', v), String(v));
    await b.settle();
    assert.deepEqual(versions(a.events), ['orders:21', 'orders:22', 'orders:23']);
    assert.deepEqual(versions(c.events), ['orders:20', 'orders:21', 'orders:22', 'orders:23']);
    fa.close();
    fc.close();
  });

  test("since 'now' in a second tab starts where the shared connection stands", async () => {
    const b = browser();
    const [a, c] = [b.openTab(), b.openTab()];
    const fa = subscribe('/feed', 'orders', { ...a.callbacks });
    await b.settle();
    b.server.last.respond(200, page('orders', [], { head: 7 }), { ETag: '"7"' });
    await b.settle();
    const es = b.streams()[0];
    assert.equal(es.params.get('since'), '7');
    es.open();
    es.message(ev('orders', 8), '8');
    await b.settle();
    const fc = subscribe('/feed', 'orders', { ...c.callbacks });
    await b.settle();
    assert.equal(b.streams().length, 1, 'no reconnect for a channel already followed');
    assert.equal(b.streams()[0], es);
    assert.equal(fc.status, 'live', 'a tab arriving later learns the status');
    es.message(ev('orders', 9), '9');
    await b.settle();
    assert.deepEqual(versions(a.events), ['orders:8', 'orders:9']);
    assert.deepEqual(versions(c.events), ['orders:9']);
    assert.equal(fc.cursor, '9');
    fa.close();
    fc.close();
  });

  test('channel sets follow the tabs: a closed tab’s channel leaves the connection', async () => {
    const b = browser();
    const [a, c] = [b.openTab(), b.openTab()];
    const fa = subscribe('/feed', 'orders', { ...a.callbacks, since: 1 });
    const fc = subscribe('/feed', 'alerts', { ...c.callbacks, since: 5 });
    await b.settle();
    const both = b.streams()[0];
    assert.equal(both.params.getAll('channel').join(','), 'alerts,orders');
    both.open();
    both.message(ev('alerts', 6), 'alerts=6,orders=1');
    await b.settle();
    fc.close();
    await b.settle();
    const one = b.streams()[0];
    assert.notEqual(one, both);
    assert.equal(one.url, '/feed/orders?since=1');
    fa.close();
  });

  test('setTransport in a follower tab switches the shared connection; statuses reach every tab', async () => {
    const b = browser();
    const [a, c] = [b.openTab(), b.openTab()];
    const fa = subscribe('/feed', 'orders', { ...a.callbacks, since: 1 });
    const fc = subscribe('/feed', 'orders', { ...c.callbacks, since: 1 });
    await b.settle();
    b.streams()[0].open();
    await b.settle();
    fc.setTransport('poll');
    await b.settle();
    assert.equal(b.streams().length, 0);
    const poll = b.server.last;
    assert.equal(poll.params.has('wait'), false);
    poll.respond(200, page('orders', [2]), { ETag: '"2"' });
    await b.settle();
    assert.equal(fa.status, 'polling');
    assert.equal(fc.status, 'polling');
    assert.equal(fc.mode, 'poll');
    assert.deepEqual(versions(c.events), ['orders:2']);
    fa.close();
    fc.close();
  });

  test('a 403 for one channel reaches the tabs that follow it, which drop it', async () => {
    const b = browser();
    const [a, c] = [b.openTab(), b.openTab()];
    const fa = subscribe('/feed', 'orders', { ...a.callbacks, since: 1, transport: 'longpoll' });
    const fc = subscribe('/feed', 'user:bob', { ...c.callbacks, since: 1 });
    await b.settle();
    b.server.last.respond(403, { title: 'Forbidden', channel: 'user:bob' });
    await b.settle();
    assert.equal(a.errors.length, 0);
    assert.equal(c.errors[0].status, 403);
    assert.equal(fc.status, 'closed');
    assert.equal(b.server.last.url, '/feed/orders?since=1&wait=25');
    fa.close();
  });

  test('shared: false, or no Web Locks, keeps a connection per tab', async () => {
    const b = browser();
    const [a, c] = [b.openTab(), b.openTab()];
    const fa = subscribe('/feed', 'orders', { ...a.callbacks, since: 1, shared: false });
    c.deps.locks = null;
    const fc = subscribe('/feed', 'orders', { ...c.callbacks, since: 1 });
    assert.ok(fa instanceof Feed);
    assert.ok(fc instanceof Feed);
    await b.settle();
    assert.equal(b.streams().length, 2);
    fa.close();
    fc.close();
  });
});
