package deploy

import (
	"bufio"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// dockerfile is deploy/Dockerfile cut into what the checks need.
type dockerfile struct {
	globalArgs map[string]string // ARG defaults before the first FROM
	stages     [][]string        // instruction lines of each stage, FROM first
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{globalArgs: map[string]string{}}
	// Join continuation lines, drop comments.
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	for _, l := range lines {
		instr := strings.ToUpper(strings.Fields(l)[0])
		switch {
		case instr == "FROM":
			d.stages = append(d.stages, []string{l})
		case len(d.stages) == 0 && instr == "ARG":
			name, def, _ := strings.Cut(strings.Fields(l)[1], "=")
			d.globalArgs[name] = def
		case len(d.stages) > 0:
			d.stages[len(d.stages)-1] = append(d.stages[len(d.stages)-1], l)
		}
	}
	return d
}

// TestDockerfile checks what the images promise: a static binary with the
// version stamped in, on distroless/static or scratch, as a non-root user,
// with the healthcheck binary the compose and ECS health checks run.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	if len(d.stages) < 2 {
		t.Fatalf("deploy/Dockerfile: %d stages, want a build stage and a runtime stage", len(d.stages))
	}
	build := strings.Join(d.stages[0], "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-X main.version=${VERSION}", "-o /out/app", "-o /out/healthcheck"} {
		if !strings.Contains(build, want) {
			t.Errorf("deploy/Dockerfile build stage: no %q", want)
		}
	}

	final := d.stages[len(d.stages)-1]
	base := strings.Fields(final[0])[1]
	if m := regexp.MustCompile(`^\$\{?(\w+)\}?$`).FindStringSubmatch(base); m != nil {
		base = d.globalArgs[m[1]]
	}
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("deploy/Dockerfile runtime image %q, want gcr.io/distroless/static* or scratch", base)
	}
	var user, entrypoint string
	copies := map[string]bool{}
	for _, l := range final[1:] {
		f := strings.Fields(l)
		switch strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(strings.TrimPrefix(l, f[0]))
		case "COPY":
			copies[f[len(f)-1]] = true
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("deploy/Dockerfile: USER %q, want a numeric non-root uid (Kubernetes checks runAsNonRoot against it)", user)
	}
	if entrypoint != `["/usr/local/bin/app"]` {
		t.Errorf("deploy/Dockerfile: ENTRYPOINT %s, want [\"/usr/local/bin/app\"]", entrypoint)
	}
	for _, p := range []string{"/usr/local/bin/app", "/usr/local/bin/healthcheck"} {
		if !copies[p] {
			t.Errorf("deploy/Dockerfile: the runtime stage does not copy %s", p)
		}
	}
}

// TestImagesStampVersion wants every program the Dockerfile builds to
// declare main.version: -ldflags -X on a missing variable is silently
// ignored.
func TestImagesStampVersion(t *testing.T) {
	root := repoRoot(t)
	for _, name := range append(serviceNames(), "roomcast") {
		dir, err := mainPackageDir(root, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !declaresStringVar(t, filepath.Join(root, dir), "version") {
			t.Errorf("%s: package main declares no string variable version for -X main.version", dir)
		}
	}
}

func declaresStringVar(t *testing.T, dir, name string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name != name {
						continue
					}
					if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
						return true
					}
					if vs.Type == nil && i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// TestDockerignoreKeepsWorkspace wants every go.work module in the build
// context: the build resolves the whole workspace.
func TestDockerignoreKeepsWorkspace(t *testing.T) {
	root := repoRoot(t)
	ignore, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	uses := regexp.MustCompile(`(?m)^\s*(\./[^\s)]*)`).FindAllStringSubmatch(string(work), -1)
	if len(uses) == 0 {
		t.Fatal("go.work: no use directives found")
	}
	for _, pat := range strings.Split(string(ignore), "\n") {
		pat = strings.TrimSpace(pat)
		if pat == "" || strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "!") {
			continue
		}
		for _, u := range uses {
			dir := strings.TrimPrefix(u[1], "./")
			if ok, _ := filepath.Match(pat, dir); ok || dir == pat || strings.HasPrefix(dir, pat+"/") || pat == "go.work" {
				t.Errorf("deploy/Dockerfile.dockerignore: %q drops %s, which go.work needs", pat, u[1])
			}
		}
	}
}

// TestHealthcheckBinary builds deploy/healthcheck the way the Dockerfile
// does and runs it: 2xx is healthy, anything else or no answer is not.
func TestHealthcheckBinary(t *testing.T) {
	src := filepath.Join(repoRoot(t), "deploy", "healthcheck", "main.go")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := format.Source(b); err != nil || string(f) != string(b) {
		t.Errorf("deploy/healthcheck/main.go is not gofmt-formatted (%v)", err)
	}
	bin := filepath.Join(t.TempDir(), "healthcheck")
	for _, args := range [][]string{{"vet", "main.go"}, {"build", "-o", bin, "main.go"}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = filepath.Dir(src)
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s deploy/healthcheck: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != readinessPath {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	run := func(url string) int {
		err := exec.Command(bin, url).Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := run(srv.URL + readinessPath); code != 0 {
		t.Errorf("healthy endpoint: exit %d, want 0", code)
	}
	status.Store(http.StatusServiceUnavailable)
	if code := run(srv.URL + readinessPath); code != 1 {
		t.Errorf("503: exit %d, want 1", code)
	}
	if code := run(srv.URL + "/nope"); code != 1 {
		t.Errorf("404: exit %d, want 1", code)
	}
	srv.Close()
	if code := run(srv.URL + readinessPath); code != 1 {
		t.Errorf("nothing listening: exit %d, want 1", code)
	}
}
