/**
 * Drain pacing: close `total` connections at `ratePerSecond`, but finish within `graceMs`
 * (raising the rate if needed), in ticks of `tickMs`. Returns how many to close on each tick.
 * EMQX evacuates at a set rate for the same reason: a rollout must not cause a reconnect storm.
 */
export function drainPlan(total: number, ratePerSecond: number, graceMs: number, tickMs = 100): number[] {
  if (total <= 0) return [];
  const rate = Math.max(ratePerSecond, (total * 1000) / Math.max(graceMs, tickMs));
  const perTick = (rate * tickMs) / 1000;
  const plan: number[] = [];
  let closed = 0;
  for (let tick = 1; closed < total; tick++) {
    const target = Math.min(total, Math.floor(perTick * tick + 1e-9) || (tick === 1 ? 1 : 0));
    plan.push(Math.max(0, target - closed));
    closed = Math.max(closed, target);
  }
  return plan;
}
