package main

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // reads free-page counts of the store's files

	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/sqlite"
)

// Machine describes where the figures were measured.
type Machine struct {
	CPU, Cores, Memory, Kernel, Go, Disk, Load string
	FsyncP50, FsyncP99                         time.Duration
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}

func commandOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown (" + name + ": " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// describeMachine collects CPU model, cores, memory, kernel, Go version and
// the disk holding dir, and measures the cost of one 4 KiB write + fsync there.
func describeMachine(dir string) Machine {
	var m Machine
	for _, l := range strings.Split(commandOut("lscpu"), "\n") {
		if v, ok := strings.CutPrefix(l, "Model name:"); ok {
			m.CPU = strings.TrimSpace(v)
		}
	}
	m.Cores = fmt.Sprintf("%d (runtime.NumCPU)", runtime.NumCPU())
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.Memory = strings.Join(strings.Fields(firstLine(string(b)))[1:], " ")
	}
	m.Kernel = commandOut("uname", "-sr")
	m.Go = commandOut("go", "version")
	src := commandOut("findmnt", "-no", "SOURCE,FSTYPE", "-T", dir)
	dev := strings.TrimPrefix(strings.Fields(src + " ?")[0], "/dev/")
	rot := strings.TrimSpace(readFile("/sys/block/" + dev + "/queue/rotational"))
	kind := map[string]string{"0": "non-rotational", "1": "reported rotational (virtual disk)"}[rot]
	m.Disk = fmt.Sprintf("%s (%s), %s", src, dir, kind)
	m.Load = strings.Join(strings.Fields(readFile("/proc/loadavg"))[:min(3, len(strings.Fields(readFile("/proc/loadavg"))))], " ")
	m.FsyncP50, m.FsyncP99 = fsyncCost(dir)
	return m
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// fsyncCost writes 4 KiB and fsyncs it 200 times in dir.
func fsyncCost(dir string) (p50, p99 time.Duration) {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return 0, 0
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var lat []time.Duration
	for i := range 200 {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			return 0, 0
		}
		if err := f.Sync(); err != nil {
			return 0, 0
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// dirSize is the bytes of every regular file under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// freePages sums the free pages (PRAGMA freelist_count × page_size) of the
// SQLite files of a closed data directory, by dataBreakdown key.
func freePages(dir string) map[string]int64 {
	out := map[string]int64{}
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() || !strings.HasSuffix(path, ".db") {
			return nil
		}
		db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			return nil
		}
		defer db.Close()
		var free, size int64
		if db.QueryRow("PRAGMA freelist_count").Scan(&free) != nil || db.QueryRow("PRAGMA page_size").Scan(&size) != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		out[breakdownKey(rel)] += free * size
		return nil
	})
	return out
}

// sealedDays counts the day partitions of a data directory and those
// sealed (with compressed blocks).
func sealedDays(dir string) (sealed, days int) {
	files, _ := filepath.Glob(filepath.Join(dir, "events", "*.db"))
	for _, path := range files {
		days++
		db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			continue
		}
		var n int
		if db.QueryRow(`SELECT count(*) FROM (SELECT 1 FROM blocks LIMIT 1)`).Scan(&n) == nil && n > 0 {
			sealed++
		}
		_ = db.Close()
	}
	return sealed, days
}

// sealsDue counts the day files of dir whose day ended more than the
// default storage.sqlite.seal_after before now: those the server seals once
// they have had a minute without new events.
func sealsDue(dir string, now time.Time) int {
	after := config.Default().Storage.SQLite.SealAfter
	if after == 0 {
		after = sqlite.DefaultSealAfter
	}
	files, _ := filepath.Glob(filepath.Join(dir, "events", "*.db"))
	n := 0
	for _, path := range files {
		name := filepath.Base(path)
		start, err := time.Parse("2006010215", strings.SplitN(name, "-", 2)[0])
		if err != nil {
			continue
		}
		period := 24 * time.Hour
		if h, err := strconv.Atoi(strings.TrimSuffix(strings.SplitN(name, "-", 2)[1], "h.db")); err == nil && h > 0 {
			period = time.Duration(h) * time.Hour
		}
		if start.Add(period + after).Before(now) {
			n++
		}
	}
	return n
}

func breakdownKey(rel string) string {
	switch {
	case strings.HasPrefix(rel, "events"+string(filepath.Separator)):
		return "events/ (day partitions)"
	case strings.HasPrefix(rel, "stream.db"):
		return "stream.db (ingest stream + idempotency keys)"
	case strings.HasPrefix(rel, "meta.db"):
		return "meta.db (tenants, keys, findings, detection state)"
	}
	return "other"
}

// dataBreakdown splits a data directory's bytes by store file: the ingest
// stream, the event partitions and the metadata.
func dataBreakdown(dir string) map[string]int64 {
	out := map[string]int64{}
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		out[breakdownKey(rel)] += info.Size()
		return nil
	})
	return out
}
