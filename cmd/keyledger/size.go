package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a flag holding a number of bytes, written as a number with
// an optional binary unit: 1073741824, 1024MiB, 1GiB.
type byteSize uint64

var sizeUnits = []struct {
	suffix string
	factor uint64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

func (b *byteSize) String() string {
	v := uint64(*b)
	for _, u := range sizeUnits[:len(sizeUnits)-1] { // whole KiB or more, else plain bytes
		if v >= u.factor && v%u.factor == 0 {
			return strconv.FormatUint(v/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatUint(v, 10)
}

func (b *byteSize) Set(s string) error {
	num, factor := strings.TrimSpace(s), uint64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, factor = strings.TrimSpace(n), u.factor
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v > math.MaxUint64/factor {
		return fmt.Errorf("%q is not a size: write a whole number of bytes, or one with KiB, MiB, GiB or TiB (e.g. 1GiB)", s)
	}
	*b = byteSize(v * factor)
	return nil
}

// defaultSegmentSize bounds the current ledger segment, and with it the
// restart after a crash (see ledger.Config.SegmentBytes and the README's
// "Restart right after load").
const defaultSegmentSize = 1 << 30
