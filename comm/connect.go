package comm

import (
	"context"
	"fmt"

	"github.com/decorun/decorun/internal/jobenv"
)

// Job says how a rank joins a job whose processes were started by something
// other than decorun (tests, a batch scheduler): its rank, the job's size,
// the NATS server and token, and the job id (ranks of one job must agree on
// it). Prefix, if set, replaces the subject prefix "decorun.<ID>".
type Job struct {
	Rank, Size int
	URL        string // one URL, or several separated by commas
	Token      string
	ID         string
	Prefix     string

	// Other credentials, as for decorun --nats-url.
	User, Password    string
	CredsFile         string
	NkeyFile          string
	CAFile            string
	CertFile, KeyFile string
}

// Connect joins job j and returns its world communicator, like Init does
// from decorun's environment. Unlike Init it may be called several times in
// one process, once per rank, which is how in-process tests run several
// ranks (see package commtest: commtest.World(tb, n) gives n connected ranks
// over a real embedded nats-server).
func Connect(ctx context.Context, j Job) (*Comm, error) {
	if j.Size < 1 || j.Rank < 0 || j.Rank >= j.Size {
		return nil, fmt.Errorf("comm: Connect: rank %d out of range for a job of %d ranks", j.Rank, j.Size)
	}
	prefix := j.Prefix
	if prefix == "" {
		prefix = jobenv.DefaultPrefix(j.ID)
	}
	return connect(ctx, jobenv.Job{Rank: j.Rank, Size: j.Size, LocalRank: j.Rank, LocalSize: j.Size,
		ID: j.ID, URL: j.URL, Secret: j.Token, Prefix: prefix, User: j.User, Password: j.Password,
		CredsFile: j.CredsFile, NkeyFile: j.NkeyFile, CAFile: j.CAFile, CertFile: j.CertFile, KeyFile: j.KeyFile,
		Joined: "connect"})
}
