// One rate-limiting concept, two variants: in-process (token-bucket.ts) and shared through Redis (gcra.ts).
export * from './token-bucket.js';
export * from './gcra.js';
