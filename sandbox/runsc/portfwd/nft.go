package portfwd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family ip) the forwarder owns in a pod's
// network namespace. Nothing else in that namespace uses nftables: CNI's
// portmap works in the host's namespace, and gVisor's netstack does its own
// filtering, so a table of our own can be created and deleted whole.
const TableName = "palisade_portfwd"

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
}

// loopback is where containerd's CRI dials: net.Dial("tcp4", "localhost:N")
// inside the pod's namespace (it tries tcp6 only when tcp4 fails, and the
// listener never refuses, so IPv6 needs no rule).
var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// redirectExprs is the one rule of the table's output chain:
//
//	meta oifname "lo" meta l4proto tcp ip daddr 127.0.0.1 tcp dport != <listen> redirect to :<listen>
//
// The output hook sees only connections made by processes in the namespace
// on the host side (containerd's port forwarding), never the pod's own
// traffic, which gVisor's netstack sends through its AF_PACKET endpoint. The
// listener's own port is excluded so that the rule never matches its target.
func redirectExprs(listen uint16) []expr.Any {
	port := binary.BigEndian.AppendUint16(nil, listen)
	lo := make([]byte, unix.IFNAMSIZ)
	copy(lo, "lo")
	daddr := loopback.As4()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: lo},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		// ip daddr: offset 16 of the IPv4 header.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: daddr[:]},
		// tcp dport: offset 2 of the TCP header.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: port},
		&expr.Immediate{Register: 1, Data: port},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// installRule creates the table, its NAT output chain and the redirect rule
// in the namespace open at nsFd, in one netlink batch: the kernel applies
// all of it or none. A table left by an earlier shim of the same pod (one
// that died before `shim delete` ran) is replaced.
func installRule(nsFd int, listen uint16) error {
	c, err := nftables.New(nftables.WithNetNSFd(nsFd))
	if err != nil {
		return fmt.Errorf("nftables in the pod's network namespace: %w", err)
	}
	if err := deleteTable(c); err != nil {
		return err
	}
	t := c.AddTable(table())
	ch := c.AddChain(&nftables.Chain{
		Name:     "output",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityNATDest,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: redirectExprs(listen)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: add table %s redirecting 127.0.0.1 to port %d: %w", TableName, listen, err)
	}
	return nil
}

// deleteTable deletes the forwarder's table if the namespace has it.
func deleteTable(c *nftables.Conn) error {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			c.DelTable(table())
			if err := c.Flush(); err != nil {
				return fmt.Errorf("nftables: delete table %s: %w", TableName, err)
			}
		}
	}
	return nil
}

// removeRule deletes the table from the namespace open at nsFd.
func removeRule(nsFd int) error {
	c, err := nftables.New(nftables.WithNetNSFd(nsFd))
	if err != nil {
		return fmt.Errorf("nftables in the pod's network namespace: %w", err)
	}
	return deleteTable(c)
}

// Remove deletes the forwarder's table from the network namespace at
// nsPath, for `shim delete` after a shim died: the namespace can outlive
// the shim (containerd removes it only when the pod goes), and a rule left
// there would send port forwards to a listener that is gone. A namespace
// that is already gone has nothing to remove.
func Remove(nsPath string) error {
	f, err := os.Open(nsPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer f.Close()
	if err := isNetNS(int(f.Fd())); err != nil {
		// A path left behind after the namespace was unmounted: a plain
		// file, nothing to clean in it.
		return nil
	}
	return removeRule(int(f.Fd()))
}

// isNetNS reports an error unless fd is a network namespace.
func isNetNS(fd int) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("not a namespace file")
	}
	return nil
}

// HasTable reports whether the network namespace at nsPath holds the
// forwarder's table (for leak checks).
func HasTable(nsPath string) (bool, error) {
	f, err := os.Open(nsPath)
	if err != nil {
		return false, err
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, err
	}
	for _, t := range tables {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}
