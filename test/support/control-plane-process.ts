import { readFileSync } from 'node:fs';
import { freePort } from './nats-server.js';
import { spawnService, type ServiceProcess } from './service-process.js';
import { testSigningKeyFile } from './signing.js';

/** The bootstrap admin key test control planes start with (LQ_ADMIN_TOKEN). */
export const TEST_ADMIN_TOKEN = 'lq_testadmn_TestAdminKey0123456789abcdefghijklmnop';

/** fetch with the test admin's bearer token (headers given by the caller win). */
export function adminFetch(input: string, init: RequestInit = {}): Promise<Response> {
  return fetch(input, {
    ...init,
    headers: {
      Authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      ...(init.headers as Record<string, string> | undefined),
    },
  });
}

/**
 * Waits until the control plane at `url` lists at least `count` VMs with a ready agent (of
 * `ids`, when given); fails naming what it saw after `timeoutMs`.
 */
export async function waitForReadyVms(
  url: string,
  count: number,
  {
    timeoutMs = 60_000,
    ids,
    token = TEST_ADMIN_TOKEN,
  }: { timeoutMs?: number; ids?: string[]; token?: string } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${url}/api/vms`, { headers: { Authorization: `Bearer ${token}` } });
    const body = (await res.json()) as {
      vms?: Array<{ id: string; agent_state: string }>;
    };
    const ready = (body.vms ?? []).filter(
      (v) => v.agent_state === 'ready' && (!ids || ids.includes(v.id)),
    );
    if (ready.length >= count) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${ready.length} of ${count} VMs ready after ${timeoutMs} ms: ${JSON.stringify(body)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface RunningControlPlane extends ServiceProcess {
  url: string;
  grpcPort: number;
  memory(): { rss: number; hwm: number };
}

/** Starts the real control plane (the tsc build) as its own process on free ports. */
export async function startControlPlaneProcess(options: {
  databaseUrl: string;
  natsUrl: string;
  env?: Record<string, string>;
  /** How long to wait for it to be up (default 60 s). */
  readyTimeoutMs?: number;
}): Promise<RunningControlPlane> {
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const service = await spawnService({
    main: 'dist/tsc/apps/control-plane/src/main.js',
    env: {
      DATABASE_URL: options.databaseUrl,
      NATS_URL: options.natsUrl,
      LQ_HTTP_HOST: '127.0.0.1',
      LQ_HTTP_PORT: String(httpPort),
      LQ_GRPC_HOST: '127.0.0.1',
      LQ_GRPC_PORT: String(grpcPort),
      LQ_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      LQ_SIGNING_KEY_FILE: testSigningKeyFile(),
      ...options.env,
    },
    readyText: ' up: ',
    // Generous: a busy 2-core machine has taken over 20 s to start one.
    timeoutMs: options.readyTimeoutMs ?? 60_000,
  });
  return {
    ...service,
    url: `http://127.0.0.1:${httpPort}`,
    grpcPort,
    memory() {
      const status = readFileSync(`/proc/${service.proc.pid}/status`, 'utf8');
      const kb = (key: string) =>
        Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
      return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
    },
  };
}
