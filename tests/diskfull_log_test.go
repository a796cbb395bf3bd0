package tests

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestDiskFullLogIsRateLimited: while the disk is full every request is
// refused, and each used to log its own ERROR line (38,029 lines in 12 s
// under load). 400 refused requests now log the cause once, then at most a
// summary a window, and the log still names the cause.
func TestDiskFullLogIsRateLimited(t *testing.T) {
	mnt := mountTmpfs(t, "40m")
	in := start(t, func(i *instance) { i.dir = mnt })
	ctx := context.Background()
	key := in.createKey("before")
	// The scheduler takes its lease (a write) within its first interval:
	// before the disk fills, or its write errors join the count.
	waitUntil(t, 10*time.Second, "the scheduler takes its lease", in.node.Scheduler.Holding)
	filler := fillDisk(t, mnt)
	defer os.Remove(filler)
	in.logs.Reset()
	began := time.Now()
	requests := 0
	for n := 0; requests < 400 && n < 1000; n++ {
		_, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("while full")})
		if err == nil && requests == 0 {
			continue // pages already allocated may still take a few writes
		}
		wantCode(t, err, "KMSInternalException")
		requests++
	}
	took := time.Since(began)
	logs := in.logs.String()
	perMessage := map[string]int{}
	errors := 0
	msg := regexp.MustCompile(`msg="([^"]*)"`)
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "level=ERROR") {
			continue
		}
		errors++
		if m := msg.FindStringSubmatch(line); m != nil {
			perMessage[m[1]]++
		}
	}
	var counts []string
	for m, n := range perMessage {
		counts = append(counts, m+": "+strconv.Itoa(n))
	}
	sort.Strings(counts)
	t.Logf("%d refused requests in %v: %d ERROR lines (%s)", requests, took.Round(time.Millisecond), errors, strings.Join(counts, "; "))
	if !strings.Contains(logs, "disk is full") {
		t.Fatalf("the log no longer names the cause:\n%s", tail(logs, 3000))
	}
	// One line for the first refusal, and a summary per 10 s window.
	if limit := 2 + int(took/(10*time.Second))*2; errors > limit {
		t.Fatalf("%d ERROR lines for %d refused requests in %v, want at most %d", errors, requests, took, limit)
	}
}
