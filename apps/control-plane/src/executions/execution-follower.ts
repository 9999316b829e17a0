import { Inject, Injectable, Logger } from '@nestjs/common';
import { subjects } from '@lq/proto';
import { NatsService } from '../nats/nats.service.js';
import { OutputRedactor } from '@lq/audit';
import { chunkOf, redactChunk } from './execution-driver.js';
import { executionView, type FollowSink } from './execution-view.js';
import {
  ExecutionsRepository,
  FINAL_STATES,
  type ExecutionRow,
  type OutputChunk,
} from './executions.repository.js';

const FOLLOW_POLL_MS = 400;
export const OUTPUT_PAGE = 500;

/**
 * Follows an execution's output for a reader: the stored chunks after `afterSeq`, then live
 * ones from its node's subject as they come, in order and none lost (a live chunk ahead of a
 * gap waits for the store to fill it), then the end. Any replica can follow any execution.
 */
@Injectable()
export class ExecutionFollower {
  private readonly log = new Logger('executions');

  constructor(
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(ExecutionsRepository) private readonly repo: ExecutionsRepository,
    @Inject(OutputRedactor) private readonly redactor: OutputRedactor,
  ) {}

  /** Starts following; returns a function that stops. The caller has checked access. */
  async follow(row: ExecutionRow, afterSeq: number, sink: FollowSink): Promise<() => void> {
    const id = row.id;
    let last = afterSeq;
    let stopped = false;
    // Live chunks ahead of a gap (this follower subscribed after the chunk before them went
    // by) wait here until the stored output fills the gap: chunks go out in order, none lost.
    const held = new Map<number, OutputChunk>();
    const send = (c: OutputChunk) => {
      last = c.seq;
      sink.chunk(c);
      for (let next = held.get(last + 1); next; next = held.get(last + 1)) {
        held.delete(next.seq);
        last = next.seq;
        sink.chunk(next);
      }
    };
    /** A stored chunk: the store is complete up to it, so it goes out whatever came before. */
    const stored = (c: OutputChunk) => {
      if (c.seq > last) {
        send(c);
      }
    };
    const live = (c: OutputChunk) => {
      if (c.seq === last + 1) {
        send(c);
      } else if (c.seq > last) {
        held.set(c.seq, c);
      }
    };
    // Only the node that runs it may publish there (NATS permissions, deploy/nats).
    const sub = this.nats.connection.subscribe(subjects.execOutput(row.node_id, id), {
      callback: (err, msg) => {
        if (err || stopped) {
          return;
        }
        try {
          // The same patterns as the stored copy: a live chunk and its replay are the same.
          live(redactChunk(this.redactor, chunkOf(msg.data)));
        } catch {
          // not an ExecOutputEvent
        }
      },
    });
    const replay = async () => {
      for (;;) {
        const page = await this.repo.output(id, last, OUTPUT_PAGE);
        page.forEach(stored);
        if (page.length < OUTPUT_PAGE) {
          return;
        }
      }
    };
    const stop = () => {
      stopped = true;
      clearInterval(timer);
      if (!sub.isClosed()) {
        sub.unsubscribe();
      }
    };
    let checking = false;
    const check = async () => {
      if (checking || stopped) {
        return;
      }
      checking = true;
      try {
        const current = await this.repo.get(id);
        if (held.size > 0) {
          await replay();
        }
        if (current && FINAL_STATES.has(current.status)) {
          // The driver stores the last chunks before it records the end.
          await replay();
          if (!stopped) {
            stop();
            sink.end(executionView(current));
          }
        }
      } catch (err) {
        this.log.warn(`following ${id}: ${(err as Error).message}`);
      } finally {
        checking = false;
      }
    };
    const timer = setInterval(() => void check(), FOLLOW_POLL_MS);
    await replay();
    await check();
    return stop;
  }
}
