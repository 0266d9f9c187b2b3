# Real nodes for hack/local-cluster (sourced, not run): kubelets with their own containerd and
# runc beside the kwok nodes, kube-proxy for Services, all on this machine and nowhere else.
#
# What each real node has of its own:
#   - mount and PID namespaces (unshare) holding its containerd and kubelet, with private /run,
#     /var/lib and /var/log bind-mounted from the node's state dir. So the paths that kubelet
#     and containerd hard-code (/run/containerd/containerd.sock, which cadvisor reads,
#     /var/lib/kubelet/device-plugins, /var/log/containers, /var/lib/cni, /run/netns) are per
#     node, and every mount the node makes (root-dir bind, secret tmpfs, overlay rootfs, netns
#     files) dies with its namespace instead of landing on the host. A hostPID pod sees its
#     node's processes, not the machine's; stopping the node's first process ends them all;
#   - containerd config (root, state, socket, cgroupfs, restrict_oom_score_adj, sandbox image,
#     every registry pointed at 127.0.0.1:9 so nothing is ever pulled from outside);
#   - kubelet: node IP on the dummy interface, ports 10250/10248 bound to that IP only, cgroup
#     root /pushgate-<node>, a client cert O=system:nodes CN=system:node:<node>, serving cert;
#   - a CNI bridge pgbr<i> with pod CIDR 198.18.<i>.0/24 and no default route in the pods.
# Shared by the nodes (one network namespace, the host's): the dummy interface pgnodes0 (a
# port-less bridge where the kernel lacks the dummy driver), the
# iptables chains (kube-proxy's KUBE-SERVICES and the kubelet's KUBE-FIREWALL exist once per
# network namespace, so ONE kube-proxy serves all real nodes, and only one cluster at a time
# may have real nodes: $PUSHGATE_CACHE/real-nodes.owner), the sysctls the kubelet sets.
#
# Addresses (198.18.0.0/15 is a benchmarking range; this machine's own LAN is 192.0.2.0/24):
#   198.18.0.1        the control plane's address for pods (kube-apiserver, Redis) on pgnodes0
#   198.18.0.1<i>     node i's InternalIP on pgnodes0
#   198.18.<i>.0/24   node i's pods (bridge pgbr<i>, gateway .1)
#   198.19.0.0/20     Services;  198.19.128.0/17  kwok's simulated pod IPs (never reachable)
# An `unreachable 198.18.0.0/15` route keeps anything in the range that is not local from
# following the default route off the machine.

RN_HOST_IP=198.18.0.1
RN_DUMMY=pgnodes0
RN_RANGE=198.18.0.0/15
RN_POD_RANGE=198.18.0.0/16
RN_SERVICE_RANGE=198.19.0.0/20
RN_OWNER="$PUSHGATE_CACHE/real-nodes.owner"

rn_node_name() { echo "real-$1"; }  # region
rn_node_ip() { echo "198.18.0.1$1"; }

rn_need() {
  [ "$(id -u)" = 0 ] || die "real nodes need root (network interfaces, cgroups, mount namespaces)"
  local missing=""
  command -v containerd >/dev/null 2>&1 || missing+=" containerd"
  command -v runc >/dev/null 2>&1 || missing+=" runc"
  [ -x /usr/lib/cni/bridge ] || missing+=" containernetworking-plugins"
  command -v iptables >/dev/null 2>&1 || missing+=" iptables"
  command -v unshare >/dev/null 2>&1 || missing+=" util-linux"
  if [ -n "$missing" ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing:$missing (install Debian's containerd runc containernetworking-plugins iptables)"
    log "installing Debian's containerd, runc, CNI plugins, iptables (missing:$missing)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc \
      containernetworking-plugins iptables util-linux >/dev/null) || die "apt-get install of$missing failed"
  fi
  local b; for b in kubelet kube-proxy; do
    [ -x "$bin/$b" ] || die "$b is not built: run hack/build-binaries"
  done
}

# --- one owner at a time -----------------------------------------------------------------------
rn_claim() {
  local other waited=0 limit="${PUSHGATE_REAL_NODES_WAIT:-0}"
  mkdir -p "$PUSHGATE_CACHE"
  exec 8>"$RN_OWNER.lock"
  for (( ; ; )); do
    flock 8
    other="$(cat "$RN_OWNER" 2>/dev/null || true)"
    if [ -z "$other" ] || [ "$other" = "$dir" ] || ! pid_alive "$other/pids/kube-apiserver"; then break; fi
    flock -u 8
    [ "$waited" -lt "$limit" ] || die "real nodes are in use by the cluster in $other (one network namespace holds one kube-proxy): stop it with hack/local-cluster down --name $(basename "$other"), or set PUSHGATE_REAL_NODES_WAIT=SECONDS to wait"
    [ "$waited" = 0 ] && log "real nodes are in use by $other; waiting up to ${limit}s"
    sleep 5; waited=$((waited + 5))
  done
  if [ -n "$other" ] && [ "$other" != "$dir" ]; then
    log "cleaning up real-node leftovers of $other"
    rn_host_down "$other"
  fi
  echo "$dir" >"$RN_OWNER"
  flock -u 8
}

# --- the host part: saved sysctls, the dummy interface, the unreachable route --------------
rn_host_up() {
  local h="$dir/host" k
  mkdir -p "$h"
  # Every sysctl the kubelet, kube-proxy or a privileged pod (the node tuner) may write, as it
  # was: teardown writes back each one that changed.
  if [ ! -f "$h/sysctls" ]; then
    "$here/host-state" sysctls >"$h/sysctls.tmp"
    mv "$h/sysctls.tmp" "$h/sysctls"
  fi
  # A dummy interface; where the kernel has no dummy driver (this machine's), a bridge with no
  # ports does the same: local addresses that no packet can leave through.
  ip link show "$RN_DUMMY" >/dev/null 2>&1 || ip link add "$RN_DUMMY" type dummy 2>/dev/null \
    || ip link add "$RN_DUMMY" type bridge || die "could not create the interface $RN_DUMMY"
  local a; for a in "$RN_HOST_IP" 198.18.0.11 198.18.0.12 198.18.0.13; do
    ip addr replace "$a/32" dev "$RN_DUMMY"
  done
  ip link set "$RN_DUMMY" up
  ip route replace unreachable "$RN_RANGE"
  # The host's own connections to a Service need a route before kube-proxy's OUTPUT DNAT
  # rewrites them; one into the port-less interface, where an unmatched one is dropped.
  ip route replace "$RN_SERVICE_RANGE" dev "$RN_DUMMY"
  sysctl -qw net.ipv4.ip_forward=1
}

# Removes every KUBE-* chain and every rule that jumps to one, in all tables, IPv4 and IPv6.
rn_iptables_clean() {
  local fam t chains rules
  for fam in iptables ip6tables; do
    command -v "$fam-save" >/dev/null 2>&1 || continue
    for t in filter nat mangle raw; do
      chains="$("$fam-save" -t "$t" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p')"
      rules="$("$fam-save" -t "$t" 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' || true)"
      [ -n "$chains$rules" ] || continue
      {
        echo "*$t"
        [ -n "$rules" ] && printf '%s\n' "$rules" | sed 's/^-A /-D /'
        for c in $chains; do echo "-F $c"; done
        for c in $chains; do echo "-X $c"; done
        echo COMMIT
      } | "$fam-restore" --noflush || log "could not remove the KUBE-* chains from $fam table $t"
    done
  done
}

# Kills what runs in a cgroup tree (cgroup v1: every hierarchy) and removes it, deepest first.
rn_cgroup_remove() { # relative path, e.g. pushgate-real-cn-east-1
  local h d p
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$1" ] || continue
    for _ in 1 2 3; do
      while read -r d; do
        while read -r p; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done <"$d/cgroup.procs" 2>/dev/null || true
      done < <(find "$h$1" -depth -type d)
      sleep 0.2
      find "$h$1" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [ -d "$h$1" ] || break
    done
    [ -d "$h$1" ] && log "could not remove cgroup $h$1"
  done
  return 0
}

rn_cgroup_create() { # relative path
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -f "$h/cgroup.procs" ] || continue
    mkdir -p "$h$1"
    # A new cpuset is empty; give it its parent's CPUs and memory nodes, or no task may join.
    if [ -f "$h$1/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" >"$h$1/cpuset.cpus"; cat "$h/cpuset.mems" >"$h$1/cpuset.mems"
    fi
  done
}

# Stops the real nodes of the cluster in $1 and gives the host back as it was.
rn_host_down() {
  local d="$1" n pid
  [ -d "$d/nodes" ] || [ -f "$d/host/sysctls" ] || { rm -f "$RN_OWNER"; return 0; }
  stop_pid "$d/pids/kube-proxy"
  # Each node's first process (PID 1 of its PID namespace, the child of `unshare`): when it
  # dies the kernel kills every process of the node, containers included; the mount namespace
  # and every mount in it go with the last of them. All nodes at once, then wait.
  for n in "$d"/pids/node-*; do
    [ -f "$n" ] || continue
    pid_alive "$n" && { pkill -KILL -P "$(cat "$n")" || true; }
  done
  for n in "$d"/pids/node-*; do [ -f "$n" ] && stop_pid "$n"; done
  for n in "$d"/nodes/*/; do
    [ -d "$n" ] && rn_cgroup_remove "pushgate-$(basename "$n")"
  done
  for l in $(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^pgbr[0-9]+$' || true); do ip link del "$l"; done
  rn_iptables_clean
  ip route del unreachable "$RN_RANGE" 2>/dev/null || true
  ip route del "$RN_SERVICE_RANGE" 2>/dev/null || true
  ip link del "$RN_DUMMY" 2>/dev/null || true
  if [ -f "$d/host/sysctls" ]; then
    local k v
    while IFS= read -r line; do
      k="${line%% = *}"; v="${line#* = }"
      sysctl -qw "$k=$v" 2>/dev/null || log "could not restore $k to '$v'"
    done < <("$here/host-state" sysctls | LC_ALL=C comm -13 - "$d/host/sysctls")
  fi
  rm -f "$RN_OWNER"
}

# --- one real node ------------------------------------------------------------------------------
rn_sign() { # out-name subject ext-lines
  local p="$dir/pki"
  (
    cd "$p"
    printf '%s\n' "$3" >"$1.ext"
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" >/dev/null 2>&1
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 \
      -extfile "$1.ext" >/dev/null 2>&1
  ) || die "could not sign $1"
}

rn_kubeconfig() { # file user-cert-base
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster: {server: "https://$RN_HOST_IP:$(cat "$dir/ports/apiserver")", certificate-authority: $dir/pki/ca.crt}
users:
- name: u
  user: {client-certificate: $2.crt, client-key: $2.key}
contexts:
- name: $name
  context: {cluster: $name, user: u}
current-context: $name
KC
}

rn_node_up() { # index region
  local i="$1" region="$2" n nd ip cidr
  n="$(rn_node_name "$region")"; nd="$dir/nodes/$n"; ip="$(rn_node_ip "$i")"; cidr="198.18.$i.0/24"
  mkdir -p "$nd/var-lib" "$nd/var-log" "$nd/cni" "$nd/containerd" "$nd/opt" "$nd/volume-plugins"
  rn_sign "node-$n" "/O=system:nodes/CN=system:node:$n" "extendedKeyUsage=clientAuth"
  rn_sign "node-$n-serving" "/CN=$n" "subjectAltName=IP:$ip,DNS:$n
extendedKeyUsage=serverAuth"
  rn_kubeconfig "$nd/kubeconfig" "$dir/pki/node-$n"
  cat >"$nd/containerd.toml" <<TOML
version = 2
root = "$nd/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$nd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(cat "$dir/pause-image" 2>/dev/null || echo pushgate.local/pause:missing)"
  # No CAP_SYS_RESOURCE here: a sandbox's negative oom_score_adj would be refused.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$nd/cni"
  # Images come from hack/build-image via import; a pull must never leave the machine.
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["http://127.0.0.1:9"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://127.0.0.1:9"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."pushgate.local"]
    endpoint = ["http://127.0.0.1:9"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."ghcr.io"]
    endpoint = ["http://127.0.0.1:9"]
TOML
  cat >"$nd/cni/10-pushgate.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "pushgate-$n",
  "plugins": [{
    "type": "bridge", "bridge": "pgbr$i", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr", "gateway": "198.18.$i.1"}]],
             "routes": [{"dst": "$RN_RANGE"}]}
  }]
}
CNI
  cat >"$nd/kubelet.yaml" <<KL
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: $ip
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $dir/pki/node-$n-serving.crt
tlsPrivateKeyFile: $dir/pki/node-$n-serving.key
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /pushgate-$n
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
podLogsDir: /var/log/pods
resolvConf: ""
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
nodeStatusReportFrequency: 1m
syncFrequency: 10s
KL
  rn_cgroup_create "pushgate-$n"
  mkdir -p "$dir/pids" "$dir/logs"
  rm -f "$nd/containerd.ready"
  setsid unshare --mount --pid --fork --mount-proc --propagation private "$here/real-node-init" "$nd" "$bin/kubelet" \
    --config="$nd/kubelet.yaml" --kubeconfig="$nd/kubeconfig" --cert-dir="$nd/pki" \
    --hostname-override="$n" --node-ip="$ip" --volume-plugin-dir="$nd/volume-plugins" \
    --node-labels="type=real,topology.kubernetes.io/region=$region,topology.kubernetes.io/zone=${region}a" \
    --v=1 >>"$dir/logs/node-$n.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/node-$n"
  local w; for w in $(seq 1 150); do [ -f "$nd/containerd.ready" ] && break; pid_alive "$dir/pids/node-$n" || break; sleep 0.2; done
  [ -f "$nd/containerd.ready" ] || die "real node $n did not start; see $dir/logs/node-$n.log and $nd/containerd.log"
  rn_import "$(cat "$dir/pause-archive")" "$n"
}

rn_proxy_up() {
  local pd="$dir/kube-proxy" ports
  mkdir -p "$pd"
  mapfile -t ports < <(free_ports 2)
  rn_kubeconfig "$pd/kubeconfig" "$dir/pki/kube-proxy"
  # masqueradeAll: a pod reaching a Service whose endpoint sits on its own bridge gets the reply
  # back through the host. No conntrack sysctls, no route_localnet (nothing to restore), and
  # NodePorts only on the nodes' addresses, never on this machine's LAN.
  cat >"$pd/config.yaml" <<KP
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $pd/kubeconfig}
hostnameOverride: $(rn_node_name cn-north-1)
mode: iptables
clusterCIDR: $RN_POD_RANGE
iptables: {masqueradeAll: true, localhostNodePorts: false, syncPeriod: 30s, minSyncPeriod: 1s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
nodePortAddresses: ["$RN_RANGE"]
healthzBindAddress: 127.0.0.1:${ports[0]}
metricsBindAddress: 127.0.0.1:${ports[1]}
KP
  printf '%s\n' "$bin/kube-proxy" --config="$pd/config.yaml" --v=1 >"$dir/cmd/kube-proxy"
  start_component kube-proxy
  local WAIT_PIDFILE="$dir/pids/kube-proxy"
  wait_for kube-proxy 60 curl -sf "http://127.0.0.1:${ports[0]}/healthz" \
    || die "kube-proxy did not become healthy; see $dir/logs/kube-proxy.log"
}

# Loads an OCI archive into the k8s.io namespace of the real nodes' containerd (all, or one),
# in parallel; `unshare` itself sits in the node's mount namespace, so nsenter reaches the
# node's private /run/containerd through it.
rn_import() { # archive [node]
  local n pids=() rc=0
  for n in "$dir"/nodes/*/; do
    n="$(basename "$n")"
    [ -z "${2:-}" ] || [ "$2" = "$n" ] || continue
    pid_alive "$dir/pids/node-$n" || die "real node $n is not running"
    nsenter -t "$(cat "$dir/pids/node-$n")" -m ctr --address /run/containerd/containerd.sock -n k8s.io \
      images import "$1" >/dev/null &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || rc=1; done
  [ "$rc" = 0 ] || die "could not import $1 into every real node"
}
