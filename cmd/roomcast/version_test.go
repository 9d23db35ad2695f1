package main

import (
	"context"
	"testing"
)

func TestVersion(t *testing.T) {
	e, stdout, _ := testEnv("", nil)
	if code := run(context.Background(), []string{"version"}, e); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if got := stdout.String(); got != version+"\n" {
		t.Fatalf("printed %q, want %q", got, version+"\n")
	}
	e, _, _ = testEnv("", nil)
	if code := run(context.Background(), []string{"version", "extra"}, e); code != exitUsage {
		t.Fatalf("version with an argument: exit %d, want %d", code, exitUsage)
	}
}
