/**
 * Whether an error from a Redis call means "storage is not available right now" (retry later)
 * rather than a bug: a command that timed out (a frozen or overloaded server, see
 * --redis-command-timeout-ms), a connection that is down or closed, or a server that answers
 * but cannot serve (loading its data, a busy script, a replica or cluster without a master).
 * The push API answers these with 503 and Retry-After instead of 500.
 */
const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

export function isStorageUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  if (err.message === 'Command timed out') return true;
  if (/^(Connection is closed|Stream isn't writeable)/.test(err.message)) return true;
  if ((err as { code?: string }).code === 'ECONNREFUSED') return true;
  return UNAVAILABLE_REPLIES.test(err.message);
}
