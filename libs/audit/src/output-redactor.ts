/**
 * Secrets in command output (issue 18 item 2): the patterns that are replaced by `[redacted]`
 * before output is stored (the command history, an async execution's chunks) or streamed to a
 * follower. The caller of a synchronous execution gets its output as the agent returned it.
 * An async execution's output arrives in pieces: StreamRedactor matches across them.
 *
 * Patterns run over the bytes read as latin1 (one character per byte), so binary output and
 * UTF-8 outside the matches come back byte for byte.
 */

export const OUTPUT_REDACTED = '[redacted]';

/** The built-in patterns (LQ_OUTPUT_REDACT_DEFAULTS), by name. */
export const DEFAULT_OUTPUT_PATTERNS: ReadonlyArray<{ name: string; pattern: RegExp }> = [
  {
    // PEM and OpenSSH private keys, whole blocks (and a block cut off by truncation).
    name: 'private-key-block',
    pattern:
      /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)/g,
  },
  {
    // password=…, passwd: …, "secret": "…", api_key=…, aws_secret_access_key = …: the value.
    name: 'secret-assignment',
    pattern:
      /(?<=(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|credentials?)["']?[ \t]*[=:][ \t]*["']?)[^\s"',;]+/gi,
  },
  {
    // Authorization: Bearer …, Basic …
    name: 'authorization-header',
    pattern: /(?<=\b(?:bearer|basic)[ \t]+)[A-Za-z0-9\-._~+/]{8,}=*/gi,
  },
  {
    name: 'aws-access-key-id',
    pattern: /\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b/g,
  },
  {
    // GitHub, GitLab, Slack, Stripe-like live keys, JWTs, this platform's own API keys.
    name: 'api-token',
    pattern:
      /\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|lq_[a-z0-9]{4,16}_[A-Za-z0-9]{20,})/g,
  },
];

const MAX_PATTERNS = 64;
const MAX_PATTERN_LENGTH = 1024;

/**
 * LQ_OUTPUT_REDACT_PATTERNS: a JSON array of regular expressions, each either its source
 * (`"secret-[0-9a-f]{32}"`, matched case-sensitively) or `"/source/flags"` with flags of `imsu`.
 * The whole match is replaced; a lookbehind keeps a prefix (`(?<=pin=)\\d+`). Throws naming the
 * entry that is wrong.
 */
export function parseOutputPatterns(json: string): RegExp[] {
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch {
    throw new Error('must be a JSON array of regular expressions');
  }
  if (!Array.isArray(list) || list.length > MAX_PATTERNS) {
    throw new Error(`must be a JSON array of at most ${MAX_PATTERNS} regular expressions`);
  }
  return list.map((entry, i) => {
    if (typeof entry !== 'string' || entry === '' || entry.length > MAX_PATTERN_LENGTH) {
      throw new Error(`[${i}] must be a non-empty string of at most ${MAX_PATTERN_LENGTH} chars`);
    }
    const literal = /^\/(.+)\/([a-z]*)$/s.exec(entry);
    const [source, flags] = literal ? [literal[1]!, literal[2]!] : [entry, ''];
    if (!/^[imsu]*$/.test(flags)) {
      throw new Error(`[${i}] flags "${flags}": only i, m, s and u are allowed`);
    }
    let re: RegExp;
    try {
      re = new RegExp(source, `${flags}g`);
    } catch (err) {
      throw new Error(`[${i}] is not a regular expression: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (re.test('')) {
      throw new Error(`[${i}] matches the empty string`);
    }
    return re;
  });
}

export interface RedactedBytes {
  data: Uint8Array;
  /** How many matches were replaced. */
  count: number;
}

/** Applies the configured patterns to output bytes. */
export class OutputRedactor {
  private readonly patterns: RegExp[];
  /** Whether the built-in private key block pattern is on (StreamRedactor follows blocks). */
  readonly keyBlocks: boolean;

  constructor(options: { defaults: boolean; extra?: RegExp[] }) {
    this.patterns = [
      ...(options.defaults ? DEFAULT_OUTPUT_PATTERNS.map((p) => p.pattern) : []),
      ...(options.extra ?? []),
    ].map((p) => new RegExp(p.source, p.flags.includes('g') ? p.flags : `${p.flags}g`));
    this.keyBlocks = this.patterns.some((p) => p.source === PRIVATE_KEY_BLOCK_SOURCE);
  }

  get enabled(): boolean {
    return this.patterns.length > 0;
  }

  /** The bytes with every match replaced by `[redacted]`; the same bytes when none matched. */
  redact(data: Uint8Array): RedactedBytes {
    if (this.patterns.length === 0 || data.length === 0) {
      return { data, count: 0 };
    }
    const r = this.redactText(
      Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1'),
    );
    return r.count === 0
      ? { data, count: 0 }
      : { data: Buffer.from(r.text, 'latin1'), count: r.count };
  }

  /** Latin1 text (a byte per character) with every match replaced. */
  redactText(text: string): { text: string; count: number } {
    let count = 0;
    for (const re of this.patterns) {
      re.lastIndex = 0;
      text = text.replace(re, () => {
        count++;
        return OUTPUT_REDACTED;
      });
    }
    return { text, count };
  }
}

const PRIVATE_KEY_BLOCK_SOURCE = DEFAULT_OUTPUT_PATTERNS[0]!.pattern.source;
const KEY_BEGIN = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/g;
const KEY_END = /-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/;
/** Longer than any END line KEY_END matches: what is kept to find one cut between pieces. */
const KEY_END_KEEP = 128;

/**
 * One stream of output (an async execution's stdout or stderr) that arrives in pieces cut
 * anywhere. The patterns see whole lines: what follows the last line end (`\n` or `\r`) of
 * what came is held back until its line ends, up to `holdBytes` (then it goes as it is), or the
 * stream ends; so a secret the agent's reads cut in two is still matched. A private key block
 * whose END has not come yet is replaced at its BEGIN and what follows is dropped until its END.
 */
export class StreamRedactor {
  private carry = '';
  private inKey = false;

  constructor(
    private readonly redactor: OutputRedactor,
    private readonly holdBytes: number,
  ) {}

  /** Bytes held back, waiting for their line's end. */
  get heldBytes(): number {
    return this.carry.length;
  }

  /** What of the stream can go out now, redacted (maybe nothing). */
  push(data: Uint8Array): RedactedBytes {
    if (!this.redactor.enabled) {
      return { data, count: 0 };
    }
    let text =
      this.carry + Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
    if (this.inKey) {
      const end = KEY_END.exec(text);
      if (!end) {
        this.carry = text.slice(-KEY_END_KEEP);
        return { data: EMPTY, count: 0 };
      }
      text = text.slice(end.index + end[0].length);
      this.inKey = false;
    }
    let cut = Math.max(text.lastIndexOf('\n'), text.lastIndexOf('\r')) + 1;
    if (text.length - cut > this.holdBytes) {
      cut = text.length;
    }
    this.carry = text.slice(cut);
    return this.out(text.slice(0, cut));
  }

  /** What was held back, redacted: the stream ended. */
  end(): RedactedBytes {
    const rest = this.inKey ? '' : this.carry;
    this.carry = '';
    this.inKey = false;
    return this.out(rest);
  }

  private out(ready: string): RedactedBytes {
    if (ready === '') {
      return { data: EMPTY, count: 0 };
    }
    if (this.redactor.keyBlocks) {
      // A block begun and not ended here: the pattern replaces it to the end of `ready`, and
      // the rest of it, up to its END, is dropped as it comes.
      let begin = -1;
      KEY_BEGIN.lastIndex = 0;
      for (let m = KEY_BEGIN.exec(ready); m; m = KEY_BEGIN.exec(ready)) {
        begin = m.index;
      }
      if (begin >= 0 && !KEY_END.test(ready.slice(begin))) {
        this.inKey = true;
      }
    }
    const r = this.redactor.redactText(ready);
    return { data: Buffer.from(r.text, 'latin1'), count: r.count };
  }
}

const EMPTY = new Uint8Array(0);
