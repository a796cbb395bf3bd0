// Package streamname holds the name of the ledger stream a deployment
// uses when none is configured, for every package under ledger/ that
// names the ledger's JetStream resources after it (the checkpoint stream,
// the tile, base and snapshot buckets, the feed's subjects, the embedded
// server's audit permissions). The root package exports it as
// ledger.DefaultStream.
package streamname

// Default is the ledger stream's name when none is configured.
const Default = "KEYLEDGER"

// Or returns name, or Default when name is empty.
func Or(name string) string {
	if name == "" {
		return Default
	}
	return name
}
