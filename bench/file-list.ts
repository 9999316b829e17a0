// file.list benchmark (issue 20, acceptance 3): the shipped agent executable pages through
// directories of 10,000, 100,000 and 300,000 entries and prints, per directory and page size,
// the pages, the time and the agent's resident memory (VmRSS after, VmHWM over the run). The
// agent keeps only a page's names per pass, so the memory should follow the page size, not the
// directory's. Run: npm run bench:file-list [-- --quick]. Figures only, nothing asserted.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create } from '@bufbuild/protobuf';
import { FileListRequestSchema } from '@lq/proto';
import { AgentClient } from '@lq/host';

const quick = process.argv.includes('--quick');
const MiB = 1024 * 1024;
const executable = join(process.cwd(), 'dist/agent/limiquantix-agent-linux-amd64');

function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function run(dir: string, entries: number, pageSize: number): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'lq-bench-list-agent-'));
  const sock = join(work, 'agent.sock');
  writeFileSync(
    join(work, 'agent.json'),
    JSON.stringify({
      log_level: 'error',
      telemetry_interval_ms: 0,
      files: { roots: [dir], list_page_entries: 1000, list_max_entries: 10_000 },
    }),
  );
  const proc = spawn(executable, ['--listen', sock, '--config', join(work, 'agent.json')], {
    stdio: 'inherit',
  });
  try {
    while (!existsSync(sock)) {
      await sleep(5);
    }
    const client = new AgentClient({ path: sock, hostId: 'bench', requestTimeoutMs: 600_000 });
    client.start();
    await client.waitReady(5000);
    const start = memory(proc.pid!);
    const t0 = performance.now();
    let cursor = '';
    let pages = 0;
    let seen = 0;
    do {
      const page = await client.call(
        {
          case: 'fileList',
          value: create(FileListRequestSchema, { path: dir, cursor, limit: pageSize }),
        },
        'fileListResponse',
      );
      pages++;
      seen += page.entries.length;
      cursor = page.nextCursor;
    } while (cursor !== '');
    const ms = performance.now() - t0;
    const end = memory(proc.pid!);
    client.close();
    console.log(
      `${String(entries).padStart(7)} entries  page ${String(pageSize).padStart(5)}  ${String(pages).padStart(4)} pages  ${(ms / 1000).toFixed(2).padStart(7)} s  ${(ms / pages).toFixed(1).padStart(7)} ms/page  RSS ${(start.rss / MiB).toFixed(1)} → ${(end.rss / MiB).toFixed(1)} MiB  HWM ${(end.hwm / MiB).toFixed(1)} MiB${seen === entries ? '' : `  (saw ${seen}!)`}`,
    );
  } finally {
    proc.kill('SIGTERM');
    await new Promise((resolve) => proc.once('exit', resolve));
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!existsSync(executable)) {
    throw new Error(
      `${executable} is missing: node scripts/build-executables.mjs --target linux-amd64`,
    );
  }
  const sizes = quick ? [10_000, 100_000] : [10_000, 100_000, 300_000];
  const pageSizes = quick ? [1000] : [1000, 10_000];
  const base = mkdtempSync(join(tmpdir(), 'lq-bench-list-'));
  try {
    for (const n of sizes) {
      const dir = join(base, `d${n}`);
      mkdirSync(dir);
      execFileSync('sh', ['-c', `seq -f "entry-%07g" 1 ${n} | xargs touch`], {
        cwd: dir,
        stdio: 'ignore',
      });
      for (const p of pageSizes) {
        await run(dir, n, p);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
