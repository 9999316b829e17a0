#!/usr/bin/env node
// Container health checks of the NestJS tiers, with nothing but Node.js (the runtime images
// have no curl or wget):
//
//   node healthcheck.mjs http http://127.0.0.1:8080/health
//       healthy when the URL answers 200 within 3 s (the control plane's /health is 200 only
//       while PostgreSQL and NATS both answer)
//   node healthcheck.mjs control-plane
//       the same for the control plane's own /health (LQ_HTTP_HOST and LQ_HTTP_PORT)
//   node healthcheck.mjs nats
//       healthy when this network namespace holds an established TCP connection to one of the
//       NATS_URL ports (the node daemon has no HTTP endpoint; it is of no use without NATS)
//
// Exit 0 healthy, 1 unhealthy (Docker's contract), with one line saying why.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const TIMEOUT_MS = 3000;
const TCP_ESTABLISHED = '01';

async function http(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = (await res.text()).slice(0, 200);
    return [res.status === 200, `${url}: ${res.status} ${body}`];
  } catch (err) {
    const cause = err?.cause ? ` (${err.cause.code ?? err.cause.message})` : '';
    return [false, `${url}: ${err?.message ?? String(err)}${cause}`];
  }
}

/** Remote ports of established TCP connections, from /proc/net/tcp and tcp6 (hex fields). */
function establishedRemotePorts(procNetTcp) {
  const ports = new Set();
  for (const line of procNetTcp.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const remote = fields[2];
    if (remote && fields[3] === TCP_ESTABLISHED) {
      ports.add(Number.parseInt(remote.slice(remote.lastIndexOf(':') + 1), 16));
    }
  }
  return ports;
}

function natsPorts(natsUrl) {
  return (natsUrl || 'nats://127.0.0.1:4222')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => Number(new URL(s).port || 4222));
}

function nats(env) {
  const wanted = natsPorts(env.NATS_URL);
  let table = '';
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      table += readFileSync(file, 'utf8');
    } catch {
      // no IPv6 in this namespace
    }
  }
  const established = establishedRemotePorts(table);
  const hit = wanted.find((p) => established.has(p));
  return hit === undefined
    ? [false, `no established connection to a NATS port (${wanted.join(', ')})`]
    : [true, `connected to NATS (port ${hit})`];
}

/** The control plane's /health from its own LQ_HTTP_HOST and LQ_HTTP_PORT. */
function controlPlaneHealthUrl(env) {
  const host = env.LQ_HTTP_HOST || '0.0.0.0';
  const local = ['0.0.0.0', '::', '[::]'].includes(host) ? '127.0.0.1' : host;
  return `http://${local.includes(':') && !local.startsWith('[') ? `[${local}]` : local}:${env.LQ_HTTP_PORT || 8080}/health`;
}

async function main(argv, env) {
  const [mode, url] = argv;
  if (mode === 'http' && url) {
    return http(url);
  }
  if (mode === 'control-plane') {
    return http(controlPlaneHealthUrl(env));
  }
  if (mode === 'nats') {
    return nats(env);
  }
  return [false, 'usage: healthcheck.mjs http URL | control-plane | nats'];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2), process.env).then(
    ([ok, message]) => {
      process.stdout.write(`${message}\n`);
      process.exit(ok ? 0 : 1);
    },
    (err) => {
      process.stdout.write(`unhealthy: ${err?.message ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
