import * as k8s from '@kubernetes/client-node';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  NODE_TUNED_LABEL,
  NODE_TUNING_ANNOTATION,
  type TuningReport,
} from '../../workloads/node-tuner/policy.js';
import { eventually, testKubeConfig } from '../support/k8s.js';
import { repoRoot } from '../support/stack.js';

const run = promisify(execFile);
// node with tsx's loader, one process (the tsx wrapper would not pass SIGKILL on to the program).
const program = [process.execPath, '--import', 'tsx'];
const cli = path.join(repoRoot, 'cli/pushgate.ts');

/**
 * The real node-tuner program, run by `ip netns exec` inside a network namespace this test
 * creates: net.* sysctls are per network namespace, so the kernel's own /proc/sys is written
 * for real while the host's values stay as they were. The report lands on a real kwok Node of
 * the shared control plane.
 *
 * A new network namespace has only a loopback device, so it cannot reach the API server on the
 * host's 127.0.0.1. The test relays the API server's port into the namespace through a Unix
 * socket (filesystem sockets are not bound to a network namespace): the tuner dials the same
 * https://127.0.0.1:<port> its kubeconfig names, and TLS is end to end.
 */
describe('pushgate node-tuner in a network namespace', () => {
  const kubeconfigPath = inject('kubeconfig');
  const kc = testKubeConfig(kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const netns = `pgtest-${Math.random().toString(36).slice(2, 8)}`;
  let workDir: string;
  let hostRelay: net.Server;
  let nsRelay: ChildProcess;
  let nodeName: string;
  const children: ChildProcess[] = [];

  const inNs = (...args: string[]) => run('ip', ['netns', 'exec', netns, ...args]);
  const readNs = async (key: string) =>
    (await inNs('cat', `/proc/sys/${key.replaceAll('.', '/')}`)).stdout.trim().split(/\s+/).join(' ');
  const readHost = async (key: string) =>
    (await readFile(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8')).trim().split(/\s+/).join(' ');
  const tunerArgs = (...flags: string[]) => ['netns', 'exec', netns, ...program, cli, 'node-tuner', ...flags];
  const tunerEnv = () => ({
    ...process.env,
    NODE_NAME: nodeName,
    KUBECONFIG: kubeconfigPath,
    PUSHGATE_LOG_LEVEL: 'info',
  });
  const nodeReport = async () => {
    const node = await core.readNode({ name: nodeName });
    const raw = node.metadata?.annotations?.[NODE_TUNING_ANNOTATION];
    return {
      label: node.metadata?.labels?.[NODE_TUNED_LABEL],
      report: raw ? (JSON.parse(raw) as TuningReport) : undefined,
    };
  };
  const nofileOf = async (pid: number) => {
    const row = (await readFile(`/proc/${pid}/limits`, 'utf8'))
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    return row!.split(/\s+/).slice(3, 5).join(':');
  };

  beforeAll(async () => {
    try {
      await run('ip', ['netns', 'add', netns]);
    } catch (err) {
      throw new Error(
        `this test needs to create a network namespace (ip netns add, as root with CAP_SYS_ADMIN) and could not: ${(err as { stderr?: string }).stderr ?? String(err)}`,
      );
    }
    await inNs('ip', 'link', 'set', 'lo', 'up');
    workDir = await mkdtemp(path.join(os.tmpdir(), 'pgtest-tuner-'));

    const server = new URL(kc.getCurrentCluster()!.server);
    const socket = path.join(workDir, 'apiserver.sock');
    hostRelay = net.createServer((c) => {
      const upstream = net.connect(Number(server.port), server.hostname);
      c.pipe(upstream).pipe(c);
      c.on('error', () => upstream.destroy());
      upstream.on('error', () => c.destroy());
    });
    await new Promise<void>((resolve) => hostRelay.listen(socket, resolve));
    const relayScript = `const net=require('net');const [port,sock]=process.argv.slice(1);
net.createServer(c=>{const u=net.connect(sock);c.pipe(u).pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());})
.listen(+port,'127.0.0.1',()=>console.log('ready'));`;
    nsRelay = spawn(
      'ip',
      ['netns', 'exec', netns, process.execPath, '-e', relayScript, server.port, socket],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((resolve, reject) => {
      nsRelay.stdout!.once('data', () => resolve());
      nsRelay.once('exit', (code) => reject(new Error(`relay in ${netns} exited ${code}`)));
    });

    const nodes = (await core.listNode()).items.map((n) => n.metadata!.name!).sort();
    nodeName = nodes.find((n) => n.startsWith('kwok-cn-south-1'))!;
    expect(nodeName).toBeDefined();
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    nsRelay?.kill('SIGKILL');
    hostRelay?.close();
    await run('ip', ['netns', 'del', netns]).catch(() => undefined);
    if (workDir) await rm(workDir, { recursive: true, force: true });
    if (nodeName) {
      // Leave the shared Node as other test files expect it: without our label and annotation.
      await core
        .patchNode(
          {
            name: nodeName,
            body: {
              metadata: {
                labels: { [NODE_TUNED_LABEL]: null },
                annotations: { [NODE_TUNING_ANNOTATION]: null },
              },
            },
          },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        )
        .catch(() => undefined);
    }
  });

  it('--once applies the defaults in the namespace only, verifies them, and reports on the Node', async () => {
    const keys = [
      'net.core.somaxconn',
      'net.ipv4.tcp_max_syn_backlog',
      'net.ipv4.ip_local_port_range',
      'net.ipv4.tcp_tw_reuse',
    ];
    const hostBefore = Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await readHost(k)])));
    const nsBefore = Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await readNs(k)])));
    // The namespace starts at kernel defaults, which differ from what the tuner wants.
    expect(nsBefore['net.core.somaxconn']).not.toBe('65535');
    expect(nsBefore['net.ipv4.ip_local_port_range']).not.toBe('1024 65535');
    const startedAt = Date.now();

    await run('ip', tunerArgs('--once', '--scope', 'network-namespace'), { env: tunerEnv(), cwd: repoRoot });

    expect(await readNs('net.core.somaxconn')).toBe('65535');
    expect(await readNs('net.ipv4.tcp_max_syn_backlog')).toBe('65535');
    expect(await readNs('net.ipv4.ip_local_port_range')).toBe('1024 65535');
    expect(await readNs('net.ipv4.tcp_tw_reuse')).toBe('1');
    for (const k of keys) expect(await readHost(k)).toBe(hostBefore[k]);

    const { label, report } = await nodeReport();
    expect(label).toBe('true');
    expect(report!.scope).toBe('network-namespace');
    expect(report!.applied).toEqual({
      'net.core.somaxconn': '65535',
      'net.ipv4.tcp_max_syn_backlog': '65535',
      'net.ipv4.ip_local_port_range': '1024 65535',
      'net.ipv4.tcp_tw_reuse': '1',
    });
    // netdev_max_backlog exists only in the initial network namespace.
    expect(report!.missing).toEqual(['net.core.netdev_max_backlog']);
    expect(report!.failed).toEqual({});
    expect(Date.parse(report!.verifiedAt)).toBeGreaterThanOrEqual(startedAt - 1000);
  });

  it('in a loop, re-applies a sysctl and a file limit changed back by hand, and reports the drift', async () => {
    // A process of our own to raise the open-file limit of (in a DaemonSet: the container runtime).
    const procName = `pgsleep${Math.random().toString(36).slice(2, 7)}`;
    const binary = path.join(workDir, procName);
    await copyFile('/bin/sleep', binary);
    await run('chmod', ['+x', binary]);
    // Only the soft limit starts low: raising a hard limit needs CAP_SYS_RESOURCE, which this
    // sandbox does not grant even to root (a DaemonSet would run privileged). Raising the soft
    // limit up to the hard one is the same prlimit call and the same /proc/<pid>/limits check.
    const target = spawn('prlimit', ['--nofile=256:8192', binary, '300'], { stdio: 'ignore' });
    children.push(target);
    const pid = await eventually(
      async () => {
        const found = (await run('pgrep', ['-x', procName]).catch(() => ({ stdout: '' }))).stdout.trim();
        return found ? Number(found) : undefined;
      },
      { what: `${procName} to start`, timeoutMs: 10_000 },
    );
    expect(await nofileOf(pid)).toBe('256:8192');

    const tuner = spawn(
      'ip',
      tunerArgs(
        '--scope',
        'network-namespace',
        '--sysctls',
        'net.ipv4.tcp_fin_timeout=17',
        '--nofile',
        '4096',
        '--nofile-targets',
        procName,
        '--interval-seconds',
        '1',
      ),
      { env: tunerEnv(), cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(tuner);
    let logs = '';
    tuner.stdout!.on('data', (d: Buffer) => (logs += d.toString()));

    // One pass writes the sysctls, then the limits.
    await eventually(
      async () =>
        (await readNs('net.ipv4.tcp_fin_timeout')) === '17' && (await nofileOf(pid)) === '4096:8192',
      { what: 'tcp_fin_timeout applied in the namespace and the open-file limit raised', timeoutMs: 30_000 },
    );
    await eventually(async () => (await nodeReport()).report?.applied['net.ipv4.tcp_fin_timeout'] === '17', {
      what: 'the loop to report on the Node',
      timeoutMs: 30_000,
    });

    // Drift: someone sets both back by hand.
    await inNs(
      'sh',
      '-c',
      'echo 128 > /proc/sys/net/core/somaxconn; echo 60 > /proc/sys/net/ipv4/tcp_fin_timeout',
    );
    await run('prlimit', ['--pid', String(pid), '--nofile=256:8192']);
    expect(await readNs('net.core.somaxconn')).toBe('128');

    await eventually(
      async () =>
        (await readNs('net.core.somaxconn')) === '65535' &&
        (await readNs('net.ipv4.tcp_fin_timeout')) === '17' &&
        (await nofileOf(pid)) === '4096:8192',
      { what: 'the drift to be re-applied', timeoutMs: 30_000 },
    );
    const { label, report } = await eventually(
      async () => {
        const r = await nodeReport();
        return (r.report?.driftCorrections ?? 0) >= 3 ? r : undefined;
      },
      { what: 'the drift corrections to be reported', timeoutMs: 30_000 },
    );
    expect(label).toBe('true');
    expect(report!.limits).toEqual({ [`nofile:${procName}(${pid})`]: '4096:8192' });
    expect(logs).toContain('drift corrected');

    tuner.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => tuner.once('exit', resolve));
    expect(code).toBe(0);
  });

  it('--once fails, and labels the Node not tuned, when a sysctl it was given does not exist here', async () => {
    // net.core.netdev_max_backlog lives only in the initial network namespace.
    const result = await run(
      'ip',
      tunerArgs('--once', '--scope', 'network-namespace', '--sysctls', 'net.core.netdev_max_backlog=1000'),
      { env: tunerEnv(), cwd: repoRoot },
    ).then(
      () => ({ code: 0, stdout: '' }),
      (err: { code: number; stdout: string }) => err,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('not applied: net.core.netdev_max_backlog');
    const { label, report } = await nodeReport();
    expect(label).toBe('false');
    expect(report!.failed).toEqual({
      'net.core.netdev_max_backlog': 'no such sysctl in this kernel or namespace',
    });
  });
});
