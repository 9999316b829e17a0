// The agent's first moments (main.ts): the channel is opened and the host's handshake (sync) and
// pings are answered before the rest of the agent is loaded. Loading it means building the
// protobuf registry from the generated descriptors, most of what stands between a start and the
// first pong. This module imports no protobuf code: it reads and writes the few messages it
// serves by hand (their field numbers are pinned by early-responder.spec.ts against the schema).
//
// Anything else (another request, a malformed or partial frame, garbage) makes it stop answering:
// it pauses the channel, keeps the bytes as they came, and asks for the agent, which reads them
// first when it takes over (Agent.takeOver), so the agent decodes, checks and answers them as
// always. With nothing to answer it asks for the agent after config.startup_quiet_ms without a
// frame (and at most twenty times that after start), so the rest (AgentReady, telemetry, thawing
// a freeze left behind) follows within moments of a quiet start.
import {
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  FRAME_VERSION,
  crc32,
  encodeFrameHeader,
} from '@lq/proto/wire';
import { capabilitiesOf } from '@lq/proto/wire';
import type { ChannelListener, HostChannel } from './channel/host-channel.js';
import { enabledOperations, operationBlockedBy, type AgentConfig } from './config.js';
import type { Logger } from './logger.js';
import { PROCESS_START } from './process-start.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from './version.js';

// AgentMessage (agent.proto) and the messages served here.
const F_MESSAGE_ID = 1;
const F_TIMESTAMP = 2;
const F_PING = 10;
const F_SYNC = 15;
const F_PONG = 50;
const F_SYNC_RESPONSE = 55;
const MAX_MESSAGE_ID_LENGTH = 128;
const MESSAGE_ID_PATTERN = /^[\x21-\x7e]+$/;
/** A sync or a ping is far smaller: a frame larger than this is the agent's without a look. */
const EARLY_FRAME_MAX_BYTES = 16 * 1024;

/** What the early phase leaves the agent: the host it already synced with, if any. */
export interface EarlyState {
  synced: boolean;
  hostId: string;
  protocolVersion: number;
  /** Pings answered early (the agent counts them among its requests). */
  requests: number;
  /**
   * The host has sent this process bytes since it (last) connected: it was already talking to
   * the process (an earlier agent's host, QEMU's socket open across the restart), so it is too
   * late for an AgentReady at start (Agent.takeOver).
   */
  heard: boolean;
}

/** The listener the agent gives the channel once it takes over. */
export interface AgentListener extends ChannelListener {
  /**
   * True when the agent's reader holds no part of a frame: a chunk made only of whole pings may
   * then be answered here, as before the agent took over (same checks, same reply).
   */
  betweenFrames(): boolean;
  /** A ping answered here (the agent counts it among its requests). */
  pingServed(): void;
}

interface Served {
  kind: 'sync' | 'ping';
  id: string;
  /** sync: the nonce field's varint bytes as received (echoed without decoding). */
  nonce?: Uint8Array;
  protocolVersion?: number;
  hostId?: string;
}

export class EarlyResponder {
  /** Start the channel with this; it stays the channel's listener for the agent's life. */
  readonly listener: ChannelListener;
  private agent: AgentListener | undefined;
  private pending: Buffer[] = [];
  /** Gave up answering: everything from here on is the agent's. */
  private deferring = false;
  private readonly early: EarlyState = {
    synced: false,
    hostId: '',
    protocolVersion: 0,
    requests: 0,
    heard: false,
  };
  private quietTimer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private wanted!: () => void;
  /** Resolves when the agent should be loaded (a frame needs it, or the channel went quiet). */
  readonly needed: Promise<void>;

  constructor(
    private readonly config: AgentConfig,
    private readonly channel: HostChannel,
    private readonly log: Logger,
  ) {
    this.needed = new Promise((resolve) => (this.wanted = resolve));
    this.listener = {
      onConnect: () => (this.agent ? this.agent.onConnect() : this.onConnect()),
      onData: (chunk) => (this.agent ? this.afterTakeOver(this.agent, chunk) : this.onData(chunk)),
      onDisconnect: (reason) =>
        this.agent ? this.agent.onDisconnect(reason) : this.onDisconnect(),
    };
  }

  /** The channel is open (started with this listener): the quiet time starts now. */
  opened(): void {
    const quiet = this.config.startup_quiet_ms;
    if (quiet === 0) {
      this.need();
    } else {
      this.deadline = setTimeout(() => this.need(), quiet * 20);
      this.armQuiet();
    }
  }

  /** What the early phase leaves the agent. */
  get state(): EarlyState {
    return { ...this.early };
  }

  /**
   * The agent takes over (Agent.takeOver): from now on the channel's events are its own, and it
   * first reads what this responder did not answer.
   */
  handOver(agent: AgentListener): void {
    this.agent = agent;
    clearTimeout(this.quietTimer);
    clearTimeout(this.deadline);
    const bytes = this.pending;
    this.pending = [];
    // Resumed first: data events come later (never within this call), and the agent may pause
    // the channel again while it reads what was kept.
    if (this.deferring) {
      this.channel.resume();
    }
    for (const chunk of bytes) {
      agent.onData(chunk);
    }
  }

  /**
   * Pings keep their short way after the agent took over: a chunk of nothing but whole pings,
   * arriving between frames, is answered here (no protobuf decode, one write); anything else is
   * the agent's.
   */
  private afterTakeOver(agent: AgentListener, chunk: Buffer): void {
    if (agent.betweenFrames() && !startsWithOtherRequest(chunk)) {
      const frames = wholeFrames(chunk);
      if (frames !== undefined && frames.length > 0) {
        const pings: Served[] = [];
        for (const payload of frames) {
          const s = this.parse(payload);
          if (s?.kind !== 'ping') {
            agent.onData(chunk);
            return;
          }
          pings.push(s);
        }
        for (const ping of pings) {
          this.answer(ping);
          agent.pingServed();
        }
        return;
      }
    }
    agent.onData(chunk);
  }

  private need(): void {
    clearTimeout(this.quietTimer);
    clearTimeout(this.deadline);
    this.wanted();
  }

  private armQuiet(): void {
    clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.need(), this.config.startup_quiet_ms);
  }

  // A new or lost host: what the old one sent is no one's (the agent's decoder would drop it too).
  private onConnect(): void {
    this.early.synced = false;
    this.early.heard = false;
    this.pending = [];
    if (!this.deferring) {
      this.armQuiet();
    }
  }

  private onDisconnect(): void {
    this.early.synced = false;
    this.early.heard = false;
    this.pending = [];
  }

  private onData(chunk: Buffer): void {
    this.early.heard = true;
    this.pending.push(chunk);
    if (this.deferring) {
      return;
    }
    const frames = this.completeFrames();
    if (frames === undefined) {
      this.defer();
      return;
    }
    if (frames.length === 0) {
      // Part of a frame: wait for the rest (or, if it never comes, for the agent).
      this.armQuiet();
      return;
    }
    const served: Served[] = [];
    for (const payload of frames) {
      const s = this.parse(payload);
      if (!s) {
        this.defer();
        return;
      }
      served.push(s);
    }
    // Every frame read so far is answered here: what is left is the start of the next one.
    this.dropAnswered(frames);
    for (const s of served) {
      this.answer(s);
    }
    this.armQuiet();
  }

  /** Stops answering; the agent reads everything kept, in order, once it takes over. */
  private defer(): void {
    this.deferring = true;
    this.channel.pause();
    this.need();
  }

  /**
   * The payloads of the complete frames at the start of what was received; undefined when the
   * bytes are not well-formed frames (garbage, a bad CRC, a large frame): the agent's decoder
   * deals with those.
   */
  private completeFrames(): Buffer[] | undefined {
    const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [buf];
    return framesIn(buf, true);
  }

  private dropAnswered(frames: Buffer[]): void {
    let used = 0;
    for (const f of frames) {
      used += FRAME_HEADER_BYTES + f.length;
    }
    const rest = this.pending[0]!.subarray(used);
    this.pending = rest.length > 0 ? [rest] : [];
  }

  /** A sync or a ping this responder may answer as the agent would; undefined otherwise. */
  private parse(payload: Buffer): Served | undefined {
    const r = new Reader(payload);
    let id = '';
    let body: Buffer | undefined;
    let kind: Served['kind'] | undefined;
    while (!r.done) {
      const key = r.varint();
      if (key === undefined) {
        return undefined;
      }
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (field === F_MESSAGE_ID && wire === 2) {
        const b = r.bytes();
        if (!b) {
          return undefined;
        }
        id = b.toString('latin1');
      } else if ((field === F_SYNC || field === F_PING) && wire === 2) {
        if (kind !== undefined) {
          return undefined; // two payloads: the agent's decoder decides
        }
        body = r.bytes();
        kind = field === F_SYNC ? 'sync' : 'ping';
      } else if (field === 0) {
        return undefined;
      } else if (field === F_TIMESTAMP || field < 10) {
        if (!r.skip(wire)) {
          return undefined;
        }
      } else {
        return undefined; // any other payload is the agent's
      }
    }
    if (!kind || !body) {
      return undefined;
    }
    if (id.length === 0 || id.length > MAX_MESSAGE_ID_LENGTH || !MESSAGE_ID_PATTERN.test(id)) {
      return undefined;
    }
    if (kind === 'ping') {
      return operationBlockedBy(this.config, 'ping') === null ? { kind, id } : undefined;
    }
    const s: Served = { kind, id, protocolVersion: 0, hostId: '' };
    const b = new Reader(body);
    while (!b.done) {
      const key = b.varint();
      if (key === undefined) {
        return undefined;
      }
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (field === 1 && wire === 0) {
        const start = b.at;
        if (!b.skipVarint()) {
          return undefined;
        }
        s.nonce = body.subarray(start, b.at);
      } else if (field === 2 && wire === 0) {
        const v = b.varint();
        if (v === undefined) {
          return undefined;
        }
        s.protocolVersion = v % 2 ** 32;
      } else if (field === 3 && wire === 2) {
        const h = b.bytes();
        if (!h) {
          return undefined;
        }
        s.hostId = h.toString('utf8');
      } else if (!b.skip(wire)) {
        return undefined;
      }
    }
    return s;
  }

  private answer(s: Served): void {
    if (s.kind === 'ping') {
      this.early.requests++;
      const pong = new Writer();
      pong.string(1, AGENT_VERSION);
      pong.double(2, (performance.now() - PROCESS_START.perfMs) / 1000);
      this.write(s.id, F_PONG, pong.finish());
      return;
    }
    const version = Math.min(s.protocolVersion || PROTOCOL_VERSION, PROTOCOL_VERSION);
    const limits = new Writer();
    limits.uint(1, this.config.max_frame_bytes);
    limits.uint(2, this.config.files.chunk_max_bytes);
    limits.uint(3, this.config.exec.output_limit_max_bytes);
    limits.uint(4, this.config.exec.max_timeout_ms);
    const reply = new Writer();
    if (s.nonce) {
      reply.rawVarint(1 << 3, s.nonce);
    }
    reply.uint(2, version);
    reply.string(3, AGENT_VERSION);
    for (const capability of capabilitiesOf(enabledOperations(this.config))) {
      reply.string(4, capability);
    }
    reply.message(5, limits.finish());
    this.write(s.id, F_SYNC_RESPONSE, reply.finish());
    this.early.synced = true;
    this.early.hostId = s.hostId ?? '';
    this.early.protocolVersion = version;
    this.log.info('host synced', { host: s.hostId, protocolVersion: version, early: true });
  }

  /** One frame, header and payload in one buffer, in one write. */
  private write(id: string, field: number, body: Buffer): void {
    const now = Date.now();
    const timestamp = new Writer(16);
    timestamp.uint(1, Math.floor(now / 1000));
    timestamp.uint(2, (now % 1000) * 1_000_000);
    const message = new Writer(FRAME_HEADER_BYTES + 64 + id.length + body.length);
    message.header();
    message.string(F_MESSAGE_ID, id);
    message.message(F_TIMESTAMP, timestamp.finish());
    message.message(field, body);
    const frame = message.finish();
    const payload = frame.subarray(FRAME_HEADER_BYTES);
    encodeFrameHeader(payload, this.config.max_frame_bytes).copy(frame, 0);
    this.channel.write([frame]).catch((err: Error) => {
      this.log.debug('early reply not written', { id, error: err.message });
    });
  }
}

/**
 * True when the chunk's first frame plainly carries a request other than a ping (the agent's,
 * without checking its frames twice); false when it may be a ping or is not plain (those get the
 * full check). Reads a few bytes of the first frame's payload and allocates nothing.
 */
function startsWithOtherRequest(buf: Buffer): boolean {
  if (buf.length < FRAME_HEADER_BYTES) {
    return false;
  }
  const end = Math.min(buf.length, FRAME_HEADER_BYTES + buf.readUInt32BE(8));
  let at = FRAME_HEADER_BYTES;
  while (at < end) {
    const key = buf[at++]!;
    if (key >= 0x80) {
      // A field number of 16 or more (a two-byte key): a payload case, neither ping nor sync.
      return (key & 7) === 2;
    }
    const field = key >>> 3;
    if ((key & 7) !== 2) {
      return false;
    }
    if (field !== F_MESSAGE_ID && field !== F_TIMESTAMP) {
      return field !== F_PING && field !== F_SYNC;
    }
    const length = buf[at++] ?? 0x80;
    if (length >= 0x80) {
      return false;
    }
    at += length;
  }
  return false;
}

/** The frames of a chunk that holds only whole frames; undefined for anything else. */
function wholeFrames(buf: Buffer): Buffer[] | undefined {
  return framesIn(buf, false);
}

/**
 * The payloads of the well-formed frames buf starts with, each at most EARLY_FRAME_MAX_BYTES;
 * undefined if anything else is found. With `partialTail`, buf may end inside a frame (those
 * bytes are not returned); without, it must end where a frame ends.
 */
function framesIn(buf: Buffer, partialTail: boolean): Buffer[] | undefined {
  const out: Buffer[] = [];
  let at = 0;
  while (buf.length - at >= FRAME_HEADER_BYTES) {
    if (
      buf[at] !== FRAME_MAGIC[0] ||
      buf[at + 1] !== FRAME_MAGIC[1] ||
      buf[at + 2] !== FRAME_MAGIC[2] ||
      buf[at + 3] !== FRAME_MAGIC[3] ||
      buf[at + 4] !== FRAME_VERSION ||
      buf[at + 5] !== 0 ||
      buf.readUInt16BE(at + 6) !== 0 ||
      crc32(buf.subarray(at, at + 16)) !== buf.readUInt32BE(at + 16)
    ) {
      return undefined;
    }
    const length = buf.readUInt32BE(at + 8);
    if (length > EARLY_FRAME_MAX_BYTES) {
      return undefined;
    }
    if (buf.length - at - FRAME_HEADER_BYTES < length) {
      break;
    }
    const payload = buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
    if (crc32(payload) !== buf.readUInt32BE(at + 12)) {
      return undefined;
    }
    out.push(payload);
    at += FRAME_HEADER_BYTES + length;
  }
  const tail = buf.length - at;
  if (tail === 0) {
    return out;
  }
  if (!partialTail) {
    return undefined;
  }
  // A tail shorter than a header must at least start like one.
  if (tail < 4 && !FRAME_MAGIC.subarray(0, tail).equals(buf.subarray(at))) {
    return undefined;
  }
  return out;
}

/** Protobuf wire reading, just what parse() needs; every method returns undefined on bad input. */
class Reader {
  at = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.at >= this.buf.length;
  }

  /** A varint up to 2^53 (larger ones fail, and their frame is left to the agent). */
  varint(): number | undefined {
    let value = 0;
    for (let shift = 0; shift < 53; shift += 7) {
      if (this.at >= this.buf.length) {
        return undefined;
      }
      const b = this.buf[this.at++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        return value;
      }
    }
    return undefined;
  }

  /** Passes over a varint of any size (a 64-bit nonce). */
  skipVarint(): boolean {
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.buf.length) {
        return false;
      }
      if (this.buf[this.at++]! < 0x80) {
        return true;
      }
    }
    return false;
  }

  bytes(): Buffer | undefined {
    const n = this.varint();
    if (n === undefined || this.buf.length - this.at < n) {
      return undefined;
    }
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  skip(wire: number): boolean {
    switch (wire) {
      case 0:
        return this.skipVarint();
      case 1:
        this.at += 8;
        return this.at <= this.buf.length;
      case 2:
        return this.bytes() !== undefined;
      case 5:
        this.at += 4;
        return this.at <= this.buf.length;
      default:
        return false;
    }
  }
}

/** Protobuf wire writing for the replies above (proto3: zero values are left out). */
class Writer {
  private buf: Buffer;
  private at = 0;

  constructor(size = 128) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): void {
    if (this.at + n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
      this.buf.copy(bigger, 0, 0, this.at);
      this.buf = bigger;
    }
  }

  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  private varint(v: number): void {
    this.room(10);
    while (v > 0x7f) {
      this.buf[this.at++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.at++] = v;
  }

  uint(field: number, v: number): void {
    if (v !== 0) {
      this.key(field, 0);
      this.varint(v);
    }
  }

  double(field: number, v: number): void {
    if (v !== 0) {
      this.key(field, 1);
      this.room(8);
      this.buf.writeDoubleLE(v, this.at);
      this.at += 8;
    }
  }

  string(field: number, v: string): void {
    if (v.length > 0) {
      const n = Buffer.byteLength(v, 'utf8');
      this.key(field, 2);
      this.varint(n);
      this.room(n);
      this.at += this.buf.write(v, this.at, 'utf8');
    }
  }

  message(field: number, body: Uint8Array): void {
    this.key(field, 2);
    this.varint(body.length);
    this.raw(body);
  }

  /** A key followed by a varint already encoded (echoed as received). */
  rawVarint(key: number, bytes: Uint8Array): void {
    this.varint(key);
    this.raw(bytes);
  }

  private raw(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.buf.set(bytes, this.at);
    this.at += bytes.length;
  }

  /** Room for a frame header, filled in once the payload is written. */
  header(): void {
    this.room(FRAME_HEADER_BYTES);
    this.at += FRAME_HEADER_BYTES;
  }

  /** What was written (a view of the writer's buffer: finish once, use, drop). */
  finish(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}
