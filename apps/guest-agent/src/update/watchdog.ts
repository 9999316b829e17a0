// The update watchdog (PROTOCOL.md §10): `limiquantix-agent update-watchdog --state FILE`, run
// from the *previous* executable — the one known to start — in a session of its own, so it
// outlives the agent that swapped the files. It starts the new agent (re-executing it, or through
// the service manager's restart command), waits for the new agent to confirm the update (which it
// does right after its first AgentReady), and otherwise puts the previous executable back and
// starts that. Plain Node.js: it runs where nothing else of the agent is loaded.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { renameSync } from 'node:fs';
import { readUpdateState, writeUpdateState, type UpdateState } from './update-state.js';

const POLL_MS = 200;
/** How long the old agent may take to exit before the watchdog ends it. */
const OLD_EXIT_GRACE_MS = 15_000;
const KILL_GRACE_MS = 2_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function say(msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: `update-watchdog: ${msg}`, ...fields })}\n`,
  );
}

/** Starts the agent in a session of its own, detached from the watchdog (which exits soon). */
function launch(argv: string[]): ChildProcess {
  const [program, ...args] = argv;
  const child = spawn(program!, args, { detached: true, stdio: ['ignore', 'ignore', 'inherit'] });
  child.on('error', (err) => say('could not start the agent', { argv, error: err.message }));
  child.unref();
  return child;
}

function runRestart(command: string[]): void {
  const [program, ...args] = command;
  const r = spawnSync(program!, args, { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
  say('restart command ran', { command, status: r.status, error: r.error?.message });
}

async function waitGone(pid: number): Promise<void> {
  const until = Date.now() + OLD_EXIT_GRACE_MS;
  while (alive(pid) && Date.now() < until) {
    await sleep(50);
  }
  if (alive(pid)) {
    say('the old agent did not exit: ending it', { pid });
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    while (alive(pid)) {
      await sleep(50);
    }
  }
}

async function stop(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const group = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // gone
    }
  };
  group('SIGTERM');
  const until = Date.now() + KILL_GRACE_MS;
  while (alive(pid) && Date.now() < until) {
    await sleep(50);
  }
  group('SIGKILL');
}

export async function runWatchdog(stateFile: string): Promise<number> {
  const initial = readUpdateState(stateFile);
  if (!initial || initial.phase !== 'pending') {
    say('nothing pending', { stateFile });
    return 0;
  }
  say('watching an update', {
    update: initial.update_id,
    from: initial.from_version,
    to: initial.to_version,
  });
  let child: ChildProcess | undefined;
  let exited: string | undefined;
  if (initial.restart_command) {
    runRestart(initial.restart_command);
  } else {
    await waitGone(initial.old_pid);
    child = launch(initial.relaunch);
    child.on('exit', (code, signal) => {
      exited = signal ? `signal ${signal}` : `code ${code}`;
    });
    writeUpdateState(stateFile, { ...initial, new_pid: child.pid });
  }

  let reason: string | undefined;
  for (;;) {
    const state = readUpdateState(stateFile);
    if (!state || state.update_id !== initial.update_id) {
      say('the state file changed hands: leaving it', { stateFile });
      return 0;
    }
    if (state.phase === 'confirmed') {
      say('the new agent confirmed the update', { version: state.to_version });
      return 0;
    }
    if (exited !== undefined) {
      reason = `the new agent ${state.to_version} exited with ${exited} before it said AgentReady`;
      break;
    }
    if (Date.now() >= state.deadline_ms) {
      reason = `the new agent ${state.to_version} did not say AgentReady within ${Math.round(
        (state.deadline_ms - Date.parse(initial.at)) / 1000,
      )} s`;
      break;
    }
    await sleep(POLL_MS);
  }

  say('rolling back', { reason });
  if (child) {
    await stop(child);
  }
  const state: UpdateState = readUpdateState(stateFile) ?? initial;
  renameSync(state.previous, state.executable);
  writeUpdateState(stateFile, {
    ...state,
    phase: 'rolled_back',
    reason,
    at: new Date().toISOString(),
  });
  if (state.restart_command) {
    runRestart(state.restart_command);
  } else {
    launch(state.relaunch);
  }
  return 1;
}
