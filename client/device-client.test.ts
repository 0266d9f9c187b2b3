import { describe, expect, it } from 'vitest';
import { isLoopbackUrl } from './device-client.js';

describe('isLoopbackUrl (a 127.x source address only reaches loopback gateways)', () => {
  it.each([
    ['ws://127.0.0.1:8080/v1/connect', true],
    ['ws://127.1.0.5:8080/v1/connect', true],
    ['ws://localhost:8080/v1/connect', true],
    ['ws://[::1]:8080/v1/connect', true],
    ['ws://198.18.1.7:8080/v1/connect', false],
    ['wss://gw.example.com/v1/connect', false],
  ])('%s -> %s', (url, loopback) => expect(isLoopbackUrl(url)).toBe(loopback));
});
