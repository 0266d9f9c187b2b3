/**
 * The one reader of the Prometheus text format for tests and benchmarks: every /metrics the
 * project serves (gateway, sidecar, operator) is read through it, so a format detail (label
 * escaping, exponents, +Inf) is handled once.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line.trim());
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL))
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    const raw = m[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** Sum of every sample named `name` whose labels pass `filter` (0 when there is none). */
export function sumSamples(
  text: string,
  name: string,
  filter: (labels: Record<string, string>) => boolean = () => true,
): number {
  return parsePrometheusText(text)
    .filter((s) => s.name === name && filter(s.labels))
    .reduce((n, s) => n + s.value, 0);
}

/** GET `url` (a /metrics endpoint) and sum `name` over the samples `filter` keeps. */
export async function scrapeSum(
  url: string,
  name: string,
  filter?: (labels: Record<string, string>) => boolean,
): Promise<number> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return sumSamples(await res.text(), name, filter);
}
