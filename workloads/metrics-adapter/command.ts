import * as k8s from '@kubernetes/client-node';
import { z } from 'zod';
import { defineCommand, untilSignal } from '../../cli/command.js';
import { kubeconfigOption, opt } from '../../common/config.js';
import { redisFromConfig, redisOptions } from '../../common/redis/options.js';
import { loadRequestHeaderConfig, type RequestHeaderConfig } from './auth.js';
import { createAdapterServer, updateClientCA } from './server.js';
import { apiServerPodLister, redisConnectionSource } from './source.js';
import { loadServingCert } from './tls.js';

export const metricsAdapterCommand = defineCommand({
  name: 'metrics-adapter',
  summary:
    'Serve custom.metrics.k8s.io (per-pod gateway connection counts from the Redis registry) to the HPA through the aggregation layer.',
  options: {
    port: { schema: opt.port(6443), description: 'HTTPS port the aggregator calls.' },
    host: { schema: opt.host(), description: 'Address to listen on.' },
    ...redisOptions,
    kubeconfig: kubeconfigOption,
    tlsCertFile: {
      schema: z.string().default(''),
      description: 'Serving certificate (PEM); empty = self-signed at start.',
    },
    tlsKeyFile: { schema: z.string().default(''), description: 'Serving key (PEM), with --tls-cert-file.' },
    tlsSans: {
      schema: z.array(z.string().min(1)).default(['localhost', '127.0.0.1']),
      description:
        'Names of the self-signed serving certificate, comma-separated; include <service>.<namespace>.svc of the APIService.',
    },
    requestheaderClientCaFile: {
      schema: z.string().default(''),
      description:
        'CA that signs the front proxy client certificate; empty = requestheader-client-ca-file of kube-system/extension-apiserver-authentication.',
    },
    requestheaderAllowedNames: {
      schema: z.array(z.string()).default([]),
      description:
        'Front proxy certificate CNs to accept; empty = the ConfigMap list (empty there = any CN the CA signed).',
    },
    authReloadSeconds: {
      schema: opt.duration(60),
      description: 'How often the request-header ConfigMap is re-read (client CA rotation).',
    },
  },
  async run(config, log) {
    const kc = new k8s.KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromCluster();
    const loadAuth = () =>
      loadRequestHeaderConfig(kc, {
        clientCAFile: config.requestheaderClientCaFile || undefined,
        allowedNames: config.requestheaderAllowedNames,
      });
    let requestHeader: RequestHeaderConfig = await loadAuth();
    const serving = await loadServingCert(config.tlsCertFile, config.tlsKeyFile, config.tlsSans);
    const { redis, keys } = redisFromConfig(config, 'metrics-adapter');
    const server = createAdapterServer(
      {
        source: redisConnectionSource(redis, keys),
        pods: apiServerPodLister(kc),
        requestHeader: () => requestHeader,
        log,
      },
      serving,
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, resolve);
    });
    const address = server.address();
    log.info(
      {
        port: typeof address === 'object' && address ? address.port : config.port,
        allowedNames: requestHeader.allowedNames,
        selfSigned: !config.tlsCertFile,
      },
      'metrics adapter serving custom.metrics.k8s.io',
    );

    const reload = setInterval(() => {
      loadAuth().then(
        (next) => {
          if (next.clientCA !== requestHeader.clientCA) {
            updateClientCA(server, serving, next.clientCA);
            log.info('request-header client CA changed; new connections use it');
          }
          requestHeader = next;
        },
        (err: unknown) =>
          log.warn({ err }, 'could not reload request-header settings; keeping the last ones'),
      );
    }, config.authReloadSeconds * 1000);

    await untilSignal();
    clearInterval(reload);
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    redis.disconnect();
    log.info('metrics adapter stopped');
  },
});
