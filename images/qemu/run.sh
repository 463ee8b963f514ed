#!/bin/sh
# run.sh DIR — boots the QEMU image built into DIR (make image-qemu) on
# qemu-system-aarch64 -M virt under TCG, serial console on stdin/stdout.
#
# User-mode networking: the guest is 10.0.2.15; the host reaches its SSH on
# 127.0.0.1:$SSH_PORT (default 2222) and its echo service on
# 127.0.0.1:$ECHO_PORT (default 2207). $PERM overrides the /perm disk.
# Leave with the shell's "poweroff", or Ctrl-A X.
set -eu
dir=${1:?usage: run.sh DIR}
ssh_port=${SSH_PORT:-2222}
echo_port=${ECHO_PORT:-2207}
perm=${PERM:-$dir/perm.img}
exec qemu-system-aarch64 \
	-M virt -cpu cortex-a57 -smp 2 -m 512M \
	-accel tcg \
	-nographic -no-reboot \
	-kernel "$dir/vmlinuz" -initrd "$dir/initramfs.cpio.gz" \
	-append "$(cat "$dir/cmdline")" \
	-drive "if=none,id=perm,format=raw,file=$perm" -device virtio-blk-pci,drive=perm \
	-netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$ssh_port-:22,hostfwd=tcp:127.0.0.1:$echo_port-:7" \
	-device virtio-net-pci,netdev=net0 \
	-device i6300esb -watchdog-action reset
