// Browser tests of the console's guest operations (issue 20 items 1 and 3): Debian's Chromium
// driven by playwright-core against the real stack (PostgreSQL, nats-server, a node daemon,
// simulated VMs with real agents whose fsfreeze, chpasswd, clock and power commands are the
// simulator's recorder, the control plane serving dist/console). Freeze → status → thaw with
// the auto-thaw countdown and hook results, sync time, password reset, power confirmations, the
// buttons each role sees, and the file browser: browse, download, upload (several files, and
// drag and drop) with progress, new folder, rename, delete with confirmation. Every wait is on
// a condition. Screenshots go to test-artifacts/console/.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  adminFetch,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../support/control-plane-process.js';
import { CHROMIUM, SHOTS, WAIT_MS, consoleSession } from '../support/console-browser.js';
import { REPO_ROOT } from '../support/service-process.js';

const PASSWORD = 'Console-Ops-Passphrase-5813';

let work: string;
let db: TestDatabase;
let nats: RunningNats;
let sim: SimVms;
let daemon: RunningNodeDaemon;
let cp: RunningControlPlane;
let browser: Browser;
const pageErrors: string[] = [];
const { api, userWith, signedIn } = consoleSession({
  url: () => cp.url,
  browser: () => browser,
  password: PASSWORD,
  pageErrors,
  acceptDownloads: true,
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const recorded = () => readFileSync(sim.vms[0]!.shutdownLog, 'utf8');

describe('console guest operations in Chromium', () => {
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set LQ_CHROMIUM)`);
    }
    if (!existsSync(join(REPO_ROOT, 'dist/console/index.html'))) {
      throw new Error('dist/console is missing: node scripts/build-console.mjs');
    }
    mkdirSync(SHOTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'lq-console-ops-'));
    [db, nats, sim] = await Promise.all([
      createTestDatabase('lq_console_ops'),
      startNatsServer(),
      startSimVms({ dir: work, count: 1, prefix: 'vm-', config: { telemetry_interval_ms: 2000 } }),
    ]);
    // A pre-freeze hook, so the freeze shows a hook's result.
    const hooks = join(sim.vms[0]!.workDir, 'pre-freeze.d');
    mkdirSync(hooks, { recursive: true });
    writeFileSync(join(hooks, '10-flush-db'), '#!/bin/sh\necho flushed\n');
    chmodSync(join(hooks, '10-flush-db'), 0o755);
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_PASSWORD_SCRYPT_LOG_N: '12' },
    });
    daemon = await startNodeDaemon({ nodeId: 'node-1', natsUrl: nats.url, channelDirs: [work] });
    await waitForReadyVms(cp.url, 1, { timeoutMs: WAIT_MS });
    await userWith('oscar', 'operator');
    await userWith('vera', 'viewer');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    await cp?.stop();
    await sim?.stop();
    await nats?.stop();
    await db?.drop();
    if (work) {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('should freeze, show the status with its auto-thaw countdown and hooks, and thaw', async () => {
    const { context, page } = await signedIn('oscar');
    try {
      await page.goto(`${cp.url}/vms/vm-1/agent`);
      const status = page.getByTestId('quiesce-status');
      await status.getByText('Not frozen').waitFor();
      const form = page.getByRole('form', { name: 'Freeze filesystems' });
      await form.getByLabel(/Mount points/).fill('relative/path');
      await form.getByRole('button', { name: 'Freeze filesystems' }).click();
      await page.getByText('Mount points are absolute paths').waitFor();
      await form.getByLabel(/Mount points/).fill(sim.vms[0]!.workDir);
      await form.getByLabel(/Auto-thaw after/).fill('600');
      await form.getByRole('button', { name: 'Freeze filesystems' }).click();
      await status.getByText(`Frozen: ${sim.vms[0]!.workDir}`).waitFor();
      // The countdown: minutes and seconds to the agent's own thaw, ticking.
      const timer = page.getByRole('timer', { name: 'Auto-thaw countdown' });
      await timer.getByText(/^in (9|10) min \d\d s/).waitFor();
      const first = await timer.innerText();
      // Ticks: the text changes (polled; the page's CSP forbids waitForFunction's eval).
      for (let end = Date.now() + WAIT_MS; Date.now() < end;) {
        if ((await timer.innerText()) !== first) {
          break;
        }
        await page.waitForTimeout(200);
      }
      expect(await timer.innerText()).not.toBe(first);
      const hooks = page.getByRole('table', { name: 'Hook results' });
      await hooks.getByText('10-flush-db').waitFor();
      await hooks.getByText('exit 0 (success)').waitFor();
      expect(recorded()).toContain(`fsfreeze --freeze ${sim.vms[0]!.workDir}`);
      expect((await api<{ frozen: boolean }>('/api/vms/vm-1/quiesce')).frozen).toBe(true);
      await shot(page, '20-agent-frozen');

      await form.getByRole('button', { name: 'Thaw' }).click();
      await status.getByText('Not frozen').waitFor();
      await page.getByText(`Thawed ${sim.vms[0]!.workDir}.`).waitFor();
      expect(recorded()).toContain(`fsfreeze --unfreeze ${sim.vms[0]!.workDir}`);
      await shot(page, '21-agent-thawed');

      // A short timeout: the countdown runs out and the status shows the agent's own thaw.
      await form.getByLabel(/Mount points/).fill('');
      await form.getByLabel(/Auto-thaw after/).fill('2');
      await form.getByRole('button', { name: 'Freeze filesystems' }).click();
      await status.getByText(/^Frozen: /).waitFor();
      // Generous: the agent's timer and the page's polling both run late on a busy machine.
      await status.getByText('Not frozen').waitFor({ timeout: 90_000 });
      await status.getByText('Last auto-thaw').waitFor();
    } finally {
      // Never leave the VM frozen for the tests after this one.
      await api('/api/vms/vm-1/thaw', 'POST', {}).catch(() => undefined);
      await context.close();
    }
  }, 180_000);

  it('should sync the time with force and report the offsets', async () => {
    const { context, page } = await signedIn('oscar');
    try {
      await page.goto(`${cp.url}/vms/vm-1/agent`);
      await page.getByRole('checkbox', { name: /Force/ }).check();
      await page.getByRole('button', { name: 'Sync time' }).click();
      await page.getByText(/^Clock synced by host_time: offset [+−][\d.]+ (ms|s) before/).waitFor();
      expect(recorded()).toMatch(/^set-clock @\d+\.\d{3}$/m);
      await shot(page, '22-agent-time-synced');
    } finally {
      await context.close();
    }
  });

  it('should reset a password typed twice, and keep it nowhere', async () => {
    const secret = 'Browser-Secret-Password-6620';
    const { context, page } = await signedIn('oscar');
    try {
      await page.goto(`${cp.url}/vms/vm-1/agent`);
      await page.getByRole('button', { name: 'Reset password' }).click();
      const dialog = page.getByRole('dialog', { name: 'Reset a password on vm-1' });
      await dialog.getByLabel('Guest user').fill('nobody');
      await dialog.getByLabel('New password', { exact: true }).fill(secret);
      await dialog.getByLabel('New password again').fill(`${secret}x`);
      await dialog.getByRole('button', { name: 'Set password' }).click();
      await dialog.getByText('The two passwords differ.').waitFor();
      expect(recorded()).not.toContain('chpasswd');
      await dialog.getByLabel('New password again').fill(secret);
      await shot(page, '23-agent-password-dialog');
      await dialog.getByRole('button', { name: 'Set password' }).click();
      await page.getByText('Password set for nobody on vm-1.').waitFor();
      await dialog.waitFor({ state: 'detached' });
      expect(recorded()).toContain('chpasswd');
      // Not in the page, the browser's storage, or the audit trail.
      expect(await page.content()).not.toContain(secret);
      const stored = await page.evaluate<string>(
        'JSON.stringify({ ...window.localStorage, ...window.sessionStorage })',
      );
      expect(stored).not.toContain(secret);
      const audit = await (
        await adminFetch(`${cp.url}/api/audit/events?format=ndjson&limit=1000`)
      ).text();
      expect(audit).not.toContain(secret);
      // Opened again, the dialog is empty.
      await page.getByRole('button', { name: 'Reset password' }).click();
      expect(await dialog.getByLabel('New password', { exact: true }).inputValue()).toBe('');
      await dialog.getByRole('button', { name: 'Cancel' }).click();
    } finally {
      await context.close();
    }
  });

  it('should confirm a reboot naming the VM before sending it', async () => {
    const { context, page } = await signedIn('oscar');
    try {
      await page.goto(`${cp.url}/vms/vm-1/agent`);
      await page.getByRole('button', { name: 'Reboot' }).click();
      const dialog = page.getByRole('dialog', { name: 'Reboot vm-1?' });
      await dialog.getByText('vm-1 (vm-1) reboots through its agent').waitFor();
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      expect(recorded()).not.toMatch(/^reboot/m);
      await page.getByRole('button', { name: 'Reboot' }).click();
      await dialog.getByRole('button', { name: 'Reboot' }).click();
      await page.getByText(/^Reboot accepted by the agent/).waitFor();
      for (const end = Date.now() + WAIT_MS; !/^reboot/m.test(recorded()) && Date.now() < end;) {
        await page.waitForTimeout(100);
      }
      expect(recorded()).toMatch(/^reboot/m);
    } finally {
      await context.close();
    }
  });

  it('should show a viewer the freeze status but none of the actions', async () => {
    const { context, page } = await signedIn('vera');
    try {
      await page.goto(`${cp.url}/vms/vm-1/agent`);
      await page
        .getByTestId('quiesce-status')
        .getByText(/Not frozen|Frozen/)
        .waitFor();
      for (const name of ['Freeze filesystems', 'Thaw', 'Sync time', 'Reset password', 'Reboot']) {
        expect(await page.getByRole('button', { name }).count()).toBe(0);
      }
      expect(await page.getByText('not available yet').count()).toBe(0);
      await shot(page, '24-viewer-agent-tab');
    } finally {
      await context.close();
    }
  });

  it('should browse, download, upload, create, rename and delete files', async () => {
    const root = join(sim.vms[0]!.workDir, 'browse');
    mkdirSync(join(root, 'logs'), { recursive: true });
    writeFileSync(join(root, 'hello.txt'), 'hello from the guest\n');
    writeFileSync(join(root, 'logs/app.log'), 'line\n');
    const { context, page } = await signedIn('oscar');
    try {
      await page.goto(`${cp.url}/vms/vm-1/files`);
      await page.getByLabel('Directory', { exact: true }).fill(root);
      await page.getByRole('button', { name: 'Go', exact: true }).click();
      const table = page.getByRole('table', { name: 'Directory entries' });
      const row = (name: string) => table.locator(`tr[data-name="${name}"]`);
      await row('hello.txt').waitFor();
      await row('logs').getByText('folder').waitFor();
      await page.getByTestId('listing-count').getByText('2 of 2 entries').waitFor();
      await shot(page, '25-files-browse');

      // Into a folder and back up.
      await row('logs').getByRole('button', { name: 'logs/' }).click();
      await row('app.log').waitFor();
      await page.getByRole('button', { name: 'Up', exact: true }).click();
      await row('hello.txt').waitFor();

      const [download] = await Promise.all([
        page.waitForEvent('download'),
        row('hello.txt').getByRole('button', { name: 'Download hello.txt' }).click(),
      ]);
      expect(download.suggestedFilename()).toBe('hello.txt');
      expect(readFileSync(await download.path(), 'utf8')).toBe('hello from the guest\n');

      // Several files at once through the file picker, each with its progress bar.
      const big = Buffer.alloc(3 * 1024 * 1024, 7);
      await page.locator('input[name="upload_files"]').setInputFiles([
        { name: 'one.bin', mimeType: 'application/octet-stream', buffer: big },
        { name: 'two.txt', mimeType: 'text/plain', buffer: Buffer.from('second file\n') },
      ]);
      const uploads = page.getByRole('list', { name: 'Uploads' });
      await uploads.getByText(/^Uploaded one\.bin: 3\.0 MiB of 3\.0 MiB \(100 %\)/).waitFor();
      await uploads.getByText(/^Uploaded two\.txt/).waitFor();
      await row('one.bin').waitFor();
      await row('two.txt').waitFor();
      expect(readFileSync(join(root, 'one.bin')).equals(big)).toBe(true);
      await shot(page, '26-files-uploaded');

      // Drag and drop.
      const dropped = await page.evaluateHandle(`(() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['dropped here\\n'], 'dropped.txt', { type: 'text/plain' }));
        return dt;
      })()`);
      await page.locator('.files').dispatchEvent('dragover', { dataTransfer: dropped });
      await page.locator('.files').dispatchEvent('drop', { dataTransfer: dropped });
      await row('dropped.txt').waitFor();
      expect(readFileSync(join(root, 'dropped.txt'), 'utf8')).toBe('dropped here\n');

      // New folder.
      await page.getByRole('button', { name: 'New folder' }).click();
      const mkdir = page.getByRole('dialog', { name: `New folder in ${root}` });
      await mkdir.getByLabel('Folder name').fill('a/b');
      await mkdir.getByRole('button', { name: 'Create' }).click();
      await mkdir.getByText('A name cannot contain “/”.').waitFor();
      await mkdir.getByLabel('Folder name').fill('reports');
      await mkdir.getByRole('button', { name: 'Create' }).click();
      await row('reports').waitFor();
      expect(existsSync(join(root, 'reports'))).toBe(true);
      // An existing name: the dialog stays open with the conflict.
      await page.getByRole('button', { name: 'New folder' }).click();
      await mkdir.getByLabel('Folder name').fill('reports');
      await mkdir.getByRole('button', { name: 'Create' }).click();
      await mkdir.getByText(/exists already/).waitFor();
      await mkdir.getByRole('button', { name: 'Cancel' }).click();

      // Rename.
      await row('two.txt').getByRole('button', { name: 'Rename two.txt' }).click();
      const rename = page.getByRole('dialog', { name: 'Rename two.txt' });
      await rename.getByLabel('New name').fill('second.txt');
      await rename.getByRole('button', { name: 'Rename' }).click();
      await row('second.txt').waitFor();
      await row('two.txt').waitFor({ state: 'detached' });
      expect(readFileSync(join(root, 'second.txt'), 'utf8')).toBe('second file\n');

      // Delete, confirmed; a folder goes with what it holds.
      await row('second.txt').getByRole('button', { name: 'Delete second.txt' }).click();
      const confirm = page.getByRole('dialog', { name: 'Delete second.txt?' });
      await confirm.getByText(`${join(root, 'second.txt')} is deleted from vm-1`).waitFor();
      await shot(page, '27-files-delete-confirm');
      await confirm.getByRole('button', { name: 'Cancel' }).click();
      expect(existsSync(join(root, 'second.txt'))).toBe(true);
      await row('second.txt').getByRole('button', { name: 'Delete second.txt' }).click();
      await confirm.getByRole('button', { name: 'Delete' }).click();
      await row('second.txt').waitFor({ state: 'detached' });
      expect(existsSync(join(root, 'second.txt'))).toBe(false);
      await row('logs').getByRole('button', { name: 'Delete logs' }).click();
      await page
        .getByRole('dialog', { name: 'Delete logs?' })
        .getByRole('button', { name: 'Delete' })
        .click();
      await row('logs').waitFor({ state: 'detached' });
      expect(readdirSync(root).sort()).toEqual(['dropped.txt', 'hello.txt', 'one.bin', 'reports']);
      await shot(page, '28-files-after');
    } finally {
      await context.close();
    }
  });

  it('should not offer the viewer the Files tab or its routes', async () => {
    const { context, page } = await signedIn('vera');
    try {
      await page.goto(`${cp.url}/vms/vm-1/agent`);
      await page.getByText('Connected since').waitFor();
      expect(await page.getByRole('tab', { name: 'Files' }).count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  it('should have raised no uncaught error in any page', () => {
    expect(pageErrors).toEqual([]);
  });
});
