import { ErrorCode } from '@lq/proto';
import { AgentOpError } from '../errors.js';

/** JSON-quoted for messages (shows NUL and control characters), cut short for huge paths. */
export function quotePath(path: string): string {
  return JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
}

export function pathNotAllowed(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.PATH_NOT_ALLOWED, message);
}
