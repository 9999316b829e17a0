// agentctl: talk to one guest agent over its socket, like `virsh qemu-agent-command`, for
// operators and tests. `agentctl --help` lists the commands.
import { parseArgs } from 'node:util';
import { create, toJson, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import {
  ExecuteRequestSchema,
  ExecuteResponseSchema,
  FileWriteResponseSchema,
  GetInfoRequestSchema,
  GetInfoResponseSchema,
  PingRequestSchema,
  PongResponseSchema,
  ShutdownMode,
  ShutdownRequestSchema,
  ShutdownResponseSchema,
  type AgentInfo,
} from '@lq/proto';
import {
  AgentClient,
  AgentNotConnectedError,
  AgentRequestError,
  AgentTimeoutError,
  readGuestFile,
  writeGuestFile,
} from '@lq/host';

const USAGE = `agentctl: talk to a LimiQuantix guest agent over its socket

Usage: agentctl --socket PATH [--json] [--timeout S] <command> [options]

Commands:
  ping                          round trip; prints the agent version and the time taken
  info                          hostname, OS, kernel, capabilities, interfaces
  exec [options] -- CMD ARGS…   run a program; its stdout/stderr become ours and agentctl
                                exits with its exit code (124 on timeout, 128+N on signal N)
      --timeout S               kill the command's process group after S seconds
      --user U --group G        run as user U (name or uid), group G (default: U's primary)
      --supplementary-groups    keep U's supplementary groups
      --env K=V (repeatable)    extra environment      --cwd DIR   working directory
      --shell                   run CMD ARGS… joined as one /bin/sh -c command line
      --stdin                   send our stdin to the command
      --output-limit BYTES      per-stream capture cap
  read REMOTE                   write the guest file REMOTE to stdout, in chunks
  write REMOTE [--mode OCTAL]   replace the guest file REMOTE with stdin, atomically
  shutdown [--mode poweroff|reboot|halt] [--delay S]

Global options:
  --socket PATH   the agent's socket (or LQ_AGENT_SOCKET)
  --json          print responses as proto3 JSON
  --timeout S     request deadline in seconds (exec: the command's timeout; the deadline is
                  that plus 10 s)

Exit codes: the guest command's for exec; 0 ok; 1 the agent refused (message on stderr);
2 usage; 3 agent not reachable; 4 no answer in time.
`;

class UsageError extends Error {}

function printJson<D extends DescMessage>(schema: D, message: MessageShape<D>): void {
  process.stdout.write(`${JSON.stringify(toJson(schema, message), null, 2)}\n`);
}

function describeInfo(info: AgentInfo): string {
  const lines = [
    `hostname:      ${info.hostname}`,
    `os:            ${info.os?.prettyName || info.os?.name || '?'}`,
    `kernel:        ${info.os?.kernelRelease ?? '?'} (${info.os?.arch ?? '?'})`,
    `agent:         ${info.agentVersion} (protocol ${info.protocolVersion})`,
    `capabilities:  ${info.capabilities.join(', ')}`,
    'interfaces:',
    ...info.interfaces.map(
      (i) => `  ${i.name.padEnd(12)} ${i.mac.padEnd(18)} ${[...i.ipv4, ...i.ipv6].join(' ')}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}

async function* stdinChunks(): AsyncIterable<Uint8Array> {
  for await (const chunk of process.stdin) {
    yield chunk as Buffer;
  }
}

function writeOut(stream: NodeJS.WriteStream, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

async function run(argv: string[]): Promise<number> {
  const dashdash = argv.indexOf('--');
  const before = dashdash >= 0 ? argv.slice(0, dashdash) : argv;
  const command = dashdash >= 0 ? argv.slice(dashdash + 1) : [];
  const { values, positionals } = parseArgs({
    args: before,
    allowPositionals: true,
    options: {
      socket: { type: 'string' },
      json: { type: 'boolean' },
      timeout: { type: 'string' },
      user: { type: 'string' },
      group: { type: 'string' },
      'supplementary-groups': { type: 'boolean' },
      env: { type: 'string', multiple: true },
      cwd: { type: 'string' },
      shell: { type: 'boolean' },
      stdin: { type: 'boolean' },
      'output-limit': { type: 'string' },
      mode: { type: 'string' },
      delay: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const socket = values.socket ?? process.env.LQ_AGENT_SOCKET;
  if (!socket) {
    throw new UsageError('--socket PATH is required (or set LQ_AGENT_SOCKET)');
  }
  const seconds = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) {
      return undefined;
    }
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) {
      throw new UsageError(`--${name} must be a positive number of seconds (got ${v})`);
    }
    return n;
  };
  const timeoutS = seconds('timeout', values.timeout);
  const [op, ...rest] = positionals;

  const client = new AgentClient({
    path: socket,
    hostId: 'agentctl',
    requestTimeoutMs: (timeoutS ?? 30) * 1000,
  });
  client.start();
  try {
    await client.waitReady(5000);
    switch (op) {
      case 'ping': {
        const t0 = performance.now();
        const pong = await client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
        const ms = performance.now() - t0;
        if (values.json) {
          printJson(PongResponseSchema, pong);
        } else {
          process.stdout.write(
            `pong from agent ${pong.agentVersion} (up ${pong.uptimeSeconds.toFixed(1)} s) in ${ms.toFixed(2)} ms\n`,
          );
        }
        return 0;
      }
      case 'info': {
        const res = await client.call(
          { case: 'getInfo', value: create(GetInfoRequestSchema) },
          'getInfoResponse',
        );
        if (values.json) {
          printJson(GetInfoResponseSchema, res);
        } else if (res.info) {
          process.stdout.write(describeInfo(res.info));
        }
        return 0;
      }
      case 'exec': {
        if (command.length === 0) {
          throw new UsageError('exec needs a command after --, e.g. agentctl exec -- uname -a');
        }
        const env: Record<string, string> = {};
        for (const kv of values.env ?? []) {
          const eq = kv.indexOf('=');
          if (eq <= 0) {
            throw new UsageError(`--env must be KEY=VALUE (got ${kv})`);
          }
          env[kv.slice(0, eq)] = kv.slice(eq + 1);
        }
        let stdin = new Uint8Array();
        if (values.stdin) {
          const parts: Buffer[] = [];
          for await (const c of process.stdin) {
            parts.push(c as Buffer);
          }
          stdin = Buffer.concat(parts);
        }
        const outputLimit =
          values['output-limit'] === undefined ? 0 : Number(values['output-limit']);
        if (!Number.isInteger(outputLimit) || outputLimit < 0) {
          throw new UsageError(
            `--output-limit must be a byte count (got ${values['output-limit']})`,
          );
        }
        const timeoutMs = Math.round((timeoutS ?? 0) * 1000);
        const res = await client.call(
          {
            case: 'execute',
            value: create(ExecuteRequestSchema, {
              argv: values.shell ? [] : command,
              command: values.shell ? command.join(' ') : '',
              env,
              cwd: values.cwd ?? '',
              stdin,
              timeoutMs,
              runAsUser: values.user ?? '',
              runAsGroup: values.group ?? '',
              includeSupplementaryGroups: values['supplementary-groups'] ?? false,
              outputLimitBytes: outputLimit,
            }),
          },
          'executeResponse',
          // The agent bounds the command; our deadline only has to outlast it.
          { timeoutMs: (timeoutMs || (client.limits?.execTimeoutMaxMs ?? 60_000)) + 10_000 },
        );
        if (values.json) {
          printJson(ExecuteResponseSchema, res);
        } else {
          await writeOut(process.stdout, res.stdout);
          await writeOut(process.stderr, res.stderr);
          if (res.stdoutTruncated || res.stderrTruncated) {
            process.stderr.write(
              `agentctl: output truncated (stdout ${res.stdoutTotalBytes} B, stderr ${res.stderrTotalBytes} B produced)\n`,
            );
          }
          if (res.timedOut) {
            process.stderr.write(
              `agentctl: command timed out after ${timeoutMs} ms and was killed\n`,
            );
          }
        }
        if (res.timedOut) {
          return 124;
        }
        if (res.exitCode !== undefined) {
          return res.exitCode;
        }
        const signals: Record<string, number> = {
          SIGHUP: 1,
          SIGINT: 2,
          SIGQUIT: 3,
          SIGABRT: 6,
          SIGKILL: 9,
          SIGSEGV: 11,
          SIGPIPE: 13,
          SIGTERM: 15,
        };
        return 128 + (signals[res.signal] ?? 0);
      }
      case 'read': {
        const [remote] = rest;
        if (!remote) {
          throw new UsageError('read needs the guest path: agentctl read /etc/hostname > hostname');
        }
        const out = process.stdout;
        await readGuestFile(client, remote, (chunk) => writeOut(out, chunk), {
          timeoutMs: (timeoutS ?? 30) * 1000,
        });
        return 0;
      }
      case 'write': {
        const [remote] = rest;
        if (!remote) {
          throw new UsageError('write needs the guest path: agentctl write /tmp/x < local');
        }
        let mode: number | undefined;
        if (values.mode !== undefined) {
          mode = Number.parseInt(values.mode, 8);
          if (!/^[0-7]{3,4}$/.test(values.mode)) {
            throw new UsageError(`--mode must be octal like 0644 (got ${values.mode})`);
          }
        }
        const res = await writeGuestFile(client, remote, stdinChunks(), {
          mode,
          timeoutMs: (timeoutS ?? 30) * 1000,
        });
        if (values.json) {
          printJson(
            FileWriteResponseSchema,
            create(FileWriteResponseSchema, {
              size: res.size,
              committed: true,
              bytesWritten: BigInt(res.bytes),
            }),
          );
        } else {
          process.stderr.write(`wrote ${res.bytes} bytes to ${remote}\n`);
        }
        return 0;
      }
      case 'shutdown': {
        const modes: Record<string, ShutdownMode> = {
          poweroff: ShutdownMode.POWEROFF,
          reboot: ShutdownMode.REBOOT,
          halt: ShutdownMode.HALT,
        };
        const mode = modes[values.mode ?? 'poweroff'];
        if (mode === undefined) {
          throw new UsageError(`--mode must be poweroff, reboot or halt (got ${values.mode})`);
        }
        const delay = values.delay === undefined ? 0 : Number(values.delay);
        if (!Number.isInteger(delay) || delay < 0) {
          throw new UsageError(`--delay must be whole seconds (got ${values.delay})`);
        }
        const res = await client.call(
          { case: 'shutdown', value: create(ShutdownRequestSchema, { mode, delaySeconds: delay }) },
          'shutdownResponse',
        );
        if (values.json) {
          printJson(ShutdownResponseSchema, res);
        } else {
          process.stdout.write(`${values.mode ?? 'poweroff'} scheduled\n`);
        }
        return 0;
      }
      default:
        throw new UsageError(`unknown command ${op} (ping, info, exec, read, write, shutdown)`);
    }
  } finally {
    client.close();
  }
}

function exitWith(code: number): void {
  // Let stdout drain (a pipe may still hold a large read) before exiting.
  process.stdout.write('', () => process.exit(code));
}

run(process.argv.slice(2)).then(exitWith, (err: unknown) => {
  if (
    err instanceof UsageError ||
    String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')
  ) {
    process.stderr.write(`agentctl: ${(err as Error).message}\n(agentctl --help for usage)\n`);
    exitWith(2);
  } else if (err instanceof AgentRequestError) {
    process.stderr.write(`agentctl: agent refused: ${err.codeName}: ${err.message}\n`);
    exitWith(1);
  } else if (err instanceof AgentNotConnectedError) {
    process.stderr.write(`agentctl: ${err.message}\n`);
    exitWith(3);
  } else if (err instanceof AgentTimeoutError) {
    process.stderr.write(`agentctl: ${err.message}\n`);
    exitWith(4);
  } else {
    process.stderr.write(`agentctl: ${(err as Error).stack ?? String(err)}\n`);
    exitWith(1);
  }
});
