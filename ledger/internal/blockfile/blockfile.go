// Package blockfile reads nats-server's JetStream file store directly: the
// message blocks of one stream (<store>/jetstream/<account>/streams/<stream>/
// msgs/<n>.blk), without a server, to salvage what a damaged block still
// holds. nats-server itself refuses a whole stream when one compressed block
// does not decompress; this package keeps every record that still checks out.
//
// It is tied to nats-server's on-disk format, checked against nats-server
// v2.15.3 (server/filestore.go) with tests on blocks the embedded server
// writes (blockfile_test.go): a change of that format must fail them.
//
// The format, as this package reads it:
//
//   - A block is a run of records. A compressed block (stream compression
//     s2, written when the block is sealed) is "cmp" | algorithm (1 = S2) |
//     uvarint original size | an S2 framed stream of the records without
//     the last 8 bytes | those 8 bytes raw (the last record's checksum).
//   - A record is total length (4, little endian; bit 31 set when the
//     message has headers) | sequence (8; bit 62: a delete tombstone, bit
//     63: an erased message) | timestamp (8, ns) | subject length (2) |
//     subject | [header length (4) | header] | data | checksum (8).
//   - The checksum is HighwayHash-64 keyed with SHA-256("<stream>-<block
//     index>") over sequence and timestamp, subject, header and data.
//   - Encrypted stores (JetStreamKey) are not read: keyledger does not
//     configure one, and a block with a key file beside it is refused.
//
// Damage is survived at the smallest unit the format allows: an S2 chunk
// (up to 1 MiB of records) whose CRC or decoding fails is decoded as far
// as it goes and the chunks after it are decoded; a record whose checksum
// fails is lost, and reading resumes at the next offset where a whole
// record checks out. A record is only ever returned whole and with a valid
// checksum, so what a damaged chunk decodes to wrongly is never returned.
//
// The package holds no state; its functions are safe for concurrent use.
package blockfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/s2"
	"github.com/minio/highwayhash"
)

// CheckedVersion is the nats-server release whose file store format this
// package was checked against.
const CheckedVersion = "v2.15.3"

const (
	recordHeader = 22 // length, sequence, timestamp, subject length
	checksumLen  = 8
	hasHeaders   = 1 << 31
	erased       = 1 << 63
	tombstone    = 1 << 62
	maxRecord    = 32 << 20 // nats-server's rlBadThresh
)

// Record is one stored message that checks out.
type Record struct {
	Seq     uint64
	Time    int64 // Unix nanoseconds, as stored
	Subject string
	Header  []byte // the NATS header block ("NATS/1.0\r\n…"), nil without
	Data    []byte
}

// Damage is a stretch of a block that could not be read.
type Damage struct {
	Block string // file name, e.g. "2.blk"
	// Offset and Length locate it: in the file for an uncompressed block,
	// in the decompressed records for a compressed one (Compressed).
	Offset, Length int64
	Compressed     bool
	Reason         string
	// After is the sequence of the last record read before it in this
	// block (0: none); Before the first read after it (0: none).
	After, Before uint64
}

func (d Damage) String() string {
	where := "file"
	if d.Compressed {
		where = "decompressed"
	}
	return fmt.Sprintf("%s: %d bytes at %s offset %d unreadable (%s)", d.Block, d.Length, where, d.Offset, d.Reason)
}

// Block is what one block file holds.
type Block struct {
	Index      uint32
	Path       string
	Compressed bool
	Records    []Record // every record that checks out, in file order
	Damage     []Damage
	Tombstones int // delete tombstones and erased records skipped

	placed []placed // where each of Records was, in the same order
}

// ErrEncrypted refuses a store encrypted at rest.
var ErrEncrypted = errors.New("blockfile: the store is encrypted at rest (JetStreamKey); its blocks cannot be read directly")

// MsgsDir is a stream's block directory under a JetStream store directory
// (the embedded server's <data-dir>/jetstream), in the global account.
func MsgsDir(storeDir, stream string) string {
	return filepath.Join(storeDir, "jetstream", "$G", "streams", stream, "msgs")
}

// Blocks lists a block directory's block indexes, ascending.
func Blocks(msgs string) ([]uint32, error) {
	ents, err := os.ReadDir(msgs)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".key") {
			return nil, ErrEncrypted
		}
		n, ok := strings.CutSuffix(name, ".blk")
		if !ok {
			continue
		}
		i, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			continue
		}
		out = append(out, uint32(i))
	}
	slices.Sort(out)
	return out, nil
}

// IsCompressed reports whether block index in msgs is compressed, from
// its first bytes.
func IsCompressed(msgs string, index uint32) (bool, error) {
	f, err := os.Open(filepath.Join(msgs, strconv.FormatUint(uint64(index), 10)+".blk"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := f.Read(head)
	_, ok := compressedBody(head[:n])
	return ok, nil
}

// ReadBlock reads block index of stream from the directory msgs.
func ReadBlock(msgs, stream string, index uint32) (*Block, error) {
	name := strconv.FormatUint(uint64(index), 10) + ".blk"
	path := filepath.Join(msgs, name)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b := &Block{Index: index, Path: path}
	key := sha256.Sum256([]byte(stream + "-" + strconv.FormatUint(uint64(index), 10)))
	hh, err := highwayhash.New64(key[:])
	if err != nil {
		return nil, err
	}
	spans, damage, compressed := decode(raw, name)
	b.Compressed = compressed
	r := reader{hh: hh, block: b, name: name, compressed: compressed}
	var after uint64
	for _, sp := range spans {
		after = r.records(sp, after)
	}
	// Damage found while decoding (lost chunks) lies between spans: name
	// the records on either side.
	for _, d := range damage {
		d.After, d.Before = around(b, d)
		b.Damage = append(b.Damage, d)
	}
	slices.SortFunc(b.Damage, func(x, y Damage) int { return int(x.Offset - y.Offset) })
	return b, nil
}

// span is decoded bytes at an offset (in the file, or in the decompressed
// records).
type span struct {
	off  int64
	data []byte
}

// placed remembers where each record came from, for around.
type placed struct{ off, end int64 }

// around finds the records just before and after a damaged stretch.
func around(b *Block, d Damage) (after, before uint64) {
	for i, p := range b.placed {
		if p.end <= d.Offset {
			after = b.Records[i].Seq
		}
		if p.off >= d.Offset+d.Length && before == 0 {
			before = b.Records[i].Seq
		}
	}
	return after, before
}

// decode turns a block file into spans of record bytes and the damage
// between them.
func decode(raw []byte, name string) ([]span, []Damage, bool) {
	body, ok := compressedBody(raw)
	if !ok {
		return []span{{off: 0, data: raw}}, nil, false
	}
	if len(body) < checksumLen {
		return nil, []Damage{{Block: name, Length: int64(len(raw)), Compressed: true, Reason: "compressed block too short"}}, true
	}
	tail := body[len(body)-checksumLen:]
	spans, damage, lastOK := chunks(body[:len(body)-checksumLen], name)
	if lastOK && len(spans) > 0 {
		// The last record's checksum is kept raw after the stream.
		last := &spans[len(spans)-1]
		last.data = append(last.data, tail...)
	}
	return spans, damage, true
}

// compressedBody returns the S2 stream (with its 8-byte raw tail) of a
// compressed block.
func compressedBody(raw []byte) ([]byte, bool) {
	if len(raw) < 5 || raw[0] != 'c' || raw[1] != 'm' || raw[2] != 'p' || raw[3] != 1 {
		return nil, false
	}
	_, n := binary.Uvarint(raw[4:])
	if n <= 0 {
		return nil, false
	}
	return raw[4+n:], true
}

// S2 framing (github.com/klauspost/compress/s2, the Snappy framing format
// with S2 blocks): chunk type (1) | length (3, little endian) | body;
// data chunks begin with a masked CRC-32C of their uncompressed bytes.
const (
	chunkCompressed   = 0x00
	chunkUncompressed = 0x01
	chunkStreamID     = 0xff
	maxChunk          = 4<<20 + 1<<10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func maskedCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b)
	return c>>15 | c<<17 + 0xa282ead8
}

// chunks decodes an S2 stream chunk by chunk. A chunk that fails its CRC or
// does not decode is lost; decoding resumes at the next chunk, found by its
// length, or, when the length itself is garbage, by scanning for the next
// offset where a whole chunk checks out. lastOK reports that the stream's
// last data chunk decoded (the block's raw tail continues it).
func chunks(stream []byte, name string) (spans []span, damage []Damage, lastOK bool) {
	var out int64 // decompressed offset
	cur := span{}
	lose := func(from, to int, reason string) {
		if len(cur.data) > 0 {
			spans = append(spans, cur)
		}
		// The decompressed size of what is lost is not known; damage is
		// placed at the decompressed offset where it begins, one byte
		// long, and the spans around it are apart.
		damage = append(damage, Damage{Block: name, Offset: out, Length: 1, Compressed: true,
			Reason: fmt.Sprintf("S2 chunk at compressed offset %d–%d: %s", from, to, reason)})
		out++ // keep the spans apart
		cur = span{off: out}
	}
	for i := 0; i < len(stream); {
		if len(stream)-i < 4 {
			lose(i, len(stream), "truncated chunk header")
			break
		}
		typ, n := stream[i], int(stream[i+1])|int(stream[i+2])<<8|int(stream[i+3])<<16
		body := stream[i+4 : min(len(stream), i+4+n)]
		switch {
		case len(body) < n:
			next := resync(stream, i+1)
			if typ == chunkCompressed || typ == chunkUncompressed {
				part := chunkPrefix(typ, stream[i+4:next])
				cur.data = append(cur.data, part...)
				out += int64(len(part))
			}
			lose(i, next, "chunk runs past the end of the block")
			i = next
			continue
		case typ == chunkStreamID || typ >= 0x80:
			i += 4 + n // stream identifier, padding, index, skippable
			continue
		case typ != chunkCompressed && typ != chunkUncompressed:
			next := resync(stream, i+1)
			lose(i, next, fmt.Sprintf("unknown chunk type %#x", typ))
			i = next
			continue
		}
		data, err := chunkData(typ, body)
		if err != nil {
			next := i + 4 + n
			if !validChunkAt(stream, next) {
				next = resync(stream, i+1)
			}
			// What the chunk still decodes to before the damage: its
			// records are kept if their own checksums hold.
			part := chunkPrefix(typ, stream[i+4:next])
			cur.data = append(cur.data, part...)
			out += int64(len(part))
			lose(i, next, err.Error())
			i = next
			continue
		}
		cur.data = append(cur.data, data...)
		out += int64(len(data))
		i += 4 + n
	}
	if len(cur.data) > 0 {
		spans = append(spans, cur)
	}
	return spans, damage, len(cur.data) > 0
}

// chunkData checks and decodes one data chunk.
func chunkData(typ byte, body []byte) ([]byte, error) {
	if len(body) < 4 || len(body) > maxChunk {
		return nil, errors.New("bad chunk length")
	}
	want := binary.LittleEndian.Uint32(body)
	data := body[4:]
	if typ == chunkCompressed {
		var err error
		if data, err = s2.Decode(nil, data); err != nil {
			return nil, err
		}
	}
	if maskedCRC(data) != want {
		return nil, errors.New("CRC mismatch")
	}
	return data, nil
}

// chunkPrefix is what a damaged data chunk still decodes to, from its
// start up to where its damage makes decoding impossible. Bytes past the
// damage may be wrong: only records whose own checksum holds are kept.
func chunkPrefix(typ byte, body []byte) []byte {
	if len(body) < 4 {
		return nil
	}
	if typ == chunkUncompressed {
		return body[4:]
	}
	return s2Prefix(body[4:])
}

// s2Prefix decodes an S2 block (the Snappy block format with S2's repeat
// offsets; github.com/klauspost/compress/s2 decode_other.go) as far as it
// can, and returns what it decoded before the first element that cannot
// be.
func s2Prefix(src []byte) []byte {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > maxChunk {
		return nil
	}
	dst := make([]byte, 0, n)
	s, offset := k, 0
	for s < len(src) {
		var length int
		tag := src[s]
		switch tag & 0x03 {
		case 0x00: // literal
			x := int(tag >> 2)
			s++
			if x >= 60 {
				nb := x - 59
				if s+nb > len(src) {
					return dst
				}
				x = 0
				for j := nb - 1; j >= 0; j-- {
					x = x<<8 | int(src[s+j])
				}
				s += nb
			}
			length = x + 1
			if length > cap(dst)-len(dst) || s+length > len(src) {
				return dst
			}
			dst = append(dst, src[s:s+length]...)
			s += length
			continue
		case 0x01: // copy, 1-byte offset; offset 0: S2's repeat
			if s+2 > len(src) {
				return dst
			}
			length = int(tag>>2) & 0x7
			toffset := int(tag&0xe0)<<3 | int(src[s+1])
			s += 2
			if toffset == 0 {
				extra := map[int]int{5: 1, 6: 2, 7: 3}[length]
				if s+extra > len(src) {
					return dst
				}
				switch length {
				case 5:
					length = int(src[s]) + 4
				case 6:
					length = int(src[s]) | int(src[s+1])<<8 + 1<<8
				case 7:
					length = int(src[s]) | int(src[s+1])<<8 | int(src[s+2])<<16 + 1<<16
				}
				s += extra
			} else {
				offset = toffset
			}
			length += 4
		case 0x02: // copy, 2-byte offset
			if s+3 > len(src) {
				return dst
			}
			length, offset = 1+int(tag>>2), int(src[s+1])|int(src[s+2])<<8
			s += 3
		case 0x03: // copy, 4-byte offset
			if s+5 > len(src) {
				return dst
			}
			length, offset = 1+int(tag>>2), int(binary.LittleEndian.Uint32(src[s+1:]))
			s += 5
		}
		if offset <= 0 || offset > len(dst) || length > cap(dst)-len(dst) {
			return dst
		}
		for j := range length { // forwards: the source may overlap
			dst = append(dst, dst[len(dst)-offset])
			_ = j
		}
	}
	return dst
}

// validChunkAt reports whether a whole chunk that checks out (or the end
// of the stream) is at i.
func validChunkAt(stream []byte, i int) bool {
	if i == len(stream) {
		return true
	}
	if len(stream)-i < 4 {
		return false
	}
	typ, n := stream[i], int(stream[i+1])|int(stream[i+2])<<8|int(stream[i+3])<<16
	if typ != chunkCompressed && typ != chunkUncompressed || i+4+n > len(stream) {
		return false
	}
	_, err := chunkData(typ, stream[i+4:i+4+n])
	return err == nil
}

// resync finds the next offset from i where a whole chunk checks out, or
// the end.
func resync(stream []byte, i int) int {
	for ; i < len(stream); i++ {
		if (stream[i] == chunkCompressed || stream[i] == chunkUncompressed) && validChunkAt(stream, i) {
			return i
		}
	}
	return len(stream)
}

// reader walks the records of spans.
type reader struct {
	hh         hash.Hash64
	block      *Block
	name       string
	compressed bool
	sum        [checksumLen]byte
}

// records appends the records of sp to the block, resynchronising past
// bytes that hold no record that checks out. after is the last sequence
// read so far; it returns the new one.
func (r *reader) records(sp span, after uint64) uint64 {
	b := r.block
	buf := sp.data
	bad := -1 // start of unreadable bytes, or -1
	flush := func(end int) {
		if bad < 0 {
			return
		}
		b.Damage = append(b.Damage, Damage{Block: r.name, Offset: sp.off + int64(bad), Length: int64(end - bad),
			Compressed: r.compressed, Reason: "no record checks out here", After: after})
		bad = -1
	}
	for i := 0; i < len(buf); {
		rec, n, ok := r.record(buf[i:])
		if !ok {
			if bad < 0 {
				bad = i
			}
			i++
			continue
		}
		if bad >= 0 {
			flush(i)
			if rec.Seq != 0 {
				b.Damage[len(b.Damage)-1].Before = rec.Seq
			}
		}
		if rec.Seq == 0 {
			b.Tombstones++
		} else {
			b.Records = append(b.Records, rec)
			b.placed = append(b.placed, placed{off: sp.off + int64(i), end: sp.off + int64(i+n)})
			after = rec.Seq
		}
		i += n
	}
	flush(len(buf))
	return after
}

// record parses the record at the start of buf if it checks out; a
// tombstone or an erased message is returned with Seq 0.
func (r *reader) record(buf []byte) (Record, int, bool) {
	if len(buf) < recordHeader+checksumLen {
		return Record{}, 0, false
	}
	le := binary.LittleEndian
	rl := le.Uint32(buf)
	withHeaders := rl&hasHeaders != 0
	rl &^= hasHeaders
	slen := int(le.Uint16(buf[20:]))
	dlen := int(rl) - recordHeader
	shlen := slen
	if withHeaders {
		shlen += 4
	}
	if rl > maxRecord || int(rl) > len(buf) || dlen < checksumLen || shlen > dlen-checksumLen {
		return Record{}, 0, false
	}
	seq := le.Uint64(buf[4:])
	data := buf[recordHeader:rl]
	body := data[slen : dlen-checksumLen]
	hlen := 0
	if withHeaders {
		hlen = int(le.Uint32(body))
		body = body[4:]
		if hlen > len(body) {
			return Record{}, 0, false
		}
	}
	r.hh.Reset()
	r.hh.Write(buf[4:20])
	r.hh.Write(data[:slen])
	r.hh.Write(body)
	if !bytes.Equal(r.hh.Sum(r.sum[:0]), data[dlen-checksumLen:]) {
		return Record{}, 0, false
	}
	if seq&(erased|tombstone) != 0 || seq == 0 {
		return Record{Seq: 0}, int(rl), true
	}
	rec := Record{Seq: seq, Time: int64(le.Uint64(buf[12:])), Subject: string(data[:slen]), Data: bytes.Clone(body[hlen:])}
	if withHeaders {
		rec.Header = bytes.Clone(body[:hlen])
	}
	return rec, int(rl), true
}
