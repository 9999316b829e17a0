#!/usr/bin/env node
// Signs an agent release folder (what `npm run package` writes into dist/packages): for each
// plain executable it lists in SHA256SUMS (limiquantix-agent-<target>), an Ed25519 signature over
// the release statement of PROTOCOL.md §10, written with the file's target, sha256 and size into
// release-manifest.json. The control plane offers only releases with a manifest
// (`lqctl agent release import DIR`), and the agents verify the signature before swapping.
//
//   node scripts/sign-agent-release.mjs DIR --key release-key.pem
//   openssl genpkey -algorithm ed25519 -out release-key.pem    # a new release key
//   node scripts/sign-agent-release.mjs --public-key release-key.pem   # its public key (base64)
import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const PREFIX = 'limiquantix-agent-';
// The release statement (PROTOCOL.md §10; libs/proto/src/release/release-signature.ts).
const statement = (a) =>
  Buffer.from(
    `limiquantix-agent-release/v1\n${a.version}\n${a.target}\n${a.sha256}\n${a.size}\n`,
    'utf8',
  );

function fail(message) {
  process.stderr.write(`sign-agent-release: ${message}\n`);
  process.exit(2);
}

function key(file) {
  const k = createPrivateKey(readFileSync(file));
  if (k.asymmetricKeyType !== 'ed25519') {
    fail(`${file} is not an Ed25519 key (openssl genpkey -algorithm ed25519)`);
  }
  return k;
}

const { values, positionals } = parseArgs({
  options: { key: { type: 'string' }, 'public-key': { type: 'string' } },
  allowPositionals: true,
});
if (values['public-key']) {
  const spki = createPublicKey(key(values['public-key'])).export({ format: 'der', type: 'spki' });
  process.stdout.write(`${spki.subarray(spki.length - 32).toString('base64')}\n`);
  process.exit(0);
}
const [dir] = positionals;
if (!dir || !values.key) {
  fail('usage: sign-agent-release.mjs DIR --key KEY.pem | --public-key KEY.pem');
}
const privateKey = key(values.key);
const { version } = JSON.parse(readFileSync(join(dir, 'release.json'), 'utf8'));
const artifacts = [];
for (const line of readFileSync(join(dir, 'SHA256SUMS'), 'utf8').split('\n')) {
  const m = /^([0-9a-f]{64}) [ *](limiquantix-agent-[a-z0-9-]+)$/.exec(line);
  if (!m) {
    continue;
  }
  const [, listed, file] = m;
  const bytes = readFileSync(join(dir, file));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== listed) {
    fail(`${file}: sha256 ${sha256}, SHA256SUMS says ${listed}`);
  }
  const a = {
    target: file.slice(PREFIX.length),
    file,
    sha256,
    size: statSync(join(dir, file)).size,
  };
  artifacts.push({
    ...a,
    signature: sign(null, statement({ ...a, version }), privateKey).toString('base64'),
  });
}
if (artifacts.length === 0) {
  fail(`${dir}/SHA256SUMS lists no ${PREFIX}<target> executable`);
}
const out = join(dir, 'release-manifest.json');
writeFileSync(`${out}.tmp`, `${JSON.stringify({ version, artifacts }, null, 2)}\n`);
renameSync(`${out}.tmp`, out);
process.stdout.write(`${out}: ${artifacts.map((a) => a.target).join(', ')}\n`);
