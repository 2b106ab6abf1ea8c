# Shared settings of the simulated cluster scripts (sourced, not run).
#
# VISCOIN_SIM_DIR     state folder (default /tmp/viscoin-sim): hosts.txt, hostfile, mpi-args,
#                     hosts/HOST/local (each host's node-local disk), node-local (its mount point)
# VISCOIN_SIM_PREFIX  name prefix of the namespaces and hosts (default vsim: vsim1, vsim2, ...)
# VISCOIN_SIM_SUBNET  first three octets of the private /24 (default 10.213.7)
VISCOIN_SIM_DIR="${VISCOIN_SIM_DIR:-/tmp/viscoin-sim}"
VISCOIN_SIM_PREFIX="${VISCOIN_SIM_PREFIX:-vsim}"
VISCOIN_SIM_SUBNET="${VISCOIN_SIM_SUBNET:-10.213.7}"
VISCOIN_SIM_BRIDGE_NS="${VISCOIN_SIM_PREFIX}-net"

sim_log() { printf '%s\n' "$*" >&2; }
sim_die() { sim_log "cluster/sim: $*"; exit 2; }

# The names of the hosts that are up (from the state folder).
sim_hosts() {
    [ -f "$VISCOIN_SIM_DIR/hostnames" ] || sim_die "no simulated cluster in $VISCOIN_SIM_DIR (start one with cluster/sim/up N)"
    cat "$VISCOIN_SIM_DIR/hostnames"
}

sim_require_root() {
    [ "$(id -u)" -eq 0 ] || sim_die "network namespaces need root (run as root or with sudo)"
    command -v ip >/dev/null 2>&1 || sim_die "'ip' is missing: apt-get install iproute2"
    command -v unshare >/dev/null 2>&1 || sim_die "'unshare' is missing: apt-get install util-linux"
}
