package deploy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/roomcast/roomcast/pkg/observability"
	auth "github.com/roomcast/roomcast/services/auth/config"
	gateway "github.com/roomcast/roomcast/services/gateway/config"
	history "github.com/roomcast/roomcast/services/history/config"
	metrics "github.com/roomcast/roomcast/services/metrics/config"
	presence "github.com/roomcast/roomcast/services/presence/config"
	webhooks "github.com/roomcast/roomcast/services/webhooks/config"
)

// roomcastService is a Roomcast program as the deploy files run it. The name
// it is registered under is the Dockerfile's SERVICE build arg, the
// Kubernetes container name and the ECS container name.
type roomcastService struct {
	// config returns a pointer to a zero value of the service's public
	// configuration struct: its env tags are the variables the service
	// reads.
	config func() any
	// addrVar holds the listen address of the service's HTTP port, where
	// pkg/observability serves /healthz, /readyz and /metrics.
	addrVar string
	// drainVar, if set, holds the graceful-shutdown budget that the
	// orchestrator's grace period must exceed.
	drainVar string
	// servesTraffic is true for a service behind a Service or load
	// balancer: on Kubernetes it needs a preStop pause so endpoints are
	// updated before it stops accepting.
	servesTraffic bool
	// sampleSecrets are valid stand-ins for variables whose values deploy
	// files take from a secret store, so the rest of the configuration can
	// still be validated.
	sampleSecrets map[string]string
}

// services lists every service deploy/ may run. A worker service (presence,
// auth, ...) is added with one entry here; the tests then require and check
// its entries in compose.yaml, k8s and ecs.
var services = map[string]roomcastService{
	"gateway": {
		config:        func() any { return &gateway.Config{} },
		addrVar:       "GATEWAY_ADDR",
		drainVar:      "GATEWAY_DRAIN_TIMEOUT",
		servesTraffic: true,
		sampleSecrets: map[string]string{
			"ROOMCAST_SERVICE_TOKEN": "sample-service-token-0123456789",
		},
	},
	"auth": {
		config:        func() any { return &auth.Config{} },
		addrVar:       "AUTH_ADDR",
		drainVar:      "AUTH_SHUTDOWN_TIMEOUT",
		servesTraffic: true,
		sampleSecrets: map[string]string{
			"AUTH_ADMIN_TOKEN":       "sample-admin-token-0123456789",
			"AUTH_MASTER_KEY":        strings.Repeat("ab", 32),
			"ROOMCAST_SERVICE_TOKEN": "sample-service-token-0123456789",
		},
	},
	"presence": {
		config:   func() any { return &presence.Config{} },
		addrVar:  "PRESENCE_ADDR",
		drainVar: "PRESENCE_SHUTDOWN_TIMEOUT",
	},
	"history": {
		config:        func() any { return &history.Config{} },
		addrVar:       "HISTORY_ADDR",
		drainVar:      "HISTORY_SHUTDOWN_TIMEOUT",
		servesTraffic: true, // its internal read API, for gateways
		sampleSecrets: map[string]string{
			"ROOMCAST_SERVICE_TOKEN": "sample-service-token-0123456789",
		},
	},
	"metrics": {
		config:        func() any { return &metrics.Config{} },
		addrVar:       "METRICS_ADDR",
		drainVar:      "METRICS_SHUTDOWN_TIMEOUT",
		servesTraffic: true, // its usage API
		sampleSecrets: map[string]string{
			"ROOMCAST_SERVICE_TOKEN": "sample-service-token-0123456789",
		},
	},
	"webhooks": {
		config:        func() any { return &webhooks.Config{} },
		addrVar:       "WEBHOOKS_ADDR",
		drainVar:      "WEBHOOKS_SHUTDOWN_TIMEOUT",
		servesTraffic: true, // its management API
		sampleSecrets: map[string]string{
			"WEBHOOKS_MASTER_KEY":    strings.Repeat("cd", 32),
			"ROOMCAST_SERVICE_TOKEN": "sample-service-token-0123456789",
		},
	},
}

// sharedVars must have one value across every service that reads them
// (docs/operations.md: presence events go into the gateways' room logs, on
// the same Redis prefix and shards). Only values a deploy file holds are
// compared, not those from a secret store.
var sharedVars = []string{
	"ROOMCAST_REDIS_URL", "ROOMCAST_REDIS_PREFIX", "ROOMCAST_AMQP_URL", "ROOMCAST_SHARDS",
	"ROOMCAST_STREAM_SIZE", "ROOMCAST_STREAM_TTL", "ROOMCAST_META_TTL", "ROOMCAST_IDEMPOTENCY_TTL", "ROOMCAST_STREAM_RULES",
	// How API keys are verified, by gateways and webhooks alike, and the
	// credential services present to auth and history.
	"ROOMCAST_KEYS", "ROOMCAST_AUTH_URL", "ROOMCAST_SERVICE_TOKEN",
}

// The endpoints of pkg/observability, mounted by every service on addrVar.
const (
	livenessPath  = "/healthz"
	readinessPath = "/readyz"
	metricsPath   = "/metrics"
)

// repoRoot is the repository root, found from this file's location.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

func serviceNames() []string {
	var names []string
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// envVars returns the variables a service reads and their defaults, by
// reflection over the env tags of its config struct. It asks caarlos0/env
// itself, so embedded structs (pkg/config.Common), nested structs and
// envPrefix are resolved exactly as they are when the service starts.
func (s roomcastService) envVars(t testing.TB) map[string]env.FieldParams {
	t.Helper()
	params, err := env.GetFieldParams(s.config())
	if err != nil {
		t.Fatalf("env tags: %v", err)
	}
	out := make(map[string]env.FieldParams, len(params))
	for _, p := range params {
		out[p.Key] = p
	}
	return out
}

// checkEnv reports every name in vars that the service does not read. where
// says which file and object set it.
func checkEnv(t *testing.T, name string, vars []string, where string) {
	t.Helper()
	svc, ok := services[name]
	if !ok {
		t.Errorf("%s: unknown Roomcast service %q (add it to services in tests/deploy/services_test.go)", where, name)
		return
	}
	reads := svc.envVars(t)
	for _, v := range vars {
		if _, ok := reads[v]; !ok {
			t.Errorf("%s: sets %s, which service %s does not read", where, v, name)
		}
	}
}

// loadConfig loads the service's configuration from vars alone, the way the
// service does at start (defaults for the rest), and validates it if the
// config has a Validate method: values must parse, not only names exist.
// secretVars are set from a secret store whose values the files do not
// hold; they get the service's sample values.
func loadConfig(t *testing.T, name string, vars map[string]string, secretVars []string, where string) any {
	t.Helper()
	svc, ok := services[name]
	if !ok {
		return nil
	}
	all := make(map[string]string, len(vars))
	for k, v := range vars {
		all[k] = v
	}
	for _, k := range secretVars {
		if _, known := all[k]; !known {
			all[k] = svc.sampleSecrets[k]
		}
	}
	cfg := svc.config()
	if err := env.ParseWithOptions(cfg, env.Options{Environment: all}); err != nil {
		t.Errorf("%s: configuration of %s does not load: %v", where, name, err)
		return nil
	}
	if v, ok := cfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			t.Errorf("%s: configuration of %s is invalid: %v", where, name, err)
		}
	}
	return cfg
}

// listenPort is the port the service listens on given vars: the value of
// addrVar, or its default.
func listenPort(t *testing.T, name string, vars map[string]string, where string) int {
	t.Helper()
	svc := services[name]
	addr, ok := vars[svc.addrVar]
	if !ok {
		addr = svc.envVars(t)[svc.addrVar].DefaultValue
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", where, svc.addrVar, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port == 0 {
		t.Fatalf("%s: %s=%q: a deployed service needs a fixed port", where, svc.addrVar, addr)
	}
	return port
}

// drainSeconds is the service's drain budget given vars, rounded up.
func drainSeconds(t *testing.T, name string, vars map[string]string, where string) int {
	t.Helper()
	svc := services[name]
	if svc.drainVar == "" {
		return 0
	}
	v, ok := vars[svc.drainVar]
	if !ok {
		v = svc.envVars(t)[svc.drainVar].DefaultValue
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", where, svc.drainVar, v, err)
	}
	return int((d + time.Second - 1) / time.Second)
}

// TestServiceRegistry checks the registry itself: every service reads the
// variables the deploy checks rely on, and the health paths the probes use
// are the ones pkg/observability serves.
func TestServiceRegistry(t *testing.T) {
	for _, name := range serviceNames() {
		svc := services[name]
		reads := svc.envVars(t)
		if len(reads) == 0 {
			t.Errorf("%s: config struct has no env tags", name)
		}
		for _, v := range []string{svc.addrVar, svc.drainVar} {
			if _, ok := reads[v]; v != "" && !ok {
				t.Errorf("%s: registry names %s, which the service does not read", name, v)
			}
		}
		for v := range svc.sampleSecrets {
			if _, ok := reads[v]; !ok {
				t.Errorf("%s: sample secret %s is not read by the service", name, v)
			}
		}
	}
	for _, v := range sharedVars {
		readers := 0
		for _, name := range serviceNames() {
			if _, ok := services[name].envVars(t)[v]; ok {
				readers++
			}
		}
		if readers == 0 {
			t.Errorf("sharedVars: no service reads %s", v)
		}
	}

	mux := http.NewServeMux()
	observability.Mount(mux, observability.NewRegistry())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, p := range []string{livenessPath, readinessPath, metricsPath} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("pkg/observability: GET %s = %d, want 200", p, resp.StatusCode)
		}
	}
}

// instance is one running Roomcast service of a deployment, for
// checkShared: its registry name, the values the deploy file gives it, and
// the variables whose values come from a secret store (not compared).
type instance struct {
	service string
	values  map[string]string
	secret  []string
}

// checkShared wants every sharedVars variable to have one effective value
// (set, or the default) across the services of one deployment.
func checkShared(t *testing.T, instances []instance, where string) {
	t.Helper()
	for _, v := range sharedVars {
		seen := map[string][]string{}
		for _, in := range instances {
			params, reads := services[in.service].envVars(t)[v]
			if !reads || slices.Contains(in.secret, v) {
				continue
			}
			val, ok := in.values[v]
			if !ok {
				val = params.DefaultValue
			}
			seen[val] = append(seen[val], in.service)
		}
		if len(seen) > 1 {
			t.Errorf("%s: %s differs between services: %v", where, v, seen)
		}
	}
}
