import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** Signals a whole process group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * kill(-pgid, 0) also succeeds while zombies of the group remain, and orphans stay zombies for as
 * long as the guest's init does not reap them; only members that still run count here.
 */
export async function groupHasLiveMembers(procDir: string, pgid: number): Promise<boolean> {
  if (!signalGroup(pgid, 0)) {
    return false;
  }
  let names: string[];
  try {
    names = await readdir(procDir);
  } catch {
    return true;
  }
  const states = await Promise.all(
    names
      .filter((name) => /^\d+$/.test(name))
      .map((name) => readFile(`${procDir}/${name}/stat`, 'utf8').catch(() => '')),
  );
  return states.some((text) => {
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (
      fields.length > 2 && Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X'
    );
  });
}

/**
 * Polls until the group is gone and returns true; false when members still run after liveMs.
 * Members that are only zombies count as gone after zombieMs: an init that reaps lazily keeps them
 * for seconds, while a prompt one (systemd) lets kill() see the group vanish at once.
 */
export async function waitGroupGone(
  procDir: string,
  pgid: number,
  liveMs: number,
  zombieMs: number,
): Promise<boolean> {
  const started = Date.now();
  for (;;) {
    if (!signalGroup(pgid, 0)) {
      return true;
    }
    const live = await groupHasLiveMembers(procDir, pgid);
    const elapsed = Date.now() - started;
    if (!live && elapsed >= zombieMs) {
      return true;
    }
    if (elapsed >= liveMs) {
      return !live;
    }
    await sleep(10);
  }
}
