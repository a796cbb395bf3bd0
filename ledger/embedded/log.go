package embedded

import (
	"context"
	"fmt"
	"log/slog"
)

// serverLog hands nats-server's warnings and errors to keyledger's log, so
// a storage failure (a full disk, a write error) is named where operators
// look, not only as a publish timeout. Notices, debug and trace stay quiet.
// Failed writes are also reported to storage, which is how keyledger learns
// of them at once (the server does not answer the publish).
type serverLog struct {
	l          *slog.Logger // nil: not logged
	storage    *storage
	fatal      chan string // the first fatal error (e.g. the port is taken), for Start
	recoveries *recoveries // streams it could not recover (damaged.go)
}

func (s serverLog) Noticef(string, ...any) {}
func (s serverLog) Debugf(string, ...any)  {}
func (s serverLog) Tracef(string, ...any)  {}

func (s serverLog) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if s.recoveries != nil {
		s.recoveries.note(msg)
	}
	s.log(slog.LevelWarn, msg)
}

func (s serverLog) Errorf(format string, v ...any) { s.log(slog.LevelError, fmt.Sprintf(format, v...)) }

func (s serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	s.log(slog.LevelError, "fatal: "+msg)
	select {
	case s.fatal <- msg:
	default:
	}
}

func (s serverLog) log(level slog.Level, msg string) {
	if isWriteFailure(msg) {
		s.storage.writeFailed(msg)
	}
	if s.l != nil {
		s.l.Log(context.Background(), level, "nats-server: "+msg)
	}
}
