// The console's agent lifecycle (issue 19, acceptance 5) in Debian's Chromium against the real
// stack: the VM list shows each agent's version and an "outdated" mark, the VM page's "Update
// agent" button replaces the agent (a real agent process swapping its executable), and the
// rollout page starts a rollout and shows every VM's step until it ends.
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startOneNodeStack, type OneNodeStack } from '../support/one-node-stack.js';
import { TEST_ADMIN_TOKEN } from '../support/control-plane-process.js';
import { AGENT_BUNDLE } from '../support/sim-vms.js';
import { REPO_ROOT } from '../support/service-process.js';
import {
  NODE_TARGET,
  buildAgentBundle,
  killProcessesMentioning,
  releaseKey,
  writeRelease,
} from '../support/agent-release.js';

const CHROMIUM = process.env.LQ_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(REPO_ROOT, 'test-artifacts/console');
const WAIT_MS = 60_000;
const B = '0.2.0';

describe('agent versions, update and rollouts in the console', () => {
  let stack: OneNodeStack;
  let downloads: string;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set LQ_CHROMIUM)`);
    }
    mkdirSync(SHOTS, { recursive: true });
    const key = releaseKey();
    downloads = join(REPO_ROOT, `test-artifacts/agent-downloads-${process.pid}`);
    mkdirSync(downloads, { recursive: true });
    const workDirs: string[] = [];
    stack = await startOneNodeStack({
      name: 'consoleupd',
      vms: 3,
      cpEnv: { LQ_AGENT_DOWNLOADS_DIR: downloads, LQ_AGENT_UPDATE_POLL_MS: '300' },
      simConfig: ({ workDir }) => {
        workDirs.push(workDir);
        return {
          update: {
            executable: join(workDir, 'agent.cjs'),
            state_dir: join(workDir, 'update'),
            ready_timeout_ms: 15_000,
            release_keys: [key.publicKey],
          },
        };
      },
    });
    for (const dir of workDirs) {
      copyFileSync(AGENT_BUNDLE, join(dir, 'agent.cjs'));
    }
    const build = join(stack.work, 'b.cjs');
    await buildAgentBundle(B, build);
    writeRelease(
      join(downloads, B),
      B,
      [{ target: NODE_TARGET, from: build, name: 'agent.cjs' }],
      key,
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(stack.cp.url);
    await page.getByRole('tab', { name: 'API key' }).click();
    await page.getByLabel('API key').fill(TEST_ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    if (stack) {
      killProcessesMentioning(stack.work);
    }
    if (downloads) {
      rmSync(downloads, { recursive: true, force: true });
    }
  });

  it('should show each agent version with an outdated mark in the VM list', async () => {
    // The catalog reads the downloads directory every few seconds: the mark follows.
    const row = page.locator('tr[data-vm="vm-1"]');
    await row.locator('.badge-outdated').waitFor();
    expect(await row.locator('.agent-version').innerText()).toMatch(/0\.1\.0\s*outdated/);
    await page.screenshot({ path: join(SHOTS, 'agent-01-vm-list-outdated.png'), fullPage: true });
  });

  it('should update one VM from its page with the Update agent button', async () => {
    await page.goto(`${stack.cp.url}/vms/vm-1/agent`);
    const button = page.getByRole('button', { name: `Update agent to ${B}` });
    await button.click();
    await page.getByText(`The agent was updated from 0.1.0 to ${B}.`).waitFor();
    await page.screenshot({ path: join(SHOTS, 'agent-02-vm-updated.png'), fullPage: true });
    await page.goto(stack.cp.url);
    const row = page.locator('tr[data-vm="vm-1"]');
    await row.locator('.agent-version', { hasText: B }).waitFor();
    expect(await row.locator('.badge-outdated').count()).toBe(0);
  });

  it('should start a rollout from the rollout page and show every VM step to the end', async () => {
    await page.getByRole('link', { name: 'Agent rollouts' }).click();
    await page.getByLabel('Release').selectOption(B);
    await page.getByLabel('VMs (ids, comma-separated)').fill('vm-2, vm-3');
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.getByTestId('rollout-status').filter({ hasText: 'succeeded' }).waitFor();
    for (const vm of ['vm-2', 'vm-3']) {
      expect(await page.locator(`tr[data-vm="${vm}"] td[data-label="Step"]`).innerText()).toBe(
        'ready',
      );
    }
    expect(await page.getByTestId('rollout-summary').innerText()).toContain('2 ready');
    await page.screenshot({ path: join(SHOTS, 'agent-03-rollout.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });
});
