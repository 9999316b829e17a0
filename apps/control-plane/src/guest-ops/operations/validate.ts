import type { ControlPlaneConfig } from '../../config/env.schema.js';
import { VmGuestErrorCode, VmGuestException } from '../vm-guest.exception.js';

/** 400 naming the field; nothing is sent. */
export function invalid(field: string, message: string): VmGuestException {
  return new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, `${field} ${message}`);
}

/** An absolute guest path within LQ_MAX_PATH_BYTES (the agent checks the rest). */
export function checkPath(config: ControlPlaneConfig, path: string, field = 'path'): void {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw invalid(
      field,
      `must be an absolute guest path (got ${JSON.stringify(String(path).slice(0, 100))})`,
    );
  }
  if (Buffer.byteLength(path) > config.limits.maxPathBytes) {
    throw invalid(field, `is longer than ${config.limits.maxPathBytes} bytes`);
  }
}
