#!/bin/sh
# Installs the LimiQuantix guest agent package on a Debian/Ubuntu guest (apt, dpkg) or a
# RHEL-family guest (dnf or yum, rpm), with the distribution's Node.js when it has none.
# Running it again is harmless: the same version already installed is left as it is.
#
#   install-agent.sh PACKAGE         a .deb or .rpm, as a local path or an http(s) URL
#   LQ_AGENT_PACKAGE=PACKAGE install-agent.sh
#   LQ_AGENT_BASE_URL=URL LQ_AGENT_VERSION=V install-agent.sh
#                                    URL/limiquantix-agent_V_all.deb or
#                                    URL/limiquantix-agent-V-1.noarch.rpm, whichever fits
#   LQ_NODEJS_STREAM=22              dnf module stream to enable on RHEL 8/9 when Node.js is
#                                    missing (default: the first of 22, 20, 18 available)
#
# See deploy/packaging/README.md.
set -eu

PKG=limiquantix-agent
NODE_MIN=18
PORT=/dev/virtio-ports/org.limiquantix.agent.0

say() { echo "install-agent: $*"; }
die() {
  echo "install-agent: error: $*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

case ${1:-} in
  -h | --help)
    sed -n '2,/^set /s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
esac
[ $# -le 1 ] || die "one package at most (got $#); see --help"
[ "$(id -u)" = 0 ] || die "must run as root (sudo sh $0 ...)"

if have dpkg && have apt-get; then
  family=deb
elif have rpm && { have dnf || have yum; }; then
  family=rpm
else
  die "no supported package manager: this installs with apt-get and dpkg (Debian, Ubuntu) or dnf/yum and rpm (RHEL, Rocky, Alma, Fedora)"
fi

src=${1:-${LQ_AGENT_PACKAGE:-}}
if [ -z "$src" ]; then
  if [ -z "${LQ_AGENT_BASE_URL:-}" ] || [ -z "${LQ_AGENT_VERSION:-}" ]; then
    die "no package: give a .deb or .rpm (path or URL) as argument or LQ_AGENT_PACKAGE, or set LQ_AGENT_BASE_URL and LQ_AGENT_VERSION (see --help)"
  fi
  # build-packages.mjs turns a pre-release "-rc.1" into "~rc.1" in both formats.
  version=$(printf '%s' "$LQ_AGENT_VERSION" | tr '-' '~')
  case $family in
    deb) src=${LQ_AGENT_BASE_URL%/}/${PKG}_${version}_all.deb ;;
    rpm) src=${LQ_AGENT_BASE_URL%/}/${PKG}-${version}-1.noarch.rpm ;;
  esac
fi

case $src in
  *.deb) kind=deb ;;
  *.rpm) kind=rpm ;;
  *) die "$src: not a .deb or .rpm file name" ;;
esac
[ "$kind" = "$family" ] || die "$src is a .$kind package, but this system installs .$family packages"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

case $src in
  http://* | https://*)
    file=$work/${src##*/}
    say "downloading $src"
    if have curl; then
      curl -fsSL --retry 3 -o "$file" "$src" || die "could not download $src"
    elif have wget; then
      wget -q -O "$file" "$src" || die "could not download $src"
    else
      die "neither curl nor wget is installed: cannot download $src"
    fi
    ;;
  *)
    [ -f "$src" ] || die "no such file: $src"
    case $src in
      /*) file=$src ;;
      *) file=$PWD/$src ;; # apt-get takes a local package only as a path with a slash
    esac
    ;;
esac

# What the file holds (name, and version; version-release for rpm) and what is installed.
installed_version() {
  if [ "$family" = deb ]; then
    status=$(dpkg-query -W -f '${Status}|${Version}' "$PKG" 2>/dev/null) || return 0
    case $status in
      'install ok installed|'*) echo "${status#*|}" ;;
    esac
  else
    rpm -q --qf '%{VERSION}-%{RELEASE}' "$PKG" 2>/dev/null || true
  fi
}
if [ "$family" = deb ]; then
  name=$(dpkg-deb -f "$file" Package 2>/dev/null) || die "$src is not a valid .deb"
  new=$(dpkg-deb -f "$file" Version)
else
  name=$(rpm -qp --qf '%{NAME}' "$file" 2>/dev/null) || die "$src is not a valid .rpm"
  new=$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$file" 2>/dev/null)
fi
[ "$name" = "$PKG" ] || die "$src holds the package '$name', not $PKG"
old=$(installed_version)

# The major version of the Node.js the agent's launcher would use, if any.
node_major() {
  for candidate in node nodejs; do
    if have "$candidate"; then
      v=$("$candidate" --version 2>/dev/null) || continue
      v=${v#v}
      v=${v%%.*}
      case $v in
        '' | *[!0-9]*) continue ;;
      esac
      echo "$v"
      return 0
    fi
  done
  return 1
}

too_old() {
  die "$1 The agent needs Node.js $NODE_MIN or newer: install one (e.g. from NodeSource; on RHEL 8/9: dnf module reset nodejs && dnf module enable nodejs:22 && dnf distro-sync nodejs), then run this again"
}

report() {
  if [ ! -e "$PORT" ]; then
    say "$PORT is not present: the agent starts when the VM is given the channel org.limiquantix.agent.0"
    return 0
  fi
  if ! have systemctl || [ ! -d /run/systemd/system ]; then
    say "no systemd running: start the agent with /usr/bin/limiquantix-agent --device $PORT"
    return 0
  fi
  tries=0
  until systemctl is-active --quiet "$PKG.service"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 20 ]; then
      say "warning: $PKG.service is not active: see 'systemctl status $PKG' and 'journalctl -u $PKG'" >&2
      return 0
    fi
    sleep 0.5
  done
  say "$PKG.service is running"
}

if [ -n "$old" ] && [ "$old" = "$new" ]; then
  say "$PKG $new is already installed"
  report
  exit 0
fi

if major=$(node_major); then
  [ "$major" -ge "$NODE_MIN" ] || too_old "Node.js $major is installed."
  node_ok=yes
else
  node_ok=
fi

if [ "$family" = deb ]; then
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$node_ok" ]; then
    # nodejs comes with the package (its Depends); make sure the one on offer is new enough.
    say "no Node.js: nodejs will be installed from the distribution"
    apt-get update -q || die "apt-get update failed"
    candidate=$(apt-cache policy nodejs 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    case $candidate in
      '' | '(none)') die "no nodejs package in the configured apt sources" ;;
    esac
    cmajor=${candidate#*:}
    cmajor=${cmajor%%.*}
    case $cmajor in
      '' | *[!0-9]*) die "cannot read the nodejs candidate version '$candidate'" ;;
    esac
    [ "$cmajor" -ge "$NODE_MIN" ] || too_old "The apt sources offer nodejs $candidate."
  fi
  say "installing ${old:+(upgrading $old) }$PKG $new"
  # confold: an upgrade keeps a locally edited /etc/limiquantix/agent.json without asking.
  apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$file" || die "apt-get could not install $src"
else
  if [ -z "$node_ok" ] && have dnf && dnf -q module list nodejs >/dev/null 2>&1; then
    # RHEL 8/9: the default nodejs stream is older than 18; enable a newer one.
    enabled=
    for stream in ${LQ_NODEJS_STREAM:-22 20 18}; do
      if dnf -y -q module enable "nodejs:$stream" >/dev/null 2>&1; then
        enabled=$stream
        say "enabled the nodejs:$stream module stream"
        break
      fi
    done
    [ -n "$enabled" ] || say "warning: could not enable a nodejs module stream (tried ${LQ_NODEJS_STREAM:-22 20 18})" >&2
  fi
  [ -n "$node_ok" ] || say "no Node.js: nodejs will be installed from the distribution"
  say "installing ${old:+(upgrading $old) }$PKG $new"
  if have dnf; then
    dnf install -y "$file" || die "dnf could not install $src (it needs nodejs >= 18 from the enabled repositories)"
  else
    yum install -y "$file" || die "yum could not install $src (it needs nodejs >= 18 from the enabled repositories)"
  fi
fi

now=$(installed_version)
[ "$now" = "$new" ] || die "after installing, $PKG is at version '$now', not $new (a downgrade? remove the newer version first)"
major=$(node_major) || die "$PKG is installed, but no node or nodejs runs"
[ "$major" -ge "$NODE_MIN" ] || too_old "$PKG is installed, but Node.js is $major."
say "installed $PKG $new"
report
