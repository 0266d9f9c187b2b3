# Shared shell helpers for hack/ scripts. Sourced, not run.
PUSHGATE_CACHE="${PUSHGATE_CACHE:-$HOME/.cache/pushgate}"

die() { printf '%s: %s\n' "${SCRIPT_NAME:-hack}" "$*" >&2; exit 1; }
log() { printf '[%s] %s\n' "${SCRIPT_NAME:-hack}" "$*" >&2; }

# free_ports N: prints N distinct free TCP ports on 127.0.0.1, one per line.
free_ports() {
  command -v node >/dev/null 2>&1 || die "node is missing: install Node.js 20.19+ and re-run"
  node -e '
    const net = require("net"); const n = Number(process.argv[1]); const servers = []; const ports = [];
    (async () => { for (let i = 0; i < n; i++) { const s = net.createServer(); await new Promise(r => s.listen(0, "127.0.0.1", r));
      servers.push(s); ports.push(s.address().port); } servers.forEach(s => s.close()); console.log(ports.join("\n")); })();' "$1"
}

# pid_alive FILE: true when the pid in FILE is a running process.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid FILE: SIGTERM, wait up to 10s, then SIGKILL.
stop_pid() {
  local f="$1" pid i
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# wait_for WHAT SECONDS CMD...: retries CMD until it succeeds, or dies naming WHAT.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    # A process that already exited will not become healthy: stop waiting for it.
    if [ -n "${WAIT_PIDFILE:-}" ] && ! pid_alive "$WAIT_PIDFILE"; then return 1; fi
    sleep 0.2
  done
  log "$what is up"
}
