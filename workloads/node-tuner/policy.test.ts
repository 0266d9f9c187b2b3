import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.js';
import { applySysctl } from './apply.js';
import {
  buildReport,
  desiredSysctls,
  isTuned,
  nodeReportPatch,
  parseNofileLimits,
  parseSysctlOverride,
  satisfies,
  shouldReport,
  sysctlPathParts,
  type DesiredSysctl,
  type TuningReport,
} from './policy.js';
import { NodeTuner } from './tuner.js';

describe('parseSysctlOverride', () => {
  it.each([
    ['net.core.somaxconn=4096', { key: 'net.core.somaxconn', value: '4096', mode: 'exact' }],
    ['net.core.somaxconn>=4096', { key: 'net.core.somaxconn', value: '4096', mode: 'atLeast' }],
    [
      'net.ipv4.ip_local_port_range=1024   65535',
      { key: 'net.ipv4.ip_local_port_range', value: '1024 65535', mode: 'exact' },
    ],
    [' fs.file-max >= 100 ', { key: 'fs.file-max', value: '100', mode: 'atLeast' }],
    [
      'net/ipv4/conf/eth0.100/rp_filter=2',
      { key: 'net/ipv4/conf/eth0.100/rp_filter', value: '2', mode: 'exact' },
    ],
  ])('%s', (text, want) => {
    expect(parseSysctlOverride(text)).toEqual(want);
  });

  it.each([
    ['somaxconn', /key=value/],
    ['net/../../etc/passwd=1', /not a sysctl name/],
    ['net..core=1', /not a sysctl name/],
    ['net/../../etc=1', /not a sysctl name/],
    ['net/./core=1', /not a sysctl name/],
    ['net.core.somaxconn=', /empty/],
    ['net.core.somaxconn>=lots', /whole number/],
  ])('rejects %s', (text, error) => {
    expect(() => parseSysctlOverride(text)).toThrow(error);
  });
});

describe('desiredSysctls', () => {
  const keys = (list: DesiredSysctl[]) => list.map((d) => d.key);

  it('brings the gateway-node defaults on the host', () => {
    const list = desiredSysctls({ useDefaults: true, overrides: [], skip: [], scope: 'host' });
    expect(keys(list)).toEqual([
      'net.core.somaxconn',
      'net.ipv4.tcp_max_syn_backlog',
      'net.ipv4.ip_local_port_range',
      'net.ipv4.tcp_tw_reuse',
      'net.core.netdev_max_backlog',
      'fs.file-max',
      'fs.nr_open',
    ]);
    expect(list.every((d) => d.isDefault)).toBe(true);
  });

  it('lets an override replace a default, and skip drop one', () => {
    const list = desiredSysctls({
      useDefaults: true,
      overrides: ['net.core.somaxconn=1024', 'net.ipv4.tcp_fin_timeout=15'],
      skip: ['fs.nr_open'],
      scope: 'host',
    });
    expect(list.find((d) => d.key === 'net.core.somaxconn')).toEqual({
      key: 'net.core.somaxconn',
      value: '1024',
      mode: 'exact',
      isDefault: false,
    });
    expect(keys(list)).toContain('net.ipv4.tcp_fin_timeout');
    expect(keys(list)).not.toContain('fs.nr_open');
  });

  it('keeps only net.* in a network namespace', () => {
    const list = desiredSysctls({ useDefaults: true, overrides: [], skip: [], scope: 'network-namespace' });
    expect(keys(list).every((k) => k.startsWith('net.'))).toBe(true);
    expect(keys(list)).not.toContain('fs.file-max');
  });

  it('refuses a global sysctl asked for by name in a network namespace', () => {
    expect(() =>
      desiredSysctls({
        useDefaults: false,
        overrides: ['fs.file-max=1'],
        skip: [],
        scope: 'network-namespace',
      }),
    ).toThrow(/fs.file-max are global/);
  });

  it('works without defaults', () => {
    expect(
      keys(desiredSysctls({ useDefaults: false, overrides: ['vm.swappiness=1'], skip: [], scope: 'host' })),
    ).toEqual(['vm.swappiness']);
  });
});

describe('sysctlPathParts', () => {
  it.each([
    ['net.core.somaxconn', ['net', 'core', 'somaxconn']],
    ['net/ipv4/conf/eth0.100/rp_filter', ['net', 'ipv4', 'conf', 'eth0.100', 'rp_filter']],
  ])('%s', (key, parts) => expect(sysctlPathParts(key)).toEqual(parts));
});

describe('satisfies', () => {
  it.each([
    [{ value: '65535', mode: 'atLeast' }, '65535', true],
    [{ value: '65535', mode: 'atLeast' }, '131072', true],
    [{ value: '65535', mode: 'atLeast' }, '4096', false],
    [{ value: '65535', mode: 'atLeast' }, 'garbage', false],
    [{ value: '1', mode: 'exact' }, '2', false],
    [{ value: '1', mode: 'exact' }, '1\n', true],
    [{ value: '1024 65535', mode: 'exact' }, '1024\t65535\n', true],
    [{ value: '1024 65535', mode: 'exact' }, '32768\t60999\n', false],
    [{ value: '9223372036854775807', mode: 'atLeast' }, '9223372036854775807', true],
  ] as const)('%j vs %j → %s', (want, current, ok) => {
    expect(satisfies(want, current)).toBe(ok);
  });
});

describe('buildReport and the Node patch', () => {
  const desired: DesiredSysctl[] = [
    { key: 'net.core.somaxconn', value: '65535', mode: 'atLeast', isDefault: true },
    { key: 'net.core.netdev_max_backlog', value: '16384', mode: 'atLeast', isDefault: true },
    { key: 'net.ipv4.tcp_fin_timeout', value: '15', mode: 'exact', isDefault: false },
    { key: 'net.ipv4.tcp_tw_reuse', value: '1', mode: 'exact', isDefault: false },
  ];
  const now = new Date('2026-01-01T00:00:00Z');

  it('is tuned when only a default is missing', () => {
    const report = buildReport(
      'network-namespace',
      desired.slice(0, 2),
      [
        { key: 'net.core.somaxconn', state: 'applied', value: '65535', previous: '4096' },
        { key: 'net.core.netdev_max_backlog', state: 'missing' },
      ],
      [],
      0,
      now,
    );
    expect(report).toEqual({
      scope: 'network-namespace',
      applied: { 'net.core.somaxconn': '65535' },
      failed: {},
      missing: ['net.core.netdev_max_backlog'],
      limits: {},
      driftCorrections: 0,
      verifiedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(nodeReportPatch(report).metadata.labels).toEqual({ 'pushgate.dev/node-tuned': 'true' });
    expect(JSON.parse(nodeReportPatch(report).metadata.annotations['pushgate.dev/node-tuning']!)).toEqual(
      report,
    );
  });

  it('notes a limit target with no process running (no gateway here yet) without failing', () => {
    const report = buildReport('host', [], [], [{ target: 'nofile:node', state: 'missing' }], 0, now);
    expect(report.missing).toEqual(['nofile:node']);
    expect(isTuned(report)).toBe(true);
  });

  it('is not tuned when a sysctl asked for is missing, fails, or a limit fails', () => {
    const report = buildReport(
      'host',
      desired,
      [
        { key: 'net.ipv4.tcp_fin_timeout', state: 'missing' },
        { key: 'net.ipv4.tcp_tw_reuse', state: 'failed', reason: 'write 1: EACCES' },
      ],
      [
        { target: 'nofile:containerd(12)', state: 'ok', soft: 1048576, hard: 1048576 },
        { target: 'nofile:dockerd(7)', state: 'failed', reason: 'Operation not permitted' },
      ],
      3,
      now,
    );
    expect(report.failed).toEqual({
      'net.ipv4.tcp_fin_timeout': 'no such sysctl in this kernel or namespace',
      'net.ipv4.tcp_tw_reuse': 'write 1: EACCES',
      'nofile:dockerd(7)': 'Operation not permitted',
    });
    expect(report.limits).toEqual({ 'nofile:containerd(12)': '1048576:1048576' });
    expect(isTuned(report)).toBe(false);
    expect(nodeReportPatch(report).metadata.labels['pushgate.dev/node-tuned']).toBe('false');
  });
});

describe('shouldReport', () => {
  const base: TuningReport = {
    scope: 'host',
    applied: { a: '1' },
    failed: {},
    missing: [],
    limits: {},
    driftCorrections: 0,
    verifiedAt: '2026-01-01T00:00:00.000Z',
  };
  const at = (seconds: number, patch: Partial<TuningReport> = {}) => ({
    ...base,
    ...patch,
    verifiedAt: new Date(Date.parse(base.verifiedAt) + seconds * 1000).toISOString(),
  });
  it.each([
    ['first pass', undefined, base, true],
    ['nothing changed, fresh', base, at(60), false],
    ['nothing changed, stale', base, at(600), true],
    ['a drift was corrected', base, at(60, { driftCorrections: 1 }), true],
    ['a value changed', base, at(60, { applied: { a: '2' } }), true],
    ['something failed', base, at(60, { failed: { b: 'x' } }), true],
  ])('%s', (_name, previous, next, want) => {
    expect(shouldReport(previous, next, 600_000)).toBe(want);
  });
});

describe('parseNofileLimits', () => {
  const limits = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    'Max open files            1024                 524288               files     ',
  ].join('\n');
  it('reads soft and hard', () => expect(parseNofileLimits(limits)).toEqual({ soft: 1024, hard: 524288 }));
  it('reads unlimited', () =>
    expect(parseNofileLimits('Max open files  unlimited unlimited files')).toEqual({
      soft: Infinity,
      hard: Infinity,
    }));
  it('returns undefined without the row', () => expect(parseNofileLimits('nothing')).toBeUndefined());
});

// applySysctl and NodeTuner against a directory laid out like /proc/sys: the same file reads
// and writes the real /proc/sys gets, without root. The real kernel is exercised by
// test/integration/node-tuner.test.ts inside a network namespace.
describe('applySysctl and NodeTuner on a directory tree', () => {
  let root: string;
  afterEach(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });
  async function makeRoot(values: Record<string, string>) {
    root = await mkdtemp(path.join(os.tmpdir(), 'pg-sysctl-'));
    for (const [key, value] of Object.entries(values)) {
      const file = path.join(root, ...key.split('.'));
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, value);
    }
    return root;
  }
  const read = (key: string) => readFile(path.join(root, ...key.split('.')), 'utf8');

  it('writes only what does not satisfy, and reports each outcome', async () => {
    await makeRoot({ 'net.core.somaxconn': '4096\n', 'net.ipv4.tcp_tw_reuse': '1\n' });
    expect(
      await applySysctl(root, {
        key: 'net.core.somaxconn',
        value: '65535',
        mode: 'atLeast',
        isDefault: true,
      }),
    ).toEqual({ key: 'net.core.somaxconn', state: 'applied', value: '65535', previous: '4096' });
    expect(await read('net.core.somaxconn')).toBe('65535\n');
    expect(
      await applySysctl(root, { key: 'net.ipv4.tcp_tw_reuse', value: '1', mode: 'exact', isDefault: true }),
    ).toEqual({
      key: 'net.ipv4.tcp_tw_reuse',
      state: 'ok',
      value: '1',
    });
    expect(
      await applySysctl(root, { key: 'net.core.nope', value: '1', mode: 'exact', isDefault: true }),
    ).toEqual({
      key: 'net.core.nope',
      state: 'missing',
    });
  });

  it('counts drift corrected after the first pass', async () => {
    await makeRoot({ 'net.core.somaxconn': '128\n' });
    const tuner = new NodeTuner({
      scope: 'host',
      sysctlRoot: root,
      procRoot: '/proc',
      sysctls: [{ key: 'net.core.somaxconn', value: '1024', mode: 'atLeast', isDefault: false }],
      limits: [],
      reportRefreshMs: 600_000,
      log: silentLogger,
    });
    expect((await tuner.pass()).driftCorrections).toBe(0);
    expect(await read('net.core.somaxconn')).toBe('1024\n');
    expect((await tuner.pass()).driftCorrections).toBe(0);
    await writeFile(path.join(root, 'net/core/somaxconn'), '256\n');
    const report = await tuner.pass();
    expect(report.driftCorrections).toBe(1);
    expect(report.applied).toEqual({ 'net.core.somaxconn': '1024' });
    expect(await read('net.core.somaxconn')).toBe('1024\n');
  });
});
