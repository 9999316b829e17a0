// The guest agent's entry point: `limiquantix-agent [--device PATH | --listen PATH] [--config FILE]`.
// Plain Node.js, no framework: it runs in every VM, so start-up time and memory matter.
import { startupDone } from './runtime-tuning.js';
import { parseArgs } from 'node:util';
import { AGENT_VERSION, PROTOCOL_VERSION } from './agent.js';
import { BUILD_COMMIT, BUILD_TARGET } from './build-info.js';
import { assembleAgent } from './assemble.js';
import { SocketListenChannel } from './channel/socket-listen.channel.js';
import { VirtioDeviceChannel } from './channel/virtio-device.channel.js';
import type { HostChannel } from './channel/host-channel.js';
import { ConfigError, DEFAULT_CONFIG_PATH, DEFAULT_DEVICE_PATH, loadConfig } from './config.js';
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
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`limiquantix-agent: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
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

  const channel: HostChannel = values.listen
    ? new SocketListenChannel(values.listen)
    : new VirtioDeviceChannel(devicePath ?? DEFAULT_DEVICE_PATH);

  // A freeze an earlier agent left behind is thawed now, or when its deadline comes.
  const assembled = await assembleAgent(config, channel, log);
  const { agent } = assembled;

  try {
    await agent.start();
  } catch (err) {
    fail(`cannot open ${channel.description}: ${(err as Error).message}`, 1);
  }
  await agent.announce();
  startupDone();
  // What start-up alone needed (its garbage, most of the executable's code pages) goes back now.
  void agent.memory.reclaim();

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      return;
    }
    stopping = true;
    log.info('stopping', { signal });
    // A stopping agent never leaves filesystems frozen behind it (a crash leaves the state
    // file, and the next agent thaws them).
    void assembled.stop().finally(() => process.exit(0));
  };
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
