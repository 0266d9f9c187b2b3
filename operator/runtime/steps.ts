import { StepError } from './errors.js';

export { StepError };

/**
 * A reconcile as an ordered list of steps (the EMQX operator's shape): each step returns
 * done (go on), requeue (stop here, come back later, e.g. waiting for a rollout) or throws
 * (stop here; a TerminalError is recorded, anything else retried with backoff). The runner
 * wraps what a step throws in a StepError that names the step and keeps the error as cause.
 */
export type StepResult = { kind: 'done' } | { kind: 'requeue'; afterMs: number; reason: string };

export const done = (): StepResult => ({ kind: 'done' });
export const requeue = (afterMs: number, reason: string): StepResult => ({
  kind: 'requeue',
  afterMs,
  reason,
});

export interface Step<C> {
  name: string;
  run(ctx: C): Promise<StepResult>;
}

export interface StepsOutcome {
  /** Steps that ran to done, in order. */
  completed: string[];
  requeue?: { afterMs: number; reason: string; step: string };
}

export async function runSteps<C>(steps: readonly Step<C>[], ctx: C): Promise<StepsOutcome> {
  const completed: string[] = [];
  for (const step of steps) {
    let result: StepResult;
    try {
      result = await step.run(ctx);
    } catch (err) {
      throw new StepError(step.name, err);
    }
    if (result.kind === 'requeue')
      return { completed, requeue: { afterMs: result.afterMs, reason: result.reason, step: step.name } };
    completed.push(step.name);
  }
  return { completed };
}
