/** What the agent needs from its byte stream to the host, whatever carries it. */
export interface ChannelListener {
  /** A host (possibly) appeared: the decoder must start clean. */
  onConnect(): void;
  onData(chunk: Buffer): void;
  onDisconnect(reason: string): void;
}

export interface HostChannel {
  readonly description: string;
  /** True while bytes can reach a host. */
  readonly connected: boolean;
  start(listener: ChannelListener): Promise<void>;
  /** Writes one frame's parts in order; rejects when no host is connected. */
  write(parts: Uint8Array[]): Promise<void>;
  /** Stops delivering data until resume() (the agent has enough requests in progress). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export class ChannelClosedError extends Error {
  constructor(message = 'no host connected') {
    super(message);
    this.name = 'ChannelClosedError';
  }
}
