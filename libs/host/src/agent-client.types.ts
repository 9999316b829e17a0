// The agent client's states, options and errors (what its callers handle).
import { ErrorCode } from '@lq/proto';

export type AgentClientState = 'disconnected' | 'connecting' | 'syncing' | 'ready' | 'closed';

/** Raised when the agent answered with `Error { code, message }`. */
export class AgentRequestError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AgentRequestError';
  }
  get codeName(): string {
    return ErrorCode[this.code] ?? String(this.code);
  }
}

/** No agent at the other end right now (socket absent, closed, or never synced). */
export class AgentNotConnectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentNotConnectedError';
  }
}

/** The request's deadline passed without a reply. */
export class AgentTimeoutError extends Error {
  constructor(
    readonly operation: string,
    readonly timeoutMs: number,
  ) {
    super(`agent did not answer ${operation} within ${timeoutMs} ms`);
    this.name = 'AgentTimeoutError';
  }
}

export interface AgentClientOptions {
  /** Unix socket: QEMU's chardev socket, or an agent's --listen socket. */
  path: string;
  /** Shown to the agent in the sync handshake. */
  hostId?: string;
  maxFrameBytes?: number;
  /** Per-attempt sync timeout; doubles up to syncTimeoutMaxMs. */
  syncTimeoutMs?: number;
  syncTimeoutMaxMs?: number;
  /** Reconnect after the socket closes (node daemon); off for one-shot tools. */
  reconnect?: boolean;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  /** Default request deadline. */
  requestTimeoutMs?: number;
  /** Abandon a half-received frame after this long without a byte (PROTOCOL.md §3). */
  partialFrameTimeoutMs?: number;
  /**
   * While a request has waited this long, ping the agent every so often: a pong whose uptime is
   * younger than a request means the agent restarted behind an open channel (a guest reboot
   * under QEMU), and that request will never be answered. 0 turns it off. Default 5000.
   */
  keepaliveMs?: number;
}

export interface RequestOptions {
  timeoutMs?: number;
  /** Reuse an id to fetch a retained result again (PROTOCOL.md §4). */
  messageId?: string;
}
