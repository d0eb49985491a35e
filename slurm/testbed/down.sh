#!/usr/bin/env bash
# Tear down what slurm/testbed/up.sh built, and nothing else (as root; safe to run again):
# every process inside the testbed's own network namespaces (slurmctld, the slurmd's, and any job
# steps still running there), the daemons whose pids up.sh recorded (munged, only when up.sh
# started it; a pid is signalled only while it is still that program), the namespaces, the
# bridge, the /etc/hosts lines and /etc/slurm files that carry the testbed's marker, and its
# state directory. The Debian packages stay installed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

require_root_and_netns

stop_pid() {  # stop_pid <pid> <comm>: TERM, then KILL after 10 s; only while /proc says it is <comm>
    local pid=$1 comm=$2
    pid_is "$pid" "$comm" || return 0
    kill -TERM "$pid" 2>/dev/null
    local deadline=$((SECONDS + 10))
    while pid_is "$pid" "$comm" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if pid_is "$pid" "$comm"; then kill -KILL "$pid" 2>/dev/null; fi
    say "stopped $comm (pid $pid)"
}

namespaces=$(ip netns list | awk '{print $1}' | grep -E "^rcft-" || true)
# 1. the daemons up.sh recorded (slurmctld first, so it does not mark the nodes down and requeue jobs)
for name in slurmctld $(cd "$PIDS_DIR" 2>/dev/null && ls slurmd-*.pid 2>/dev/null | sed 's/\.pid$//'); do
    [ -f "$PIDS_DIR/$name.pid" ] && stop_pid "$(cat "$PIDS_DIR/$name.pid")" "$(cut -d- -f1 <<<"$name")"
done
# 2. whatever still runs inside the testbed's namespaces (job steps, a slurmd whose pid file is lost)
for ns in $namespaces; do
    pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
        say "killing processes left in namespace $ns: $pids"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null
    fi
done
# 3. munged, only when up.sh started it
[ -f "$PIDS_DIR/munged.pid" ] && stop_pid "$(cat "$PIDS_DIR/munged.pid")" munged
# 4. namespaces (their veth ends go with them), the bridge, /etc/hosts lines, config files
for ns in $namespaces; do
    ip netns del "$ns" && say "removed namespace $ns"
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^rcft-v' || true); do
    ip link del "$link" 2>/dev/null
done
if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE" && say "removed bridge $BRIDGE"
fi
if grep -qF "$MARK" /etc/hosts; then
    # /etc/hosts may be a bind mount (containers): rewrite it in place instead of replacing the file
    kept=$(grep -vF "$MARK" /etc/hosts)
    printf '%s\n' "$kept" > /etc/hosts && say "removed the testbed's /etc/hosts lines"
fi
for f in "$SLURM_ETC/slurm.conf" "$SLURM_ETC/cgroup.conf"; do
    if [ -f "$f" ] && grep -qF "$MARK" "$f"; then rm -f "$f" && say "removed $f"; fi
done
rm -rf "$TESTBED_DIR"
say "down"
