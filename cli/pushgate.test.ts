import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { commands, loadAllCommands } from './commands.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsx = path.join(root, 'node_modules/.bin/tsx');

/** Runs the real CLI entry point as a child process; resolves with exit code and output. */
async function pushgate(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(tsx, [path.join(root, 'cli/pushgate.ts'), ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

// Each case spawns the real CLI through tsx (a TypeScript compile per process): seconds each on a
// busy two-core machine, so the cases get a budget for spawning, not the unit default.
const SPAWN_BUDGET_MS = 120_000;

describe('pushgate CLI', { timeout: SPAWN_BUDGET_MS }, () => {
  it('names each command as the command names itself', async () => {
    expect((await loadAllCommands()).map((c) => c.name)).toEqual([...commands.keys()]);
  });

  it('lists every command in its usage', async () => {
    const { code, stdout } = await pushgate(['--help']);
    expect(code).toBe(0);
    for (const c of await loadAllCommands()) expect(stdout).toContain(`  ${c.name}`);
  });

  it('has --help for every command', async () => {
    for (const c of await loadAllCommands()) {
      const { code, stdout } = await pushgate([c.name, '--help']);
      expect(code, c.name).toBe(0);
      expect(stdout).toContain(`Usage: pushgate ${c.name}`);
    }
  });

  it('stops on an unknown command or a bad flag with one line naming it', async () => {
    const unknown = await pushgate(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");

    const badFlag = await pushgate(['version', '--bogus']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr.trim()).toBe('pushgate version: unknown flag --bogus (see --help)');
  });
});
