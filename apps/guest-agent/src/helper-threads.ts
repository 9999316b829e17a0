import { readFileSync, readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import type { Logger } from './logger.js';

/**
 * The runtime's own housekeeping threads in the shipped executable (Bun: JavaScriptCore's JIT
 * compilers and heap pre-faulting, mimalloc's purge): they never do a request's work, and no
 * request waits for them. The garbage collector's marking helpers (HeapHelper) are left alone:
 * a collection waits for them. The thread pool (Bun Pool, libuv's) serves requests' I/O.
 */
export const HELPER_THREAD_NAMES: ReadonlySet<string> = new Set([
  'JITWorker',
  'JSCWarmUp',
  'mi-scavenger',
]);

export interface HelperThreadDeps {
  /** Where the process's threads are listed, one directory per thread id with its `comm`. */
  taskDir?: string;
  setPriority?: (tid: number, nice: number) => void;
  platform?: NodeJS.Platform;
}

/**
 * Runs the runtime's helper threads at a lower priority (helper_thread_nice): the agent's JIT
 * compiles and heap housekeeping then run when a CPU is free instead of taking one from the
 * guest's own work, or from the agent's main thread when a request arrives. Measured with
 * bench:peer's harness on a 2-core guest: the first 20,000 pings after start had a p99 of
 * 550–670 µs with the compilers at the guest's priority and 350–360 µs at nice 19. Linux only
 * (a thread's nice is set by its id there); threads that start later are lowered at the next
 * apply() (after start-up and at every idle reclaim).
 */
export class HelperThreads {
  private readonly lowered = new Set<number>();
  private readonly taskDir: string;
  private readonly setNice: (tid: number, nice: number) => void;
  private readonly enabled: boolean;

  constructor(
    /** The nice value to give them; 0 leaves them at the agent's own. */
    private readonly nice: number,
    private readonly log?: Logger,
    deps: HelperThreadDeps = {},
  ) {
    this.taskDir = deps.taskDir ?? '/proc/self/task';
    this.setNice = deps.setPriority ?? setPriority;
    this.enabled = nice > 0 && (deps.platform ?? process.platform) === 'linux';
  }

  /** Lowers the helper threads not lowered yet; returns how many it lowered now. */
  apply(): number {
    if (!this.enabled) {
      return 0;
    }
    let tids: string[];
    try {
      tids = readdirSync(this.taskDir);
    } catch {
      return 0;
    }
    let count = 0;
    for (const entry of tids) {
      const tid = Number(entry);
      if (!Number.isInteger(tid) || this.lowered.has(tid)) {
        continue;
      }
      let name: string;
      try {
        name = readFileSync(`${this.taskDir}/${entry}/comm`, 'utf8').trim();
      } catch {
        continue; // the thread ended
      }
      if (!HELPER_THREAD_NAMES.has(name)) {
        continue;
      }
      // Tried once per thread: a failure (a thread gone meanwhile) is not worth a retry.
      this.lowered.add(tid);
      try {
        this.setNice(tid, this.nice);
        count++;
      } catch (err) {
        this.log?.debug('could not lower a runtime helper thread', {
          thread: name,
          error: (err as Error).message,
        });
      }
    }
    return count;
  }
}
