export * from './frames.js';
export * from './close-codes.js';
export * from './token.js';
export * from './server-frames.js';
export * from './ids.js';
