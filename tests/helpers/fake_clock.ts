import type { Clock } from "../../src/testing/mod.ts";

interface Timer {
  id: number;
  due: number;
  fn: () => void;
}

/** A clock whose time moves only when the test says so. */
export class FakeClock implements Clock {
  time = 0;
  timers: Timer[] = [];
  #next = 1;

  now = (): number => this.time;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const timer = { id: this.#next++, due: this.time + Math.max(0, ms), fn };
    this.timers.push(timer);
    return timer.id;
  };

  clearTimeout = (handle: unknown): void => {
    this.timers = this.timers.filter((t) => t.id !== handle);
  };

  /** Moves time forward by `ms`, running due timers in order and letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    await settle();
    for (let guard = 0; guard < 100_000; guard++) {
      this.timers.sort((a, b) => a.due - b.due || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.due > end) break;
      this.timers.shift();
      this.time = Math.max(this.time, next.due);
      next.fn();
      await settle();
    }
    this.time = end;
    await settle();
  }

  /**
   * As {@link FakeClock.advance}, faster for big fleets: every timer due at
   * one instant runs before promises settle (microtasks only: for code
   * that awaits no I/O, such as a fake fetch), and instants with nothing
   * due are skipped.
   */
  async advanceFast(ms: number): Promise<void> {
    const end = this.time + ms;
    await settle();
    for (let guard = 0; guard < 1_000_000; guard++) {
      this.timers.sort((a, b) => a.due - b.due || a.id - b.id);
      const first = this.timers[0];
      if (!first || first.due > end) break;
      this.time = Math.max(this.time, first.due);
      while (this.timers.length > 0 && this.timers[0].due <= this.time) {
        this.timers.shift()!.fn();
      }
      await settleFast();
    }
    this.time = end;
    await settle();
  }

  /** Jumps time forward without running timers, as a machine waking from sleep. */
  jump(ms: number): void {
    this.time += ms;
  }
}

/** Lets promise callbacks run, then one macrotask. */
async function settleFast(): Promise<void> {
  for (let i = 0; i < 200; i++) await Promise.resolve();
}

/** Lets pending promise callbacks (and a macrotask) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}
