// Package transport carries comm's frames between rank processes.
//
// comm's protocol (credits, rendezvous, sequence checks) sits above a Link,
// which only has to deliver frames to a destination rank in the order they
// were sent and report loss as a fatal error. The NATS link is the card's
// path: each rank subscribes to one inbox subject and publishes to the
// others'. A faster data path (shared memory, direct TCP) is another Link.
package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/nats-io/nats.go"
)

// Link delivers frames between ranks.
type Link interface {
	// Send queues frame for rank dst and returns once frame has been copied;
	// frames to one destination arrive in the order sent.
	Send(dst int, frame []byte) error
	// MaxFrame is the largest frame Send accepts.
	MaxFrame() int
	// Flush returns once everything sent so far has left this process.
	Flush(ctx context.Context) error
	// Close ends the link; it is idempotent.
	Close() error
}

// Multicaster is a Link that can also hand one frame to every rank of the
// job with one send (NATS's fan-out: one publish, one delivery per
// subscriber). Multicast frames travel apart from the frames Send carries:
// their order relative to those is not kept, only among themselves (per
// sender), and a rank receives its own.
type Multicaster interface {
	Link
	// Multicast queues frame for every rank, like Send for each.
	Multicast(frame []byte) error
}

// VecSender is implemented by links that can take a frame in two parts,
// its head and its body, and copy them once, without joining them first.
// SendV reports whether it took the frame (with Send's meaning of the
// error); when it reports false the caller joins the parts and calls Send.
type VecSender interface {
	SendV(dst int, head, body []byte) (bool, error)
}

// NATS is a Link over core NATS, plus the job's control plane (start-up
// barrier and messages to the launcher).
type NATS struct {
	job    jobenv.Job
	nc     *nats.Conn
	sub    *nats.Subscription
	inbox  []string // subject of every rank's inbox
	mc     string   // this rank's multicast subject
	ctl    string
	max    int
	mu     sync.Mutex
	closed bool
	hosts  []int // after Boot: each rank's host group (see Hosts)
}

// ErrLost is wrapped by every error that means messages may have been lost.
var ErrLost = errors.New("transport: connection to the job's NATS server lost; messages may have been lost")

// DialNATS connects rank job.Rank to the job's server and subscribes its
// inbox. onFrame is called with every frame for this rank, one at a time, in
// arrival order; it owns the slice. onFatal is called (possibly more than
// once) when the connection is lost or NATS reports that it dropped a message.
// onEvent is called with the launcher's job events (jobenv.EventSubject).
func DialNATS(ctx context.Context, job jobenv.Job, onFrame func([]byte), onFatal func(error), onEvent func(jobenv.Ctl)) (*NATS, error) {
	t := &NATS{job: job, ctl: jobenv.CtlSubject(job.Prefix), mc: jobenv.MulticastSubject(job.Prefix, job.Rank)}
	t.inbox = make([]string, job.Size)
	for r := range t.inbox {
		t.inbox[r] = jobenv.InboxSubject(job.Prefix, r)
	}
	fatal := func(err error) {
		t.mu.Lock()
		closed := t.closed
		t.mu.Unlock()
		if !closed {
			onFatal(err)
		}
	}
	opts := []nats.Option{
		nats.Name("decorun rank " + strconv.Itoa(job.Rank)),
		nats.NoReconnect(), // a reconnect loses what was in flight: treat as fatal instead
		// A rank never needs what it publishes itself; without this the
		// server would hand every multicast back to its sender too.
		nats.NoEcho(),
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				err = errors.New("disconnected")
			}
			fatal(fmt.Errorf("%w: %v", ErrLost, err))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			fatal(fmt.Errorf("%w: %v", ErrLost, err))
		}),
	}
	auth, err := Auth(job)
	if err != nil {
		return nil, fmt.Errorf("transport: rank %d: %w", job.Rank, err)
	}
	opts = append(opts, auth...)
	if d, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(d)))
	}
	nc, err := nats.Connect(URLFor(job.URL, job.Rank), opts...)
	if err != nil {
		return nil, fmt.Errorf("transport: rank %d cannot connect to %s: %w", job.Rank, jobenv.Redact(job.URL), jobenv.RedactError(err))
	}
	t.nc = nc
	t.max = int(nc.MaxPayload())
	sub, err := nc.Subscribe(t.inbox[job.Rank], func(m *nats.Msg) { onFrame(m.Data) })
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("transport: rank %d subscribe: %w", job.Rank, err)
	}
	// comm's credit windows bound what can be queued for this rank; the
	// client-side limits must never drop on their own.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		nc.Close()
		return nil, err
	}
	t.sub = sub
	if _, err := nc.Subscribe(jobenv.EventSubject(job.Prefix), func(m *nats.Msg) {
		if c, err := jobenv.DecodeCtl(m.Data); err == nil {
			onEvent(c)
		}
	}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("transport: rank %d subscribe to events: %w", job.Rank, err)
	}
	// No flush here: whatever this rank sends next on nc (its join, its
	// boot request) reaches the server after these subscriptions, and the
	// boot barrier completes only once rank 0 has every other rank's
	// request, so every inbox is live before anyone sends a frame. (A
	// flush cost one more round trip per rank at start-up.)
	return t, nil
}

// URLFor spreads ranks over the servers of a cluster: with several URLs
// (comma-separated), rank r tries the r-th first (mod their number), then
// the others in order (see Auth: no randomising).
func URLFor(urls string, rank int) string {
	us := strings.Split(urls, ",")
	if len(us) < 2 {
		return urls
	}
	k := rank % len(us)
	return strings.Join(append(us[k:len(us):len(us)], us[:k]...), ",")
}

// Auth returns the nats.go options that present the job's credentials:
// token, user and password, a creds file, an nkey seed file, TLS (a CA
// file or the job's own pinned certificate, and a client certificate).
func Auth(job jobenv.Job) ([]nats.Option, error) {
	opts := []nats.Option{nats.DontRandomize()}
	if job.Secret != "" {
		opts = append(opts, nats.Token(job.Secret))
	}
	if job.User != "" || job.Password != "" {
		opts = append(opts, nats.UserInfo(job.User, job.Password))
	}
	if job.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(job.CredsFile))
	}
	if job.NkeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(job.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed %s: %w", job.NkeyFile, err)
		}
		opts = append(opts, o)
	}
	if job.CAFile != "" {
		opts = append(opts, nats.RootCAs(job.CAFile))
	}
	if job.CertFile != "" || job.KeyFile != "" {
		opts = append(opts, nats.ClientCert(job.CertFile, job.KeyFile))
	}
	if job.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(job.CAPEM)) {
			return nil, fmt.Errorf("%s holds no PEM certificate", jobenv.EnvCAPEM)
		}
		opts = append(opts, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	return opts, nil
}

// Send implements Link.
func (t *NATS) Send(dst int, frame []byte) error {
	if err := t.nc.Publish(t.inbox[dst], frame); err != nil {
		return fmt.Errorf("transport: publish to rank %d: %w", dst, err)
	}
	return nil
}

// SubscribeMulticast subscribes to every rank's multicast subject; onFrame
// is called with each frame (this rank's own included), one at a time, in
// the order each sender published them; it owns the slice. Called before
// Boot, like the inbox subscription, it is live before any rank can
// multicast.
func (t *NATS) SubscribeMulticast(onFrame func([]byte)) error {
	sub, err := t.nc.Subscribe(jobenv.MulticastWildcard(t.job.Prefix), func(m *nats.Msg) { onFrame(m.Data) })
	if err != nil {
		return fmt.Errorf("transport: rank %d subscribe to multicasts: %w", t.job.Rank, err)
	}
	return sub.SetPendingLimits(-1, -1) // bounded by comm's credit windows, like the inbox
}

// Multicast implements Multicaster.
func (t *NATS) Multicast(frame []byte) error {
	if err := t.nc.Publish(t.mc, frame); err != nil {
		return fmt.Errorf("transport: multicast: %w", err)
	}
	return nil
}

// MaxFrame implements Link.
func (t *NATS) MaxFrame() int { return t.max }

// Flush implements Link: the server has processed everything published.
func (t *NATS) Flush(ctx context.Context) error { return flush(ctx, t.nc) }

// flush is FlushWithContext, which insists on a deadline; without one it
// waits up to a minute.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}

// Close implements Link.
func (t *NATS) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.nc.Close()
	return nil
}

// bootRetry is how long a rank whose boot request found no listener waits
// for rank 0's announcement before it asks again. On one server the
// announcement always comes (see Boot); the retry covers a cluster, where
// interest crosses routes asynchronously.
const bootRetry = 50 * time.Millisecond

// Boot is the start-up barrier: it returns once every rank of the job has its
// inbox subscription live, so that no frame is ever published to a rank that
// is not yet listening. Rank 0 collects a request from each other rank and
// answers them all; the others ask again once rank 0 is listening.
//
// A rank's requests follow its inbox subscription on its connection, so the
// server has the subscription by the time rank 0 sees the request. A rank
// whose request finds no listener waits for rank 0's one announcement on
// BootUpSubject, which rank 0 publishes after subscribing to BootSubject:
// the rank subscribed to the announcement before its request failed, and
// rank 0 subscribed after it, so the server delivers the announcement to
// it. (Polling every 2 ms instead cost up to 65 requests per job start at
// -n 8 on two cores, CPU the starting ranks needed.)
//
// Each request carries the rank's data path (the job's Transport, which
// comm sets before it dials), and rank 0 checks that every rank asked for
// its own: ranks that disagree would wait for each other's direct-path
// records for ever (a rank on NATS alone never publishes one). On a
// mismatch rank 0 answers every rank with the error, naming the ranks
// that differ, and every rank's Boot returns it.
//
// Each request also carries the rank's group (the ranks of one host: comm
// names it by the host's lowest rank, "*" when unknown) and a record of
// one line (comm: its shared-memory segment's nonce, or why it has none).
// Rank 0's answer to each rank lists the non-empty records of the ranks
// in that rank's group, and Boot returns them by rank (this rank's own
// excluded): every rank learns its host's records with no round trip
// beyond the barrier's, and the answers total (ranks) × (ranks per host)
// records.
func (t *NATS) Boot(ctx context.Context, group, rec string) (map[int]string, error) {
	subj := jobenv.BootSubject(t.job.Prefix)
	size := t.job.Size
	if size == 1 {
		return map[int]string{}, nil
	}
	rec = strings.ReplaceAll(rec, "\n", " ")
	group = strings.ReplaceAll(group, " ", "_")
	if group == "" {
		group = "*"
	}
	if t.job.Rank == 0 {
		ch := make(chan *nats.Msg, size)
		sub, err := t.nc.ChanSubscribe(subj, ch)
		if err != nil {
			return nil, fmt.Errorf("transport: boot subscribe: %w", err)
		}
		defer sub.Unsubscribe()
		if err := t.nc.Publish(jobenv.BootUpSubject(t.job.Prefix), nil); err != nil {
			return nil, fmt.Errorf("transport: boot announcement: %w", err)
		}
		seen := make(map[int]*nats.Msg, size-1)
		groups := map[int]string{0: group}
		recs := map[int]string{0: rec}
		var differ []string
		for len(seen) < size-1 {
			select {
			case m := <-ch:
				f := strings.SplitN(string(m.Data), " ", 5)
				var r, s int
				var err error
				if len(f) == 5 {
					r, err = strconv.Atoi(f[0])
					if err == nil {
						s, err = strconv.Atoi(f[1])
					}
				}
				if len(f) != 5 || err != nil || s != size || r <= 0 || r >= size {
					return nil, fmt.Errorf("transport: boot: rank 0 of a %d-rank job got a join from %q", size, m.Data)
				}
				if _, dup := seen[r]; !dup && f[2] != t.bootTransport() {
					differ = append(differ, fmt.Sprintf("rank %d asked for %s", r, f[2]))
				}
				seen[r], groups[r], recs[r] = m, f[3], f[4]
			case <-ctx.Done():
				return nil, fmt.Errorf("transport: boot: %d of %d ranks arrived: %w", len(seen)+1, size, ctx.Err())
			}
		}
		var mismatch error
		if len(differ) > 0 {
			slices.Sort(differ)
			mismatch = fmt.Errorf("the ranks of a job must use one data path: rank 0 asked for --transport=%s, %s (decorun gives every rank its --transport or DECORUN_TRANSPORT; in join mode set DECORUN_TRANSPORT alike for every rank)",
				t.bootTransport(), strings.Join(differ, ", "))
		}
		// One table per group, each answer the table of its rank's group,
		// then every rank's group (when every rank named one).
		tables := map[string]*strings.Builder{}
		for r := range size {
			b := tables[groups[r]]
			if b == nil {
				b = &strings.Builder{}
				b.WriteString("ok")
				tables[groups[r]] = b
			}
			if recs[r] != "" {
				fmt.Fprintf(b, "\n%d %s", r, recs[r])
			}
		}
		if hosts := hostLine(groups, size); hosts != "" {
			for _, b := range tables {
				b.WriteString(hosts)
			}
		}
		for r, m := range seen {
			reply := []byte(tables[groups[r]].String())
			if mismatch != nil {
				reply = []byte(mismatch.Error())
			}
			if err := m.Respond(reply); err != nil {
				return nil, fmt.Errorf("transport: boot reply: %w", err)
			}
		}
		if mismatch != nil {
			return nil, fmt.Errorf("transport: boot: %w", mismatch)
		}
		t.hosts = bootHosts(tables[group].String(), size)
		return bootTable(tables[group].String(), 0), nil // what rank 0 sends next follows the replies
	}
	msg := []byte(fmt.Sprintf("%d %d %s %s %s", t.job.Rank, size, t.bootTransport(), group, rec))
	up := make(chan struct{}, 1)
	upSub, err := t.nc.Subscribe(jobenv.BootUpSubject(t.job.Prefix), func(*nats.Msg) {
		select {
		case up <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("transport: boot subscribe: %w", err)
	}
	defer upSub.Unsubscribe()
	for {
		m, err := t.nc.RequestWithContext(ctx, subj, msg)
		if err == nil {
			body := string(m.Data)
			if body != "ok" && !strings.HasPrefix(body, "ok\n") {
				return nil, fmt.Errorf("transport: boot: rank %d: %s", t.job.Rank, m.Data)
			}
			t.hosts = bootHosts(body, size)
			return bootTable(body, t.job.Rank), nil
		}
		if !errors.Is(err, nats.ErrNoResponders) {
			return nil, fmt.Errorf("transport: boot: rank %d waiting for rank 0: %w", t.job.Rank, err)
		}
		select {
		case <-up:
		case <-time.After(bootRetry):
		case <-ctx.Done():
			return nil, fmt.Errorf("transport: boot: rank %d waiting for rank 0: %w", t.job.Rank, ctx.Err())
		}
	}
}

// bootTable reads rank 0's answer ("ok", then a line "rank record" per
// record) into records by rank, without self's.
func bootTable(body string, self int) map[int]string {
	out := map[int]string{}
	for _, l := range strings.Split(body, "\n")[1:] {
		r, rec, _ := strings.Cut(l, " ")
		if n, err := strconv.Atoi(r); err == nil && n != self {
			out[n] = rec
		}
	}
	return out
}

// hostLine is the boot answer's last line, "\nhosts g0,g1,...": each
// rank's group (the lowest world rank on its host), or "" when some rank
// did not know its host's ranks.
func hostLine(groups map[int]string, size int) string {
	b := strings.Builder{}
	b.WriteString("\nhosts ")
	for r := range size {
		if _, err := strconv.Atoi(groups[r]); err != nil {
			return ""
		}
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteString(groups[r])
	}
	return b.String()
}

// bootHosts reads hostLine's line from a boot answer (nil: none).
func bootHosts(body string, size int) []int {
	for _, l := range strings.Split(body, "\n")[1:] {
		f, ok := strings.CutPrefix(l, "hosts ")
		if !ok {
			continue
		}
		gs := strings.Split(f, ",")
		if len(gs) != size {
			return nil
		}
		out := make([]int, size)
		for r, g := range gs {
			n, err := strconv.Atoi(g)
			if err != nil || n < 0 || n >= size {
				return nil
			}
			out[r] = n
		}
		return out
	}
	return nil
}

// Hosts returns, after Boot, every rank's host group: the lowest world
// rank on its host, as each rank named it (nil when some rank did not know
// its host's ranks).
func (t *NATS) Hosts() []int { return t.hosts }

// bootTransport is the data path a rank states in its boot request:
// "default" when the job names none (comm names it before it dials).
func (t *NATS) bootTransport() string {
	if t.job.Transport == "" {
		return "default"
	}
	return t.job.Transport
}

// Ctl sends a control message to the launcher. With wait it is a request
// that returns once the launcher has acted on it; a job without a launcher
// (no subscriber) is not an error.
func (t *NATS) Ctl(ctx context.Context, c jobenv.Ctl, wait bool) error {
	if !wait {
		return t.nc.Publish(t.ctl, c.Encode())
	}
	_, err := t.nc.RequestWithContext(ctx, t.ctl, c.Encode())
	if errors.Is(err, nats.ErrNoResponders) {
		return nil
	}
	return err
}

// Ask sends c to the launcher on the control subject and returns its
// reply. A job no launcher listens to gives an error wrapping
// nats.ErrNoResponders.
func (t *NATS) Ask(ctx context.Context, c jobenv.Ctl) ([]byte, error) {
	m, err := t.nc.RequestWithContext(ctx, t.ctl, c.Encode())
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}
