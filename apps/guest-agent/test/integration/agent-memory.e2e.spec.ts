// Memory that does not stay behind (issue 17, item 5), on the real executable: big outputs and
// transfers are given back once the agent idles; pooled file chunks never mix up two replies;
// a host pipelining more requests than memory.max_inflight_requests gets BUSY, not a growing
// agent.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  ExecuteRequestSchema,
  FileReadRequestSchema,
  FileWriteRequestSchema,
  PingRequestSchema,
} from '@lq/proto';
import { AgentClient, readGuestFile, writeGuestFile } from '@lq/host';
import { startAgent, type RunningAgent } from '../support/agent-process.js';

const MiB = 1024 * 1024;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

describe('agent memory', () => {
  let root: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'lq-agent-memory-'));
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  describe('after big outputs and transfers', () => {
    let agent: RunningAgent;
    let client: AgentClient;

    beforeAll(async () => {
      agent = await startAgent({ files: { roots: [root] }, telemetry_interval_ms: 0 });
      client = await agent.client();
    });

    afterAll(async () => {
      await agent?.stop();
    });

    /** RSS once it has stopped falling (the agent reclaims memory.idle_reclaim_ms after work). */
    async function settledRss(): Promise<number> {
      let last = agent.memory().rss;
      for (let i = 0; i < 20; i++) {
        await sleep(250);
        const now = agent.memory().rss;
        if (now >= last - 256 * 1024) {
          return Math.min(now, last);
        }
        last = now;
      }
      return last;
    }

    /**
     * RSS once it is back within `slack` of `start`, or the lowest seen in `waitMs`: the reclaim
     * runs memory.idle_reclaim_ms after the last request, later on a busy machine, so the test
     * waits for the outcome rather than for a time.
     */
    async function rssBackTo(start: number, slack: number, waitMs = 20_000): Promise<number> {
      let lowest = agent.memory().rss;
      for (const end = Date.now() + waitMs; lowest - start >= slack && Date.now() < end;) {
        await sleep(250);
        lowest = Math.min(lowest, agent.memory().rss);
      }
      return lowest;
    }

    it('should give the memory of 192 MiB of output and a 32 MiB transfer back once idle', async () => {
      await client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
      const start = await settledRss();
      for (let i = 0; i < 3; i++) {
        const r = await client.call(
          {
            case: 'execute',
            value: create(ExecuteRequestSchema, { command: 'head -c 67108864 /dev/zero' }),
          },
          'executeResponse',
          { timeoutMs: 60_000 },
        );
        expect(Number(r.stdoutTotalBytes)).toBe(64 * MiB);
      }
      const data = randomBytes(32 * MiB);
      const path = join(root, 'transfer.bin');
      async function* source() {
        for (let o = 0; o < data.length; o += MiB) {
          yield data.subarray(o, o + MiB);
        }
      }
      await writeGuestFile(client, path, source());
      const hash = createHash('sha256');
      await readGuestFile(client, path, (chunk) => void hash.update(chunk));
      expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
      const busy = agent.memory();
      const after = await rssBackTo(start, 8 * MiB);
      process.stderr.write(
        `[agent memory] idle ${mib(start)}, right after the work ${mib(busy.rss)} (peak ${mib(busy.hwm)}), settled ${mib(after)}\n`,
      );
      // Kept garbage would leave tens of MiB (pipe chunks, file chunks, reply frames): the
      // memory is given back to about where it started. How low it settles (about 28-31 MiB on
      // a quiet machine, 61 MiB without the reclaimer) is a figure printed above and measured by
      // bench:agent and bench:peer, not a bound here: it varies with the machine's load.
      expect(after - start).toBeLessThan(8 * MiB);
    });
  });

  describe('pooled file chunks', () => {
    let agent: RunningAgent;
    let client: AgentClient;

    beforeAll(async () => {
      agent = await startAgent({
        files: { roots: [root], chunk_max_bytes: 64 * 1024 },
        memory: { buffer_pool_size: 2 },
      });
      client = await agent.client();
    });

    afterAll(async () => {
      await agent?.stop();
    });

    it('should answer 256 pipelined reads each with its own bytes when the pool holds 2 buffers', async () => {
      const data = randomBytes(256 * 4096);
      const path = join(root, 'chunks.bin');
      writeFileSync(path, data);
      const replies = await Promise.all(
        Array.from({ length: 256 }, (_, i) =>
          client.call(
            {
              case: 'fileRead',
              value: create(FileReadRequestSchema, {
                path,
                offset: BigInt(i * 4096),
                length: 4096,
              }),
            },
            'fileReadResponse',
          ),
        ),
      );
      replies.forEach((r, i) => {
        expect({
          i,
          same: Buffer.from(r.data).equals(data.subarray(i * 4096, (i + 1) * 4096)),
        }).toEqual({
          i,
          same: true,
        });
      });
      // A read that fails (a directory) gives its buffer back too: the next ones still work.
      await expect(
        client.call(
          { case: 'fileRead', value: create(FileReadRequestSchema, { path: root, length: 10 }) },
          'fileReadResponse',
        ),
      ).rejects.toThrow(/is a directory/);
      const again = await client.call(
        { case: 'fileRead', value: create(FileReadRequestSchema, { path, length: 4096 }) },
        'fileReadResponse',
      );
      expect(Buffer.from(again.data).equals(data.subarray(0, 4096))).toBe(true);
      expect(readFileSync(path).equals(data)).toBe(true);
    });

    it('should write 48 pipelined chunks in place and a 3 MiB upload each with its own bytes when frames share 2 pooled receive buffers', async () => {
      // 64 KiB chunks make frames of 64 KiB and more, assembled in pooled buffers whenever they
      // span socket reads; a buffer given back before its write ended would put another
      // frame's bytes in a file.
      const chunks = Array.from({ length: 48 }, () => randomBytes(64 * 1024));
      await Promise.all(
        chunks.map((data, i) =>
          client.call(
            {
              case: 'fileWrite',
              value: create(FileWriteRequestSchema, {
                path: join(root, `pooled-${i}.bin`),
                data,
                create: true,
                truncate: true,
              }),
            },
            'fileWriteResponse',
          ),
        ),
      );
      expect(
        chunks.map((data, i) => readFileSync(join(root, `pooled-${i}.bin`)).equals(data)),
      ).toEqual(chunks.map(() => true));
      // Upload chunks are written through the thread pool while later frames arrive.
      const upload = randomBytes(3 * MiB);
      const target = join(root, 'pooled-upload.bin');
      await writeGuestFile(
        client,
        target,
        (async function* () {
          for (let at = 0; at < upload.length; at += 100_000) {
            yield upload.subarray(at, at + 100_000);
          }
        })(),
      );
      expect(readFileSync(target).equals(upload)).toBe(true);
    });
  });

  describe('requests in progress', () => {
    let agent: RunningAgent;
    let client: AgentClient;

    beforeAll(async () => {
      agent = await startAgent({ memory: { max_inflight_requests: 4 } });
      client = await agent.client();
    });

    afterAll(async () => {
      await agent?.stop();
    });

    it('should run no more than memory.max_inflight_requests at once, reading the rest later', async () => {
      const log = join(root, 'concurrency.log');
      writeFileSync(log, '');
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          client.call(
            {
              case: 'execute',
              value: create(ExecuteRequestSchema, {
                argv: [
                  '/bin/sh',
                  '-c',
                  `echo "+ $1" >> '${log}'; sleep 0.3; echo "- $1" >> '${log}'`,
                  'sh',
                  String(i),
                ],
              }),
            },
            'executeResponse',
            { timeoutMs: 60_000 },
          ),
        ),
      );
      expect(results.map((r) => r.exitCode)).toEqual(Array(12).fill(0));
      let running = 0;
      let most = 0;
      for (const line of readFileSync(log, 'utf8').trim().split('\n')) {
        running += line.startsWith('+') ? 1 : -1;
        most = Math.max(most, running);
      }
      expect(running).toBe(0);
      // Without the bound all 12 run at once.
      expect(most).toBeLessThanOrEqual(4);
      expect(most).toBeGreaterThan(1);
    });

    it('should answer every one of 5,000 pipelined pings', async () => {
      const pongs = await Promise.all(
        Array.from({ length: 5000 }, () =>
          client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong', {
            timeoutMs: 60_000,
          }),
        ),
      );
      expect(pongs).toHaveLength(5000);
      expect(pongs.every((p) => p.agentVersion === pongs[0]!.agentVersion)).toBe(true);
    });
  });
});
