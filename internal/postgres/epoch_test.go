package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/postgres"
)

func TestBeginEpochIncrements(t *testing.T) {
	s, ctx := open(t), t.Context()
	for want := int64(1); want <= 3; want++ {
		got, err := s.BeginEpoch(ctx)
		if err != nil || got != want {
			t.Fatalf("BeginEpoch = %d, %v, want %d", got, err, want)
		}
	}
}

// TestFencedStateRefusesAfterNewEpoch: a checkpoint saves while its epoch
// is current; once another node began an epoch, it writes nothing and says
// so with ErrFenced.
func TestFencedStateRefusesAfterNewEpoch(t *testing.T) {
	s, ctx := open(t), t.Context()
	mine, err := s.BeginEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := s.FencedState(mine)
	if err := f.SaveState(ctx, "ns", map[string][]byte{"k": []byte("v1"), "gone": []byte("x")}, nil); err != nil {
		t.Fatalf("save with the current epoch: %v", err)
	}
	if v, err := f.GetState(ctx, "ns", "k"); err != nil || string(v) != "v1" {
		t.Fatalf("GetState = %q, %v", v, err)
	}
	theirs, err := s.BeginEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = f.SaveState(ctx, "ns", map[string][]byte{"k": []byte("v2")}, []string{"gone"})
	if !errors.Is(err, postgres.ErrFenced) || audit.ErrorCode(err) != audit.EUNAVAILABLE {
		t.Fatalf("save with an old epoch: %v, want EUNAVAILABLE and ErrFenced", err)
	}
	msg := audit.ErrorMessage(err)
	if !strings.Contains(msg, "another node became active") || !strings.Contains(msg, fmt.Sprint(mine)) || !strings.Contains(msg, fmt.Sprint(theirs)) {
		t.Errorf("message %q should say another node became active and name epochs %d and %d", msg, theirs, mine)
	}
	if err := f.SaveState(ctx, "ns", nil, []string{"k"}); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("a delete with an old epoch: %v, want ErrFenced", err)
	}
	var keys []string
	err = f.ScanState(ctx, "ns", func(k string, v []byte) error { keys = append(keys, k+"="+string(v)); return nil })
	if err != nil || strings.Join(keys, ",") != "gone=x,k=v1" {
		t.Fatalf("after fenced saves: %v, %v; want nothing written", keys, err)
	}
	if err := s.FencedState(theirs).SaveState(ctx, "ns", map[string][]byte{"k": []byte("v3")}, nil); err != nil {
		t.Fatalf("save with the new epoch: %v", err)
	}
	if v, err := s.GetState(ctx, "ns", "k"); err != nil || string(v) != "v3" {
		t.Fatalf("GetState = %q, %v", v, err)
	}
}

// TestFencedSaveRacesBeginEpoch runs a checkpoint of several statements
// against a BeginEpoch, many times. A save that succeeds must have
// committed before the bump: a read made just after BeginEpoch returned
// sees it. A save that fails must be ErrFenced and have written nothing.
func TestFencedSaveRacesBeginEpoch(t *testing.T) {
	s, ctx := open(t), t.Context()
	epoch, err := s.BeginEpoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const keys = 3000 // three statements of the save
	var saved, fenced int
	for i := range 40 {
		puts := make(map[string][]byte, keys)
		val := []byte(fmt.Sprint(i))
		for k := range keys {
			puts[fmt.Sprintf("k%05d", k)] = val
		}
		f := s.FencedState(epoch)
		var (
			wg               sync.WaitGroup
			start            = make(chan struct{})
			saveErr, bumpErr error
			afterBump        []byte
			next             int64
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			saveErr = f.SaveState(ctx, "race", puts, nil)
		}()
		go func() {
			defer wg.Done()
			<-start
			if next, bumpErr = s.BeginEpoch(ctx); bumpErr == nil {
				afterBump, bumpErr = s.GetState(ctx, "race", fmt.Sprintf("k%05d", keys-1))
			}
		}()
		close(start)
		wg.Wait()
		if bumpErr != nil && audit.ErrorCode(bumpErr) != audit.ENOTFOUND {
			t.Fatal(bumpErr)
		}
		epoch = next
		switch {
		case saveErr == nil:
			saved++
			if string(afterBump) != string(val) {
				t.Fatalf("round %d: the save succeeded but a read after the bump saw %q, not %q: it committed after the bump", i, afterBump, val)
			}
		case errors.Is(saveErr, postgres.ErrFenced):
			fenced++
			v, err := s.GetState(ctx, "race", "k00000")
			if err == nil && string(v) == string(val) {
				t.Fatalf("round %d: a fenced save wrote", i)
			}
		default:
			t.Fatalf("round %d: save: %v", i, saveErr)
		}
	}
	t.Logf("%d saves committed before the bump, %d fenced", saved, fenced)
}
