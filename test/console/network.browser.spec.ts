// Browser test of the console's Network tab (issue 20 item 4, acceptance 1): Debian's Chromium
// driven by playwright-core against the real stack (PostgreSQL, nats-server, a node daemon, a
// simulated VM whose agent drives ifupdown over a file in its work dir with ifup/ifdown as the
// simulator's recorder — this machine's network is never touched — and the control plane serving
// dist/console). The configuration as the agent reads it, the preview of the native file, an
// apply confirmed once the guest reports its addresses, one rolled back when it does not, a bad
// value refused, and the form hidden from a viewer. Every wait is on a condition.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser } from 'playwright-core';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../support/control-plane-process.js';
import { CHROMIUM, SHOTS, WAIT_MS, consoleSession } from '../support/console-browser.js';
import { REPO_ROOT } from '../support/service-process.js';

const PASSWORD = 'Console-Net-Passphrase-2718';

let work: string;
let db: TestDatabase;
let nats: RunningNats;
let sim: SimVms;
let daemon: RunningNodeDaemon;
let cp: RunningControlPlane;
let browser: Browser;
const pageErrors: string[] = [];
const { userWith, signedIn } = consoleSession({
  url: () => cp.url,
  browser: () => browser,
  password: PASSWORD,
  pageErrors,
});

/** An interface of this machine with an IPv4 address: the simulated agent reports it as live. */
function liveInterface(): { name: string; cidr: string } {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const v4 = addrs?.find((a) => a.family === 'IPv4' && !a.internal && a.cidr);
    if (v4 && !/^(lo|veth|docker|virbr|br-)/.test(name) && name.length <= 15) {
      return { name, cidr: v4.cidr! };
    }
  }
  throw new Error('this machine has no non-loopback IPv4 interface for the test to use');
}

describe('console network form in Chromium', () => {
  const interfacesFile = () => readFileSync(join(sim.vms[0]!.workDir, 'interfaces'), 'utf8');
  const recorded = () => readFileSync(sim.vms[0]!.shutdownLog, 'utf8');

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set LQ_CHROMIUM)`);
    }
    if (!existsSync(join(REPO_ROOT, 'dist/console/index.html'))) {
      throw new Error('dist/console is missing: node scripts/build-console.mjs');
    }
    mkdirSync(SHOTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'lq-console-net-'));
    [db, nats, sim] = await Promise.all([
      createTestDatabase('lq_console_net'),
      startNatsServer(),
      startSimVms({ dir: work, count: 1, prefix: 'vm-' }),
    ]);
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_PASSWORD_SCRYPT_LOG_N: '12' },
    });
    daemon = await startNodeDaemon({ nodeId: 'node-1', natsUrl: nats.url, channelDirs: [work] });
    await waitForReadyVms(cp.url, 1, { timeoutMs: WAIT_MS });
    await userWith('nora', 'operator');
    await userWith('vic', 'viewer');
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

  it('should show the configuration, preview the native file, and apply it once confirmed', async () => {
    const live = liveInterface();
    const { context, page } = await signedIn('nora');
    try {
      await page.goto(`${cp.url}/vms/vm-1/network`);
      await page.getByText('ifupdown (/etc/network/interfaces)').waitFor();
      const table = page.getByRole('table', { name: 'Configured interfaces' });
      await table.getByRole('cell', { name: 'DHCP' }).waitFor();

      const form = page.getByRole('form', { name: 'Configure network' });
      await form.getByLabel('Interface').fill(live.name);
      await form.getByLabel('Addressing').selectOption('static');
      await form.getByLabel(/Addresses/).fill(live.cidr);
      await form.getByLabel('DNS servers').fill('192.0.2.53');
      await form.getByLabel(/MTU/).fill('1400');
      await form.getByRole('button', { name: 'Preview' }).click();
      const preview = page.getByLabel('Preview');
      await preview.getByText(`iface ${live.name} inet static`, { exact: false }).waitFor();
      await preview.getByText('dns-nameservers 192.0.2.53', { exact: false }).waitFor();
      // A preview changes nothing.
      expect(interfacesFile()).not.toContain('inet static');
      expect(recorded()).toBe('');
      await page.screenshot({ path: join(SHOTS, '40-network-preview.png'), fullPage: true });

      await form.getByRole('button', { name: 'Apply' }).click();
      await page
        .getByText(`Applied and confirmed: the guest reports ${live.name} ${live.cidr}.`)
        .waitFor({ timeout: 60_000 });
      expect(interfacesFile()).toContain(`iface ${live.name} inet static`);
      expect(recorded()).toContain(`ifup ${live.name}`);
      await page
        .getByLabel('Last apply')
        .getByText(/Last change confirmed/)
        .waitFor();
      await page.screenshot({ path: join(SHOTS, '41-network-confirmed.png'), fullPage: true });
    } finally {
      await context.close();
    }
  }, 120_000);

  it('should say the guest rolled back when it never reports the new address', async () => {
    const { context, page } = await signedIn('nora');
    try {
      const before = interfacesFile();
      await page.goto(`${cp.url}/vms/vm-1/network`);
      const form = page.getByRole('form', { name: 'Configure network' });
      await form.getByLabel('Interface').fill('eth9');
      await form.getByLabel('Addressing').selectOption('static');
      await form.getByLabel(/Addresses/).fill('10.99.0.5/24');
      await form.getByLabel('Gateway').fill('10.99.1.1');
      await form.getByRole('button', { name: 'Apply' }).click();
      // Refused before anything is sent: the gateway is outside the prefix.
      await page.getByText(/gateway: 10\.99\.1\.1 is not inside any of the addresses/).waitFor();
      await form.getByLabel('Gateway').fill('10.99.0.1');
      await form.getByLabel(/Roll back unless confirmed within/).fill('5');
      await form.getByRole('button', { name: 'Apply' }).click();
      await page
        .getByText(
          /^Rolled back: the guest restored its previous configuration \(confirmation deadline passed\)/,
        )
        .waitFor({ timeout: 90_000 });
      expect(interfacesFile()).toBe(before);
      await page.screenshot({ path: join(SHOTS, '42-network-rolled-back.png'), fullPage: true });
    } finally {
      await context.close();
    }
  }, 150_000);

  it('should show a viewer the configuration without the form', async () => {
    const { context, page } = await signedIn('vic');
    try {
      await page.goto(`${cp.url}/vms/vm-1/network`);
      await page.getByRole('table', { name: 'Configured interfaces' }).waitFor();
      expect(await page.getByRole('form', { name: 'Configure network' }).count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  it('should have raised no uncaught error in any page', () => {
    expect(pageErrors).toEqual([]);
  });
});
