# Shared by the .deb and .rpm maintainer scripts: build-packages.mjs inserts this file at their
# COMMON marker line. POSIX sh; every systemd/udev step is best effort (a warning, never a
# failed install), because packages also get installed into chroots, image builds and
# containers where nothing of that runs.

LQ_UNIT=limiquantix-agent.service
LQ_PORT=/dev/virtio-ports/org.limiquantix.agent.0
LQ_DEVICE_UNIT='dev-virtio\x2dports-org.limiquantix.agent.0.device'
# dpkg >= 1.18.5 sets DPKG_ROOT to the --root/--instdir it installs into ("" for /); rpm --root
# chroots into the root instead, so there it is unset.
LQ_ROOT=${DPKG_ROOT:-}

lq_say() { echo "limiquantix-agent: $*"; }
lq_warn() { echo "limiquantix-agent: warning: $*" >&2; }

# True on the booted system that systemd manages. False in a chroot, an image build, a
# container without systemd, or when dpkg installs into another root: there, only the
# symlinks of `systemctl enable` are made, nothing is started or stopped.
lq_live() {
  [ -z "$LQ_ROOT" ] || return 1
  [ -d /run/systemd/system ] || return 1
  command -v systemctl >/dev/null 2>&1 || return 1
  if command -v systemd-detect-virt >/dev/null 2>&1 && systemd-detect-virt --quiet --chroot; then
    return 1
  fi
  return 0
}

# True when the agent itself runs this script: the host installed, upgraded or removed the
# package through the agent's `execute`. The package manager then lives in the agent's control
# group, and stopping or restarting the agent would kill it half-way through.
lq_inside_agent() {
  grep -qsF "/$LQ_UNIT" /proc/self/cgroup
}

lq_systemctl_offline() {
  if [ -n "$LQ_ROOT" ]; then
    systemctl --root="$LQ_ROOT" "$@"
  else
    systemctl "$@"
  fi
}

# `enable` links the unit into the port's device unit (its [Install] section, as upstream
# QEMU's unit has it): a second way to the same start, which does not depend on the udev rule.
lq_enable() {
  if ! command -v systemctl >/dev/null 2>&1; then
    lq_warn "no systemctl: $LQ_UNIT not enabled"
    return 0
  fi
  lq_systemctl_offline enable "$LQ_UNIT" || lq_warn "could not enable $LQ_UNIT"
}

lq_disable() {
  if command -v systemctl >/dev/null 2>&1; then
    lq_systemctl_offline disable "$LQ_UNIT" || lq_warn "could not disable $LQ_UNIT"
  fi
}

lq_udev_reload() {
  if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload-rules 2>/dev/null || lq_warn "udevadm control --reload-rules failed"
  fi
}

# After the files are in place (first install, upgrade, aborted removal): the agent runs
# whenever the port exists, so (re)start it now if it does; otherwise udev starts it once the VM
# gets the channel.
lq_after_install() {
  lq_live || return 0
  systemctl daemon-reload || lq_warn "systemctl daemon-reload failed"
  lq_udev_reload
  if [ ! -e "$LQ_PORT" ]; then
    lq_say "$LQ_PORT is not present: the agent starts when the VM is given the channel"
    return 0
  fi
  if lq_inside_agent; then
    lq_warn "installed through the running agent: not restarting it, which would end this" \
      "installation; the new version runs after 'systemctl restart $LQ_UNIT' or a reboot"
    return 0
  fi
  # --no-block: never hold the package manager on a start job.
  systemctl --no-block restart "$LQ_UNIT" || lq_warn "could not start $LQ_UNIT"
}

# Before the files go away for good (not on upgrade).
lq_before_remove() {
  lq_disable
  lq_live || return 0
  if lq_inside_agent; then
    lq_warn "removed through the running agent: it keeps running until the port goes, a" \
      "reboot, or 'systemctl stop $LQ_UNIT'"
    return 0
  fi
  systemctl stop "$LQ_UNIT" || lq_warn "could not stop $LQ_UNIT"
}

# After the files are gone: drop what `disable` may have missed (no systemctl at removal time),
# then let systemd and udev forget the unit and the rule.
lq_after_remove() {
  wants="$LQ_ROOT/etc/systemd/system/$LQ_DEVICE_UNIT.wants"
  rm -f "$wants/$LQ_UNIT"
  rmdir "$wants" 2>/dev/null || true
  lq_live || return 0
  systemctl daemon-reload || lq_warn "systemctl daemon-reload failed"
  lq_udev_reload
}
