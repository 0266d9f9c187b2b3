import { describe, expect, it } from 'vitest';
import { TagExpressionError } from '../redis/tag-expression.js';
import { parseTarget } from './target.js';

describe('parseTarget', () => {
  it('parses a tag expression into its AST once, keeping the spec for the message status', () => {
    const spec = { tag: 'vip && !churned' };
    expect(parseTarget(spec)).toEqual({
      kind: 'tag',
      expr: {
        op: 'and',
        args: [
          { op: 'tag', tag: 'vip' },
          { op: 'not', arg: { op: 'tag', tag: 'churned' } },
        ],
      },
      spec,
    });
  });

  it.each([
    [{ device: 'd1' }, { kind: 'device', device: 'd1' }],
    [{ alias: 'al' }, { kind: 'alias', alias: 'al' }],
    [{ all: true as const }, { kind: 'all' }],
  ])('%j', (spec, want) => {
    expect(parseTarget(spec)).toEqual({ ...want, spec });
  });

  it('refuses a bad expression with a TagExpressionError', () => {
    expect(() => parseTarget({ tag: 'a &&' })).toThrow(TagExpressionError);
  });
});
