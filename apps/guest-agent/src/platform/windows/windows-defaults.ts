// A Windows guest's built-in settings over the shared (Linux) defaults: programs under
// System32, state under ProgramData, the C: drive as the file root.
import type { AgentConfig } from '../../config/agent-config.js';
import { shutdownCommand } from './shutdown-command.js';

export const PROGRAM_DATA = 'C:\\ProgramData\\LimiQuantix';
export const WINDOWS_CONFIG_PATH = `${PROGRAM_DATA}\\agent.json`;
export const WINDOWS_DEVICE_PATH = '\\\\.\\Global\\org.limiquantix.agent.0';

export function applyWindowsDefaults(config: AgentConfig): AgentConfig {
  const w = config.windows;
  config.exec.shell = w.cmd;
  config.exec.path =
    'C:\\Windows\\System32;C:\\Windows;C:\\Windows\\System32\\Wbem;C:\\Windows\\System32\\WindowsPowerShell\\v1.0';
  config.files.roots = ['C:\\'];
  config.commands.poweroff = shutdownCommand(w.shutdown, false);
  config.commands.reboot = shutdownCommand(w.shutdown, true);
  config.network.exclude_interfaces = ['Loopback*', 'isatap*', 'Teredo*'];
  config.network.state_file = `${PROGRAM_DATA}\\network-pending.json`;
  config.quiesce.state_file = `${PROGRAM_DATA}\\quiesce.json`;
  config.quiesce.pre_freeze_dir = `${PROGRAM_DATA}\\pre-freeze.d`;
  config.quiesce.post_thaw_dir = `${PROGRAM_DATA}\\post-thaw.d`;
  config.update.state_dir = PROGRAM_DATA;
  return config;
}
