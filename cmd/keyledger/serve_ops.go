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

// opsFlags are serve's operations flags: the metrics endpoint and request
// quotas.
type opsFlags struct {
	metricsListen   string
	metricsInsecure bool
	noThrottle      bool
	quotas          map[string]float64
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics (GET /metrics, plain HTTP) on this address, e.g. 127.0.0.1:9090 (default off)")
	fs.BoolVar(&o.metricsInsecure, "metrics-insecure-http", false, "allow a non-loopback --metrics-listen address (metrics hold no secret, but show request rates and error codes)")
	fs.BoolVar(&o.noThrottle, "no-throttle", false, "do not throttle requests (default: AWS's per-account request quotas)")
	o.quotas = map[string]float64{}
	fs.Func("quota", "FAMILY=RATE: requests per second for every account, overriding AWS's default (repeatable;\ne.g. cryptographic-symmetric=20000, CreateKey=10; 0 = no limit; per account in the principals file)",
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
	return throttle.New(throttle.Config{Region: region, Quotas: o.quotas, Account: dir.Quotas})
}
