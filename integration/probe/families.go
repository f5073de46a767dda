package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// families tries socket(2) for every address family below 64 with each
// socket type, and prints one line per family: "family N absent" when every
// type failed with EAFNOSUPPORT (the kernel has no such family), else
// "family N present ERR", with ERR "ok" when some type worked, or the error
// of the first type (e.g. EPERM from a seccomp rule, EPROTONOSUPPORT).
func families() {
	types := []int{unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_RAW, unix.SOCK_SEQPACKET, unix.SOCK_RDM}
	for af := range 64 {
		result, present := "", false
		for _, typ := range types {
			fd, err := unix.Socket(af, typ|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
				result, present = "ok", true
				break
			}
			if !errors.Is(err, unix.EAFNOSUPPORT) {
				present = true
				if result == "" {
					result = unix.ErrnoName(err.(unix.Errno))
				}
			}
		}
		if present {
			fmt.Printf("family %d present %s\n", af, result)
		} else {
			fmt.Printf("family %d absent\n", af)
		}
	}
}
