import { open } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { AgentUpdateRequestSchema, type AgentUpdateResponse } from '@lq/proto';
import type { AgentUpdateView } from '@lq/api';
import type { DomainException } from '../../common/errors/domain.exception.js';
import { guestFailure } from '../guest-errors.js';
import { VmGuestErrorCode, VmGuestException } from '../vm-guest.exception.js';
import type { Dispatcher, GuestOperationSpec } from '../guest-operation.js';
import { invalid } from './validate.js';

const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$/;
const UPDATE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Largest chunk sent, whatever the node relays (the agent's default chunk limit). */
const CHUNK_MAX_BYTES = 1024 * 1024;
/** A status question to an agent that is restarting (it may be gone for a while). */
const STATUS_TIMEOUT_MS = 5000;

/** The executable an update sends (a release's signed artifact for one target). */
export interface UpdateArtifact {
  version: string;
  target: string;
  path: string;
  sha256: string;
  size: number;
  /** base64 */
  signature: string;
}

/** Where one VM's update has got to (rollouts record each step). */
export type AgentUpdateStep = 'sent' | 'verified' | 'restarted';

export interface AgentUpdateInput {
  version: string;
  allowDowngrade?: boolean;
  /** Names the update in the guest and in the audit rows; generated when absent. */
  updateId: string;
  /** The rollout it belongs to, recorded in its audit rows. */
  rolloutId?: string;
  /** The release's artifact for a build target (the VM's, known once it is located). */
  artifactFor(target: string): UpdateArtifact | undefined;
  /** A signed release-key list sent along (key rotation, PROTOCOL.md §10). */
  keyList?: { list: Uint8Array; signature: Uint8Array };
  /** How long to wait past the agent's own ready deadline, and between status questions. */
  readyGraceMs: number;
  pollMs: number;
  /** How long a chunk, and the commit, may wait for the agent's answer. */
  chunkTimeoutMs: number;
  commitTimeoutMs: number;
  onStep?: (step: AgentUpdateStep) => void;
}

/**
 * agent.update (PROTOCOL.md §10): sends the release's executable for the VM's build target in
 * chunks, commits it (the guest verifies sha256 and signature, keeps the previous executable and
 * swaps), then asks the restarting agent for its status until the new version is ready, the
 * watchdog has rolled it back, or the wait is over. Every request goes under the one intent.
 */
export const AGENT_UPDATE: GuestOperationSpec<AgentUpdateInput, AgentUpdateView> = {
  name: 'agent.update',
  permission: 'guest.agent.update',
  prepare: (input) => {
    if (typeof input.version !== 'string' || !VERSION.test(input.version)) {
      throw invalid('version', 'must be a release version like 0.2.0');
    }
    if (!UPDATE_ID.test(input.updateId)) {
      throw invalid('update_id', 'must be 1-64 letters, digits, _ or -');
    }
    let artifact: UpdateArtifact | undefined;
    let from = '';
    let vm = '';
    const params: Record<string, unknown> = {
      update_id: input.updateId,
      to_version: input.version,
      allow_downgrade: input.allowDowngrade ?? false,
      ...(input.rolloutId ? { rollout_id: input.rolloutId } : {}),
    };
    return {
      params,
      check: (where, vmId) => {
        const target = where.agentTarget ?? '';
        if (!target) {
          throw new VmGuestException(
            VmGuestErrorCode.INVALID_REQUEST,
            `the agent of ${vmId} has not reported its build target (agents before 0.4.0 cannot update themselves)`,
          );
        }
        artifact = input.artifactFor(target);
        if (!artifact) {
          throw invalid(
            'version',
            `release ${input.version} has no signed executable for ${target} (GET /api/agent/releases)`,
          );
        }
        from = where.agentVersion ?? '';
        vm = vmId;
        params.from_version = from;
        params.target = target;
        params.sha256 = artifact.sha256;
        params.size = artifact.size;
      },
      dispatch: (d) => update(d, input, artifact!, from, vm),
      // A failed update still names its update and rollout (an auditor follows a rollout by it).
      failureParams: {
        update_id: input.updateId,
        to_version: input.version,
        ...(input.rolloutId ? { rollout_id: input.rolloutId } : {}),
      },
      outcome: (r) => ({
        status: r.state,
        params: {
          update_id: r.update_id,
          from_version: r.from_version,
          to_version: r.to_version,
          version: r.version,
          reason: r.reason,
          ...(input.rolloutId ? { rollout_id: input.rolloutId } : {}),
        },
      }),
    };
  },
};

async function update(
  d: Dispatcher,
  input: AgentUpdateInput,
  artifact: UpdateArtifact,
  from: string,
  vmId: string,
): Promise<AgentUpdateView> {
  const chunkBytes = Math.min(d.where.fileChunkMaxBytes || 512 * 1024, CHUNK_MAX_BYTES);
  const release = {
    updateId: input.updateId,
    size: BigInt(artifact.size),
  };
  const file = await open(artifact.path, 'r');
  let committed: AgentUpdateResponse;
  try {
    const buffer = Buffer.alloc(chunkBytes);
    let offset = 0;
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, chunkBytes, offset);
      const last = offset + bytesRead >= artifact.size;
      if (bytesRead === 0 && !last) {
        throw new Error(`${artifact.path} is shorter than its release says (${artifact.size})`);
      }
      const request = create(AgentUpdateRequestSchema, {
        ...release,
        offset: BigInt(offset),
        data: buffer.subarray(0, bytesRead),
        ...(last
          ? {
              commit: true,
              version: artifact.version,
              target: artifact.target,
              sha256: artifact.sha256,
              signature: Buffer.from(artifact.signature, 'base64'),
              allowDowngrade: input.allowDowngrade ?? false,
              keyList: input.keyList?.list,
              keyListSignature: input.keyList?.signature,
            }
          : {}),
      });
      if (last) {
        input.onStep?.('sent');
      }
      // A commit verifies the whole file and swaps it in before it answers.
      const answer = await d
        .send(
          'agent.update',
          { case: 'agentUpdate', value: request },
          last ? input.commitTimeoutMs : input.chunkTimeoutMs,
          '',
        )
        .catch((err: unknown) => {
          throw timedOut(guestFailure(err, vmId, d.where.nodeId), last, offset, artifact.size);
        });
      offset += bytesRead;
      if (last) {
        committed = answer;
        break;
      }
    }
  } finally {
    await file.close();
  }
  input.onStep?.('verified');
  const view = (state: AgentUpdateView['state'], version: string, reason: string) => ({
    vm_id: '',
    update_id: input.updateId,
    state,
    from_version: committed.version || from,
    to_version: artifact.version,
    version,
    target: artifact.target,
    reason,
  });

  const waitMs = committed.readyTimeoutMs + input.readyGraceMs;
  const until = Date.now() + waitMs;
  let restarted = false;
  let lastError = '';
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, input.pollMs));
    let status: AgentUpdateResponse;
    try {
      status = await d.send(
        'agent.update',
        {
          case: 'agentUpdate',
          value: create(AgentUpdateRequestSchema, { updateId: input.updateId, status: true }),
        },
        STATUS_TIMEOUT_MS,
        '',
      );
    } catch (err) {
      // The agent is restarting: not connected, or not answering yet.
      lastError = (err as Error).message;
      continue;
    }
    const last = status.lastUpdate;
    if (last?.updateId !== input.updateId) {
      continue; // the old agent, before it exited
    }
    if (!restarted && status.version === artifact.version) {
      restarted = true;
      input.onStep?.('restarted');
    }
    if (last.result === 'ok' && status.version === artifact.version) {
      return view('ready', status.version, '');
    }
    if (last.result === 'rolled_back') {
      return view('rolled_back', status.version, last.reason);
    }
  }
  return view(
    'failed',
    '',
    `the agent did not report the update's end within ${Math.round(waitMs / 1000)} s${
      lastError ? ` (last error: ${lastError})` : ''
    }`,
  );
}

/** A timeout names the part of the update that got no answer and the setting that bounds it. */
function timedOut(err: DomainException, commit: boolean, offset: number, size: number) {
  if (
    !(err instanceof VmGuestException) ||
    (err.code !== VmGuestErrorCode.AGENT_TIMEOUT && err.code !== VmGuestErrorCode.NODE_TIMEOUT)
  ) {
    return err;
  }
  const part = commit
    ? 'the commit (LQ_AGENT_UPDATE_COMMIT_TIMEOUT_MS)'
    : `the chunk at byte ${offset} of ${size} (LQ_AGENT_UPDATE_CHUNK_TIMEOUT_MS)`;
  return new VmGuestException(err.code, `${part}: ${err.message}`, err.agentCode);
}
