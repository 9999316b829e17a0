// Browser test of the fleet dashboard (issue 20, acceptance 1): Debian's Chromium driven by
// playwright-core against the real stack — PostgreSQL (a fresh database), nats-server, a node
// daemon and simulated VMs (real guest agents reporting telemetry every second), and the control
// plane recording it into the history. Every wait is on a condition, never a fixed sleep.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser } from 'playwright-core';
import type { FleetSummaryView, TokenPairView } from '@lq/api';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../support/control-plane-process.js';
import { CHROMIUM, SHOTS, consoleSession } from '../support/console-browser.js';
import { REPO_ROOT } from '../support/service-process.js';

const WAIT_MS = 30_000;
const PASSWORD = 'Dashboard-Test-Passphrase-5512';

let work: string;
let db: TestDatabase;
let nats: RunningNats;
let sim: SimVms;
let daemon: RunningNodeDaemon;
let cp: RunningControlPlane;
let browser: Browser;
const pageErrors: string[] = [];
const { api, signedIn } = consoleSession({
  url: () => cp.url,
  browser: () => browser,
  password: PASSWORD,
  pageErrors,
  waitMs: WAIT_MS,
});

describe('fleet dashboard in Chromium', () => {
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set LQ_CHROMIUM)`);
    }
    if (!existsSync(join(REPO_ROOT, 'dist/console/index.html'))) {
      throw new Error('dist/console is missing: node scripts/build-console.mjs');
    }
    mkdirSync(SHOTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'lq-dashboard-'));
    [db, nats, sim] = await Promise.all([
      createTestDatabase('lq_dashboard'),
      startNatsServer(),
      startSimVms({ dir: work, count: 2, prefix: 'vm-', config: { telemetry_interval_ms: 1000 } }),
    ]);
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_PASSWORD_SCRYPT_LOG_N: '12', LQ_TELEMETRY_FLUSH_MS: '500' },
    });
    daemon = await startNodeDaemon({ nodeId: 'node-1', natsUrl: nats.url, channelDirs: [work] });
    await waitForReadyVms(cp.url, 2, { timeoutMs: WAIT_MS });
    await api('/api/projects', 'POST', { id: 'blue' });
    await api('/api/vms/vm-2/project', 'PUT', { project: 'blue' });
    for (const [username, project] of [
      ['ada', undefined],
      ['bob', 'blue'],
    ] as const) {
      await api('/api/users', 'POST', { username, password: PASSWORD });
      await api('/api/role-bindings', 'POST', { user: username, role: 'viewer', project });
    }
    // Both VMs in the history (with a network rate: two reports in a step) before the page opens.
    const until = Date.now() + 90_000;
    for (;;) {
      const s = await api<FleetSummaryView>('/api/fleet/summary');
      if (s.top.network.length === 2 || Date.now() > until) {
        expect(s.top.network.map((v) => v.id).sort()).toEqual(['vm-1', 'vm-2']);
        break;
      }
      await sleep(250);
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  }, 180_000);

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

  it('should show the fleet’s aggregates, full disks and a VM’s charts over a chosen window', async () => {
    const { context, page } = await signedIn('ada');
    try {
      await page
        .getByRole('navigation', { name: 'Main' })
        .getByRole('link', { name: 'Dashboard' })
        .click();
      await page.getByRole('heading', { name: 'Fleet dashboard' }).waitFor();
      const states = page.getByRole('region', { name: 'Agents by state' });
      await states.locator('tr[data-state="ready"]').getByText('2', { exact: true }).waitFor();
      const versions = page.getByRole('region', { name: 'Agent versions' });
      expect(await versions.locator('tr').count()).toBeGreaterThanOrEqual(1);
      for (const title of ['Top CPU', 'Top memory', 'Top disk use', 'Top network']) {
        const top = page.getByRole('region', { name: title });
        await top.locator('tr[data-vm="vm-1"]').waitFor();
        await top.locator('tr[data-vm="vm-2"]').waitFor();
      }

      // Every filesystem is at or above 0 %: both VMs are listed; 150 % is refused in words.
      const full = page.getByRole('region', { name: 'Full filesystems' });
      const threshold = full.getByLabel('Threshold (%)');
      await threshold.fill('150');
      await full.getByText('The threshold is a percent, 0 to 100.').waitFor();
      expect(await full.getByRole('button', { name: 'Apply' }).isDisabled()).toBe(true);
      await threshold.fill('0');
      const asked = page.waitForResponse(
        (r) => r.url().includes('/api/fleet/summary') && r.url().includes('disk_percent=0'),
      );
      await full.getByRole('button', { name: 'Apply' }).click();
      expect((await asked).status()).toBe(200);
      await full.getByRole('heading', { name: /at or above 0 % \(2 VMs\)/ }).waitFor();
      await full.locator('tr[data-vm="vm-1"]').first().waitFor();
      await full.locator('tr[data-vm="vm-2"]').first().waitFor();

      // A VM and a window: the charts read its history.
      const charts = page.getByRole('region', { name: 'VM charts' });
      // The 6 h window's answer: choosing the VM first reads the default window, and that
      // answer's body may be gone once the window changes (the console drops the read).
      const sixHours = (url: string) => {
        const q = new URL(url).searchParams;
        const span = Date.parse(q.get('to') ?? '') - Date.parse(q.get('from') ?? '');
        return Math.abs(span - 6 * 3600_000) < 60_000;
      };
      const series = page.waitForResponse(
        (r) =>
          r.url().includes('/api/vms/vm-2/telemetry?from=') &&
          sixHours(r.url()) &&
          r.status() === 200,
      );
      await charts.getByLabel('VM').selectOption('vm-2');
      await charts.getByLabel('Window').selectOption('6h');
      const answer = (await (await series).json()) as { resolution: string; points: unknown[] };
      expect(answer.resolution).toBe('fine');
      expect(answer.points.length).toBeGreaterThanOrEqual(1);
      await charts
        .locator('.history-charts[data-vm="vm-2"]')
        .getByText(/points? of 1 min/)
        .waitFor();
      for (const title of ['CPU', 'Memory', 'Disk', 'Network']) {
        await charts.getByRole('figure', { name: title }).locator('canvas').waitFor();
      }
      await page.screenshot({ path: join(SHOTS, '20-dashboard.png'), fullPage: true });

      // A top VM's link opens its page, whose Overview charts read the same history.
      await page
        .getByRole('region', { name: 'Top CPU' })
        .locator('tr[data-vm="vm-1"]')
        .getByRole('link')
        .click();
      const history = page.getByRole('region', { name: 'History' });
      await history
        .locator('.history-charts[data-vm="vm-1"]')
        .getByText(/points? of 1 min/)
        .waitFor();
      await history.getByRole('figure', { name: 'CPU' }).locator('canvas').waitFor();
      await page.screenshot({ path: join(SHOTS, '21-vm-history.png'), fullPage: true });
    } finally {
      await context.close();
    }
    expect(pageErrors).toEqual([]);
  });

  it('should show a viewer of one project only that project’s VMs', async () => {
    const { context, page } = await signedIn('bob');
    try {
      await page.goto(`${cp.url}/dashboard`);
      const states = page.getByRole('region', { name: 'Agents by state' });
      await states.locator('tr[data-state="ready"]').getByText('1', { exact: true }).waitFor();
      const top = page.getByRole('region', { name: 'Top CPU' });
      await top.locator('tr[data-vm="vm-2"]').waitFor();
      expect(await top.locator('tr[data-vm="vm-1"]').count()).toBe(0);
      const options = page
        .getByRole('region', { name: 'VM charts' })
        .getByLabel('VM')
        .locator('option');
      expect(await options.count()).toBe(1);
      expect(await options.first().getAttribute('value')).toBe('vm-2');
      // vm-1 is another project's: bob's token may not read its history.
      const login = await fetch(`${cp.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'bob', password: PASSWORD }),
      });
      const { access_token: token } = (await login.json()) as TokenPairView;
      const refused = await fetch(`${cp.url}/api/vms/vm-1/telemetry`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(refused.status).toBe(403);
    } finally {
      await context.close();
    }
    expect(pageErrors).toEqual([]);
  });
});
