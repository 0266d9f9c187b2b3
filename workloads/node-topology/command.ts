import * as k8s from '@kubernetes/client-node';
import { defineCommand } from '../../cli/command.js';
import { nodeTopologyOptions } from './options.js';
import { topologyOf, writeTopology, ZONE_LABEL } from '../../common/topology.js';

/**
 * `pushgate node-topology`: the init container of every gateway pod. Reads the pod's Node and
 * writes its topology labels (zone, region) to files the gateway reads at start, because the
 * downward API cannot expose Node labels (KEP-4742's PodTopologyLabelsAdmission, which copies
 * them to the pod, is alpha and off by default in Kubernetes 1.33-1.34). Strimzi does the same
 * for Kafka's rack. Needs `get` on that Node (ClusterRole pushgate-gateway-node-reader).
 * Fails, visibly (Init:Error), when the Node cannot be read; a Node without a zone label is
 * not an error: the gateway keeps its --zone.
 */
export const nodeTopologyCommand = defineCommand({
  name: 'node-topology',
  summary: "Write the pod's Node zone and region to files for the gateway (init container).",
  options: nodeTopologyOptions,
  async run(config, log) {
    const kc = new k8s.KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromCluster();
    const node = await kc.makeApiClient(k8s.CoreV1Api).readNode({ name: config.nodeName });
    const topology = topologyOf(node.metadata?.labels);
    writeTopology(config.outDir, topology);
    if (!topology.zone) log.warn({ node: config.nodeName }, `node has no ${ZONE_LABEL} label`);
    log.info({ node: config.nodeName, ...topology, outDir: config.outDir }, 'node topology written');
  },
});
