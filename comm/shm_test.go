package comm

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/decorun/decorun/internal/shm"
	"github.com/decorun/decorun/internal/transport"
)

// pathTests exercise ordering, credit, rendezvous, cancellation and
// departed peers; TestSHM and TestNATS run them on each data path (the
// other tests run on DECORUN_TRANSPORT, by default auto).
var pathTests = []struct {
	name string
	f    func(*testing.T)
}{
	{"Ring", TestRing},
	{"OrderMixedSizes", TestOrderMixedSizes},
	{"CreditBlocksAndResumes", TestCreditBlocksAndResumes},
	{"LargeMessage", TestLargeMessage},
	{"CancelRecvAndSend", TestCancelRecvAndSend},
	{"RevokeKeepsOtherUnexpected", TestRevokeKeepsOtherUnexpected},
	{"SendrecvAndNonblocking", TestSendrecvAndNonblocking},
	{"CloseWakesBlocked", TestCloseWakesBlocked},
	{"PeerLost", TestPeerLost},
	{"PeerClosed", TestPeerClosed},
	{"SplitAndIsolation", TestSplitAndIsolation},
}

func onPath(t *testing.T, tr string) {
	old := testTransport
	t.Cleanup(func() { testTransport = old })
	for _, tt := range pathTests {
		t.Run(tt.name, func(t *testing.T) {
			testTransport = tr
			tt.f(t)
		})
	}
}

// TestNATS runs pathTests with every frame through the NATS server.
func TestNATS(t *testing.T) {
	onPath(t, "nats")
	t.Run("Paths", func(t *testing.T) {
		testTransport = "nats"
		for _, c := range world(t, 2) {
			if _, ok := c.link.(*transport.NATS); !ok {
				t.Errorf("rank %d: link is %T; want NATS only", c.Rank(), c.link)
			}
		}
	})
}

// TestSHM runs pathTests over shared memory (ranks in one process reach
// each other through /dev/shm segments like ranks on one host); "shm" makes
// a rank that cannot be reached that way an error.
func TestSHM(t *testing.T) {
	if _, err := os.Stat(shm.DefaultDir); err != nil {
		t.Skip("no", shm.DefaultDir)
	}
	onPath(t, "shm")
	t.Run("PathsAndNames", func(t *testing.T) {
		testTransport = "shm"
		cs := world(t, 3)
		for _, c := range cs {
			m, ok := c.link.(*transport.Mux)
			if !ok {
				t.Fatalf("rank %d: link is %T; want a Mux", c.Rank(), c.link)
			}
			for p := range 3 {
				if p != c.Rank() && !m.Fast(p) {
					t.Errorf("rank %d: frames to rank %d do not take shared memory", c.Rank(), p)
				}
			}
		}
		// Every peer has mapped every segment: no name is left in /dev/shm.
		for {
			names, _ := filepath.Glob(filepath.Join(shm.DefaultDir, "decorun-t-*"))
			if len(names) == 0 {
				break
			}
			waitBriefly()
		}
	})
}

func waitBriefly() { time.Sleep(time.Millisecond) }
