import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import {
  ShutdownMode,
  ShutdownRequestSchema,
  type CancelExecutionResponse,
  type GetFsInfoResponse,
  type GetInfoResponse,
  type GetOsInfoResponse,
  type QuiesceResponse,
  type QuiesceStatusResponse,
  type SetUserPasswordResponse,
  type ShutdownResponse,
  type SyncTimeResponse,
  type ThawResponse,
} from '@lq/proto';
import { runAsLimitsOf } from '../../access/vm-access.service.js';
import { connectBinding } from '../connect-binding.js';
import type { GuestOperationSpec } from '../guest-operation.js';
import { checkPath, invalid } from './validate.js';

// Freezing runs hooks (each up to the agent's hook timeout) before it answers.
const QUIESCE_REPLY_MS = 300_000;

export interface ShutdownInput {
  mode: ShutdownMode;
  delaySeconds: number;
}

/** Powers off, reboots or halts the guest through its agent (answered before it acts). */
export const SHUTDOWN: GuestOperationSpec<ShutdownInput, ShutdownResponse> = {
  name: 'shutdown',
  permission: 'guest.power',
  prepare: ({ mode, delaySeconds }, env) => {
    if (!Object.values(ShutdownMode).includes(mode) || mode === ShutdownMode.UNSPECIFIED) {
      throw invalid('mode', 'must be poweroff, reboot or halt');
    }
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { mode: ShutdownMode[mode].toLowerCase(), delay_seconds: delaySeconds },
      dispatch: (d) =>
        d.send(
          'shutdown',
          { case: 'shutdown', value: create(ShutdownRequestSchema, { mode, delaySeconds }) },
          timeoutMs,
        ),
      outcome: () => ({ status: 'ok' }),
    };
  },
  connect: connectBinding({
    method: 'guestShutdown',
    input: (req) => ({
      vmId: req.vmId,
      input: {
        mode: req.mode === ShutdownMode.UNSPECIFIED ? ShutdownMode.POWEROFF : req.mode,
        delaySeconds: req.delaySeconds,
      },
    }),
    output: (r) => ({ mode: r.mode, scheduledAt: r.scheduledAt }),
  }),
};

export interface QuiesceInput {
  mountPoints: string[];
  timeoutSeconds?: number;
}

/** Freezes the guest's filesystems (hooks first; the guest thaws itself after timeout_seconds). */
export const QUIESCE: GuestOperationSpec<QuiesceInput, QuiesceResponse> = {
  name: 'quiesce',
  permission: 'guest.quiesce',
  prepare: ({ mountPoints, timeoutSeconds }, env) => {
    for (const m of mountPoints) {
      checkPath(env.config, m, 'mount_points');
    }
    return {
      params: { mount_points: mountPoints, timeout_seconds: timeoutSeconds },
      dispatch: (d) =>
        d.send(
          'quiesce',
          { case: 'quiesce', value: { mountPoints, timeoutSeconds: timeoutSeconds ?? 0 } },
          QUIESCE_REPLY_MS,
        ),
      outcome: (r) => ({ status: 'ok', params: { frozen: r.frozen, hooks: r.hooks.length } }),
    };
  },
  connect: connectBinding({
    method: 'quiesceFilesystems',
    input: (req) => ({
      vmId: req.vmId,
      input: { mountPoints: req.mountPoints, timeoutSeconds: req.timeoutSeconds || undefined },
    }),
    output: (result) => ({ result }),
  }),
};

/** Thaws the guest's filesystems (post-thaw hooks after). */
export const THAW: GuestOperationSpec<void, ThawResponse> = {
  name: 'thaw',
  permission: 'guest.quiesce',
  prepare: () => ({
    params: {},
    dispatch: (d) => d.send('thaw', { case: 'thaw', value: {} }, QUIESCE_REPLY_MS),
    outcome: (r) => ({ status: 'ok', params: { thawed: r.thawed, was_frozen: r.wasFrozen } }),
  }),
  connect: connectBinding({
    method: 'thawFilesystems',
    input: (req) => ({ vmId: req.vmId, input: undefined }),
    output: (result) => ({ result }),
  }),
};

/** Whether the guest is frozen, which mounts, until when (vm.read). */
export const QUIESCE_STATUS: GuestOperationSpec<void, QuiesceStatusResponse> = {
  name: 'quiesce.status',
  permission: 'vm.read',
  prepare: (_, env) => {
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: {},
      dispatch: (d) => d.send('quiesce.status', { case: 'quiesceStatus', value: {} }, timeoutMs),
      outcome: (r) => ({ status: 'ok', params: { frozen: r.frozen } }),
    };
  },
  connect: connectBinding({
    method: 'getQuiesceStatus',
    input: (req) => ({ vmId: req.vmId, input: undefined }),
    output: (status) => ({ status }),
  }),
};

/** Steps the guest clock (its time service, or this control plane's clock with force). */
export const TIME_SYNC: GuestOperationSpec<{ force: boolean }, SyncTimeResponse> = {
  name: 'time.sync',
  permission: 'guest.time',
  prepare: ({ force }, env) => {
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { force },
      dispatch: (d) =>
        d.send(
          'time.sync',
          { case: 'syncTime', value: { force, hostTime: timestampNow() } },
          timeoutMs,
        ),
      outcome: (r) => ({
        status: 'ok',
        params: {
          method: r.method,
          offset_before_ms: r.offsetBeforeMs,
          offset_after_ms: r.offsetAfterMs,
          rtc_error: r.rtcError || undefined,
        },
      }),
    };
  },
  connect: connectBinding({
    method: 'syncGuestTime',
    input: (req) => ({ vmId: req.vmId, input: { force: req.force } }),
    output: (result) => ({ result }),
  }),
};

export interface PasswordInput {
  username: string;
  password?: string;
  cryptedHash?: string;
}

/** Sets a guest user's password: the audit trail says only "password set for user X". */
export const PASSWORD_SET: GuestOperationSpec<PasswordInput, SetUserPasswordResponse> = {
  name: 'password.set',
  permission: 'guest.password',
  prepare: ({ username, password, cryptedHash }, env) => {
    if ((password === undefined) === (cryptedHash === undefined)) {
      throw invalid('password', 'give exactly one of password or crypted_hash');
    }
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { username, by: password !== undefined ? 'password' : 'crypted_hash' },
      dispatch: (d) =>
        d.send(
          'password.set',
          {
            case: 'setUserPassword',
            value: {
              username,
              limits: runAsLimitsOf(d.grant),
              secret:
                password !== undefined
                  ? { case: 'password', value: password }
                  : { case: 'cryptedHash', value: cryptedHash! },
            },
          },
          timeoutMs,
        ),
      outcome: () => ({ status: 'ok', params: { result: `password set for user ${username}` } }),
    };
  },
  connect: connectBinding({
    method: 'setGuestUserPassword',
    input: (req) => ({
      vmId: req.vmId,
      input: {
        username: req.username,
        ...(req.secret.case === 'password'
          ? { password: req.secret.value }
          : { cryptedHash: req.secret.value }),
      },
    }),
    output: () => ({}),
  }),
};

/** OS facts and network interfaces, asked now (vm.read). */
export const INFO: GuestOperationSpec<void, GetInfoResponse> = {
  name: 'info',
  permission: 'vm.read',
  prepare: (_, env) => {
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: {},
      dispatch: (d) => d.send('info', { case: 'getInfo', value: {} }, timeoutMs),
      outcome: () => ({ status: 'ok' }),
    };
  },
};

/** The OS facts alone, from the agent's cache (vm.read; agents from 0.5.0, capability os.info). */
export const OS_INFO: GuestOperationSpec<void, GetOsInfoResponse> = {
  name: 'os.info',
  permission: 'vm.read',
  prepare: (_, env) => {
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: {},
      dispatch: (d) => d.send('os.info', { case: 'getOsInfo', value: {} }, timeoutMs),
      outcome: () => ({ status: 'ok' }),
    };
  },
};

/** Mounted filesystems with type and use, asked now (vm.read). */
export const FS_INFO: GuestOperationSpec<void, GetFsInfoResponse> = {
  name: 'fs.info',
  permission: 'vm.read',
  prepare: (_, env) => {
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: {},
      dispatch: (d) => d.send('fs.info', { case: 'getFsInfo', value: {} }, timeoutMs),
      outcome: () => ({ status: 'ok' }),
    };
  },
};

const CANCEL_RETRY_INTERVAL_MS = 200;

export interface CancelInput {
  executionId: string;
  /**
   * Keep asking this long while the agent does not know the execution yet (a cancel right after
   * the start can reach the agent before the execute request does).
   */
  retryMs?: number;
}

/**
 * Stops a running execution by its id (audited as execute.cancel, guest.exec on the project;
 * ExecutionsService decides whose executions a caller may cancel).
 */
export const EXECUTE_CANCEL: GuestOperationSpec<CancelInput, CancelExecutionResponse> = {
  name: 'execute.cancel',
  permission: 'guest.exec',
  prepare: ({ executionId, retryMs = 0 }, env) => {
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { execution_id: executionId },
      dispatch: async (d) => {
        const deadline = Date.now() + retryMs;
        for (;;) {
          const r = await d.send(
            'execute.cancel',
            { case: 'cancelExecution', value: { executionId } },
            timeoutMs,
          );
          if (r.found || Date.now() >= deadline) {
            return r;
          }
          await new Promise((resolve) => setTimeout(resolve, CANCEL_RETRY_INTERVAL_MS));
        }
      },
      outcome: (r) => ({ status: 'ok', params: { found: r.found } }),
    };
  },
};
