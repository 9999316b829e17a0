#!/bin/sh
# A private CA and the TLS certificates of a first install (deploy/README.md, "TLS"): one for the
# NATS servers (client connections and the routes between them), one for the reverse proxy, one
# for PostgreSQL. Needs only openssl (1.1.1 or 3).
#
#   deploy/tls/make-certs.sh                                   # into deploy/tls/
#   deploy/tls/make-certs.sh --nats-host nats.example.com --nats-host 192.0.2.10 \
#                            --proxy-host lq.example.com
#
# Idempotent: what exists is kept. A certificate is issued again only when this CA signed it and
# its names differ from the ones asked for, or it expires within 30 days. Certificates this CA
# did not sign (the operator's own) are never touched. Private keys are 0600 from the moment
# they exist; run as root, each service's key is handed to the user its container runs as
# (--owners), since a 0600 key is readable by its owner only.
#
# Layout (what docker-compose.yml mounts; bring your own certificates in the same places):
#   ca/ca.crt, ca/ca.key                 the CA (keep ca.key offline once the install is done)
#   nats/ca.crt, nats/tls.crt, nats/tls.key           nats-1..3: clients and routes
#   proxy/ca.crt, proxy/tls.crt, proxy/tls.key        nginx: HTTPS and gRPC over TLS
#   postgres/ca.crt, postgres/tls.crt, postgres/tls.key
#   clients/<name>/ca.crt, tls.crt, tls.key          --client NAME: a client certificate (CN=NAME),
#                                                    for NATS servers rendered --verify-clients
#                                                    (NATS_TLS_CERT, NATS_TLS_KEY) or PostgreSQL
set -eu

usage() {
  cat <<'EOF'
usage: make-certs.sh [--out DIR] [--nats-host NAME]... [--proxy-host NAME]...
                     [--postgres-host NAME]... [--client NAME]... [--days N] [--owners LIST]
  --out DIR            where to write (default: this script's directory)
  --nats-host NAME     another DNS name or IP address of the NATS servers, e.g. the address
                       the node daemons of other hosts use (LQ_NATS_PUBLISH_ADDR); repeatable
  --proxy-host NAME    another name or address clients use for the proxy; repeatable
  --postgres-host NAME another name or address of PostgreSQL; repeatable
  --client NAME        also a client certificate with this common name (lq-node-kvm-01, say),
                       in clients/NAME/; repeatable
  --days N             validity of the service certificates (default 825; the CA: 3650)
  --owners LIST        service=uid pairs the keys are given to when run as root
                       (default nats=65534,proxy=101,postgres=999: the compose file's users;
                       '' to leave them to the invoking user)
Always included: nats-1 nats-2 nats-3 (NATS), postgres (PostgreSQL), localhost and 127.0.0.1.
Also read, comma-separated: LQ_TLS_NATS_HOSTS, LQ_TLS_PROXY_HOSTS, LQ_TLS_POSTGRES_HOSTS.
EOF
}

die() {
  echo "make-certs: $*" >&2
  exit 2
}

OUT=$(cd "$(dirname "$0")" && pwd)
DAYS=825
CA_DAYS=3650
OWNERS=nats=65534,proxy=101,postgres=999
NATS_HOSTS=${LQ_TLS_NATS_HOSTS:-}
PROXY_HOSTS=${LQ_TLS_PROXY_HOSTS:-}
POSTGRES_HOSTS=${LQ_TLS_POSTGRES_HOSTS:-}
CLIENTS=

while [ $# -gt 0 ]; do
  case $1 in
  --out | --nats-host | --proxy-host | --postgres-host | --client | --days | --owners)
    [ $# -ge 2 ] || die "$1 needs a value"
    case $1 in
    --out) OUT=$2 ;;
    --nats-host) NATS_HOSTS="$NATS_HOSTS,$2" ;;
    --proxy-host) PROXY_HOSTS="$PROXY_HOSTS,$2" ;;
    --postgres-host) POSTGRES_HOSTS="$POSTGRES_HOSTS,$2" ;;
    --client)
      case $2 in '' | *[!A-Za-z0-9_.-]*) die "--client: '$2' must be 1 or more of A-Z a-z 0-9 _ . -" ;; esac
      CLIENTS="$CLIENTS $2"
      ;;
    --days) DAYS=$2 ;;
    --owners) OWNERS=$2 ;;
    esac
    shift 2
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    die "unknown argument $1"
    ;;
  esac
done

command -v openssl >/dev/null 2>&1 ||
  die "openssl is not installed (Debian/Ubuntu: sudo apt-get install openssl)"
case $DAYS in '' | *[!0-9]*) die "--days must be a number of days (got '$DAYS')" ;; esac
[ "$DAYS" -ge 1 ] && [ "$DAYS" -le 3650 ] || die "--days must be 1 to 3650 (got $DAYS)"

# subjectAltName for: default names + the given comma-separated list; refuses odd names.
san() {
  list=$1
  out=
  old_ifs=$IFS
  IFS=,
  for name in $list; do
    [ -n "$name" ] || continue
    case $name in
    *[!A-Za-z0-9.:_-]*) die "'$name' is not a host name or IP address" ;;
    esac
    if printf '%s' "$name" | grep -Eq '^[0-9]+(\.[0-9]+){3}$|:'; then
      entry="IP:$name"
    else
      entry="DNS:$name"
    fi
    case ",$out," in *",$entry,"*) ;; *) out="$out,$entry" ;; esac
  done
  IFS=$old_ifs
  printf '%s' "${out#,}"
}

# The names a certificate holds, as san() writes them, sorted.
names_of() {
  openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null |
    sed -n '2,$p' | tr ',' '\n' | sed 's/^ *//; s/^IP Address:/IP:/' | grep -v '^$' | sort | tr '\n' ','
}

sorted() {
  printf '%s' "$1" | tr ',' '\n' | grep -v '^$' | sort | tr '\n' ','
}

# A new EC P-256 key, 0600 from its creation.
new_key() {
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) ||
    die "openssl could not write a key to $1"
  chmod 600 "$1"
}

# Checked before anything is written (san() dies on a bad name; in $(…) that ends only the
# subshell, so each assignment's status stops the script under set -e).
NATS_SAN=$(san "nats-1,nats-2,nats-3,localhost,127.0.0.1,$NATS_HOSTS")
PROXY_SAN=$(san "localhost,127.0.0.1,$PROXY_HOSTS")
POSTGRES_SAN=$(san "postgres,localhost,127.0.0.1,$POSTGRES_HOSTS")

mkdir -p "$OUT/ca"
chmod 700 "$OUT/ca"
CA_CRT=$OUT/ca/ca.crt
CA_KEY=$OUT/ca/ca.key
if [ -f "$CA_CRT" ]; then
  echo "kept     ca/ca.crt"
  [ -f "$CA_KEY" ] || echo "         (no ca/ca.key: certificates below are only checked, not issued)"
else
  [ ! -f "$CA_KEY" ] || die "ca/ca.key exists without ca/ca.crt: move it away or put its certificate there"
  new_key "$CA_KEY"
  openssl req -x509 -new -key "$CA_KEY" -out "$CA_CRT" -days "$CA_DAYS" -sha256 \
    -subj "/O=LimiQuantix/CN=LimiQuantix deployment CA $(date -u +%Y%m%d%H%M%S)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" ||
    die "openssl could not create the CA"
  chmod 644 "$CA_CRT"
  echo "created  ca/ca.crt and ca/ca.key (0600)"
fi

# issue DIR COMMON_NAME SAN [EXTENDED_KEY_USAGE]   (DIR relative to --out)
issue() {
  svc=$1
  cn=$2
  want=$3
  eku=${4:-serverAuth,clientAuth}
  dir=$OUT/$svc
  crt=$dir/tls.crt
  key=$dir/tls.key
  mkdir -p "$dir"
  chmod 755 "$dir"
  if [ -f "$crt" ]; then
    if ! openssl verify -CAfile "$CA_CRT" "$crt" >/dev/null 2>&1; then
      echo "kept     $svc/tls.crt (not signed by ca/ca.crt: yours, left alone)"
      return
    fi
    if [ "$(names_of "$crt")" = "$(sorted "$want")" ] && [ -f "$key" ] &&
      openssl x509 -in "$crt" -noout -checkend 2592000 >/dev/null 2>&1; then
      echo "kept     $svc/tls.crt (${want:-CN=$cn})"
      cp "$CA_CRT" "$dir/ca.crt"
      return
    fi
    [ -f "$CA_KEY" ] || die "$svc/tls.crt must be issued again (names or expiry) but ca/ca.key is not here"
    echo "renewing $svc/tls.crt: names or expiry differ from what is asked"
  fi
  [ -f "$CA_KEY" ] || die "cannot issue $svc/tls.crt without ca/ca.key"
  new_key "$key.new"
  ext=$(mktemp)
  csr=$(mktemp)
  # serverAuth for clients; clientAuth too, since NATS servers present it to each other (routes)
  # and PostgreSQL or NATS may verify clients with the same CA.
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=$eku" >"$ext"
  [ -z "$want" ] || printf '%s\n' "subjectAltName=$want" >>"$ext"
  openssl req -new -key "$key.new" -out "$csr" -subj "/O=LimiQuantix/CN=$cn" &&
    openssl x509 -req -in "$csr" -CA "$CA_CRT" -CAkey "$CA_KEY" -out "$crt.new" -days "$DAYS" \
      -sha256 -set_serial "0x$(openssl rand -hex 16)" -extfile "$ext" 2>/dev/null ||
    {
      rm -f "$ext" "$csr" "$key.new" "$crt.new"
      die "openssl could not issue $svc/tls.crt"
    }
  rm -f "$ext" "$csr"
  chmod 644 "$crt.new"
  mv -f "$key.new" "$key"
  mv -f "$crt.new" "$crt"
  cp "$CA_CRT" "$dir/ca.crt"
  chmod 644 "$dir/ca.crt"
  echo "issued   $svc/tls.crt (${want:-CN=$cn}) and $svc/tls.key (0600)"
}

issue nats nats "$NATS_SAN"
issue proxy proxy "$PROXY_SAN"
issue postgres postgres "$POSTGRES_SAN"
for client in $CLIENTS; do
  mkdir -p "$OUT/clients"
  issue "clients/$client" "$client" "" clientAuth
done

# Hand each key to the user its container runs as (0600: its owner alone can read it).
if [ "$(id -u)" = 0 ] && [ -n "$OWNERS" ]; then
  old_ifs=$IFS
  IFS=,
  for pair in $OWNERS; do
    svc=${pair%%=*}
    uid=${pair#*=}
    case $uid in '' | *[!0-9]*) die "--owners: '$pair' is not service=uid" ;; esac
    [ -f "$OUT/$svc/tls.key" ] || die "--owners: no $svc/tls.key"
    chown "$uid" "$OUT/$svc/tls.key"
  done
  IFS=$old_ifs
  echo "owners   $OWNERS (tls.key of each)"
elif [ -n "$OWNERS" ]; then
  echo "note     not root: give each tls.key to its container's user before docker compose up:"
  echo "         sudo chown 65534 nats/tls.key; sudo chown 101 proxy/tls.key; sudo chown 999 postgres/tls.key"
fi
