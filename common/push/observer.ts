import type { StoreResult } from '../redis/offline-store.js';

/**
 * What accepting a push reports, for the program's metrics and logs: the push API reports
 * into the gateway's metrics, a campaign dispatcher into its own. Nothing here knows either.
 */
export interface PushObserver {
  /** One device's store result. */
  stored(result: StoreResult): void;
  /** Publishing `deliveries` notifications to `gateway` failed: its devices are kept for the sweep. */
  routeFailed(gateway: string, deliveries: number, err: unknown): void;
  /** The sweep told `gateway` to reread the inboxes of `devices` devices whose notifications were lost. */
  routeSwept(gateway: string, devices: number): void;
  /** More lost notifications than the sweep keeps: these devices get their messages when they next connect. */
  routeAbandoned(gateway: string, devices: number): void;
}

export const silentObserver: PushObserver = {
  stored: () => {},
  routeFailed: () => {},
  routeSwept: () => {},
  routeAbandoned: () => {},
};
