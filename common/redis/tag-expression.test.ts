import { describe, expect, it } from 'vitest';
import {
  evaluateTagExpression,
  matchesTags,
  parseTagExpression,
  TagExpressionError,
} from './tag-expression.js';

const devices: Record<string, string[]> = {
  d0: ['vip', 'bj'],
  d1: ['vip', 'sh'],
  d2: ['bj'],
  d3: ['vip', 'bj', 'churned'],
  d4: [],
};
const members = (tag: string) => new Set(Object.keys(devices).filter((d) => devices[d]!.includes(tag)));
const universe = new Set(Object.keys(devices));

describe('tag expressions', () => {
  it.each([
    ['vip', ['d0', 'd1', 'd3']],
    ['vip && bj', ['d0', 'd3']],
    ['bj || sh', ['d0', 'd1', 'd2', 'd3']],
    ['!vip', ['d2', 'd4']],
    ['vip && (bj || sh) && !churned', ['d0', 'd1']],
    ['vip || bj && churned', ['d0', 'd1', 'd3']],
    ['!(vip || bj)', ['d4']],
    ['!!vip', ['d0', 'd1', 'd3']],
    ['nosuchtag', []],
  ])('%s selects %j', (src, expected) => {
    const expr = parseTagExpression(src);
    expect([...evaluateTagExpression(expr, members, universe)].sort()).toEqual(expected);
    // The set evaluation and the per-device match agree.
    expect(Object.keys(devices).filter((d) => matchesTags(expr, new Set(devices[d])))).toEqual(expected);
  });

  it.each([
    ['', /unexpected end/],
    ['vip &&', /unexpected end/],
    ['(vip', /missing '\)'/],
    ['vip)', /unexpected '\)'/],
    ['vip & bj', /unexpected '&'/],
    ['vip bj', /unexpected 'bj'/],
    ['{x}', /unexpected '\{'/],
    ['('.repeat(20) + 'a' + ')'.repeat(20), /deeper than 16/],
    [Array.from({ length: 33 }, (_, i) => `t${i}`).join(' || '), /more than 32 tags/],
  ])('rejects %j', (src, message) => {
    expect(() => parseTagExpression(src)).toThrow(TagExpressionError);
    expect(() => parseTagExpression(src)).toThrow(message);
  });
});
