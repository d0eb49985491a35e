# Shared settings of slurm/testbed/up.sh and down.sh (sourced, not run). Every name here belongs to
# the testbed: down.sh removes exactly these namespaces, this bridge and the /etc/hosts lines that
# carry MARK, and stops exactly the daemons whose pids up.sh recorded.
# shellcheck shell=bash

PATH=$PATH:/usr/sbin:/usr/bin:/sbin:/bin   # the daemons and ip live in sbin
export PATH

TESTBED_DIR=${ROCOFT_TESTBED_DIR:-/run/rocoft-slurm-testbed}   # state, config copies, logs, spool
STATE_FILE=$TESTBED_DIR/state.env                                # written last by up.sh: "the testbed is up"
PIDS_DIR=$TESTBED_DIR/pids                                       # <daemon>.pid for each daemon up.sh started
NODES=${ROCOFT_TESTBED_NODES:-2}
SUBNET=${ROCOFT_TESTBED_SUBNET:-10.213.77}                       # a private /24 that nothing else routes
BRIDGE=rcft-br0
CTL_NS=rcft-ctl                                                  # slurmctld runs in its own namespaces too
CTL_HOST=rcft-ctl
NODE_PREFIX=${ROCOFT_TESTBED_NODE_PREFIX:-node}                  # hosts node1 .. nodeN, namespaces rcft-node1 ..
SLURM_ETC=/etc/slurm
MARK="# rocoft-llm slurm testbed (slurm/testbed/up.sh); down.sh removes this"
PACKAGES=(slurmctld slurmd slurm-client munge)

node_name() { echo "${NODE_PREFIX}$1"; }
node_ns() { echo "rcft-${NODE_PREFIX}$1"; }
node_addr() { echo "$SUBNET.$((10 + $1))"; }
ctl_addr() { echo "$SUBNET.2"; }
all_namespaces() { echo "$CTL_NS"; for i in $(seq 1 "$NODES"); do node_ns "$i"; done; }

say() { echo "[testbed] $*"; }
die() { echo "[testbed] error: $*" >&2; exit 1; }

require_root_and_netns() {
    [ "$(id -u)" = 0 ] || die "must run as root: it creates network namespaces, a bridge and /etc/hosts lines and starts munged, slurmctld and slurmd (sudo $0)."
    command -v ip >/dev/null || die "'ip' (iproute2) is not installed: apt-get install iproute2."
    ip netns list >/dev/null 2>&1 || die "'ip netns' does not work here ($(ip netns list 2>&1 | head -n1)): network namespaces are needed, one per node."
    command -v unshare >/dev/null || die "'unshare' (util-linux) is not installed: apt-get install util-linux."
}

# pid_is <pid> <comm>: the process exists and is still the program we started (not a reused pid)
pid_is() { [ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

# wait_for <seconds> <description> <command...>: poll until the command succeeds; fail after the timeout
wait_for() {
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "[testbed] timed out after ${limit}s waiting for $what" >&2; return 1; }
        sleep 0.5
    done
}
