#!/usr/bin/env bash
# Builds the microkad firmware for QEMU's lm3s6965evb (Cortex-M3), runs it,
# measures it, and builds it again with the defmt feature. Fails loudly: any
# build error, a non-zero exit from QEMU (a failed check, a panic, a fault),
# a missing "OK:" line, or a run that outlives the timeout stops the script
# with a message and a non-zero status.
#
# Usage: firmware/run.sh            (from anywhere)
#   FIRMWARE_TIMEOUT=60             seconds each QEMU run may take
#   FIRMWARE_SKIP_INSTALL=1         do not install missing tools

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

TIMEOUT="${FIRMWARE_TIMEOUT:-60}"
TARGET=thumbv7m-none-eabi
# Honour CARGO_TARGET_DIR when the caller sets one (relative paths are
# relative to this directory, as cargo takes them).
OUT="${CARGO_TARGET_DIR:-target}/$TARGET/release"
DEFMT_DIR=target/defmt
QEMU=(qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic
      -semihosting-config enable=on,target=native -kernel)

die() {
    echo
    echo "!!! firmware: $*" >&2
    exit 1
}
step() { echo; echo "--- firmware: $*"; }

# --- tools ------------------------------------------------------------------

if [[ "${FIRMWARE_SKIP_INSTALL:-0}" != 1 ]]; then
    if ! command -v qemu-system-arm >/dev/null; then
        step "installing qemu-system-arm"
        SUDO=""
        [[ "$(id -u)" != 0 ]] && SUDO=sudo
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq qemu-system-arm >/dev/null \
            || die "could not install qemu-system-arm"
    fi
    rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET" \
        || echo "warning: could not add the $TARGET target; the build will tell" >&2
    rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools \
        || echo "warning: no llvm-tools; sizes need llvm-size on PATH" >&2
    command -v flip-link >/dev/null || cargo install flip-link --locked \
        || die "could not install flip-link"
fi
command -v qemu-system-arm >/dev/null || die "qemu-system-arm is not installed"
command -v flip-link >/dev/null || die "flip-link is not installed (cargo install flip-link)"

LLVM_SIZE="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
[[ -x "$LLVM_SIZE" ]] || LLVM_SIZE="$(command -v llvm-size || true)"

# Runs a firmware binary under QEMU; its output goes to stdout and to $2.
run_qemu() {
    local elf=$1 log=$2 status=0
    timeout "$TIMEOUT" "${QEMU[@]}" "$elf" >"$log" 2>"$log.err" || status=$?
    cat "$log"
    grep -v '^Timer with period zero' "$log.err" >&2 || true
    case $status in
        0) ;;
        124) die "$(basename "$elf") did not finish within ${TIMEOUT}s" ;;
        *) die "$(basename "$elf") exited with status $status" ;;
    esac
}

LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT

# --- the plain build: run it ---------------------------------------------------

step "building (release, opt-level z, LTO)"
cargo build --release --bins || die "build failed"

step "three nodes: bootstrap, put, get"
run_qemu "$OUT/three_nodes" "$LOGS/three_nodes"
grep -q '^OK: "hello from a Cortex-M3"' "$LOGS/three_nodes" || die "three_nodes printed no OK line"

step "size_of a node on the target"
run_qemu "$OUT/sizes" "$LOGS/sizes"

step "one full node (footprint probe)"
run_qemu "$OUT/one_node" "$LOGS/one_node"

step "footprint (flash = text + data; static RAM = data + bss)"
if [[ -n "$LLVM_SIZE" ]]; then
    "$LLVM_SIZE" "$OUT/one_node" "$OUT/three_nodes"
    "$LLVM_SIZE" -A "$OUT/one_node" | awk '
        $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".data" { flash += $2 }
        $1 == ".data" || $1 == ".bss" || $1 == ".uninit" { ram += $2 }
        END { printf "one_node: flash %d bytes (%.1f KiB), static RAM %d bytes (%.1f KiB)\n",
                     flash, flash / 1024, ram, ram / 1024 }'
else
    echo "(llvm-size not found: rustup component add llvm-tools)"
fi

# --- the defmt build: it must compile, link and run ----------------------------

step "building with the defmt feature (DEFMT_LOG=trace: every log site compiled in)"
DEFMT_LOG=trace cargo build --release --bins --features defmt --target-dir "$DEFMT_DIR" \
    || die "defmt build failed"
step "three nodes, defmt build (binary defmt frames on stdout)"
timeout "$TIMEOUT" "${QEMU[@]}" "$DEFMT_DIR/$TARGET/release/three_nodes" \
    >"$LOGS/defmt.bin" 2>/dev/null || die "defmt three_nodes exited with status $?"
if command -v defmt-print >/dev/null; then
    defmt-print -e "$DEFMT_DIR/$TARGET/release/three_nodes" <"$LOGS/defmt.bin" | tee "$LOGS/defmt.txt"
    grep -q 'OK: "hello from a Cortex-M3"' "$LOGS/defmt.txt" || die "defmt three_nodes printed no OK line"
else
    echo "$(wc -c <"$LOGS/defmt.bin") bytes of defmt frames, exit status 0" \
        "(cargo install defmt-print to decode them)"
fi

echo
echo "firmware: all runs passed"
