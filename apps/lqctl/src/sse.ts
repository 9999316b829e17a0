// A Server-Sent Events parser after the WHATWG "event stream interpretation": bytes in any
// chunking (a chunk may end mid-line, mid-"\r\n" or mid-UTF-8 character), events out.

export interface SseEvent {
  /** The `event:` field, or "message" when the block had none. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The `id:` field of this block, when it had one. */
  id?: string;
  /** A `retry:` field (milliseconds), when the block had one. */
  retry?: number;
}

export class SseParser {
  /** The last `id:` seen on this stream (what a reconnect sends as Last-Event-ID). */
  lastEventId: string | undefined;
  private readonly decoder = new TextDecoder();
  private buf = '';
  private data: string[] = [];
  private eventName = '';
  private blockId: string | undefined;
  private retry: number | undefined;

  /** Feeds bytes (or text) and returns the events completed by them. */
  push(chunk: Uint8Array | string): SseEvent[] {
    this.buf += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    return this.drain(false);
  }

  /** The stream ended: a final line without its newline still counts; a half event does not. */
  end(): SseEvent[] {
    this.buf += this.decoder.decode();
    const events = this.drain(true);
    if (this.buf.length > 0) {
      this.line(this.buf, events);
      this.buf = '';
    }
    this.reset();
    return events;
  }

  private drain(final: boolean): SseEvent[] {
    const events: SseEvent[] = [];
    for (;;) {
      const cr = this.buf.indexOf('\r');
      const lf = this.buf.indexOf('\n');
      const at = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (at < 0) {
        break;
      }
      let width = 1;
      if (this.buf[at] === '\r') {
        if (at === this.buf.length - 1 && !final) {
          // "\r" may be the first half of "\r\n": wait for the next chunk.
          break;
        }
        if (this.buf[at + 1] === '\n') {
          width = 2;
        }
      }
      const line = this.buf.slice(0, at);
      this.buf = this.buf.slice(at + width);
      this.line(line, events);
    }
    return events;
  }

  private line(line: string, events: SseEvent[]): void {
    if (line === '') {
      this.dispatch(events);
      return;
    }
    if (line.startsWith(':')) {
      return; // a comment, e.g. the server's keepalive
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.eventName = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.blockId = value;
          this.lastEventId = value;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) {
          this.retry = Number(value);
        }
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  private dispatch(events: SseEvent[]): void {
    if (this.data.length > 0) {
      const e: SseEvent = { event: this.eventName || 'message', data: this.data.join('\n') };
      if (this.blockId !== undefined) {
        e.id = this.blockId;
      }
      if (this.retry !== undefined) {
        e.retry = this.retry;
      }
      events.push(e);
    }
    this.reset();
  }

  private reset(): void {
    this.data = [];
    this.eventName = '';
    this.blockId = undefined;
    this.retry = undefined;
  }
}
