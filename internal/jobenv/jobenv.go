// Package jobenv is the contract between the decorun launcher and the rank
// processes it starts: the environment variables it sets, the NATS subjects a
// job uses, and the control messages ranks send to the launcher.
//
// Both sides import this package so that the names exist in one place only.
package jobenv

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Environment variables set by the launcher for every rank.
const (
	EnvRank      = "DECORUN_RANK"       // this rank, 0..size-1
	EnvSize      = "DECORUN_SIZE"       // number of ranks in the job
	EnvLocalRank = "DECORUN_LOCAL_RANK" // rank among the ranks on this host
	EnvLocalSize = "DECORUN_LOCAL_SIZE" // number of ranks on this host
	EnvJob       = "DECORUN_JOB"        // job id, unique per run
	EnvURL       = "DECORUN_NATS_URL"   // where the job's NATS server listens
	EnvSecret    = "DECORUN_SECRET"     // token every client presents to the NATS server (random per job with decorun's own server)
	EnvJobKey    = "DECORUN_JOB_KEY"    // random per job, known to its ranks only: keys for shared memory and direct TCP derive from it (see DeriveKey)
	EnvPrefix    = "DECORUN_PREFIX"     // subject prefix of the job (default "decorun.<job>")
	EnvTransport = "DECORUN_TRANSPORT"  // data path: auto, nats, shm or tcp (see Transport*); unset: comm's default
	EnvHostRanks = "DECORUN_HOST_RANKS" // the world ranks on this rank's host, as "0-3,8,10-11"; unset: unknown
	EnvCPUs      = "DECORUN_CPUS"       // the CPUs the launcher bound this rank to, as "0-3"; unset: not bound
	EnvTTY       = "DECORUN_TTY"        // "1": decorun's stderr, where the ranks' stderr lines go, is a terminal
	EnvTCPAddr   = "DECORUN_TCP_ADDR"   // address this rank listens on for direct TCP from peers; unset: its address towards the NATS server
	// EnvTCPEncrypt "false" (or 0, f, FALSE, False) turns encryption of
	// the ranks' direct TCP frames off, for a trusted network: an
	// on-path attacker can then read, alter and inject frames. Unset or
	// true: frames are encrypted whenever the job's NATS connection uses
	// TLS (see Job.TLS). Every rank of a job must have the same.
	EnvTCPEncrypt = "DECORUN_TCP_ENCRYPT"

	// Set for the ranks a running job spawned (comm.Spawn): the job of
	// their intercommunicator with the spawning group.
	EnvSpawn           = "DECORUN_SPAWN"             // the spawn's number K, 1, 2, ... per job
	EnvParentJob       = "DECORUN_PARENT_JOB"        // the intercommunicator's job id
	EnvParentPrefix    = "DECORUN_PARENT_PREFIX"     // its subject prefix
	EnvParentSize      = "DECORUN_PARENT_SIZE"       // the spawning group's size p (this rank is p+DECORUN_RANK there)
	EnvParentHostRanks = "DECORUN_PARENT_HOST_RANKS" // its ranks on this rank's host, as DECORUN_HOST_RANKS

	// Credentials for an existing NATS server or cluster (decorun
	// --nats-url); each names a value or a file readable on the rank's host.
	EnvUser     = "DECORUN_NATS_USER"     // user name
	EnvPassword = "DECORUN_NATS_PASSWORD" // password
	EnvCreds    = "DECORUN_NATS_CREDS"    // file: a user JWT and nkey seed (.creds)
	EnvNkey     = "DECORUN_NATS_NKEY"     // file: an nkey seed
	EnvCA       = "DECORUN_NATS_CA"       // file: CA certificates (PEM) the server's certificate must chain to
	EnvCert     = "DECORUN_NATS_CERT"     // file: client certificate (PEM), for servers that verify clients
	EnvKey      = "DECORUN_NATS_KEY"      // file: the client certificate's key (PEM)
	EnvCAPEM    = "DECORUN_NATS_CA_PEM"   // PEM text of the job's own server certificate (multi-host jobs pin it)
)

// Variables of batch schedulers, read in join mode: ranks started by
// something other than decorun find each other through DECORUN_NATS_URL.
const (
	EnvSlurmProcID  = "SLURM_PROCID"         // rank under srun
	EnvSlurmNTasks  = "SLURM_NTASKS"         // size under srun
	EnvSlurmLocalID = "SLURM_LOCALID"        // local rank under srun
	EnvSlurmJobID   = "SLURM_JOB_ID"         // with SLURM_STEP_ID: the default job id
	EnvSlurmStepID  = "SLURM_STEP_ID"        //
	EnvSlurmLocalN  = "SLURM_TASKS_PER_NODE" // e.g. "4" or "4(x2),3"
	EnvK8sIndex     = "JOB_COMPLETION_INDEX" // rank in a Kubernetes Indexed Job (size from DECORUN_SIZE)
)

// Job describes one rank's place in a job, as read from the environment.
type Job struct {
	Rank, Size           int
	LocalRank, LocalSize int
	ID                   string
	URL                  string // one URL, or several separated by commas
	Secret               string // token
	Prefix               string
	// JobKey is the job's own secret: random per job, handed to its ranks
	// only (never sent over NATS), so that nothing on a shared NATS
	// account can derive the keys made from it. Empty: none (join mode
	// without DECORUN_JOB_KEY).
	JobKey string

	User, Password            string
	CredsFile, NkeyFile       string
	CAFile, CertFile, KeyFile string
	CAPEM                     string

	// Transport is the data path the job asked for ("" for comm's
	// default); HostRanks the world ranks on this host (nil: unknown).
	Transport string
	HostRanks []int
	// TCPAddr is the address the rank listens on for peers' direct TCP
	// connections ("": the source address of its route to the server).
	TCPAddr string
	// TCPPlain is the job's opt-out of encryption on direct TCP
	// (DECORUN_TCP_ENCRYPT=false): frames travel unsealed even when the
	// job uses TLS; connections are still authenticated.
	TCPPlain bool

	// CPUs are the CPUs the launcher bound this rank to, of its own (nil:
	// not bound): its host's ranks are no more than its CPUs.
	CPUs []int

	// Spawn is K for a rank of the K-th spawn of a job (0: not
	// spawned); Parent its intercommunicator's job (Rank, Size, ID,
	// Prefix and HostRanks; the server and credentials are this job's).
	Spawn  int
	Parent *Job

	// Joined is how the rank learned its place: "decorun", "slurm",
	// "kubernetes" or "env" (DECORUN_RANK set by hand).
	Joined string
}

// FromList reads a job's server and credentials (not the rank) from a list
// of NAME=VALUE variables, as a launcher passes them on.
func FromList(env []string) Job {
	m := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	plain, _ := ParseTCPEncrypt(m[EnvTCPEncrypt]) // a bad value fails in the rank, naming it
	return Job{URL: m[EnvURL], Secret: m[EnvSecret], JobKey: m[EnvJobKey], ID: m[EnvJob], Prefix: m[EnvPrefix], Transport: m[EnvTransport], TCPPlain: plain,
		User: m[EnvUser], Password: m[EnvPassword], CredsFile: m[EnvCreds], NkeyFile: m[EnvNkey],
		CAFile: m[EnvCA], CertFile: m[EnvCert], KeyFile: m[EnvKey], CAPEM: m[EnvCAPEM]}
}

// FromEnv reads the job description set by the launcher. It returns
// ok=false when the process was not started by decorun (no DECORUN_RANK), and
// an error naming the variable when a variable is present but malformed.
//
// Without DECORUN_RANK, a process that has DECORUN_NATS_URL joins in join
// mode: under Slurm (srun) its rank and size come from SLURM_PROCID and
// SLURM_NTASKS and the job id defaults to SLURM_JOB_ID.SLURM_STEP_ID; in a
// Kubernetes Indexed Job its rank comes from JOB_COMPLETION_INDEX and its
// size from DECORUN_SIZE, and DECORUN_JOB must name the job.
func FromEnv() (j Job, ok bool, err error) {
	geti := func(name, s string) (int, error) {
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("jobenv: %s=%q is not an integer", name, s)
		}
		return v, nil
	}
	rankVar, sizeVar := EnvRank, EnvSize
	rs, present := os.LookupEnv(EnvRank)
	j.Joined = "decorun"
	if !present && os.Getenv(EnvURL) != "" {
		switch {
		case os.Getenv(EnvSlurmProcID) != "":
			rankVar, sizeVar, j.Joined = EnvSlurmProcID, EnvSlurmNTasks, "slurm"
		case os.Getenv(EnvK8sIndex) != "":
			rankVar, j.Joined = EnvK8sIndex, "kubernetes"
		}
		rs, present = os.LookupEnv(rankVar)
	}
	if !present {
		return Job{}, false, nil
	}
	if j.Rank, err = geti(rankVar, rs); err != nil {
		return Job{}, true, err
	}
	if j.Size, err = geti(sizeVar, os.Getenv(sizeVar)); err != nil {
		return Job{}, true, err
	}
	if j.Size < 1 || j.Rank < 0 || j.Rank >= j.Size {
		return Job{}, true, fmt.Errorf("jobenv: %s=%d out of range for %s=%d", rankVar, j.Rank, sizeVar, j.Size)
	}
	j.LocalRank, j.LocalSize = j.Rank, j.Size
	if j.Joined == "slurm" {
		if v, err := strconv.Atoi(os.Getenv(EnvSlurmLocalID)); err == nil {
			j.LocalRank = v
		}
		if v, err := strconv.Atoi(os.Getenv(EnvSlurmLocalN)); err == nil { // plain "4"; else unknown
			j.LocalSize = v
		} else {
			j.LocalSize = j.LocalRank + 1
		}
	}
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
	if j.ID == "" && j.Joined == "slurm" {
		j.ID = os.Getenv(EnvSlurmJobID) + "." + os.Getenv(EnvSlurmStepID)
	}
	if j.ID == "" && (j.Joined == "kubernetes" || j.Joined == "slurm") {
		return Job{}, true, fmt.Errorf("jobenv: %s must name the job so that its ranks find each other", EnvJob)
	}
	j.URL = os.Getenv(EnvURL)
	j.Secret = os.Getenv(EnvSecret)
	j.JobKey = os.Getenv(EnvJobKey)
	j.Prefix = os.Getenv(EnvPrefix)
	j.User, j.Password = os.Getenv(EnvUser), os.Getenv(EnvPassword)
	j.CredsFile, j.NkeyFile = os.Getenv(EnvCreds), os.Getenv(EnvNkey)
	j.CAFile, j.CertFile, j.KeyFile = os.Getenv(EnvCA), os.Getenv(EnvCert), os.Getenv(EnvKey)
	j.CAPEM = os.Getenv(EnvCAPEM)
	if j.Transport, err = ParseTransport(os.Getenv(EnvTransport)); err != nil {
		return Job{}, true, err
	}
	j.TCPAddr = os.Getenv(EnvTCPAddr)
	if j.TCPPlain, err = ParseTCPEncrypt(os.Getenv(EnvTCPEncrypt)); err != nil {
		return Job{}, true, err
	}
	if s, ok := os.LookupEnv(EnvHostRanks); ok {
		if j.HostRanks, err = ParseRanks(s, j.Size); err != nil {
			return Job{}, true, fmt.Errorf("jobenv: %s=%q: %w", EnvHostRanks, s, err)
		}
	}
	if s := os.Getenv(EnvCPUs); s != "" {
		if j.CPUs, err = ParseRanks(s, maxCPU); err != nil {
			return Job{}, true, fmt.Errorf("jobenv: %s=%q: %w", EnvCPUs, s, err)
		}
	}
	if j.Prefix == "" {
		j.Prefix = DefaultPrefix(j.ID)
	}
	if s := os.Getenv(EnvSpawn); s != "" && j.Joined == "decorun" {
		if err := j.readParent(s); err != nil {
			return Job{}, true, err
		}
	}
	if j.Size > 1 && j.URL == "" {
		return Job{}, true, fmt.Errorf("jobenv: %s is not set for a job of %d ranks", EnvURL, j.Size)
	}
	return j, true, nil
}

// readParent reads the intercommunicator's job of a spawned rank.
func (j *Job) readParent(spawn string) error {
	k, err := strconv.Atoi(spawn)
	if err != nil || k < 1 {
		return fmt.Errorf("jobenv: %s=%q is not a spawn number", EnvSpawn, spawn)
	}
	p, err := strconv.Atoi(os.Getenv(EnvParentSize))
	if err != nil || p < 1 {
		return fmt.Errorf("jobenv: %s=%q is not a group size", EnvParentSize, os.Getenv(EnvParentSize))
	}
	par := Job{Rank: p + j.Rank, Size: p + j.Size, ID: os.Getenv(EnvParentJob), Prefix: os.Getenv(EnvParentPrefix)}
	if par.ID == "" || par.Prefix == "" {
		return fmt.Errorf("jobenv: %s and %s must be set for a spawned rank (%s=%d)", EnvParentJob, EnvParentPrefix, EnvSpawn, k)
	}
	if s, ok := os.LookupEnv(EnvParentHostRanks); ok {
		if par.HostRanks, err = ParseRanks(s, par.Size); err != nil {
			return fmt.Errorf("jobenv: %s=%q: %w", EnvParentHostRanks, s, err)
		}
	}
	j.Spawn, j.Parent = k, &par
	return nil
}

// Environ returns the variables that tell a rank how to reach the job's
// server (not its rank), for a launcher to pass on.
func (j Job) Environ() []string {
	env := []string{EnvURL + "=" + j.URL, EnvJob + "=" + j.ID, EnvPrefix + "=" + j.Prefix}
	for _, kv := range [][2]string{{EnvSecret, j.Secret}, {EnvJobKey, j.JobKey}, {EnvUser, j.User}, {EnvPassword, j.Password},
		{EnvCreds, j.CredsFile}, {EnvNkey, j.NkeyFile}, {EnvCA, j.CAFile}, {EnvCert, j.CertFile},
		{EnvKey, j.KeyFile}, {EnvCAPEM, j.CAPEM}, {EnvTransport, j.Transport}} {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	// Always set, so that a rank never takes another value from the
	// environment of its host.
	return append(env, EnvTCPEncrypt+"="+strconv.FormatBool(!j.TCPPlain))
}

// ParseTCPEncrypt reads DECORUN_TCP_ENCRYPT's value s and reports whether
// it turns encryption off: "" and true (as strconv.ParseBool reads it)
// leave it on, false turns it off, anything else is an error naming the
// variable.
func ParseTCPEncrypt(s string) (plain bool, err error) {
	if s == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("jobenv: %s=%q: want true or false", EnvTCPEncrypt, s)
	}
	return !on, nil
}

// Data paths (decorun --transport, DECORUN_TRANSPORT).
const (
	// TransportAuto: shared memory between ranks on one host and direct
	// TCP between hosts where they can be set up, NATS for everything else.
	TransportAuto = "auto"
	// TransportNATS: every frame through the NATS server.
	TransportNATS = "nats"
	// TransportSHM: like auto, but a same-host peer that cannot be reached
	// through shared memory is an error at start-up.
	TransportSHM = "shm"
	// TransportTCP: direct TCP to every peer, on this host too; a peer
	// that cannot be reached that way is an error at start-up.
	TransportTCP = "tcp"
)

// ParseTransport checks a data path name; "" stays "" (the default).
func ParseTransport(s string) (string, error) {
	switch s {
	case "", TransportAuto, TransportNATS, TransportSHM, TransportTCP:
		return s, nil
	}
	return "", fmt.Errorf("jobenv: %s=%q: want %s, %s, %s or %s", EnvTransport, s, TransportAuto, TransportNATS, TransportSHM, TransportTCP)
}

// maxCPU bounds the CPU numbers of DECORUN_CPUS (Linux's CPU sets hold
// 1024 by default; this leaves room for larger kernels).
const maxCPU = 1 << 16

// FormatRanks writes ascending ranks compactly: "0-3,8,10-11".
func FormatRanks(rs []int) string {
	var b strings.Builder
	for i := 0; i < len(rs); {
		j := i
		for j+1 < len(rs) && rs[j+1] == rs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(rs[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(rs[j]))
		}
		i = j + 1
	}
	return b.String()
}

// ParseRanks reads what FormatRanks writes; every rank must be in [0, size).
func ParseRanks(s string, size int) ([]int, error) {
	var rs []int
	if s == "" {
		return rs, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= size {
			return nil, fmt.Errorf("%q is not a rank or range of ranks in [0, %d)", part, size)
		}
		if b-a > size {
			return nil, fmt.Errorf("range %q too long", part)
		}
		for r := a; r <= b; r++ {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// DeriveKey derives the key for one use from the job's secret key:
// HMAC-SHA256(jobKey, label 0x00 part 0x00 part ...). Keys with different
// labels or parts are unrelated: knowing one (or a value computed from
// one, such as a file name) tells nothing about the others or about
// jobKey. With an empty jobKey the result is as public as the label and
// parts.
func DeriveKey(jobKey, label string, parts ...string) []byte {
	m := hmac.New(sha256.New, []byte(jobKey))
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// SHMKeys are the keys that name a job's shared-memory segments and
// authenticate their headers, derived apart from the job's secret key
// (without one, from its NATS token and password: then whoever knows
// those can tell the names, and so take one first and keep shared memory
// from that rank, but still cannot make a segment its peers accept).
func (j Job) SHMKeys() (nameKey, authKey []byte) {
	secret := j.JobKey
	if secret == "" {
		secret = "\x00" + j.Secret + "\x00" + j.Password
	}
	return DeriveKey(secret, "decorun shm name", j.ID, j.Prefix), DeriveKey(secret, "decorun shm auth", j.ID, j.Prefix)
}

// TCPKey is the key that authenticates a job's ranks to each other over
// direct TCP, derived from the job's secret key, which only they know (not
// from the NATS credentials, which others on a shared NATS account may
// hold too); nil for a job without one.
func (j Job) TCPKey() []byte {
	if j.JobKey == "" {
		return nil
	}
	return DeriveKey(j.JobKey, "decorun tcp", j.ID, j.Prefix)
}

// DefaultPrefix is the subject prefix of a job with the given id.
func DefaultPrefix(jobID string) string { return "decorun." + jobID }

// CtlSubject is where ranks send control messages to the launcher. The
// launcher subscribes to it before it starts any rank.
func CtlSubject(prefix string) string { return prefix + ".ctl" }

// InboxSubject is the subject rank r receives all its point-to-point traffic on.
func InboxSubject(prefix string, r int) string { return prefix + ".r." + strconv.Itoa(r) }

// MulticastSubject is where rank r publishes a frame for every rank of the
// job at once; every rank subscribes to MulticastWildcard before the
// start-up barrier.
func MulticastSubject(prefix string, r int) string { return prefix + ".mc." + strconv.Itoa(r) }

// MulticastWildcard matches every rank's MulticastSubject.
func MulticastWildcard(prefix string) string { return prefix + ".mc.*" }

// BootSubject is rank 0's start-up barrier subject: every other rank sends a
// request there once its inbox subscription is live, and rank 0 answers them
// all once every rank has arrived.
func BootSubject(prefix string) string { return prefix + ".boot" }

// BootUpSubject is where rank 0 says, once, that it listens on BootSubject:
// a rank whose request found no listener waits for this instead of polling.
func BootUpSubject(prefix string) string { return prefix + ".boot.up" }

// AddrSubject is where ranks publish the address (and certificate
// fingerprint) their peers dial for direct TCP; every rank that listens
// subscribes to it before the start-up barrier.
func AddrSubject(prefix string) string { return prefix + ".addr" }

// EventSubject is where the launcher tells the ranks about the job: with
// --keep-going, an OpLost message when a rank other than 0 has died.
func EventSubject(prefix string) string { return prefix + ".events" }

// HeartbeatWildcard matches the heartbeat subject of every host's agent
// (HeartbeatSubject turns a '*' in a name into '_', so it cannot be used
// for that).
func HeartbeatWildcard(prefix string) string { return prefix + ".hb.*" }

// HeartbeatSubject carries the heartbeats of a multi-host job: the launcher
// publishes as "launcher", each host's agent as its host name.
func HeartbeatSubject(prefix, who string) string {
	return prefix + ".hb." + strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r == ' ' {
			return '_'
		}
		return r
	}, who)
}

// Control operations sent by ranks on CtlSubject.
const (
	OpJoin  = "join"  // published: the rank's communicator is connected
	OpFin   = "fin"   // request: the rank closed its communicator; the launcher replies "ok"
	OpAbort = "abort" // request: the rank called Abort(Code); the launcher replies "ok" and ends the job
	OpLost  = "lost"  // launcher to ranks on EventSubject: rank Rank died (Msg says how); the job goes on
	OpSpawn = "spawn" // request: start the ranks Spawn describes; the launcher replies with a SpawnReply
	// OpSpawnLost, launcher to ranks on the EventSubject of the world
	// that asked for spawn Code: its rank Rank died (Msg says how), so a
	// Spawn still waiting for it fails.
	OpSpawnLost = "spawnlost"
)

// Ctl is a control message from a rank to the launcher.
type Ctl struct {
	Op   string `json:"op"`
	Rank int    `json:"rank"`
	Code int    `json:"code,omitempty"`
	Msg  string `json:"msg,omitempty"`
	// Spawn is the request of an OpSpawn.
	Spawn *SpawnRequest `json:"spawn,omitempty"`
}

// SpawnRequest asks the launcher for N ranks of Program (comm.Spawn).
type SpawnRequest struct {
	Program string   `json:"program"`
	Args    []string `json:"args,omitempty"`
	N       int      `json:"n"`
	// Group lists the spawning communicator's ranks as ranks of the
	// asking rank's world, in the communicator's order: ranks 0..p-1 of
	// the intercommunicator's job.
	Group []int `json:"group"`
}

// SpawnReply is the launcher's answer to an OpSpawn: Err, or the spawn's
// number and its intercommunicator's job.
type SpawnReply struct {
	Err    string `json:"err,omitempty"`
	K      int    `json:"k,omitempty"`
	ID     string `json:"id,omitempty"`     // the intercommunicator's job id
	Prefix string `json:"prefix,omitempty"` // and subject prefix
	// Hosts says where each rank of the intercommunicator's job runs:
	// ranks with the same value share a host.
	Hosts []int `json:"hosts,omitempty"`
}

// SpawnPrefix and InterPrefix are the subject prefixes of the world of a
// job's K-th spawn and of its intercommunicator's job; SpawnID and
// InterID their job ids.
func SpawnPrefix(prefix string, k int) string { return prefix + ".s" + strconv.Itoa(k) }
func InterPrefix(prefix string, k int) string { return prefix + ".x" + strconv.Itoa(k) }
func SpawnID(id string, k int) string         { return id + "-s" + strconv.Itoa(k) }
func InterID(id string, k int) string         { return id + "-x" + strconv.Itoa(k) }

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
	case OpJoin, OpFin, OpAbort, OpLost, OpSpawn, OpSpawnLost:
	default:
		return Ctl{}, fmt.Errorf("jobenv: unknown control op %q", c.Op)
	}
	return c, nil
}

// TLS reports whether j says that its NATS connection uses TLS: a tls://
// URL, a CA, or a client certificate. comm authenticates the ranks'
// direct TCP connections with TLS exactly then, and encrypts their frames
// unless TCPPlain.
func (j Job) TLS() bool {
	return j.CAPEM != "" || j.CAFile != "" || j.CertFile != "" || strings.Contains(j.URL, "tls://")
}
