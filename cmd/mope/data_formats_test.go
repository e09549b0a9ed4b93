package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalWebDatasetMatchesJSONL: the same images and captions as tar
// shards (a brace pattern) and as JSONL give the same recalls through the
// CLI; --json carries CLIP_benchmark's names; a truncated shard is an error
// naming it, and --skip-bad counts it.
func TestEvalWebDatasetMatchesJSONL(t *testing.T) {
	model := embedTinyModel(t)
	dir, jsonl := evalFixture(t, 9)
	lines, _ := os.ReadFile(jsonl)
	var shards []string
	for s, part := range [][]string{strings.Split(strings.TrimSpace(string(lines)), "\n")[:5], strings.Split(strings.TrimSpace(string(lines)), "\n")[5:]} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, l := range part {
			var rec struct {
				Image    string   `json:"image"`
				Captions []string `json:"captions"`
			}
			json.Unmarshal([]byte(l), &rec)
			img, _ := os.ReadFile(filepath.Join(dir, rec.Image))
			key := strings.TrimSuffix(rec.Image, ".png")
			meta, _ := json.Marshal(map[string]any{"captions": rec.Captions, "status": "success"})
			for _, m := range []struct {
				name string
				data []byte
			}{{key + ".png", img}, {key + ".json", meta}} {
				tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg})
				tw.Write(m.data)
			}
		}
		tw.Close()
		p := filepath.Join(dir, fmt.Sprintf("shard-%05d.tar", s))
		os.WriteFile(p, buf.Bytes(), 0o644)
		shards = append(shards, p)
	}
	want := evalJSON(t, "--model", model, "--data", jsonl, "--split", "all", "--quiet")
	got := evalJSON(t, "--model", model, "--data", filepath.Join(dir, "shard-{00000..00001}.tar"), "--quiet")
	for _, k := range []string{"images", "captions", "tr1", "tr5", "tr10", "ir1", "ir5", "ir10"} {
		if got[k] != want[k] {
			t.Errorf("%s: tar %v, jsonl %v", k, got[k], want[k])
		}
	}
	bench, _ := got["clip_benchmark"].(map[string]any)
	if v, _ := bench["text_retrieval_recall@1"].(float64); v != got["tr1"].(float64)/100 {
		t.Errorf("clip_benchmark: %v", got["clip_benchmark"])
	}
	data, _ := os.ReadFile(shards[1])
	os.WriteFile(shards[1], data[:len(data)/2], 0o644)
	code, _, errs := runMope("eval", "--model", model, "--data", filepath.Join(dir, "shard-{00000..00001}.tar"), "--quiet")
	if code != 1 || !strings.Contains(errs, "shard-00001.tar") || !strings.Contains(errs, "truncated") {
		t.Errorf("truncated shard: exit %d, %s", code, errs)
	}
	got = evalJSON(t, "--model", model, "--data", filepath.Join(dir, "shard-{00000..00001}.tar"), "--quiet", "--skip-bad")
	if got["skipped"] != 1.0 || got["images"].(float64) < 5 {
		t.Errorf("--skip-bad: %v", got)
	}
	code, out, _ := runMope("data", "inspect", filepath.Join(dir, "shard-00000.tar"), "--examples", "1")
	if code != 0 || !strings.Contains(out, "5 images, 10 captions") || !strings.Contains(out, "shard-00000.tar:im00.png") {
		t.Errorf("data inspect: exit %d, %s", code, out)
	}
}
