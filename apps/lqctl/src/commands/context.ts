import type { ApiClient } from '../api-client.js';
import type { ParsedCommand } from '../args.js';
import type { LqctlConfig, Settings } from '../config.js';

/** What every command gets: the API, where settings came from, and the process's streams. */
export interface Context {
  client: ApiClient;
  settings: Settings;
  /** --json: machine output on stdout. */
  json: boolean;
  configFile: string;
  /** The config file's context in use (--context, LQ_CONTEXT or the current one). */
  contextName: string;
  /** That context's server and credentials ({} when it does not exist yet). */
  config: LqctlConfig;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
}

export type Command = (ctx: Context, cmd: ParsedCommand) => Promise<number>;

/** A path segment for a VM or execution id. */
export function seg(id: string): string {
  return encodeURIComponent(id);
}

/** A note on stderr, prefixed like every lqctl message. */
export function note(ctx: Context, line: string): void {
  ctx.stderr.write(`lqctl: ${line}\n`);
}
