package material

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
)

// TestMeasureCheck measures Check (every live material read from both
// copies) at 1,000 and 10,000 materials, to show its cost grows with the
// live materials. It is a measurement, not a test: it runs only with
// KEYLEDGER_MEASURE_CHECK=1 and asserts nothing about time.
//
//	KEYLEDGER_MEASURE_CHECK=1 go test ./ledger/material -run TestMeasureCheck -v
func TestMeasureCheck(t *testing.T) {
	if os.Getenv("KEYLEDGER_MEASURE_CHECK") == "" {
		t.Skip("a measurement: set KEYLEDGER_MEASURE_CHECK=1")
	}
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	root := rootkey.Generate()
	live := map[string][]string{}
	for _, n := range []int{1000, 10000} {
		for i := len(live); i < n; i++ {
			id := fmt.Sprintf("%064x", i)
			w := root.Wrap(secret.Random(32), id)
			if err := s.Put(ctx, id, w); err != nil {
				t.Fatal(err)
			}
			live[id] = []string{Commitment(w)}
		}
		start := time.Now()
		res, err := s.Check(ctx, live)
		took := time.Since(start)
		if err != nil || len(res.Unreadable) != 0 || len(res.Repaired) != 0 {
			t.Fatalf("%+v %v", res, err)
		}
		t.Logf("Check of %d live materials: %s (%.0f µs each)", n, took.Round(time.Millisecond), float64(took.Microseconds())/float64(n))
	}
}
