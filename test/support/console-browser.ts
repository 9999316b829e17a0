// What the console's browser tests share: where Chromium is, where screenshots go, and a session
// against one control plane (admin API calls, users with a role, a signed-in browser page).
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminFetch } from './control-plane-process.js';
import { REPO_ROOT } from './service-process.js';

export const CHROMIUM = process.env.LQ_CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS = join(REPO_ROOT, 'test-artifacts/console');
/** How long a page waits for what it expects (the machine is shared and busy). */
export const WAIT_MS = 20_000;

export interface ConsoleSession {
  /** An admin API call; a status of 300 or more throws with the body. */
  api<T = Record<string, unknown>>(path: string, method?: string, body?: unknown): Promise<T>;
  /** Creates a user with the session's password and binds it to `role`. */
  userWith(username: string, role: string): Promise<void>;
  /** A new browser context signed in as `username`; page errors go to `pageErrors`. */
  signedIn(username: string): Promise<{ context: BrowserContext; page: Page }>;
}

export function consoleSession(options: {
  url: () => string;
  browser: () => Browser;
  password: string;
  pageErrors: string[];
  acceptDownloads?: boolean;
  /** A page's default wait (WAIT_MS unless given). */
  waitMs?: number;
}): ConsoleSession {
  const api = async <T = Record<string, unknown>>(
    path: string,
    method = 'GET',
    body?: unknown,
  ): Promise<T> => {
    const res = await adminFetch(`${options.url()}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 300) {
      throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
    }
    return (text ? JSON.parse(text) : {}) as T;
  };
  return {
    api,
    async userWith(username, role) {
      await api('/api/users', 'POST', { username, password: options.password });
      await api('/api/role-bindings', 'POST', { user: username, role });
    },
    async signedIn(username) {
      const context = await options.browser().newContext({
        viewport: { width: 1366, height: 900 },
        ...(options.acceptDownloads ? { acceptDownloads: true } : {}),
      });
      const page = await context.newPage();
      page.setDefaultTimeout(options.waitMs ?? WAIT_MS);
      page.on('pageerror', (err) => options.pageErrors.push(err.message));
      await page.goto(options.url());
      await page.getByLabel('Username', { exact: true }).fill(username);
      await page.getByLabel('Password', { exact: true }).fill(options.password);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      return { context, page };
    },
  };
}
