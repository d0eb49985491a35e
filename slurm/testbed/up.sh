#!/usr/bin/env bash
# A real SLURM cluster (2 compute nodes by default) on this one machine, for the slurm_real tests
# and for trying jobs by hand. As root:
#
#   slurm/testbed/up.sh     # installs slurmctld slurmd slurm-client munge with apt-get when missing
#   sinfo; sbatch job.sbatch; squeue; scancel ...     # from this machine's shell
#   slurm/testbed/down.sh   # stops what up.sh started and removes what it created
#
# Layout: a bridge (rcft-br0, 10.213.77.1/24: the only address outside the testbed's namespaces,
# so that sbatch/squeue on this machine reach the controller) and one network + UTS namespace each
# for the controller (rcft-ctl, .2) and every node (node1 .11, node2 .12, ...), joined by veth pairs;
# names in /etc/hosts; munged (reused when one already answers), slurmctld and one slurmd per node.
# No forwarding, no NAT, no default route in the namespaces: nothing leaves the machine.
# Idempotent: a healthy testbed is left as it is; a partial one is torn down and built again.
# Settings that this kind of machine needs (gVisor, cgroup v1 on a tmpfs): see
# ../shared/ENVIRONMENT.md "A real SLURM cluster on one machine". Overrides: ROCOFT_TESTBED_DIR,
# ROCOFT_TESTBED_NODES, ROCOFT_TESTBED_SUBNET (a /24 prefix such as 10.213.77), ROCOFT_TESTBED_NODE_PREFIX.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

healthy() {  # every daemon up.sh recorded is alive, and SLURM sees every node usable
    [ -f "$STATE_FILE" ] || return 1
    local f
    for f in "$PIDS_DIR"/*.pid; do
        [ -e "$f" ] || return 1
        pid_is "$(cat "$f")" "$(basename "$f" .pid | cut -d- -f1)" || return 1
    done
    local states
    states=$(timeout 20 sinfo -h -N -o '%T' 2>/dev/null) || return 1
    [ "$(grep -cE '^(idle|mixed|allocated|completing)$' <<<"$states")" = "$NODES" ]
}

install_packages() {
    local missing=() bin
    for bin in slurmctld slurmd sbatch munged; do
        command -v "$bin" >/dev/null || missing+=("$bin")
    done
    [ ${#missing[@]} = 0 ] && return 0
    command -v apt-get >/dev/null || die "${missing[*]} not installed and no apt-get here: install ${PACKAGES[*]} (Slurm >= 22.05) yourself."
    say "installing ${PACKAGES[*]} (missing: ${missing[*]}) with apt-get"
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then  # the packages must not start their own daemons: this script starts them
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -q >"$TESTBED_DIR/log/apt.log" 2>&1 &&
        timeout 900 apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$TESTBED_DIR/log/apt.log" 2>&1 || rc=$?
    [ $added_policy = 1 ] && rm -f "$policy"
    [ $rc = 0 ] || { tail -n 20 "$TESTBED_DIR/log/apt.log" >&2; die "apt-get failed (exit $rc); log: $TESTBED_DIR/log/apt.log"; }
    for bin in slurmctld slurmd sbatch munged; do
        command -v "$bin" >/dev/null || die "$bin still missing after installing ${PACKAGES[*]}."
    done
}

check_free_names() {  # refuse to take over anything that is not the testbed's
    ip -4 route show | grep -q "^$SUBNET\." && die "subnet $SUBNET.0/24 is already routed here ($(ip -4 route show | grep "^$SUBNET\." | head -n1)); pick another with ROCOFT_TESTBED_SUBNET=10.x.y"
    local name
    for name in "$CTL_HOST" $(for i in $(seq 1 "$NODES"); do node_name "$i"; done); do
        if grep -v -F "$MARK" /etc/hosts | grep -qw -- "$name"; then
            die "/etc/hosts already names '$name' (not a testbed line); set ROCOFT_TESTBED_NODE_PREFIX or remove that line."
        fi
    done
    local f
    for f in "$SLURM_ETC/slurm.conf" "$SLURM_ETC/cgroup.conf"; do
        if [ -e "$f" ] && ! grep -qF "$MARK" "$f"; then
            die "$f exists and was not written by the testbed: this machine has its own SLURM set-up; refusing to replace it."
        fi
    done
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        die "slurmctld or slurmd is already running here and not as this testbed (pids: $(pgrep -x 'slurmctld|slurmd' | tr '\n' ' ')); stop it first."
    fi
}

write_config() {
    local cgroup_plugin=cgroup/v1
    [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] && cgroup_plugin=cgroup/v2
    mkdir -p "$SLURM_ETC" "$TESTBED_DIR/ctld" "$TESTBED_DIR/spool"
    local cpus nodes_line=""
    cpus=$(nproc)
    for i in $(seq 1 "$NODES"); do
        nodes_line+="NodeName=$(node_name "$i") NodeAddr=$(node_addr "$i") CPUs=$cpus State=UNKNOWN"$'\n'
    done
    cat > "$SLURM_ETC/slurm.conf" <<CONF
$MARK
ClusterName=rocoft-testbed
SlurmctldHost=$CTL_HOST($(ctl_addr))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again only after its credential expired (default 120 s), and it is
# then started by the next scheduler pass (main loop every 60 s, backfill every 30 s by default): keep all short
AuthInfo=cred_expire=${ROCOFT_TESTBED_CRED_EXPIRE:-5}
SchedulerParameters=bf_interval=1,sched_interval=2
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=15
SlurmdTimeout=60
StateSaveLocation=$TESTBED_DIR/ctld
SlurmdSpoolDir=$TESTBED_DIR/spool/%n
SlurmctldPidFile=$TESTBED_DIR/slurmctld.pid
SlurmdPidFile=$TESTBED_DIR/slurmd-%n.pid
SlurmctldLogFile=$TESTBED_DIR/log/slurmctld.log
SlurmdLogFile=$TESTBED_DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
${nodes_line}PartitionName=testbed Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    printf '%s\nCgroupPlugin=%s\n' "$MARK" "$cgroup_plugin" > "$SLURM_ETC/cgroup.conf"
}

add_namespace() {  # add_namespace <netns> <veth name in the root namespace> <address>
    ip netns add "$1"
    ip netns exec "$1" ip link set lo up
    ip link add "$2" type veth peer name eth0 netns "$1"
    ip link set "$2" master "$BRIDGE" up
    ip netns exec "$1" ip addr add "$3/24" dev eth0
    ip netns exec "$1" ip link set eth0 up
}

build_network() {
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    add_namespace "$CTL_NS" rcft-vctl "$(ctl_addr)"
    for i in $(seq 1 "$NODES"); do
        add_namespace "$(node_ns "$i")" "rcft-v$i" "$(node_addr "$i")"
    done
    { echo "$(ctl_addr) $CTL_HOST $MARK"
      for i in $(seq 1 "$NODES"); do echo "$(node_addr "$i") $(node_name "$i") $MARK"; done; } >> /etc/hosts
}

start_munge() {
    if timeout 10 sh -c 'munge -n | unmunge' >/dev/null 2>&1; then
        say "munged already answers: using it (down.sh leaves it running)"
        return
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key 2>/dev/null || true
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    munged -F --force >"$TESTBED_DIR/log/munged.log" 2>&1 </dev/null &
    echo $! > "$PIDS_DIR/munged.pid"
    wait_for 20 "munged to answer" sh -c 'munge -n | unmunge' || die "munged did not start: $(tail -n 5 "$TESTBED_DIR/log/munged.log")"
}

start_in_namespace() {  # start_in_namespace <netns> <hostname> <pid name> <command...>: a daemon in the foreground (-D)
    local ns=$1 host=$2 name=$3; shift 3
    setsid ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host" "$@" \
        >"$TESTBED_DIR/log/$name.stderr" 2>&1 </dev/null &
    echo $! > "$PIDS_DIR/$name.pid"
}

nodes_idle() { [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -c '^idle$')" = "$NODES" ]; }

smoke_test() {  # one real step on every node: names from the UTS namespaces, through srun from here
    local got want
    got=$(timeout 60 srun --nodes "$NODES" --ntasks-per-node 1 hostname 2>&1 | sort | tr '\n' ' ') || true
    want=$(for i in $(seq 1 "$NODES"); do node_name "$i"; done | sort | tr '\n' ' ')
    [ "$got" = "$want" ] || die "smoke test 'srun --nodes $NODES hostname' printed '$got', expected '$want'. Logs: $TESTBED_DIR/log"
}

require_root_and_netns
if healthy; then
    say "already up: $(sinfo -h -N -o '%N %T' | tr '\n' ' ')(state: $STATE_FILE)"
    exit 0
fi
if [ -e "$TESTBED_DIR" ] || ip link show "$BRIDGE" >/dev/null 2>&1 || ip netns list | grep -q '^rcft-'; then
    say "a previous testbed is partly there: taking it down first"
    "$HERE/down.sh"
fi
mkdir -p "$TESTBED_DIR/log" "$PIDS_DIR"
started=$SECONDS
install_packages
check_free_names
write_config
build_network
start_munge
start_in_namespace "$CTL_NS" "$CTL_HOST" slurmctld slurmctld -D
wait_for 30 "slurmctld to answer" sh -c 'scontrol ping | grep -q UP' \
    || die "slurmctld did not come up: $(tail -n 5 "$TESTBED_DIR/log/slurmctld.log" "$TESTBED_DIR/log/slurmctld.stderr" 2>/dev/null)"
for i in $(seq 1 "$NODES"); do
    start_in_namespace "$(node_ns "$i")" "$(node_name "$i")" "slurmd-$(node_name "$i")" slurmd -D -N "$(node_name "$i")"
done
wait_for 60 "all $NODES nodes to be idle" nodes_idle \
    || die "nodes not idle: $(sinfo -N 2>&1 | tr '\n' ' '); logs: $TESTBED_DIR/log"
smoke_test
{ echo "TESTBED_UP=1"
  echo "NODES=$NODES"
  echo "NODE_NAMES=\"$(for i in $(seq 1 "$NODES"); do node_name "$i"; done | tr '\n' ' ' | sed 's/ $//')\""
  echo "NODE_NAMESPACES=\"$(for i in $(seq 1 "$NODES"); do node_ns "$i"; done | tr '\n' ' ' | sed 's/ $//')\""
  echo "CPUS_PER_NODE=$(nproc)"
  echo "SLURM_VERSION=\"$(sinfo --version)\""
  echo "STARTED=$(date -Is)"; } > "$STATE_FILE.tmp"
mv "$STATE_FILE.tmp" "$STATE_FILE"
say "up in $((SECONDS - started)) s: $(sinfo -h -N -o '%N %T' | tr '\n' ' ')(state: $STATE_FILE)"
