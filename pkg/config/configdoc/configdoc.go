// Package configdoc checks that a service's configuration struct and its
// table in docs/operations.md agree: every variable the service reads is
// listed with its default, and the table lists nothing else. Each service
// calls Check from a test, so the docs cannot drift from the code.
package configdoc

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
)

// Var is one environment variable of a config struct.
type Var struct {
	Name, Default string
}

// Vars lists the env-tagged fields of cfg (a struct or pointer to one),
// recursing into embedded structs, with their envDefault values.
func Vars(cfg any) []Var {
	t := reflect.TypeOf(cfg)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return vars(t)
}

func vars(typ reflect.Type) []Var {
	var out []Var
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, vars(f.Type)...)
			continue
		}
		if name := f.Tag.Get("env"); name != "" {
			out = append(out, Var{Name: name, Default: f.Tag.Get("envDefault")})
		}
	}
	return out
}

// Check compares cfg with the table between "<!-- <section>:begin -->" and
// "<!-- <section>:end -->" in the Markdown file at docPath. Table rows are
// "| `NAME` | `default` | meaning |"; an empty default is written
// "(empty)". It returns one error per disagreement.
func Check(docPath, section string, cfg any) []error {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return []error{err}
	}
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(section) + ":begin -->(.*)<!-- " + regexp.QuoteMeta(section) + ":end -->")
	m := re.FindSubmatch(doc)
	if m == nil {
		return []error{fmt.Errorf("%s has no %s section", docPath, section)}
	}
	rows := map[string]string{} // variable → default column
	for _, line := range strings.Split(string(m[1]), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`).MatchString(name) {
			rows[name] = strings.Trim(strings.TrimSpace(cells[2]), "`")
		}
	}
	var errs []error
	seen := map[string]bool{}
	for _, v := range Vars(cfg) {
		seen[v.Name] = true
		got, ok := rows[v.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s (%s) does not list %s", docPath, section, v.Name))
			continue
		}
		want := v.Default
		if want == "" {
			want = "(empty)"
		}
		if got != want {
			errs = append(errs, fmt.Errorf("%s (%s) gives %s default %q, the code %q", docPath, section, v.Name, got, want))
		}
	}
	for name := range rows {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("%s (%s) lists %s, which the service does not read", docPath, section, name))
		}
	}
	return errs
}
