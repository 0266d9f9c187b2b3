import { z } from 'zod';
import { APP_ID_MAX } from '../../common/protocol/ids.js';
import { RATE_LIMIT_POLICY } from './group.js';
import {
  kindSchema,
  localObjectReferenceSchema,
  parseOrThrow,
  withRules,
  defaultsToFull,
  statusBaseFields,
} from './shared.js';
import { appIdSchema } from './tagcampaign.js';

/**
 * RateLimitPolicy: the platform team's limits for apps on one PushGateway. A per-app leaky
 * bucket (GCRA, in Redis, sharded by device), per-device daily caps (UTC day), the rate
 * campaigns get by default and at most, and adaptive throttling (AIMD) that backs off when
 * downstream errors or timeouts rise. All enforced by the gateways (common/ratelimit). Messages
 * over a limit are deferred, never dropped.
 */

export const perAppLimitSchema = z
  .object({
    messagesPerSecond: z
      .int()
      .min(1)
      .max(10_000_000)
      .default(10_000)
      .describe('Sustained messages per second for each app (GCRA emission rate). Defaults to 10000.'),
    burst: z
      .int()
      .min(1)
      .max(10_000_000)
      .default(10_000)
      .describe(
        'Messages an idle app may send at once above the sustained rate (GCRA burst). Defaults to 10000.',
      ),
    maxDeferredMessages: z
      .int()
      .min(0)
      .max(100_000_000)
      .default(100_000)
      .describe(
        'Most messages of one app that may wait for the rate (deferred, kept in Redis, released in ' +
          'acceptance order per device). When it is full the push API answers 429 with Retry-After and ' +
          'accepts nothing more; what it already accepted is still delivered. Defaults to 100000.',
      ),
  })
  .describe(
    'Leaky bucket (GCRA) per app, shared by every gateway: the sustained rate and the burst above it, ' +
      'split over up to 16 device-hash shards in Redis (no hot key). Messages over it are deferred, never dropped.',
  );

export const perDeviceLimitSchema = withRules(
  z.object({
    messagesPerDay: z
      .int()
      .min(1)
      .max(100_000)
      .describe(
        'Most messages one device receives from one app per day (push API and campaigns alike), counted when a ' +
          'message passes the cap. The day is the UTC calendar day (counts start again at 00:00 UTC), whatever the ' +
          'device time zone. A message over the cap is answered 202 deferred (deviceCapped) and held, in order, until ' +
          'after 00:00 UTC, then counted against that day and sent through the app rate; or it expires at its TTL ' +
          'first; the message status counts it either way (capped, released, expired). A device that already holds ' +
          'a whole day of messages refuses more (deviceCapRefused; 429 device_cap_full when no recipient took it).',
      ),
    highPriorityMessagesPerDay: z
      .int()
      .min(0)
      .max(100_000)
      .optional()
      .describe(
        'Of those, most high-priority messages per device per UTC day; over it a high-priority message is held ' +
          'like one over messagesPerDay. Defaults to messagesPerDay.',
      ),
  }),
  'Daily caps per device (UTC day), so no app floods a phone. Enforced by the gateways for every send.',
  [
    {
      rule: '!has(self.highPriorityMessagesPerDay) || self.highPriorityMessagesPerDay <= self.messagesPerDay',
      message: 'highPriorityMessagesPerDay must not exceed messagesPerDay',
      fieldPath: '.highPriorityMessagesPerDay',
      check: (d) =>
        d.highPriorityMessagesPerDay === undefined || d.highPriorityMessagesPerDay <= d.messagesPerDay,
    },
  ],
);

export const campaignRateLimitSchema = withRules(
  z.object({
    defaultMessagesPerSecond: z
      .int()
      .min(1)
      .max(10_000_000)
      .default(1_000)
      .describe('Rate of a TagCampaign that sets no rate. Defaults to 1000.'),
    maxMessagesPerSecond: z
      .int()
      .min(1)
      .max(10_000_000)
      .default(5_000)
      .describe('Highest rate any one TagCampaign may run at; faster requests are capped. Defaults to 5000.'),
  }),
  'Rates TagCampaigns of these apps get.',
  [
    {
      rule: 'self.defaultMessagesPerSecond <= self.maxMessagesPerSecond',
      message: 'defaultMessagesPerSecond must not exceed maxMessagesPerSecond',
      fieldPath: '.defaultMessagesPerSecond',
      check: (c) => c.defaultMessagesPerSecond <= c.maxMessagesPerSecond,
    },
  ],
);

const percent = (description: string, dflt: number, max = 100) =>
  z.int().min(1).max(max).default(dflt).describe(`${description} Defaults to ${dflt}.`);

export const adaptiveThrottlingSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe('Slow down when downstream delivery degrades. Defaults to true.'),
    errorRatioPercent: percent(
      "Slow down when more than this percent of sends fail in the window: stores of the app's messages that " +
        'fail, and pushes answered 503 because storage is unavailable.',
      5,
    ),
    timeoutRatioPercent: percent(
      'Slow down when more than this percent of sends time out in the window: stores (admission, inbox store ' +
        "and routing) slower than 1 s, and pushes a connected device did not ack within the gateway's " +
        '--ack-timeout-ms (10 s by default).',
      10,
    ),
    windowSeconds: z
      .int()
      .min(5)
      .max(3600)
      .default(30)
      .describe(
        'Sliding window the ratios are measured over, in seconds, summed over every gateway; at least 20 sends ' +
          'are needed to act. Defaults to 30.',
      ),
    decreasePercent: percent(
      'On a breach, cut the current rate by this percent, 1 to 99 (multiplicative decrease; 100 would stop sending).',
      50,
      99,
    ),
    recoveryPercent: percent(
      'While healthy, raise the rate by this percent of the configured rate per recovery step (additive increase).',
      10,
    ),
    recoveryIntervalSeconds: z
      .int()
      .min(1)
      .max(3600)
      .default(10)
      .describe('Seconds between recovery steps. Defaults to 10.'),
    minRatePercent: percent('Never throttle below this percent of the configured rate.', 10),
  })
  .describe(
    'Adaptive throttling (AIMD), measured by the gateways: on a breach of the error or timeout ratio the rate is cut ' +
      'by decreasePercent (then a fresh window), while healthy it rises by recoveryPercent of the configured rate ' +
      'per recoveryIntervalSeconds; it changes at most once per interval. The rate in force shows in ' +
      'status.effectiveMessagesPerSecond, the Throttled condition, events and gateway metrics.',
  );

export const rateLimitPolicySpecSchema = withRules(
  z.object({
    gatewayRef: localObjectReferenceSchema('PushGateway whose traffic this policy limits'),
    appIds: z
      .array(appIdSchema('An app id.'))
      .max(256)
      .default([])
      .superRefine((ids, ctx) => {
        ids.forEach((id, i) => {
          if (ids.indexOf(id) !== i)
            ctx.addIssue({ code: 'custom', message: `duplicate app id "${id}"`, path: [i] });
        });
      })
      .meta({
        description:
          'Apps the policy applies to. Empty (the default) means every app on the gateway without a policy of its own.',
        'x-kubernetes-list-type': 'set',
      }),
    perApp: defaultsToFull(perAppLimitSchema),
    perDevice: perDeviceLimitSchema.optional(),
    campaigns: defaultsToFull(campaignRateLimitSchema),
    adaptive: defaultsToFull(adaptiveThrottlingSchema),
  }),
  'Desired limits.',
  [
    {
      rule: 'self.campaigns.maxMessagesPerSecond <= self.perApp.messagesPerSecond',
      message: 'campaigns.maxMessagesPerSecond must not exceed perApp.messagesPerSecond',
      fieldPath: '.campaigns.maxMessagesPerSecond',
      check: (s) => s.campaigns.maxMessagesPerSecond <= s.perApp.messagesPerSecond,
    },
  ],
);
export type RateLimitPolicySpec = z.output<typeof rateLimitPolicySpecSchema>;
export type RateLimitPolicySpecInput = z.input<typeof rateLimitPolicySpecSchema>;

export const rateLimitPolicyStatusSchema = z
  .object({
    ...statusBaseFields,
    appliedTo: z
      .object({
        gateway: z.string().max(253).optional().describe('The PushGateway the limits are in force on.'),
        appIds: z
          .array(z.string().max(APP_ID_MAX).describe('An app id.'))
          .max(256)
          .optional()
          .describe(
            'The apps the limits are in force for; empty means every app without a policy of its own.',
          ),
        targets: z
          .string()
          .max(256)
          .optional()
          .describe(
            'One-line summary of what the policy applies to, such as "main: app-a, app-b" (for kubectl get).',
          ),
      })
      .optional()
      .describe('What the policy is in force on, as last written to the gateways.'),
    effectiveMessagesPerSecond: z
      .number()
      .min(0)
      .optional()
      .describe(
        'The per-app rate in force now (after adaptive throttling), the lowest over the covered apps.',
      ),
    deferredMessages: z
      .int()
      .min(0)
      .optional()
      .describe('Messages of the covered apps waiting for their rate now (all apps, all shards).'),
    apps: z
      .array(
        z
          .object({
            appId: z
              .string()
              .max(63)
              .describe('The app id ("*" = every app on the gateway without a policy of its own).'),
            effectiveMessagesPerSecond: z.number().min(0).describe('Its rate in force now.'),
            deferredMessages: z.int().min(0).optional().describe('Its messages waiting for the rate now.'),
            oldestDeferredSeconds: z
              .int()
              .min(0)
              .optional()
              .describe('Age of its oldest waiting message, in seconds (0 = none waits).'),
          })
          .describe('One app the policy holds: its rate now and its deferred queue.'),
      )
      .max(256)
      .optional()
      .describe('Per app: the effective rate, the deferred queue depth and the oldest deferred age.'),
  })
  .describe('Observed state of the policy, written by the operator.');
export type RateLimitPolicyStatus = z.output<typeof rateLimitPolicyStatusSchema>;

export const rateLimitPolicySchema = kindSchema(
  RATE_LIMIT_POLICY,
  rateLimitPolicySpecSchema,
  rateLimitPolicyStatusSchema,
);
export type RateLimitPolicy = z.output<typeof rateLimitPolicySchema>;

/** Validates a RateLimitPolicy and applies the documented defaults. */
export const parseRateLimitPolicy = (obj: unknown): RateLimitPolicy =>
  parseOrThrow(RATE_LIMIT_POLICY.kind, rateLimitPolicySchema, obj);
