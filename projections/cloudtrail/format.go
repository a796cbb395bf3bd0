package cloudtrail

import (
	"encoding/json"
	"io"

	"github.com/keyledger/keyledger/ledger/event"
)

// LogFile writes events as one CloudTrail log file, {"Records":[…]}, a
// record a line: the cloudtrail format of `keyledger audit export`
// (ledger/export.Format).
type LogFile struct{}

// File is the log file's name in an export directory.
func (LogFile) File() string { return "cloudtrail.json" }

// Begin opens the Records array.
func (LogFile) Begin(w io.Writer) error {
	_, err := io.WriteString(w, `{"Records":[`)
	return err
}

// Event writes r's record, after a comma unless it is the first (n == 0).
func (LogFile) Event(w io.Writer, r event.Record, n int) error {
	b, err := json.Marshal(Render(r))
	if err != nil {
		return err
	}
	sep := "\n"
	if n > 0 {
		sep = ",\n"
	}
	if _, err := io.WriteString(w, sep); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// End closes the Records array and the file's object.
func (LogFile) End(w io.Writer) error {
	_, err := io.WriteString(w, "\n]}\n")
	return err
}
