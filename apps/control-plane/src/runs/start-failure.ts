import { AuditErrorCode, AuditException } from '@lq/audit';
import { DomainException } from '../common/errors/domain.exception.js';

// PostgreSQL classes of a server that is away or overloaded: 08 connection exception, 53
// insufficient resources, 57P01-03 shutdown / cannot connect now.
const TRANSIENT_SQLSTATE = /^(08|53|57P0[1-3])/;
// node-postgres' own words for a pool or a socket that did not get a connection.
const TRANSIENT_MESSAGE =
  /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED|ECONNRESET|Client has encountered a connection error|too many clients/i;

/**
 * Whether a fleet run's start failed for want of the database or the audit trail (overloaded,
 * restarting): nothing was sent to the guest, so it is started again rather than counted as the
 * VM's failure. Refusals (permission, an agent not connected, bad input) are not transient.
 */
export function isTransientStartFailure(err: unknown): boolean {
  if (err instanceof AuditException) {
    return err.code === AuditErrorCode.AUDIT_UNAVAILABLE;
  }
  if (err instanceof DomainException) {
    return err.code === 'STORE_UNAVAILABLE';
  }
  if (!(err instanceof Error)) {
    return false;
  }
  const code = (err as { code?: unknown }).code;
  const driverError = (err as { driverError?: { code?: unknown } }).driverError;
  const sqlState = typeof code === 'string' ? code : driverError?.code;
  if (typeof sqlState === 'string' && TRANSIENT_SQLSTATE.test(sqlState)) {
    return true;
  }
  return TRANSIENT_MESSAGE.test(err.message);
}

/** The wait before start attempt `attempt` (2, 3, …): doubling from 100 ms to 2 s, jittered. */
export function startRetryDelayMs(attempt: number, random = Math.random): number {
  const base = Math.min(2000, 100 * 2 ** Math.max(0, attempt - 2));
  return Math.round(base / 2 + random() * (base / 2));
}
