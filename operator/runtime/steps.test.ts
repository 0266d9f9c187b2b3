import { describe, expect, it } from 'vitest';
import { StepError, done, requeue, runSteps, type Step } from './steps.js';

const step = (name: string, fn: (log: string[]) => ReturnType<Step<string[]>['run']>): Step<string[]> => ({
  name,
  run: (log) => {
    log.push(name);
    return fn(log);
  },
});

describe('runSteps', () => {
  it('runs every step in order when all are done', async () => {
    const log: string[] = [];
    const out = await runSteps([step('a', async () => done()), step('b', async () => done())], log);
    expect(log).toEqual(['a', 'b']);
    expect(out).toEqual({ completed: ['a', 'b'] });
  });

  it('stops at a requeue and says which step asked', async () => {
    const log: string[] = [];
    const out = await runSteps(
      [
        step('a', async () => done()),
        step('b', async () => requeue(500, 'rolling out')),
        step('c', async () => done()),
      ],
      log,
    );
    expect(log).toEqual(['a', 'b']);
    expect(out).toEqual({ completed: ['a'], requeue: { afterMs: 500, reason: 'rolling out', step: 'b' } });
  });

  it('stops at an error and names the step', async () => {
    const log: string[] = [];
    const err = await runSteps(
      [
        step('a', async () => {
          throw new Error('boom');
        }),
        step('b', async () => done()),
      ],
      log,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepError);
    expect((err as StepError).message).toBe('step a: boom');
    expect(log).toEqual(['a']);
  });
});
