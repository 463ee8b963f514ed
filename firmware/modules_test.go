package main

import (
	"slices"
	"strings"
	"testing"
)

const modulesDep = `kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz kernel/lib/crc16.ko.zst
kernel/fs/mbcache.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/lib/crc16.ko.zst:
kernel/drivers/leds/leds-gpio.ko:
`

func TestModuleLoadOrder(t *testing.T) {
	idx, err := parseModulesDep(strings.NewReader(modulesDep))
	if err != nil {
		t.Fatal(err)
	}
	files, missing := idx.loadOrder([]string{"virtio_net", "ext4", "leds-gpio", "virtio_blk", "failover"})
	if !slices.Equal(missing, []string{"virtio_blk"}) {
		t.Errorf("missing = %v, want [virtio_blk]", missing)
	}
	want := []string{
		"kernel/net/core/failover.ko.xz",
		"kernel/drivers/net/net_failover.ko.xz",
		"kernel/drivers/net/virtio_net.ko.xz",
		"kernel/fs/mbcache.ko.xz",
		"kernel/fs/jbd2/jbd2.ko.xz",
		"kernel/lib/crc16.ko.zst",
		"kernel/fs/ext4/ext4.ko.xz",
		"kernel/drivers/leds/leds-gpio.ko",
	}
	if !slices.Equal(files, want) {
		t.Errorf("load order\n got %v\nwant %v", files, want)
	}
}

func TestModulesDepMalformed(t *testing.T) {
	if _, err := parseModulesDep(strings.NewReader("kernel/a.ko kernel/b.ko\n")); err == nil {
		t.Error("a line without a colon was accepted")
	}
}
