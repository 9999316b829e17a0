/**
 * What kind of failure an error is. Each domain's exception names its kind per code; each
 * transport maps kinds to its own statuses in one table (HTTP: http-exception.filter.ts,
 * Connect and gRPC: connect-error.mapper.ts). A timeout, "no responders" and "agent not
 * connected" are different codes of different kinds, never one generic 500.
 */
export type ErrorKind =
  | 'invalid'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'rate_limited'
  | 'unavailable'
  | 'timeout'
  | 'bad_gateway'
  | 'internal';

/**
 * The base of every domain's exception: a code from the domain's enum (what the API's `code`
 * says), its kind, and fields for the error body. Internals (kind 'internal') are logged under
 * a correlation id and never sent.
 */
export abstract class DomainException<C extends string = string> extends Error {
  constructor(
    readonly code: C,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }

  abstract get kind(): ErrorKind;

  /** Extra fields of the error body (e.g. `agentCode`, `permission`). */
  get details(): Record<string, string> {
    return {};
  }
}
