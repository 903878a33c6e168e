//go:build !linux

package shm

import (
	"context"
	"errors"
)

// RegionConfig describes one member's view of a region (see the Linux
// version).
type RegionConfig struct {
	Dir, ID          string
	NameKey, AuthKey []byte
	Comm             uint64
	Rank             int
	Slot             int
}

// Members says who shares a region (see the Linux version).
type Members struct {
	World   []int
	Me      int
	Crowded bool
	Alive   func(m int) error
}

// RegionHead is the number of header words a post carries.
const RegionHead = 5

// ErrRegionLeft is wrapped by the error of a wait for a member that left.
var ErrRegionLeft = errors.New("shm: a member left the collectives region")

// Region is unavailable on this system.
type Region struct{}

// CreateRegion fails: shared memory needs Linux.
func CreateRegion(RegionConfig) (*Region, error) { return nil, errors.ErrUnsupported }

func (*Region) Attach(Members) error                                   { return errors.ErrUnsupported }
func (*Region) Unlink()                                                {}
func (*Region) Close()                                                 {}
func (*Region) Unmap()                                                 {}
func (*Region) Fail()                                                  {}
func (*Region) Members() int                                           { return 0 }
func (*Region) Me() int                                                { return 0 }
func (*Region) Crowded() bool                                          { return false }
func (*Region) Slot() int                                              { return 0 }
func (*Region) Post(context.Context, uint64, []int64, ...[]byte) error { return errors.ErrUnsupported }
func (*Region) Posted(int, uint64) bool                                { return false }
func (*Region) WaitAll(context.Context, uint64) error                  { return errors.ErrUnsupported }
func (*Region) Wait(context.Context, int, uint64) error                { return errors.ErrUnsupported }
func (*Region) Await(context.Context, func() bool) error               { return errors.ErrUnsupported }
func (*Region) Head(int, uint64, int) int64                            { return 0 }
func (*Region) Data(int, uint64) []byte                                { return nil }
func (*Region) Ack(uint64)                                             {}

func (*Region) Own(uint64) []byte                              { return nil }
func (*Region) SlotOf(int, uint64) []byte                      { return nil }
func (*Region) Mark(uint64)                                    {}
func (*Region) Marked(int, uint64) bool                        { return false }
func (*Region) WaitMarks(context.Context, uint64, []int) error { return errors.ErrUnsupported }

func (*Region) MarkOf(int, uint64) uint64 { return 0 }
func (*Region) CanPost(uint64) bool       { return false }

// Background returns ctx.
func Background(ctx context.Context) context.Context { return ctx }
