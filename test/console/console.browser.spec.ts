// Browser tests of the web console (issue 7): Debian's Chromium driven by playwright-core
// against the real stack — PostgreSQL (a fresh database), nats-server, a node daemon and
// simulated VMs (real guest agents), and the control plane serving dist/console. Every wait is
// on a condition (an element, a response), never a fixed sleep. Screenshots of each page go to
// test-artifacts/console/.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  TEST_ADMIN_TOKEN,
  adminFetch,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../support/control-plane-process.js';
import { REPO_ROOT } from '../support/service-process.js';
import type { VmListSnapshotView } from '@lq/api';

const CHROMIUM = process.env.LQ_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(REPO_ROOT, 'test-artifacts/console');
const WAIT_MS = 20_000;
const PASSWORD = 'Console-Test-Passphrase-4471';

async function api(path: string, method = 'GET', body?: unknown): Promise<Record<string, unknown>> {
  const res = await adminFetch(`${cp.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) {
    throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  }
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** A user with one global role binding; returns an API key for it. */
async function userWith(username: string, role: string, password?: string): Promise<string> {
  await api('/api/users', 'POST', { username, password });
  await api('/api/role-bindings', 'POST', { user: username, role });
  const key = await api(`/api/users/${username}/api-keys`, 'POST', { name: 'console test' });
  return key.token as string;
}

let work: string;
let db: TestDatabase;
let nats: RunningNats;
let sim: SimVms;
let daemon: RunningNodeDaemon;
let cp: RunningControlPlane;
let browser: Browser;
let viewerKey: string;
const pageErrors: string[] = [];

async function newPage(viewport = { width: 1366, height: 860 }): Promise<{
  context: BrowserContext;
  page: Page;
}> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  return { context, page };
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signInWithPassword(page: Page, username: string): Promise<void> {
  await page.goto(cp.url);
  await page.getByLabel('Username', { exact: true }).fill(username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

describe('web console in Chromium', () => {
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set LQ_CHROMIUM)`);
    }
    if (!existsSync(join(REPO_ROOT, 'dist/console/index.html'))) {
      throw new Error('dist/console is missing: node scripts/build-console.mjs');
    }
    mkdirSync(SHOTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'lq-console-'));
    [db, nats, sim] = await Promise.all([
      createTestDatabase('lq_console'),
      startNatsServer(),
      startSimVms({ dir: work, count: 2, prefix: 'vm-', config: { telemetry_interval_ms: 1000 } }),
    ]);
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_PASSWORD_SCRYPT_LOG_N: '12' },
    });
    daemon = await startNodeDaemon({ nodeId: 'node-1', natsUrl: nats.url, channelDirs: [work] });
    await waitForReadyVms(cp.url, 2, { timeoutMs: WAIT_MS });
    await userWith('olivia', 'operator', PASSWORD);
    viewerKey = await userWith('victor', 'viewer');
    // Reads stored output too (audit.read_output); a plain auditor sees it withheld.
    await userWith('audrey', 'output_auditor', PASSWORD);
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

  it('should serve the console at / while the API, docs, health and Connect keep working', async () => {
    const root = await fetch(`${cp.url}/`);
    expect(root.status).toBe(200);
    expect(root.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await root.text()).toContain('<div id="root">');
    const deep = await fetch(`${cp.url}/vms/vm-1/agent`);
    expect([deep.status, (await deep.text()).includes('<div id="root">')]).toEqual([200, true]);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(
      readFileSync(join(REPO_ROOT, 'dist/console/index.html'), 'utf8'),
    )?.[1];
    const js = await fetch(`${cp.url}${asset}`);
    expect([js.status, js.headers.get('cache-control')]).toEqual([
      200,
      'public, max-age=31536000, immutable',
    ]);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${cp.url}/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${cp.url}/assets/..%2f..%2fpackage.json`)).status).toBe(404);
    const unknown = await fetch(`${cp.url}/api/no-such-route`);
    expect([unknown.status, ((await unknown.json()) as { code: string }).code]).toEqual([
      404,
      'NOT_FOUND',
    ]);
    expect((await fetch(`${cp.url}/api/vms`)).status).toBe(401);
    expect((await fetch(`${cp.url}/health`)).status).toBe(200);
    expect((await fetch(`${cp.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${cp.url}/api/docs`)).status).toBe(200);
    const ping = await fetch(`${cp.url}/limiquantix.compute.v1.VMService/PingAgent`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ vmId: 'vm-1' }),
    });
    expect(ping.status).toBe(200);
  });

  it('should stream the caller’s VMs as Server-Sent Events', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${cp.url}/api/vms/stream`, {
      headers: { Authorization: `Bearer ${viewerKey}` },
      signal: ctl.signal,
    });
    expect([res.status, res.headers.get('content-type')]).toEqual([200, 'text/event-stream']);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('event: vms\ndata: ')) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      text += value;
    }
    ctl.abort();
    const data = /event: vms\ndata: (.*)\n/.exec(text)?.[1];
    const snapshot = JSON.parse(data ?? '{}') as VmListSnapshotView;
    expect(snapshot.vms.map((v) => [v.id, v.agent_state, v.node_id])).toEqual([
      ['vm-1', 'ready', 'node-1'],
      ['vm-2', 'ready', 'node-1'],
    ]);
    expect(typeof snapshot.vms[0]!.connected_since).toBe('string');
  });

  it('should sign in, list the VMs live, open one and run uname -a', async () => {
    const { context, page } = await newPage();
    try {
      await page.goto(cp.url);
      await page.getByRole('form', { name: 'Sign in' }).waitFor();
      await shot(page, '01-sign-in');
      await signInWithPassword(page, 'olivia');
      const row1 = page.locator('tr[data-vm="vm-1"]');
      await row1.getByText('Connected', { exact: true }).waitFor();
      await page.locator('tr[data-vm="vm-2"]').getByText('Connected', { exact: true }).waitFor();
      await page.getByText('Live', { exact: true }).waitFor();
      // Telemetry fills the bars once the agents have reported.
      await row1.locator('[role="meter"]').first().waitFor();
      await shot(page, '02-vm-list');

      // Live: an agent that stops shows up as not connected without a reload.
      await sim.kill('vm-2');
      await page
        .locator('tr[data-vm="vm-2"]')
        .getByText('Not connected', { exact: true })
        .waitFor();
      await shot(page, '03-vm-list-agent-gone');
      await sim.restart('vm-2');
      await page.locator('tr[data-vm="vm-2"]').getByText('Connected', { exact: true }).waitFor();

      await row1.getByRole('link').first().click();
      await page.getByRole('heading', { name: /vm-1|Connected/ }).waitFor();
      await page.getByRole('tab', { name: 'Overview' }).waitFor();
      await shot(page, '04-vm-overview');

      await page.getByRole('tab', { name: 'Agent' }).click();
      await page.getByText('Connected since').waitFor();
      // Two telemetry reports drawn (a line with two points): the chart is live.
      await page.locator('.spark polyline[points*=" "]').first().waitFor();
      await shot(page, '05-vm-agent');

      await page.getByRole('button', { name: 'Run Script' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Command or script').fill('uname -a');
      await dialog.getByRole('button', { name: 'Execute' }).click();
      const stdout = dialog.getByRole('region', { name: 'stdout' }).locator('pre');
      await stdout.waitFor();
      expect(await stdout.innerText()).toMatch(/^Linux /);
      await dialog.getByText('Exit code 0 (success)').waitFor();
      await shot(page, '06-run-script');
      await dialog.getByRole('button', { name: 'Close', exact: true }).click();
      await dialog.waitFor({ state: 'detached' });
      // The result stays on the page after the dialog closed.
      const last = page.locator('.last-run');
      expect(await last.getByRole('region', { name: 'stdout' }).innerText()).toMatch(/Linux /);
      await shot(page, '07-vm-last-run');

      // An agent that is not connected is said in words.
      await sim.kill('vm-1');
      await page.getByRole('button', { name: 'Ping agent' }).click();
      // The node no longer has the VM's channel (the socket went with the agent), or still has
      // it without an agent: either way the words say so.
      await page
        .getByRole('alert')
        .getByText(/agent of this VM is not connected|agent channel may be gone/)
        .waitFor();
      await shot(page, '08-agent-not-connected');
      await sim.restart('vm-1');
    } finally {
      await context.close();
    }
  });

  it('should hide the actions a viewer may not take', async () => {
    const { context, page } = await newPage();
    try {
      await page.goto(cp.url);
      await page.getByRole('tab', { name: 'API key' }).click();
      await page.getByLabel('API key').fill(viewerKey);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.locator('tr[data-vm="vm-1"]').waitFor();
      expect(await page.getByRole('link', { name: 'Audit' }).count()).toBe(0);
      await page.goto(`${cp.url}/vms/vm-1/agent`);
      await page.getByText('Connected since').waitFor();
      await page.getByRole('button', { name: 'Ping agent' }).waitFor();
      expect(await page.getByRole('button', { name: 'Run Script' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Shut down' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Reboot' }).count()).toBe(0);
      expect(await page.getByRole('tab', { name: 'Files' }).count()).toBe(0);
      expect(await page.getByRole('tab', { name: 'History' }).count()).toBe(0);
      await shot(page, '09-viewer-vm-agent');
      await page.goto(`${cp.url}/audit`);
      await page.getByText('Permission missing: “audit.read”').waitFor();
      await shot(page, '10-viewer-audit-denied');
    } finally {
      await context.close();
    }
  });

  it('should let an auditor find the execution, open its output and export it', async () => {
    const { context, page } = await newPage();
    try {
      await signInWithPassword(page, 'audrey');
      await page.getByRole('link', { name: 'Audit' }).click();
      await page
        .getByTestId('chain-status')
        .getByText(/Chain verified: \d+ rows intact/)
        .waitFor();
      await page.getByLabel('VM', { exact: true }).fill('vm-1');
      await page.getByLabel('Actor').fill('olivia');
      await page.getByRole('button', { name: 'Apply filters' }).click();
      const row = page.locator('table.executions tbody tr', { hasText: 'uname -a' });
      await row.waitFor();
      expect(await page.locator('table.executions tbody tr').count()).toBe(1);
      await shot(page, '11-audit');
      await row.getByRole('button', { name: 'Open' }).click();
      const dialog = page.getByRole('dialog');
      expect(await dialog.getByRole('region', { name: 'stdout' }).innerText()).toMatch(/Linux /);
      await shot(page, '12-audit-execution');
      await dialog.getByRole('button', { name: 'Close dialog' }).click();

      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Export CSV' }).click(),
      ]);
      expect(download.suggestedFilename()).toBe('audit-executions.csv');
      const csv = readFileSync(await download.path(), 'utf8');
      expect(csv.split('\r\n')[0]).toContain('request_id');
      expect(csv).toContain('uname -a');

      // The auditor's VM page has the History tab with the same execution.
      await page.goto(`${cp.url}/vms/vm-1/history`);
      await page.locator('table.executions tbody tr', { hasText: 'uname -a' }).waitFor();
      expect(await page.getByRole('button', { name: 'Run Script' }).count()).toBe(0);
      await shot(page, '13-vm-history');
    } finally {
      await context.close();
    }
  });

  it('should fit a phone screen', async () => {
    const { context, page } = await newPage({ width: 390, height: 844 });
    try {
      await signInWithPassword(page, 'olivia');
      await page.locator('tr[data-vm="vm-1"]').getByText('Connected', { exact: true }).waitFor();
      const overflow = await page.evaluate<number>(
        'document.documentElement.scrollWidth - document.documentElement.clientWidth',
      );
      expect(overflow).toBeLessThanOrEqual(0);
      await shot(page, '14-vm-list-phone');
    } finally {
      await context.close();
    }
  });

  it('should have raised no uncaught error in any page', () => {
    expect(pageErrors).toEqual([]);
  });
});
