import { Inject, Injectable, Logger } from '@nestjs/common';
import { subjects } from '@lq/proto';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { NatsService } from '../nats/nats.service.js';
import { OutputRedactor } from '@lq/audit';
import { chunkOf } from './execution-driver.js';
import { executionView, type FollowSink } from './execution-view.js';
import {
  ExecutionsRepository,
  FINAL_STATES,
  type ExecutionRow,
  type OutputChunk,
} from './executions.repository.js';

const FOLLOW_POLL_MS = 400;
/** After a live chunk went by, when to read the store again (past the driver's 200 ms flush). */
const WAKE_AFTER_MS = 250;
export const OUTPUT_PAGE = 500;
// Stored chunks read per query while following (up to 64 KiB each): a reader that lags is
// fed from the store a little at a time, not a whole API page per catch-up.
const FOLLOW_PAGE = 32;

/**
 * Follows an execution's output for a reader: the stored chunks after `afterSeq`, then live
 * ones from its node's subject as they come, in order and none lost (a live chunk ahead of a
 * gap waits for the store to fill it), then the end. Any replica can follow any execution.
 *
 * Everything is bounded: at most LQ_EXEC_FOLLOWERS_MAX followers per replica (one more is
 * refused, 503); at most LQ_EXEC_FOLLOW_HELD_MAX live chunks held ahead of a gap; and a reader
 * that lags (its sink says so) is sent nothing until it has caught up, then reads what it missed
 * from the store: the store, not this process, is the buffer of a slow reader.
 */
@Injectable()
export class ExecutionFollower {
  private readonly log = new Logger('executions');
  private open = 0;

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(ExecutionsRepository) private readonly repo: ExecutionsRepository,
    @Inject(OutputRedactor) private readonly redactor: OutputRedactor,
  ) {}

  /** Followers open on this replica. */
  get followers(): number {
    return this.open;
  }

  /** Starts following; returns a function that stops. The caller has checked access. */
  async follow(row: ExecutionRow, afterSeq: number, sink: FollowSink): Promise<() => void> {
    const { followersMax, followHeldMax } = this.config.output;
    if (this.open >= followersMax) {
      throw new VmGuestException(
        VmGuestErrorCode.STREAMS_FULL,
        `this replica already streams ${followersMax} execution outputs (LQ_EXEC_FOLLOWERS_MAX); read GET /api/executions/${row.id}/output pages instead, or retry`,
      );
    }
    this.open++;
    const id = row.id;
    let last = afterSeq;
    let stopped = false;
    // The reader lags: nothing is sent until its sink has drained.
    let paused = false;
    // Chunks went by unsent (paused, or too many held): read them from the store.
    let behind = false;
    // Past the execution's stored-output cap: only stored chunks go out.
    let capped = row.output_truncated;
    // Live chunks ahead of a gap (this follower subscribed after the chunk before them went
    // by) wait here until the stored output fills the gap: chunks go out in order, none lost.
    const held = new Map<number, OutputChunk>();
    const deliver = (c: OutputChunk) => {
      last = c.seq;
      if (!sink.chunk(c) && !paused) {
        paused = true;
        void sink.drained().then(() => {
          paused = false;
          behind = true;
          void check();
        });
      }
    };
    const send = (c: OutputChunk) => {
      deliver(c);
      for (let next = held.get(last + 1); next && !paused; next = held.get(last + 1)) {
        held.delete(next.seq);
        deliver(next);
      }
    };
    /** A stored chunk: the store is complete up to it, so it goes out whatever came before. */
    const stored = (c: OutputChunk) => {
      if (c.seq > last) {
        send(c);
      }
    };
    const live = (c: OutputChunk) => {
      if (c.seq <= last || capped) {
        return;
      }
      if (paused) {
        behind = true;
      } else if (c.seq === last + 1) {
        send(c);
      } else if (held.size < followHeldMax) {
        held.set(c.seq, c);
      } else {
        held.clear();
        behind = true;
      }
    };
    let wake: NodeJS.Timeout | undefined;
    // Only the node that runs it may publish there (NATS permissions, deploy/nats).
    const sub = this.nats.connection.subscribe(subjects.execOutput(row.node_id, id), {
      callback: (err, msg) => {
        if (err || stopped) {
          return;
        }
        if (this.redactor.enabled) {
          // Redaction matches across chunks (the driver holds an unfinished line back until it
          // ends), so a chunk as it went by is not what is stored: followers get the stored
          // chunks, and a live one only says that more is coming. The driver stores it within
          // its flush interval, so one check after that reads it (one per interval, however
          // many chunks go by: a check per chunk would query the store back to back).
          if (!wake) {
            wake = setTimeout(() => {
              wake = undefined;
              void check();
            }, WAKE_AFTER_MS);
          }
          return;
        }
        try {
          live(chunkOf(msg.data));
        } catch {
          // not an ExecOutputEvent
        }
      },
    });
    // The rest of the last page read from the store, kept while the reader lags (at most
    // FOLLOW_PAGE chunks), so a catch-up goes on where it stopped instead of reading it again.
    let page: OutputChunk[] = [];
    let pageFull = false;
    /** Sends stored chunks after `last` until the store has no more, or the reader lags. */
    const replay = async () => {
      while (!stopped && !paused) {
        if (page.length === 0) {
          page = await this.repo.output(id, last, FOLLOW_PAGE);
          pageFull = page.length === FOLLOW_PAGE;
        }
        while (page.length > 0 && !paused && !stopped) {
          stored(page.shift()!);
        }
        if (page.length > 0 || !pageFull) {
          return;
        }
      }
    };
    const stop = () => {
      if (!stopped) {
        this.open--;
      }
      stopped = true;
      clearInterval(timer);
      clearTimeout(wake);
      held.clear();
      page = [];
      if (!sub.isClosed()) {
        sub.unsubscribe();
      }
    };
    // The stored bytes at the last check: output stored since (a chunk that went by before this
    // follower subscribed and reached the store after its first replay) is read from the store,
    // even when no live chunk comes after it to show the gap.
    let storedBytes = -1;
    let checking = false;
    // A check asked for while one runs (the reader drained): run again right after it.
    let again = false;
    const check = async () => {
      if (stopped) {
        return;
      }
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        const current = await this.repo.get(id);
        capped ||= current?.output_truncated ?? false;
        const nowStored = Number(current?.output_stored_bytes ?? 0);
        if (held.size > 0 || behind || nowStored !== storedBytes) {
          behind = false;
          await replay();
          storedBytes = nowStored;
        }
        if (current && FINAL_STATES.has(current.status)) {
          // The driver stores the last chunks before it records the end.
          await replay();
          if (!stopped && !paused) {
            stop();
            sink.end(executionView(current));
          }
        }
      } catch (err) {
        this.log.warn(`following ${id}: ${(err as Error).message}`);
      } finally {
        checking = false;
        if (again && !stopped) {
          again = false;
          void check();
        }
      }
    };
    const timer = setInterval(() => void check(), FOLLOW_POLL_MS);
    try {
      await replay();
      await check();
    } catch (err) {
      stop();
      throw err;
    }
    return stop;
  }
}
