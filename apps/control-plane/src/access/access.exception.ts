export enum AccessErrorCode {
  INVALID = 'INVALID_REQUEST',
  NOT_FOUND = 'NOT_FOUND',
  CONFLICT = 'CONFLICT',
}

/** A refused change to users, keys, projects or bindings. */
export class AccessException extends Error {
  constructor(
    readonly code: AccessErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AccessException';
  }
}

export const ACCESS_STATUS_OF: Record<AccessErrorCode, number> = {
  [AccessErrorCode.INVALID]: 400,
  [AccessErrorCode.NOT_FOUND]: 404,
  [AccessErrorCode.CONFLICT]: 409,
};
