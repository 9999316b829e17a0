import { DomainException, type ErrorKind } from '../common/errors/domain.exception.js';

export enum TelemetryErrorCode {
  /** from, to, top or disk_percent is malformed or out of range; the message names it. */
  INVALID_REQUEST = 'INVALID_REQUEST',
}

/** A read of the telemetry history that cannot be answered as asked. */
export class TelemetryException extends DomainException<TelemetryErrorCode> {
  get kind(): ErrorKind {
    return 'invalid';
  }

  static invalid(message: string): TelemetryException {
    return new TelemetryException(TelemetryErrorCode.INVALID_REQUEST, message);
  }
}
