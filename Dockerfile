# The one pushgate image: every program is `pushgate <command>` (operator, gateway, sidecar,
# node-tuner, locator, metrics-adapter, ...). No image can be built on the development machines
# of this project (no Docker engine there); CI builds and tests from source instead.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm install --no-fund --no-audit
COPY tsconfig.json tsconfig.build.json ./
COPY cli cli
COPY common common
COPY operator operator
COPY gateway gateway
COPY workloads workloads
COPY client client
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
# procps for sysctl verification by the node tuner; tini reaps children and forwards SIGTERM
# so the gateway's drain runs on pod termination.
RUN apt-get update && apt-get install -y --no-install-recommends tini procps && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
COPY package.json ./
USER 65532:65532
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/cli/pushgate.js"]
CMD ["--help"]
