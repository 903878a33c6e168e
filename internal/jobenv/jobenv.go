// Package jobenv is the contract between the decorun launcher and the rank
// processes it starts: the environment variables it sets, the NATS subjects a
// job uses, and the control messages ranks send to the launcher.
//
// Both sides import this package so that the names exist in one place only.
package jobenv

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
)

// Environment variables set by the launcher for every rank.
const (
	EnvRank      = "DECORUN_RANK"       // this rank, 0..size-1
	EnvSize      = "DECORUN_SIZE"       // number of ranks in the job
	EnvLocalRank = "DECORUN_LOCAL_RANK" // rank among the ranks on this host
	EnvLocalSize = "DECORUN_LOCAL_SIZE" // number of ranks on this host
	EnvJob       = "DECORUN_JOB"        // job id, unique per run
	EnvURL       = "DECORUN_NATS_URL"   // where the job's NATS server listens
	EnvSecret    = "DECORUN_SECRET"     // per-job token every client presents
	EnvPrefix    = "DECORUN_PREFIX"     // subject prefix of the job (default "decorun.<job>")
)

// Job describes one rank's place in a job, as read from the environment.
type Job struct {
	Rank, Size           int
	LocalRank, LocalSize int
	ID                   string
	URL                  string
	Secret               string
	Prefix               string
}

// FromEnv reads the job description set by the launcher. It returns
// ok=false when the process was not started by decorun (no DECORUN_RANK), and
// an error naming the variable when a variable is present but malformed.
func FromEnv() (j Job, ok bool, err error) {
	rs, present := os.LookupEnv(EnvRank)
	if !present {
		return Job{}, false, nil
	}
	geti := func(name, s string) (int, error) {
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("jobenv: %s=%q is not an integer", name, s)
		}
		return v, nil
	}
	if j.Rank, err = geti(EnvRank, rs); err != nil {
		return Job{}, true, err
	}
	if j.Size, err = geti(EnvSize, os.Getenv(EnvSize)); err != nil {
		return Job{}, true, err
	}
	if j.Size < 1 || j.Rank < 0 || j.Rank >= j.Size {
		return Job{}, true, fmt.Errorf("jobenv: %s=%d out of range for %s=%d", EnvRank, j.Rank, EnvSize, j.Size)
	}
	j.LocalRank, j.LocalSize = j.Rank, j.Size
	if s := os.Getenv(EnvLocalRank); s != "" {
		if j.LocalRank, err = geti(EnvLocalRank, s); err != nil {
			return Job{}, true, err
		}
	}
	if s := os.Getenv(EnvLocalSize); s != "" {
		if j.LocalSize, err = geti(EnvLocalSize, s); err != nil {
			return Job{}, true, err
		}
	}
	j.ID = os.Getenv(EnvJob)
	j.URL = os.Getenv(EnvURL)
	j.Secret = os.Getenv(EnvSecret)
	j.Prefix = os.Getenv(EnvPrefix)
	if j.Prefix == "" {
		j.Prefix = DefaultPrefix(j.ID)
	}
	if j.Size > 1 && j.URL == "" {
		return Job{}, true, fmt.Errorf("jobenv: %s is not set for a job of %d ranks", EnvURL, j.Size)
	}
	return j, true, nil
}

// DefaultPrefix is the subject prefix of a job with the given id.
func DefaultPrefix(jobID string) string { return "decorun." + jobID }

// CtlSubject is where ranks send control messages to the launcher. The
// launcher subscribes to it before it starts any rank.
func CtlSubject(prefix string) string { return prefix + ".ctl" }

// InboxSubject is the subject rank r receives all its point-to-point traffic on.
func InboxSubject(prefix string, r int) string { return prefix + ".r." + strconv.Itoa(r) }

// BootSubject is rank 0's start-up barrier subject: every other rank sends a
// request there once its inbox subscription is live, and rank 0 answers them
// all once every rank has arrived.
func BootSubject(prefix string) string { return prefix + ".boot" }

// EventSubject is where the launcher tells the ranks about the job: with
// --keep-going, an OpLost message when a rank other than 0 has died.
func EventSubject(prefix string) string { return prefix + ".events" }

// Control operations sent by ranks on CtlSubject.
const (
	OpJoin  = "join"  // published: the rank's communicator is connected
	OpFin   = "fin"   // request: the rank closed its communicator; the launcher replies "ok"
	OpAbort = "abort" // request: the rank called Abort(Code); the launcher replies "ok" and ends the job
	OpLost  = "lost"  // launcher to ranks on EventSubject: rank Rank died (Msg says how); the job goes on
)

// Ctl is a control message from a rank to the launcher.
type Ctl struct {
	Op   string `json:"op"`
	Rank int    `json:"rank"`
	Code int    `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
}

// Encode returns the JSON form of c.
func (c Ctl) Encode() []byte {
	b, _ := json.Marshal(c) // cannot fail: plain fields
	return b
}

// DecodeCtl parses a control message.
func DecodeCtl(b []byte) (Ctl, error) {
	var c Ctl
	if err := json.Unmarshal(b, &c); err != nil {
		return Ctl{}, fmt.Errorf("jobenv: bad control message %q: %w", b, err)
	}
	switch c.Op {
	case OpJoin, OpFin, OpAbort, OpLost:
	default:
		return Ctl{}, fmt.Errorf("jobenv: unknown control op %q", c.Op)
	}
	return c, nil
}
