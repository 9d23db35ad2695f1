package token

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Op is an operation a token may allow on a room.
type Op string

// Capability operations. Tokens carry them by name; never rename one.
const (
	OpJoin     Op = "join"     // join the room and receive its messages
	OpPublish  Op = "publish"  // publish to the room
	OpPresence Op = "presence" // enter the room's presence set and read it
	OpHistory  Op = "history"  // read the room's archived history
	OpMetrics  Op = "metrics"  // read the room's live and aggregated metrics
	OpAdmin    Op = "admin"    // manage the room (reserved for moderation APIs: kick, ban)
)

// Ops lists every operation, in documentation order.
var Ops = []Op{OpJoin, OpPublish, OpPresence, OpHistory, OpMetrics, OpAdmin}

// Limits on capabilities, so that a token stays small and Allows stays cheap.
const (
	MaxPatterns     = 64  // room patterns per token
	MaxPatternBytes = 256 // bytes per room pattern
)

// Valid reports whether o is one of the known operations.
func (o Op) Valid() bool {
	switch o {
	case OpJoin, OpPublish, OpPresence, OpHistory, OpMetrics, OpAdmin:
		return true
	}
	return false
}

// Capabilities maps a room pattern to the operations allowed on matching
// rooms. A room is allowed an operation if any matching pattern lists it.
//
// Pattern syntax: '*' matches any run of characters (including none, and
// including '.', '/', ':'); every other character is literal. "*" alone
// matches every room. There is no escape: a literal '*' in a room name is
// matched by '*' itself.
type Capabilities map[string][]Op

// Allows reports whether the capabilities allow op on room. It does not
// allocate; its cost is linear in the total size of the patterns and the
// room name.
func (c Capabilities) Allows(room string, op Op) bool {
	for pattern, ops := range c {
		if !hasOp(ops, op) {
			continue
		}
		if MatchPattern(pattern, room) {
			return true
		}
	}
	return false
}

func hasOp(ops []Op, op Op) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

// Validate checks c: at most MaxPatterns patterns, each non-empty, valid
// UTF-8 and at most MaxPatternBytes long, each with at least one operation,
// all operations known. Nil or empty capabilities are valid and allow
// nothing.
func (c Capabilities) Validate() error {
	if len(c) > MaxPatterns {
		return fmt.Errorf("capabilities: %d room patterns, limit is %d", len(c), MaxPatterns)
	}
	for pattern, ops := range c {
		switch {
		case pattern == "":
			return errors.New("capabilities: empty room pattern")
		case len(pattern) > MaxPatternBytes:
			return fmt.Errorf("capabilities: room pattern of %d bytes, limit is %d", len(pattern), MaxPatternBytes)
		case !utf8.ValidString(pattern):
			return errors.New("capabilities: room pattern is not valid UTF-8")
		case len(ops) == 0:
			return fmt.Errorf("capabilities: room pattern %q allows no operation", pattern)
		}
		for _, op := range ops {
			if !op.Valid() {
				return fmt.Errorf("capabilities: room pattern %q: unknown operation %q", pattern, truncate(string(op), 32))
			}
		}
	}
	return nil
}

// Within reports whether every operation c allows is also allowed by
// limit, whichever room it is used on: for each pattern P of c and each of
// its operations, some pattern Q of limit that lists the operation must
// match P read as a literal room name. That is sound because Q's literals
// never contain '*' (it is always a wildcard), so every '*' of P falls
// inside a '*' of Q; it is conservative: P covered only by the union of
// several patterns of limit is refused. A nil limit means "no limit" (keys
// from static configuration); an empty non-nil one allows nothing.
func (c Capabilities) Within(limit Capabilities) bool {
	if limit == nil {
		return true
	}
	for pattern, ops := range c {
		for _, op := range ops {
			if !limit.coversPattern(pattern, op) {
				return false
			}
		}
	}
	return true
}

func (c Capabilities) coversPattern(pattern string, op Op) bool {
	for q, ops := range c {
		if hasOp(ops, op) && MatchPattern(q, pattern) {
			return true
		}
	}
	return false
}

// MatchPattern reports whether room matches pattern (see Capabilities for
// the syntax). It never backtracks, so hostile patterns such as
// "*a*a*a*a*b" cannot blow up: the prefix and suffix are compared once, and
// the literals between the first and last '*' are searched left to right,
// each at its leftmost place after the previous one (enough, because '*'
// absorbs anything in between), so every room byte is scanned a bounded
// number of times. It works on bytes; on valid UTF-8 input that is the same
// as working on characters. It does not allocate.
func MatchPattern(pattern, room string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == room
	}
	// Literal prefix before the first '*'.
	if !strings.HasPrefix(room, pattern[:star]) {
		return false
	}
	room = room[star:]
	pattern = pattern[star+1:]

	// Literal suffix after the last '*'.
	last := strings.LastIndexByte(pattern, '*')
	suffix := pattern[last+1:] // whole rest when there is no other '*'
	if !strings.HasSuffix(room, suffix) {
		return false
	}
	room = room[:len(room)-len(suffix)]
	if last < 0 {
		return true
	}
	pattern = pattern[:last]

	// Middle literals, each at its leftmost place after the previous one.
	for pattern != "" {
		var seg string
		if i := strings.IndexByte(pattern, '*'); i >= 0 {
			seg, pattern = pattern[:i], pattern[i+1:]
		} else {
			seg, pattern = pattern, ""
		}
		if seg == "" {
			continue
		}
		i := strings.Index(room, seg)
		if i < 0 {
			return false
		}
		room = room[i+len(seg):]
	}
	return true
}

// truncate shortens s to at most n bytes, cut at a character boundary, for
// error messages about untrusted input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
