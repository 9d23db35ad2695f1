package token

import (
	"fmt"
	"strings"
	"testing"
)

// refMatch is a simple reference glob matcher ('*' only, bytewise) used to
// check MatchPattern: dynamic programming over (pattern, room) prefixes.
func refMatch(pattern, room string) bool {
	// m[j] reports whether pattern[:i] matches room[:j], row by row.
	m := make([]bool, len(room)+1)
	m[0] = true
	for i := 0; i < len(pattern); i++ {
		next := make([]bool, len(room)+1)
		if pattern[i] == '*' {
			reach := false
			for j := 0; j <= len(room); j++ {
				reach = reach || m[j]
				next[j] = reach
			}
		} else {
			for j := 1; j <= len(room); j++ {
				next[j] = m[j-1] && room[j-1] == pattern[i]
			}
		}
		m = next
	}
	return m[len(room)]
}

var matchTests = []struct {
	pattern, room string
	want          bool
}{
	{"*", "", true},
	{"*", "anything", true},
	{"*", "a.b/c:d#e*f", true},
	{"**", "x", true},
	{"chat", "chat", true},
	{"chat", "chat2", false},
	{"chat", "cha", false},
	{"chat", "", false},
	{"", "", true},
	{"", "a", false},
	{"chat.*", "chat.general", true},
	{"chat.*", "chat.", true},
	{"chat.*", "chat", false},
	{"chat.*", "chatx", false},
	{"chat.*", "chat.a.b.c", true}, // '*' crosses '.'
	{"chat/*", "chat/a/b", true},   // and '/'
	{"chat:*", "chat:a:b", true},   // and ':'
	{"*.general", "chat.general", true},
	{"*.general", "chat.generalx", false},
	{"a*b*c", "abc", true},
	{"a*b*c", "aXbYc", true},
	{"a*b*c", "acb", false},
	{"a*b", "ab", true},
	{"ab*b", "ab", false},
	{"ab*ba", "aba", false},
	{"ab*ba", "abba", true},
	{"a*a", "a", false},
	{"a*a", "aa", true},
	{"*ab*ab*", "abab", true},
	{"*ab*ab*", "aab", false},
	{"user#*", "user#42", true}, // '#' is literal
	{"user#*", "user42", false},
	{"a.b", "aXb", false},    // '.' is literal, not "any character"
	{"room*", "room*", true}, // literal '*' in a room matched by '*'
	{"ro*om", "ro*om", true},
	{"日本*", "日本語", true},
	{"*語", "日本語", true},
	{"комн*", "комната", true},
	{"комн*", "кімната", false},
	{"é*", "e\u0301", false}, // NFC pattern, NFD room: different bytes
	{"*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 64), false},
	{"*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 64) + "b", true},
}

func TestMatchPattern(t *testing.T) {
	for _, tt := range matchTests {
		if got := MatchPattern(tt.pattern, tt.room); got != tt.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tt.pattern, tt.room, got, tt.want)
		}
		if ref := refMatch(tt.pattern, tt.room); ref != tt.want {
			t.Errorf("reference matcher disagrees with the table on (%q, %q)", tt.pattern, tt.room)
		}
	}
}

// TestMatchPatternPathological would not finish with a backtracking matcher
// (exponential in the number of stars); MatchPattern is linear.
func TestMatchPatternPathological(t *testing.T) {
	pattern := strings.Repeat("*a", 100) + "*b"
	room := strings.Repeat("a", 1<<20)
	if MatchPattern(pattern, room) {
		t.Fatal("pathological pattern matched a room without 'b'")
	}
	if !MatchPattern(pattern, room+"b") {
		t.Fatal("pathological pattern did not match a room ending in 'b'")
	}
	if n := testing.AllocsPerRun(10, func() { MatchPattern(pattern, room) }); n != 0 {
		t.Errorf("MatchPattern allocates %.0f times, want 0", n)
	}
}

func TestAllows(t *testing.T) {
	caps := Capabilities{
		"chat.*":       {OpJoin, OpPublish, OpPresence},
		"announce":     {OpJoin},
		"*":            {OpMetrics},
		"user#42/*":    {OpHistory},
		"日本/*":         {OpJoin},
		"weird:*:room": {OpPublish},
	}
	tests := []struct {
		room string
		op   Op
		want bool
	}{
		{"chat.general", OpJoin, true},
		{"chat.general", OpPublish, true},
		{"chat.general", OpHistory, false},
		{"chat.a.b", OpPresence, true},
		{"announce", OpJoin, true},
		{"announce", OpPublish, false},
		{"announce.x", OpJoin, false},
		{"anything/at all", OpMetrics, true},
		{"", OpMetrics, true},
		{"user#42/inbox", OpHistory, true},
		{"user#43/inbox", OpHistory, false},
		{"日本/東京", OpJoin, true},
		{"日本", OpJoin, false},
		{"weird:x:y:room", OpPublish, true},
		{"weird:room", OpPublish, false},
		{"chat.general", OpAdmin, false},
		{"chat.general", Op("superuser"), false},
	}
	for _, tt := range tests {
		if got := caps.Allows(tt.room, tt.op); got != tt.want {
			t.Errorf("Allows(%q, %q) = %v, want %v", tt.room, tt.op, got, tt.want)
		}
	}
	if (Capabilities(nil)).Allows("x", OpJoin) {
		t.Error("nil capabilities allowed something")
	}
	if n := testing.AllocsPerRun(100, func() { caps.Allows("chat.general", OpPublish) }); n != 0 {
		t.Errorf("Allows allocates %.0f times, want 0", n)
	}
}

func TestCapabilitiesValidate(t *testing.T) {
	many := Capabilities{}
	for i := range MaxPatterns + 1 {
		many[fmt.Sprintf("room-%d", i)] = []Op{OpJoin}
	}
	atLimit := Capabilities{}
	for i := range MaxPatterns {
		atLimit[fmt.Sprintf("room-%d", i)] = []Op{OpJoin}
	}
	tests := []struct {
		name string
		caps Capabilities
		ok   bool
	}{
		{"nil", nil, true},
		{"empty", Capabilities{}, true},
		{"all ops", Capabilities{"*": Ops}, true},
		{"at pattern limit", atLimit, true},
		{"longest pattern", Capabilities{strings.Repeat("x", MaxPatternBytes): {OpJoin}}, true},
		{"unknown op", Capabilities{"*": {OpJoin, "superuser"}}, false},
		{"op with wrong case", Capabilities{"*": {"Join"}}, false},
		{"empty op", Capabilities{"*": {""}}, false},
		{"no ops", Capabilities{"*": {}}, false},
		{"empty pattern", Capabilities{"": {OpJoin}}, false},
		{"too many patterns", many, false},
		{"pattern too long", Capabilities{strings.Repeat("x", MaxPatternBytes+1): {OpJoin}}, false},
		{"pattern not UTF-8", Capabilities{"a\xffb": {OpJoin}}, false},
	}
	for _, tt := range tests {
		err := tt.caps.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func FuzzMatchPattern(f *testing.F) {
	for _, tt := range matchTests {
		if len(tt.room) <= 256 {
			f.Add(tt.pattern, tt.room)
		}
	}
	f.Add("*a*b*", "xaybz")
	f.Add("a**b", "ab")
	f.Fuzz(func(t *testing.T, pattern, room string) {
		if len(pattern) > 512 || len(room) > 2048 {
			return // keep the O(n·m) reference fast
		}
		if got, want := MatchPattern(pattern, room), refMatch(pattern, room); got != want {
			t.Fatalf("MatchPattern(%q, %q) = %v, reference says %v", pattern, room, got, want)
		}
	})
}

var boolSink bool

func BenchmarkAllows(b *testing.B) {
	caps := Capabilities{
		"chat.*":            {OpJoin, OpPublish, OpPresence},
		"announce":          {OpJoin},
		"user#42/*":         {OpHistory},
		"team:*:board:*":    {OpJoin, OpPublish},
		"metrics/*/summary": {OpMetrics},
	}
	b.ReportAllocs()
	for b.Loop() {
		boolSink = caps.Allows("team:acme:board:7", OpPublish)
	}
}

func BenchmarkMatchPatternPathological(b *testing.B) {
	pattern := strings.Repeat("*a", 30) + "*b"
	room := strings.Repeat("a", 256)
	b.ReportAllocs()
	for b.Loop() {
		boolSink = MatchPattern(pattern, room)
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("日本語", 4); got != "日…" {
		t.Errorf("truncate cut inside a character: %q", got)
	}
	if got := truncate("abc", 3); got != "abc" {
		t.Errorf("truncate shortened a short string: %q", got)
	}
}

func TestWithin(t *testing.T) {
	key := Capabilities{
		"chat.*":   {OpJoin, OpPublish},
		"news":     {OpJoin},
		"team:*:x": {OpPresence},
	}
	tests := []struct {
		name string
		caps Capabilities
		want bool
	}{
		{"nil", nil, true},
		{"same", key, true},
		{"narrower pattern", Capabilities{"chat.lobby": {OpJoin}, "chat.a*": {OpPublish}}, true},
		{"fewer ops", Capabilities{"chat.*": {OpJoin}}, true},
		{"star inside star", Capabilities{"team:*:x": {OpPresence}, "team:a*b:x": {OpPresence}}, true},
		{"wider pattern", Capabilities{"chat*": {OpJoin}}, false},
		{"everything", Capabilities{"*": {OpJoin}}, false},
		{"op the key lacks", Capabilities{"news": {OpPublish}}, false},
		{"admin the key lacks", Capabilities{"chat.*": {OpAdmin}}, false},
		{"pattern the key lacks", Capabilities{"sports": {OpJoin}}, false},
		{"literal star is not a wildcard in the key", Capabilities{"news*": {OpJoin}}, false},
		{"suffix wider", Capabilities{"team:*": {OpPresence}}, false},
	}
	for _, tt := range tests {
		if got := tt.caps.Within(key); got != tt.want {
			t.Errorf("%s: Within = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !(Capabilities{"*": {OpAdmin}}).Within(nil) {
		t.Error("a nil limit refused something")
	}
	if (Capabilities{"x": {OpJoin}}).Within(Capabilities{}) {
		t.Error("an empty limit allowed something")
	}
}

// FuzzWithin checks soundness: whenever Within says yes, every room the
// narrower pattern matches is matched by the key's pattern.
func FuzzWithin(f *testing.F) {
	f.Add("chat.*", "chat.a*b", "chat.aXb")
	f.Add("*x*", "ax*", "axe")
	f.Fuzz(func(t *testing.T, keyPattern, tokPattern, room string) {
		if len(keyPattern) > 64 || len(tokPattern) > 64 || len(room) > 256 {
			return
		}
		key := Capabilities{keyPattern: {OpJoin}}
		tok := Capabilities{tokPattern: {OpJoin}}
		if tok.Within(key) && MatchPattern(tokPattern, room) && !MatchPattern(keyPattern, room) {
			t.Fatalf("%q within %q, yet %q matches only the token's", tokPattern, keyPattern, room)
		}
	})
}
