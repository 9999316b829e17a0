// Issue 15 item 8 through the whole stack: the simulated VMs are real agents running as root on
// this machine, so a symlink that any unprivileged user plants in /tmp must not turn an
// operator's upload into a root write elsewhere. The links are made by user nobody (setpriv),
// exactly as a guest user would; the targets are names of our own under /etc/cron.d, removed in
// afterAll whatever happens.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import {
  adminFetch,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

/** `ln -s target link` as user nobody, the way an unprivileged guest user plants a link. */
function lnAsNobody(target: string, link: string): void {
  execFileSync('setpriv', [
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    '--clear-groups',
    'ln',
    '-s',
    target,
    link,
  ]);
  expect(lstatSync(link).uid).toBe(NOBODY);
}

(isRoot ? describe : describe.skip)('file writes through guest users’ symlinks', () => {
  const tag = randomBytes(6).toString('hex');
  const evil = `/etc/cron.d/lq-evil-${tag}`;
  const evilViaDir = `/etc/cron.d/lq-evil-dir-${tag}`;
  const evilConnect = `/etc/cron.d/lq-evil-connect-${tag}`;
  const fileLink = `/tmp/lq-link-${tag}`;
  const dirLink = `/tmp/lq-dirlink-${tag}`;
  const connectLink = `/tmp/lq-link-connect-${tag}`;
  const readLink = `/tmp/lq-readlink-${tag}`;
  const rootLink = `/tmp/lq-rootlink-${tag}`;
  const made = [fileLink, dirLink, connectLink, readLink, rootLink];
  const payload = '# harmless: written by a LimiQuantix test, must never land here\n';
  let stack: OneNodeStack | undefined;
  let cp: RunningControlPlane;

  const put = async (path: string) => {
    const res = await adminFetch(`${cp.url}/api/vms/vm-1/files?path=${encodeURIComponent(path)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: payload,
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  beforeAll(async () => {
    // The agent's default roots: the fix must hold without any allow-list to lean on.
    stack = await startOneNodeStack({
      name: 'symlinks',
      vms: 1,
      simConfig: { files: { roots: ['/'] } },
    });
    ({ cp } = stack);
  });

  afterAll(async () => {
    for (const path of [...made, evil, evilViaDir, evilConnect]) {
      rmSync(path, { force: true });
    }
    // Whatever a failing run left beside the targets (upload temp files) goes too.
    execFileSync('find', ['/etc/cron.d', '-maxdepth', '1', '-name', `*${tag}*`, '-delete']);
    await stack?.stop();
  });

  it('should refuse an upload to a link in /tmp and leave its target absent when nobody planted it', async () => {
    lnAsNobody(evil, fileLink);
    const r = await put(fileLink);
    expect(r.status).toBe(403);
    expect(r.body.agentCode).toBe('PATH_NOT_ALLOWED');
    expect(r.body.message).toContain(`"${fileLink}" is a symbolic link`);
    expect(existsSync(evil)).toBe(false);
    expect(lstatSync(fileLink).isSymbolicLink()).toBe(true);
  });

  it('should refuse an upload under a directory link owned by another user, naming it and its owner', async () => {
    lnAsNobody('/etc/cron.d', dirLink);
    const r = await put(`${dirLink}/lq-evil-dir-${tag}`);
    expect(r.status).toBe(403);
    expect(r.body.agentCode).toBe('PATH_NOT_ALLOWED');
    expect(r.body.message).toContain(`symbolic link "${dirLink}" is owned by uid ${NOBODY}`);
    expect(existsSync(evilViaDir)).toBe(false);
  });

  it('should refuse a single-chunk WriteGuestFile (Connect) to a link and create nothing', async () => {
    lnAsNobody(evilConnect, connectLink);
    const res = await adminFetch(`${cp.url}/limiquantix.compute.v1.VMService/WriteGuestFile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        vmId: 'vm-1',
        path: connectLink,
        data: Buffer.from(payload).toString('base64'),
        create: true,
        truncate: true,
      }),
    });
    const body = (await res.json()) as Record<string, any>;
    expect(res.status).toBe(403);
    expect(body.message).toContain('symbolic link');
    expect(existsSync(evilConnect)).toBe(false);
  });

  it('should still follow a link for a download when the file it reaches is inside the roots', async () => {
    const file = join(stack!.sim.vms[0]!.workDir, `readable-${tag}.txt`);
    writeFileSync(file, 'through the link\n');
    lnAsNobody(file, readLink);
    const res = await adminFetch(
      `${cp.url}/api/vms/vm-1/files?path=${encodeURIComponent(readLink)}`,
    );
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('through the link\n');
  });

  it('should upload through a directory link root owns (like /bin -> usr/bin) into its target', async () => {
    const workDir = stack!.sim.vms[0]!.workDir;
    symlinkSync(workDir, rootLink);
    const r = await put(`${rootLink}/via-root-link-${tag}.txt`);
    expect(r.status).toBe(200);
    expect(readFileSync(join(workDir, `via-root-link-${tag}.txt`), 'utf8')).toBe(payload);
  });
});
