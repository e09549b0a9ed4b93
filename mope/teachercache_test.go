package mope

import (
	"context"
	"sync"
	"testing"
)

// TestTeacherCache: students distilled with a shared teacher cache are
// bit-identical to students distilled without one; the second and later
// runs hit the cache (no new batches), a run from another teacher ignores
// it, and the byte limit is kept.
func TestTeacherCache(t *testing.T) {
	teacher, student, data := distillRunFixture(t)
	data.Val = nil
	o := DefaultDistillOptions()
	o.Steps, o.Batch, o.Warmup, o.CkptEvery, o.ValEvery, o.LR = 4, 8, 1, 0, 0, 2e-3

	plain := CloneModel(student)
	if _, err := Distill(context.Background(), plain, teacher, data, o); err != nil {
		t.Fatal(err)
	}
	want := Fingerprint(plain)

	cached := data
	cached.TeacherCache = NewTeacherCache(teacher, 1<<30)
	// Two students at once (the demo runs rows concurrently), then one more.
	var wg sync.WaitGroup
	got := make([]string, 3)
	for i := range 2 {
		wg.Go(func() {
			s := CloneModel(student)
			if _, err := Distill(context.Background(), s, teacher, cached, o); err != nil {
				t.Error(err)
			}
			got[i] = Fingerprint(s)
		})
	}
	wg.Wait()
	n, bytes := cached.TeacherCache.Len()
	if n != o.Steps || bytes <= 0 {
		t.Fatalf("cache holds %d batches (%d bytes) after runs of %d steps", n, bytes, o.Steps)
	}
	s := CloneModel(student)
	if _, err := Distill(context.Background(), s, teacher, cached, o); err != nil {
		t.Fatal(err)
	}
	got[2] = Fingerprint(s)
	for i, g := range got {
		if g != want {
			t.Errorf("student %d distilled with the cache differs from the one without", i)
		}
	}
	if n2, b2 := cached.TeacherCache.Len(); n2 != n || b2 != bytes {
		t.Errorf("third run changed the cache: %d batches %d bytes, was %d, %d", n2, b2, n, bytes)
	}

	// Another teacher: the cache is not used (nor filled).
	other := CloneModel(teacher)
	other.LogitScale.Value.Data[0] += 0.5
	s = CloneModel(student)
	if _, err := Distill(context.Background(), s, other, cached, o); err != nil {
		t.Fatal(err)
	}
	if n3, _ := cached.TeacherCache.Len(); n3 != n {
		t.Errorf("a run from another teacher changed the cache to %d batches", n3)
	}
	if Fingerprint(s) == want {
		t.Errorf("distilling from another teacher gave the same student: the cache answered for the wrong teacher")
	}

	// A limit of one batch keeps one and still gives the same student.
	small := data
	small.TeacherCache = NewTeacherCache(teacher, bytes/int64(n))
	s = CloneModel(student)
	if _, err := Distill(context.Background(), s, teacher, small, o); err != nil {
		t.Fatal(err)
	}
	if k, b := small.TeacherCache.Len(); k != 1 || b > bytes/int64(n) {
		t.Errorf("limited cache holds %d batches, %d bytes (limit %d)", k, b, bytes/int64(n))
	}
	if Fingerprint(s) != want {
		t.Errorf("student distilled with a limited cache differs")
	}
}
