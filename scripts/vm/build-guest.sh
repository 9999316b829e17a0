#!/usr/bin/env bash
# Builds the LimiQuantix test guest into .vmlab/ (see scripts/vm/README.md): a Debian kernel, an
# initramfs with its virtio modules, busybox-static and the guest agent's linux-amd64 executable
# (what the .deb installs; no Node.js in the guest), and a small ext4 data disk. Debian packages and the repository only; nothing is
# downloaded from anywhere else. Idempotent: a second run with unchanged inputs does nothing.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/vm/build-guest.sh [--install-deps] [--force] [--compress none|gzip|zstd]
                                 [--kernel vmlinux|vmlinuz] [--check]

Builds into $VMLAB (default <repo>/.vmlab):
  vmlinux or vmlinuz   the Debian kernel (linux-image-amd64's current package, via apt-get download)
  initrd.img           the root filesystem (an initramfs; PID 1 is scripts/vm/init)
  data.img             a 64 MiB ext4 data disk (the guest mounts it at /mnt/data)
  guest.json           what was built: kernel version, file names, input hash

  --install-deps  apt-get install the missing packages (otherwise: exit 1 naming them)
  --force         rebuild even when the inputs are unchanged
  --compress C    initrd compression (default none: boots fastest under TCG)
  --kernel K      vmlinux (default when xz is present: boots faster) or vmlinuz
  --check         only check that the tools are present

Environment: VMLAB (output dir), AGENT_EXECUTABLE (default dist/agent/limiquantix-agent-linux-amd64,
from scripts/build-executables.mjs), LQ_GUEST_KERNEL_PKG (pin a linux-image-<version> package).
Needs (Debian packages): qemu-system-x86 busybox-static cpio e2fsprogs xz-utils, plus gzip or zstd
when compressing. Builds run one at a time ($VMLAB/.build.lock).
EOF
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LAB=${VMLAB:-$ROOT/.vmlab}
AGENT_EXECUTABLE=${AGENT_EXECUTABLE:-$ROOT/dist/agent/limiquantix-agent-linux-amd64}
DATA_MB=64
COMP=none
KFORMAT=
INSTALL=0
FORCE=0
CHECK_ONLY=0
# Guest tools copied from this machine (with their libraries), as host-path:guest-path, where
# busybox has no equivalent or a weaker one: shadow's chpasswd (Debian's busybox has none; PAM,
# yescrypt), util-linux setpriv (run-as-user with groups), glibc's getent, and coreutils date
# (busybox's cannot `date -s @SECONDS.FRACTION`).
HOST_TOOLS=(/usr/sbin/chpasswd:/usr/sbin/chpasswd /usr/bin/setpriv:/usr/bin/setpriv
  /usr/bin/getent:/usr/bin/getent /usr/bin/date:/bin/date)
# Busybox applets also linked where Debian's packages put the real tool (the agent's defaults).
EXTRA_LINKS=(sbin/fsfreeze)
PAM_MODULES=(pam_unix.so pam_deny.so pam_permit.so)
# virtio_net: the NIC a network test gives the guest (QEMU user networking, restricted).
MODULES=(virtio_pci virtio_console virtio_blk virtio_rng virtio_net crc32c_generic ext4)

while [ $# -gt 0 ]; do
  case $1 in
    --install-deps) INSTALL=1 ;;
    --force) FORCE=1 ;;
    --check) CHECK_ONLY=1 ;;
    --compress)
      COMP=${2:-}
      shift
      ;;
    --kernel)
      KFORMAT=${2:-}
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
  shift
done
case $COMP in none | gzip | zstd) ;; *)
  echo "build-guest: --compress must be none, gzip or zstd" >&2
  exit 2
  ;;
esac
case $KFORMAT in '' | vmlinux | vmlinuz) ;; *)
  echo "build-guest: --kernel must be vmlinux or vmlinuz" >&2
  exit 2
  ;;
esac

say() { echo "build-guest: $*"; }
die() {
  echo "build-guest: error: $*" >&2
  exit 1
}
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

# --- tools -------------------------------------------------------------------------------------
missing=()
need() { command -v "$1" > /dev/null 2>&1 || missing+=("$2"); }
check_tools() {
  missing=()
  need qemu-system-x86_64 qemu-system-x86
  if [ ! -x /bin/busybox ] || ldd /bin/busybox > /dev/null 2>&1; then
    missing+=(busybox-static) # absent, or the dynamic build (package busybox)
  fi
  if ! cpio --version 2> /dev/null | grep -q 'GNU cpio'; then missing+=(cpio); fi
  need mke2fs e2fsprogs
  need xz xz-utils
  [ "$COMP" = gzip ] && need gzip gzip
  [ "$COMP" = zstd ] && need zstd zstd
  need dpkg-deb dpkg
  need apt-get apt
  need ldd libc-bin
  need flock util-linux
  need sha256sum coreutils
  return 0
}
check_tools
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$INSTALL" = 1 ]; then
    say "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    check_tools
    [ ${#missing[@]} -eq 0 ] || die "still missing after apt-get install: ${missing[*]}"
  else
    die "missing Debian packages: ${missing[*]}
  install them:  apt-get install -y --no-install-recommends ${missing[*]}
  or run:        $0 --install-deps"
  fi
fi
if [ "$CHECK_ONLY" = 1 ]; then
  say "tools present"
  exit 0
fi
[ -x "$AGENT_EXECUTABLE" ] || die "agent executable $AGENT_EXECUTABLE missing: run node scripts/build.mjs && node scripts/build-executables.mjs first"
# A config the agent rejects would give a guest that restarts its agent forever: check it here.
"$AGENT_EXECUTABLE" --config "$HERE/agent.json" --check-config > /dev/null ||
  die "the agent rejects scripts/vm/agent.json (see above)"
if [ -z "$KFORMAT" ]; then KFORMAT=vmlinux; fi

mkdir -p "$LAB/cache/debs" "$LAB/work"
exec 9> "$LAB/.build.lock"
flock -w 900 9 || die "another build holds $LAB/.build.lock for 15 minutes"

# --- kernel package ----------------------------------------------------------------------------
# Security updates rename the package (linux-image-6.1.0-NN-amd64): resolve it from the
# metapackage, fall back to a cached .deb when the apt lists are missing (offline re-runs).
resolve_kernel() {
  apt-cache depends linux-image-amd64 2> /dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
cd "$LAB/cache/debs"
KPKG=${LQ_GUEST_KERNEL_PKG:-$(resolve_kernel)}
if [ -z "$KPKG" ] && [ "$INSTALL" = 1 ] && ! compgen -G 'linux-image-[0-9]*_amd64.deb' > /dev/null; then
  say "no apt lists: apt-get update"
  apt-get update -qq
  KPKG=$(resolve_kernel)
fi
if [ -n "$KPKG" ]; then
  if ! compgen -G "${KPKG}_*.deb" > /dev/null; then
    say "downloading $KPKG (apt-get download)"
    apt-get download -q "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
  fi
  KDEB=$(find . -maxdepth 1 -name "${KPKG}_*.deb" -printf '%f\n' | sort -V | tail -n 1)
else
  KDEB=$(find . -maxdepth 1 -name 'linux-image-[0-9]*_amd64.deb' -printf '%f\n' | sort -V | tail -n 1)
fi
[ -n "$KDEB" ] || die "cannot find the Debian kernel package: run apt-get update (apt-cache depends linux-image-amd64 names none)"
KPKG=${KDEB%%_*}
KVER=${KPKG#linux-image-}
KDEBVER=$(echo "$KDEB" | cut -d_ -f2)
# Keep only the kernel in use.
find . -maxdepth 1 -name 'linux-image-*.deb' ! -name "$KDEB" -delete

# --- kernel and modules (cached per package) ---------------------------------------------------
KDIR=$LAB/cache/kernel-$KVER
kstamp="$KDEB ${MODULES[*]} v2"
if [ "$(cat "$KDIR/.stamp" 2> /dev/null)" != "$kstamp" ]; then
  say "unpacking $KDEB"
  X=$LAB/work/kernel-unpack
  rm -rf "$X" "$KDIR"
  mkdir -p "$X" "$KDIR/modules"
  dpkg-deb --fsys-tarfile "$LAB/cache/debs/$KDEB" | tar -x -C "$X" --wildcards './boot/vmlinuz-*' './lib/modules/*'
  cp "$X/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
  # Uncompressed vmlinux (PVH entry) boots a few seconds faster under TCG: find the xz stream.
  while read -r off; do
    tail -c +$((off + 1)) "$KDIR/vmlinuz" | xz -dc > "$KDIR/vmlinux.tmp" 2> /dev/null || true
    if [ "$(head -c 4 "$KDIR/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
      mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
      break
    fi
  done < <(LC_ALL=C grep -aboP '\xfd7zXZ\x00' "$KDIR/vmlinuz" | cut -d: -f1)
  rm -f "$KDIR/vmlinux.tmp"
  # Modules and their dependencies, from each .ko's depends= field, in load order.
  declare -A KO=() SEEN=()
  while IFS= read -r f; do
    b=${f##*/}
    b=${b%.ko}
    KO[${b//-/_}]=$f
  done < <(find "$X/lib/modules/$KVER" -name '*.ko')
  ORDER=()
  add() {
    local m=${1//-/_} f deps d
    [ -n "${SEEN[$m]:-}" ] && return 0
    SEEN[$m]=1
    f=${KO[$m]:-}
    if [ -z "$f" ]; then
      say "module $m not in the package (built in)"
      return 0
    fi
    deps=$(tr '\0' '\n' < "$f" | sed -n 's/^depends=//p' | tr ',' ' ')
    for d in $deps; do add "$d"; done
    ORDER+=("$m")
  }
  for m in "${MODULES[@]}"; do add "$m"; done
  for m in "${ORDER[@]}"; do cp "${KO[$m]}" "$KDIR/modules/$m.ko"; done
  printf '%s\n' "${ORDER[@]}" > "$KDIR/modules.order"
  rm -rf "$X"
  echo "$kstamp" > "$KDIR/.stamp"
fi
if [ "$KFORMAT" = vmlinux ] && [ ! -f "$KDIR/vmlinux" ]; then
  say "no vmlinux could be extracted; using vmlinuz"
  KFORMAT=vmlinuz
fi

# --- up to date? -------------------------------------------------------------------------------
# Repository inputs by content; this machine's binaries by path, size and mtime (cheap).
inputs=$(
  {
    echo "format=4 comp=$COMP kernel=$KFORMAT deb=$KDEB data=$DATA_MB"
    (cd "$ROOT" && sha256sum scripts/vm/build-guest.sh scripts/vm/init scripts/vm/agent.json scripts/vm/agent-restart)
    sha256sum < "$AGENT_EXECUTABLE"
    for f in /bin/busybox "${HOST_TOOLS[@]%%:*}"; do
      if [ -e "$f" ]; then stat -L -c '%n %s %Y' "$f"; fi
    done
  } | sha256sum | cut -c1-64
)
KFILE=$KFORMAT
if [ "$FORCE" = 0 ] && [ -f "$LAB/$KFILE" ] && [ -f "$LAB/initrd.img" ] && [ -f "$LAB/data.img" ] &&
  grep -q "\"inputs\": \"$inputs\"" "$LAB/guest.json" 2> /dev/null; then
  say "up to date ($LAB, $(elapsed))"
  exit 0
fi

# --- root filesystem ---------------------------------------------------------------------------
say "building the root filesystem"
R=$LAB/work/rootfs
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt/data,root,home/alice,opt} \
  "$R"/usr/{bin,sbin,lib64,local/bin,local/sbin} "$R"/var/{lib,log,tmp} \
  "$R"/etc/limiquantix/{pre-freeze.d,post-thaw.d} "$R/etc/pam.d"
# Merged /lib like Debian: every library path resolves whether it says /lib or /usr/lib.
mkdir -p "$R/usr/lib/modules"
ln -s usr/lib "$R/lib"
ln -s usr/lib64 "$R/lib64"

guest_path() { case $1 in /usr/*) echo "$1" ;; *) echo "/usr$1" ;; esac }
copy_libs() {
  local lib g
  for lib in $(ldd "$1" 2> /dev/null | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
    g=$(guest_path "$lib")
    [ -e "$R$g" ] && continue
    mkdir -p "$R$(dirname "$g")"
    cp -L "$lib" "$R$g"
  done
}
# ELF file $1 at guest path $2, with its libraries (ldd lists the dynamic loader too).
copy_elf() {
  mkdir -p "$R$(dirname "$2")"
  if command -v strip > /dev/null; then strip -o "$R$2" "$1"; else cp -L "$1" "$R$2"; fi
  chmod 0755 "$R$2"
  copy_libs "$1"
}

cp /bin/busybox "$R/bin/busybox"
# Never stripped: bun's executable carries the agent inside it. Its libraries are glibc's.
cp "$AGENT_EXECUTABLE" "$R/usr/bin/limiquantix-agent"
chmod 0755 "$R/usr/bin/limiquantix-agent"
copy_libs "$AGENT_EXECUTABLE"
for t in "${HOST_TOOLS[@]}"; do
  if [ -x "${t%%:*}" ]; then
    copy_elf "${t%%:*}" "${t#*:}"
  else
    say "warning: ${t%%:*} not on this machine; the guest has busybox's or none"
  fi
done
libpam=$(ldd /usr/sbin/chpasswd 2> /dev/null | grep -o '/[^ ]*/libpam\.so[^ ]*' | head -n 1 || true)
if [ -n "$libpam" ]; then
  for m in "${PAM_MODULES[@]}"; do
    src=$(dirname "$libpam")/security/$m
    [ -f "$src" ] || die "$src missing (package libpam-modules)"
    g=$(guest_path "$src")
    mkdir -p "$R$(dirname "$g")"
    cp -L "$src" "$R$g"
    copy_libs "$src"
  done
fi
# Every busybox applet (chpasswd excepted: Debian's busybox has none; shadow's is above), where no
# real tool sits. Not init or linuxrc: /init is ours.
{
  /bin/busybox --list-full
  printf '%s\n' "${EXTRA_LINKS[@]}"
} | while read -r p; do
  case $p in linuxrc | sbin/init) continue ;; esac
  [ -e "$R/$p" ] || [ -L "$R/$p" ] && continue
  mkdir -p "$R/$(dirname "$p")"
  ln -s /bin/busybox "$R/$p"
done
# The kernel modules, flat, with their load order.
cp "$KDIR"/modules/*.ko "$R/usr/lib/modules/"
cp "$KDIR/modules.order" "$R/etc/modules.order"

# ifupdown as busybox runs it (the agent's network backend in this guest, PROTOCOL.md §11): the
# interfaces file with QEMU user networking's usual address, the hook directories ifup runs, and
# /var/run, where busybox keeps its ifstate.
mkdir -p "$R"/etc/network/{if-pre-up.d,if-up.d,if-down.d,if-post-down.d}
ln -s ../run "$R/var/run"
cat > "$R/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 10.0.2.15
    netmask 255.255.255.0
    gateway 10.0.2.2
EOF

cp "$HERE/init" "$R/init"
chmod 0755 "$R/init"
cp "$HERE/agent.json" "$R/etc/limiquantix/agent.json"
cp "$HERE/agent-restart" "$R/usr/sbin/limiquantix-agent-restart"
chmod 0755 "$R/usr/sbin/limiquantix-agent-restart"
mkdir -p "$R/var/lib/limiquantix"

# Users: root and a test user alice (locked until a password test sets one).
cat > "$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
alice:x:1000:1000:Alice Test:/home/alice:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat > "$R/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
alice:!:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
cat > "$R/etc/group" <<'EOF'
root:x:0:
shadow:x:42:
alice:x:1000:
nogroup:x:65534:
EOF
cat > "$R/etc/gshadow" <<'EOF'
root:*::
shadow:*::
alice:!::
nogroup:*::
EOF
chmod 0640 "$R/etc/shadow" "$R/etc/gshadow"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' > "$R/etc/nsswitch.conf"
printf '/bin/sh\n/bin/ash\n' > "$R/etc/shells"
printf '127.0.0.1\tlocalhost\n' > "$R/etc/hosts"
echo lq-guest > "$R/etc/hostname"
cat > "$R/etc/login.defs" <<'EOF'
# Debian's defaults that shadow's tools read (the rest are unset).
PASS_MAX_DAYS 99999
PASS_MIN_DAYS 0
PASS_WARN_AGE 7
UID_MIN 1000
UID_MAX 60000
GID_MIN 1000
GID_MAX 60000
ENCRYPT_METHOD SHA512
EOF
# What Debian's /etc/pam.d/chpasswd amounts to (through common-password).
cat > "$R/etc/pam.d/chpasswd" <<'EOF'
password [success=1 default=ignore] pam_unix.so obscure yescrypt
password requisite pam_deny.so
password required pam_permit.so
EOF
cat > "$R/etc/pam.d/other" <<'EOF'
auth required pam_deny.so
account required pam_deny.so
password required pam_deny.so
session required pam_deny.so
EOF
cat > "$R/etc/os-release" <<EOF
PRETTY_NAME="LimiQuantix test guest (Debian kernel $KVER)"
NAME="LimiQuantix test guest"
ID=lqguest
ID_LIKE=debian
VERSION_ID="1"
EOF

# --- initrd: deterministic (sorted names, fixed mtimes, root-owned) ----------------------------
say "packing initrd.img ($COMP)"
find "$R" -exec touch -h -d @0 {} +
pack() { (cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet); }
case $COMP in
  none) pack > "$LAB/initrd.img.tmp" ;;
  gzip) pack | gzip -6 -n > "$LAB/initrd.img.tmp" ;;
  zstd) pack | zstd -q -T0 -10 > "$LAB/initrd.img.tmp" ;;
esac
mv "$LAB/initrd.img.tmp" "$LAB/initrd.img"
rm -f "$LAB/vmlinux" "$LAB/vmlinuz"
cp "$KDIR/$KFILE" "$LAB/$KFILE"

# --- data disk ---------------------------------------------------------------------------------
D=$LAB/work/datafs
rm -rf "$D"
mkdir -p "$D"
echo "LimiQuantix test data disk (ext4, made by scripts/vm/build-guest.sh)" > "$D/README"
find "$D" -exec touch -h -d @0 {} +
rm -f "$LAB/data.img.tmp"
E2FSPROGS_FAKE_TIME=86400 SOURCE_DATE_EPOCH=86400 mke2fs -q -F -t ext4 -L lqdata \
  -U 4c510000-0000-4000-8000-00000000da7a -E root_owner=0:0,hash_seed=4c510000-0000-4000-8000-000000005eed \
  -d "$D" "$LAB/data.img.tmp" "${DATA_MB}M" > /dev/null
mv "$LAB/data.img.tmp" "$LAB/data.img"

# --- manifest ----------------------------------------------------------------------------------
INPUTS=$inputs KFILE=$KFILE KVER=$KVER KDEB=$KDEB KDEBVER=$KDEBVER COMP=$COMP LAB=$LAB \
  AGENT_EXECUTABLE=$AGENT_EXECUTABLE MODS="$(tr '\n' ' ' < "$KDIR/modules.order")" \
  AGENT_VERSION="$("$AGENT_EXECUTABLE" --version)" node - <<'EOF'
const fs = require('node:fs');
const crypto = require('node:crypto');
const e = process.env;
const sha = (f) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const manifest = {
  inputs: e.INPUTS,
  built_at: new Date().toISOString(),
  kernel: e.KFILE,
  initrd: 'initrd.img',
  data_disk: 'data.img',
  kernel_version: e.KVER,
  kernel_package: e.KDEB,
  kernel_package_version: e.KDEBVER,
  modules: e.MODS.trim().split(/\s+/),
  initrd_compression: e.COMP,
  initrd_bytes: fs.statSync(`${e.LAB}/initrd.img`).size,
  initrd_sha256: sha(`${e.LAB}/initrd.img`),
  agent_version: e.AGENT_VERSION.trim(),
  agent_sha256: sha(e.AGENT_EXECUTABLE),
  agent_device: '/dev/virtio-ports/org.limiquantix.agent.0',
  agent_config: '/etc/limiquantix/agent.json',
  data_mount: '/mnt/data',
  users: ['root', 'alice'],
};
fs.writeFileSync(`${e.LAB}/guest.json.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
fs.renameSync(`${e.LAB}/guest.json.tmp`, `${e.LAB}/guest.json`);
EOF
rm -rf "$R" "$D"
say "built $LAB: $KFILE ($KVER), initrd.img $(du -h "$LAB/initrd.img" | cut -f1) ($COMP), data.img ${DATA_MB} MiB in $(elapsed)"
