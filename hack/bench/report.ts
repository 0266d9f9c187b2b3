import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Every benchmark reports the same way: a table on stdout and a JSON file under .bench/
 * (or $PUSHGATE_BENCH_OUT). Rows carry the subject and its baseline measured in the same run,
 * so the ratio is what a reader compares, not absolute numbers from different machines.
 */
export interface BenchRow {
  metric: string;
  unit: string;
  value: number;
  /** The same metric for the baseline measured in the same run (e.g. a bare ws server). */
  baseline?: number;
  baselineName?: string;
  /** value / baseline, filled in by report(). */
  ratio?: number;
  note?: string;
}

export interface BenchResult {
  bench: string;
  startedAt: string;
  durationMs: number;
  machine: { cpus: number; totalMemGiB: number; node: string };
  params: Record<string, unknown>;
  rows: BenchRow[];
}

const fmt = (n: number | undefined) =>
  n === undefined ? '' : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toFixed(3);

export function formatTable(rows: BenchRow[]): string {
  const header = ['metric', 'value', 'unit', 'baseline', 'ratio', 'note'];
  const body = rows.map((r) => [
    r.metric,
    fmt(r.value),
    r.unit,
    r.baseline === undefined ? '' : `${fmt(r.baseline)} (${r.baselineName ?? 'baseline'})`,
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`,
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function report(
  bench: string,
  params: Record<string, unknown>,
  rows: BenchRow[],
  startedAt: Date,
): BenchResult {
  for (const r of rows) if (r.baseline !== undefined && r.baseline !== 0) r.ratio = r.value / r.baseline;
  const result: BenchResult = {
    bench,
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    machine: {
      cpus: os.cpus().length,
      totalMemGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
    },
    params,
    rows,
  };
  const outDir = process.env.PUSHGATE_BENCH_OUT ?? path.resolve('.bench');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${bench}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2));
  writeFileSync(path.join(outDir, `${bench}-latest.json`), JSON.stringify(result, null, 2));
  console.log(`\n${bench} (${JSON.stringify(params)})\n${formatTable(rows)}\n\nwrote ${file}`);
  return result;
}

/** Progress for long benchmark phases, on stderr so the table on stdout stays clean. */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
