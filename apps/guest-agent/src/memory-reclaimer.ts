// Gives memory back to the guest after heavy work.
//
// A 64 MiB command output drained past its cap, or a file transfer, goes through thousands of
// short-lived buffers. V8 frees their memory only when a full GC finds them dead, and it sees
// no reason for one while the agent sits idle: the agent then keeps 30-80 MiB it no longer
// uses, for as long as the VM runs. So once work that moved at least `afterBytes` is over and
// the agent has been idle for `idleMs`, one full GC runs. (The launcher sets glibc's mmap
// threshold, so the buffers it frees go back to the kernel instead of malloc's free lists.)
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AgentPayload } from '@lq/proto';
import type { Logger } from './logger.js';

export interface ReclaimerOptions {
  /** Bytes of work after which an idle agent collects; 0 turns reclaiming off. */
  afterBytes: number;
  /** How long the agent must be idle (no request in flight) before it collects. */
  idleMs: number;
  /** A full, synchronous garbage collection (v8FullGc() outside tests). */
  collect: () => void;
  log?: Logger;
}

export class MemoryReclaimer {
  private inFlight = 0;
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Collections run so far (for tests and logs). */
  collections = 0;

  constructor(private readonly options: ReclaimerOptions) {}

  /** A request starts: no collection while it runs. */
  begin(): void {
    this.inFlight++;
    this.cancelTimer();
  }

  /** A request ended after moving `bytes` (output drained, file data in or out). */
  end(bytes: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.pendingBytes += bytes;
    this.schedule();
  }

  /** Stops a pending collection (agent stopping). */
  close(): void {
    this.cancelTimer();
  }

  private schedule(): void {
    const { afterBytes, idleMs } = this.options;
    if (afterBytes === 0 || this.inFlight > 0 || this.pendingBytes < afterBytes) {
      return;
    }
    this.cancelTimer();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.inFlight > 0) {
        return;
      }
      const work = this.pendingBytes;
      this.pendingBytes = 0;
      this.collections++;
      const rss = process.memoryUsage.rss();
      const t0 = performance.now();
      this.options.collect();
      this.options.log?.debug('idle after heavy work: collected garbage', {
        workMiB: Math.round(work / 2 ** 20),
        ms: Math.round(performance.now() - t0),
        rssBeforeMiB: Math.round(rss / 2 ** 20),
        rssAfterMiB: Math.round(process.memoryUsage.rss() / 2 ** 20),
      });
    }, idleMs);
    this.timer.unref();
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

/** Bytes a request moved through the agent's memory: what makes a collection worth it. */
export function workBytes(request: AgentPayload, result: AgentPayload | undefined): number {
  let bytes = 0;
  if (request.case === 'fileWrite') {
    bytes += request.value.data.length;
  } else if (request.case === 'execute') {
    bytes += request.value.stdin.length;
  }
  if (result?.case === 'fileReadResponse') {
    bytes += result.value.data.length;
  } else if (result?.case === 'executeResponse') {
    // Everything the command printed passed through the agent, capped or not.
    bytes += Number(result.value.stdoutTotalBytes + result.value.stderrTotalBytes);
  }
  return bytes;
}

let fullGc: (() => void) | undefined;

/** V8's full GC, as --expose-gc gives it; exposed on first use. */
export function v8FullGc(): void {
  if (fullGc === undefined) {
    setFlagsFromString('--expose-gc');
    fullGc = runInNewContext('gc') as () => void;
  }
  fullGc();
}
