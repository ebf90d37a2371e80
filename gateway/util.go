package gateway

import (
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/mgw-project/mgw/config"
)

func itoa(n int) string { return strconv.Itoa(n) }

// quote shows a client-supplied value in an error body, bounded so an error never echoes
// a megabyte back.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// NewLogger builds the process logger from the config's log section.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	o := &slog.HandlerOptions{Level: lvl}
	if strings.ToLower(c.Format) == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
