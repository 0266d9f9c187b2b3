import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { BENCHES, type BenchName } from '../../hack/bench/benches.js';
import type { BenchResult } from '../../hack/bench/report.js';
import { repoRoot } from '../support/stack.js';

/**
 * Benchmarks that cannot rot: every `npm run bench:*` runs here in its quick mode, as a user
 * runs it (npm, its own process), and must print its table and write its JSON. The numbers
 * are not judged (that is what the full runs are for); that the benchmark still runs is.
 */
const out = mkdtempSync(path.join(os.tmpdir(), 'pushgate-bench-quick-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Extra flags a bench needs here: the operator bench uses the run's control plane instead of starting its own. */
const extra: Record<BenchName, string[]> = {
  gateway: [],
  operator: ['--kubeconfig', inject('kubeconfig'), '--redis-url', inject('redisUrl')],
  ratelimit: ['--redis-url', inject('redisUrl')],
  storage: ['--redis-url', inject('redisUrl')],
  scale: [],
  campaign: ['--redis-url', inject('redisUrl')],
};

function runBench(name: BenchName): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('npm', ['run', '--silent', `bench:${name}`, '--', '--quick', ...extra[name]], {
      cwd: repoRoot,
      env: { ...process.env, PUSHGATE_BENCH_OUT: out },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 170_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('benchmarks in quick mode', () => {
  it('package.json has a bench:<name> script for every benchmark with a quick mode, and no other', () => {
    const scripts = (
      JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    const inPackage = Object.keys(scripts)
      .filter((s) => s.startsWith('bench:'))
      .map((s) => s.slice('bench:'.length))
      .sort();
    expect(inPackage).toEqual(Object.keys(BENCHES).sort());
  });

  it.each(Object.keys(BENCHES) as BenchName[])(
    'npm run bench:%s -- --quick prints its table and writes its JSON',
    async (name) => {
      const r = await runBench(name);
      expect(r.code, `exit code; stderr:\n${r.stderr.slice(-3000)}`).toBe(0);
      expect(r.stdout).toMatch(/^metric\s+value\s+unit/m);
      const file = path.join(out, `${name}-latest.json`);
      const result = JSON.parse(readFileSync(file, 'utf8')) as BenchResult;
      expect(result.bench).toBe(name);
      expect(result.rows.length).toBeGreaterThan(0);
      for (const row of result.rows) expect(Number.isFinite(row.value), row.metric).toBe(true);
      expect(r.stdout).toContain(`wrote ${path.join(out, name)}`);
    },
    180_000,
  );
});
