import { z } from 'zod';

/**
 * Program settings come from flags (`--max-connections 5000`) and environment variables
 * (`PUSHGATE_MAX_CONNECTIONS=5000`); flags win. Each option is declared once, with its zod
 * type and description, and that one declaration drives parsing, validation, defaults and
 * `--help`. A bad value stops the program with one line naming the flag, the variable and
 * what is allowed.
 */
export interface OptionSpec<T extends z.ZodType = z.ZodType> {
  schema: T;
  description: string;
  /** Flag name without dashes; defaults to the kebab-case of the key. */
  flag?: string;
  /** Environment variable; defaults to PUSHGATE_<SNAKE_CASE_KEY>. */
  env?: string;
  /** Hide the value in errors (secrets). */
  secret?: boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;
export type ConfigOf<S extends OptionSpecs> = { [K in keyof S]: z.output<S[K]['schema']> };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
export const flagOf = (key: string, spec: OptionSpec) => spec.flag ?? kebab(key);
export const envOf = (key: string, spec: OptionSpec) => spec.env ?? `PUSHGATE_${snake(key)}`;
/** The variable one option of a program is read from: how another program (the operator) names it. */
export const envNameOf = <S extends OptionSpecs>(specs: S, key: keyof S & string) => envOf(key, specs[key]!);

/** Parses `--name value`, `--name=value` and bare boolean `--name` / `--no-name`. */
function parseFlags(
  argv: string[],
  known: Map<string, string>,
  booleans: Set<string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--'))
      throw new ConfigError(`unexpected argument '${arg}' (flags look like --name value)`);
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let negated = false;
    if (!known.has(name) && name.startsWith('no-') && booleans.has(name.slice(3))) {
      negated = true;
      name = name.slice(3);
    }
    const key = known.get(name);
    if (!key) throw new ConfigError(`unknown flag --${name} (see --help)`);
    if (value === undefined) {
      if (booleans.has(name)) value = negated ? 'false' : 'true';
      else {
        value = argv[++i];
        if (value === undefined) throw new ConfigError(`flag --${name} needs a value`);
      }
    }
    out[key] = value;
  }
  return out;
}

function isBoolean(schema: z.ZodType): boolean {
  const def = (schema as unknown as { def: { type: string; innerType?: z.ZodType } }).def;
  if (def.type === 'boolean') return true;
  if (def.innerType) return isBoolean(def.innerType);
  return false;
}

/** Converts a raw string to what the schema expects (numbers and booleans arrive as text). */
function coerce(raw: string, schema: z.ZodType): unknown {
  if (isBoolean(schema)) {
    if (/^(true|1|yes|on)$/i.test(raw)) return true;
    if (/^(false|0|no|off)$/i.test(raw)) return false;
    return raw;
  }
  const def = (schema as unknown as { def: { type: string; innerType?: z.ZodType } }).def;
  let inner: z.ZodType = schema;
  let d = def;
  while (d.innerType) {
    inner = d.innerType;
    d = (inner as unknown as { def: typeof def }).def;
  }
  if (d.type === 'number' && raw.trim() !== '' && !Number.isNaN(Number(raw))) return Number(raw);
  if (d.type === 'array') return raw === '' ? [] : raw.split(',').map((s) => s.trim());
  return raw;
}

export function parseConfig<S extends OptionSpecs>(
  specs: S,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): ConfigOf<S> {
  const known = new Map<string, string>();
  const booleans = new Set<string>();
  for (const [key, spec] of Object.entries(specs)) {
    known.set(flagOf(key, spec), key);
    if (isBoolean(spec.schema)) booleans.add(flagOf(key, spec));
  }
  const flags = parseFlags(argv, known, booleans);
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const raw = flags[key] ?? env[envOf(key, spec)];
    const result = spec.schema.safeParse(raw === undefined ? undefined : coerce(raw, spec.schema));
    if (!result.success) {
      const issue = result.error.issues[0];
      const shown = spec.secret ? '<hidden>' : raw === undefined ? 'nothing' : `'${raw}'`;
      throw new ConfigError(
        `invalid --${flagOf(key, spec)} (${envOf(key, spec)}): ${issue?.message ?? 'invalid'}; got ${shown}. ${spec.description}`,
      );
    }
    out[key] = result.data;
  }
  return out as ConfigOf<S>;
}

/** `usage`: how the program is started, when it is not a `pushgate` command. */
export function helpText(
  command: string,
  summary: string,
  specs: OptionSpecs,
  usage = `pushgate ${command}`,
): string {
  const lines = [
    `Usage: ${usage} [flags]`,
    '',
    summary,
    '',
    'Flags (each also read from its environment variable):',
  ];
  for (const [key, spec] of Object.entries(specs)) {
    const def = spec.schema.safeParse(undefined);
    const dflt =
      def.success && def.data !== undefined && !spec.secret ? ` (default: ${JSON.stringify(def.data)})` : '';
    lines.push(`  --${flagOf(key, spec)}  [${envOf(key, spec)}]`);
    lines.push(`      ${spec.description}${dflt}`);
  }
  lines.push('  --help', '      Show this help.');
  return lines.join('\n');
}

/** Reusable option schemas, so every program spells a port or a Redis URL the same way. */
export const opt = {
  port: (dflt: number) => z.coerce.number().int().min(0).max(65535).default(dflt),
  host: (dflt = '0.0.0.0') => z.string().min(1).default(dflt),
  redisUrl: () =>
    z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
  positiveInt: (dflt: number) => z.number().int().positive().default(dflt),
  duration: (dflt: number) => z.number().nonnegative().default(dflt),
};

/** The kubeconfig every program that talks to the API server takes: the same flag and variable. */
export const kubeconfigOption = {
  schema: z.string().default(''),
  env: 'KUBECONFIG',
  description: 'Kubeconfig file; empty = in-cluster service account.',
} satisfies OptionSpec;
