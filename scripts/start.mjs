#!/usr/bin/env node
// `npm start`: builds the bundles and runs a guest agent on a local socket, ready for agentctl.
// (The whole platform — node daemon, control plane, databases — joins this command as those
// tiers land.) Ctrl-C stops it and leaves nothing behind.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dev = join(root, '.limiquantix', 'dev');
const files = join(dev, 'files');
mkdirSync(files, { recursive: true });
const socket = join(dev, 'agent.sock');
const config = join(dev, 'agent.json');
if (!existsSync(config)) {
  // Dev defaults: file transfer confined to .limiquantix/dev/files and /tmp, and shutdown
  // pointed at `true` so trying it cannot power off this machine.
  writeFileSync(
    config,
    `${JSON.stringify(
      {
        log_level: 'info',
        files: { roots: [files, '/tmp'] },
        commands: { poweroff: ['/bin/true'], reboot: ['/bin/true'], halt: ['/bin/true'] },
      },
      null,
      2,
    )}\n`,
  );
}

execFileSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
const agent = spawn(
  process.execPath,
  [join(root, 'dist/guest-agent/limiquantix-agent.cjs'), '--listen', socket, '--config', config],
  { stdio: 'inherit' },
);

const rel = (p) => p.replace(`${root}/`, '');
process.stdout.write(`
LimiQuantix guest agent running on ${rel(socket)} (config ${rel(config)}).
Try, from another terminal in this folder:

  npm run -s agentctl -- --socket ${rel(socket)} ping
  npm run -s agentctl -- --socket ${rel(socket)} info
  npm run -s agentctl -- --socket ${rel(socket)} exec -- uname -a
  echo hello | npm run -s agentctl -- --socket ${rel(socket)} write ${files}/hello.txt
  npm run -s agentctl -- --socket ${rel(socket)} read ${files}/hello.txt

Ctrl-C stops it.
`);

const stop = () => agent.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
agent.on('exit', (code, signal) => process.exit(signal ? 0 : (code ?? 0)));
