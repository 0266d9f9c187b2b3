import { describe, expect, it } from 'vitest';
import { defaultGatewayId } from './options.js';

describe('defaultGatewayId', () => {
  it('is <namespace>.<pod name> in a pod (the sidecar derives the same id)', () => {
    expect(defaultGatewayId({ namespace: 'push', podName: 'gw-0' }, { POD_NAME: 'gw-0' }, 42, 'gw-0')).toBe(
      'push.gw-0',
    );
    expect(defaultGatewayId({ namespace: 'push', podName: 'given' }, {}, 42, 'host-a')).toBe('push.given');
  });
  it('adds the process id outside a pod, where every process of a host shares the hostname', () => {
    const a = defaultGatewayId({ namespace: 'default', podName: 'host-a' }, {}, 101, 'host-a');
    const b = defaultGatewayId({ namespace: 'default', podName: 'host-a' }, {}, 102, 'host-a');
    expect(a).toBe('default.host-a.101');
    expect(a).not.toBe(b);
  });
});
