export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** One JSON object per line on stderr (journald keeps it); no dependency. */
export class Logger {
  private muted = false;

  /** `context` is added to every line (e.g. which simulated VM, when several share a process). */
  constructor(
    private readonly level: LogLevel = 'info',
    private readonly context?: Record<string, unknown>,
  ) {}

  /** While filesystems are frozen the agent must not write logs that could block on them. */
  setMuted(muted: boolean): void {
    this.muted = muted;
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.write('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.write('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.write('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.write('error', msg, fields);
  }

  private write(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (this.muted || ORDER[level] < ORDER[this.level]) {
      return;
    }
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.context, ...fields })}\n`,
    );
  }
}
