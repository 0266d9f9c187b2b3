import type { Condition } from '../api/shared.js';

/**
 * Status conditions as Kubernetes API conventions define them (metav1.Condition): one entry
 * per type; lastTransitionTime changes only when status changes, so `kubectl describe` shows
 * when something really happened rather than when the operator last looked. The one Condition
 * type is the API's (operator/api/shared.ts), so what the helpers return is what the status
 * schema declares.
 */
export type { Condition };
export type ConditionStatus = Condition['status'];

export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

/** Returns the conditions with `next` set; keeps lastTransitionTime when the status did not change. */
export function setCondition(
  existing: readonly Condition[] | undefined,
  next: ConditionInput,
  now: Date,
): Condition[] {
  const list = [...(existing ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  const lastTransitionTime =
    prev && prev.status === next.status
      ? prev.lastTransitionTime
      : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const cond: Condition = { ...next, lastTransitionTime };
  if (i >= 0) list[i] = cond;
  else list.push(cond);
  return list;
}

/** Sets several conditions at once, in order. */
export function setConditions(
  existing: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
  now: Date,
): Condition[] {
  return next.reduce<Condition[]>((acc, c) => setCondition(acc, c, now), [...(existing ?? [])]);
}

export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}
