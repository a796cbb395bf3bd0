package main

import (
	"os"
	"slices"
	"testing"
)

// TestTakeSecretEnv: a secret taken from the environment is gone from it
// for this process and its children; other variables stay.
func TestTakeSecretEnv(t *testing.T) {
	t.Setenv("KEYLEDGER_TEST_SECRET", "s3cret")
	t.Setenv("KEYLEDGER_TEST_OTHER", "kept")
	v, ok := takeSecretEnv("KEYLEDGER_TEST_SECRET")
	if !ok || string(v) != "s3cret" {
		t.Fatalf("took %q %v", v, ok)
	}
	if _, ok := os.LookupEnv("KEYLEDGER_TEST_SECRET"); ok || slices.Contains(os.Environ(), "KEYLEDGER_TEST_SECRET=s3cret") {
		t.Fatal("the secret is still in the environment")
	}
	if os.Getenv("KEYLEDGER_TEST_OTHER") != "kept" {
		t.Fatal("another variable went too")
	}
	if _, ok := takeSecretEnv("KEYLEDGER_TEST_ABSENT"); ok {
		t.Fatal("an absent variable was found")
	}
}

func TestEnvironEntries(t *testing.T) {
	block := []byte("A=1\x00KEYLEDGER_ROOT_PASSPHRASE=pw\x00KEYLEDGER_ROOT_PASSPHRASEX=no\x00B=2\x00KEYLEDGER_ROOT_PASSPHRASE=again")
	var got [][2]int
	environEntries(block, "KEYLEDGER_ROOT_PASSPHRASE", func(off, n int) { got = append(got, [2]int{off, n}) })
	want := [][2]int{{4, 28}, {67, 31}}
	if !slices.Equal(got, want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
}
