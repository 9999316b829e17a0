#!/usr/bin/env node
// Renders the NATS server configuration of the platform (PROTOCOL.md §9, README.md beside this
// file): auth.conf, one user for the control plane and one per node daemon, each with the least
// permissions its role needs; and nats-server.conf, the single-server config that includes it.
// Plain Node.js, no dependencies, so it runs on any host before anything is built.
//
//   node deploy/nats/render-nats-conf.mjs node-1 node-2            # auth.conf to stdout
//   LQ_NATS_NODES=node-1,node-2 node deploy/nats/render-nats-conf.mjs
//   node deploy/nats/render-nats-conf.mjs --out /etc/nats node-1   # writes both files
//
// The checked-in deploy/nats/{auth,nats-server}.conf are this script's output for the nodes of
// CHECKED_IN_NODE_IDS; test/system/nats-permissions.spec.ts fails when they drift.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The node ids the checked-in files are rendered for. */
export const CHECKED_IN_NODE_IDS = ['node-1', 'node-2', 'node-3'];

export const CONTROL_PLANE_USER = 'lq-control-plane';
export const CONTROL_PLANE_PASSWORD_VAR = 'LQ_NATS_PASSWORD_CONTROL_PLANE';

/**
 * How long a node daemon may take to answer a guest request. nats-server's default for
 * `allow_responses: true` is 2 minutes, after which the reply is refused as a permissions
 * violation; guest operations may run up to LQ_GUEST_TIMEOUT_MAX_SECONDS (control plane,
 * default 1 h) and LQ_MAX_TIMEOUT_MS (node daemon, default 24 h).
 */
export const DEFAULT_RESPONSES_EXPIRE = '24h';

/**
 * How many messages a node daemon may publish to one request's reply subject: a reply larger
 * than the server's max_payload goes in parts (PROTOCOL.md §9 Reply parts). 128 parts of ~1 MB
 * cover the largest agent frame (max_frame_bytes at most 64 MiB) at the default max_payload.
 */
export const DEFAULT_RESPONSES_MAX = 128;

/** PROTOCOL.md §9: node ids are subject tokens. */
const NODE_ID = /^[A-Za-z0-9_-]{1,128}$/;
const DURATION = /^[1-9][0-9]*(ms|s|m|h)$/;

export class RenderError extends Error {
  constructor(message) {
    super(message);
    this.name = 'RenderError';
  }
}

/** The NATS user of a node daemon (its NATS_USER). */
export function nodeUser(nodeId) {
  return `lq-node-${nodeId}`;
}

/** The environment variable of nats-server holding a node daemon's password (or bcrypt hash). */
export function nodePasswordVar(nodeId) {
  return `LQ_NATS_PASSWORD_NODE_${nodeId.toUpperCase().replace(/-/g, '_')}`;
}

/** The permissions of each role, by subject (PROTOCOL.md §9). */
export function nodePermissions(nodeId) {
  return {
    publish: [
      `lq.v1.node.${nodeId}.heartbeat`,
      `lq.v1.events.${nodeId}.>`,
      `lq.v1.telemetry.${nodeId}.>`,
      // Streamed output of the executions it runs: under its own subjects, so no other node
      // can publish output for them (the control plane listens on the running node's only).
      `lq.v1.node.${nodeId}.exec.*.output`,
    ],
    subscribe: [`lq.v1.node.${nodeId}.>`],
  };
}

/**
 * The JetStream stream of signed audit checkpoints and its subject (the control plane's
 * LQ_AUDIT_CHECKPOINT_STREAM and LQ_AUDIT_CHECKPOINT_SUBJECT defaults).
 */
export const AUDIT_CHECKPOINT_STREAM = 'LQ_AUDIT_CHECKPOINTS';
export const AUDIT_CHECKPOINT_SUBJECT = 'lq.v1.audit.checkpoints';

/**
 * The JetStream stream that holds execution output until the replica driving the execution has
 * read it (the control plane's LQ_EXEC_OUTPUT_STREAM default). The control plane creates it and
 * reads it with ordered consumers; it expires output by age and size, never by purging.
 */
export const EXEC_OUTPUT_STREAM = 'LQ_EXEC_OUTPUT';

export const CONTROL_PLANE_PERMISSIONS = {
  publish: [
    'lq.v1.node.*.guest.>',
    // Audit checkpoints: append, read the latest, create the stream when missing (with
    // deny_delete and deny_purge); never purge, delete or update it (denied below).
    AUDIT_CHECKPOINT_SUBJECT,
    `$JS.API.STREAM.INFO.${AUDIT_CHECKPOINT_STREAM}`,
    `$JS.API.STREAM.CREATE.${AUDIT_CHECKPOINT_STREAM}`,
    `$JS.API.STREAM.MSG.GET.${AUDIT_CHECKPOINT_STREAM}`,
    // Execution output: create the stream when missing, read it with ordered consumers.
    '$JS.API.INFO',
    `$JS.API.STREAM.INFO.${EXEC_OUTPUT_STREAM}`,
    `$JS.API.STREAM.CREATE.${EXEC_OUTPUT_STREAM}`,
    `$JS.API.CONSUMER.CREATE.${EXEC_OUTPUT_STREAM}`,
    `$JS.API.CONSUMER.CREATE.${EXEC_OUTPUT_STREAM}.>`,
    `$JS.API.CONSUMER.INFO.${EXEC_OUTPUT_STREAM}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${EXEC_OUTPUT_STREAM}.>`,
    `$JS.API.CONSUMER.DELETE.${EXEC_OUTPUT_STREAM}.>`,
  ],
  publishDeny: [
    '$JS.API.STREAM.PURGE.>',
    '$JS.API.STREAM.DELETE.>',
    '$JS.API.STREAM.MSG.DELETE.>',
    '$JS.API.STREAM.UPDATE.>',
  ],
  subscribe: [
    'lq.v1.node.*.heartbeat',
    'lq.v1.events.>',
    'lq.v1.telemetry.>',
    'lq.v1.node.*.exec.*.output',
    '_INBOX.>',
  ],
};

/** Checks the node ids: subject tokens, no duplicates, no two sharing a password variable. */
export function checkNodeIds(nodeIds) {
  if (nodeIds.length === 0) {
    throw new RenderError('no node ids given (arguments, or LQ_NATS_NODES=node-1,node-2)');
  }
  const vars = new Map();
  for (const id of nodeIds) {
    if (!NODE_ID.test(id)) {
      throw new RenderError(
        `node id ${JSON.stringify(id)} is not a subject token (1-128 of A-Z a-z 0-9 _ -)`,
      );
    }
    const v = nodePasswordVar(id);
    if (vars.has(v)) {
      throw new RenderError(
        vars.get(v) === id
          ? `node id ${id} is given twice`
          : `node ids ${vars.get(v)} and ${id} would share the password variable ${v}`,
      );
    }
    vars.set(v, id);
  }
}

const list = (subjects) => `[${subjects.map((s) => JSON.stringify(s)).join(', ')}]`;

/** auth.conf: the authorization block, for the given node ids. */
export function renderAuthConf(
  nodeIds,
  { responsesExpire = DEFAULT_RESPONSES_EXPIRE, responsesMax = DEFAULT_RESPONSES_MAX } = {},
) {
  checkNodeIds(nodeIds);
  if (!Number.isInteger(responsesMax) || responsesMax < 1 || responsesMax > 100_000) {
    throw new RenderError(
      `responses max ${JSON.stringify(responsesMax)} must be a whole number from 1 to 100000`,
    );
  }
  if (!DURATION.test(responsesExpire)) {
    throw new RenderError(
      `responses expiry ${JSON.stringify(responsesExpire)} is not a duration like 90s, 30m or 24h`,
    );
  }
  const cp = CONTROL_PLANE_PERMISSIONS;
  const nodes = nodeIds.map((id) => {
    const p = nodePermissions(id);
    return `    # Node daemon ${id}: NATS_USER=${nodeUser(id)}
    {
      user: ${JSON.stringify(nodeUser(id))}
      password: $${nodePasswordVar(id)}
      permissions: {
        # its own heartbeat, agent events, telemetry and execution output; nothing else (no guest
        # operations)
        publish: { allow: ${list(p.publish)} }
        # the guest operations addressed to it
        subscribe: { allow: ${list(p.subscribe)} }
        # and the reply to each request it received (in parts when large), within the longest
        # guest timeout
        allow_responses: { max: ${responsesMax}, expires: "${responsesExpire}" }
      }
    }`;
  });
  return `# NATS authorization of the LimiQuantix platform (PROTOCOL.md §9), included by
# nats-server.conf (and by each server's config in a cluster).
#
# GENERATED by deploy/nats/render-nats-conf.mjs for the nodes: ${nodeIds.join(' ')}
# Do not edit by hand; re-render it (deploy/nats/README.md).
#
# Passwords are not in this file: each \`$VAR\` below is read from nats-server's environment
# when it starts, and the server refuses to start if one is missing. nats-server parses the
# value as a config value, so write a bcrypt hash (preferred) with double quotes inside the
# variable, e.g. LQ_NATS_PASSWORD_NODE_NODE_1='"$2a$11$..."'; a plain password likewise, or as
# a bare word that does not start with a digit. The clients get the plain password
# (NATS_USER / NATS_PASSWORD).
#
# To add a node (say node-4):
#   1. node deploy/nats/render-nats-conf.mjs --out /etc/nats <every node id> node-4
#   2. add LQ_NATS_PASSWORD_NODE_NODE_4 to nats-server's environment (a bcrypt hash of a new
#      random password) and restart nats-server; a reload does not see new environment
#      variables (one server at a time in a cluster)
#   3. start the node daemon with LQ_NODE_ID=node-4, NATS_USER=lq-node-node-4 and
#      NATS_PASSWORD=<the password>
# Removing a node is the same without it; its connection is refused from the restart on.

authorization {
  # A user without permissions of its own may do nothing (there is none; this guards edits).
  default_permissions: {
    publish: { deny: [">"] }
    subscribe: { deny: [">"] }
  }

  users: [
    # The control plane (every replica): NATS_USER=${CONTROL_PLANE_USER}
    {
      user: ${JSON.stringify(CONTROL_PLANE_USER)}
      password: $${CONTROL_PLANE_PASSWORD_VAR}
      permissions: {
        # guest operations to any node (request/reply), audit checkpoints (append and read
        # only: the stream's messages cannot be purged or deleted by it) and reading execution
        # output from its stream, and nothing else
        publish: { allow: ${list(cp.publish)}, deny: ${list(cp.publishDeny)} }
        # what node daemons publish, and the replies to its own requests
        subscribe: { allow: ${list(cp.subscribe)} }
      }
    }
${nodes.join('\n')}
  ]
}
`;
}

/**
 * Where the NATS containers of deploy/docker-compose.yml find their certificate, key and CA
 * (deploy/tls/nats, written by deploy/tls/make-certs.sh, mounted read-only).
 */
export const DEPLOY_TLS = {
  certFile: '/etc/nats-tls/tls.crt',
  keyFile: '/etc/nats-tls/tls.key',
  caFile: '/etc/nats-tls/ca.crt',
  verifyClients: false,
};

const PATH = /^[A-Za-z0-9_./@+-]{1,1024}$/;

/** Checks TLS options; returns them with defaults, or null for no TLS. */
export function checkTls(tls) {
  if (tls === null || tls === false) {
    return null;
  }
  const t = { ...DEPLOY_TLS, ...tls };
  for (const key of ['certFile', 'keyFile', 'caFile']) {
    if (typeof t[key] !== 'string' || !PATH.test(t[key])) {
      throw new RenderError(`tls.${key} ${JSON.stringify(t[key])} is not a file path`);
    }
  }
  if (typeof t.verifyClients !== 'boolean') {
    throw new RenderError('tls.verifyClients must be true or false');
  }
  return t;
}

/**
 * A nats-server `tls {}` block, indented by `indent`. `verify` asks each peer for a certificate
 * of the CA (routes always; clients with verifyClients).
 */
export function renderTlsBlock(tls, { indent = '', verify = tls.verifyClients } = {}) {
  return [
    'tls {',
    `  cert_file: "${tls.certFile}"`,
    `  key_file: "${tls.keyFile}"`,
    `  ca_file: "${tls.caFile}"`,
    `  verify: ${verify}`,
    '  timeout: 2',
    '}',
  ]
    .map((l) => indent + l)
    .join('\n');
}

/** The client-port TLS of a server config (also the cluster's), with why it is there. */
export function renderClientTls(tls) {
  if (tls === null) {
    return `# No TLS: clients connect in the clear. Only for a server on loopback (npm start).`;
  }
  return `# Every client connection uses TLS; a client that does not is refused. Clients verify this
# certificate against the deployment's CA (NATS_TLS_CA) and log in as their user (auth.conf).
# verify: true also asks each client for a certificate of that CA (NATS_TLS_CERT, NATS_TLS_KEY).
${renderTlsBlock(tls)}`;
}

const LISTEN = /^[A-Za-z0-9_.:[\]-]{1,253}:[0-9]{1,5}$/;

/**
 * nats-server.conf: one server with the authorization of auth.conf, TLS on its client port
 * (DEPLOY_TLS unless told otherwise; `tls: null` only for a server on loopback).
 */
export function renderServerConf({ listen = '0.0.0.0:4222', tls = DEPLOY_TLS } = {}) {
  if (!LISTEN.test(listen)) {
    throw new RenderError(`listen ${JSON.stringify(listen)} is not host:port`);
  }
  const t = checkTls(tls);
  return `# NATS server of the LimiQuantix platform (single server; a cluster's servers include the same
# auth.conf). GENERATED by deploy/nats/render-nats-conf.mjs; see deploy/nats/README.md.
#
#   nats-server -c /etc/nats/nats-server.conf   # with the LQ_NATS_PASSWORD_* variables set

listen: "${listen}"

# Guest file transfers move in chunks of at most this (NodeHeartbeat.file_chunk_max_bytes).
max_payload: 1MB

${renderClientTls(t)}

# Users and permissions: the control plane and one user per node daemon.
include ./auth.conf
`;
}

function parseArgs(argv, env) {
  const ids = [];
  let out;
  let responsesExpire = env.LQ_NATS_RESPONSES_EXPIRE || DEFAULT_RESPONSES_EXPIRE;
  let responsesMax = env.LQ_NATS_RESPONSES_MAX || String(DEFAULT_RESPONSES_MAX);
  let tls = { ...DEPLOY_TLS };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (
      arg === '--out' ||
      arg === '--responses-expire' ||
      arg === '--responses-max' ||
      arg === '--tls-dir'
    ) {
      const value = argv[++i];
      if (value === undefined) {
        throw new RenderError(`${arg} needs a value`);
      }
      if (arg === '--out') {
        out = value;
      } else if (arg === '--tls-dir') {
        if (tls === null) {
          throw new RenderError('--tls-dir and --no-tls exclude each other');
        }
        tls = { ...tls, ...tlsFilesIn(value) };
      } else if (arg === '--responses-max') {
        responsesMax = value;
      } else {
        responsesExpire = value;
      }
    } else if (arg === '--no-tls') {
      tls = null;
    } else if (arg === '--verify-clients') {
      if (tls === null) {
        throw new RenderError('--verify-clients needs TLS');
      }
      tls = { ...tls, verifyClients: true };
    } else if (arg === '-h' || arg === '--help') {
      return { help: true };
    } else if (arg.startsWith('-')) {
      throw new RenderError(`unknown option ${arg}`);
    } else {
      ids.push(...arg.split(',').filter(Boolean));
    }
  }
  if (ids.length === 0 && env.LQ_NATS_NODES) {
    ids.push(
      ...env.LQ_NATS_NODES.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
  }
  if (!/^[0-9]{1,6}$/.test(responsesMax)) {
    throw new RenderError(`--responses-max ${JSON.stringify(responsesMax)} is not a number`);
  }
  return { ids, out, responsesExpire, responsesMax: Number(responsesMax), tls, help: false };
}

/** make-certs.sh's layout: DIR/tls.crt, DIR/tls.key, DIR/ca.crt. */
export function tlsFilesIn(dir) {
  const d = dir.replace(/\/+$/, '') || '/';
  return { certFile: `${d}/tls.crt`, keyFile: `${d}/tls.key`, caFile: `${d}/ca.crt` };
}

const USAGE = `usage: render-nats-conf.mjs [--out DIR] [--responses-expire 24h] [--responses-max 128]
                           [--tls-dir DIR | --no-tls] [--verify-clients] NODE_ID...
  NODE_IDs as arguments (or comma-separated), else from LQ_NATS_NODES=node-1,node-2.
  Without --out, prints auth.conf; with it, writes DIR/auth.conf and DIR/nats-server.conf.
  --responses-expire how long a node may take to reply (LQ_NATS_RESPONSES_EXPIRE)
  --responses-max    messages a node may send per reply: parts of a large one (LQ_NATS_RESPONSES_MAX)
  --tls-dir DIR      where nats-server finds tls.crt, tls.key and ca.crt (default /etc/nats-tls)
  --no-tls           clients connect in the clear (a server on loopback only)
  --verify-clients   clients must also present a certificate of the CA`;

function main() {
  try {
    const args = parseArgs(process.argv.slice(2), process.env);
    if (args.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    const auth = renderAuthConf(args.ids, {
      responsesExpire: args.responsesExpire,
      responsesMax: args.responsesMax,
    });
    if (args.out === undefined) {
      process.stdout.write(auth);
      return;
    }
    writeFileSync(join(args.out, 'auth.conf'), auth);
    writeFileSync(join(args.out, 'nats-server.conf'), renderServerConf({ tls: args.tls }));
    process.stderr.write(`wrote auth.conf and nats-server.conf in ${args.out}\n`);
  } catch (err) {
    if (err instanceof RenderError) {
      process.stderr.write(`render-nats-conf: ${err.message}\n${USAGE}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main();
}
