import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { applyLimit, applySysctl } from './apply.js';
import {
  buildReport,
  isTuned,
  nodeReportPatch,
  shouldReport,
  type DesiredLimit,
  type DesiredSysctl,
  type LimitOutcome,
  type TuningReport,
  type TuningScope,
} from './policy.js';

export interface NodeTunerOptions {
  scope: TuningScope;
  sysctlRoot: string;
  procRoot: string;
  sysctls: DesiredSysctl[];
  limits: DesiredLimit[];
  /** Where the report goes; undefined = logs only (no Node to write to). */
  reporter?: NodeReporter;
  reportRefreshMs: number;
  log: Logger;
  now?: () => Date;
}

/** Writes the report onto the Node as a merge patch (label + annotation, nothing else). */
export class NodeReporter {
  private readonly core: k8s.CoreV1Api;
  constructor(
    kc: k8s.KubeConfig,
    readonly nodeName: string,
  ) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  async report(report: TuningReport): Promise<void> {
    await this.core.patchNode(
      { name: this.nodeName, body: nodeReportPatch(report), fieldManager: 'pushgate-node-tuner' },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }
}

/**
 * One tuner: each `pass()` checks every sysctl and limit, re-applies whatever drifted,
 * verifies by reading back, and reports when something changed (or the report is stale).
 */
export class NodeTuner {
  private lastReported: TuningReport | undefined;
  /** The error of the last failed Node write, cleared by the next successful one. */
  lastReportError: Error | undefined;
  private passes = 0;
  private driftCorrections = 0;

  constructor(private readonly opts: NodeTunerOptions) {}

  async pass(): Promise<TuningReport> {
    const { opts } = this;
    const sysctls = [];
    for (const want of opts.sysctls) sysctls.push(await applySysctl(opts.sysctlRoot, want));
    const limits: LimitOutcome[] = [];
    for (const want of opts.limits) limits.push(...(await applyLimit(opts.procRoot, want)));

    const changed = [...sysctls, ...limits].filter((o) => o.state === 'applied');
    for (const o of changed) {
      const name = 'key' in o ? o.key : o.target;
      opts.log.info(
        { name, previous: o.previous, pass: this.passes },
        this.passes === 0 ? 'applied' : 'drift corrected',
      );
    }
    if (this.passes > 0) this.driftCorrections += changed.length;
    this.passes++;

    const report = buildReport(
      opts.scope,
      opts.sysctls,
      sysctls,
      limits,
      this.driftCorrections,
      (opts.now ?? (() => new Date()))(),
    );
    for (const [name, reason] of Object.entries(report.failed))
      opts.log.warn({ name, reason }, 'not applied');

    if (opts.reporter && shouldReport(this.lastReported, report, opts.reportRefreshMs)) {
      try {
        await opts.reporter.report(report);
        this.lastReported = report;
        this.lastReportError = undefined;
        opts.log.info({ node: opts.reporter.nodeName, tuned: isTuned(report) }, 'reported on node');
      } catch (err) {
        this.lastReportError = err as Error;
        // The next pass retries: lastReported stays as it was, so shouldReport() says yes again.
        opts.log.warn({ err, node: opts.reporter.nodeName }, 'could not report on node');
      }
    }
    return report;
  }
}
