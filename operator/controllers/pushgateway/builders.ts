import { createHash } from 'node:crypto';
import { envNameOf } from '../../../common/config.js';
import { gatewayOptions } from '../../../gateway/options.js';
import { dispatcherOptions } from '../../../workloads/dispatcher/options.js';
import { nodeTopologyOptions } from '../../../workloads/node-topology/options.js';
import { nodeTunerOptions } from '../../../workloads/node-tuner/options.js';
import { sidecarOptions } from '../../../workloads/sidecar/options.js';
import { ZONE_LABEL, regionNodeSelector, type PushGateway, type PushGatewayRegion } from '../../api/index.js';
import { LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY } from '../../identity.js';
import type { KubeObject } from '../../runtime/kube.js';
import {
  ANNOTATION_CONFIG_HASH,
  CONNECTIONS_METRIC,
  LABEL_GATEWAY_NAMESPACE,
  LABEL_REGION,
  childMeta,
  commonLabels,
  dispatcherSelector,
  gatewayName,
  names,
  namespaceOf,
  regionSelector,
} from './names.js';

/**
 * Pure builders: a PushGateway (parsed, defaults applied) in, the manifests of its children
 * out. No I/O and no clock, so golden files pin them (see builders.test.ts) and the
 * controller only applies what these return.
 *
 * How the programs are configured: every setting is an environment variable, named by the
 * program's own option spec (gateway/options.ts, workloads/sidecar/options.ts,
 * workloads/node-tuner/options.ts, through common/config.ts's envNameOf), so renaming an option
 * renames what the operator sets; builders.test.ts parses what these emit with the programs'
 * own parser. Settings common to all regions live in one ConfigMap, loaded with envFrom;
 * per-region and per-pod values (region, connection cap, pod identity) are plain env; the Redis
 * URL comes from the user's Secret.
 */
const gatewayEnv = (key: keyof typeof gatewayOptions & string) => envNameOf(gatewayOptions, key);
const sidecarEnv = (key: keyof typeof sidecarOptions & string) => envNameOf(sidecarOptions, key);
const tunerEnv = (key: keyof typeof nodeTunerOptions & string) => envNameOf(nodeTunerOptions, key);
const topologyEnv = (key: keyof typeof nodeTopologyOptions & string) => envNameOf(nodeTopologyOptions, key);

export interface BuildOptions {
  /** Image when spec.image is empty: the operator's own (one image runs every pushgate program). */
  defaultImage: string;
}

const WS_PORT_NAME = 'ws';
/** /metrics and the probes, plain HTTP even when the device port serves TLS; not in the Service. */
const METRICS_PORT_NAME = 'metrics';
const TLS_MOUNT = '/etc/pushgate/tls';
const APPS_MOUNT = '/etc/pushgate/apps';
/** The Node's zone and region, written by the node-topology init container for the gateway. */
const TOPOLOGY_MOUNT = '/run/pushgate-topology';
/** Seconds on top of the drain grace for the process to exit after draining. */
const EXIT_MARGIN_SECONDS = 15;
const PRESTOP_PAUSE_SECONDS = 5;

const imageOf = (gw: PushGateway, o: BuildOptions) => gw.spec.image ?? o.defaultImage;

/** A stable hash of string data (sorted keys), short enough for an annotation. */
export function hashOf(data: Record<string, string>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(data).sort()) h.update(`${k}\0${data[k]}\0`);
  return h.digest('hex').slice(0, 16);
}

/**
 * Gateway settings shared by every region, as the gateway reads them. The gateway serves
 * devices and the push API on spec.ports.websocket, /metrics and the probes on
 * spec.ports.metrics (plain HTTP, not in the Service), and drains on SIGTERM.
 */
export function gatewayConfigData(gw: PushGateway): Record<string, string> {
  const s = gw.spec;
  return {
    [gatewayEnv('port')]: String(s.ports.websocket),
    [gatewayEnv('metricsPort')]: String(s.ports.metrics),
    [gatewayEnv('heartbeatMinMs')]: String(s.heartbeat.minSeconds * 1000),
    [gatewayEnv('heartbeatMaxMs')]: String(s.heartbeat.maxSeconds * 1000),
    [gatewayEnv('heartbeatInitialMs')]: String(s.heartbeat.initialSeconds * 1000),
    [gatewayEnv('drainRate')]: String(s.drain.closesPerSecond),
    [gatewayEnv('drainGraceMs')]: String(s.drain.gracePeriodSeconds * 1000),
    [gatewayEnv('maxTagsPerApp')]: String(s.protection.maxTagsPerApp),
    [gatewayEnv('tagUpdatesPerMinute')]: String(s.protection.tagUpdatesPerMinute),
    [gatewayEnv('frameRate')]: String(s.protection.framesPerSecond),
    [gatewayEnv('maxPendingHandshakes')]: String(s.protection.maxPendingHandshakes),
    [gatewayEnv('maxPendingHandshakesPerAddress')]: String(s.protection.maxPendingHandshakesPerAddress),
    ...(s.tls
      ? {
          [gatewayEnv('tlsCertFile')]: `${TLS_MOUNT}/tls.crt`,
          [gatewayEnv('tlsKeyFile')]: `${TLS_MOUNT}/tls.key`,
        }
      : {}),
    ...(s.apps ? { [gatewayEnv('appsFile')]: APPS_MOUNT } : {}),
  };
}

export function buildGatewayConfigMap(gw: PushGateway): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMeta(gw, names.config(gw), 'config'),
    data: gatewayConfigData(gw),
  };
}

const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });

/** The app the sidecar's probe device belongs to: its own, never a real one. */
export const PROBE_APP = 'pushgate-probe';
export const PROBE_SECRET_KEY = 'secret';

const probeSecretEnv = (gw: PushGateway) => ({
  name: sidecarEnv('probeSecret'),
  valueFrom: { secretKeyRef: { name: names.probeSecret(gw), key: PROBE_SECRET_KEY } },
});

/**
 * The probe app's secret, generated once per PushGateway by the controller (the value is an
 * input so this stays pure). The gateway learns the probe app from it and the sidecar signs its
 * probe device's token with it.
 */
export function buildProbeSecret(gw: PushGateway, secret: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMeta(gw, names.probeSecret(gw), 'gateway'),
    type: 'Opaque',
    data: { [PROBE_SECRET_KEY]: Buffer.from(secret).toString('base64') },
  };
}

/**
 * Env every pushgate container of a gateway pod shares: pod identity, region, Redis. (The
 * sidecar reads the gateway's own variables for these: sidecarOptions spreads the same specs.)
 */
function podEnv(gw: PushGateway, region: PushGatewayRegion) {
  return [
    { name: gatewayEnv('region'), value: region.name },
    fieldEnv(gatewayEnv('podName'), 'metadata.name'),
    fieldEnv(gatewayEnv('namespace'), 'metadata.namespace'),
    fieldEnv(gatewayEnv('podIp'), 'status.podIP'),
    {
      name: gatewayEnv('redisUrl'),
      valueFrom: { secretKeyRef: { name: gw.spec.redis.secretName, key: gw.spec.redis.key } },
    },
    { name: gatewayEnv('redisCluster'), value: String(gw.spec.redis.cluster) },
    { name: gatewayEnv('keyPrefix'), value: gw.spec.redis.keyPrefix },
  ];
}

/** /readyz and /healthz on the metrics port; liveness lenient (a restart costs a gateway its connections). */
const metricsPortProbes = {
  readinessProbe: {
    httpGet: { path: '/readyz', port: METRICS_PORT_NAME },
    periodSeconds: 5,
    failureThreshold: 2,
  },
  livenessProbe: {
    httpGet: { path: '/healthz', port: METRICS_PORT_NAME },
    initialDelaySeconds: 10,
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold: 6,
  },
};

const restrictedSecurityContext = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
};

export function buildGatewayDeployment(
  gw: PushGateway,
  region: PushGatewayRegion,
  o: BuildOptions,
): KubeObject {
  const s = gw.spec;
  const selector = regionSelector(gw, region.name);
  const configHash = hashOf(gatewayConfigData(gw));
  const gateway = {
    name: 'gateway',
    image: imageOf(gw, o),
    imagePullPolicy: s.imagePullPolicy,
    command: ['pushgate', 'gateway'],
    ports: [
      { name: WS_PORT_NAME, containerPort: s.ports.websocket, protocol: 'TCP' },
      { name: METRICS_PORT_NAME, containerPort: s.ports.metrics, protocol: 'TCP' },
    ],
    envFrom: [{ configMapRef: { name: names.config(gw) } }],
    env: [
      ...podEnv(gw, region),
      { name: gatewayEnv('maxConnections'), value: String(region.maxConnectionsPerPod) },
      probeSecretEnv(gw),
      // Kubernetes expands $(VAR) from earlier entries: the probe app joins the gateway's apps.
      { name: gatewayEnv('apps'), value: `${PROBE_APP}:$(${sidecarEnv('probeSecret')})` },
      { name: gatewayEnv('zoneFile'), value: `${TOPOLOGY_MOUNT}/zone` },
    ],
    resources: s.resources,
    // Ready = accepting devices (false while draining, so the Service stops sending new ones).
    // Liveness is lenient: a restart drops every connection of the pod.
    ...metricsPortProbes,
    // The gateway drains on SIGTERM (readiness off, then closes at drain.closesPerSecond with
    // code 1012). The short preStop pause lets the Service drop the pod first, so no new
    // device lands on a pod that is about to close it; the grace period covers the drain.
    lifecycle: { preStop: { sleep: { seconds: PRESTOP_PAUSE_SECONDS } } },
    securityContext: restrictedSecurityContext,
    volumeMounts: [
      { name: 'topology', mountPath: TOPOLOGY_MOUNT, readOnly: true },
      ...(s.tls ? [{ name: 'tls', mountPath: TLS_MOUNT, readOnly: true }] : []),
      ...(s.apps ? [{ name: 'apps', mountPath: APPS_MOUNT, readOnly: true }] : []),
    ],
  };
  // The downward API cannot read Node labels: this reads the pod's Node (get, through the
  // ClusterRole pushgate-gateway-node-reader) and writes its zone for the gateway's registry
  // record and the locator's answers (workloads/node-topology).
  const nodeTopology = {
    name: 'node-topology',
    image: imageOf(gw, o),
    imagePullPolicy: s.imagePullPolicy,
    command: ['pushgate', 'node-topology'],
    env: [
      fieldEnv(topologyEnv('nodeName'), 'spec.nodeName'),
      { name: topologyEnv('outDir'), value: TOPOLOGY_MOUNT },
    ],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
    securityContext: restrictedSecurityContext,
    volumeMounts: [{ name: 'topology', mountPath: TOPOLOGY_MOUNT }],
  };
  const sidecar = {
    name: 'sidecar',
    image: imageOf(gw, o),
    imagePullPolicy: s.imagePullPolicy,
    command: ['pushgate', 'sidecar'],
    envFrom: [{ configMapRef: { name: names.config(gw) } }],
    env: [...podEnv(gw, region), probeSecretEnv(gw), { name: sidecarEnv('probeApp'), value: PROBE_APP }],
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    securityContext: restrictedSecurityContext,
  };
  const topologySpreadConstraints = s.placement.zoneSpread.enabled
    ? [
        {
          maxSkew: s.placement.zoneSpread.maxSkew,
          topologyKey: ZONE_LABEL,
          whenUnsatisfiable: s.placement.zoneSpread.whenUnsatisfiable,
          labelSelector: { matchLabels: selector },
          // Spread each rollout revision on its own, so old and new pods do not skew each other.
          matchLabelKeys: ['pod-template-hash'],
        },
      ]
    : undefined;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMeta(gw, names.region(gw, region.name), 'gateway', { [LABEL_REGION]: region.name }),
    spec: {
      // No `replicas`: the HPA owns it. Server-side apply would reset a field we stop sending,
      // and fight the HPA over one we keep sending.
      selector: { matchLabels: selector },
      // Replace pods one at a time and never below the wanted count: each pod drains its
      // connections at a set rate, so a rollout is a slow, steady handover.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      revisionHistoryLimit: 5,
      template: {
        metadata: {
          labels: { ...commonLabels(gw, 'gateway'), ...selector },
          annotations: { [ANNOTATION_CONFIG_HASH]: configHash },
        },
        spec: {
          serviceAccountName: names.gatewayServiceAccount(gw),
          terminationGracePeriodSeconds:
            PRESTOP_PAUSE_SECONDS + s.drain.gracePeriodSeconds + EXIT_MARGIN_SECONDS,
          nodeSelector: regionNodeSelector(region),
          ...(s.placement.tolerations.length ? { tolerations: s.placement.tolerations } : {}),
          ...(topologySpreadConstraints ? { topologySpreadConstraints } : {}),
          securityContext: {
            runAsUser: 10001,
            runAsGroup: 10001,
            fsGroup: 10001,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          initContainers: [nodeTopology],
          containers: [gateway, sidecar, ...s.sidecars],
          volumes: [
            { name: 'topology', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
            ...(s.tls ? [{ name: 'tls', secret: { secretName: s.tls.secretName } }] : []),
            ...(s.apps ? [{ name: 'apps', secret: { secretName: s.apps.secretName } }] : []),
          ],
        },
      },
    },
  };
}

export function buildGatewayService(gw: PushGateway, region: PushGatewayRegion): KubeObject {
  const s = gw.spec;
  const annotations = s.service.annotations;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      ...childMeta(gw, names.region(gw, region.name), 'gateway', { [LABEL_REGION]: region.name }),
      ...(Object.keys(annotations).length ? { annotations } : {}),
    },
    spec: {
      type: s.service.type,
      selector: regionSelector(gw, region.name),
      ports: [{ name: WS_PORT_NAME, port: s.ports.websocket, targetPort: WS_PORT_NAME, protocol: 'TCP' }],
      // Devices connect from outside: keep their source address and avoid a second hop.
      ...(s.service.type === 'ClusterIP' ? {} : { externalTrafficPolicy: 'Local' }),
    },
  };
}

export function buildGatewayHPA(gw: PushGateway, region: PushGatewayRegion): KubeObject {
  const sc = gw.spec.scaling;
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: childMeta(gw, names.region(gw, region.name), 'gateway', { [LABEL_REGION]: region.name }),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: names.region(gw, region.name) },
      minReplicas: region.minReplicas,
      maxReplicas: region.maxReplicas,
      metrics: [
        {
          type: 'Pods',
          pods: {
            metric: { name: CONNECTIONS_METRIC },
            target: { type: 'AverageValue', averageValue: String(region.targetConnectionsPerPod) },
          },
        },
      ],
      behavior: {
        // Up fast (devices are waiting), down slowly: each removed pod hands its devices
        // to the others, and many at once would be a reconnect storm.
        scaleUp: {
          stabilizationWindowSeconds: 0,
          selectPolicy: 'Max',
          policies: [
            { type: 'Percent', value: 100, periodSeconds: 60 },
            { type: 'Pods', value: 4, periodSeconds: 60 },
          ],
        },
        scaleDown: {
          stabilizationWindowSeconds: sc.scaleDownStabilizationSeconds,
          selectPolicy: 'Min',
          policies: [{ type: 'Pods', value: sc.scaleDownPodsPerMinute, periodSeconds: 60 }],
        },
      },
    },
  };
}

export function buildGatewayPDB(gw: PushGateway, region: PushGatewayRegion): KubeObject {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: childMeta(gw, names.region(gw, region.name), 'gateway', { [LABEL_REGION]: region.name }),
    spec: {
      // One pod of a region draining at a time, whether for a node drain or a rollout.
      maxUnavailable: 1,
      selector: { matchLabels: regionSelector(gw, region.name) },
      // A pod that is not ready holds no devices; never let it block a node drain.
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  };
}

/** Node affinity for "any node of any of the regions": one term per region (terms are ORed). */
export function regionsNodeAffinity(regions: readonly PushGatewayRegion[]) {
  return {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: regions.map((r) => ({
          matchExpressions: Object.entries(regionNodeSelector(r)).map(([key, value]) => ({
            key,
            operator: 'In',
            values: [value],
          })),
        })),
      },
    },
  };
}

/** `k=v` pairs for `pushgate node-tuner --sysctls` (sorted, so the pod template is stable). */
export const sysctlFlag = (sysctls: Record<string, string>) =>
  Object.keys(sysctls)
    .sort()
    .map((k) => `${k}=${sysctls[k]}`)
    .join(',');

export function buildNodeTunerDaemonSet(gw: PushGateway, o: BuildOptions): KubeObject {
  const t = gw.spec.nodeTuning;
  const labels = { ...commonLabels(gw, 'node-tuner') };
  const selector = {
    'app.kubernetes.io/instance': gatewayName(gw),
    'app.kubernetes.io/component': 'node-tuner',
  };
  const env = [
    fieldEnv(tunerEnv('nodeName'), 'spec.nodeName'),
    { name: tunerEnv('scope'), value: 'host' },
    { name: tunerEnv('nofile'), value: String(t.nofile) },
    // The gateway's limit is inherited from the container runtime; raise both.
    { name: tunerEnv('nofileTargets'), value: 'containerd,node' },
    ...(Object.keys(t.sysctls).length ? [{ name: tunerEnv('sysctls'), value: sysctlFlag(t.sysctls) }] : []),
  ];
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: childMeta(gw, names.nodeTuner(gw), 'node-tuner'),
    spec: {
      selector: { matchLabels: selector },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } },
      template: {
        metadata: { labels: { ...labels, ...selector } },
        spec: {
          serviceAccountName: names.nodeTunerServiceAccount(gw),
          // Host sysctls (net.*) live in the host network namespace; process limits need host PIDs.
          hostNetwork: true,
          hostPID: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          affinity: regionsNodeAffinity(gw.spec.regions),
          tolerations: [...gw.spec.placement.tolerations, { operator: 'Exists', effect: 'NoSchedule' }],
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'node-tuner',
              image: imageOf(gw, o),
              imagePullPolicy: gw.spec.imagePullPolicy,
              command: ['pushgate', 'node-tuner'],
              env,
              resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } },
              // Root: the image runs as 65532, which may not write /proc/sys even when privileged.
              securityContext: { privileged: true, runAsUser: 0, readOnlyRootFilesystem: true },
            },
          ],
        },
      },
    },
  };
}

/**
 * The identities the pods run as. Gateway pods get a namespaced Role (read pods, record
 * events for drains) and `get` on Nodes (their init container reads the Node's zone);
 * node tuners need to patch their Node (label + annotation with the
 * tuning report), which only a ClusterRole can grant: the ClusterRole is shared and the
 * ClusterRoleBinding is per PushGateway. Cluster-scoped objects cannot be owned by a
 * namespaced PushGateway, so they carry owner labels and the controller deletes them.
 */
export function buildGatewayRBAC(gw: PushGateway): KubeObject[] {
  const ns = namespaceOf(gw);
  const gatewaySA = names.gatewayServiceAccount(gw);
  const objs: KubeObject[] = [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: childMeta(gw, gatewaySA, 'gateway'),
      automountServiceAccountToken: true,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: childMeta(gw, gatewaySA, 'gateway'),
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: childMeta(gw, gatewaySA, 'gateway'),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: gatewaySA },
      subjects: [{ kind: 'ServiceAccount', name: gatewaySA, namespace: ns }],
    },
    // The node-topology init container reads its Node's labels: get on nodes, nothing else.
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: {
        name: names.gatewayNodeReaderClusterRole,
        labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_PART_OF]: 'pushgate' },
      },
      rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: {
        name: names.gatewayNodeReaderClusterRoleBinding(gw),
        labels: { ...commonLabels(gw, 'gateway'), [LABEL_GATEWAY_NAMESPACE]: ns },
      },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: names.gatewayNodeReaderClusterRole,
      },
      subjects: [{ kind: 'ServiceAccount', name: gatewaySA, namespace: ns }],
    },
  ];
  if (gw.spec.nodeTuning.enabled) objs.push(...buildNodeTunerRBAC(gw));
  return objs;
}

export function buildNodeTunerRBAC(gw: PushGateway): KubeObject[] {
  const ns = namespaceOf(gw);
  const sa = names.nodeTunerServiceAccount(gw);
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: childMeta(gw, sa, 'node-tuner') },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: {
        name: names.nodeTunerClusterRole,
        labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_PART_OF]: 'pushgate' },
      },
      rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: {
        name: names.nodeTunerClusterRoleBinding(gw),
        labels: { ...commonLabels(gw, 'node-tuner'), [LABEL_GATEWAY_NAMESPACE]: ns },
      },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: names.nodeTunerClusterRole,
      },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }],
    },
  ];
}

/**
 * The dispatcher's settings, named by its own option spec (workloads/dispatcher/options.ts):
 * the Redis options every program shares (PUSHGATE_REDIS_URL from the gateways' own Secret,
 * PUSHGATE_REDIS_CLUSTER and PUSHGATE_KEY_PREFIX from spec.redis, so dispatchers and gateways
 * share one Redis, cluster mode and key prefix)
 * and `--port` (PUSHGATE_PORT, as the locator's), the port of /metrics, /healthz and /readyz:
 * spec.ports.metrics, in a pod of its own. The inbox bounds are the gateways' defaults on both.
 */
const dispatcherEnv = (key: keyof typeof dispatcherOptions & string) => envNameOf(dispatcherOptions, key);
export const DISPATCHER_ENV = {
  redisUrl: dispatcherEnv('redisUrl'),
  redisCluster: dispatcherEnv('redisCluster'),
  keyPrefix: dispatcherEnv('keyPrefix'),
  port: dispatcherEnv('port'),
  podName: 'POD_NAME',
  podNamespace: 'POD_NAMESPACE',
} as const;

/**
 * The campaign dispatcher (`pushgate dispatcher`) of one PushGateway: it reads the campaigns
 * the TagCampaign controller publishes into the gateway's Redis and sends them through the
 * same acceptance path as the push API. It never talks to the Kubernetes API (no token is
 * mounted); replicas split each campaign by device bucket, so a fixed count, no HPA.
 */
export function buildDispatcherDeployment(gw: PushGateway, o: BuildOptions): KubeObject {
  const s = gw.spec;
  const selector = dispatcherSelector(gw);
  const container = {
    name: 'dispatcher',
    image: imageOf(gw, o),
    imagePullPolicy: s.imagePullPolicy,
    command: ['pushgate', 'dispatcher'],
    ports: [{ name: METRICS_PORT_NAME, containerPort: s.ports.metrics, protocol: 'TCP' }],
    env: [
      fieldEnv(DISPATCHER_ENV.podName, 'metadata.name'),
      fieldEnv(DISPATCHER_ENV.podNamespace, 'metadata.namespace'),
      { name: DISPATCHER_ENV.port, value: String(s.ports.metrics) },
      {
        name: DISPATCHER_ENV.redisUrl,
        valueFrom: { secretKeyRef: { name: s.redis.secretName, key: s.redis.key } },
      },
      { name: DISPATCHER_ENV.redisCluster, value: String(s.redis.cluster) },
      { name: DISPATCHER_ENV.keyPrefix, value: s.redis.keyPrefix },
    ],
    resources: s.dispatcher.resources,
    ...metricsPortProbes,
    securityContext: restrictedSecurityContext,
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: childMeta(gw, names.dispatcher(gw), 'dispatcher'),
    spec: {
      replicas: s.dispatcher.replicas,
      selector: { matchLabels: selector },
      // A dispatcher killed mid-campaign loses nothing (the cursor is in Redis): replace freely.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } },
      revisionHistoryLimit: 5,
      template: {
        metadata: { labels: { ...commonLabels(gw, 'dispatcher'), ...selector } },
        spec: {
          serviceAccountName: names.dispatcher(gw),
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 30,
          ...(s.placement.tolerations.length ? { tolerations: s.placement.tolerations } : {}),
          securityContext: {
            runAsUser: 10001,
            runAsGroup: 10001,
            fsGroup: 10001,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [container],
        },
      },
    },
  };
}

/** The dispatcher's identity: no Role, no token (it reads and writes Redis only). */
export function buildDispatcherServiceAccount(gw: PushGateway): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: childMeta(gw, names.dispatcher(gw), 'dispatcher'),
    automountServiceAccountToken: false,
  };
}

/** Every child of a PushGateway, in the order they are applied (config and identities before pods). */
export function buildAll(gw: PushGateway, o: BuildOptions): KubeObject[] {
  const objs: KubeObject[] = [
    ...buildGatewayRBAC(gw),
    ...(gw.spec.dispatcher.enabled ? [buildDispatcherServiceAccount(gw)] : []),
    buildGatewayConfigMap(gw),
  ];
  for (const region of gw.spec.regions) {
    objs.push(
      buildGatewayDeployment(gw, region, o),
      buildGatewayService(gw, region),
      buildGatewayHPA(gw, region),
      buildGatewayPDB(gw, region),
    );
  }
  if (gw.spec.nodeTuning.enabled) objs.push(buildNodeTunerDaemonSet(gw, o));
  if (gw.spec.dispatcher.enabled) objs.push(buildDispatcherDeployment(gw, o));
  return objs;
}
