package app

import (
	"context"
	"errors"
	"testing"
)

type fakeBacklog struct {
	last, committed uint64
	err             error
}

func (f *fakeBacklog) measure(context.Context) (int64, error) {
	if f.err != nil {
		return -1, f.err
	}
	return int64(f.last - f.committed), nil
}

func TestPipelineLag(t *testing.T) {
	f := &fakeBacklog{last: 1500, committed: 1200}
	l := pipelineLag{measure: f.measure, events: -1}
	if l.value() != -1 {
		t.Fatalf("before a run: %d, want -1", l.value())
	}
	c := l.check()
	if err := c.Check(t.Context()); err != nil || l.value() != 300 {
		t.Fatalf("lag %d, %v; want 300", l.value(), err)
	}
	f.err = errors.New("nats: timeout")
	if err := c.Check(t.Context()); err != nil || l.value() != -1 {
		t.Fatalf("a stream that does not answer: lag %d, %v; want -1 and the node still ready", l.value(), err)
	}
	if info := c.Info().(map[string]any); info["error"] != "nats: timeout" || info["lag_events"] != int64(-1) {
		t.Fatalf("info %v", info)
	}
	if err := (&pipelineLag{events: -1}).check().Check(t.Context()); err != nil {
		t.Fatal(err)
	}
}
