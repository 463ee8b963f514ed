package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// systemInfo is what "show system" shows when the firmware is init.
type systemInfo struct {
	Board    string     `json:"board"`
	Kernel   string     `json:"kernel"`
	Hostname string     `json:"hostname"`
	UptimeS  int64      `json:"uptime_s"`
	Perm     string     `json:"perm"`
	Memory   memoryInfo `json:"memory"`
}

type memoryInfo struct {
	// RSSBytes is the firmware's resident set (VmRSS).
	RSSBytes uint64 `json:"rss_bytes"`
	// GoHeapBytes is the Go heap in use; GoSysBytes all the runtime holds.
	GoHeapBytes uint64 `json:"go_heap_bytes"`
	GoSysBytes  uint64 `json:"go_sys_bytes"`
	Goroutines  int    `json:"goroutines"`
	// MemTotalBytes and MemAvailableBytes are the machine's.
	MemTotalBytes     uint64 `json:"mem_total_bytes"`
	MemAvailableBytes uint64 `json:"mem_available_bytes"`
}

func (in *initSystem) systemInfo() any {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	host, _ := os.Hostname()
	info := systemInfo{
		Board:    in.prof.Name,
		Kernel:   kernelRelease(),
		Hostname: host,
		UptimeS:  int64(time.Since(in.started) / time.Second),
		Perm:     in.perm,
		Memory: memoryInfo{
			RSSBytes:          procKB("/proc/self/status", "VmRSS:"),
			GoHeapBytes:       ms.HeapInuse,
			GoSysBytes:        ms.Sys,
			Goroutines:        runtime.NumGoroutine(),
			MemTotalBytes:     procKB("/proc/meminfo", "MemTotal:"),
			MemAvailableBytes: procKB("/proc/meminfo", "MemAvailable:"),
		},
	}
	return info
}

// procKB reads a "Key: N kB" line of a /proc file, in bytes; 0 if absent.
func procKB(path, key string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return n * 1024
		}
	}
	return 0
}
