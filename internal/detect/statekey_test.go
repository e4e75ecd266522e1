package detect_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// TestKeyedStateLeavesItsKeyOutOfTheValue: a checkpoint stores each keyed
// state under tenant|rule|group and leaves those out of the value; state
// written before, which carried them in the value ("t", "r", "g"), still
// restores to the same findings.
func TestKeyedStateLeavesItsKeyOutOfTheValue(t *testing.T) {
	recs := genStream(20000, 500, 2)
	want := asJSON(t, run(t, newEngine(t, detect.Options{}), clone(recs), 500))

	store := mock.NewStateStore()
	c := clone(recs)
	half := len(c) / 2
	e1 := newEngine(t, detect.Options{StateStore: store})
	got := run(t, e1, c[:half], 500)
	if err := e1.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	old := map[string][]byte{}
	err := store.ScanState(t.Context(), "detect", func(key string, value []byte) error {
		if !strings.HasPrefix(key, "k/") {
			return nil
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(value, &fields); err != nil {
			return err
		}
		for _, f := range []string{"t", "r", "g"} {
			if _, ok := fields[f]; ok {
				t.Errorf("state %s repeats its key in the value as %q: %s", key, f, value)
			}
		}
		// The value as it was written before: the key's parts inside.
		parts := strings.SplitN(key[2:], "|", 3)
		for i, f := range []string{"t", "r", "g"} {
			fields[f], _ = json.Marshal(parts[i])
		}
		b, err := json.Marshal(fields)
		old[key] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(old) == 0 {
		t.Fatal("the first half left no keyed state to restore")
	}
	if err := store.SaveState(context.Background(), "detect", old, nil); err != nil {
		t.Fatal(err)
	}
	e2 := newEngine(t, detect.Options{StateStore: store})
	got = append(got, run(t, e2, c[half:], 500)...)
	if g := asJSON(t, got); g != want {
		t.Fatalf("findings differ after a restart from state with the key inside the values\nwant %d bytes, got %d bytes", len(want), len(g))
	}
}
