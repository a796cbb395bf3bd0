// Package throttle decides whether a request may run: it shares the
// instance fairly between accounts, and between the principals of an
// account, when they compete for it (Fair), and it limits request rates
// per account and quota family where a quota is set, as AWS KMS does
// (token buckets refilled at the family's quota, in requests per second,
// holding at most one second's worth).
//
// By default no per-operation quota applies (NoQuotas): AWS sizes its
// quotas for its fleet, not for one instance, and a fixed rate neither
// stops one account's load from slowing another's nor lets a lone client
// use the machine. Fair sharing protects instead, refusing with
// ThrottlingException only what would otherwise wait too long. AWSQuotas
// reproduces AWS's published table, for testing retry behaviour; quotas
// configured for every account or per account apply with either.
//
// # Measured: a noisy neighbour
//
// make bench-noisy (keyledger-bench --noisy-neighbour) starts a fresh
// server per configuration and runs a victim account's Encrypt on 4
// connections alone and beside a neighbour account, 10 s each. On a
// shared 2-core machine (load average 5–8 from other builds; two rounds,
// compare within a round):
//
//	keyledger-bench --noisy-neighbour --duration 10s --warmup 2s --rounds 2 \
//	  --noisy-serve "old=--quotas aws --no-fair-share;new="
//
//	victim: account A's Encrypt on 4 connections; neighbour: account B
//	                          old (AWS quotas)              new (fair sharing, default)
//	  no neighbour            4,296 req/s, p99 4 ms         2,500 / 2,849 req/s, p99 8 / 7 ms
//	  Encrypt, 64 conns       752 (18 %), p99 15 ms         545 / 673 (22 / 24 %), p99 21 / 22 ms
//	  Encrypt, 256 conns      348 (8 %), p99 25 ms          141 / 163 (6 / 6 %), p99 113 / 81 ms
//	  CreateKey RSA_4096 5/s  56 (1 %), p99 618 ms          2,313 / 644 (93 / 23 %), p99 13 / 48 ms
//
// (One old round is shown: the other's alone figure fell in a burst of
// load.) AWS's quotas protected no one: a neighbour creating RSA-4096
// keys at AWS's 5/s wants 3.4 cores of the 2. With fair sharing, key
// generation gets the neighbour's share of the cores (one), and the victim
// keeps most of its rate. A neighbour of cheap requests on many
// connections is not held back: each of its requests holds its share only
// while its own work runs and gives it back before the ledger commit (see
// ReleaseEarly), so it takes no CPU from the victim — what it takes is the
// commit pipeline's latency, shared by every request, which admission
// cannot order. Holding shares through the commit (as this package did
// first) isolated better at 16 slots (the victim kept 42–48 % beside 64
// connections) and cost the neighbour 24–37 % of its own rate whenever two
// principals were busy; giving them back early costs nothing in total.
// A neighbour whose excess is refused and which retries at once, without
// the SDKs' backoff, costs the instance about as much refusing it as
// serving it would.
//
// A Limiter is safe for concurrent use and holds no secret.
package throttle
