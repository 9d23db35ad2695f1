package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// envVar is one environment variable of a config struct.
type envVar struct {
	Name, Default string
}

// envVars lists the env-tagged fields of typ (recursing into embedded
// structs) with their defaults.
func envVars(typ reflect.Type) []envVar {
	var out []envVar
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, envVars(f.Type)...)
			continue
		}
		if name := f.Tag.Get("env"); name != "" {
			out = append(out, envVar{Name: name, Default: f.Tag.Get("envDefault")})
		}
	}
	return out
}

// TestOperationsDocListsEveryVariable keeps docs/operations.md true: every
// variable the gateway reads appears in its table with its default, and
// the table lists no variable the gateway does not read.
func TestOperationsDocListsEveryVariable(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // variable → default column
	section := regexp.MustCompile("(?s)<!-- gateway-env:begin -->(.*)<!-- gateway-env:end -->").FindSubmatch(doc)
	if section == nil {
		t.Fatal("docs/operations.md has no gateway-env section")
	}
	for _, line := range strings.Split(string(section[1]), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if strings.HasPrefix(name, "ROOMCAST_") || strings.HasPrefix(name, "GATEWAY_") {
			rows[name] = strings.Trim(strings.TrimSpace(cells[2]), "`")
		}
	}
	vars := envVars(reflect.TypeOf(Config{}))
	seen := map[string]bool{}
	for _, v := range vars {
		seen[v.Name] = true
		got, ok := rows[v.Name]
		if !ok {
			t.Errorf("docs/operations.md does not list %s", v.Name)
			continue
		}
		want := v.Default
		if want == "" {
			want = "(empty)"
		}
		if got != want {
			t.Errorf("docs/operations.md gives %s default %q, the code %q", v.Name, got, want)
		}
	}
	for name := range rows {
		if !seen[name] {
			t.Errorf("docs/operations.md lists %s, which the gateway does not read", name)
		}
	}
}
