// Entry point of the shipped executable (scripts/build-executables.mjs): one file per platform
// that is both the agent and its client, so a guest carries one runtime, not two:
//   limiquantix-agent [agent options]      the agent (main.ts)
//   limiquantix-agent ctl [agentctl args]  agentctl (the package's limiquantix-agentctl calls this)
// agentctl is a host-side app (apps/agentctl, it uses @lq/host); it is linked in here on purpose,
// loaded only in ctl mode, so the agent proper never runs its code.
if (process.argv[2] === 'ctl') {
  process.argv.splice(2, 1);
  void import('../../agentctl/src/main.js');
} else {
  void import('./main.js');
}
