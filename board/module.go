package board

import (
	"path"
	"strings"
)

// ModuleName is a kernel module's name as the kernel and the profiles' Modules
// spell it: the file's base name without .ko and any compression suffix,
// dashes as underscores ("kernel/drivers/leds/leds-gpio.ko.xz" -> "leds_gpio").
func ModuleName(file string) string {
	base := path.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}
