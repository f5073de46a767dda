package monitor

import (
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"
	pb "gvisor.dev/gvisor/pkg/sentry/seccheck/points/points_go_proto"
)

// packet crafts one point as runsc's remote sink writes it.
func packet(t testing.TB, typ pb.MessageType, dropped uint32, m proto.Message) []byte {
	t.Helper()
	payload, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(appendHeader(nil, typ, dropped), payload...)
}

func ctxData(container, proc string) *pb.ContextData {
	return &pb.ContextData{
		TimeNs: 1_700_000_000_000_000_000, ContainerId: container, ProcessName: proc, Cwd: "/work",
		ThreadGroupId: 7, ThreadId: 8, ParentThreadGroupId: 1,
		Credentials: &pb.Credentials{EffectiveUid: 1000, RealUid: 1000, EffectiveGid: 1000},
	}
}

func TestDecodeOpenat(t *testing.T) {
	p := packet(t, pb.MessageType_MESSAGE_SYSCALL_OPEN, 0, &pb.Open{
		ContextData: ctxData("c1", "cat"), Exit: &pb.Exit{Result: 3},
		Sysno: 257, Fd: atFdCwd, Pathname: "../etc/shadow", Flags: 0,
	})
	_, msg, err := decodePacket(p)
	if err != nil {
		t.Fatal(err)
	}
	e := toEvent(msg)
	if e.Evt.Type != "openat" || e.Evt.Dir != "<" || e.Evt.Res != 3 || e.Evt.Failed {
		t.Errorf("evt %+v", e.Evt)
	}
	if e.Fd.Name != "/etc/shadow" || e.Fd.Directory != "/etc" || e.Fd.Filename != "shadow" || !e.Evt.IsOpenRead || e.Evt.IsOpenWrite {
		t.Errorf("fd %+v evt %+v", e.Fd, e.Evt)
	}
	if e.Container.ID != "c1" || e.Proc.Name != "cat" || e.User.UID != 1000 || e.Proc.Pid != 7 || e.Evt.Time != 1_700_000_000_000_000_000 {
		t.Errorf("context %+v %+v %+v", e.Container, e.Proc, e.User)
	}
}

func TestDecodeEnterAndErrno(t *testing.T) {
	_, msg, err := decodePacket(packet(t, pb.MessageType_MESSAGE_SYSCALL_OPEN, 0, &pb.Open{
		ContextData: ctxData("c1", "touch"), Sysno: 2, Pathname: "/etc/x", Flags: oWrOnly | oCreat,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if e := toEvent(msg); e.Evt.Type != "open" || e.Evt.Dir != ">" || !e.Evt.IsOpenWrite {
		t.Errorf("enter %+v", e.Evt)
	}
	_, msg, _ = decodePacket(packet(t, pb.MessageType_MESSAGE_SYSCALL_CONNECT, 0, &pb.Connect{
		ContextData: ctxData("c1", "wget"), Sysno: 42, Exit: &pb.Exit{Result: -1, Errorno: 111},
		Address: append([]byte{2, 0, 0x1f, 0x90}, 10, 0, 0, 1),
	}))
	e := toEvent(msg)
	if e.Evt.Res != -111 || !e.Evt.Failed || e.Fd.SIP != "10.0.0.1" || e.Fd.SPort != 8080 || e.Fd.Name != "10.0.0.1:8080" || e.Fd.SockFamily != "ip" {
		t.Errorf("connect %+v %+v", e.Evt, e.Fd)
	}
}

func TestDecodeSentryExecveAndStart(t *testing.T) {
	_, msg, err := decodePacket(packet(t, pb.MessageType_MESSAGE_SENTRY_EXEC, 0, &pb.ExecveInfo{
		ContextData: ctxData("c2", "sh"), BinaryPath: "/bin/busybox", Argv: []string{"cat", "/etc/shadow"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	e := toEvent(msg)
	if e.Evt.Type != "sentry_execve" || e.Proc.Exepath != "/bin/busybox" || e.Proc.Name != "cat" || e.Proc.Cmdline != "cat /etc/shadow" {
		t.Errorf("execve %+v %+v", e.Evt, e.Proc)
	}
	// Without the binary's path, argv[0] names the process, not the
	// process's name before the exec.
	_, msg, _ = decodePacket(packet(t, pb.MessageType_MESSAGE_SENTRY_EXEC, 0, &pb.ExecveInfo{
		ContextData: ctxData("c2", "sh"), Argv: []string{"apk", "add", "curl"},
	}))
	if e := toEvent(msg); e.Proc.Name != "apk" || e.Proc.Cmdline != "apk add curl" {
		t.Errorf("execve without path %+v", e.Proc)
	}
	_, msg, _ = decodePacket(packet(t, pb.MessageType_MESSAGE_CONTAINER_START, 0, &pb.Start{
		Id: "c3", Args: []string{"sh", "-c", "x"}, Terminal: true,
	}))
	if e := toEvent(msg); e.Evt.Type != "container_start" || e.Container.ID != "c3" || !e.Proc.Tty || e.Proc.Name != "sh" {
		t.Errorf("start %+v", e)
	}
}

func TestDecodeSetidFamily(t *testing.T) {
	_, msg, _ := decodePacket(packet(t, pb.MessageType_MESSAGE_SYSCALL_SETID, 0, &pb.Setid{ContextData: ctxData("c", "su"), Sysno: 105, Id: 0}))
	if e := toEvent(msg); e.Evt.Type != "setuid" || e.Evt.Arg.UID != 0 || e.Evt.Arg.GID != -1 {
		t.Errorf("setuid %+v", e.Evt)
	}
	_, msg, _ = decodePacket(packet(t, pb.MessageType_MESSAGE_SYSCALL_SETRESID, 0, &pb.Setresid{ContextData: ctxData("c", "su"), Sysno: 119, Rid: 0xffffffff, Eid: 0xffffffff, Sid: 5}))
	if e := toEvent(msg); e.Evt.Type != "setresgid" || e.Evt.Arg.GID != -1 {
		t.Errorf("setresgid %+v", e.Evt)
	}
	_, msg, _ = decodePacket(packet(t, pb.MessageType_MESSAGE_SYSCALL_RAW, 0, &pb.Syscall{ContextData: ctxData("c", "mount"), Sysno: 165}))
	if e := toEvent(msg); e.Evt.Type != "mount" || e.Evt.Dir != ">" {
		t.Errorf("mount %+v", e.Evt)
	}
}

func TestMalformedPackets(t *testing.T) {
	good := packet(t, pb.MessageType_MESSAGE_SYSCALL_OPEN, 0, &pb.Open{Pathname: "/x"})
	bigHeader := append([]byte(nil), good...)
	binary.LittleEndian.PutUint16(bigHeader, uint16(len(good)+1))
	smallHeader := append([]byte(nil), good...)
	binary.LittleEndian.PutUint16(smallHeader, 4)
	cases := map[string][]byte{
		"empty":        nil,
		"short":        good[:5],
		"header past":  bigHeader,
		"header short": smallHeader,
		"bad payload":  append(appendHeader(nil, pb.MessageType_MESSAGE_SYSCALL_OPEN, 0), 0xff, 0xff, 0xff),
	}
	for name, p := range cases {
		if _, _, err := decodePacket(p); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, _, err := decodePacket(appendHeader(nil, 999, 0)); err == nil {
		t.Error("unknown type decoded")
	}
	// A longer header than version 1's is skipped, as the protocol allows.
	longer := append([]byte{16, 0, byte(pb.MessageType_MESSAGE_SYSCALL_OPEN), 0, 0, 0, 0, 0}, make([]byte, 8)...)
	if _, _, err := decodePacket(append(longer, good[8:]...)); err != nil {
		t.Errorf("longer header: %v", err)
	}
}

func TestBoundsOnStrings(t *testing.T) {
	argv := make([]string, 1000)
	for i := range argv {
		argv[i] = string(make([]byte, 10000))
	}
	_, msg, err := decodePacket(packet(t, pb.MessageType_MESSAGE_SENTRY_EXEC, 0, &pb.ExecveInfo{BinaryPath: string(make([]byte, 10000)), Argv: argv}))
	if err != nil {
		t.Fatal(err)
	}
	e := toEvent(msg)
	if len(e.Proc.Args) > maxArgs || len(e.Proc.Exepath) > maxString || len(e.Proc.Cmdline) > maxString {
		t.Errorf("unbounded: %d args, exepath %d, cmdline %d", len(e.Proc.Args), len(e.Proc.Exepath), len(e.Proc.Cmdline))
	}
}

func TestHandshake(t *testing.T) {
	in, _ := proto.Marshal(&pb.Handshake{Version: 1})
	out, err := handshakeReply(in)
	if err != nil {
		t.Fatal(err)
	}
	var hs pb.Handshake
	if err := proto.Unmarshal(out, &hs); err != nil || hs.Version != 1 {
		t.Fatalf("reply %v %v", hs.Version, err)
	}
	zero, _ := proto.Marshal(&pb.Handshake{Version: 0})
	if _, err := handshakeReply(zero); err == nil {
		t.Error("version 0 accepted")
	}
}

// FuzzDecode feeds arbitrary packets to the decoder and the event
// conversion: a hostile sandbox must not be able to panic the shim.
func FuzzDecode(f *testing.F) {
	f.Add(packet(f, pb.MessageType_MESSAGE_SYSCALL_OPEN, 3, &pb.Open{ContextData: ctxData("c", "cat"), Sysno: 257, Pathname: "a/b", Fd: 5, FdPath: "/x"}))
	f.Add(packet(f, pb.MessageType_MESSAGE_SYSCALL_CONNECT, 0, &pb.Connect{Address: []byte{10, 0, 0, 80, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}))
	f.Add(packet(f, pb.MessageType_MESSAGE_SYSCALL_BIND, 0, &pb.Bind{Address: []byte{1, 0, 0, 'a', 'b'}}))
	f.Add(packet(f, pb.MessageType_MESSAGE_SENTRY_EXEC, 0, &pb.ExecveInfo{Argv: []string{"", "x"}}))
	f.Add([]byte{8, 0, 1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, msg, err := decodePacket(p)
		if err != nil {
			return
		}
		e := toEvent(msg)
		if len(e.Proc.Args) > maxArgs || len(e.Fd.Name) > maxString+1 {
			t.Fatalf("unbounded event: %d args, fd.name %d bytes", len(e.Proc.Args), len(e.Fd.Name))
		}
	})
}
