// The OS-specific parts of the agent behind one interface (DESIGN.md: "its OS-specific parts sit
// behind one platform interface"). The protocol, the dispatcher and the handlers talk to a
// GuestPlatform; linux.platform.ts delegates to the modules the Linux agent always had
// (exec/, files/, telemetry/, quiesce/, network/, system/), windows.platform.ts implements what
// a Windows guest can do from the command line and refuses the rest with UNSUPPORTED. One is
// chosen at start from process.platform (current-platform.ts).
import type {
  ExecuteRequest,
  ExecuteResponse,
  OsInfo,
  RequestCase,
  SetUserPasswordRequest,
  ShutdownMode,
  TelemetryReport,
} from '@lq/proto';
import type { HostChannel } from '../channel/host-channel.js';
import type { AgentConfig } from '../config/agent-config.js';
import type { ExecHooks } from '../exec/child-supervisor.js';
import type { UserResolver } from '../exec/user-resolver.js';
import type { FileOwnerSource } from '../files/file-owners.js';
import type { PathPolicy } from '../files/path-policy.js';
import type { Logger } from '../logger.js';
import type { CommandResult } from '../system/run-command.js';
import type { PlatformOs } from '../os/host-os.js';

export type { PlatformOs } from '../os/host-os.js';

/** Runs executions: what the execute and cancel handlers need (exec/process-runner.ts on Linux). */
export interface ExecRunner {
  readonly activeCount: number;
  run(request: ExecuteRequest, hooks?: ExecHooks): Promise<ExecuteResponse>;
  cancel(executionId: string): boolean;
  killAll(): number;
}

/** Samples TelemetryReport on the agent's timer. */
export interface TelemetrySampler {
  sample(): Promise<TelemetryReport>;
}

/** How the guest's clock is brought to the right time (time.sync). */
export interface ClockControl {
  /** Steps the clock through the OS's time service; its name, or undefined when there is none. */
  syncByService(): Promise<string | undefined>;
  /** Sets the clock to `epochMs` (UTC). */
  setClock(epochMs: number): Promise<CommandResult>;
  /** Copies the clock to the RTC; undefined where the OS does that itself. */
  syncRtc(): Promise<CommandResult> | undefined;
}

/** password.set: validates and applies; the secret never reaches a log or a message. */
export interface AccountControl {
  setPassword(request: SetUserPasswordRequest): Promise<void>;
}

export interface GuestPlatform {
  readonly os: PlatformOs;
  /** Where the config is read from when --config names no file. */
  readonly defaultConfigPath: string;
  /** The virtio-serial port when --device names none. */
  readonly defaultDevicePath: string;
  /** This OS's built-in settings over the shared defaults (config/agent-config.ts). */
  defaults(config: AgentConfig): AgentConfig;
  /** The host channel on the virtio-serial port, opened as a file. */
  openDevice(path: string): HostChannel;
  /**
   * Operations this OS cannot serve yet, each with the reason the UNSUPPORTED error gives
   * (assemble.ts puts a refusing handler in their place, so a host that sends one anyway learns
   * why; the capabilities leave out every capability one of them needs).
   */
  unsupported(): Partial<Record<RequestCase, string>>;
  execRunner(config: AgentConfig, users: UserResolver, log?: Logger): ExecRunner;
  pathPolicy(config: AgentConfig): PathPolicy;
  /** Where file owners come from when stat's uid/gid do not name them; undefined on Linux. */
  fileOwners(config: AgentConfig, log?: Logger): FileOwnerSource | undefined;
  /** The command a shutdown mode runs (the agent waits out delay_seconds itself). */
  shutdownArgv(config: AgentConfig, mode: ShutdownMode): string[];
  clock(config: AgentConfig): ClockControl;
  accounts(config: AgentConfig, users: UserResolver): AccountControl;
  /** OS facts for AgentReady, GetInfo and os.info, cached as the OS allows. */
  osInfo(config: AgentConfig, log?: Logger): () => Promise<OsInfo>;
  telemetry(config: AgentConfig, log?: Logger): TelemetrySampler;
}
