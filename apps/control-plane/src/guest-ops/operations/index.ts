import type { GuestOperation } from '@lq/proto';
import type { GuestOperationSpec } from '../guest-operation.js';
import { AGENT_UPDATE } from './agent-update.operation.js';
import { EXECUTE } from './execute.operation.js';
import { FILE_CLOSE, FILE_HANDLE_READ, FILE_OPEN } from './file-handle.operations.js';
import { FILE_STAT } from './file-stat.operation.js';
import { FILE_DELETE, FILE_LIST, FILE_MKDIR, FILE_RENAME } from './file-tree.operations.js';
import { FILE_READ_CHUNK, FILE_WRITE_CHUNK } from './file.operations.js';
import {
  EXECUTE_CANCEL,
  FS_INFO,
  INFO,
  OS_INFO,
  PASSWORD_SET,
  QUIESCE,
  QUIESCE_STATUS,
  SHUTDOWN,
  THAW,
  TIME_SYNC,
} from './guest-admin.operations.js';
import { PING } from './ping.operation.js';
import { NETWORK_CONFIGURE, NETWORK_CONFIRM, NETWORK_GET } from './network.operations.js';

export * from './agent-update.operation.js';
export * from './execute.operation.js';
export * from './file-handle.operations.js';
export * from './file-stat.operation.js';
export * from './file-tree.operations.js';
export * from './file.operations.js';
export * from './guest-admin.operations.js';
export * from './ping.operation.js';
export * from './network.operations.js';

/**
 * The control plane's spec of every operation of the table (@lq/proto GUEST_OPERATION_TABLE):
 * a row there without a spec here does not compile. Whole-file transfers (FILE_DOWNLOAD,
 * FILE_UPLOAD) are composites of the file chunk operations.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const GUEST_OPERATION_SPECS: { [O in GuestOperation]: GuestOperationSpec<any, unknown> } = {
  ping: PING,
  info: INFO,
  execute: EXECUTE,
  'execute.cancel': EXECUTE_CANCEL,
  'file.read': FILE_READ_CHUNK,
  'file.write': FILE_WRITE_CHUNK,
  shutdown: SHUTDOWN,
  quiesce: QUIESCE,
  thaw: THAW,
  'quiesce.status': QUIESCE_STATUS,
  'time.sync': TIME_SYNC,
  'password.set': PASSWORD_SET,
  'fs.info': FS_INFO,
  'file.stat': FILE_STAT,
  'agent.update': AGENT_UPDATE,
  'file.list': FILE_LIST,
  'file.mkdir': FILE_MKDIR,
  'file.delete': FILE_DELETE,
  'file.rename': FILE_RENAME,
  'network.get': NETWORK_GET,
  'network.configure': NETWORK_CONFIGURE,
  'network.confirm': NETWORK_CONFIRM,
  'os.info': OS_INFO,
  'file.open': FILE_OPEN,
  'file.handle.read': FILE_HANDLE_READ,
  'file.close': FILE_CLOSE,
};

/** The specs reached over Connect and gRPC, each through its VMService method. */
export const CONNECT_SPECS = Object.values(GUEST_OPERATION_SPECS).filter(
  (spec) => spec.connect !== undefined,
);
