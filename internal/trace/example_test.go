package trace_test

import (
	"fmt"

	"github.com/decorun/decorun/internal/trace"
)

// Two ranks' recordings, as decorun receives them: rank 0 sent message 1
// to rank 1, which received it. Merge joins the send to the receive with a
// flow arrow; Summarize counts them.
func Example() {
	ms := int64(1_000_000)
	d0 := &trace.Dump{Rank: 0, Size: 2, Host: "a", Epoch: 0, RTT: 50_000, Reason: "close", Sites: []string{"", "main.go:10"},
		Events: []trace.Event{{Kind: trace.KindSend, Name: "Send", Peer: 1, Tag: 7, Start: 1 * ms, End: 2 * ms, Bytes: 64, ID: 1, Site: 1}}}
	d1 := &trace.Dump{Rank: 1, Size: 2, Host: "b", Epoch: 0, RTT: 60_000, Reason: "close", Sites: []string{"", "main.go:12"},
		Events: []trace.Event{{Kind: trace.KindRecv, Name: "Recv", Peer: 0, Tag: 7, Start: 1 * ms, End: 3 * ms, Bytes: 64, ID: 1, Site: 1}}}
	dumps := []*trace.Dump{d0, d1}

	f := trace.Merge(dumps, 2, nil)
	fmt.Println("valid:", trace.Validate(f) == nil)
	for _, e := range f.TraceEvents {
		if e.Ph == "X" || e.Ph == "s" || e.Ph == "f" {
			fmt.Printf("%s %s rank %d at %.0f µs\n", e.Ph, e.Name, e.Pid, e.Ts)
		}
	}
	r := trace.Summarize(dumps, 2, nil)
	for _, s := range r.Sites {
		fmt.Printf("%s %s: %d call, %d bytes\n", s.Site, s.Call, s.Count, s.Bytes)
	}
	// Output:
	// valid: true
	// X Send rank 0 at 1000 µs
	// s message rank 0 at 1000 µs
	// X Recv rank 1 at 1000 µs
	// f message rank 1 at 3000 µs
	// main.go:12 Recv: 1 call, 64 bytes
	// main.go:10 Send: 1 call, 64 bytes
}
