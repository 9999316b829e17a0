import { ApiClient, StaticAuth, applyTokenPair } from '../api-client.js';
import { str } from '../args.js';
import { saveConfig, useContext, type LqctlConfig, type TokenSource } from '../config.js';
import { ApiError, SignInError, UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { jsonText } from '../output/stream.js';
import { readSecret } from '../prompt.js';
import { note, type Command, type Context } from './context.js';
import type { MeView, TokenPairView } from '@lq/api';

/** "admin (API key lq_testadmn): admin on every project" */
export function describeMe(me: MeView): string {
  const how =
    me.auth_method === 'api_key' ? `API key ${me.api_key ?? '?'}` : `signed in with a password`;
  const roles =
    me.bindings.length === 0
      ? 'no roles'
      : me.bindings
          .map(
            (b) =>
              `${b.role} on ${b.project === '*' ? 'every project' : `project ${b.project}`}${
                Object.keys(b.restrictions).length > 0 ? ` (${JSON.stringify(b.restrictions)})` : ''
              }`,
          )
          .join(', ');
  return `${me.username} (${how}): ${roles}`;
}

async function me(server: string, token: string): Promise<MeView> {
  try {
    return await new ApiClient(server, new StaticAuth(token)).json<MeView>('GET', '/api/auth/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      throw new SignInError(`sign-in refused by ${server}: ${err.message}`);
    }
    throw err;
  }
}

/**
 * `lqctl login --api-key K` or `--username U`: checks the credentials against the server, then
 * stores them (and the server) in the config file, mode 0600, as the context --context names
 * (else the current one, else "default"), which becomes the current context.
 */
export const loginCommand: Command = async (ctx, cmd) => {
  const username = str(cmd, 'username');
  let apiKey = str(cmd, 'api-key');
  if ((username === undefined) === (apiKey === undefined)) {
    throw new UsageError('login needs --username U or --api-key K (one of them)');
  }
  const server = ctx.settings.server;
  const next: LqctlConfig = { server };
  let who: MeView;
  if (apiKey !== undefined) {
    if (apiKey === '-') {
      apiKey = await readSecret('API key: ', ctx.stdin, ctx.stderr);
    }
    if (!apiKey) {
      throw new UsageError('the API key is empty');
    }
    who = await me(server, apiKey);
    next.api_key = apiKey;
    next.username = who.username;
  } else {
    const password = await readSecret(
      `Password for ${username} at ${server}: `,
      ctx.stdin,
      ctx.stderr,
    );
    if (!password) {
      throw new UsageError('the password is empty');
    }
    let pair: TokenPairView;
    try {
      pair = await new ApiClient(server, new StaticAuth(undefined)).json(
        'POST',
        '/api/auth/login',
        {
          json: { username, password },
        },
      );
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        throw new SignInError(`sign-in refused by ${server}: ${err.message}`);
      }
      throw err;
    }
    applyTokenPair(next, pair);
    next.username = username;
    who = await me(server, pair.access_token);
  }
  const before = ctx.config.server;
  saveConfig(ctx.configFile, next, ctx.contextName);
  useContext(ctx.configFile, ctx.contextName);
  if (ctx.json) {
    ctx.stdout.write(
      jsonText({ server, config: ctx.configFile, context: ctx.contextName, me: who }),
    );
  } else {
    ctx.stdout.write(`signed in to ${server} as ${describeMe(who)}\n`);
    note(ctx, `credentials saved in ${ctx.configFile} as context ${ctx.contextName} (current)`);
    if (before && before.replace(/\/+$/, '') !== server) {
      // The context now names another server: its old credentials are gone.
      note(
        ctx,
        `context ${ctx.contextName} was ${before}; lqctl login --context NAME keeps a context per server`,
      );
    }
  }
  return Exit.OK;
};

/** `lqctl logout`: forgets the context's stored credentials (its server setting stays). */
export const logoutCommand: Command = (ctx: Context) => {
  const next: LqctlConfig = ctx.config.server ? { server: ctx.config.server } : {};
  saveConfig(ctx.configFile, next, ctx.contextName);
  note(ctx, `credentials of context ${ctx.contextName} removed from ${ctx.configFile}`);
  return Promise.resolve(Exit.OK);
};

/** `lqctl whoami`: the caller as the server sees it. */
export const whoamiCommand: Command = async (ctx) => {
  const who = await ctx.client.json<MeView>('GET', '/api/auth/me');
  const from: Record<TokenSource, string> = {
    flag: 'token from --token',
    env: 'token from LQ_TOKEN',
    'api-key': `API key of context ${ctx.contextName} in ${ctx.configFile}`,
    session: `session of context ${ctx.contextName} in ${ctx.configFile}`,
    none: 'no credentials',
  };
  ctx.stdout.write(
    ctx.json
      ? jsonText(who)
      : `${describeMe(who)} at ${ctx.client.server} (${from[ctx.settings.tokenSource]})\n`,
  );
  return Exit.OK;
};
