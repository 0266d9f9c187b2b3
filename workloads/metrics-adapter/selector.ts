/**
 * Kubernetes label selectors in their string form (`app=gw,tier!=canary,region in (a,b),!legacy`),
 * parsed to requirements and matched against labels, with the API server's rules: keys are
 * qualified names, values are label values, `in`/`notin` take a parenthesised set. A parse
 * error names the requirement it failed on, so a caller of the metrics API gets a 400 that
 * says what to fix.
 */

export type Operator = 'in' | 'notin' | 'exists' | 'doesnotexist';

export interface Requirement {
  key: string;
  operator: Operator;
  values: string[];
}

export class SelectorError extends Error {
  override name = 'SelectorError';
}

// Label key: optional DNS-subdomain prefix and a name of at most 63 characters.
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function checkKey(key: string, requirement: string): string {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (!NAME.test(name) || (prefix !== undefined && (prefix.length > 253 || !PREFIX.test(prefix)))) {
    throw new SelectorError(`invalid label key '${key}' in '${requirement}'`);
  }
  return key;
}

function checkValue(value: string, requirement: string): string {
  if (!VALUE.test(value)) throw new SelectorError(`invalid label value '${value}' in '${requirement}'`);
  return value;
}

/** Splits on commas that are not inside a `( ... )` set. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) throw new SelectorError(`unbalanced parentheses in '${text}'`);
  }
  if (depth !== 0) throw new SelectorError(`unbalanced parentheses in '${text}'`);
  parts.push(text.slice(start));
  return parts;
}

/** Parses a selector string; the empty string selects everything. */
export function parseSelector(text: string): Requirement[] {
  if (text.trim() === '') return [];
  const requirements: Requirement[] = [];
  for (const raw of splitTopLevel(text)) {
    const part = raw.trim();
    if (part === '') throw new SelectorError(`empty requirement in '${text}'`);
    let m: RegExpExecArray | null;
    if ((m = /^!\s*(\S+)$/.exec(part))) {
      requirements.push({ key: checkKey(m[1]!, part), operator: 'doesnotexist', values: [] });
    } else if ((m = /^(\S+?)\s+(in|notin)\s*\((.*)\)$/.exec(part))) {
      const values = m[3]!.split(',').map((v) => checkValue(v.trim(), part));
      requirements.push({ key: checkKey(m[1]!, part), operator: m[2] as 'in' | 'notin', values });
    } else if ((m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part))) {
      requirements.push({
        key: checkKey(m[1]!, part),
        operator: m[2] === '!=' ? 'notin' : 'in',
        values: [checkValue(m[3]!, part)],
      });
    } else if (/^[^=!\s(),]+$/.test(part)) {
      requirements.push({ key: checkKey(part, part), operator: 'exists', values: [] });
    } else {
      throw new SelectorError(`cannot parse requirement '${part}'`);
    }
  }
  return requirements;
}

export function matches(requirements: Requirement[], labels: Record<string, string> = {}): boolean {
  return requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.operator) {
      case 'exists':
        return has;
      case 'doesnotexist':
        return !has;
      case 'in':
        return has && r.values.includes(labels[r.key]!);
      case 'notin':
        return !has || !r.values.includes(labels[r.key]!);
    }
  });
}

/** The canonical string form, for passing on to the API server. */
export function formatSelector(requirements: Requirement[]): string {
  return requirements
    .map((r) => {
      switch (r.operator) {
        case 'exists':
          return r.key;
        case 'doesnotexist':
          return `!${r.key}`;
        case 'in':
          return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in (${r.values.join(',')})`;
        case 'notin':
          return r.values.length === 1
            ? `${r.key}!=${r.values[0]}`
            : `${r.key} notin (${r.values.join(',')})`;
      }
    })
    .join(',');
}
