package portfwd

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// originalDst is the destination a redirected connection was made to,
// before the NAT rule sent it to the listener: conntrack keeps it, and
// getsockopt(SOL_IP, SO_ORIGINAL_DST) returns it as a struct sockaddr_in.
// A connection made straight to the listener's port (not redirected) has
// no translation and reports that port, so it is forwarded to the same port
// in the pod, as any other.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var raw [unix.SizeofSockaddrInet4]byte
	var serr error
	err = rc.Control(func(fd uintptr) {
		size := uint32(len(raw))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IP, unix.SO_ORIGINAL_DST,
			uintptr(unsafe.Pointer(&raw[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			serr = errno
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
	}
	return parseSockaddrInet4(raw)
}

// parseSockaddrInet4 decodes a struct sockaddr_in: the family in host byte
// order, then the port and the address in network byte order.
func parseSockaddrInet4(b [unix.SizeofSockaddrInet4]byte) (netip.AddrPort, error) {
	if fam := binary.NativeEndian.Uint16(b[0:2]); fam != unix.AF_INET {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: address family %d, want AF_INET", fam)
	}
	port := binary.BigEndian.Uint16(b[2:4])
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
}
