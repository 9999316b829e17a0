#!/usr/bin/env node
// Signs an agent release folder (what `npm run package` writes into dist/packages; `npm run
// package` signs it itself through signReleaseFolder): for each plain executable SHA256SUMS
// lists (limiquantix-agent-<target>), an Ed25519 signature over the release statement of
// PROTOCOL.md §10, written with the file's target, sha256 and size into release-manifest.json.
// The control plane offers only releases with a manifest (`lqctl agent release import DIR`), and
// the agents verify the signature before swapping.
//
//   node scripts/sign-agent-release.mjs DIR --key release-key.pem
//   openssl genpkey -algorithm ed25519 -out release-key.pem    # a new release key
//   node scripts/sign-agent-release.mjs --public-key release-key.pem   # its public key (base64)
//   node scripts/sign-agent-release.mjs --key-list DIR --key OLD.pem --trust KEY[,KEY…]
//       # key rotation: DIR/release-keys.json naming the keys agents trust from then on, and
//       # DIR/release-keys.json.sig, signed by a key they trust now (README, "Release keys")
import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const PREFIX = 'limiquantix-agent-';
// The release statement (PROTOCOL.md §10; libs/proto/src/release/release-signature.ts).
const statement = (a) =>
  Buffer.from(
    `limiquantix-agent-release/v1\n${a.version}\n${a.target}\n${a.sha256}\n${a.size}\n`,
    'utf8',
  );
// The key-list statement (PROTOCOL.md §10, "Release keys").
const KEY_LIST_PREFIX = 'limiquantix-agent-release-keys/v1\n';

export class SignError extends Error {}

/** An Ed25519 private key from a PEM file or PEM text. */
export function releasePrivateKey(pem, what = 'the release key') {
  let k;
  try {
    k = createPrivateKey(pem);
  } catch (err) {
    throw new SignError(`${what} is not a PEM private key: ${err.message}`);
  }
  if (k.asymmetricKeyType !== 'ed25519') {
    throw new SignError(`${what} is not an Ed25519 key (openssl genpkey -algorithm ed25519)`);
  }
  return k;
}

/** The base64 raw public key agents and LQ_AGENT_RELEASE_KEYS take. */
export function publicKeyOf(privateKey) {
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32).toString('base64');
}

/** Writes DIR/release-manifest.json; returns the targets signed. */
export function signReleaseFolder(dir, privateKey) {
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
      throw new SignError(`${file}: sha256 ${sha256}, SHA256SUMS says ${listed}`);
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
    throw new SignError(`${dir}/SHA256SUMS lists no ${PREFIX}<target> executable`);
  }
  const out = join(dir, 'release-manifest.json');
  writeFileSync(`${out}.tmp`, `${JSON.stringify({ version, artifacts }, null, 2)}\n`);
  renameSync(`${out}.tmp`, out);
  return artifacts.map((a) => a.target);
}

/** Writes DIR/release-keys.json (the keys trusted from now on) and its signature by `privateKey`. */
export function signKeyList(dir, privateKey, keys, issuedAt = new Date()) {
  for (const k of keys) {
    if (Buffer.from(k, 'base64').length !== 32) {
      throw new SignError(`${k} is not a base64 Ed25519 public key of 32 bytes`);
    }
  }
  const list = Buffer.from(
    `${JSON.stringify({ keys, issued_at: issuedAt.toISOString() }, null, 2)}\n`,
    'utf8',
  );
  const signature = sign(
    null,
    Buffer.concat([Buffer.from(KEY_LIST_PREFIX, 'utf8'), list]),
    privateKey,
  );
  writeFileSync(join(dir, 'release-keys.json'), list);
  writeFileSync(join(dir, 'release-keys.json.sig'), `${signature.toString('base64')}\n`);
}

function main() {
  const fail = (message) => {
    process.stderr.write(`sign-agent-release: ${message}\n`);
    process.exit(2);
  };
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        key: { type: 'string' },
        'public-key': { type: 'string' },
        'key-list': { type: 'string' },
        trust: { type: 'string' },
      },
      allowPositionals: true,
    });
  } catch (err) {
    fail(err.message);
  }
  const { values, positionals } = parsed;
  try {
    if (values['public-key']) {
      const k = releasePrivateKey(readFileSync(values['public-key']), values['public-key']);
      process.stdout.write(`${publicKeyOf(k)}\n`);
      return;
    }
    if (values['key-list']) {
      if (!values.key || !values.trust) {
        fail('usage: sign-agent-release.mjs --key-list DIR --key OLD.pem --trust KEY[,KEY…]');
      }
      const keys = values.trust
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean);
      signKeyList(
        values['key-list'],
        releasePrivateKey(readFileSync(values.key), values.key),
        keys,
      );
      process.stdout.write(
        `${join(values['key-list'], 'release-keys.json')}: ${keys.length} key(s)\n`,
      );
      return;
    }
    const [dir] = positionals;
    if (!dir || !values.key) {
      fail(
        'usage: sign-agent-release.mjs DIR --key KEY.pem | --public-key KEY.pem | --key-list DIR --key KEY.pem --trust KEYS',
      );
    }
    const targets = signReleaseFolder(dir, releasePrivateKey(readFileSync(values.key), values.key));
    process.stdout.write(`${join(dir, 'release-manifest.json')}: ${targets.join(', ')}\n`);
  } catch (err) {
    if (err instanceof SignError || err.code === 'ENOENT') {
      fail(err.message);
    }
    throw err;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main();
}
