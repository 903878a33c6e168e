package trace

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
)

//go:embed timeline.html
var timelineHTML string

// dataMark is where the trace goes in timeline.html.
const dataMark = "/*TRACE-DATA*/null"

// HTML renders f as one self-contained HTML page: the trace is embedded,
// the timeline is drawn by inline JavaScript as SVG (ranks and their
// tracks as rows, calls as bars, messages as arrows, deco tasks), and the
// page loads nothing from the network.
func HTML(f *File, title string) ([]byte, error) {
	data, err := json.Marshal(f) // escapes <, > and &: safe inside <script>
	if err != nil {
		return nil, fmt.Errorf("trace: encoding the trace for HTML: %w", err)
	}
	i := bytes.Index([]byte(timelineHTML), []byte(dataMark))
	if i < 0 {
		return nil, fmt.Errorf("trace: internal error: timeline.html has no data mark")
	}
	var b bytes.Buffer
	page := bytes.ReplaceAll([]byte(timelineHTML[:i]), []byte("{{TITLE}}"), []byte(html.EscapeString(title)))
	b.Write(page)
	b.Write(data)
	b.WriteString(timelineHTML[i+len(dataMark):])
	return b.Bytes(), nil
}
