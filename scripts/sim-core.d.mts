// Types for sim-core.mjs (plain JS, so that scripts/sim.mjs runs on Node without a build).

/** Repository root (the folder holding scripts/). */
export declare const REPO_ROOT: string;
/** dist/guest-agent/limiquantix-agent.cjs under REPO_ROOT (built by `npm run build`). */
export declare const AGENT_BUNDLE: string;
/** dist/guest-agent/limiquantix-sim-host.cjs: many agents in one process. */
export declare const SIM_HOST_BUNDLE: string;
export declare const MAX_VMS: 2000;
export declare const DEFAULT_PREFIX: 'vm-';
/** SIGTERM → SIGKILL delay when stopping an agent. */
export declare const KILL_GRACE_MS: number;

/** A usage or start-up problem, with a message meant for a person. */
export declare class SimError extends Error {
  constructor(message: string);
}

export type AgentConfigPatch = Record<string, unknown>;

export interface SimVm {
  /** `${prefix}${index}`, e.g. vm-1. */
  readonly id: string;
  /** 1-based. */
  readonly index: number;
  /** `<dir>/<id>.sock`: what a node daemon finds in its channel directory. */
  readonly socketPath: string;
  /** `<dir>/.sim/<id>/`: config, shutdown recorder, shutdown.log; a file-transfer root. */
  readonly workDir: string;
  readonly configPath: string;
  /** One line per shutdown command the agent ran ("poweroff", "reboot", "halt"). */
  readonly shutdownLog: string;
  /** Of the current (or last) agent process; changes on restart. */
  readonly pid: number | undefined;
}

export type SimEvent =
  | { type: 'started'; vm: SimVm; restarted: boolean }
  | {
      type: 'exited';
      vm: SimVm;
      code: number | null;
      signal: NodeJS.Signals | null;
      /** False when the agent died on its own (not through kill/restart/stop). */
      expected: boolean;
      error?: string;
    }
  | { type: 'output'; vm: SimVm; line: string }
  | { type: 'restart-failed'; vm: SimVm; error: string }
  | { type: 'gave-up'; vm: SimVm; crashes: number };

export interface StartSimVmsOptions {
  /** Channel directory that receives `<id>.sock` (created if missing). */
  dir: string;
  /** 1..MAX_VMS. */
  count: number;
  /** Default 'vm-'. Letters, digits, '.', '_', '-'; not starting with '.'. */
  prefix?: string;
  /**
   * Deep-merged into each agent's config (objects merge, arrays and scalars replace); a
   * function gives per-VM configs.
   */
  config?:
    | AgentConfigPatch
    | ((vm: { id: string; index: number; workDir: string }) => AgentConfigPatch | undefined);
  /** Start an agent again 1 s after it dies on its own (gives up after 5 quick crashes). */
  restartOnExit?: boolean;
  /**
   * Agents per process, default 1. Above 1, agents share sim-host processes (about 50 MiB each
   * instead of per agent), for fleets larger than memory allows otherwise; kill, restart and
   * restartOnExit then refuse, as a process holds several VMs.
   */
  agentsPerProcess?: number;
  /** Default AGENT_BUNDLE. */
  agentBundle?: string;
  /** Default SIM_HOST_BUNDLE. */
  simHostBundle?: string;
  /** Per agent, from spawn to its socket appearing. Default 10000. */
  readyTimeoutMs?: number;
  /** Agents started at once. Default 16. */
  startConcurrency?: number;
  /** Lifecycle events and agent output lines. Default: none. */
  onEvent?: (event: SimEvent) => void;
  /** Run agents under `setpriv --pdeathsig TERM` when available. Default true. */
  dieWithParent?: boolean;
  /**
   * The runtime the agents run on: this Node.js by default, or the path of a `bun` binary (the
   * runtime the shipped agent executables are built with, see bunBinary() of
   * scripts/build-executables.mjs).
   */
  runtime?: string;
}

export interface SimVms {
  /** Absolute channel directory. */
  readonly dir: string;
  /** In id order; entries are live (pid updates on restart). */
  readonly vms: readonly SimVm[];
  /**
   * Sends `signal` (default SIGTERM) to one agent and resolves once it exited (rejects after
   * 5 s). SIGSTOP/SIGTSTP/SIGCONT are sent without waiting (a frozen guest). A killed agent is
   * not restarted automatically. SIGKILL leaves the socket file behind, as a crashed process does.
   */
  kill(id: string, signal?: NodeJS.Signals): Promise<void>;
  /**
   * Stops the agent if running, starts it again on the same socket, resolves once it exists.
   * kill and restart reject when agents share a process (agentsPerProcess > 1).
   */
  restart(id: string): Promise<SimVm>;
  /** Stops every agent (SIGTERM, SIGKILL after 3 s) and removes leftover sockets. Idempotent. */
  stop(): Promise<void>;
  isRunning(id: string): boolean;
  /** Last 64 KiB of the agent's stdout and stderr. */
  stderr(id: string): string;
  /** Lines of the VM's shutdown.log. */
  shutdownCalls(id: string): string[];
}

/** Checks options (throws SimError naming the bad one) and fills in defaults. */
export declare function validateSimOptions(
  options: StartSimVmsOptions,
): Required<Omit<StartSimVmsOptions, 'config'>> & Pick<StartSimVmsOptions, 'config'>;

export declare function startSimVms(options: StartSimVmsOptions): Promise<SimVms>;

export declare function mergeConfig(
  base: Record<string, unknown>,
  extra: Record<string, unknown> | undefined,
): Record<string, unknown>;

export declare function baseAgentConfig(vm: {
  workDir: string;
  recorder: string;
}): AgentConfigPatch;
