/** Bad input never crashes the core: it is dropped and counted, or refused with a named error. */
import { RaftConfigError, seededRandom, withDefaults } from './config';
import { TestCluster } from './testing/cluster';
import { EntryType, Message, MessageType, emptyMessage } from './types';

describe('bad input', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const follower = c.core('b');

  function dropsAs(reason: string, m: Message): void {
    const before = follower.droppedMessages()[reason] ?? 0;
    const status = JSON.stringify(follower.status());
    follower.step(m);
    expect(follower.droppedMessages()[reason]).toBe(before + 1);
    expect(JSON.stringify(follower.status())).toBe(status);
  }

  it('drops a forwarded request from a node outside the membership', () => {
    dropsAs('unknown_sender', { ...emptyMessage(MessageType.ReadIndex, 'stranger', 'b', 99), context: new Uint8Array([1]) });
  });

  it('drops a message addressed to someone else', () => {
    dropsAs('wrong_recipient', emptyMessage(MessageType.Heartbeat, 'a', 'c', 1));
  });

  it('drops a message with a stale term', () => {
    dropsAs('stale_term', { ...emptyMessage(MessageType.App, 'c', 'b', 0) });
  });

  it('drops malformed messages: unknown type, negative or fractional numbers, out-of-order entries, missing snapshot', () => {
    dropsAs('malformed', { ...emptyMessage(MessageType.App, 'a', 'b', 1), type: 77 as MessageType });
    dropsAs('malformed', { ...emptyMessage(MessageType.App, 'a', 'b', 1), index: -1 });
    dropsAs('malformed', { ...emptyMessage(MessageType.App, 'a', 'b', 1), commit: 1.5 });
    dropsAs('malformed', { ...emptyMessage(MessageType.App, 'a', 'b', 1), index: 1, entries: [{ index: 5, term: 1, type: EntryType.Normal, data: new Uint8Array() }] });
    dropsAs('malformed', emptyMessage(MessageType.Snap, 'a', 'b', 1));
    dropsAs('malformed', { ...emptyMessage(MessageType.App, 'a', 'b', 1), from: '' });
  });

  it('refuses a bad configuration naming the field', () => {
    expect(() => withDefaults({ id: '', random: seededRandom(1) })).toThrow(RaftConfigError);
    expect(() => withDefaults({ id: 'a', random: seededRandom(1), electionTicks: 0 })).toThrow(/electionTicks/);
    expect(() => withDefaults({ id: 'a', random: seededRandom(1), heartbeatTicks: 10, electionTicks: 10 })).toThrow(/heartbeatTicks/);
    expect(() => withDefaults({ id: 'a', random: seededRandom(1), maxInflightAppends: 1.5 })).toThrow(/maxInflightAppends/);
  });
});
