# Shared helpers of the launch scripts (sourced, not run).
#
# VISCOIN_ROOT   repository root
# VISCOIN_BIN    the viscoin binary (default: release build in the repository)

VISCOIN_ROOT="${VISCOIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VISCOIN_BIN="${VISCOIN_BIN:-$VISCOIN_ROOT/.build/release/viscoin}"

# Debian package names the build and the tests need.
VISCOIN_PACKAGES=(libopenmpi-dev openmpi-bin libopenblas-dev libdnnl-dev libpng-dev libjpeg-dev libzstd-dev libtiff-dev pkgconf)
# What the tests need besides: a headless browser for the explorer's page test, ss and ip
# (iproute2) for the simulated cluster, a single-machine SLURM (slurm-wlm, munge).
VISCOIN_TEST_PACKAGES=(chromium iproute2 slurm-wlm munge)

viscoin_log() { printf '%s\n' "$*" >&2; }

# Installs missing system packages (VISCOIN_PACKAGES and the arguments) with apt-get when
# running as root; otherwise prints the exact command and fails.
viscoin_ensure_packages() {
    local missing=()
    local p
    for p in "${VISCOIN_PACKAGES[@]}" "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        viscoin_log "installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        viscoin_log "missing system packages: ${missing[*]}"
        viscoin_log "install them with:"
        viscoin_log "  sudo apt-get install -y ${missing[*]}"
        return 1
    fi
}

# Release build of the package (quiet unless it fails).
viscoin_build_release() {
    if ! command -v swift >/dev/null 2>&1; then
        viscoin_log "swift is not on PATH: install Swift 6 (https://www.swift.org/install/linux/) first"
        return 1
    fi
    viscoin_log "building release (swift build -c release) ..."
    local log
    log=$(mktemp)
    if ! (cd "$VISCOIN_ROOT" && swift build -c release >"$log" 2>&1); then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# Idle OpenBLAS and OpenMP (oneDNN) threads sleep at once instead of spinning on the core our
# kernels need. The
# kernel family is the binary's choice (VISCOIN_BLAS_CORE, default auto: the best family the
# CPU supports, after a float64 self-check, whatever OPENBLAS_CORETYPE the environment pins).
viscoin_blas_coretype() {
    export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
}
