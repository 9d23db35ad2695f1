package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	aas "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
)

// ecsFileKinds maps a deploy/ecs file name suffix to the AWS SDK input type
// its JSON is for (what `aws <service> <operation> --cli-input-json` takes),
// and whether the API spells its members camelCase (ECS) or PascalCase (ELB,
// Application Auto Scaling).
var ecsFileKinds = []struct {
	suffix string
	newObj func() any
	camel  bool
}{
	{"-task-definition.json", func() any { return &ecs.RegisterTaskDefinitionInput{} }, true},
	{"-service.json", func() any { return &ecs.CreateServiceInput{} }, true},
	{"-target-group.json", func() any { return &elbv2.CreateTargetGroupInput{} }, false},
	{"-target-group-attributes.json", func() any { return &elbv2.ModifyTargetGroupAttributesInput{} }, false},
	{"-scalable-target.json", func() any { return &aas.RegisterScalableTargetInput{} }, false},
	{"-scaling-policy.json", func() any { return &aas.PutScalingPolicyInput{} }, false},
}

type ecsFiles struct {
	taskDefs      map[string]*ecs.RegisterTaskDefinitionInput // by family
	services      map[string]*ecs.CreateServiceInput          // by file
	targetGroups  map[string]*elbv2.CreateTargetGroupInput    // by name
	tgAttributes  map[string]*elbv2.ModifyTargetGroupAttributesInput
	targets       map[string]*aas.RegisterScalableTargetInput // by resource id
	policies      map[string]*aas.PutScalingPolicyInput       // by file
	taskDefByFile map[string]string
}

// loadECS decodes every JSON file of deploy/ecs strictly into its SDK type.
func loadECS(t *testing.T) *ecsFiles {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy", "ecs")
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("deploy/ecs: no JSON files (%v)", err)
	}
	f := &ecsFiles{
		taskDefs:      map[string]*ecs.RegisterTaskDefinitionInput{},
		services:      map[string]*ecs.CreateServiceInput{},
		targetGroups:  map[string]*elbv2.CreateTargetGroupInput{},
		tgAttributes:  map[string]*elbv2.ModifyTargetGroupAttributesInput{},
		targets:       map[string]*aas.RegisterScalableTargetInput{},
		policies:      map[string]*aas.PutScalingPolicyInput{},
		taskDefByFile: map[string]string{},
	}
	for _, p := range paths {
		name := "deploy/ecs/" + filepath.Base(p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var obj any
		camel := false
		for _, k := range ecsFileKinds {
			if strings.HasSuffix(p, k.suffix) {
				obj, camel = k.newObj(), k.camel
				break
			}
		}
		if obj == nil {
			t.Errorf("%s: unknown kind of file (name it *-task-definition.json, *-service.json, ... see ecsFileKinds)", name)
			continue
		}
		if err := decodeStrictJSON(b, obj, camel); err != nil {
			t.Errorf("%s: does not decode strictly into %T: %v", name, obj, err)
			continue
		}
		switch o := obj.(type) {
		case *ecs.RegisterTaskDefinitionInput:
			f.taskDefs[deref(o.Family)] = o
			f.taskDefByFile[name] = deref(o.Family)
		case *ecs.CreateServiceInput:
			f.services[name] = o
		case *elbv2.CreateTargetGroupInput:
			f.targetGroups[deref(o.Name)] = o
		case *elbv2.ModifyTargetGroupAttributesInput:
			f.tgAttributes[name] = o
		case *aas.RegisterScalableTargetInput:
			f.targets[deref(o.ResourceId)] = o
		case *aas.PutScalingPolicyInput:
			f.policies[name] = o
		}
	}
	return f
}

// decodeStrictJSON decodes b into obj rejecting unknown members, trailing
// data, and members spelt in another case than the API's (encoding/json
// alone matches names case-insensitively; the AWS CLI does not).
func decodeStrictJSON(b []byte, obj any, camel bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON object")
	}
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	return checkKeyCase(raw, reflect.TypeOf(obj), camel, "$")
}

func checkKeyCase(v any, typ reflect.Type, camel bool, path string) error {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // the decoder already reported a type mismatch
		}
		for key, val := range m {
			var field *reflect.StructField
			for i := range typ.NumField() {
				f := typ.Field(i)
				if f.IsExported() && strings.EqualFold(f.Name, key) {
					field = &f
				}
			}
			if field == nil {
				return fmt.Errorf("%s.%s: unknown member", path, key)
			}
			want := field.Name
			if camel {
				r, n := utf8.DecodeRuneInString(want)
				want = string(unicode.ToLower(r)) + want[n:]
			}
			if key != want {
				return fmt.Errorf("%s.%s: the API spells it %q", path, key, want)
			}
			if err := checkKeyCase(val, field.Type, camel, path+"."+key); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if s, ok := v.([]any); ok {
			for i, e := range s {
				if err := checkKeyCase(e, typ.Elem(), camel, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for k, e := range m {
				if err := checkKeyCase(e, typ.Elem(), camel, path+"."+k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func TestECSDecodesStrictly(t *testing.T) {
	f := loadECS(t)
	if len(f.taskDefs) == 0 || len(f.services) == 0 {
		t.Fatal("deploy/ecs: no task definition or no service definition")
	}
}

// TestECSTaskDefinitions checks every container: a known service, variables
// it reads with values that load, secrets from SSM or Secrets Manager, its
// port, a health check of its liveness endpoint, and a stop timeout that
// covers the drain.
func TestECSTaskDefinitions(t *testing.T) {
	f := loadECS(t)
	seen := map[string]bool{}
	var instances []instance
	for family, td := range f.taskDefs {
		where := "deploy/ecs task definition " + family
		if !slices.Contains(td.RequiresCompatibilities, ecstypes.CompatibilityFargate) || td.NetworkMode != ecstypes.NetworkModeAwsvpc {
			t.Errorf("%s: want FARGATE with awsvpc networking", where)
		}
		if td.Cpu == nil || td.Memory == nil || td.ExecutionRoleArn == nil {
			t.Errorf("%s: Fargate needs cpu, memory and an execution role (to read secrets)", where)
		}
		for _, c := range td.ContainerDefinitions {
			name := deref(c.Name)
			cwhere := where + " container " + name
			if _, ok := services[name]; !ok {
				t.Errorf("%s: container name is no Roomcast service (add it to services in tests/deploy/services_test.go)", cwhere)
				continue
			}
			seen[name] = true
			var names, secret []string
			values := map[string]string{}
			for _, kv := range c.Environment {
				names = append(names, deref(kv.Name))
				values[deref(kv.Name)] = deref(kv.Value)
			}
			for _, s := range c.Secrets {
				names = append(names, deref(s.Name))
				secret = append(secret, deref(s.Name))
				if from := deref(s.ValueFrom); !strings.HasPrefix(from, "arn:aws:ssm:") && !strings.HasPrefix(from, "arn:aws:secretsmanager:") {
					t.Errorf("%s: secret %s from %q, want an SSM parameter or Secrets Manager ARN", cwhere, deref(s.Name), from)
				}
			}
			checkEnv(t, name, names, cwhere)
			loadConfig(t, name, values, secret, cwhere)
			instances = append(instances, instance{service: name, values: values, secret: secret})
			if u := deref(c.User); u == "0" || u == "root" || strings.HasPrefix(u, "0:") {
				t.Errorf("%s: runs as root", cwhere)
			}

			port := listenPort(t, name, values, cwhere)
			if !slices.ContainsFunc(c.PortMappings, func(pm ecstypes.PortMapping) bool { return int(deref(pm.ContainerPort)) == port }) {
				t.Errorf("%s: %s listens on %d, which has no port mapping", cwhere, services[name].addrVar, port)
			}
			// ECS replaces a task whose container is unhealthy: that is a
			// liveness check, so not /readyz (a Redis outage must not
			// restart every gateway).
			if hc := c.HealthCheck; hc == nil || len(hc.Command) != 3 || hc.Command[0] != "CMD" || hc.Command[1] != "/usr/local/bin/healthcheck" {
				t.Errorf("%s: healthCheck %+v, want [CMD /usr/local/bin/healthcheck http://127.0.0.1:%d%s]", cwhere, hc, port, livenessPath)
			} else {
				checkProbeURL(t, hc.Command[2], port, []string{livenessPath}, cwhere+" healthCheck")
			}
			if drain := drainSeconds(t, name, values, cwhere); drain > 0 {
				if st := int(deref(c.StopTimeout)); st <= drain || st > 120 {
					t.Errorf("%s: stopTimeout %d must exceed %s (%ds) and be at most 120 (Fargate's limit)", cwhere, st, services[name].drainVar, drain)
				}
			}
		}
	}
	for _, name := range serviceNames() {
		if !seen[name] {
			t.Errorf("deploy/ecs: no task definition runs %s", name)
		}
	}
	checkShared(t, instances, "deploy/ecs")
}

// TestECSServices follows each service to its task definition, load
// balancer target group and autoscaling.
func TestECSServices(t *testing.T) {
	f := loadECS(t)
	covered := map[string]bool{}
	for file, s := range f.services {
		where := file
		td, ok := f.taskDefs[deref(s.TaskDefinition)]
		if !ok {
			t.Errorf("%s: taskDefinition %q is no family in deploy/ecs", where, deref(s.TaskDefinition))
			continue
		}
		for _, c := range td.ContainerDefinitions {
			covered[deref(c.Name)] = true
		}
		if s.LaunchType != ecstypes.LaunchTypeFargate {
			t.Errorf("%s: launchType %q, want FARGATE", where, s.LaunchType)
		}
		if dc := s.DeploymentConfiguration; dc == nil || deref(dc.MinimumHealthyPercent) < 100 {
			t.Errorf("%s: deploymentConfiguration.minimumHealthyPercent below 100 would stop old tasks before new ones serve", where)
		}
		if sc := s.ServiceConnectConfiguration; sc != nil {
			for _, scs := range sc.Services {
				if !slices.ContainsFunc(td.ContainerDefinitions, func(c ecstypes.ContainerDefinition) bool {
					return slices.ContainsFunc(c.PortMappings, func(pm ecstypes.PortMapping) bool { return deref(pm.Name) == deref(scs.PortName) })
				}) {
					t.Errorf("%s: Service Connect port %q is no named port mapping of %s", where, deref(scs.PortName), deref(td.Family))
				}
			}
		}
		for _, lb := range s.LoadBalancers {
			var ctr *ecstypes.ContainerDefinition
			for i, c := range td.ContainerDefinitions {
				if deref(c.Name) == deref(lb.ContainerName) {
					ctr = &td.ContainerDefinitions[i]
				}
			}
			if ctr == nil {
				t.Errorf("%s: load balancer container %q is not in %s", where, deref(lb.ContainerName), deref(td.Family))
				continue
			}
			if !slices.ContainsFunc(ctr.PortMappings, func(pm ecstypes.PortMapping) bool { return deref(pm.ContainerPort) == deref(lb.ContainerPort) }) {
				t.Errorf("%s: load balancer port %d is not mapped by container %s", where, deref(lb.ContainerPort), deref(ctr.Name))
			}
			// arn:...:targetgroup/<name>/<id>
			arn := deref(lb.TargetGroupArn)
			_, rest, _ := strings.Cut(arn, ":targetgroup/")
			tgName, _, _ := strings.Cut(rest, "/")
			tg, ok := f.targetGroups[tgName]
			if !ok {
				t.Errorf("%s: target group %q (from %s) has no deploy/ecs/*-target-group.json", where, tgName, arn)
				continue
			}
			if deref(tg.HealthCheckPath) != readinessPath {
				t.Errorf("target group %s: HealthCheckPath %q, want %s (a draining gateway leaves the balancer)", tgName, deref(tg.HealthCheckPath), readinessPath)
			}
			if deref(tg.Port) != deref(lb.ContainerPort) || (deref(tg.HealthCheckPort) != "traffic-port" && deref(tg.HealthCheckPort) != itoa(int(deref(lb.ContainerPort)))) {
				t.Errorf("target group %s: port %d / health check port %q, want the container port %d", tgName, deref(tg.Port), deref(tg.HealthCheckPort), deref(lb.ContainerPort))
			}
			if tg.TargetType != "ip" {
				t.Errorf("target group %s: TargetType %q, want ip (Fargate tasks are registered by IP)", tgName, tg.TargetType)
			}
		}

		id := "service/" + deref(s.Cluster) + "/" + deref(s.ServiceName)
		st, ok := f.targets[id]
		if !ok {
			t.Errorf("%s: no deploy/ecs/*-scalable-target.json for %s", where, id)
			continue
		}
		if st.ServiceNamespace != "ecs" || st.ScalableDimension != "ecs:service:DesiredCount" || deref(st.MinCapacity) < 2 {
			t.Errorf("scalable target %s: %s %s min %d, want ecs ecs:service:DesiredCount and at least 2 tasks", id, st.ServiceNamespace, st.ScalableDimension, deref(st.MinCapacity))
		}
		policies := 0
		for pf, p := range f.policies {
			if deref(p.ResourceId) == id {
				policies++
				if p.ServiceNamespace != st.ServiceNamespace || p.ScalableDimension != st.ScalableDimension {
					t.Errorf("%s: namespace or dimension differ from the scalable target's", pf)
				}
			}
		}
		if policies == 0 {
			t.Errorf("%s: no scaling policy for %s", where, id)
		}
	}
	for pf, p := range f.policies {
		if _, ok := f.targets[deref(p.ResourceId)]; !ok {
			t.Errorf("%s: resource %s has no scalable target", pf, deref(p.ResourceId))
		}
	}
	for _, name := range serviceNames() {
		if !covered[name] {
			t.Errorf("deploy/ecs: no service definition runs %s", name)
		}
	}
}
