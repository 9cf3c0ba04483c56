#!/usr/bin/env bash
# Measures how much stack a firmware binary really uses, under QEMU.
#
# QEMU starts with RAM zeroed, and with flip-link the stack sits alone at the
# bottom of RAM, so after a run the lowest non-zero byte of the stack region
# marks the deepest the stack went. With a LOCATION (a gdb breakpoint, e.g.
# `three_nodes.rs:127`), the stack below the stack pointer is zeroed again
# when LOCATION is reached, which measures the peak from there on (the
# steady state, without start-up).
#
# Usage: firmware/stack-peak.sh BIN [LOCATION]   (after `cargo build --release`)
# Needs gdb-multiarch (apt-get install gdb-multiarch) and llvm-size/llvm-nm.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

BIN=${1:?usage: stack-peak.sh BIN [LOCATION]}
LOC=${2:-}
ELF="target/thumbv7m-none-eabi/release/$BIN"
PORT=${GDB_PORT:-3333}
[[ -f "$ELF" ]] || { echo "no $ELF: cargo build --release first" >&2; exit 1; }
command -v gdb-multiarch >/dev/null || { echo "needs gdb-multiarch" >&2; exit 1; }
NM="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-nm"
[[ -x "$NM" ]] || NM=llvm-nm

RAM=0x20000000
TOP=$("$NM" "$ELF" | awk '$3 == "_stack_start" { print "0x" $1 }')
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; [[ -n "${QEMU_PID:-}" ]] && kill "$QEMU_PID" 2>/dev/null || true' EXIT

qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic \
    -semihosting-config enable=on,target=native -kernel "$ELF" \
    -S -gdb "tcp::$PORT" >"$WORK/qemu.out" 2>&1 &
QEMU_PID=$!
sleep 0.5

head -c $((TOP - RAM)) /dev/zero >"$WORK/zeros"
{
    echo "file $ELF"
    echo "target remote :$PORT"
    if [[ -n "$LOC" ]]; then
        echo "break $LOC"
        echo "continue"
        echo "python"
        echo "sp = int(gdb.parse_and_eval('\$sp'))"
        echo "gdb.execute('restore $WORK/zeros binary $RAM 0 %d' % (sp - 64 - $RAM))"
        echo "print('stack in use at $LOC: %d bytes' % ($TOP - sp))"
        echo "end"
        echo "delete"
    fi
    echo "break microkad_firmware::exit"
    echo "continue"
    echo "dump binary memory $WORK/stack.bin $RAM $TOP"
} >"$WORK/gdb"
gdb-multiarch -q --batch -x "$WORK/gdb" >"$WORK/gdb.out" 2>&1 || { cat "$WORK/gdb.out"; exit 1; }
grep '^stack in use' "$WORK/gdb.out" || true
python3 - "$WORK/stack.bin" "$LOC" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
lowest = next((i for i, b in enumerate(data) if b), len(data))
where = f" after {sys.argv[2]}" if sys.argv[2] else ""
print(f"stack region {len(data)} bytes; peak use{where}: {len(data) - lowest} bytes")
PY
