package grid

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mopeclip/mopeclip/clip"
	"github.com/mopeclip/mopeclip/internal/atomicfile"
	"github.com/mopeclip/mopeclip/mope"
)

// prepareCache prepares dir, the grid's cache of pipeline steps: it keeps
// the steps only when they were made with key (the teacher's fingerprint
// and the budgets, dir/key.txt), and otherwise deletes them first.
func prepareCache(dir, key string, w io.Writer) error {
	path := filepath.Join(dir, "key.txt")
	if b, err := os.ReadFile(path); err == nil && string(b) == key {
		return nil
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		printf(w, "cached story steps in %s were made from another teacher or other settings: deleting them\n", dir)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, []byte(key))
}

// scoreCache holds the teacher's scores per metric (heads, FFN groups and
// layers of both towers), computed once and shared by every row with that
// metric; they are also kept in dir/teacher-scores-<metric>.json.
type scoreCache struct {
	dir     string
	teacher *clip.Model
	cal     *mope.Calib
	limit   int
	gpu     mope.GPU
	say     func(format string, a ...any)

	mu    sync.Mutex
	files map[string]*mope.ScoreFile
}

// get returns the teacher's scores with metric, from memory, from the
// directory or computed now. Only the random metric's scores depend on the
// seed; seed 1's are teacher-scores-random.json, seed k's
// teacher-scores-random-seed<k>.json.
func (s *scoreCache) get(metric string, seed uint64) (*mope.ScoreFile, error) {
	if mope.Metric(metric) != mope.MetricRandom {
		seed = 1
	}
	key := metric + SeedSuffix(seed)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.files[key]; ok {
		return f, nil
	}
	path := filepath.Join(s.dir, "teacher-scores-"+key+".json")
	if f, err := mope.ReadScores(path); err == nil && f.Complete && f.Settings.Model == mope.Fingerprint(s.teacher) && f.Settings.Seed == scoreSeed(metric, seed) {
		s.say("  %s scores of the teacher: cached in %s\n", metric, path)
		s.files[key] = f
		return f, nil
	}
	t := time.Now()
	f, err := mope.Score(s.teacher, s.cal, mope.Options{Metric: mope.Metric(metric), Towers: clip.BothTowers,
		Kinds: []string{mope.KindHead, mope.KindFFN, mope.KindLayer}, Data: calibData, Limit: s.limit, Seed: seed, GPU: s.gpu})
	if err != nil {
		return nil, err
	}
	if err := mope.WriteScores(path, f); err != nil {
		return nil, err
	}
	s.say("  %s scores of the teacher: %d modules in %s\n", metric, len(f.Scores), time.Since(t).Round(time.Millisecond))
	s.files[key] = f
	return f, nil
}

// scoreSeed is the seed a score file of metric records (mope.Score keeps
// it for the random metric only).
func scoreSeed(metric string, seed uint64) uint64 {
	if mope.Metric(metric) != mope.MetricRandom {
		return 0
	}
	return seed
}
