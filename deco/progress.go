package deco

import (
	"os"
	"sync"
	"time"

	"github.com/decorun/decorun/internal/jobenv"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressDelay is how long a block runs before its bar appears.
const progressDelay = 500 * time.Millisecond

// progress is a block's bar on stderr; nil when off.
type progress struct {
	mu    sync.Mutex
	start time.Time
	bar   *progressbar.ProgressBar // nil until the block has run progressDelay
}

// progressOn resolves the setting: -1 auto (on when stderr is a terminal,
// or, under decorun, when decorun's stderr is: DECORUN_TTY=1), overridden
// by DECO_PROGRESS=0 or 1, overridden by the Progress option.
func progressOn(setting int) bool {
	if setting >= 0 {
		return setting == 1
	}
	switch os.Getenv("DECO_PROGRESS") {
	case "0":
		return false
	case "1":
		return true
	}
	return term.IsTerminal(int(os.Stderr.Fd())) || os.Getenv(jobenv.EnvTTY) == "1"
}

func newProgress(setting int) *progress {
	if !progressOn(setting) {
		return nil
	}
	return &progress{start: time.Now()}
}

func (p *progress) update(done, total int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		if time.Since(p.start) < progressDelay {
			return
		}
		p.bar = progressbar.NewOptions64(int64(total),
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("deco"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("tasks"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetRenderBlankState(false),
			progressbar.OptionClearOnFinish())
		// The first frame shows where the block is now (ChangeMax64 and
		// a throttled Set64 would draw 0 first).
		p.bar.Set64(int64(done))
		p.bar.RenderBlank()
		return
	}
	p.bar.ChangeMax64(int64(total))
	p.bar.Set64(int64(done))
}

func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}
