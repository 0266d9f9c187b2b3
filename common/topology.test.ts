import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { topologyOf, writeTopology, zoneFromFile } from './topology.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pg-topology-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('node topology', () => {
  it('reads the well-known labels; a missing one stays missing', () => {
    expect(
      topologyOf({
        'topology.kubernetes.io/zone': 'cn-east-1b',
        'topology.kubernetes.io/region': 'cn-east-1',
      }),
    ).toEqual({ zone: 'cn-east-1b', region: 'cn-east-1' });
    expect(topologyOf({ 'kubernetes.io/hostname': 'n1' })).toEqual({});
    expect(topologyOf(undefined)).toEqual({});
  });

  it('the gateway takes the written zone, and its --zone when there is none', () => {
    const out = path.join(dir, 'a');
    writeTopology(out, { zone: 'cn-east-1b', region: 'cn-east-1' });
    expect(readFileSync(path.join(out, 'region'), 'utf8')).toBe('cn-east-1\n');
    expect(zoneFromFile(path.join(out, 'zone'), 'local-a')).toBe('cn-east-1b');
    const none = path.join(dir, 'b');
    writeTopology(none, {});
    expect(zoneFromFile(path.join(none, 'zone'), 'local-a')).toBe('local-a');
    expect(zoneFromFile(undefined, 'local-a')).toBe('local-a');
  });
});
