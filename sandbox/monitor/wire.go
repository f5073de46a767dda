// Package monitor receives gVisor's runtime monitoring points for one
// sandbox, turns them into rule events, and writes the alerts the rules
// raise.
//
// runsc's "remote" sink connects to a unix SOCK_SEQPACKET socket named in
// the pod-init config, sends a Handshake message and waits for one back,
// then writes one point per packet: an 8-byte header (header size, message
// type, dropped count; little-endian) and a protobuf message of
// gvisor.dev/gvisor/pkg/sentry/seccheck/points/points_go_proto. gVisor's
// reference server is not in the module's go branch, so the listener, the
// handshake and the header are written here from the protocol, and
// everything read from the sandbox is treated as hostile: sizes are
// bounded, nothing in it can panic the shim, and what cannot be decoded is
// counted, not trusted.
package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	pb "gvisor.dev/gvisor/pkg/sentry/seccheck/points/points_go_proto"
)

// Wire constants of the remote sink's protocol (gVisor's
// pkg/sentry/seccheck/sinks/remote/wire): protocol version 1, whose header
// is 8 bytes. A longer header is allowed (its size field says where the
// payload starts), so that a newer sandbox still talks to this receiver.
const (
	wireVersion   = 1
	minHeaderSize = 8
	// MaxPacket bounds one point. gVisor's largest points are execs with
	// their argv and environment; a packet longer than this is truncated
	// by the kernel on receipt and counted as malformed.
	MaxPacket = 256 << 10
	// handshakeBuffer is what the sink reads the handshake reply into; the
	// reply must be smaller.
	handshakeBuffer = 10240
)

// header is the fixed part of a point's packet.
type header struct {
	size        uint16 // bytes of header before the payload
	messageType uint16 // a pb.MessageType
	dropped     uint32 // points the sandbox dropped so far; wraps around
}

// errMalformed marks a packet that is not a valid point.
var errMalformed = errors.New("malformed point")

// parseHeader reads a packet's header and returns it with the payload.
func parseHeader(packet []byte) (header, []byte, error) {
	if len(packet) < minHeaderSize {
		return header{}, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", errMalformed, len(packet), minHeaderSize)
	}
	h := header{
		size:        binary.LittleEndian.Uint16(packet[0:2]),
		messageType: binary.LittleEndian.Uint16(packet[2:4]),
		dropped:     binary.LittleEndian.Uint32(packet[4:8]),
	}
	if int(h.size) < minHeaderSize || int(h.size) > len(packet) {
		return h, nil, fmt.Errorf("%w: header size %d in a %d-byte packet", errMalformed, h.size, len(packet))
	}
	return h, packet[h.size:], nil
}

// appendHeader writes a version-1 header; tests and the fake sandbox use
// it to craft packets.
func appendHeader(b []byte, messageType pb.MessageType, dropped uint32) []byte {
	b = binary.LittleEndian.AppendUint16(b, minHeaderSize)
	b = binary.LittleEndian.AppendUint16(b, uint16(messageType))
	return binary.LittleEndian.AppendUint32(b, dropped)
}

// newMessage returns an empty message of a point's type, or nil for a type
// this receiver does not know (a newer sandbox's point): such points are
// counted and skipped.
func newMessage(t pb.MessageType) proto.Message {
	switch t {
	case pb.MessageType_MESSAGE_CONTAINER_START:
		return &pb.Start{}
	case pb.MessageType_MESSAGE_SENTRY_CLONE:
		return &pb.CloneInfo{}
	case pb.MessageType_MESSAGE_SENTRY_EXEC:
		return &pb.ExecveInfo{}
	case pb.MessageType_MESSAGE_SENTRY_EXIT_NOTIFY_PARENT:
		return &pb.ExitNotifyParentInfo{}
	case pb.MessageType_MESSAGE_SENTRY_TASK_EXIT:
		return &pb.TaskExit{}
	case pb.MessageType_MESSAGE_SYSCALL_RAW:
		return &pb.Syscall{}
	case pb.MessageType_MESSAGE_SYSCALL_OPEN:
		return &pb.Open{}
	case pb.MessageType_MESSAGE_SYSCALL_CLOSE:
		return &pb.Close{}
	case pb.MessageType_MESSAGE_SYSCALL_READ:
		return &pb.Read{}
	case pb.MessageType_MESSAGE_SYSCALL_WRITE:
		return &pb.Write{}
	case pb.MessageType_MESSAGE_SYSCALL_CONNECT:
		return &pb.Connect{}
	case pb.MessageType_MESSAGE_SYSCALL_EXECVE:
		return &pb.Execve{}
	case pb.MessageType_MESSAGE_SYSCALL_SOCKET:
		return &pb.Socket{}
	case pb.MessageType_MESSAGE_SYSCALL_CHDIR:
		return &pb.Chdir{}
	case pb.MessageType_MESSAGE_SYSCALL_SETID:
		return &pb.Setid{}
	case pb.MessageType_MESSAGE_SYSCALL_SETRESID:
		return &pb.Setresid{}
	case pb.MessageType_MESSAGE_SYSCALL_CHROOT:
		return &pb.Chroot{}
	case pb.MessageType_MESSAGE_SYSCALL_CLONE:
		return &pb.Clone{}
	case pb.MessageType_MESSAGE_SYSCALL_BIND:
		return &pb.Bind{}
	case pb.MessageType_MESSAGE_SYSCALL_ACCEPT:
		return &pb.Accept{}
	case pb.MessageType_MESSAGE_SYSCALL_FORK:
		return &pb.Fork{}
	}
	return nil
}

// errUnknownType marks a point of a message type this receiver skips.
var errUnknownType = errors.New("unknown point type")

// decodePacket parses one packet into its header and message.
func decodePacket(packet []byte) (header, proto.Message, error) {
	h, payload, err := parseHeader(packet)
	if err != nil {
		return h, nil, err
	}
	msg := newMessage(pb.MessageType(h.messageType))
	if msg == nil {
		return h, nil, fmt.Errorf("%w %d", errUnknownType, h.messageType)
	}
	// proto.Unmarshal is bounded by the payload it is given and reports,
	// rather than panics on, malformed input.
	if err := proto.Unmarshal(payload, msg); err != nil {
		return h, nil, fmt.Errorf("%w: message type %d: %w", errMalformed, h.messageType, err)
	}
	return h, msg, nil
}

// handshakeReply answers the sink's handshake. The sink sends its version
// first; a message that does not decode, or a version this receiver does
// not speak, ends the connection before any point is read.
func handshakeReply(in []byte) ([]byte, error) {
	var hs pb.Handshake
	if err := proto.Unmarshal(in, &hs); err != nil {
		return nil, fmt.Errorf("%w: handshake: %w", errMalformed, err)
	}
	if hs.Version < wireVersion {
		return nil, fmt.Errorf("handshake: sandbox speaks version %d, want %d or later", hs.Version, wireVersion)
	}
	return proto.Marshal(&pb.Handshake{Version: wireVersion})
}
