import { DomainException, type ErrorKind } from '../common/errors/domain.exception.js';

export enum AccessErrorCode {
  INVALID = 'INVALID_REQUEST',
  NOT_FOUND = 'NOT_FOUND',
  CONFLICT = 'CONFLICT',
}

const KINDS: Record<AccessErrorCode, ErrorKind> = {
  [AccessErrorCode.INVALID]: 'invalid',
  [AccessErrorCode.NOT_FOUND]: 'not_found',
  [AccessErrorCode.CONFLICT]: 'conflict',
};

/** A refused change to users, keys, projects or bindings. */
export class AccessException extends DomainException<AccessErrorCode> {
  get kind(): ErrorKind {
    return KINDS[this.code];
  }
}
