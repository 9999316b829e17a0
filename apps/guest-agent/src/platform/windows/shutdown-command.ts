// shutdown.exe's command lines, apart from windows-commands.ts so that the Windows defaults (read
// with the config, before the agent loads its protobuf code) need no @lq/proto enum.

const SHUTDOWN_COMMENT = 'LimiQuantix guest agent: requested by the host';

/**
 * Power off (/s) or restart (/r). The agent waits out delay_seconds itself, so the command runs
 * with /t 0; /d p:0:0 records "Other (Planned)" in the event log.
 */
export function shutdownCommand(shutdownExe: string, restart: boolean): string[] {
  return [shutdownExe, restart ? '/r' : '/s', '/t', '0', '/d', 'p:0:0', '/c', SHUTDOWN_COMMENT];
}
