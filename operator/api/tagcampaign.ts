import { z } from 'zod';
import { DEFAULT_TTL_SECONDS, MAX_PUSH_DATA_BYTES, MAX_TTL_SECONDS } from '../../common/protocol/frames.js';
import { appId, collapseKey, tag } from '../../common/protocol/ids.js';
import { TAG_CAMPAIGN } from './group.js';
import {
  kindSchema,
  localObjectReferenceSchema,
  parseOrThrow,
  withRules,
  defaultsToFull,
  statusBaseFields,
  immutable,
} from './shared.js';

/**
 * TagCampaign: push one message to every device of an app that carries a tag expression (or to
 * every device of the app), at a controlled rate, inside a schedule. Throttled messages are
 * deferred, never dropped; the status counts every outcome.
 */

/** An app id as devices and the push API know it (one definition: common/protocol/ids.ts). */
export const appIdSchema = (description: string) => appId.describe(description);

/** A device tag as devices carry it (`vip`, `city:beijing`, `_beta`); one definition in ids.ts. */
const tagList = (description: string) =>
  z
    .array(tag.describe('A device tag.'))
    .max(32)
    .superRefine((tags, ctx) => {
      tags.forEach((t, i) => {
        if (tags.indexOf(t) !== i)
          ctx.addIssue({ code: 'custom', message: `duplicate tag "${t}"`, path: [i] });
      });
    })
    .meta({ description, 'x-kubernetes-list-type': 'set' })
    .optional();

export const targetSchema = withRules(
  z.object({
    allDevices: z
      .boolean()
      .default(false)
      .describe('Send to every device of the app (then allOf and anyOf must be empty). Defaults to false.'),
    allOf: tagList('A device must carry every one of these tags.'),
    anyOf: tagList('A device must carry at least one of these tags.'),
    noneOf: tagList('A device must carry none of these tags (also applies with allDevices).'),
  }),
  'Which devices receive the message: a tag expression (allOf AND anyOf AND NOT noneOf), or allDevices. Immutable.',
  [
    {
      rule: 'self.allDevices != ((has(self.allOf) && size(self.allOf) > 0) || (has(self.anyOf) && size(self.anyOf) > 0))',
      message: 'set exactly one of allDevices: true or a non-empty allOf/anyOf tag list',
      check: (t) => t.allDevices !== ((t.allOf?.length ?? 0) > 0 || (t.anyOf?.length ?? 0) > 0),
    },
    {
      rule: '!has(self.allOf) || !has(self.noneOf) || !self.allOf.exists(t, t in self.noneOf)',
      message: 'a tag in both allOf and noneOf matches no device',
      fieldPath: '.noneOf',
      check: (t) => !(t.allOf ?? []).some((tag) => (t.noneOf ?? []).includes(tag)),
    },
    {
      rule: '!has(self.anyOf) || size(self.anyOf) == 0 || !has(self.noneOf) || !self.anyOf.all(t, t in self.noneOf)',
      message: 'every anyOf tag is also in noneOf, so the target matches no device',
      fieldPath: '.noneOf',
      check: (t) => !(t.anyOf?.length && t.anyOf.every((tag) => (t.noneOf ?? []).includes(tag))),
    },
    immutable('target'),
  ],
);
export type CampaignTarget = z.output<typeof targetSchema>;

export const PRIORITIES = ['normal', 'high'] as const;
export { MAX_TTL_SECONDS };

/**
 * The push a campaign message becomes (`data` of the push frame): `{title?, body?, data?}`. The
 * dispatcher sends exactly this, so the message must fit the push API's limit.
 */
export const campaignPushData = (m: { title?: string; body?: string; data?: Record<string, string> }) => ({
  ...(m.title !== undefined ? { title: m.title } : {}),
  ...(m.body !== undefined ? { body: m.body } : {}),
  ...(m.data !== undefined ? { data: m.data } : {}),
});

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
/**
 * Bytes of campaignPushData's JSON, counted the way the CRD's CEL rule can count them: UTF-8 of
 * every string plus the JSON punctuation around it (an upper bound, exact within 2 bytes, for
 * strings JSON does not escape; a quote, backslash or control character costs 1-5 bytes more
 * when sent, which the dispatcher checks before it sends).
 */
export function campaignPayloadBytes(m: { title?: string; body?: string; data?: Record<string, string> }) {
  return (
    2 +
    (m.title !== undefined ? 11 + utf8(m.title) : 0) +
    (m.body !== undefined ? 10 + utf8(m.body) : 0) +
    (m.data !== undefined
      ? 10 + Object.entries(m.data).reduce((n, [k, v]) => n + 6 + utf8(k) + utf8(v), 0)
      : 0)
  );
}

export const messageSchema = withRules(
  z.object({
    title: z.string().min(1).max(256).optional().describe('Notification title shown on the device.'),
    body: z
      .string()
      .min(1)
      .max(MAX_PUSH_DATA_BYTES)
      .optional()
      .describe('Notification body shown on the device.'),
    data: z
      .record(z.string().min(1).max(256), z.string().max(MAX_PUSH_DATA_BYTES))
      .refine((m) => Object.keys(m).length <= 64, { message: 'at most 64 entries' })
      .meta({ description: 'Key/value data handed to the app with the message.', maxProperties: 64 })
      .optional(),
    ttlSeconds: z
      .int()
      .min(0)
      .max(MAX_TTL_SECONDS)
      .default(DEFAULT_TTL_SECONDS)
      .describe(
        `How long an undelivered message stays deliverable, in seconds (0 to ${MAX_TTL_SECONDS}, ` +
          "the push API's bound). 0 means now or never: delivered only to devices online at send " +
          `time. Defaults to ${DEFAULT_TTL_SECONDS} (one day).`,
      ),
    priority: z
      .enum(PRIORITIES)
      .default('normal')
      .describe('Delivery priority: normal or high (wakes the device). Defaults to normal.'),
    collapseKey: collapseKey
      .optional()
      .describe(
        'Messages with the same collapse key replace each other while undelivered; only the newest is kept.',
      ),
  }),
  'The message to push. Immutable: to send something else, create a new campaign.',
  [
    {
      rule: 'has(self.title) || has(self.body) || (has(self.data) && size(self.data) > 0)',
      message: 'a message needs a title, a body or data',
      check: (m) => m.title !== undefined || m.body !== undefined || Object.keys(m.data ?? {}).length > 0,
    },
    {
      rule:
        `2 + (has(self.title) ? 11 + size(bytes(self.title)) : 0) + (has(self.body) ? 10 + size(bytes(self.body)) : 0) + ` +
        `(has(self.data) ? 10 + self.data.map(k, 6 + size(bytes(k)) + size(bytes(self.data[k]))).sum() : 0) <= ${MAX_PUSH_DATA_BYTES}`,
      message: `title, body and data together must fit the push API's ${MAX_PUSH_DATA_BYTES} bytes of JSON`,
      check: (m) => campaignPayloadBytes(m) <= MAX_PUSH_DATA_BYTES,
    },
    immutable('message'),
  ],
);
export type CampaignMessage = z.output<typeof messageSchema>;

export const campaignRateSchema = z
  .object({
    messagesPerSecond: z
      .int()
      .min(1)
      .max(1_000_000)
      .describe(
        'Messages sent per second (token bucket refill rate); capped by the RateLimitPolicy maximum.',
      ),
    burst: z
      .int()
      .min(1)
      .max(1_000_000)
      .optional()
      .describe('Most messages sent at once when tokens have accumulated. Defaults to messagesPerSecond.'),
  })
  .describe("Send rate of this campaign. Omit to use the RateLimitPolicy's default campaign rate.");

const HH_MM = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
const clock = (description: string) =>
  z.string().regex(HH_MM, 'must be a 24-hour time HH:MM, such as 22:00').describe(description);

/**
 * IANA zone names look like Area/Location (Asia/Shanghai, America/Argentina/Buenos_Aires,
 * Etc/GMT+8) or a single word (UTC). The pattern catches typos of shape; whether the zone
 * exists is checked against the tz database itself (Intl here; the API server's CEL loads it).
 */
export const TIME_ZONE = /^[A-Z][A-Za-z0-9_+-]*(\/[A-Z][A-Za-z0-9_+-]*)*$/;
export function isKnownTimeZone(name: string): boolean {
  if (!TIME_ZONE.test(name)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/**
 * An IANA time zone name. CEL has no "is this a zone" function, but getHours(zone) loads the
 * zone from the API server's tz database and fails on an unknown one; the failure rejects the
 * object with this field's path and the loader's message ("unknown time zone X"). The rule sits
 * on the string itself so the error names spec.schedule.quietHours.timeZone. 'Local' is excluded
 * because Go would resolve it to the API server's own zone.
 */
export const timeZoneSchema = withRules(
  z.string().min(1).max(64).regex(TIME_ZONE, 'must be an IANA time zone name such as Asia/Shanghai'),
  'IANA time zone the quiet hours are in, such as Asia/Shanghai.',
  [
    {
      rule: "self != 'Local' && timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0",
      message: 'must be a known IANA time zone such as Asia/Shanghai',
      check: isKnownTimeZone,
    },
  ],
);

export const quietHoursSchema = withRules(
  z.object({
    timeZone: timeZoneSchema,
    start: clock('Local time quiet hours begin (HH:MM, 24-hour), such as 22:00.'),
    end: clock(
      'Local time quiet hours end (HH:MM, 24-hour), such as 08:00; may be before start (overnight).',
    ),
  }),
  'Local hours in which nothing is sent; messages due then are deferred until the end, not dropped.',
  [
    {
      rule: 'self.start != self.end',
      message: 'quiet hours start and end must differ',
      fieldPath: '.end',
      check: (q) => q.start !== q.end,
    },
  ],
);
export type QuietHours = z.output<typeof quietHoursSchema>;

const dateTime = (description: string) => z.iso.datetime({ offset: true }).describe(description);

export const scheduleSchema = withRules(
  z.object({
    startTime: dateTime(
      'When sending may begin (RFC 3339). Defaults to as soon as the campaign is created.',
    ).optional(),
    deadline: dateTime(
      'When sending stops (RFC 3339); devices not reached by then are counted as expired. Must be after startTime.',
    ).optional(),
    quietHours: quietHoursSchema.optional(),
  }),
  'When the campaign sends.',
  [
    {
      rule: '!has(self.startTime) || !has(self.deadline) || timestamp(self.deadline) > timestamp(self.startTime)',
      message: 'deadline must be after startTime',
      fieldPath: '.deadline',
      check: (s) => !s.startTime || !s.deadline || Date.parse(s.deadline) > Date.parse(s.startTime),
    },
  ],
);
export type CampaignSchedule = z.output<typeof scheduleSchema>;

export const tagCampaignSpecSchema = z
  .object({
    gatewayRef: withRules(
      localObjectReferenceSchema('PushGateway that delivers the messages'),
      'Reference to the PushGateway that delivers the messages. Immutable.',
      [immutable('gatewayRef')],
    ),
    appId: withRules(appIdSchema(''), 'The app whose devices are targeted. Immutable.', [immutable('appId')]),
    target: targetSchema,
    message: messageSchema,
    rate: campaignRateSchema.optional(),
    schedule: defaultsToFull(scheduleSchema),
    suspend: z
      .boolean()
      .default(false)
      .describe('Pause sending; set back to false to resume where it stopped. Defaults to false.'),
    dryRun: z
      .boolean()
      .default(false)
      .describe('Resolve and count the targets without sending anything. Defaults to false.'),
    cancel: withRules(
      z.boolean().default(false),
      'Stop the campaign for good: nothing more is sent, what was sent stays counted, and the phase ' +
        'becomes Cancelled. One way: once true it cannot be set back to false (to send again, create a ' +
        'new campaign). To pause and resume later, use suspend instead. Defaults to false. ' +
        'Example: kubectl patch tagcampaign NAME --type=merge -p \'{"spec":{"cancel":true}}\'.',
      [
        {
          rule: 'oldSelf == false || self == true',
          message: 'a cancelled campaign cannot be resumed; create a new campaign to send again',
        },
      ],
    ),
  })
  .describe(
    'Desired state of the campaign. The audience is the devices that match the target when sending ' +
      'starts (a snapshot): devices that gain a tag later are not included.',
  );
export type TagCampaignSpec = z.output<typeof tagCampaignSpecSchema>;
export type TagCampaignSpecInput = z.input<typeof tagCampaignSpecSchema>;

export const CAMPAIGN_PHASES = [
  'Pending',
  'Running',
  'Suspended',
  'Completed',
  'Failed',
  'Cancelled',
] as const;
export type CampaignPhase = (typeof CAMPAIGN_PHASES)[number];

const counter = (description: string) => z.int().nonnegative().default(0).describe(description);
export const campaignCountersSchema = z
  .object({
    targeted: counter('Devices matched by the target.'),
    sent: counter('Messages handed to a gateway.'),
    delivered: counter(
      'Devices that read the message: a receipt, or the ack of a device that sends no receipts; each device once.',
    ),
    acked: counter('Messages the device acknowledged.'),
    deferred: counter('Messages held back by a rate limit or quiet hours (kept, sent later).'),
    expired: counter('Messages whose TTL or the deadline passed before delivery.'),
    failed: counter('Messages that could not be sent.'),
  })
  .describe('Running totals of the campaign.');
export type CampaignCounters = z.output<typeof campaignCountersSchema>;

export const tagCampaignStatusSchema = z
  .object({
    ...statusBaseFields,
    phase: z
      .enum(CAMPAIGN_PHASES)
      .optional()
      .describe(
        'Pending (waiting for startTime or for its gateway), Running, Suspended, Completed, Failed or Cancelled.',
      ),
    counters: campaignCountersSchema.optional(),
    progress: z
      .string()
      .max(40)
      .optional()
      .describe(
        'Targeted devices the dispatchers are done with (sent + expired + failed) out of all targeted, ' +
          'with the percent, such as 4200/10000 (42%) (for kubectl get).',
      ),
    plannedRatePerSecond: z
      .number()
      .nonnegative()
      .optional()
      .describe(
        "The rate the campaign runs at: spec.rate or the RateLimitPolicy's default, capped at its campaign maximum.",
      ),
    ratePerSecond: z
      .int()
      .nonnegative()
      .optional()
      .describe(
        'Messages per second the dispatchers sent over the last few seconds (the effective rate now).',
      ),
    estimatedCompletionTime: dateTime(
      'When the last message is expected to go out at the effective rate (absent while unknown).',
    ).optional(),
    eta: z
      .string()
      .max(32)
      .optional()
      .describe(
        'Time left until estimatedCompletionTime when status was last written, such as 3m20s (for kubectl get).',
      ),
    startTime: dateTime('When sending began.').optional(),
    completionTime: dateTime(
      'When the campaign completed, failed or was cancelled (its status is final then).',
    ).optional(),
  })
  .describe('Observed state of the campaign, written by the operator and the dispatcher.');
export type TagCampaignStatus = z.output<typeof tagCampaignStatusSchema>;

export const tagCampaignSchema = kindSchema(TAG_CAMPAIGN, tagCampaignSpecSchema, tagCampaignStatusSchema);
export type TagCampaign = z.output<typeof tagCampaignSchema>;

/** Validates a TagCampaign and applies the documented defaults. */
export const parseTagCampaign = (obj: unknown): TagCampaign =>
  parseOrThrow(TAG_CAMPAIGN.kind, tagCampaignSchema, obj);
