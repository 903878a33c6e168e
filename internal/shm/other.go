//go:build !linux

package shm

import (
	"context"
	"errors"
	"time"
)

// Config describes one rank's shared-memory link (see the Linux version).
type Config struct {
	Dir, ID          string
	NameKey, AuthKey []byte
	Rank, Size       int
	Peers            []int
	RingSize         int
	MaxFrame         int
	Spin             time.Duration
	Crowded          bool
	OnView           func([]byte)
}

// DefaultDir is where segments live.
const DefaultDir = "/dev/shm"

// ErrClosed is returned by Send on a closed Link.
var ErrClosed = errors.New("shm: link closed")

// Link is unavailable on this system.
type Link struct{}

// Open fails: shared memory needs Linux.
func Open(Config, func([]byte), func(error)) (*Link, error) { return nil, errors.ErrUnsupported }

// Path is empty.
func (*Link) Path() string { return "" }

// Nonce is empty.
func (*Link) Nonce() string { return "" }

// Connect reaches nobody.
func (*Link) Connect(map[int]string) ([]bool, map[int]error) { return nil, nil }

// MaxFrame is 0.
func (*Link) MaxFrame() int { return 0 }

// Send fails.
func (*Link) Send(int, []byte) error { return errors.ErrUnsupported }

// SendV fails.
func (*Link) SendV(int, []byte, []byte) (bool, error) { return true, errors.ErrUnsupported }

// Drive reports done().
func (*Link) Drive(done func() bool, _ time.Duration) bool { return done() }

// Flush does nothing.
func (*Link) Flush(context.Context) error { return nil }

// Close does nothing.
func (*Link) Close() error { return nil }

// RemoveJob does nothing.
func RemoveJob(dir, id string) {}

// SweepStale does nothing.
func SweepStale(dir string) int { return 0 }

// Reaches is false.
func (*Link) Reaches(int) bool { return false }

// Keys are empty.
func (*Link) Keys() (string, []byte, []byte) { return "", nil, nil }
