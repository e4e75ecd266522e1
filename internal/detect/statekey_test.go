package detect_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/detect"
	"github.com/vigilhq/vigil/internal/mock"
)

// TestKeyedStateInOlderFormsRestores: every keyed state of a real run
// comes back from its binary form as it was; and state written by older
// versions, as JSON with the key's parts inside the value ("t", "r", "g"),
// still restores to the same findings.
func TestKeyedStateInOlderFormsRestores(t *testing.T) {
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
	n, err := detect.CheckKeyStates(e1)
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d keyed states to check", n)
	}
	old := map[string][]byte{}
	err = store.ScanState(t.Context(), "detect", func(key string, value []byte) error {
		if !strings.HasPrefix(key, "k/") {
			return nil
		}
		if len(value) > 0 && value[0] == '{' {
			t.Errorf("state %s is still written as JSON", key)
		}
		parts := strings.SplitN(key[2:], "|", 3)
		b, err := detect.KeyStateJSON(value, parts[0], parts[1], parts[2])
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
