/**
 * WebSocket close codes of the device protocol. 1xxx are the standard ones (RFC 6455 and the
 * IANA registry); 4xxx are ours. What a device should do on each is part of the contract, so
 * it is written here beside the number (and in gateway/PROTOCOL.md).
 */
export const CloseCode = {
  /** Normal close (after `bye`, or the device closed). Do not reconnect unless you want to. */
  normal: 1000,
  /** A binary frame: the protocol is JSON text only. */
  unsupportedData: 1003,
  /** Policy violation: bad JSON, unknown frame, invalid frame, frame flood, hello twice. Fix the client; reconnect with backoff. */
  policyViolation: 1008,
  /** A text frame that is not valid UTF-8 (sent by the WebSocket layer, with an empty reason). */
  invalidPayload: 1007,
  /** A frame larger than the maximum (sent by the WebSocket layer, with an empty reason). */
  tooBig: 1009,
  /** Service restart (drain): reconnect to one of the endpoints of the preceding `drain` frame, after a random delay within its window. */
  serviceRestart: 1012,
  /** Try again later (overload: connection limit or accept rate). Reconnect with backoff, preferably to another endpoint. */
  tryAgainLater: 1013,
  /** Authentication failed: token missing, malformed, forged, or not for a known app. Do not retry with the same token. */
  authFailed: 4001,
  /** The token has expired: get a fresh token, then reconnect. */
  tokenExpired: 4002,
  /** No hello within the hello deadline after the upgrade. */
  helloTimeout: 4003,
  /** No ping within the heartbeat deadline; reconnect (the advised interval will be shorter). */
  heartbeatTimeout: 4004,
  /** The same device connected again elsewhere; this older session is closed. Do not reconnect from this one. */
  sessionReplaced: 4005,
} as const;
export type CloseCodeName = keyof typeof CloseCode;
export type CloseCodeValue = (typeof CloseCode)[CloseCodeName];

/** Codes after which a client must not reconnect with the same credentials. */
export const TERMINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.authFailed,
  CloseCode.sessionReplaced,
]);
