/**
 * Writes the CRDs of pushgate's kinds, generated from the zod schemas in operator/api, to
 * crds/ and to the Helm chart (charts/pushgate/crds/), which hold identical files.
 *
 *   npm run gen:crds             write the files (and remove generated files of kinds that are gone)
 *   npm run gen:crds -- --check  write nothing; exit 1 naming every stale, missing or extra file
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GROUP } from '../operator/api/group.js';
import { renderCrdFiles } from '../operator/api/crd.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CRD_DIRS = ['crds', 'charts/pushgate/crds'];

/** A generated file of ours: `<plural>.pushgate.dev.yaml`. Other files in the folders are left alone. */
const isGeneratedName = (name: string) => name.endsWith(`.${GROUP}.yaml`);

export interface CrdDrift {
  file: string;
  problem: 'stale' | 'missing' | 'extra';
}

/** Compares what the generator would write with what is on disk, in every CRD folder. */
export function findCrdDrift(root = repoRoot, files = renderCrdFiles()): CrdDrift[] {
  const drift: CrdDrift[] = [];
  for (const dir of CRD_DIRS) {
    const abs = path.join(root, dir);
    for (const [name, text] of files) {
      const file = path.join(abs, name);
      if (!existsSync(file)) drift.push({ file: path.join(dir, name), problem: 'missing' });
      else if (readFileSync(file, 'utf8') !== text)
        drift.push({ file: path.join(dir, name), problem: 'stale' });
    }
    const present = existsSync(abs) ? readdirSync(abs).filter(isGeneratedName) : [];
    for (const name of present) {
      if (!files.has(name)) drift.push({ file: path.join(dir, name), problem: 'extra' });
    }
  }
  return drift;
}

function write(root = repoRoot, files = renderCrdFiles()): string[] {
  const written: string[] = [];
  for (const dir of CRD_DIRS) {
    const abs = path.join(root, dir);
    mkdirSync(abs, { recursive: true });
    for (const name of readdirSync(abs).filter(isGeneratedName)) {
      if (!files.has(name)) rmSync(path.join(abs, name));
    }
    for (const [name, text] of files) {
      writeFileSync(path.join(abs, name), text);
      written.push(path.join(dir, name));
    }
  }
  return written;
}

function main(argv: string[]) {
  if (argv.includes('--check')) {
    const drift = findCrdDrift();
    if (drift.length > 0) {
      console.error('gen-crds: the checked-in CRDs differ from what operator/api generates:');
      for (const d of drift) console.error(`  ${d.problem.padEnd(7)} ${d.file}`);
      console.error('Run `npm run gen:crds` and commit the result.');
      process.exit(1);
    }
    console.log(`gen-crds: ${CRD_DIRS.join(' and ')} are up to date`);
    return;
  }
  for (const file of write()) console.log(`wrote ${file}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  main(process.argv.slice(2));
