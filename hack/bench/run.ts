/**
 * `npm run bench <name> [-- args]`: runs hack/bench/<name>.ts, whose default export takes the
 * remaining argv and returns when it has called report(). `--quick` runs its quick mode
 * (hack/bench/benches.ts).
 */
import { BENCHES, benchArgs, type BenchName } from './benches.js';

const [name, ...args] = process.argv.slice(2);
const names = Object.keys(BENCHES);
if (!name || !names.includes(name)) {
  console.error(`usage: npm run bench <${names.join('|')}> [-- --quick | flags]`);
  process.exit(2);
}
const mod = (await import(`./${name}.ts`)) as { default: (argv: string[]) => Promise<void> };
await mod.default(benchArgs(name as BenchName, args));
process.exit(0);
