import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { z } from 'zod';
import { CRD_DIRS, findCrdDrift } from '../../hack/gen-crds.js';
import {
  allCrds,
  renderCrdFiles,
  StructuralSchemaError,
  structuralSchemaOf,
  type JsonSchema,
} from './crd.js';
import { CATEGORY } from './group.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const crds = allCrds();

/** Every schema node with its path, depth first. */
function* walk(node: JsonSchema, at: string): Generator<[string, JsonSchema]> {
  yield [at, node];
  for (const [name, child] of Object.entries((node.properties as Record<string, JsonSchema>) ?? {})) {
    yield* walk(child, `${at}.${name}`);
  }
  if (node.items) yield* walk(node.items as JsonSchema, `${at}[]`);
  if (typeof node.additionalProperties === 'object')
    yield* walk(node.additionalProperties as JsonSchema, `${at}[*]`);
}
const rootOf = (crd: (typeof crds)[number]['crd']) => crd.spec.versions[0]!.schema.openAPIV3Schema;

describe.each(crds.map(({ fileName, crd }) => [fileName, crd] as const))('%s', (_file, crd) => {
  const nodes = [...walk(rootOf(crd), crd.spec.names.kind)];

  it('is structural: one type per node, no keywords Kubernetes forbids', () => {
    const forbidden = [
      '$schema',
      '$ref',
      'propertyNames',
      'const',
      'oneOf',
      'allOf',
      'not',
      'definitions',
      '$defs',
    ];
    for (const [at, node] of nodes) {
      for (const key of forbidden) expect(node, `${at} has ${key}`).not.toHaveProperty(key);
      expect(node.additionalProperties, `${at} additionalProperties:false`).not.toBe(false);
      if (node['x-kubernetes-int-or-string'] === true) {
        expect(node.anyOf).toEqual([{ type: 'integer' }, { type: 'string' }]);
        continue;
      }
      expect(node.anyOf, `${at} has anyOf`).toBeUndefined();
      expect(['object', 'array', 'string', 'integer', 'number', 'boolean'], `${at} type`).toContain(
        node.type,
      );
      if (node.type === 'array') expect(node.items, `${at} items`).toBeDefined();
    }
  });

  it('documents every field (kubectl explain)', () => {
    const undocumented = nodes
      .filter(([at]) => !at.endsWith('[*]') && !at.endsWith('.metadata'))
      .filter(([, node]) => typeof node.description !== 'string' || node.description.length < 8)
      .map(([at]) => at);
    expect(undocumented).toEqual([]);
  });

  it('states each scalar spec default in the field description', () => {
    // Status defaults (zero counters) are a convenience for writers, not something users set.
    for (const [at, node] of nodes) {
      if (!at.includes('.spec.') || node.default === undefined || typeof node.default === 'object') continue;
      expect(node.description, at).toMatch(new RegExp(`Defaults to "?${String(node.default)}\\b`));
    }
  });

  it('bounds every list and string that a CEL rule reads (cost budget)', () => {
    for (const [at, node] of nodes) {
      const rules = (node['x-kubernetes-validations'] as { rule: string }[] | undefined) ?? [];
      if (rules.length === 0) continue;
      for (const [childAt, child] of walk(node, at)) {
        if (child.type === 'array') expect(child.maxItems, `${childAt} maxItems`).toBeTypeOf('number');
        if (child.type === 'object' && child.additionalProperties) {
          expect(child.maxProperties, `${childAt} maxProperties`).toBeTypeOf('number');
        }
      }
    }
  });

  it('has the category, short names, the status subresource and printer columns that exist', () => {
    expect(crd.spec.names.categories).toEqual([CATEGORY]);
    expect(crd.spec.names.shortNames.length).toBeGreaterThan(0);
    expect(crd.spec.versions[0]!.subresources).toEqual({ status: {} });
    const columns = crd.spec.versions[0]!.additionalPrinterColumns;
    expect(columns.length).toBeGreaterThanOrEqual(4);
    for (const column of columns) {
      if (column.jsonPath.startsWith('.metadata.')) continue;
      // `.status.conditions[?(@.type=="Ready")].status` -> status.conditions[].status
      const schemaPath = column.jsonPath.replace(/\[\?\(.*?\)\]/g, '[]');
      const at = `${crd.spec.names.kind}${schemaPath}`;
      const node = nodes.find(([p]) => p === at)?.[1];
      expect(node, `printer column ${column.name} -> ${at}`).toBeDefined();
      if (column.type === 'integer') expect(node!.type).toBe('integer');
    }
  });
});

describe('conversion', () => {
  it('turns a quantity union into int-or-string and a loose object into preserve-unknown-fields', () => {
    const schema = structuralSchemaOf(
      z.object({
        q: z.union([z.int(), z.string().regex(/^\d+m$/)]).describe('A quantity.'),
        c: z.looseObject({ name: z.string().describe('Name.') }).describe('A container.'),
      }),
    );
    const props = schema.properties as Record<string, JsonSchema>;
    expect(props.q).toEqual({
      description: 'A quantity.',
      pattern: '^\\d+m$',
      anyOf: [{ type: 'integer' }, { type: 'string' }],
      'x-kubernetes-int-or-string': true,
    });
    expect(props.c).toMatchObject({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
    expect(props.c).not.toHaveProperty('additionalProperties');
  });

  it('refuses unions it cannot make structural, naming the field', () => {
    const union = z.object({ target: z.union([z.object({ a: z.string() }), z.object({ b: z.int() })]) });
    expect(() => structuralSchemaOf(union, 'spec')).toThrow(StructuralSchemaError);
    expect(() => structuralSchemaOf(union, 'spec')).toThrow(/spec\.target/);
  });

  it('drops zod safe-integer bounds and the date-time regex, keeps real bounds', () => {
    const schema = structuralSchemaOf(z.object({ n: z.int().min(1), t: z.iso.datetime({ offset: true }) }));
    const props = schema.properties as Record<string, JsonSchema>;
    expect(props.n).toEqual({ type: 'integer', minimum: 1 });
    expect(props.t).toEqual({ type: 'string', format: 'date-time' });
  });
});

describe('checked-in CRDs', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'pushgate-crds-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('are what `npm run gen:crds` writes, in crds/ and in the chart', () => {
    expect(findCrdDrift(repoRoot)).toEqual([]);
    for (const [name, text] of renderCrdFiles()) {
      for (const dir of CRD_DIRS) expect(readFileSync(path.join(repoRoot, dir, name), 'utf8')).toBe(text);
      expect(YAML.parse(text).kind).toBe('CustomResourceDefinition');
    }
  });

  it('--check logic reports a stale, a missing and an extra file', () => {
    for (const dir of CRD_DIRS)
      cpSync(path.join(repoRoot, dir), path.join(scratch, dir), { recursive: true });
    const [first, second] = [...renderCrdFiles().keys()];
    writeFileSync(path.join(scratch, 'crds', first!), '# edited by hand\n');
    rmSync(path.join(scratch, CRD_DIRS[1]!, second!));
    writeFileSync(path.join(scratch, 'crds', 'gone.pushgate.dev.yaml'), 'x');
    expect(findCrdDrift(scratch)).toEqual(
      expect.arrayContaining([
        { file: path.join('crds', first!), problem: 'stale' },
        { file: path.join(CRD_DIRS[1]!, second!), problem: 'missing' },
        { file: path.join('crds', 'gone.pushgate.dev.yaml'), problem: 'extra' },
      ]),
    );
  });
});
