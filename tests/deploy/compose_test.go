package deploy

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads deploy/compose.yaml as `docker compose` would, with
// every profile enabled and no variables from this process's environment, so
// the defaults written in the file are what is checked.
func loadCompose(t *testing.T) (*types.Project, string) {
	t.Helper()
	root := repoRoot(t)
	dir := filepath.Join(root, "deploy")
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("roomcast", true)
		o.Profiles = []string{"*"}
	})
	if err != nil {
		t.Fatalf("deploy/compose.yaml: %v", err)
	}
	return p, root
}

// composeRoomcastService is the registry name of a compose service built
// from deploy/Dockerfile (its SERVICE build arg), or "" for a third-party
// image.
func composeRoomcastService(t *testing.T, root string, s types.ServiceConfig) string {
	t.Helper()
	if s.Build != nil {
		ctx := s.Build.Context
		if !filepath.IsAbs(ctx) {
			ctx = filepath.Join(root, "deploy", ctx)
		}
		df := filepath.Join(ctx, s.Build.Dockerfile)
		if rel, err := filepath.Rel(root, df); err == nil && rel == filepath.Join("deploy", "Dockerfile") {
			arg := s.Build.Args["SERVICE"]
			if arg == nil || *arg == "" {
				t.Errorf("compose service %s: built from deploy/Dockerfile without a SERVICE build arg", s.Name)
				return ""
			}
			return *arg
		}
	}
	if strings.HasPrefix(s.Image, "roomcast/") {
		t.Errorf("compose service %s: image %s is a Roomcast image but the service does not build it from deploy/Dockerfile", s.Name, s.Image)
	}
	return ""
}

func TestComposeBuilds(t *testing.T) {
	p, root := loadCompose(t)
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("compose service %s: mounts %s: %v", s.Name, v.Source, err)
			}
		}
		if s.Build == nil {
			if s.Image == "" {
				t.Errorf("compose service %s: neither image nor build", s.Name)
			}
			continue
		}
		ctx := s.Build.Context
		if !filepath.IsAbs(ctx) {
			ctx = filepath.Join(root, "deploy", ctx)
		}
		if fi, err := os.Stat(ctx); err != nil || !fi.IsDir() {
			t.Errorf("compose service %s: build context %s is not a directory (%v)", s.Name, ctx, err)
			continue
		}
		if _, err := os.Stat(filepath.Join(ctx, "go.work")); err != nil {
			t.Errorf("compose service %s: build context %s is not the repository root (the Dockerfile needs go.work)", s.Name, ctx)
		}
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
			t.Errorf("compose service %s: Dockerfile: %v", s.Name, err)
		}
		name := composeRoomcastService(t, root, s)
		if name == "" {
			continue
		}
		if _, err := mainPackageDir(root, name); err != nil {
			t.Errorf("compose service %s: SERVICE=%s: %v", s.Name, name, err)
		}
		if want := "roomcast/" + name + ":"; !strings.HasPrefix(s.Image, want) {
			t.Errorf("compose service %s: image %q, want %s<version>", s.Name, s.Image, want)
		}
	}
}

// TestComposeEnvironment checks every variable set on a Roomcast service
// against the variables its configuration reads, and that the values load.
func TestComposeEnvironment(t *testing.T) {
	p, root := loadCompose(t)
	seen := map[string]int{}
	var instances []instance
	for _, s := range p.Services {
		name := composeRoomcastService(t, root, s)
		if name == "" {
			continue
		}
		where := "deploy/compose.yaml service " + s.Name
		vars := map[string]string{}
		var names []string
		for k, v := range s.Environment {
			names = append(names, k)
			if v != nil {
				vars[k] = *v
			}
		}
		if _, ok := services[name]; !ok {
			// A program without a config struct (the roomcast CLI) takes
			// flags; nothing could check variables set on it.
			if len(names) > 0 {
				t.Errorf("%s: sets %v on %s, which has no registered configuration", where, names, name)
			}
			continue
		}
		seen[name]++
		checkEnv(t, name, names, where)
		loadConfig(t, name, vars, nil, where)
		instances = append(instances, instance{service: name, values: vars})

		port := listenPort(t, name, vars, where)
		checkComposeHealthcheck(t, s, port, where)
		if drain := drainSeconds(t, name, vars, where); drain > 0 {
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= time.Duration(drain)*time.Second {
				t.Errorf("%s: stop_grace_period %v must exceed %s (%ds)", where, s.StopGracePeriod, services[name].drainVar, drain)
			}
		}
	}
	for _, name := range serviceNames() {
		if seen[name] == 0 {
			t.Errorf("deploy/compose.yaml runs no %s", name)
		}
	}
	checkShared(t, instances, "deploy/compose.yaml")
	if seen["gateway"] < 2 {
		t.Errorf("deploy/compose.yaml runs %d gateways, want 2 behind the proxy", seen["gateway"])
	}
}

// checkComposeHealthcheck wants the service's healthcheck to run the
// image's healthcheck binary against its own health or readiness endpoint.
func checkComposeHealthcheck(t *testing.T, s types.ServiceConfig, port int, where string) {
	t.Helper()
	hc := s.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[1] != "/usr/local/bin/healthcheck" {
		t.Errorf("%s: healthcheck %v, want [CMD /usr/local/bin/healthcheck http://127.0.0.1:<port>%s]", where, hc, readinessPath)
		return
	}
	checkProbeURL(t, hc.Test[2], port, []string{livenessPath, readinessPath}, where)
}

// checkProbeURL wants u to be a loopback HTTP URL on port with one of paths.
func checkProbeURL(t *testing.T, u string, port int, paths []string, where string) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Errorf("%s: health URL %q: %v", where, u, err)
		return
	}
	if pu.Scheme != "http" || pu.Hostname() != "127.0.0.1" || pu.Port() != itoa(port) {
		t.Errorf("%s: health URL %q, want http://127.0.0.1:%d/...", where, u, port)
	}
	for _, p := range paths {
		if pu.Path == p {
			return
		}
	}
	t.Errorf("%s: health URL %q: path %q is none of %v", where, u, pu.Path, paths)
}

// TestComposeDependencies wants every long-running service to have a health
// check and every dependency to carry a condition that can be met.
func TestComposeDependencies(t *testing.T) {
	p, _ := loadCompose(t)
	for _, s := range p.Services {
		oneShot := s.Restart == "no" || len(s.Profiles) > 0
		if !oneShot && s.HealthCheck == nil {
			t.Errorf("compose service %s: no healthcheck", s.Name)
		}
		for dep, d := range s.DependsOn {
			ds, ok := p.Services[dep]
			if !ok {
				t.Errorf("compose service %s: depends on unknown service %s", s.Name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if ds.HealthCheck == nil || ds.HealthCheck.Disable {
					t.Errorf("compose service %s: waits for %s to be healthy, which has no healthcheck", s.Name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
			default:
				t.Errorf("compose service %s: depends on %s with condition %q, want service_healthy or service_completed_successfully", s.Name, dep, d.Condition)
			}
		}
	}
}

// TestComposeProxy checks deploy/Caddyfile against the compose file: it is
// mounted into the proxy, which publishes one port; every upstream is a
// Roomcast service on its port, checked on its readiness endpoint; every
// gateway is an upstream.
func TestComposeProxy(t *testing.T) {
	p, root := loadCompose(t)
	proxy, ok := p.Services["proxy"]
	if !ok {
		t.Fatal("deploy/compose.yaml has no proxy service")
	}
	mounted := false
	for _, v := range proxy.Volumes {
		if v.Source == filepath.Join(root, "deploy", "Caddyfile") && v.Target == "/etc/caddy/Caddyfile" {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("proxy: deploy/Caddyfile is not mounted at /etc/caddy/Caddyfile (volumes %+v)", proxy.Volumes)
	}
	if len(proxy.Ports) != 1 {
		t.Errorf("proxy: publishes %d ports, want 1 (WebSocket and REST on one port)", len(proxy.Ports))
	}

	// Upstream "name:port" → the compose service it must reach.
	want := map[string]string{}
	for _, s := range p.Services {
		name := composeRoomcastService(t, root, s)
		if _, ok := services[name]; !ok {
			continue
		}
		vars := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				vars[k] = *v
			}
		}
		want[s.Name+":"+itoa(listenPort(t, name, vars, s.Name))] = name
	}

	b, err := os.ReadFile(filepath.Join(root, "deploy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile(`(?m)^\s*reverse_proxy\s+([^{\n]+)\{([^}]*)\}`).FindAllStringSubmatch(string(b), -1)
	if len(blocks) == 0 {
		t.Fatal("deploy/Caddyfile: no reverse_proxy block with upstreams")
	}
	proxied := map[string]bool{}
	for _, m := range blocks {
		if !regexp.MustCompile(`(?m)^\s*health_uri\s+` + regexp.QuoteMeta(readinessPath) + `\s*$`).MatchString(m[2]) {
			t.Errorf("deploy/Caddyfile: reverse_proxy %s: want health_uri %s, so a draining or unready instance gets no requests", strings.TrimSpace(m[1]), readinessPath)
		}
		for _, u := range strings.Fields(m[1]) {
			if _, ok := want[u]; !ok {
				t.Errorf("deploy/Caddyfile: upstream %s is no Roomcast service of deploy/compose.yaml on its port (%v)", u, want)
				continue
			}
			proxied[u] = true
			host, _, _ := strings.Cut(u, ":")
			if d, ok := proxy.DependsOn[host]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("proxy: does not wait for %s to be healthy", host)
			}
		}
	}
	for u, name := range want {
		if name == "gateway" && !proxied[u] {
			t.Errorf("deploy/Caddyfile: gateway %s is not behind the proxy", u)
		}
	}
}

// TestComposeDevKey wants the development credentials the services accept
// to be the ones printed in the logs: the API key of the gateways and the
// admin token of the auth service.
func TestComposeDevKey(t *testing.T) {
	p, root := loadCompose(t)
	// banner variable → service and the variable it must equal.
	printedAs := map[string]struct{ service, variable, line string }{
		"DEV_KEY":     {"gateway", "ROOMCAST_KEYS", `Dev key:\s+\$DEV_KEY\b`},
		"ADMIN_TOKEN": {"auth", "AUTH_ADMIN_TOKEN", `Bearer \$ADMIN_TOKEN\b`},
	}
	var banner *types.ServiceConfig
	for _, s := range p.Services {
		if strings.Contains(strings.Join(s.Command, " "), "Dev key:") {
			banner = &s
		}
	}
	if banner == nil {
		t.Fatal("deploy/compose.yaml: no service prints the dev key")
	}
	for bv, src := range printedAs {
		printed := ""
		if v := banner.Environment[bv]; v != nil {
			printed = *v
		}
		if !regexp.MustCompile(src.line).MatchString(strings.Join(banner.Command, " ")) {
			t.Errorf("compose service %s prints no line matching %s", banner.Name, src.line)
		}
		found := false
		for _, s := range p.Services {
			if composeRoomcastService(t, root, s) != src.service {
				continue
			}
			found = true
			v := s.Environment[src.variable]
			if v == nil || *v == "" {
				t.Errorf("compose service %s: no %s", s.Name, src.variable)
			} else if *v != printed {
				t.Errorf("compose service %s prints %s=%q, but %s has %s=%q", banner.Name, bv, printed, s.Name, src.variable, *v)
			}
		}
		if !found {
			t.Errorf("deploy/compose.yaml: no %s service for the printed %s", src.service, bv)
		}
	}
}
