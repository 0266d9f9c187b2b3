import { describe, expect, it } from 'vitest';
import { defaultAdvertisedUrl } from './server.js';

describe('defaultAdvertisedUrl (what the locator hands devices when --advertise-url is unset)', () => {
  it("uses the pod's IP in a pod, even when listening on 0.0.0.0", () => {
    expect(defaultAdvertisedUrl('198.18.2.5', '0.0.0.0', 8080)).toBe('ws://198.18.2.5:8080/v1/connect');
    expect(defaultAdvertisedUrl('fd00::5', '::', 8080)).toBe('ws://[fd00::5]:8080/v1/connect');
  });
  it('uses the listen host outside a pod, loopback for a wildcard', () => {
    expect(defaultAdvertisedUrl(undefined, '127.0.0.1', 9000)).toBe('ws://127.0.0.1:9000/v1/connect');
    expect(defaultAdvertisedUrl(undefined, '0.0.0.0', 9000)).toBe('ws://127.0.0.1:9000/v1/connect');
  });
});
