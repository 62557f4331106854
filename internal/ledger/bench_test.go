package ledger

import "testing"

// BenchmarkRecord is the cost a build pays per create call: an intent and
// a created record, each appended and fsynced.
func BenchmarkRecord(b *testing.B) {
	j, err := Open(b.TempDir(), "run-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	rec := j.ForBuild("amazon-ebs.bench")
	for b.Loop() {
		e, err := rec.Intend(KindInstance, "us-east-1", "token")
		if err != nil {
			b.Fatal(err)
		}
		if err := rec.Created(e, "i-0123456789abcdef0"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads a journal of 1000 resources, as cleanup --all does
// for every run.
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	j, _ := Open(dir, "run-read")
	for range 1000 {
		e, _ := j.Intend(KindInstance, "us-east-1", "token")
		j.Created(e, "i-0123456789abcdef0")
	}
	j.Close()
	for b.Loop() {
		if _, err := Read(dir, "run-read"); err != nil {
			b.Fatal(err)
		}
	}
}
