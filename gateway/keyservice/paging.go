package keyservice

import (
	"encoding/base64"
	"strings"
)

// limitOf applies AWS's Limit rules: optional, default def, range 1..max.
func limitOf(l *int32, def, max int) (int, error) {
	if l == nil {
		return def, nil
	}
	if *l < 1 || *l > 1000 {
		return 0, outOfRange("limit", int64(*l), 1, 1000)
	}
	return min(int(*l), max), nil
}

// indexedPage pages through a sorted index: fetch returns at most limit
// items named after the marker's name ("" for the first page) and whether
// more follow, so a page never copies the whole list.
func indexedPage[T any](fetch func(after string, limit int) ([]T, bool), name func(T) string, marker string, limit int) ([]T, string, error) {
	after := ""
	if marker != "" {
		if len(marker) > 1024 {
			return nil, "", tooLong("marker", marker, 1024)
		}
		last, err := base64.RawURLEncoding.DecodeString(marker)
		if err != nil || len(last) == 0 {
			return nil, "", errorf(CodeInvalidMarker, "Invalid marker: %s", marker)
		}
		after = string(last)
	}
	items, more := fetch(after, limit)
	next := ""
	if more && len(items) > 0 {
		next = base64.RawURLEncoding.EncodeToString([]byte(name(items[len(items)-1])))
	}
	return items, next, nil
}

// page returns the items after marker (sorted by name), at most limit of
// them, and the marker for the next page ("" when done). Markers are opaque
// to clients: the base64 of the last name returned.
func page[T any](items []T, name func(T) string, marker string, limit int) ([]T, string, error) {
	start := 0
	if marker != "" {
		if len(marker) > 1024 {
			return nil, "", tooLong("marker", marker, 1024)
		}
		last, err := base64.RawURLEncoding.DecodeString(marker)
		if err != nil || len(last) == 0 {
			return nil, "", errorf(CodeInvalidMarker, "Invalid marker: %s", marker)
		}
		for start < len(items) && strings.Compare(name(items[start]), string(last)) <= 0 {
			start++
		}
	}
	end := min(start+limit, len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(name(items[end-1])))
	}
	return items[start:end], next, nil
}
