// One agent wired up: config, channel and logger in; the agent with every handler, and how to
// stop it, out. main.ts runs one per process (a guest); sim-host.ts runs many (simulated VMs).
import { servedPolicies } from '@lq/proto';
import { AGENT_VERSION, Agent, PROTOCOL_VERSION, agentLimits } from './agent.js';
import type { HostChannel } from './channel/host-channel.js';
import { enabledOperations, type AgentConfig } from './config.js';
import { ExecuteHandler } from './handlers/execute.handler.js';
import { CancelExecutionHandler } from './handlers/cancel-execution.handler.js';
import { QuiesceHandler, QuiesceStatusHandler, ThawHandler } from './handlers/quiesce.handler.js';
import { SyncTimeHandler } from './handlers/sync-time.handler.js';
import { SetUserPasswordHandler } from './handlers/set-password.handler.js';
import { GetFsInfoHandler } from './handlers/fs-info.handler.js';
import { Quiescer } from './quiesce/quiescer.js';
import { FileReadHandler } from './handlers/file-read.handler.js';
import { FileStatHandler } from './handlers/file-stat.handler.js';
import { FileListHandler } from './handlers/file-list.handler.js';
import { FileMkdirHandler } from './handlers/file-mkdir.handler.js';
import { FileDeleteHandler } from './handlers/file-delete.handler.js';
import { FileRenameHandler } from './handlers/file-rename.handler.js';
import { FileWriteHandler } from './handlers/file-write.handler.js';
import { GetInfoHandler } from './handlers/get-info.handler.js';
import { GetOsInfoHandler } from './handlers/os-info.handler.js';
import {
  FileCloseHandler,
  FileHandleReadHandler,
  FileOpenHandler,
} from './handlers/file-handles.handler.js';
import { FileHandleTable } from './files/file-handles.js';
import { HelperThreads } from './helper-threads.js';
import type { OperationHandler, RequestCase } from './handlers/handler.js';
import { PingHandler } from './handlers/ping.handler.js';
import { startingNow, type AgentStart } from './process-start.js';
import { ShutdownHandler } from './handlers/shutdown.handler.js';
import type { Logger } from './logger.js';
import { collectAgentInfo } from './telemetry/system-info.js';
import { UserResolver } from './exec/user-resolver.js';
import { UploadStore } from './files/upload-store.js';
import { FileLimitPolicies } from './files/file-limits.js';
import { AgentUpdateHandler } from './handlers/agent-update.handler.js';
import { BUILD_RELEASE_KEYS, BUILD_TARGET } from './build-info.js';
import { SelfUpdater, type UpdateHost } from './update/self-updater.js';
import {
  NetworkConfigureHandler,
  NetworkConfirmHandler,
  NetworkGetHandler,
} from './handlers/network.handler.js';
import { NetworkApplier } from './network/network-applier.js';
import { currentPlatform } from './platform/current-platform.js';
import type { GuestPlatform } from './platform/platform.js';
import { UnsupportedHandler } from './handlers/unsupported.handler.js';

export interface AssembledAgent {
  agent: Agent;
  /**
   * Kills running executions, thaws what this agent froze (a stopping agent never leaves
   * filesystems frozen), closes uploads and the channel.
   */
  stop(): Promise<void>;
}

/**
 * Builds an agent and thaws a freeze an earlier agent left behind (now, or when its deadline
 * comes). The caller starts it (agent.start(), then agent.announce()).
 */
export async function assembleAgent(
  config: AgentConfig,
  channel: HostChannel,
  log: Logger,
  updateHost: UpdateHost = sharedProcessHost(),
  platform: GuestPlatform = currentPlatform,
  start: AgentStart = startingNow(),
): Promise<AssembledAgent> {
  const startedAt = start.at;
  const updater = new SelfUpdater(config, updateHost, log);
  // OS facts for os.info, GetInfo and AgentReady, cached as the platform allows (Linux:
  // os-release read again only when it changes).
  const osInfo = platform.osInfo(config, log);
  const unsupported = platform.unsupported();
  const unserved = Object.keys(unsupported);
  const collectInfo = () =>
    collectAgentInfo(config, {
      agentVersion: updateHost.version,
      protocolVersion: PROTOCOL_VERSION,
      capabilities: servedPolicies(enabledOperations(config), unserved),
      limits: agentLimits(config),
      startedAt,
      osInfo,
      agentTarget: updateHost.target,
      lastUpdate: updater.lastUpdate(),
    });
  const telemetry = platform.telemetry(config, log);
  const users = new UserResolver(config);
  const runner = platform.execRunner(config, users, log);
  // One policy for every file operation, so the roots are resolved once.
  const paths = platform.pathPolicy(config);
  const fileLimits = new FileLimitPolicies(undefined, paths);
  const owners = platform.fileOwners(config, log);
  const uploads = new UploadStore(config.files, log, paths);
  const openFiles = new FileHandleTable(
    {
      maxOpen: config.files.max_open_handles,
      idleTimeoutMs: config.files.handle_idle_timeout_ms,
      readAhead: {
        bytes: config.files.read_ahead_bytes,
        maxAgeMs: config.files.read_ahead_max_age_ms,
      },
    },
    log,
  );

  const quiescer = new Quiescer(config, log);
  // An apply left unconfirmed by an earlier agent is rolled back before anything is served
  // (where the platform can apply at all).
  const network = new NetworkApplier(config, log);
  if (!unsupported.quiesce) {
    await quiescer.restore();
  }
  if (!unsupported.networkConfigure) {
    await network.restore();
  }

  // One handler per request case of the operation table: a table row without its handler here
  // does not compile.
  const handlers: { [C in RequestCase]: OperationHandler<C> } = {
    ping: new PingHandler(updateHost.version, start.perfMs),
    getInfo: new GetInfoHandler(collectInfo),
    execute: new ExecuteHandler(runner, config.exec.stream_bytes_per_second),
    cancelExecution: new CancelExecutionHandler(runner),
    fileRead: new FileReadHandler(config, paths, fileLimits),
    fileWrite: new FileWriteHandler(config, uploads, paths, fileLimits),
    shutdown: new ShutdownHandler(config, platform),
    quiesce: new QuiesceHandler(quiescer),
    thaw: new ThawHandler(quiescer),
    quiesceStatus: new QuiesceStatusHandler(quiescer),
    syncTime: new SyncTimeHandler(config, platform),
    setUserPassword: new SetUserPasswordHandler(config, users, platform),
    getFsInfo: new GetFsInfoHandler(config),
    fileStat: new FileStatHandler(paths, fileLimits, users, owners),
    agentUpdate: new AgentUpdateHandler(updater),
    fileList: new FileListHandler(config, paths, fileLimits, users, owners),
    fileMkdir: new FileMkdirHandler(paths, fileLimits),
    fileDelete: new FileDeleteHandler(paths, fileLimits),
    fileRename: new FileRenameHandler(paths, fileLimits),
    networkGet: new NetworkGetHandler(config, network),
    networkConfigure: new NetworkConfigureHandler(network),
    networkConfirm: new NetworkConfirmHandler(network),
    getOsInfo: new GetOsInfoHandler(osInfo),
    fileOpen: new FileOpenHandler(config, openFiles, paths, fileLimits),
    fileHandleRead: new FileHandleReadHandler(config, openFiles),
    fileClose: new FileCloseHandler(openFiles),
  };
  // What this OS cannot do yet answers UNSUPPORTED with the reason, instead of its Linux handler.
  for (const [requestCase, reason] of Object.entries(unsupported) as [RequestCase, string][]) {
    (handlers as Record<RequestCase, OperationHandler>)[requestCase] = new UnsupportedHandler(
      requestCase,
      reason,
    );
  }
  // The runtime's JIT compilers and heap housekeeping run below the agent's (and the guest's)
  // own work: lowered now, and any started later at each idle reclaim.
  const helperThreads = new HelperThreads(config.helper_thread_nice, log);
  helperThreads.apply();
  const agent = new Agent({
    config,
    channel,
    log,
    collectInfo,
    sampleTelemetry: () => telemetry.sample(),
    isFrozen: () => quiescer.frozen,
    readySent: () => updater.readySent(),
    unserved,
    handlers: Object.values(handlers) as OperationHandler[],
    reclaimable: [openFiles],
    whenIdle: () => helperThreads.apply(),
  });

  return {
    agent,
    async stop() {
      runner.killAll();
      quiescer.stop();
      network.stop();
      const thawed = quiescer.frozen ? quiescer.thaw('request').catch(() => undefined) : undefined;
      await Promise.allSettled([
        thawed,
        uploads.closeAll(),
        openFiles.closeAll(),
        updater.close(),
        agent.stop(),
      ]);
    },
  };
}

/** An agent that shares its process (sim-host, tests): it reports, but cannot replace itself. */
export function sharedProcessHost(): UpdateHost {
  return {
    version: AGENT_VERSION,
    target: BUILD_TARGET,
    executable: undefined,
    relaunch: [],
    watchdog: () => [],
    builtInKeys: BUILD_RELEASE_KEYS,
    exit: () => undefined,
  };
}
