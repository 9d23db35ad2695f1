package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// seriesInCode returns every roomcast_* series name the Go code of pkg/
// and services/ defines (string literals), with the file that defines it.
func seriesInCode(t *testing.T) map[string]string {
	t.Helper()
	lit := regexp.MustCompile(`"(roomcast_[a-z0-9_]+)"`)
	out := map[string]string{}
	for _, dir := range []string{"pkg", "services"} {
		err := filepath.WalkDir(filepath.Join(repoRoot(t), dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range lit.FindAllSubmatch(b, -1) {
				out[string(m[1])] = path
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 20 {
		t.Fatalf("found only %d series in the code: the scan is broken", len(out))
	}
	return out
}

// TestMetricsReferenceMatchesTheCode: docs/operations.md lists every
// series the code defines, and nothing else.
func TestMetricsReferenceMatchesTheCode(t *testing.T) {
	code := seriesInCode(t)
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- metrics-series:begin -->(.*)<!-- metrics-series:end -->").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/operations.md has no metrics-series section")
	}
	listed := map[string]bool{}
	for _, row := range regexp.MustCompile("(?m)^\\| `(roomcast_[a-z0-9_]+)` \\|").FindAllSubmatch(m[1], -1) {
		listed[string(row[1])] = true
	}
	for name, file := range code {
		if !listed[name] {
			t.Errorf("docs/operations.md does not list %s (defined in %s)", name, file)
		}
	}
	for name := range listed {
		if _, ok := code[name]; !ok {
			t.Errorf("docs/operations.md lists %s, which no service defines", name)
		}
	}
}

// dashboard is the part of a Grafana dashboard the test reads; unknown
// fields are allowed (Grafana's model is large), but the panels and their
// queries must be where Grafana looks for them.
type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"`
}

type target struct {
	Expr string `json:"expr"`
}

// TestGrafanaDashboardQueriesExistingSeries: every series the dashboard
// queries is one a service serves (histogram suffixes and the standard Go
// and process collectors included).
func TestGrafanaDashboardQueriesExistingSeries(t *testing.T) {
	code := seriesInCode(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/grafana/roomcast.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&d); err != nil {
		t.Fatalf("deploy/grafana/roomcast.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels: %+v", d)
	}
	std := regexp.MustCompile(`^(go|process)_[a-z0-9_]+$`)
	series := regexp.MustCompile(`\b((?:roomcast|go|process)_[a-z0-9_]+)\b`)
	queries := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q queries nothing", p.Title)
			}
			for _, tg := range p.Targets {
				queries++
				names := series.FindAllString(tg.Expr, -1)
				if len(names) == 0 {
					t.Errorf("panel %q: query %q names no series", p.Title, tg.Expr)
				}
				for _, n := range names {
					base := n
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if b, ok := strings.CutSuffix(n, suf); ok {
							if _, defined := code[b]; defined {
								base = b
							}
						}
					}
					if _, ok := code[base]; !ok && !std.MatchString(n) {
						t.Errorf("panel %q queries %s, which no service serves", p.Title, n)
					}
				}
			}
		}
	}
	walk(d.Panels)
	if queries < 10 {
		t.Errorf("dashboard has only %d queries", queries)
	}
}
