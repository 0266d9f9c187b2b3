import { describe, expect, it } from 'vitest';
import { findCondition, setCondition, setConditions } from './conditions.js';

const t1 = new Date('2026-01-01T00:00:00.123Z');
const t2 = new Date('2026-01-01T00:05:00.000Z');

describe('setCondition', () => {
  it('adds a condition with the transition time, without milliseconds', () => {
    const c = setCondition([], { type: 'Ready', status: 'False', reason: 'Waiting', message: 'm' }, t1);
    expect(c).toEqual([
      {
        type: 'Ready',
        status: 'False',
        reason: 'Waiting',
        message: 'm',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ]);
  });

  it('keeps lastTransitionTime when only reason/message change', () => {
    const a = setCondition([], { type: 'Ready', status: 'False', reason: 'Waiting', message: 'm' }, t1);
    const b = setCondition(
      a,
      { type: 'Ready', status: 'False', reason: 'Other', message: 'n', observedGeneration: 2 },
      t2,
    );
    expect(b[0]).toMatchObject({
      reason: 'Other',
      message: 'n',
      observedGeneration: 2,
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
  });

  it('moves lastTransitionTime when the status changes, and leaves other types alone', () => {
    const a = setConditions(
      [],
      [
        { type: 'Ready', status: 'False', reason: 'Waiting', message: '' },
        { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' },
      ],
      t1,
    );
    const b = setCondition(a, { type: 'Ready', status: 'True', reason: 'AllReady', message: '' }, t2);
    expect(findCondition(b, 'Ready')?.lastTransitionTime).toBe('2026-01-01T00:05:00Z');
    expect(findCondition(b, 'Degraded')?.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    expect(a[0]?.status).toBe('False'); // input not mutated
  });
});
