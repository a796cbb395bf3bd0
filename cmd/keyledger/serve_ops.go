package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/gateway/transport"
)

// opsFlags are serve's operations flags: the metrics endpoint, fair
// sharing and request quotas.
type opsFlags struct {
	metricsListen   string
	metricsInsecure bool
	noThrottle      bool
	noFairShare     bool
	fairSlots       int
	fairQueue       int
	table           throttle.Table
	quotas          map[string]float64
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics (GET /metrics, plain HTTP) on this address, e.g. 127.0.0.1:9090 (default off)")
	fs.BoolVar(&o.metricsInsecure, "metrics-insecure-http", false, "allow a non-loopback --metrics-listen address (metrics hold no secret, but show request rates and error codes)")
	fs.BoolVar(&o.noThrottle, "no-throttle", false, "neither share the instance fairly under load nor apply any quota (one caller can take everything)")
	fs.BoolVar(&o.noFairShare, "no-fair-share", false, "do not share the instance fairly between accounts and principals under load (quotas still apply)")
	fs.IntVar(&o.fairSlots, "fair-share-slots", 0, "fair sharing: work in service while principals compete, in slots (a cheap request holds one,\na costly one up to a core's worth), held until the request is answered, its ledger commit included;\nfewer isolate a light account better, more give busy ones more together; default 16 per core (GOMAXPROCS)")
	fs.IntVar(&o.fairQueue, "fair-share-queue", 0, "fair sharing: most requests one account may have waiting; more are refused with ThrottlingException\n(default 256 per core)")
	o.table = throttle.NoQuotas
	fs.Func("quotas", "default per-account request quotas: none (default: fair sharing protects instead) or aws (AWS's\npublished table, e.g. CreateKey 5/s, RSA and ECC 1000/s, to test retry behaviour)", func(v string) error {
		switch t := throttle.Table(v); t {
		case throttle.NoQuotas, throttle.AWSQuotas:
			o.table = t
			return nil
		}
		return fmt.Errorf("want none or aws")
	})
	o.quotas = map[string]float64{}
	fs.Func("quota", "FAMILY=RATE: requests per second for every account, overriding --quotas (repeatable;\ne.g. cryptographic-symmetric=20000, CreateKey=10; 0 = no limit; per account in the principals file)",
		func(v string) error {
			family, rate, ok := strings.Cut(v, "=")
			q, err := strconv.ParseFloat(rate, 64)
			if !ok || err != nil || q < 0 || !throttle.IsFamily(family) {
				return fmt.Errorf("want FAMILY=RATE with a known family (e.g. %s, CreateKey) and a rate ≥ 0", throttle.Symmetric)
			}
			o.quotas[family] = q
			return nil
		})
}

// check applies the API's rule to the metrics address: plain HTTP on
// loopback, elsewhere only when asked for explicitly.
func (o *opsFlags) check() error {
	if o.fairSlots < 0 || o.fairQueue < 0 {
		return fmt.Errorf("--fair-share-slots and --fair-share-queue must be ≥ 0 (0: the default)")
	}
	if o.metricsListen == "" {
		return nil
	}
	if transport.CheckPlainHTTP(o.metricsListen, o.metricsInsecure) != nil {
		return fmt.Errorf("refusing to serve metrics on %s: they are plain HTTP, so only on a loopback address unless "+
			"--metrics-insecure-http says something else protects that network (they hold no secret, but show request "+
			"rates and error codes)", o.metricsListen)
	}
	return nil
}

// limiter returns the throttle for the instance, or nil with --no-throttle.
func (o *opsFlags) limiter(region string, dir *principals.Directory) *throttle.Limiter {
	if o.noThrottle {
		return nil
	}
	cfg := throttle.Config{Region: region, Defaults: o.table, Quotas: o.quotas, Account: dir.Quotas}
	if !o.noFairShare {
		cfg.Fair = &throttle.FairConfig{Slots: o.fairSlots, Queue: o.fairQueue}
	}
	return throttle.New(cfg)
}
