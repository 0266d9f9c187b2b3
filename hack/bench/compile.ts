import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { progress } from './report.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A compiled copy of the programs: what the image runs (`node dist/cli/pushgate.js`). */
export interface Shipped {
  /** The compiled CLI (`node <cli> gateway ...`). */
  cli: string;
  remove(): void;
}

/**
 * Compiles the programs as `npm run build` does, into a fresh folder under `.bench/` (inside the
 * repo, so the compiled files resolve node_modules), for benchmarks that measure a process as it
 * ships: TypeScript under tsx carries the loader and its transform caches (tens of MiB of RSS).
 */
export function compileShipped(root = repoRoot): Shipped {
  mkdirSync(path.join(root, '.bench'), { recursive: true });
  const outDir = mkdtempSync(path.join(root, '.bench', 'build-'));
  progress(`compiling to ${outDir}`);
  execFileSync(
    process.execPath,
    [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir],
    { cwd: root, stdio: 'inherit' },
  );
  return {
    cli: path.join(outDir, 'cli/pushgate.js'),
    remove: () => rmSync(outDir, { recursive: true, force: true }),
  };
}
