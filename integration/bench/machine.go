package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// machine describes the host the benchmarks ran on.
type machine struct {
	cpu     string
	cores   int
	memory  string
	kernel  string
	os      string
	loadNow string
}

func describeMachine() machine {
	var m machine
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				m.cores++
			case "model name":
				m.cpu = strings.TrimSpace(v)
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	var u syscall.Utsname
	if err := syscall.Uname(&u); err == nil {
		m.kernel = fmt.Sprintf("%s %s %s", cstr(u.Sysname[:]), cstr(u.Release[:]), cstr(u.Machine[:]))
	}
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
				m.os = strings.Trim(v, `"`)
			}
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.loadNow = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	return m
}

func cstr(b []int8) string {
	var s strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		s.WriteByte(byte(c))
	}
	return s.String()
}

// busy reports whether a load average ("1m 5m 15m") shows other work: a
// one-minute load above a quarter of the cores.
func busy(load string, cores int) bool {
	f := strings.Fields(load)
	if len(f) == 0 || cores == 0 {
		return false
	}
	l, err := strconv.ParseFloat(f[0], 64)
	return err == nil && l > float64(cores)/4
}
