#!/bin/sh
# The control plane's guest-request signing key (PROTOCOL.md §9, Signed requests): an Ed25519
# key both replicas sign with (deploy/keys/signing.key, mounted read-only), and its public half,
# which every node daemon trusts (LQ_CONTROL_PLANE_KEYS in deploy/.env or its systemd env file).
#
#   deploy/keys/make-signing-key.sh [DIR]       # default: this script's directory
#
# Idempotent: an existing key is kept and its public key printed again. Rotation: make a new
# key beside the old one (e.g. DIR=deploy/keys/next), add its public key to every node daemon
# (LQ_CONTROL_PLANE_KEYS takes several, comma-separated), restart them, then swap the files and
# restart the replicas, then drop the old public key.
set -eu
dir=${1:-$(dirname "$0")}
key="$dir/signing.key"
mkdir -p "$dir"
if [ ! -s "$key" ]; then
  umask 077
  openssl genpkey -algorithm ed25519 -out "$key.tmp"
  chmod 600 "$key.tmp"
  # The control plane's image runs as node (uid 1000): it must be able to read its key.
  if [ "$(id -u)" = 0 ]; then chown 1000:1000 "$key.tmp"; fi
  mv "$key.tmp" "$key"
  echo "made $key" >&2
fi
public=$(openssl pkey -in "$key" -pubout -outform DER | tail -c 32 | base64)
echo "LQ_CONTROL_PLANE_KEYS=$public"
