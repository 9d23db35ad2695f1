package deploy

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomizations are the directories under deploy/k8s that can be applied.
var kustomizations = []string{"base", "overlays/production"}

// k8sKinds are the kinds deploy/k8s may contain, keyed by apiVersion and
// kind; anything else fails the test, so a new kind is checked on purpose.
var k8sKinds = map[string]func() any{
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
}

// rendered is one kustomization's output, decoded.
type rendered struct {
	dir         string
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	services    map[string]*corev1.Service
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	ingresses   []*networkingv1.Ingress
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	all         []metav1.Object
	instances   []instance // filled by checkContainer
}

// render runs kustomize (the Go library kubectl uses) on deploy/k8s/<dir>
// and decodes every object strictly into its Kubernetes API type: an
// unknown or misspelt field, a wrong type or an unknown kind fails.
func render(t *testing.T, dir string) *rendered {
	t.Helper()
	path := filepath.Join(repoRoot(t), "deploy", "k8s", dir)
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), path)
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s/%s: %v", dir, err)
	}
	r := &rendered{
		dir:         dir,
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		services:    map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{},
		jobs:        map[string]*batchv1.Job{},
	}
	for _, res := range m.Resources() {
		key := res.GetApiVersion() + "/" + res.GetKind()
		where := fmt.Sprintf("deploy/k8s/%s: %s %s", dir, key, res.GetName())
		newObj, ok := k8sKinds[key]
		if !ok {
			t.Errorf("%s: kind not known to this test (add it to k8sKinds)", where)
			continue
		}
		b, err := res.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			t.Errorf("%s: does not decode strictly into %T: %v", where, obj, err)
			continue
		}
		r.all = append(r.all, obj.(metav1.Object))
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *corev1.Service:
			r.services[o.Name] = o
		case *appsv1.Deployment:
			r.deployments[o.Name] = o
		case *batchv1.Job:
			r.jobs[o.Name] = o
		case *networkingv1.Ingress:
			r.ingresses = append(r.ingresses, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.hpas = append(r.hpas, o)
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, o)
		}
	}
	return r
}

func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	for _, dir := range kustomizations {
		r := render(t, dir)
		if len(r.all) == 0 {
			t.Errorf("deploy/k8s/%s renders nothing", dir)
		}
		if dir == "overlays/production" {
			for _, o := range r.all {
				if _, isNS := o.(*corev1.Namespace); !isNS && o.GetNamespace() != "roomcast" {
					t.Errorf("deploy/k8s/%s: %T %s in namespace %q, want roomcast", dir, o, o.GetName(), o.GetNamespace())
				}
			}
			for name := range r.secrets {
				t.Errorf("deploy/k8s/%s: ships Secret %s; production provides its own", dir, name)
			}
		}
	}
}

// containerEnv collects what a container's environment sets: the names,
// and the values that are known from the render (literal values, ConfigMaps
// and Secrets in the render). References that cannot be resolved are errors,
// except secretKeyRef to a Secret managed outside the render (production).
func (r *rendered) containerEnv(t *testing.T, c corev1.Container, where string) (names []string, values map[string]string, secret []string) {
	t.Helper()
	values = map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := r.configMaps[from.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: envFrom ConfigMap %s is not in the render", where, from.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				names = append(names, from.Prefix+k)
				values[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			// Secrets from outside the render would hide their keys from
			// this check: name each secret variable in env instead.
			s, ok := r.secrets[from.SecretRef.Name]
			if !ok {
				t.Errorf("%s: envFrom Secret %s is not in the render; use env with secretKeyRef so the variable names can be checked", where, from.SecretRef.Name)
				continue
			}
			for k, v := range secretData(s) {
				names = append(names, from.Prefix+k)
				values[from.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		names = append(names, e.Name)
		switch {
		case e.ValueFrom == nil:
			values[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := r.configMaps[ref.Name]
			if !ok {
				t.Errorf("%s: %s: ConfigMap %s is not in the render", where, e.Name, ref.Name)
			} else if v, ok := cm.Data[ref.Key]; !ok {
				t.Errorf("%s: %s: ConfigMap %s has no key %s", where, e.Name, ref.Name, ref.Key)
			} else {
				values[e.Name] = v
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if s, ok := r.secrets[ref.Name]; ok {
				if v, ok := secretData(s)[ref.Key]; !ok {
					t.Errorf("%s: %s: Secret %s has no key %s", where, e.Name, ref.Name, ref.Key)
				} else {
					values[e.Name] = v
				}
			} else {
				secret = append(secret, e.Name) // managed outside the render
			}
		}
	}
	return names, values, secret
}

func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// TestKubernetesWorkloads checks each container of each Deployment and Job:
// it is a known service, every variable is one the service reads and the
// values load, probes use the service's health paths on its port, and a
// draining service gets the time it needs.
func TestKubernetesWorkloads(t *testing.T) {
	for _, dir := range kustomizations {
		r := render(t, dir)
		seen := map[string]bool{}
		for _, d := range r.deployments {
			where := fmt.Sprintf("deploy/k8s/%s: Deployment %s", dir, d.Name)
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: selector %v does not match its pod template's labels %v", where, d.Spec.Selector, d.Spec.Template.Labels)
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				seen[c.Name] = true
				r.checkContainer(t, d.Spec.Template.Spec, c, true, where+" container "+c.Name)
			}
		}
		for _, j := range r.jobs {
			for _, c := range j.Spec.Template.Spec.Containers {
				r.checkContainer(t, j.Spec.Template.Spec, c, false, fmt.Sprintf("deploy/k8s/%s: Job %s container %s", dir, j.Name, c.Name))
			}
		}
		for _, name := range serviceNames() {
			if !seen[name] {
				t.Errorf("deploy/k8s/%s: no Deployment runs %s", dir, name)
			}
		}
		checkShared(t, r.instances, "deploy/k8s/"+dir)
	}
}

func (r *rendered) checkContainer(t *testing.T, pod corev1.PodSpec, c corev1.Container, serving bool, where string) {
	t.Helper()
	svc, ok := services[c.Name]
	if !ok {
		t.Errorf("%s: container name is no Roomcast service (add it to services in tests/deploy/services_test.go)", where)
		return
	}
	names, values, secret := r.containerEnv(t, c, where)
	checkEnv(t, c.Name, names, where)
	loadConfig(t, c.Name, values, secret, where)
	r.instances = append(r.instances, instance{service: c.Name, values: values, secret: secret})

	nonRoot := (pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot) ||
		(c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil && *c.SecurityContext.RunAsNonRoot)
	if !nonRoot {
		t.Errorf("%s: runAsNonRoot is not set", where)
	}
	if !serving {
		return
	}

	port := listenPort(t, c.Name, values, where)
	declared := false
	for _, p := range c.Ports {
		if int(p.ContainerPort) == port {
			declared = true
		}
	}
	if !declared {
		t.Errorf("%s: %s listens on %d, which is no containerPort (%v)", where, svc.addrVar, port, c.Ports)
	}
	checkProbe(t, c, c.ReadinessProbe, readinessPath, port, where+" readinessProbe")
	checkProbe(t, c, c.LivenessProbe, livenessPath, port, where+" livenessProbe")
	if c.StartupProbe != nil {
		checkProbe(t, c, c.StartupProbe, livenessPath, port, where+" startupProbe")
	}

	if drain := drainSeconds(t, c.Name, values, where); drain > 0 {
		preStop := 0
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = int(c.Lifecycle.PreStop.Sleep.Seconds)
		} else if svc.servesTraffic {
			t.Errorf("%s: no preStop sleep: Services and the ingress may still send it requests after SIGTERM", where)
		}
		grace := 30 // the Kubernetes default
		if pod.TerminationGracePeriodSeconds != nil {
			grace = int(*pod.TerminationGracePeriodSeconds)
		}
		if grace <= preStop+drain {
			t.Errorf("%s: terminationGracePeriodSeconds %d must exceed preStop %ds + %s %ds", where, grace, preStop, svc.drainVar, drain)
		}
	}
}

// checkProbe wants an HTTP GET of path on the container's port.
func checkProbe(t *testing.T, c corev1.Container, p *corev1.Probe, path string, port int, where string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: want an httpGet probe of %s", where, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: path %q, want %q", where, p.HTTPGet.Path, path)
	}
	if got := resolvePort(c, p.HTTPGet.Port); got != port {
		t.Errorf("%s: port %s is %d, want the service's port %d", where, p.HTTPGet.Port.String(), got, port)
	}
}

// resolvePort turns a port number or name into the container's port
// number, 0 if the name is unknown.
func resolvePort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

// TestKubernetesRouting follows traffic: Ingress → Service → pods, and
// wants each Deployment of a service covered by an HPA and a PDB.
func TestKubernetesRouting(t *testing.T) {
	for _, dir := range kustomizations {
		r := render(t, dir)
		for _, s := range r.services {
			where := fmt.Sprintf("deploy/k8s/%s: Service %s", dir, s.Name)
			pods := r.podsSelectedBy(labels.SelectorFromSet(s.Spec.Selector))
			if len(s.Spec.Selector) == 0 || len(pods) == 0 {
				t.Errorf("%s: selector %v matches no Deployment", where, s.Spec.Selector)
				continue
			}
			for _, p := range s.Spec.Ports {
				target := p.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(p.Port)
				}
				for _, pod := range pods {
					found := false
					for _, c := range pod.Containers {
						if resolvePort(c, target) != 0 && containerHasPort(c, resolvePort(c, target)) {
							found = true
						}
					}
					if !found {
						t.Errorf("%s: port %s targets %s, which no container of the selected pods exposes", where, p.Name, target.String())
					}
				}
			}
		}

		if len(r.ingresses) == 0 {
			t.Errorf("deploy/k8s/%s: no Ingress", dir)
		}
		for _, ing := range r.ingresses {
			r.checkIngress(t, ing)
		}

		hpaFor := map[string]bool{}
		for _, h := range r.hpas {
			ref := h.Spec.ScaleTargetRef
			if _, ok := r.deployments[ref.Name]; ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || !ok {
				t.Errorf("deploy/k8s/%s: HPA %s scales %s %s %s, which is not in the render", dir, h.Name, ref.APIVersion, ref.Kind, ref.Name)
			}
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
				t.Errorf("deploy/k8s/%s: HPA %s: replicas %v..%d, want at least 2 (one may drain at any time)", dir, h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
			}
			hpaFor[ref.Name] = true
			if d, ok := r.deployments[ref.Name]; ok && d.Spec.Replicas != nil {
				t.Errorf("deploy/k8s/%s: Deployment %s sets replicas though HPA %s owns them: every apply would reset the count", dir, d.Name, h.Name)
			}
		}
		pdbFor := map[string]bool{}
		for _, p := range r.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Errorf("deploy/k8s/%s: PDB %s: selector %v", dir, p.Name, p.Spec.Selector)
				continue
			}
			matched := false
			for name, d := range r.deployments {
				if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					pdbFor[name] = true
					matched = true
				}
			}
			if !matched {
				t.Errorf("deploy/k8s/%s: PDB %s selects no Deployment", dir, p.Name)
			}
		}
		for name := range r.deployments {
			if !hpaFor[name] {
				t.Errorf("deploy/k8s/%s: Deployment %s has no HPA", dir, name)
			}
			if !pdbFor[name] {
				t.Errorf("deploy/k8s/%s: Deployment %s has no PodDisruptionBudget", dir, name)
			}
		}
	}
}

func containerHasPort(c corev1.Container, port int) bool {
	for _, p := range c.Ports {
		if int(p.ContainerPort) == port {
			return true
		}
	}
	return false
}

func (r *rendered) podsSelectedBy(sel labels.Selector) []corev1.PodSpec {
	var names []string
	for n := range r.deployments {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []corev1.PodSpec
	for _, n := range names {
		d := r.deployments[n]
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			out = append(out, d.Spec.Template.Spec)
		}
	}
	return out
}

// apiRoutes are the public paths and the Service the ingress must route
// each to.
var apiRoutes = map[string]string{
	"/v1/connect":            "gateway",
	"/v1/messages":           "gateway",
	"/v1/messages/batch":     "gateway",
	"/v1/webhooks/endpoints": "webhooks",
}

// checkIngress wants every backend to exist, the API paths routed to the
// gateway, the health and metrics endpoints not exposed, and timeouts that
// let WebSocket connections live.
func (r *rendered) checkIngress(t *testing.T, ing *networkingv1.Ingress) {
	t.Helper()
	where := fmt.Sprintf("deploy/k8s/%s: Ingress %s", r.dir, ing.Name)
	routed := map[string]string{} // path → Service of the longest matching ingress path
	longest := map[string]int{}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			b := p.Backend.Service
			if b == nil {
				t.Errorf("%s: path %s has no service backend", where, p.Path)
				continue
			}
			svc, ok := r.services[b.Name]
			if !ok {
				t.Errorf("%s: path %s: Service %s is not in the render", where, p.Path, b.Name)
				continue
			}
			portOK := false
			for _, sp := range svc.Spec.Ports {
				if (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number) {
					portOK = true
				}
			}
			if !portOK {
				t.Errorf("%s: path %s: Service %s has no port %+v", where, p.Path, b.Name, b.Port)
			}
			probe := []string{livenessPath, readinessPath, metricsPath, "/admin/v1/apps"}
			for want := range apiRoutes {
				probe = append(probe, want)
			}
			for _, want := range probe {
				if pathMatches(p, want) && len(p.Path) >= longest[want] {
					routed[want], longest[want] = b.Name, len(p.Path)
				}
			}
		}
	}
	for p, svc := range apiRoutes {
		if routed[p] != svc {
			t.Errorf("%s: %s is routed to %q, want Service %s", where, p, routed[p], svc)
		}
	}
	for _, p := range []string{livenessPath, readinessPath, metricsPath, "/admin/v1/apps"} {
		if routed[p] != "" {
			t.Errorf("%s: exposes %s publicly", where, p)
		}
	}
	for _, a := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
		var secs int
		if _, err := fmt.Sscan(ing.Annotations[a], &secs); err != nil || secs < 300 {
			t.Errorf("%s: %s=%q, want at least 300 seconds for WebSocket connections", where, a, ing.Annotations[a])
		}
	}
}

func pathMatches(p networkingv1.HTTPIngressPath, path string) bool {
	switch {
	case p.PathType == nil:
		return false
	case *p.PathType == networkingv1.PathTypeExact:
		return p.Path == path
	default: // Prefix, and ImplementationSpecific read as a prefix
		prefix := strings.TrimSuffix(p.Path, "/")
		return path == prefix || strings.HasPrefix(path, prefix+"/") || prefix == ""
	}
}
