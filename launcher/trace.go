package launcher

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/decorun/decorun/internal/trace"
	"github.com/nats-io/nats.go"
)

// TraceKillGrace is Config.KillGrace's default while tracing: ranks being
// stopped ship their recording before they die.
const TraceKillGrace = 3 * time.Second

// tracing reports whether the job records (Trace, Report or ReportJSON).
func (cfg *Config) tracing() bool { return cfg.Trace != "" || cfg.Report || cfg.ReportJSON != "" }

// tracer is the launcher's side of tracing: it stores the ranks' chunks
// and answers their clock requests.
type tracer struct {
	col  *trace.Collector
	subs []*nats.Subscription
}

// traceEnv is what tells the ranks to record.
func (j *job) traceEnv() []string {
	if !j.cfg.tracing() {
		return nil
	}
	env := []string{trace.EnvTrace + "=" + trace.ToLauncher}
	if j.cfg.Report || j.cfg.ReportJSON != "" {
		env = append(env, trace.EnvSites+"=1")
	}
	return env
}

// spawnedTraceEnv turns recording off in the ranks of a world started by
// comm.Spawn (the last duplicate of a variable wins): only the job's own
// world is traced.
func spawnedTraceEnv() []string { return []string{trace.EnvTrace + "="} }

// startTrace subscribes to the trace and clock subjects before any rank
// starts.
func (j *job) startTrace() error {
	if !j.cfg.tracing() {
		return nil
	}
	t := &tracer{col: trace.NewCollector(j.cfg.NP)}
	sub, err := j.srv.nc.Subscribe(jobenv.TraceSubject(j.prefix), func(m *nats.Msg) {
		if err := t.col.Add(m.Data); err != nil {
			m.Respond([]byte("error: " + err.Error()))
			return
		}
		m.Respond([]byte("ok"))
	})
	if err != nil {
		return fmt.Errorf("cannot subscribe to the job's trace subject: %w", err)
	}
	t.subs = append(t.subs, sub)
	sub, err = j.srv.nc.Subscribe(jobenv.ClockSubject(j.prefix), func(m *nats.Msg) { m.Respond(trace.ClockReply()) })
	if err != nil {
		t.stop()
		return fmt.Errorf("cannot subscribe to the job's clock subject: %w", err)
	}
	t.subs = append(t.subs, sub)
	if err := j.srv.nc.Flush(); err != nil {
		t.stop()
		return err
	}
	j.tr = t
	return nil
}

func (t *tracer) stop() {
	for _, s := range t.subs {
		s.Unsubscribe()
	}
}

// finishTrace writes the trace and the report from what the ranks shipped,
// whatever the job's outcome.
func (j *job) finishTrace() error {
	t := j.tr
	if t == nil {
		return nil
	}
	t.stop()
	dumps, missing, errs := t.col.Dumps()
	if j.cfg.Trace != "" {
		f := trace.Merge(dumps, j.cfg.NP, missing)
		var b []byte
		var err error
		if strings.HasSuffix(strings.ToLower(j.cfg.Trace), ".html") {
			b, err = trace.HTML(f, "decorun trace: "+j.cfg.Program)
		} else {
			b, err = f.JSON()
		}
		if err == nil {
			err = os.WriteFile(j.cfg.Trace, b, 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--trace: %w", err))
		}
	}
	if j.cfg.Report || j.cfg.ReportJSON != "" {
		r := trace.Summarize(dumps, j.cfg.NP, missing)
		if j.cfg.Report {
			if err := r.Write(j.errw); err != nil {
				errs = append(errs, fmt.Errorf("--report: %w", err))
			}
		}
		if j.cfg.ReportJSON != "" {
			b, err := r.JSON()
			if err == nil {
				err = os.WriteFile(j.cfg.ReportJSON, b, 0o644)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("--report-json: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkTraceFiles fails at once, before the job runs, when a file of
// Trace or ReportJSON could not be written at its end: its directory must
// exist.
func (cfg *Config) checkTraceFiles() error {
	for _, f := range []struct{ flag, path string }{{"--trace", cfg.Trace}, {"--report-json", cfg.ReportJSON}} {
		if f.path == "" {
			continue
		}
		dir := filepath.Dir(f.path)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return usageError("%s %s: directory %s does not exist", f.flag, f.path, dir)
		}
		if fi, err := os.Stat(f.path); err == nil && fi.IsDir() {
			return usageError("%s %s: is a directory", f.flag, f.path)
		}
	}
	return nil
}
