// Package wire is the binary frame format ranks exchange.
//
// Every frame is a fixed 48-byte little-endian header, an optional type name
// (for typed messages) and a payload:
//
//	off size field
//	0   1    magic 0xDC
//	1   1    kind (Eager, RTS, CTS, Data, Credit, Revoke, Fin, Nudge)
//	2   1    flags
//	3   1    reserved, zero
//	4   4    src: sender's world rank
//	8   8    comm: communicator context id
//	16  4    tag (int32, >= 0)
//	20  8    seq: per (sender, receiver) frame sequence number, from 1;
//	         with FlagMulticast, the sender's multicast sequence number
//	28  8    id: message id (RTS, CTS, Data, Revoke, Eager with FlagLong)
//	36  8    n: total size (Eager, RTS), offset (Data), bytes (Credit;
//	         with FlagStream, of the stream window),
//	         multicast frames sent before it (Fin)
//	44  2    length of the type name that follows the header
//	46  2    reserved, zero
//	48  ...  type name, then payload
//
// Decode never panics on any input; it returns an error naming what is wrong.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is a frame's kind.
type Kind uint8

// Frame kinds.
const (
	Eager  Kind = 1 // a whole message, or with FlagLong the head of one
	RTS    Kind = 2 // request to send a large message of N bytes, id Id
	CTS    Kind = 3 // clear to send message Id (receiver to sender)
	Data   Kind = 4 // a chunk of message Id at offset N
	Credit Kind = 5 // the receiver returns N bytes of send credit
	Revoke Kind = 6 // the sender withdrew message Id (its Send was cancelled)
	Fin    Kind = 7 // the sender closed its communicator: nothing follows
	// Nudge (receiver to sender): the receiver waits for a message while
	// it holds nearly all of the sender's eager window; the sender sends
	// what waits for eager credit by rendezvous instead, until credit
	// comes back.
	Nudge Kind = 8
)

func (k Kind) String() string {
	switch k {
	case Eager:
		return "eager"
	case RTS:
		return "rts"
	case CTS:
		return "cts"
	case Data:
		return "data"
	case Credit:
		return "credit"
	case Revoke:
		return "revoke"
	case Fin:
		return "fin"
	case Nudge:
		return "nudge"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Flags.
const (
	// FlagTruncate on a CTS tells the sender that the receiver's buffer was
	// too small: the message is dropped and no Data follows.
	FlagTruncate uint8 = 1
	// FlagLong on an Eager frame: the message (N bytes, id Id) is longer
	// than this frame's payload, its first chunk; Data frames of message Id
	// carry the rest, without a CTS.
	FlagLong uint8 = 2
	// FlagMulticast on an Eager frame: one frame for every rank of the
	// job, published once on the sender's multicast subject (see
	// transport.Multicaster); its seq counts the sender's multicast frames.
	FlagMulticast uint8 = 4
	// FlagStream on a Credit frame: the credit is for the stream window
	// (rendezvous Data), not the eager window; on a Data frame: the frame
	// took credit from the stream window (it is rendezvous data, not the
	// rest of a long eager message).
	FlagStream uint8 = 8
)

// Magic is the first byte of every frame.
const Magic = 0xDC

// HeaderSize is the size of the fixed header.
const HeaderSize = 48

// MaxTypeName bounds the type name length.
const MaxTypeName = 1024

// Header is the decoded fixed part of a frame.
type Header struct {
	Kind  Kind
	Flags uint8
	Comm  uint64
	Src   int32
	Tag   int32
	Seq   uint64
	ID    uint64
	N     uint64
	Type  string // Go type of a typed message; empty for raw bytes
}

// Size returns the encoded size of h with a payload of n bytes.
func (h *Header) Size(n int) int { return HeaderSize + len(h.Type) + n }

// ErrShort and friends are returned by Decode.
var (
	ErrShort    = errors.New("wire: frame shorter than its header")
	ErrMagic    = errors.New("wire: bad magic byte")
	ErrKind     = errors.New("wire: unknown frame kind")
	ErrTypeName = errors.New("wire: bad type name length")
)

// Append appends the header of h to dst and returns the extended slice. The
// caller appends the payload.
func Append(dst []byte, h *Header) []byte {
	var b [HeaderSize]byte
	b[0] = Magic
	b[1] = byte(h.Kind)
	b[2] = h.Flags
	binary.LittleEndian.PutUint32(b[4:], uint32(h.Src))
	binary.LittleEndian.PutUint64(b[8:], h.Comm)
	binary.LittleEndian.PutUint32(b[16:], uint32(h.Tag))
	binary.LittleEndian.PutUint64(b[20:], h.Seq)
	binary.LittleEndian.PutUint64(b[28:], h.ID)
	binary.LittleEndian.PutUint64(b[36:], h.N)
	binary.LittleEndian.PutUint16(b[44:], uint16(len(h.Type)))
	dst = append(dst, b[:]...)
	return append(dst, h.Type...)
}

// Decode parses frame into h and returns the payload (a sub-slice of frame).
func Decode(frame []byte, h *Header) (payload []byte, err error) {
	if len(frame) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrShort, len(frame))
	}
	if frame[0] != Magic {
		return nil, fmt.Errorf("%w: 0x%02x", ErrMagic, frame[0])
	}
	k := Kind(frame[1])
	if k < Eager || k > Nudge {
		return nil, fmt.Errorf("%w: %d", ErrKind, frame[1])
	}
	tl := int(binary.LittleEndian.Uint16(frame[44:]))
	if tl > MaxTypeName || HeaderSize+tl > len(frame) {
		return nil, fmt.Errorf("%w: %d in a frame of %d bytes", ErrTypeName, tl, len(frame))
	}
	h.Kind = k
	h.Flags = frame[2]
	h.Src = int32(binary.LittleEndian.Uint32(frame[4:]))
	h.Comm = binary.LittleEndian.Uint64(frame[8:])
	h.Tag = int32(binary.LittleEndian.Uint32(frame[16:]))
	h.Seq = binary.LittleEndian.Uint64(frame[20:])
	h.ID = binary.LittleEndian.Uint64(frame[28:])
	h.N = binary.LittleEndian.Uint64(frame[36:])
	if tl == 0 {
		h.Type = ""
	} else if h.Type != string(frame[HeaderSize:HeaderSize+tl]) { // no allocation when unchanged
		h.Type = string(frame[HeaderSize : HeaderSize+tl])
	}
	payload = frame[HeaderSize+tl:]
	if k == Eager && h.Flags&FlagLong == 0 && uint64(len(payload)) != h.N {
		return nil, fmt.Errorf("wire: eager frame says %d bytes but carries %d", h.N, len(payload))
	}
	if k == Eager && h.Flags&FlagLong != 0 && uint64(len(payload)) >= h.N {
		return nil, fmt.Errorf("wire: long eager frame says %d bytes but carries %d", h.N, len(payload))
	}
	if (k == CTS || k == Credit || k == Revoke || k == RTS || k == Fin || k == Nudge) && len(payload) != 0 {
		return nil, fmt.Errorf("wire: %v frame carries %d unexpected payload bytes", k, len(payload))
	}
	return payload, nil
}
