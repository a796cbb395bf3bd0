package tests

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// The control plane's linearizability, checked rather than assumed: a
// history of concurrent, conflicting key-state changes on several gateways
// (real requests through the SDK, real timestamps) is checked against a
// sequential model of AWS KMS's answers with porcupine. Every change's
// answer (success, or the AWS error the state called for) must be the one
// some order of the changes, respecting real time, would give.

// lzOp is one operation of the model: on key Key (0 or 1), alias Alias
// (0 or 1), Deny for PutKeyPolicy (a policy that denies kms:DisableKey, or
// the default one).
type lzOp struct {
	Op    string
	Key   int
	Alias int
	Deny  bool
}

// lzOut is an answer: "" for success, the AWS error code, throttled (the
// change lost every race: it took no effect) or unknown (no answer: it
// may or may not have taken effect).
type lzOut struct{ Code string }

const (
	lzThrottled = "ThrottlingException"
	lzUnknown   = "?"
)

// Key states of the model.
const (
	lzEnabled  = 'E'
	lzDisabled = 'D'
	lzPending  = 'P'
)

// lzState is the model's state: comparable, so porcupine's == compares it.
type lzState struct {
	Keys    [2]byte
	Deny    [2]bool // the key's policy denies kms:DisableKey
	Aliases [2]int8 // the key an alias points to, or -1
}

func lzInit() lzState { return lzState{Keys: [2]byte{lzEnabled, lzEnabled}, Aliases: [2]int8{-1, -1}} }

// lzStep is the sequential specification: the answer op gets in state s
// and the state after, as keyservice decides it (in its order of checks).
func lzStep(s lzState, op lzOp) (string, lzState) {
	k := op.Key
	pending := s.Keys[k] == lzPending
	const invalid, notFound, exists, denied = "KMSInvalidStateException", "NotFoundException", "AlreadyExistsException", "AccessDeniedException"
	switch op.Op {
	case "EnableKey", "DisableKey", "ScheduleKeyDeletion":
		if op.Op == "DisableKey" && s.Deny[k] {
			return denied, s
		}
		if pending {
			return invalid, s
		}
		s.Keys[k] = map[string]byte{"EnableKey": lzEnabled, "DisableKey": lzDisabled, "ScheduleKeyDeletion": lzPending}[op.Op]
	case "CancelKeyDeletion":
		if !pending {
			return invalid, s
		}
		s.Keys[k] = lzDisabled
	case "PutKeyPolicy":
		if pending {
			return invalid, s
		}
		s.Deny[k] = op.Deny
	case "CreateAlias":
		if s.Aliases[op.Alias] >= 0 {
			return exists, s
		}
		if pending {
			return invalid, s
		}
		s.Aliases[op.Alias] = int8(k)
	case "UpdateAlias":
		if s.Aliases[op.Alias] < 0 {
			return notFound, s
		}
		if pending {
			return invalid, s
		}
		s.Aliases[op.Alias] = int8(k)
	case "DeleteAlias":
		if s.Aliases[op.Alias] < 0 {
			return notFound, s
		}
		s.Aliases[op.Alias] = -1
	}
	return "", s
}

// lzModel is the model for porcupine: an operation without an answer may
// or may not have taken effect (two next states); a throttled one did not.
var lzModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{lzInit()} },
	Step: func(state, input, output any) []any {
		s, op, out := state.(lzState), input.(lzOp), output.(lzOut)
		switch out.Code {
		case lzThrottled:
			return []any{s}
		case lzUnknown:
			_, next := lzStep(s, op)
			return []any{s, next}
		}
		if want, next := lzStep(s, op); want == out.Code {
			return []any{next}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		op, out := input.(lzOp), output.(lzOut)
		code := out.Code
		if code == "" {
			code = "ok"
		}
		return fmt.Sprintf("%s(k%d,a%d,deny=%v) → %s", op.Op, op.Key, op.Alias, op.Deny, code)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%+v", state.(lzState)) },
}

// TestControlPlaneIsLinearizable records concurrent conflicting changes on
// three gateways and checks the history. KEYLEDGER_TEST_LINEARIZABLE sets
// the operations per client (default 40; 6 clients).
func TestControlPlaneIsLinearizable(t *testing.T) {
	perClient := envInt("KEYLEDGER_TEST_LINEARIZABLE", 40)
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	gws := gateways(t, url, 3)
	ctx := context.Background()
	keys := []string{gws[0].createKey("lz 0"), gws[1].createKey("lz 1")}
	caughtUp(t, gws...)
	denyPolicy := `{"Version":"2012-10-17","Statement":[
 {"Sid":"root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + testAccount + `:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"no-disable","Effect":"Deny","Principal":{"AWS":"*"},"Action":"kms:DisableKey","Resource":"*"}]}`
	defaultPolicy := `{"Version":"2012-10-17","Statement":[
 {"Sid":"root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + testAccount + `:root"},"Action":"kms:*","Resource":"*"}]}`
	aliasName := func(a int) *string { return aws.String(fmt.Sprintf("alias/lz-%d", a)) }
	do := func(c *kms.Client, op lzOp) error {
		k := &keys[op.Key]
		var err error
		switch op.Op {
		case "EnableKey":
			_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: k})
		case "DisableKey":
			_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: k})
		case "ScheduleKeyDeletion":
			_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: k, PendingWindowInDays: aws.Int32(7)})
		case "CancelKeyDeletion":
			_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: k})
		case "PutKeyPolicy":
			p := defaultPolicy
			if op.Deny {
				p = denyPolicy
			}
			_, err = c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: k, Policy: &p})
		case "CreateAlias":
			_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aliasName(op.Alias), TargetKeyId: k})
		case "UpdateAlias":
			_, err = c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aliasName(op.Alias), TargetKeyId: k})
		case "DeleteAlias":
			_, err = c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aliasName(op.Alias)})
		}
		return err
	}
	ops := []string{"EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "PutKeyPolicy",
		"CreateAlias", "UpdateAlias", "DeleteAlias"}
	var mu sync.Mutex
	var history []porcupine.Operation
	var wg sync.WaitGroup
	client := 0
	for g, in := range gws {
		for range 2 {
			id := client
			client++
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := in.as("admin")
				rng := rand.New(rand.NewPCG(uint64(g), uint64(id)))
				for range perClient {
					op := lzOp{Op: ops[rng.IntN(len(ops))], Key: rng.IntN(2), Alias: rng.IntN(2), Deny: rng.IntN(2) == 0}
					call := time.Now().UnixNano()
					err := do(c, op)
					ret := time.Now().UnixNano()
					out := lzOut{Code: errCode(err)}
					switch out.Code {
					case "", "KMSInvalidStateException", "NotFoundException", "AlreadyExistsException", "AccessDeniedException", lzThrottled:
					default:
						t.Errorf("%s on gateway %d: %v", op.Op, g, err)
						out.Code, ret = lzUnknown, math.MaxInt64
					}
					mu.Lock()
					history = append(history, porcupine.Operation{ClientId: id, Input: op, Call: call, Output: out, Return: ret})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	outcomes := map[string]int{}
	for _, op := range history {
		outcomes[op.Output.(lzOut).Code]++
	}
	t.Logf("%d operations: %v", len(history), outcomes)
	if outcomes[""] < len(history)/10 {
		t.Fatalf("only %d of %d changes succeeded: the history says little", outcomes[""], len(history))
	}
	res, info := porcupine.CheckOperationsVerbose(lzModel.ToModel(), history, 2*time.Minute)
	if res != porcupine.Ok {
		if res == porcupine.Illegal {
			writeVisualization(t, lzModel.ToModel(), info)
		}
		t.Fatalf("the control plane's history is %v", res)
	}
}

// TestLinearizabilityCheckerFails: histories a gateway answering from a
// stale state would produce are refused by the same checker and model, so
// the test above can fail.
func TestLinearizabilityCheckerFails(t *testing.T) {
	op := func(client int, o lzOp, call, ret int64, code string) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: o, Call: call, Output: lzOut{Code: code}, Return: ret}
	}
	for name, h := range map[string][]porcupine.Operation{
		// Gateway B disables a key after A's ScheduleKeyDeletion returned:
		// B validated against its state from before.
		"stale disable": {
			op(0, lzOp{Op: "ScheduleKeyDeletion", Key: 0}, 0, 10, ""),
			op(1, lzOp{Op: "DisableKey", Key: 0}, 20, 30, ""),
		},
		// Two gateways both create one alias, one after the other.
		"alias created twice": {
			op(0, lzOp{Op: "CreateAlias", Key: 0, Alias: 1}, 0, 10, ""),
			op(1, lzOp{Op: "CreateAlias", Key: 1, Alias: 1}, 5, 30, ""),
		},
		// A cancel refused as "not pending" after the schedule returned.
		"stale refusal": {
			op(0, lzOp{Op: "ScheduleKeyDeletion", Key: 1}, 0, 10, ""),
			op(1, lzOp{Op: "CancelKeyDeletion", Key: 1}, 11, 20, "KMSInvalidStateException"),
		},
	} {
		if res := porcupine.CheckOperationsTimeout(lzModel.ToModel(), h, 10*time.Second); res != porcupine.Illegal {
			t.Errorf("%s: the checker says %v, want Illegal", name, res)
		}
	}
	// And it accepts their linearizable variants.
	ok := []porcupine.Operation{
		op(0, lzOp{Op: "ScheduleKeyDeletion", Key: 0}, 0, 10, ""),
		op(1, lzOp{Op: "DisableKey", Key: 0}, 5, 30, ""),                    // concurrent: it may have come first
		op(2, lzOp{Op: "CreateAlias", Key: 1, Alias: 1}, 40, 50, lzUnknown), // it took effect, after all
		op(3, lzOp{Op: "CreateAlias", Key: 0, Alias: 1}, 60, 70, "AlreadyExistsException"),
	}
	ok[2].Return = math.MaxInt64
	if res := porcupine.CheckOperationsTimeout(lzModel.ToModel(), ok, 10*time.Second); res != porcupine.Ok {
		t.Fatalf("a linearizable history: %v", res)
	}
}

// writeVisualization leaves porcupine's HTML view of a failed check next
// to the test's files, for whoever investigates.
func writeVisualization(t *testing.T, m porcupine.Model, info porcupine.LinearizationInfo) {
	path := t.TempDir() + "/linearizability.html"
	if err := porcupine.VisualizePath(m, info, path); err == nil {
		t.Logf("porcupine's view of the history: %s", path)
	}
}
