import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  ExecuteRequestSchema,
  PingRequestSchema,
  ShutdownMode,
  ShutdownRequestSchema,
} from '@lq/proto';
import { AgentClient } from '@lq/host';
import { startSimVms, type SimVms } from './sim-vms.js';

const clients: AgentClient[] = [];

async function connect(path: string): Promise<AgentClient> {
  const client = new AgentClient({ path, hostId: 'sim-test' });
  clients.push(client);
  client.start();
  await client.waitReady(5000);
  return client;
}

async function ping(path: string): Promise<void> {
  const client = await connect(path);
  try {
    await client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
  } finally {
    client.close();
  }
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) {
    return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startSimVms', () => {
  let dir: string;
  let sim: SimVms;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-sim-'));
    sim = await startSimVms({
      dir,
      count: 3,
      config: ({ index }) => (index === 3 ? { telemetry_interval_ms: 0 } : undefined),
    });
  });

  afterAll(async () => {
    clients.forEach((c) => c.close());
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('should serve one answering agent per VM when started with count 3', async () => {
    expect(sim.vms.map((vm) => vm.id)).toEqual(['vm-1', 'vm-2', 'vm-3']);
    for (const vm of sim.vms) {
      expect(vm.socketPath).toBe(join(dir, `${vm.id}.sock`));
      expect(vm.workDir).toBe(join(dir, '.sim', vm.id));
      expect(alive(vm.pid)).toBe(true);
    }
    await Promise.all(sim.vms.map((vm) => ping(vm.socketPath)));
  });

  it('should write a confined config with a shutdown recorder when a VM is prepared', async () => {
    const vm = sim.vms[0]!;
    const config = JSON.parse(readFileSync(vm.configPath, 'utf8'));
    expect(config.log_level).toBe('warn');
    expect(config.files.roots).toEqual([vm.workDir, '/tmp']);
    expect(config.commands.poweroff[0]).toBe(join(vm.workDir, 'record-shutdown.sh'));
    expect(config.telemetry_interval_ms).toBeUndefined();
    const third = JSON.parse(readFileSync(sim.vms[2]!.configPath, 'utf8'));
    expect(third.telemetry_interval_ms).toBe(0);
    expect(third.files.roots).toEqual([sim.vms[2]!.workDir, '/tmp']);

    const client = await connect(vm.socketPath);
    const res = await client.call(
      { case: 'shutdown', value: create(ShutdownRequestSchema, { mode: ShutdownMode.REBOOT }) },
      'shutdownResponse',
    );
    expect(res.mode).toBe(ShutdownMode.REBOOT);
    for (let i = 0; i < 100 && sim.shutdownCalls(vm.id).length === 0; i++) {
      await sleep(20);
    }
    expect(sim.shutdownCalls(vm.id)).toEqual(['reboot']);
    client.close();
    // Only recorded: the agent (the "VM") is still up.
    await ping(vm.socketPath);
  });

  it('should serve the same socket again when one VM is killed and restarted', async () => {
    const vm = sim.vms[1]!;
    const oldPid = vm.pid;
    await sim.kill(vm.id, 'SIGKILL');
    expect(alive(oldPid)).toBe(false);
    expect(sim.isRunning(vm.id)).toBe(false);
    await expect(ping(vm.socketPath)).rejects.toThrow(/not ready|disconnected/);
    await ping(sim.vms[0]!.socketPath);

    const restarted = await sim.restart(vm.id);
    expect(restarted.id).toBe(vm.id);
    expect(vm.pid).not.toBe(oldPid);
    expect(alive(vm.pid)).toBe(true);
    await ping(vm.socketPath);
  });

  it('should remove the socket when a VM is stopped with SIGTERM', async () => {
    const vm = sim.vms[2]!;
    await sim.kill(vm.id);
    expect(existsSync(vm.socketPath)).toBe(false);
    await sim.restart(vm.id);
    await ping(vm.socketPath);
  });

  it('should reject an unknown VM id when kill or restart is asked for', async () => {
    await expect(sim.kill('vm-9')).rejects.toThrow(/no simulated VM "vm-9"/);
    await expect(sim.restart('nope')).rejects.toThrow(/no simulated VM/);
  });
});

describe('startSimVms options', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-sim-opt-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('should refuse with a clear error when count, prefix or dir is invalid', async () => {
    await expect(startSimVms({ dir, count: 0 })).rejects.toThrow(/count must be an integer/);
    await expect(startSimVms({ dir, count: 2001 })).rejects.toThrow(/1 to 2000/);
    await expect(startSimVms({ dir, count: 1.5 })).rejects.toThrow(/count/);
    await expect(startSimVms({ dir, count: 1, prefix: 'a/b' })).rejects.toThrow(/prefix/);
    await expect(startSimVms({ dir: '', count: 1 })).rejects.toThrow(/dir is required/);
    await expect(startSimVms({ dir: join(dir, 'x'.repeat(120)), count: 1 })).rejects.toThrow(
      /Unix socket limit/,
    );
  });

  it("should fail with the agent's message and leave no process when the config is rejected", async () => {
    const events: string[] = [];
    await expect(
      startSimVms({
        dir,
        count: 2,
        prefix: 'bad-',
        config: { no_such_setting: 1 },
        onEvent: (e) => events.push(e.type),
      }),
    ).rejects.toThrow(/unknown setting no_such_setting/);
    expect(events).toContain('exited');
    expect(existsSync(join(dir, 'bad-1.sock'))).toBe(false);
  });

  it('should start an agent again when it dies on its own and restartOnExit is set', async () => {
    let restarted: () => void = () => undefined;
    const restartedOnce = new Promise<void>((resolve) => {
      restarted = resolve;
    });
    const sim = await startSimVms({
      dir,
      count: 1,
      prefix: 'auto-',
      restartOnExit: true,
      onEvent: (e) => {
        if (e.type === 'started' && e.restarted) {
          restarted();
        }
      },
    });
    try {
      const vm = sim.vms[0]!;
      const oldPid = vm.pid!;
      process.kill(oldPid, 'SIGKILL');
      await restartedOnce;
      expect(vm.pid).not.toBe(oldPid);
      await ping(vm.socketPath);
    } finally {
      await sim.stop();
    }
    expect(existsSync(join(dir, 'auto-1.sock'))).toBe(false);
  });
});

describe('startSimVms with agents sharing processes', () => {
  let dir: string;
  let sim: SimVms;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-sim-host-'));
    sim = await startSimVms({
      dir,
      count: 5,
      agentsPerProcess: 2,
      config: (vm) => ({
        telemetry_interval_ms: 0,
        // Each VM keeps its own config: the third refuses executions.
        ...(vm.index === 3 ? { policy: { blocked_operations: ['execute'] } } : {}),
      }),
    });
  });

  afterAll(async () => {
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('should serve every VM on its own socket from ceil(count / agentsPerProcess) processes', async () => {
    const pids = new Set(sim.vms.map((v) => v.pid));
    expect(pids.size).toBe(3);
    expect(sim.vms[0]!.pid).toBe(sim.vms[1]!.pid);
    expect(sim.vms[4]!.pid).not.toBe(sim.vms[3]!.pid);
    await Promise.all(sim.vms.map((v) => ping(v.socketPath)));
    expect(sim.vms.every((v) => sim.isRunning(v.id))).toBe(true);
  });

  it("should apply each VM's own config", async () => {
    const exec = async (path: string) => {
      const client = await connect(path);
      try {
        return await client.call(
          { case: 'execute', value: create(ExecuteRequestSchema, { argv: ['/bin/echo', path] }) },
          'executeResponse',
        );
      } finally {
        client.close();
      }
    };
    const out = await exec(sim.vms[3]!.socketPath);
    expect(Buffer.from(out.stdout).toString()).toBe(`${sim.vms[3]!.socketPath}\n`);
    await expect(exec(sim.vms[2]!.socketPath)).rejects.toThrow(/blocked/);
  });

  it('should refuse to kill or restart one VM of a shared process', async () => {
    await expect(sim.kill('vm-1')).rejects.toThrow(/shares a process/);
    await expect(sim.restart('vm-2')).rejects.toThrow(/shares a process/);
    await expect(sim.kill('vm-9')).rejects.toThrow(/no simulated VM "vm-9"/);
    await ping(sim.vms[0]!.socketPath);
  });

  it('should refuse restartOnExit and a bad agentsPerProcess with a clear error', async () => {
    await expect(
      startSimVms({ dir, count: 2, agentsPerProcess: 2, restartOnExit: true }),
    ).rejects.toThrow(/restartOnExit needs agentsPerProcess 1/);
    await expect(startSimVms({ dir, count: 2, agentsPerProcess: 0 })).rejects.toThrow(
      /agentsPerProcess must be an integer from 1 to 2000/,
    );
  });

  it('should stop every process and remove every socket', async () => {
    const pids = [...new Set(sim.vms.map((v) => v.pid))];
    await sim.stop();
    for (const vm of sim.vms) {
      expect(existsSync(vm.socketPath)).toBe(false);
      expect(sim.isRunning(vm.id)).toBe(false);
    }
    for (const pid of pids) {
      expect(alive(pid)).toBe(false);
    }
  });
});

describe('startSimVms with a shared process whose agent config is rejected', () => {
  it("should fail naming the VM and the agent's message, leaving no process", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lq-sim-host-bad-'));
    try {
      await expect(
        startSimVms({
          dir,
          count: 3,
          agentsPerProcess: 3,
          config: (vm) => (vm.index === 2 ? { no_such_setting: 1 } : undefined),
        }),
      ).rejects.toThrow(/agent vm-2 did not start: .*unknown setting no_such_setting/);
      for (const i of [1, 2, 3]) {
        expect(existsSync(join(dir, `vm-${i}.sock`))).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
