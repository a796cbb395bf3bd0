package chain

import (
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Partitions is how many control chains every ledger has (see the package
// doc: fixed for good).
const Partitions = 64

// Legacy is the name of the chain of ledgers written before chains.
const Legacy = ""

// Chain name prefixes.
const (
	dataPrefix    = "w."
	controlPrefix = "c."
)

// DataChain is the name of a writer's data chain.
func DataChain(writerID string) string { return dataPrefix + writerID }

// ControlChain is the name of control chain p.
func ControlChain(p int) string { return controlPrefix + strconv.Itoa(p) }

// Partition is the control partition of a partition key (a key, an alias,
// the service): xxhash64 of the key, modulo Partitions. xxhash only spreads
// keys over chains; nothing about integrity rests on it.
func Partition(key string) int { return int(xxhash.Sum64String(key) % Partitions) }

// ControlChainOf is the control chain of a partition key.
func ControlChainOf(key string) string { return ControlChain(Partition(key)) }

// FromSubject is the chain a ledger message stored on subject is on, read
// from the subject alone (a reader of block files, without the ledger's
// configuration): its last two tokens if they name a data or control
// chain, else the legacy chain.
func FromSubject(subject string) string {
	i := strings.LastIndexByte(subject, '.')
	if i <= 0 {
		return Legacy
	}
	j := strings.LastIndexByte(subject[:i], '.')
	name := subject[j+1:]
	if name != Legacy && ValidName(name) {
		return name
	}
	return Legacy
}

// DataWriter returns the writer ID of a data chain's name.
func DataWriter(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, dataPrefix)
	return id, ok && validWriterID(id)
}

// ControlPartition returns the partition of a control chain's name.
func ControlPartition(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, controlPrefix)
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p >= Partitions || strconv.Itoa(p) != s {
		return 0, false
	}
	return p, true
}

// ValidName reports whether name names a chain: the legacy chain, a
// writer's data chain or a control chain.
func ValidName(name string) bool {
	if name == Legacy {
		return true
	}
	if _, ok := DataWriter(name); ok {
		return true
	}
	_, ok := ControlPartition(name)
	return ok
}

// validWriterID reports whether id has the form of a writer ID (32
// lower-case hex digits: writer.ID).
func validWriterID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
