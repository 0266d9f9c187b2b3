/**
 * Adaptive ("smart") heartbeat. The gateway advises each device how often to ping. While the
 * link is stable the interval grows (fewer wake-ups, less radio time); after a missed or late
 * beat it shrinks (a NAT or carrier box probably dropped idle mappings sooner). The interval
 * learned when a connection dies is remembered in Redis and used for the device's next
 * connection. Pure functions; the gateway keeps two numbers per session.
 */
export interface HeartbeatPolicy {
  minMs: number;
  maxMs: number;
  initialMs: number;
  /** On-time beats in a row before the interval grows. */
  growAfter: number;
  growFactor: number;
  shrinkFactor: number;
  /** A beat later than interval * lateFactor counts as missed. */
  lateFactor: number;
  /** The connection is dead after interval * deadFactor without a beat. */
  deadFactor: number;
}

export function heartbeatPolicy(p: { minMs: number; maxMs: number; initialMs: number }): HeartbeatPolicy {
  if (p.minMs > p.maxMs) throw new Error(`heartbeat min ${p.minMs} ms > max ${p.maxMs} ms`);
  return {
    minMs: p.minMs,
    maxMs: p.maxMs,
    initialMs: clamp(p.initialMs, p.minMs, p.maxMs),
    growAfter: 3,
    growFactor: 1.5,
    shrinkFactor: 0.5,
    lateFactor: 1.5,
    deadFactor: 2.5,
  };
}

export interface HeartbeatState {
  intervalMs: number;
  /** On-time beats since the last change. */
  streak: number;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** The first interval for a device: what it learned before, else the policy's initial. */
export function initialHeartbeat(policy: HeartbeatPolicy, learnedMs?: number): HeartbeatState {
  return {
    intervalMs: clamp(Math.round(learnedMs ?? policy.initialMs), policy.minMs, policy.maxMs),
    streak: 0,
  };
}

/** A ping arrived `sinceLastMs` after the previous one (or after welcome). */
export function onBeat(policy: HeartbeatPolicy, s: HeartbeatState, sinceLastMs: number): HeartbeatState {
  if (sinceLastMs > s.intervalMs * policy.lateFactor) return onMissed(policy, s);
  const streak = s.streak + 1;
  if (streak < policy.growAfter || s.intervalMs >= policy.maxMs) return { intervalMs: s.intervalMs, streak };
  return {
    intervalMs: clamp(Math.round(s.intervalMs * policy.growFactor), policy.minMs, policy.maxMs),
    streak: 0,
  };
}

/** A beat was missed (late, or the link died): shrink. */
export function onMissed(policy: HeartbeatPolicy, s: HeartbeatState): HeartbeatState {
  return {
    intervalMs: clamp(Math.round(s.intervalMs * policy.shrinkFactor), policy.minMs, policy.maxMs),
    streak: 0,
  };
}

/** How long after the last beat the gateway gives up on the connection. */
export function deadAfterMs(policy: HeartbeatPolicy, s: HeartbeatState): number {
  return Math.round(s.intervalMs * policy.deadFactor);
}
