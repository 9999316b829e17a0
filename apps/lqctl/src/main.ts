#!/usr/bin/env node
// lqctl: a CLI for platform teams over the control plane's REST API (plain Node.js: fetch and the
// standard library). `lqctl --help` lists the commands and the exit codes.
import { ApiClient, SessionAuth, StaticAuth, type AuthSource } from './api-client.js';
import { didYouMean, parseCommandLine, str, bool, type ParsedCommand } from './args.js';
import {
  configPath,
  contextNameOf,
  readConfigFile,
  resolveSettings,
  type Settings,
} from './config.js';
import { SignInError, UsageError } from './errors.js';
import { Exit, describeFailure } from './exit-codes.js';
import {
  agentReleaseCommand,
  agentReleasesCommand,
  agentRolloutCommand,
  agentUpdateCommand,
  agentVersionsCommand,
} from './commands/agent.command.js';
import {
  keysCreateCommand,
  keysLsCommand,
  keysRevokeCommand,
  projectsCreateCommand,
  projectsLsCommand,
  rolesBindCommand,
  rolesLsCommand,
  rolesUnbindCommand,
  usersCreateCommand,
  usersDisableCommand,
  usersLsCommand,
} from './commands/admin.command.js';
import { auditLsCommand, auditShowCommand } from './commands/audit.command.js';
import { auditExportCommand, auditVerifyCommand } from './commands/audit-verify.command.js';
import type { Command, Context } from './commands/context.js';
import { completionCommand } from './commands/completion.command.js';
import {
  currentContextCommand,
  deleteContextCommand,
  getContextsCommand,
  setContextCommand,
  useContextCommand,
} from './commands/config.command.js';
import { cpCommand } from './commands/cp.command.js';
import { execCommand } from './commands/exec.command.js';
import { lsCommand, mkdirCommand, mvCommand, rmCommand } from './commands/files.command.js';
import {
  execLogsCommand,
  execLsCommand,
  execShowCommand,
  runsLsCommand,
  runsShowCommand,
} from './commands/history.command.js';
import { loginCommand, logoutCommand, whoamiCommand } from './commands/login.command.js';
import { quiesceCommand } from './commands/quiesce.command.js';
import { runCommand } from './commands/run.command.js';
import { vmLabelCommand, vmShowCommand, vmsLsCommand } from './commands/vms.command.js';
import { VERSION, usageOf } from './usage.js';

const COMMANDS: Record<string, Command> = {
  login: loginCommand,
  logout: logoutCommand,
  whoami: whoamiCommand,
  'vms ls': vmsLsCommand,
  'vm show': vmShowCommand,
  'vm label': vmLabelCommand,
  exec: execCommand,
  'exec ls': execLsCommand,
  'exec show': execShowCommand,
  'exec logs': execLogsCommand,
  run: runCommand,
  'runs ls': runsLsCommand,
  'runs show': runsShowCommand,
  cp: cpCommand,
  ls: lsCommand,
  rm: rmCommand,
  mkdir: mkdirCommand,
  mv: mvCommand,
  quiesce: quiesceCommand('quiesce'),
  thaw: quiesceCommand('thaw'),
  'audit ls': auditLsCommand,
  'agent releases': agentReleasesCommand,
  'agent versions': agentVersionsCommand,
  'agent update': agentUpdateCommand,
  'agent rollout': agentRolloutCommand,
  'agent release': agentReleaseCommand,
  completion: completionCommand,
  'audit show': auditShowCommand,
  'users ls': usersLsCommand,
  'users create': usersCreateCommand,
  'users disable': usersDisableCommand(true),
  'users enable': usersDisableCommand(false),
  'keys ls': keysLsCommand,
  'keys create': keysCreateCommand,
  'keys revoke': keysRevokeCommand,
  'projects ls': projectsLsCommand,
  'projects create': projectsCreateCommand,
  'roles ls': rolesLsCommand,
  'roles bind': rolesBindCommand,
  'roles unbind': rolesUnbindCommand,
  'audit export': auditExportCommand,
  'audit verify': auditVerifyCommand,
  'config get-contexts': getContextsCommand,
  'config current-context': currentContextCommand,
  'config use-context': useContextCommand,
  'config set-context': setContextCommand,
  'config delete-context': deleteContextCommand,
};

/** Commands that work without credentials (login, logout and config manage them). */
const WITHOUT_CREDENTIALS = new Set(['login', 'logout', 'completion']);

function needsCredentials(name: string): boolean {
  return !WITHOUT_CREDENTIALS.has(name) && !name.startsWith('config ');
}

/** Whether --context may name a context that does not exist yet (login creates it). */
function mayCreateContext(name: string): boolean {
  return name === 'login' || name === 'completion' || name.startsWith('config ');
}

function authFor(settings: Settings, ctx: Pick<Context, 'configFile' | 'config' | 'contextName'>) {
  const auth: AuthSource =
    settings.tokenSource === 'session'
      ? new SessionAuth(
          settings.server,
          ctx.configFile,
          ctx.config,
          fetch,
          Date.now,
          ctx.contextName,
        )
      : new StaticAuth(settings.token);
  return auth;
}

let current: ParsedCommand | undefined;

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv);
  if (parsed.kind === 'version') {
    process.stdout.write(`lqctl ${VERSION}\n`);
    return Exit.OK;
  }
  if (parsed.kind === 'help') {
    const text = usageOf(parsed.topic);
    if (text === undefined) {
      throw new UsageError(`no help for ${parsed.topic}`);
    }
    process.stdout.write(text);
    return Exit.OK;
  }
  const cmd = parsed.command;
  current = cmd;
  const configFile = configPath(process.env);
  const file = readConfigFile(configFile, (line) => process.stderr.write(`lqctl: ${line}\n`));
  const context = contextNameOf(str(cmd, 'context'), process.env, file);
  if (context.named && !file.contexts[context.name] && !mayCreateContext(cmd.name)) {
    const known = Object.keys(file.contexts);
    throw new UsageError(
      `no context ${context.name} in ${configFile}${
        didYouMean(context.name, known) ||
        (known.length > 0 ? ` (contexts: ${known.join(', ')})` : '')
      }: create it with lqctl login --context ${context.name}`,
    );
  }
  const config = { ...file.contexts[context.name] };
  const settings = resolveSettings(
    { server: str(cmd, 'server'), token: str(cmd, 'token') },
    process.env,
    config,
    context.name,
    file.contexts,
  );
  if (settings.credentialsProblem && needsCredentials(cmd.name)) {
    throw new SignInError(settings.credentialsProblem);
  }
  const where = { configFile, config, contextName: context.name };
  const ctx: Context = {
    client: new ApiClient(settings.server, authFor(settings, where)),
    settings,
    json: bool(cmd, 'json'),
    configFile,
    config,
    contextName: context.name,
    stdout: process.stdout,
    stderr: process.stderr,
    // Lazy: only login and --stdin read it, and opening it is not free on a terminal.
    get stdin() {
      return process.stdin;
    },
  };
  return COMMANDS[cmd.name]!(ctx, cmd);
}

function exitWith(code: number): void {
  // Let stdout drain (a pipe may still hold a large listing) before exiting.
  process.stdout.write('', () => process.exit(code));
}

// `lqctl audit ls | head`: a closed pipe ends the listing quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  process.exit(err.code === 'EPIPE' ? Exit.OK : Exit.FAILED);
});

main(process.argv.slice(2)).then(exitWith, (err: unknown) => {
  const { message, exitCode } = describeFailure(err);
  const hint =
    exitCode === Exit.USAGE && err instanceof UsageError
      ? `\n(lqctl ${err.topic ?? current?.name ?? ''} --help for usage)`.replace('  ', ' ')
      : '';
  process.stderr.write(`lqctl: ${message}${hint}\n`);
  if (process.env.LQCTL_DEBUG && err instanceof Error) {
    process.stderr.write(`${err.stack ?? ''}\n`);
  }
  exitWith(exitCode);
});
