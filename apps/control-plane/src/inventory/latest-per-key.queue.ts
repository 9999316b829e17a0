/**
 * Runs jobs one at a time per key, in arrival order, keeping only the newest job waiting for
 * each key. Heartbeats, agent events and telemetry each carry a whole snapshot, so when a burst
 * arrives while one is being written, only the last of the burst needs writing.
 */
export class LatestPerKeyQueue {
  private readonly lanes = new Map<string, { pending: (() => Promise<void>) | undefined }>();
  private readonly idleWaiters = new Set<() => void>();

  constructor(
    private readonly onError: (key: string, err: unknown) => void,
    private readonly onCoalesced: (key: string) => void = () => undefined,
  ) {}

  /** Keys with a job running. */
  get size(): number {
    return this.lanes.size;
  }

  push(key: string, job: () => Promise<void>): void {
    const lane = this.lanes.get(key);
    if (lane) {
      if (lane.pending) {
        this.onCoalesced(key);
      }
      lane.pending = job;
      return;
    }
    const fresh = { pending: undefined as (() => Promise<void>) | undefined };
    this.lanes.set(key, fresh);
    void this.drain(key, fresh, job);
  }

  /** Resolves when no job runs or waits (for shutdown). */
  idle(): Promise<void> {
    if (this.lanes.size === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.add(resolve));
  }

  private async drain(
    key: string,
    lane: { pending: (() => Promise<void>) | undefined },
    first: () => Promise<void>,
  ): Promise<void> {
    let job: (() => Promise<void>) | undefined = first;
    while (job) {
      try {
        await job();
      } catch (err) {
        this.onError(key, err);
      }
      job = lane.pending;
      lane.pending = undefined;
    }
    this.lanes.delete(key);
    if (this.lanes.size === 0) {
      for (const resolve of this.idleWaiters) {
        resolve();
      }
      this.idleWaiters.clear();
    }
  }
}
