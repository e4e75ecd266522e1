package demo

import (
	"fmt"
	"io"
	"strings"
)

// progress draws a one-line progress bar.
type progress struct {
	w    io.Writer
	open bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) line(format string, args ...any) {
	p.done()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) bar(label string, n, total int) {
	const width = 30
	fill := 0
	if total > 0 {
		fill = n * width / total
	}
	fmt.Fprintf(p.w, "\r  %-8s [%s%s] %3d%% %d/%d   ", label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), n*100/max(total, 1), n, total)
	p.open = true
}

func (p *progress) status(format string, args ...any) {
	fmt.Fprintf(p.w, "\r  "+format+"            ", args...)
	p.open = true
}

func (p *progress) done() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}
