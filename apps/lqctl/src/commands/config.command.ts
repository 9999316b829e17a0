// `lqctl config …`: the config file's named contexts (a server and its credentials each), as
// kubectl's `config get-contexts|current-context|use-context|set-context|delete-context`.
// `lqctl login --context NAME` signs a context in; `--context NAME` picks one per command.
import { str } from '../args.js';
import {
  checkContextName,
  deleteContext,
  normalizeServer,
  readConfigFile,
  setContextServer,
  useContext,
  type LqctlConfig,
} from '../config.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { outputFormat, printList, type ListSpec } from '../output/listing.js';
import { writeTo } from '../output/stream.js';
import { note, type Command } from './context.js';

/** A context as listings show it: never its secrets. */
export interface ContextRow {
  name: string;
  current: boolean;
  server: string;
  user: string;
  /** api-key, session or none. */
  auth: 'api-key' | 'session' | 'none';
}

export function contextRows(
  contexts: Record<string, LqctlConfig>,
  current: string | undefined,
): ContextRow[] {
  return Object.keys(contexts)
    .sort()
    .map((name) => {
      const c = contexts[name]!;
      return {
        name,
        current: name === current,
        server: c.server ?? '',
        user: c.username ?? '',
        auth: c.api_key ? 'api-key' : c.refresh_token || c.access_token ? 'session' : 'none',
      };
    });
}

const CONTEXTS: ListSpec<ContextRow> = {
  columns: [
    { header: 'CURRENT', cell: (c) => (c.current ? '*' : '') },
    { header: 'NAME', cell: (c) => c.name },
    { header: 'SERVER', cell: (c) => c.server },
    { header: 'USER', cell: (c) => c.user },
    { header: 'AUTH', cell: (c) => c.auth, wide: true },
  ],
  name: (c) => c.name,
};

/** `lqctl config get-contexts`: every context, the current one starred. */
export const getContextsCommand: Command = async (ctx, cmd) => {
  outputFormat(cmd);
  const file = readConfigFile(ctx.configFile);
  await printList(ctx.stdout, cmd, contextRows(file.contexts, file.current_context), CONTEXTS);
  return Exit.OK;
};

/** `lqctl config current-context`: its name; exit 1 when none is set. */
export const currentContextCommand: Command = async (ctx) => {
  const file = readConfigFile(ctx.configFile);
  if (!file.current_context) {
    note(ctx, `no current context in ${ctx.configFile}: lqctl login (or config use-context NAME)`);
    return Exit.FAILED;
  }
  await writeTo(ctx.stdout, `${file.current_context}\n`);
  return Exit.OK;
};

/** `lqctl config use-context NAME`: the context later commands use. */
export const useContextCommand: Command = async (ctx, cmd) => {
  const name = checkContextName(cmd.positionals[0]!, 'the context name');
  const file = useContext(ctx.configFile, name);
  const c = file.contexts[name]!;
  await writeTo(ctx.stdout, `switched to context ${name} (${c.server ?? 'no server'})\n`);
  return Exit.OK;
};

/** `lqctl config set-context NAME --server URL`: creates a context, or moves it to a server. */
export const setContextCommand: Command = async (ctx, cmd) => {
  const name = checkContextName(cmd.positionals[0]!, 'the context name');
  const given = str(cmd, 'server');
  if (given === undefined) {
    throw new UsageError('config set-context needs --server URL');
  }
  const server = normalizeServer(given, '--server');
  const file = setContextServer(ctx.configFile, name, server);
  const c = file.contexts[name]!;
  await writeTo(
    ctx.stdout,
    `context ${name} is ${server}${c.api_key || c.refresh_token ? ` (signed in as ${c.username ?? '?'})` : ': lqctl login --context ' + name + ' to sign in'}\n`,
  );
  return Exit.OK;
};

/** `lqctl config delete-context NAME`: forgets a context and its credentials. */
export const deleteContextCommand: Command = (ctx, cmd) => {
  const name = checkContextName(cmd.positionals[0]!, 'the context name');
  const file = deleteContext(ctx.configFile, name);
  note(
    ctx,
    `deleted context ${name} from ${ctx.configFile}${file.current_context ? '' : '; no context is current now'}`,
  );
  return Promise.resolve(Exit.OK);
};
