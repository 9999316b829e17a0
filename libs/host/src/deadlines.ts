/** The longest wait setTimeout takes as it is (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Something with a deadline: the fields Deadlines keeps on it (no object of its own). */
export interface Deadline {
  /** When it expires, on the clock Deadlines was given (performance.now() by default). */
  deadlineAt?: number;
  /** Its neighbours in its lane, and the lane; undefined once removed or expired. */
  deadlinePrev?: Deadline;
  deadlineNext?: Deadline;
  deadlineLane?: Lane;
  /** Called once when the deadline passes without a remove(). */
  expire(): void;
}

/** The deadlines of one duration, in the order they were added, which is their deadlines' order. */
class Lane {
  head: Deadline | undefined;
  tail: Deadline | undefined;
  /** Fires at or before the first deadline (earlier when that one was removed). */
  timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {}
}

/**
 * Deadlines of many pending things without a timer each. Node keeps one list per duration and
 * drops it when it empties, so a client with one request at a time (a ping loop, a shell's
 * commands one after another) made and dropped a timer, a list and a priority-queue entry per
 * request. Here the deadlines of one duration sit in the order they were added (their deadlines'
 * order) in a list threaded through the things themselves, with one timer for the lane, armed for
 * its first deadline: add and remove are a few field writes, and a lane whose last deadline went
 * keeps its timer unref'd (it does not hold the process open) until it fires, finds nothing and
 * is dropped. While a lane holds a deadline its timer is ref'd, as a timer per request was.
 */
export class Deadlines {
  private readonly lanes = new Map<number, Lane>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Calls d.expire() in ms milliseconds unless d is removed first (once per add). As with
   * setTimeout, a duration that is not a positive finite number expires at once.
   */
  add(d: Deadline, ms: number): void {
    if (!(ms > 0 && ms < Infinity)) {
      ms = 0;
    }
    this.remove(d);
    let lane = this.lanes.get(ms);
    if (lane === undefined) {
      lane = new Lane(ms);
      this.lanes.set(ms, lane);
    }
    d.deadlineAt = this.now() + ms;
    d.deadlineLane = lane;
    d.deadlinePrev = lane.tail;
    d.deadlineNext = undefined;
    if (lane.tail === undefined) {
      lane.head = d;
    } else {
      lane.tail.deadlineNext = d;
    }
    lane.tail = d;
    this.arm(lane);
  }

  /** Forgets d's deadline; nothing if it has none (removed, expired, never added). */
  remove(d: Deadline): void {
    const lane = d.deadlineLane;
    if (lane === undefined) {
      return;
    }
    this.unlink(lane, d);
    if (lane.head === undefined) {
      lane.timer?.unref();
    }
  }

  /** How many deadlines are pending (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const lane of this.lanes.values()) {
      for (let d = lane.head; d !== undefined; d = d.deadlineNext) {
        n++;
      }
    }
    return n;
  }

  private unlink(lane: Lane, d: Deadline): void {
    const prev = d.deadlinePrev;
    const next = d.deadlineNext;
    if (prev === undefined) {
      lane.head = next;
    } else {
      prev.deadlineNext = next;
    }
    if (next === undefined) {
      lane.tail = prev;
    } else {
      next.deadlinePrev = prev;
    }
    d.deadlinePrev = undefined;
    d.deadlineNext = undefined;
    d.deadlineLane = undefined;
  }

  /**
   * Makes the lane's timer hold the process and fire no later than its first deadline. A timer
   * already there does: it was armed for a deadline of this lane, and every later one is later.
   */
  private arm(lane: Lane): void {
    if (lane.timer !== undefined) {
      lane.timer.ref();
      return;
    }
    // Whole milliseconds, at least one (a timer may fire a little before the deadline by this
    // clock, and is then armed again) and at most what setTimeout takes (a later deadline
    // takes several).
    const wait = Math.ceil(lane.head!.deadlineAt! - this.now());
    lane.timer = setTimeout(() => this.fire(lane), Math.min(MAX_TIMER_MS, Math.max(1, wait)));
  }

  private fire(lane: Lane): void {
    lane.timer = undefined;
    const now = this.now();
    while (lane.head !== undefined && lane.head.deadlineAt! <= now) {
      const d = lane.head;
      this.unlink(lane, d);
      d.expire();
    }
    if (lane.head !== undefined) {
      this.arm(lane);
    } else if (this.lanes.get(lane.ms) === lane) {
      this.lanes.delete(lane.ms);
    }
  }
}
