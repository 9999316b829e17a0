#!/usr/bin/env node
// `npm run sim -- --vms N --dir PATH`: simulated VMs for developing and testing the node daemon.
// Each VM is a real guest agent process serving PATH/<vmId>.sock, as QEMU's chardev socket
// would; the logic is in sim-core.mjs, shared with test/support/sim-vms.ts.
import { existsSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  AGENT_BUNDLE,
  DEFAULT_PREFIX,
  KILL_GRACE_MS,
  MAX_VMS,
  REPO_ROOT,
  SIM_HOST_BUNDLE,
  SimError,
  startSimVms,
  validateSimOptions,
} from './sim-core.mjs';

const USAGE = `sim: run simulated VMs, each a real guest agent on a Unix socket

Usage: npm run sim -- --vms N --dir PATH [options]
       node scripts/sim.mjs --vms N --dir PATH [options]

  --vms N              number of VMs, 1..${MAX_VMS}
  --dir PATH           channel directory (created if missing); VM i serves PATH/<prefix><i>.sock
  --prefix P           VM id prefix (default ${DEFAULT_PREFIX}: ${DEFAULT_PREFIX}1, ${DEFAULT_PREFIX}2, ...)
  --config-extra JSON  JSON object deep-merged into every agent config
                       (e.g. '{"telemetry_interval_ms":1000,"policy":{"blocked_operations":["execute"]}}')
  --restart            start an agent again 1 s after it dies on its own
                       (gives up on a VM after 5 crashes within 5 s of starting)
  --per-process K      run K agents in each process (default 1): a Node.js process is about
                       50 MiB, so large fleets need this; not with --restart
  -h, --help           this text

Each VM gets a work directory PATH/.sim/<id>/ holding:
  agent.json           its config: log_level warn, files.roots [work dir, /tmp],
                       commands.poweroff/reboot/halt, fsfreeze, chpasswd, set_clock and
                       hwclock_systohc -> record-shutdown.sh; no time service
  record-shutdown.sh   appends its arguments to shutdown.log (never touches this machine)
  shutdown.log         one line per call: poweroff | reboot | halt | fsfreeze --freeze DIR |
                       chpasswd | set-clock @SECONDS | hwclock (emptied at start)
  mounts               the one filesystem quiesce sees (the work dir)

Output: one line per VM "<id> <socket> pid=<pid>" (again after each restart), then "ready".
Agent warnings and unexpected exits go to stderr, prefixed with the VM id.
Ctrl-C or SIGTERM stops every agent (SIGTERM, SIGKILL after ${KILL_GRACE_MS / 1000} s) and exits.
scripts/sim.mjs builds nothing (\`npm run sim\` builds the agent first).
`;

function usageError(message) {
  process.stderr.write(`sim: ${message} (see --help)\n`);
  process.exit(2);
}

function parseCli(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        vms: { type: 'string' },
        dir: { type: 'string' },
        prefix: { type: 'string' },
        'config-extra': { type: 'string' },
        restart: { type: 'boolean' },
        'per-process': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return usageError(err.message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (values.vms === undefined) {
    usageError('--vms is required');
  }
  const count = /^\d+$/.test(values.vms) ? Number(values.vms) : NaN;
  if (!Number.isInteger(count) || count < 1 || count > MAX_VMS) {
    usageError(`--vms must be an integer from 1 to ${MAX_VMS} (got ${JSON.stringify(values.vms)})`);
  }
  if (!values.dir) {
    usageError('--dir is required');
  }
  let config;
  if (values['config-extra'] !== undefined) {
    try {
      config = JSON.parse(values['config-extra']);
    } catch (err) {
      usageError(`--config-extra is not valid JSON: ${err.message}`);
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      usageError('--config-extra must be a JSON object');
    }
  }
  // Under `npm run`, the working directory is the repository; resolve against where the
  // command was typed.
  const base = process.env.npm_lifecycle_event ? (process.env.INIT_CWD ?? process.cwd()) : '.';
  const options = {
    dir: isAbsolute(values.dir) ? values.dir : resolve(base, values.dir),
    count,
    prefix: values.prefix ?? DEFAULT_PREFIX,
    config,
    restartOnExit: values.restart ?? false,
    agentsPerProcess: values['per-process'] === undefined ? 1 : Number(values['per-process']),
  };
  if (values['per-process'] !== undefined && !/^\d+$/.test(values['per-process'])) {
    usageError(
      `--per-process must be a whole number (got ${JSON.stringify(values['per-process'])})`,
    );
  }
  try {
    validateSimOptions(options);
  } catch (err) {
    usageError(err.message);
  }
  return options;
}

const out = (line) => process.stdout.write(`${line}\n`);
const err = (line) => process.stderr.write(`${line}\n`);

function describeExit(event) {
  return event.signal ? `signal ${event.signal}` : `code ${event.code}`;
}

async function main() {
  const options = parseCli(process.argv.slice(2));
  const bundle = options.agentsPerProcess > 1 ? SIM_HOST_BUNDLE : AGENT_BUNDLE;
  if (!existsSync(bundle)) {
    err(
      `sim: ${relative(process.cwd(), bundle) || bundle} is missing: run \`npm run build\` first (in ${REPO_ROOT})`,
    );
    process.exit(2);
  }
  let ready = false;
  const onEvent = (event) => {
    const id = event.vm.id;
    switch (event.type) {
      case 'started':
        out(`${id} ${event.vm.socketPath} pid=${event.vm.pid}`);
        break;
      case 'output':
        err(`[${id}] ${event.line}`);
        break;
      case 'exited':
        if (!event.expected && ready) {
          err(
            `sim: ${id} (pid ${event.vm.pid}) exited unexpectedly (${describeExit(event)})${options.restartOnExit ? '; restarting in 1 s' : ''}`,
          );
        }
        break;
      case 'restart-failed':
        err(`sim: ${id} could not be restarted: ${event.error}`);
        break;
      case 'gave-up':
        err(`sim: ${id} crashed ${event.crashes} times right after starting; not restarting it`);
        break;
    }
  };

  let sim;
  try {
    sim = await startSimVms({ ...options, onEvent });
  } catch (e) {
    err(`sim: ${e instanceof SimError ? e.message : (e?.stack ?? String(e))}`);
    process.exit(1);
  }
  ready = true;
  out(`ready (${options.count} VMs in ${sim.dir}; Ctrl-C stops them)`);

  // Keep running even if every agent dies.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  const shutdown = (signal) => {
    if (stopping) {
      err(`sim: still stopping (at most ${KILL_GRACE_MS / 1000} s)`);
      return;
    }
    stopping = true;
    err(`sim: ${signal}: stopping ${options.count} agents`);
    sim.stop().then(
      () => {
        clearInterval(keepAlive);
        process.exit(0);
      },
      (e) => {
        err(`sim: stop failed: ${e?.message ?? String(e)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGHUP', () => shutdown('SIGHUP'));
}

await main();
