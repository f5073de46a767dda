package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Attempts on what a privileged or host-namespace request would expose
// (issue 14): host devices, the kernel's memory image, host-wide sysctls
// and other processes' environments. Each only reads, or writes a value
// back unchanged, so a broken floor changes nothing on the host.
func hostAttempts() []attempt {
	return []attempt{
		// vm.swappiness is host-wide (not namespaced): the issue's
		// reproduction, written with the value it holds.
		{"write-/proc/sys/vm/swappiness", func() (string, error) { return "", writeBack("/proc/sys/vm/swappiness") }},
		{"read-block-device", readBlockDevice},
		{"read-/proc/kcore", func() (string, error) { return readSome("/proc/kcore") }},
		{"read-/dev/kmsg", func() (string, error) { return readSome("/dev/kmsg") }},
		{"read-host-process-environ", hostEnviron},
	}
}

// readSome reads a few bytes of path without blocking. A read that returns
// nothing (a path masked with /dev/null) gains nothing.
func readSome(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return "open", err
	}
	defer f.Close()
	buf := make([]byte, 16)
	n, err := f.Read(buf)
	if n > 0 {
		return "read " + path, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return "read", err
	}
	return "empty read", notGained
}

// readBlockDevice reads the first block device node in /dev, the host's
// disk when a privileged request kept the host's devices.
func readBlockDevice() (string, error) {
	var dev string
	filepath.WalkDir("/dev", func(p string, d fs.DirEntry, err error) error {
		if err == nil && dev == "" && d.Type()&fs.ModeDevice != 0 && d.Type()&fs.ModeCharDevice == 0 {
			dev = p
		}
		return nil
	})
	if dev == "" {
		return "no block device in /dev", unix.ENOENT
	}
	detail, err := readSome(dev)
	return dev + ": " + detail, err
}

// hostEnviron looks for the host's containerd among the processes the
// container can see (it can when it shares the host's PID namespace) and
// reads its environment.
func hostEnviron() (string, error) {
	pids, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return "", err
	}
	for _, p := range pids {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmd), "\x00")
		if filepath.Base(argv0) != "containerd" {
			continue
		}
		detail, err := readSome(p + "/environ")
		return p + " (containerd): " + detail, err
	}
	return "no host process visible", unix.ENOENT
}
