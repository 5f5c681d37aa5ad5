// Package check validates the Helm chart in deploy/helm/messagebus without
// a Kubernetes cluster or network: helm's own linter, then the chart is
// rendered with the default values and with the standalone values, and
// every manifest is strictly decoded into its Kubernetes API type (unknown
// or misspelled fields are errors) and checked for references that must
// agree (selectors, named ports, volumes, the headless service).
//
// It is a Go module of its own so that helm's dependency tree stays out of
// MessageBus's go.mod. Run it with `make deploy-check`.
package check

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const chartDir = "../helm/messagebus"

// variants are the value sets that must render and validate.
var variants = []struct {
	name  string
	files []string // values files on top of the chart's values.yaml
	set   map[string]any
	kinds []string // kinds rendered, sorted
}{
	{name: "default (cluster)", kinds: []string{"ConfigMap", "PodDisruptionBudget", "Service", "Service", "ServiceAccount", "StatefulSet"}},
	{name: "standalone", files: []string{"../helm/standalone-values.yaml"},
		kinds: []string{"ConfigMap", "Secret", "Service", "Service", "ServiceAccount", "StatefulSet"}},
	{name: "cluster with S3 keys, etcd password and auth", set: map[string]any{
		"cluster": map[string]any{
			"s3":   map[string]any{"accessKeyId": "AKIA", "secretAccessKey": "s", "endpoint": "http://minio:9000", "pathStyle": true},
			"etcd": map[string]any{"user": "mb", "passwordSecret": "etcd-password"},
		},
		"auth": map[string]any{"enabled": true, "existingSecret": "mb-keys", "existingSecretKeyType": "public"},
	}, kinds: []string{"ConfigMap", "PodDisruptionBudget", "Secret", "Service", "Service", "ServiceAccount", "StatefulSet"}},
}

func values(t *testing.T, files []string, set map[string]any) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, f := range files {
		v, err := common.ReadValuesFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vals = util.MergeTables(v, vals)
	}
	if set != nil {
		vals = util.MergeTables(set, vals)
	}
	return vals
}

func TestLint(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			res := lint.RunAll(chartDir, values(t, v.files, v.set), "messaging")
			for _, m := range res.Messages {
				t.Log(m.Error())
			}
			if res.HighestSeverity >= support.WarningSev {
				t.Fatalf("helm lint: %d messages, highest severity %d", len(res.Messages), res.HighestSeverity)
			}
		})
	}
}

// render renders the chart as `helm template` does.
func render(t *testing.T, vals map[string]any) map[string]string {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "mb", Namespace: "messaging", IsInstall: true, Revision: 1},
		common.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decode strictly decodes every YAML document of the rendered templates.
func decode(t *testing.T, files map[string]string) []runtime.Object {
	t.Helper()
	codecs := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)
	dec := codecs.UniversalDeserializer()
	var objs []runtime.Object
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for i, doc := range strings.Split(files[name], "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			js, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatalf("%s #%d: not YAML: %v\n%s", name, i, err, doc)
			}
			obj, _, err := dec.Decode(js, nil, nil)
			if err != nil {
				t.Fatalf("%s #%d: %v\n%s", name, i, err, doc)
			}
			objs = append(objs, obj)
		}
	}
	return objs
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestRenderAndValidate(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			vals := values(t, v.files, v.set)
			objs := decode(t, render(t, vals))
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, kindOf(o))
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, v.kinds) {
				t.Fatalf("rendered kinds %v, want %v", kinds, v.kinds)
			}
			checkRefs(t, objs)
		})
	}
}

func kindOf(o runtime.Object) string {
	switch o.(type) {
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *corev1.Secret:
		return "Secret"
	case *corev1.Service:
		return "Service"
	case *corev1.ServiceAccount:
		return "ServiceAccount"
	case *appsv1.StatefulSet:
		return "StatefulSet"
	case *policyv1.PodDisruptionBudget:
		return "PodDisruptionBudget"
	}
	return fmt.Sprintf("%T", o)
}

// checkRefs checks what the API server would accept but would not work:
// names, selectors, named ports, volumes, the mounted config and secrets.
func checkRefs(t *testing.T, objs []runtime.Object) {
	t.Helper()
	var sts *appsv1.StatefulSet
	services := map[string]*corev1.Service{}
	configs := map[string]*corev1.ConfigMap{}
	secrets := map[string]bool{}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.StatefulSet:
			sts = o
		case *corev1.Service:
			services[o.Name] = o
		case *corev1.ConfigMap:
			configs[o.Name] = o
		case *corev1.Secret:
			secrets[o.Name] = true
		}
		name := o.(interface{ GetName() string }).GetName()
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%s %q: %v", kindOf(o), name, errs)
		}
	}
	if sts == nil {
		t.Fatal("no StatefulSet")
	}
	podLabels := sts.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(sts.Spec.Selector.MatchLabels) {
		t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Spec.Selector.MatchLabels, podLabels)
	}
	headless := services[sts.Spec.ServiceName]
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("StatefulSet serviceName %q is not a headless service of the chart", sts.Spec.ServiceName)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
			t.Errorf("port %q: %v", p.Name, errs)
		}
		ports[p.Name] = p.ContainerPort
	}
	if ports["pulsar"] != 6650 || ports["http"] != 8080 {
		t.Errorf("container ports %v, want pulsar 6650 and http 8080", ports)
	}
	for name, pr := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s probe missing or not HTTP", name)
			continue
		}
		if _, ok := ports[pr.HTTPGet.Port.StrVal]; !ok {
			t.Errorf("%s probe port %v is not a container port", name, pr.HTTPGet.Port)
		}
		if p := pr.HTTPGet.Path; p != "/healthz" && p != "/admin/v2/brokers/health" {
			t.Errorf("%s probe path %q is not a health endpoint of mb", name, p)
		}
	}
	for _, svc := range services {
		if !matches(svc.Spec.Selector) {
			t.Errorf("service %s selects %v, not the pods", svc.Name, svc.Spec.Selector)
		}
		for _, p := range svc.Spec.Ports {
			if _, ok := ports[p.TargetPort.StrVal]; !ok {
				t.Errorf("service %s targets port %v, not a container port", svc.Name, p.TargetPort)
			}
		}
	}
	for _, o := range objs {
		if pdb, ok := o.(*policyv1.PodDisruptionBudget); ok && !matches(pdb.Spec.Selector.MatchLabels) {
			t.Errorf("PodDisruptionBudget selects %v, not the pods", pdb.Spec.Selector.MatchLabels)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	claims := map[string]bool{}
	for _, pvc := range sts.Spec.VolumeClaimTemplates {
		claims[pvc.Name] = true
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok && !claims[m.Name] {
			t.Errorf("volume mount %q has no volume", m.Name)
		}
		if v.ConfigMap != nil && configs[v.ConfigMap.Name] == nil {
			t.Errorf("volume %q: ConfigMap %q is not rendered", v.Name, v.ConfigMap.Name)
		}
	}
	// The config file is YAML whose keys are mb's flags.
	cm := configs[sts.Name]
	if cm == nil {
		t.Fatalf("no ConfigMap %q", sts.Name)
	}
	var conf map[string]any
	if err := yaml.UnmarshalStrict([]byte(cm.Data["mb.yaml"]), &conf); err != nil {
		t.Fatalf("mb.yaml: %v\n%s", err, cm.Data["mb.yaml"])
	}
	mode := c.Args[0]
	switch mode {
	case "broker":
		for _, k := range []string{"metadata-store", "bucket", "lease-ttl"} {
			if conf[k] == nil {
				t.Errorf("broker config lacks %s:\n%s", k, cm.Data["mb.yaml"])
			}
		}
		if !strings.HasPrefix(fmt.Sprint(conf["metadata-store"]), "etcd://") {
			t.Errorf("metadata-store %v is not etcd://", conf["metadata-store"])
		}
		if len(sts.Spec.VolumeClaimTemplates) != 0 {
			t.Error("brokers hold no state, yet claim volumes")
		}
		if *sts.Spec.Replicas < 2 {
			t.Errorf("cluster of %d brokers", *sts.Spec.Replicas)
		}
	case "standalone":
		if *sts.Spec.Replicas != 1 {
			t.Errorf("standalone with %d replicas", *sts.Spec.Replicas)
		}
		if !claims["data"] {
			t.Error("standalone without a PersistentVolumeClaim for /data")
		}
		if conf["metadata-store"] != nil || conf["bucket"] != nil {
			t.Errorf("standalone config has cluster keys:\n%s", cm.Data["mb.yaml"])
		}
	default:
		t.Errorf("container runs mb %q", mode)
	}
	for k, v := range conf {
		if strings.HasSuffix(k, "-key") && !strings.HasPrefix(fmt.Sprint(v), "/etc/messagebus/auth/") {
			t.Errorf("%s: %v is not the mounted secret", k, v)
		}
	}
	for _, v := range volumes {
		if v.Secret != nil && !secrets[v.Secret.SecretName] && !strings.HasPrefix(v.Secret.SecretName, "mb-keys") {
			t.Errorf("volume %q: Secret %q is neither rendered nor the existing one", v.Name, v.Secret.SecretName)
		}
	}
	sc := c.SecurityContext
	psc := sts.Spec.Template.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the pod must run as non-root on a read-only root file system")
	}
}

// TestMain fails early with a clear message when run from elsewhere.
func TestMain(m *testing.M) {
	if _, err := os.Stat(chartDir + "/Chart.yaml"); err != nil {
		fmt.Fprintln(os.Stderr, "run from deploy/check (make deploy-check):", err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
