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

/** Frames up to this size are written as one buffer (coalesceSmallFrame). */
export const COALESCE_MAX_BYTES = 64 * 1024;

/**
 * A small frame's parts as one buffer: one write(2) instead of one per part (a socket's cork
 * does not merge them under Bun, and the virtio port writes each part through the thread pool).
 * Copying up to 64 KiB costs less than a system call or a pool trip; larger frames keep their
 * parts, so the bulk bytes of a chunk are never copied.
 */
export function coalesceSmallFrame(parts: Uint8Array[]): Uint8Array[] {
  if (parts.length < 2) {
    return parts;
  }
  let total = 0;
  for (const part of parts) {
    total += part.length;
  }
  return total > COALESCE_MAX_BYTES ? parts : [Buffer.concat(parts, total)];
}

/** Parts below this size are joined with their small neighbours (smallRunsJoined). */
const SMALL_PART_BYTES = 16 * 1024;

/**
 * Each run of consecutive small parts (header, envelope, a bulk field's key and length) joined
 * into one buffer; large parts (the bulk bytes) stay as they are, never copied.
 */
export function smallRunsJoined(parts: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  const flush = () => {
    if (run.length === 1) {
      out.push(run[0]!);
    } else if (run.length > 1) {
      out.push(Buffer.concat(run));
    }
    run = [];
  };
  for (const part of parts) {
    if (part.length < SMALL_PART_BYTES) {
      run.push(part);
    } else {
      flush();
      out.push(part);
    }
  }
  flush();
  return out;
}
