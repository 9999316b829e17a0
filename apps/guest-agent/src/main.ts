// The guest agent's entry point: `limiquantix-agent [--device PATH | --listen PATH] [--config FILE]`.
// Plain Node.js, no framework: it runs in every VM, so start-up time and memory matter.
//
// Until the channel is open and the host's handshake answered, only what that needs is loaded
// (early-responder.ts: no protobuf code); the agent proper (assemble.ts) is imported after.
import { startupDone } from './runtime-tuning.js';
import { parseArgs } from 'node:util';
import { AGENT_VERSION, PROTOCOL_VERSION } from './version.js';
import { BUILD_COMMIT, BUILD_COMPILED, BUILD_RELEASE_KEYS, BUILD_TARGET } from './build-info.js';
import type { UpdateHost } from './update/self-updater.js';
import { listenChannel } from './channel/native-socket-listen.channel.js';
import { VirtioDeviceChannel } from './channel/virtio-device.channel.js';
import type { HostChannel } from './channel/host-channel.js';
import { ConfigError, DEFAULT_CONFIG_PATH, DEFAULT_DEVICE_PATH, loadConfig } from './config.js';
import { EarlyResponder } from './early-responder.js';
import { PROCESS_START } from './process-start.js';
import { Logger } from './logger.js';

const USAGE = `limiquantix-agent ${AGENT_VERSION}: the LimiQuantix guest agent

Usage: limiquantix-agent [--device PATH | --listen PATH] [--config FILE] [--log-level LEVEL]

  --device PATH     virtio-serial port to serve (default ${DEFAULT_DEVICE_PATH})
  --listen PATH     listen on a Unix socket instead (stands in for QEMU's chardev socket)
  --config FILE     JSON config (default ${DEFAULT_CONFIG_PATH}; built-in defaults if absent)
  --log-level L     debug | info | warn | error | silent (overrides the config)
  --check-config    validate the config, print the effective settings and exit
  --version         print the version, commit and target platform, and exit
  --help            this text

limiquantix-agent update-watchdog --state FILE
                    restarts the agent after a self-update and restores the previous
                    executable unless the new agent says AgentReady in time (the agent starts
                    it from the previous executable; PROTOCOL.md §10)
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`limiquantix-agent: ${message}\n`);
  process.exit(code);
}

/**
 * How this process replaces itself: the executable (bun) or the Node bundle's file (a checkout)
 * unless update.executable names another, the arguments it was started with, and the watchdog
 * run from the previous executable.
 */
function updateHostOf(configured: string | null, exit: () => void): UpdateHost {
  const executable = configured ?? (BUILD_COMPILED ? process.execPath : process.argv[1]!);
  const args = process.argv.slice(2);
  const runner = (file: string) =>
    BUILD_COMPILED ? [file] : [process.execPath, ...process.execArgv, file];
  return {
    version: AGENT_VERSION,
    target: BUILD_TARGET,
    executable,
    relaunch: [...runner(executable), ...args],
    watchdog: (previous, stateFile) => [
      ...runner(previous),
      'update-watchdog',
      '--state',
      stateFile,
    ],
    builtInKeys: BUILD_RELEASE_KEYS,
    exit,
  };
}

async function watchdogMain(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(3),
    options: { state: { type: 'string' } },
  });
  if (!values.state) {
    fail('update-watchdog needs --state FILE');
  }
  const { runWatchdog } = await import('./update/watchdog.js');
  process.exit(await runWatchdog(values.state));
}

async function main(): Promise<void> {
  if (process.argv[2] === 'update-watchdog') {
    return watchdogMain();
  }
  let args;
  try {
    args = parseArgs({
      options: {
        device: { type: 'string' },
        listen: { type: 'string' },
        config: { type: 'string' },
        'log-level': { type: 'string' },
        'check-config': { type: 'boolean' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`);
  }
  const { values, positionals } = args;
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.version) {
    process.stdout.write(
      `${AGENT_VERSION} (protocol ${PROTOCOL_VERSION}) commit ${BUILD_COMMIT} target ${BUILD_TARGET}\n`,
    );
    return;
  }
  if (values.device && values.listen) {
    fail('--device and --listen are exclusive');
  }
  // The lab guest's init passes the port as a bare argument.
  const devicePath = values.device ?? positionals[0];

  let config;
  try {
    config = loadConfig(values.config);
  } catch (err) {
    fail(err instanceof ConfigError ? err.message : String(err));
  }
  const level = values['log-level'] ?? config.log_level;
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level)) {
    fail(`--log-level must be one of debug, info, warn, error, silent (got ${level})`);
  }
  if (values['check-config']) {
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    return;
  }
  const log = new Logger(level as typeof config.log_level);
  let stopping = false;

  // Every platform's port is a virtio-serial device (platform.openDevice), opened here without
  // loading the platform.
  const channel: HostChannel = values.listen
    ? listenChannel(values.listen)
    : new VirtioDeviceChannel(devicePath ?? DEFAULT_DEVICE_PATH);

  const early = new EarlyResponder(config, channel, log);
  try {
    await channel.start(early.listener);
  } catch (err) {
    fail(`cannot open ${channel.description}: ${(err as Error).message}`, 1);
  }
  early.opened();
  await early.needed;

  // A freeze an earlier agent left behind is thawed now, or when its deadline comes.
  const [{ assembleAgent }, { currentPlatform }] = await Promise.all([
    import('./assemble.js'),
    import('./platform/current-platform.js'),
  ]);
  const assembled = await assembleAgent(
    config,
    channel,
    log,
    updateHostOf(config.update.executable, () => stop('update')),
    currentPlatform,
    PROCESS_START,
  );
  const { agent } = assembled;
  // AgentReady as the early phase leaves it to the agent: after its sync, or at start (Agent.takeOver).
  agent.takeOver(early);
  startupDone();
  // What start-up alone needed (its garbage, most of the executable's code pages) goes back at
  // the first idle moment.
  agent.memory.afterStartup();

  function stop(signal: string): void {
    if (stopping) {
      return;
    }
    stopping = true;
    log.info('stopping', { signal });
    // A stopping agent never leaves filesystems frozen behind it (a crash leaves the state
    // file, and the next agent thaws them).
    void assembled.stop().finally(() => process.exit(0));
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('uncaughtException', (err) => {
    // Keep serving: one bad request must not take the channel down with it.
    log.error('uncaught exception', { error: err.stack ?? err.message });
  });
  process.on('unhandledRejection', (err) => {
    log.error('unhandled rejection', { error: (err as Error)?.stack ?? String(err) });
  });
}

void main();
