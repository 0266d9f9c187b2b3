/**
 * `npm run bench <name> [-- args]`: runs hack/bench/<name>.ts, whose default export takes the
 * remaining argv and returns when it has called report().
 */
const [name, ...args] = process.argv.slice(2);
const benches = ['gateway', 'operator'];
if (!name || !benches.includes(name)) {
  console.error(`usage: npm run bench <${benches.join('|')}> [-- flags]`);
  process.exit(2);
}
const mod = (await import(`./${name}.ts`)) as { default: (argv: string[]) => Promise<void> };
await mod.default(args);
process.exit(0);
