/** The session's sequences: numbering, the lowest sequence still waiting, and the in-flight bound. */
import { MAX_IN_FLIGHT_MUTATIONS, Sequencer } from './sequencer';

describe('Sequencer', () => {
  it('numbers mutations from 1 and names the lowest one still waiting as firstUnacked', async () => {
    const s = new Sequencer(7);
    const [a, b, c] = [await s.take(), await s.take(), await s.take()];
    expect([a, b, c]).toEqual([1, 2, 3]);
    expect(s.firstUnacked()).toBe(1);
    s.done(b);
    expect(s.firstUnacked()).toBe(1);
    s.done(a);
    expect(s.firstUnacked()).toBe(3);
    s.done(c);
    expect(() => s.firstUnacked()).toThrow(/no mutation in flight/);
    expect(() => s.done(c)).toThrow(/not in flight/);
  });

  it(`keeps at most ${MAX_IN_FLIGHT_MUTATIONS} in flight and hands out queued slots in order`, async () => {
    const s = new Sequencer(1);
    const taken = await Promise.all(Array.from({ length: MAX_IN_FLIGHT_MUTATIONS }, () => s.take()));
    const late: number[] = [];
    const waiting = [s.take().then((n) => late.push(n)), s.take().then((n) => late.push(n))];
    await new Promise((r) => setImmediate(r));
    expect(s.inFlight).toBe(MAX_IN_FLIGHT_MUTATIONS);
    expect(s.queued).toBe(2);
    expect(late).toEqual([]);
    s.done(taken[5]);
    s.done(taken[9]);
    await Promise.all(waiting);
    expect(late).toEqual([MAX_IN_FLIGHT_MUTATIONS + 1, MAX_IN_FLIGHT_MUTATIONS + 2]);
    expect(s.inFlight).toBe(MAX_IN_FLIGHT_MUTATIONS);
    expect(s.firstUnacked()).toBe(1);
  });
});
