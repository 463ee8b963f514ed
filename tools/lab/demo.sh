#!/bin/sh
# The README's demo: the firmware in the netns lab, used by Linux's nc.
# Usage: demo.sh FIRMWARE LAB
set -eu
firmware=$(realpath "$1")
lab=$(realpath "$2")
sock=/run/synfin-lab/mgmt.sock
dut=198.18.0.2

trap '"$lab" down >/dev/null 2>&1 || true' EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "lab up: netns synfin-dut (firmware on veth-dut) <-> synfin-peer (Linux, 198.18.0.1)"
"$lab" up --firmware "$firmware"

step "ping $dut from Linux"
"$lab" exec peer ping -c 2 "$dut"

step "echo (port 7): Linux nc sends a line, the firmware's TCP echoes it"
echo "hello from Linux's TCP" | "$lab" exec peer nc -N "$dut" 7

step "daytime (port 13): the firmware writes the time and closes first"
"$lab" exec peer nc -d "$dut" 13

step "a connection held open to discard (port 9), then: firmware shell -c 'show tcb'"
"$lab" exec peer sh -c "sleep 3 | nc -N $dut 9" &
held=$!
sleep 1
"$firmware" shell --socket "$sock" -c "show tcb"

id=$("$firmware" shell --socket "$sock" -c "show tcb" | awk '$2 == "ESTABLISHED" { print $1; exit }')
if [ -n "$id" ]; then
	step "show tcb $id"
	"$firmware" shell --socket "$sock" -c "show tcb $id"
fi
wait "$held" || true

step "after the close: the daytime TCB sits in TIME-WAIT for 2*MSL"
"$firmware" shell --socket "$sock" -c "show tcb"

step "lab down"
