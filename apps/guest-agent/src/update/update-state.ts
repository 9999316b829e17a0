// The update state file (PROTOCOL.md §10): written by the agent that swaps its executable, read
// by the watchdog (the old executable) and by the new agent, which confirms it. It outlives the
// processes, so the agent that runs afterwards — new or restored — reports how the update ended.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { AgentUpdateResultSchema, type AgentUpdateResult } from '@lq/proto';

export type UpdatePhase = 'pending' | 'confirmed' | 'rolled_back';

export interface UpdateState {
  update_id: string;
  from_version: string;
  to_version: string;
  phase: UpdatePhase;
  /** When the watchdog gives up on the new agent (ms since the epoch). */
  deadline_ms: number;
  executable: string;
  previous: string;
  /** How the agent is started again without a service manager (program and arguments). */
  relaunch: string[];
  /** The service manager's restart command; null: the watchdog re-executes the agent. */
  restart_command: string[] | null;
  /** The agent that swapped (the watchdog waits for it to exit before re-executing). */
  old_pid: number;
  /** The agent the watchdog started (re-exec mode). */
  new_pid?: number;
  reason?: string;
  /** When the phase last changed (ISO). */
  at: string;
}

export const STATE_FILE = 'update-state.json';

export function stateFileIn(dir: string): string {
  return join(dir, STATE_FILE);
}

export function readUpdateState(file: string): UpdateState | undefined {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as UpdateState;
    return typeof s.update_id === 'string' && typeof s.phase === 'string' ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Replaces the file whole (temp file + rename): a reader sees the old state or the new. */
export function writeUpdateState(file: string, state: UpdateState): void {
  const temp = `${file}.tmp-${process.pid}`;
  writeFileSync(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

/** How the update ended, as AgentInfo.last_update reports it. */
export function updateResultOf(state: UpdateState): AgentUpdateResult {
  return create(AgentUpdateResultSchema, {
    updateId: state.update_id,
    fromVersion: state.from_version,
    toVersion: state.to_version,
    result:
      state.phase === 'confirmed'
        ? 'ok'
        : state.phase === 'rolled_back'
          ? 'rolled_back'
          : 'pending',
    reason: state.reason ?? '',
    at: timestampFromDate(new Date(state.at)),
  });
}
