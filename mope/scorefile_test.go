package mope

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mopeclip/mopeclip/clip"
)

// TestOldScoreFilesLoad reads score files written before towers were typed
// (Module.Tower a string, Settings.Towers a []string; testdata/scores-v1-*
// were written by that code) and requires the same typed values and, when
// written again, the same bytes: the JSON spelling did not change.
func TestOldScoreFilesLoad(t *testing.T) {
	for _, c := range []struct {
		file        string
		towers      clip.TowerSet
		moduleTower []clip.Tower
	}{
		{"scores-v1-both.json", clip.BothTowers, []clip.Tower{clip.VisionTower, clip.VisionTower, clip.TextTower}},
		{"scores-v1-vision.json", clip.VisionOnly, []clip.Tower{clip.VisionTower, clip.VisionTower}},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", c.file)
			f, err := ReadScores(path)
			require.NoError(t, err)
			require.Equal(t, c.towers, f.Settings.Towers)
			require.Equal(t, MetricRandom, f.Settings.Metric)
			require.Len(t, f.Scores, len(c.moduleTower))
			for i, s := range f.Scores {
				require.Equal(t, c.moduleTower[i], s.Tower, "score %d", i)
			}
			require.True(t, f.Has(clip.VisionTower, KindLayer))
			require.Equal(t, c.towers.Has(clip.TextTower), f.Has(clip.TextTower, KindHead))
			require.Equal(t, 0.25, f.Lookup()[Module{Vision, KindHead, 0, 1}])

			again := filepath.Join(t.TempDir(), c.file)
			require.NoError(t, WriteScores(again, f))
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			got, err := os.ReadFile(again)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}
