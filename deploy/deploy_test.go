package deploy_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	"gopkg.in/yaml.v3"

	"github.com/chatbox/chatbox/config"
)

// Paths relative to this package's directory, where go test runs.
const (
	kubeDir       = "kubernetes"
	dockerfile    = "../Dockerfile"
	dockerignore  = "../.dockerignore"
	imageConfig   = "docker/chatbox.toml"
	secretExample = "secret.example.yaml"
	kustomization = "kustomization.yaml"
)

// manifest is one YAML document of one file under kubernetes/.
type manifest struct {
	file string
	doc  map[string]any
}

func (m manifest) kind() string { return str(m.doc, "kind") }
func (m manifest) name() string { return str(m.doc, "metadata", "name") }

// loadManifests parses every document of every YAML file under kubernetes/.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(kubeDir, "*.yml"))
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatalf("no YAML files under %s", kubeDir)
	}
	var out []manifest
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(r)
		for i := 0; ; i++ {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if doc != nil { // an empty document between "---" separators
				out = append(out, manifest{file: filepath.Base(f), doc: doc})
			}
		}
		r.Close()
	}
	return out
}

// one returns the only manifest of the given kind (outside kustomization.yaml).
func one(t *testing.T, ms []manifest, kind string) manifest {
	t.Helper()
	var found []manifest
	for _, m := range ms {
		if m.kind() == kind {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, found %d", kind, len(found))
	}
	return found[0]
}

// get walks nested maps by key; nil when any step is missing.
func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func num(v any, path ...string) (int, bool) {
	n, ok := get(v, path...).(int)
	return n, ok
}

// podSpec and container return the Deployment's pod spec and its chatbox
// container.
func podSpec(t *testing.T, ms []manifest) map[string]any {
	t.Helper()
	spec, ok := get(one(t, ms, "Deployment").doc, "spec", "template", "spec").(map[string]any)
	if !ok {
		t.Fatal("Deployment has no spec.template.spec")
	}
	return spec
}

func container(t *testing.T, ms []manifest) map[string]any {
	t.Helper()
	for _, c := range list(podSpec(t, ms), "containers") {
		if str(c, "name") == "chatbox" {
			return c.(map[string]any)
		}
	}
	t.Fatal("Deployment has no container named chatbox")
	return nil
}

// containerPort resolves a probe's or Service's port (number or name) to a
// container port number.
func containerPort(t *testing.T, c map[string]any, port any) int {
	t.Helper()
	for _, p := range list(c, "ports") {
		n, _ := num(p, "containerPort")
		switch port := port.(type) {
		case int:
			if port == n {
				return n
			}
		case string:
			if port == str(p, "name") {
				return n
			}
		}
	}
	t.Fatalf("port %v is not a port of the chatbox container", port)
	return 0
}

// configMapTOML returns chatbox.toml from the ConfigMap.
func configMapTOML(t *testing.T, ms []manifest) string {
	t.Helper()
	s := str(one(t, ms, "ConfigMap").doc, "data", "chatbox.toml")
	if s == "" {
		t.Fatal("ConfigMap has no data.chatbox.toml")
	}
	return s
}

func TestManifestsHaveIdentity(t *testing.T) {
	seen := map[string]string{}
	for _, m := range loadManifests(t) {
		if str(m.doc, "apiVersion") == "" || m.kind() == "" || m.name() == "" {
			t.Errorf("%s: a document lacks apiVersion, kind or metadata.name", m.file)
			continue
		}
		id := m.kind() + "/" + m.name()
		if prev, dup := seen[id]; dup {
			t.Errorf("%s: %s already defined in %s", m.file, id, prev)
		}
		seen[id] = m.file
	}
}

func TestProbesTargetTheServedPort(t *testing.T) {
	ms := loadManifests(t)
	c := container(t, ms)
	prefix := loadTOML(t, configMapTOML(t, ms)).Server.PathPrefix

	svc := one(t, ms, "Service")
	ports := list(svc.doc, "spec", "ports")
	if len(ports) != 1 {
		t.Fatalf("Service: want one port, got %d", len(ports))
	}
	if p, _ := num(ports[0], "port"); p != 80 {
		t.Errorf("Service port = %d, want 80", p)
	}
	target := containerPort(t, c, get(ports[0], "targetPort"))

	for probe, path := range map[string]string{
		"livenessProbe":  prefix + "/healthz",
		"startupProbe":   prefix + "/healthz",
		"readinessProbe": prefix + "/readyz",
	} {
		if got := str(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %q, want %q", probe, got, path)
		}
		if p := containerPort(t, c, get(c, probe, "httpGet", "port")); p != target {
			t.Errorf("%s port %d != Service targetPort %d", probe, p, target)
		}
	}

	// The server listens on the port the Service targets, per the ConfigMap
	// and the image's environment (which wins over the file).
	if p := listenPort(t, loadTOML(t, configMapTOML(t, ms)).Server.Listen); p != target {
		t.Errorf("configmap server.listen port %d != container port %d", p, target)
	}
	df := parseDockerfile(t)
	if p := listenPort(t, df.env["CHATBOX_SERVER_LISTEN"]); p != target {
		t.Errorf("Dockerfile CHATBOX_SERVER_LISTEN port %d != container port %d", p, target)
	}
	if !slices.Contains(df.expose, strconv.Itoa(target)) {
		t.Errorf("Dockerfile EXPOSE %v lacks %d", df.expose, target)
	}

	// The Service, PDB and HPA all reach the Deployment's pods.
	labels, _ := get(one(t, ms, "Deployment").doc, "spec", "template", "metadata", "labels").(map[string]any)
	selects := func(what string, sel any) {
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range m {
			if labels[k] != v {
				t.Errorf("%s selects %s=%v, which the pod template does not carry", what, k, v)
			}
		}
	}
	selects("Service", get(svc.doc, "spec", "selector"))
	selects("PodDisruptionBudget", get(one(t, ms, "PodDisruptionBudget").doc, "spec", "selector", "matchLabels"))
	hpa := one(t, ms, "HorizontalPodAutoscaler")
	if k, n := str(hpa.doc, "spec", "scaleTargetRef", "kind"), str(hpa.doc, "spec", "scaleTargetRef", "name"); k != "Deployment" || n != one(t, ms, "Deployment").name() {
		t.Errorf("HPA targets %s/%s, not the Deployment", k, n)
	}
}

func listenPort(t *testing.T, listen string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("listen address %q: %v", listen, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("listen address %q: %v", listen, err)
	}
	return n
}

// secretKeys reads secret.example.yaml: Secret name -> its keys.
func secretKeys(t *testing.T, ms []manifest) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, m := range ms {
		if m.file != secretExample || m.kind() != "Secret" {
			continue
		}
		keys := map[string]string{}
		for _, field := range []string{"stringData", "data"} {
			d, _ := get(m.doc, field).(map[string]any)
			for k, v := range d {
				s, _ := v.(string)
				keys[k] = s
			}
		}
		out[m.name()] = keys
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no Secret", secretExample)
	}
	return out
}

func TestSecretRefsExistInTemplate(t *testing.T) {
	ms := loadManifests(t)
	secrets := secretKeys(t, ms)
	c := container(t, ms)
	refs := 0
	for _, e := range list(c, "env") {
		ref := get(e, "valueFrom", "secretKeyRef")
		if ref == nil {
			continue
		}
		refs++
		name, key := str(ref, "name"), str(ref, "key")
		if _, ok := secrets[name][key]; !ok {
			t.Errorf("env %s: secretKeyRef %s/%s is not in %s", str(e, "name"), name, key, secretExample)
		}
	}
	for _, e := range list(c, "envFrom") {
		if name := str(e, "secretRef", "name"); name != "" && secrets[name] == nil {
			t.Errorf("envFrom secretRef %s is not in %s", name, secretExample)
		}
	}
	if refs == 0 {
		t.Error("the container takes no secrets from secretKeyRef")
	}
	// Only API keys and former encryption keys may be missing; the server
	// cannot start without the rest.
	for _, e := range list(c, "env") {
		n := str(e, "name")
		if opt, _ := get(e, "valueFrom", "secretKeyRef", "optional").(bool); opt && !strings.HasSuffix(n, "_API_KEY") && n != "CHATBOX_STORAGE_PREVIOUS_ENCRYPTION_KEYS" {
			t.Errorf("env %s: a required secret is marked optional", str(e, "name"))
		}
	}
}

func TestSecretTemplateHoldsOnlyPlaceholders(t *testing.T) {
	ms := loadManifests(t)
	for name, keys := range secretKeys(t, ms) {
		for k, v := range keys {
			if v != "" && !strings.Contains(strings.ToUpper(v), "PLACEHOLDER") {
				t.Errorf("%s: %s/%s is neither empty nor marked PLACEHOLDER", secretExample, name, k)
			}
		}
		// Deployed as-is, production mode must refuse it.
		env := map[string]string{"CHATBOX_SERVER_MODE": "production"}
		for k, v := range keys {
			env[k] = v
		}
		path := writeTemp(t, configMapTOML(t, ms))
		cfg, err := config.Load(path, mapEnv(env))
		if err == nil {
			err = cfg.PrepareSecrets()
		}
		if err == nil {
			t.Errorf("production mode accepted the placeholder values of %s", secretExample)
		}
	}
}

// chatboxTOML is the part of chatbox.toml the manifests depend on.
type chatboxTOML struct {
	Server struct {
		Listen          string   `toml:"listen"`
		PathPrefix      string   `toml:"path_prefix"`
		AllowedOrigins  []string `toml:"allowed_origins"`
		ShutdownTimeout string   `toml:"shutdown_timeout"`
	} `toml:"server"`
	Storage struct {
		DataDir string `toml:"data_dir"`
	} `toml:"storage"`
}

func loadTOML(t *testing.T, s string) chatboxTOML {
	t.Helper()
	var c chatboxTOML
	if err := toml.Unmarshal([]byte(s), &c); err != nil {
		t.Fatalf("chatbox.toml: %v", err)
	}
	return c
}

func TestGracePeriodCoversShutdown(t *testing.T) {
	ms := loadManifests(t)
	c := loadTOML(t, configMapTOML(t, ms))
	shutdown := 30 * time.Second // config's default
	if c.Server.ShutdownTimeout != "" {
		d, err := time.ParseDuration(c.Server.ShutdownTimeout)
		if err != nil {
			t.Fatalf("server.shutdown_timeout: %v", err)
		}
		shutdown = d
	}
	grace, ok := num(podSpec(t, ms), "terminationGracePeriodSeconds")
	if !ok {
		t.Fatal("Deployment sets no terminationGracePeriodSeconds (default 30s leaves no margin)")
	}
	// The preStop hook runs inside the grace period, before SIGTERM.
	preStop, _ := num(container(t, ms), "lifecycle", "preStop", "sleep", "seconds")
	budget := time.Duration(preStop)*time.Second + shutdown
	if time.Duration(grace)*time.Second <= budget {
		t.Errorf("terminationGracePeriodSeconds %d must exceed preStop sleep %ds + shutdown_timeout %s", grace, preStop, shutdown)
	}
}

// deploymentEnv is the environment the Deployment gives the container:
// literal values, and generated stand-ins for the secrets.
func deploymentEnv(t *testing.T, ms []manifest) map[string]string {
	t.Helper()
	key, err := config.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	previous, err := config.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 36)
	rand.Read(b)
	generated := map[string]string{
		"CHATBOX_AUTH_JWT_SECRET":        base64.StdEncoding.EncodeToString(b), // 48 characters, as openssl rand -base64 36
		"CHATBOX_STORAGE_ENCRYPTION_KEY": key,
		// As during a rotation: the list form must parse too.
		"CHATBOX_STORAGE_PREVIOUS_ENCRYPTION_KEYS": previous + "," + previous,
		"CHATBOX_STORAGE_MONGO_URI":                "mongodb://chatbox:s3cret@mongo-0.mongo:27017,mongo-1.mongo:27017/?replicaSet=rs0&w=majority",
		"OPENAI_API_KEY":                           "sk-test",
	}
	env := map[string]string{}
	for k, v := range parseDockerfile(t).env { // the image's ENV, overridden by the pod's
		env[k] = v
	}
	for _, e := range list(container(t, ms), "env") {
		name := str(e, "name")
		switch {
		case get(e, "value") != nil:
			env[name] = fmt.Sprint(get(e, "value"))
		case get(e, "valueFrom", "secretKeyRef") != nil:
			v, ok := generated[name]
			if !ok {
				t.Fatalf("env %s comes from a secret this test has no stand-in for", name)
			}
			env[name] = v
		}
	}
	return env
}

func TestConfigMapLoadsInProduction(t *testing.T) {
	ms := loadManifests(t)
	env := deploymentEnv(t, ms)
	cfg, err := config.Load(writeTemp(t, configMapTOML(t, ms)), mapEnv(env))
	if err != nil {
		t.Fatalf("configmap chatbox.toml: %v", err)
	}
	if err := cfg.PrepareSecrets(); err != nil {
		t.Fatalf("configmap chatbox.toml with the Deployment's env: %v", err)
	}
	if cfg.Server.Mode != config.ModeProduction {
		t.Errorf("mode = %q, want production", cfg.Server.Mode)
	}
	if host, _, _ := net.SplitHostPort(cfg.Server.Listen); host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("listen = %q: the pod must listen on every interface", cfg.Server.Listen)
	}
	for _, o := range cfg.Server.AllowedOrigins {
		if !strings.HasPrefix(o, "https://") {
			t.Errorf("allowed origin %q is not https", o)
		}
	}
	if cfg.Storage.MongoURI == "" {
		t.Error("no mongo_uri: production would run the embedded single-node store")
	}
	// Every non-demo model's API key variable is provided by the Deployment.
	for _, m := range cfg.LLM.Models {
		if m.Provider != config.ProviderDemo && env[m.APIKeyEnv] == "" {
			t.Errorf("model %q reads %s, which the Deployment does not set", m.ID, m.APIKeyEnv)
		}
	}
	// The root filesystem is read-only: data_dir must be a mounted volume.
	if !mounted(t, ms, cfg.Storage.DataDir, false) {
		t.Errorf("storage.data_dir %q is not a writable volume mount", cfg.Storage.DataDir)
	}
	// The config file the container is told to read is the ConfigMap's.
	args := list(container(t, ms), "args")
	i := slices.Index(args, any("-config"))
	if i < 0 || i+1 >= len(args) {
		t.Fatal("container args lack -config FILE")
	}
	file := args[i+1].(string)
	if filepath.Base(file) != "chatbox.toml" || !mounted(t, ms, filepath.Dir(file), true) {
		t.Errorf("-config %s is not the mounted ConfigMap's chatbox.toml", file)
	}
	if df := parseDockerfile(t); !slices.Contains(df.cmd, file) {
		t.Errorf("Dockerfile CMD %v and the Deployment disagree on the config file %s", df.cmd, file)
	}
}

// mounted reports whether dir is a volume mount of the chatbox container,
// read-only or not as asked.
func mounted(t *testing.T, ms []manifest, dir string, readOnly bool) bool {
	t.Helper()
	for _, vm := range list(container(t, ms), "volumeMounts") {
		ro, _ := get(vm, "readOnly").(bool)
		if str(vm, "mountPath") == filepath.Clean(dir) && ro == readOnly {
			return true
		}
	}
	return false
}

func TestImageConfigLoads(t *testing.T) {
	key, err := config.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	env := parseDockerfile(t).env
	env["CHATBOX_AUTH_JWT_SECRET"] = strings.Repeat("k", 48)
	env["CHATBOX_STORAGE_ENCRYPTION_KEY"] = key
	cfg, err := config.Load(imageConfig, mapEnv(env))
	if err != nil {
		t.Fatalf("%s: %v", imageConfig, err)
	}
	if err := cfg.PrepareSecrets(); err != nil {
		t.Fatalf("%s: %v", imageConfig, err)
	}
	if cfg.Storage.DataDir != "/var/lib/chatbox" {
		t.Errorf("image data_dir = %q, want /var/lib/chatbox", cfg.Storage.DataDir)
	}
	if cfg.Server.Listen != "0.0.0.0:8080" {
		t.Errorf("image listen = %q, want 0.0.0.0:8080", cfg.Server.Listen)
	}
}

func TestPodIsLockedDown(t *testing.T) {
	ms := loadManifests(t)
	c := container(t, ms)
	pod := podSpec(t, ms)
	for _, check := range []struct {
		what string
		ok   bool
	}{
		{"runAsNonRoot", get(pod, "securityContext", "runAsNonRoot") == true || get(c, "securityContext", "runAsNonRoot") == true},
		{"readOnlyRootFilesystem", get(c, "securityContext", "readOnlyRootFilesystem") == true},
		{"allowPrivilegeEscalation false", get(c, "securityContext", "allowPrivilegeEscalation") == false},
		{"capabilities drop ALL", slices.Contains(list(c, "securityContext", "capabilities", "drop"), any("ALL"))},
		{"resources requests and limits", get(c, "resources", "requests") != nil && get(c, "resources", "limits") != nil},
		{"CHATBOX_SERVER_MODE=production", slices.ContainsFunc(list(c, "env"), func(e any) bool {
			return str(e, "name") == "CHATBOX_SERVER_MODE" && str(e, "value") == "production"
		})},
	} {
		if !check.ok {
			t.Errorf("Deployment: %s is not set", check.what)
		}
	}
	// distroless's nonroot user is 65532; a different uid would not own
	// /var/lib/chatbox in the image.
	if uid, ok := num(pod, "securityContext", "runAsUser"); ok && uid != 65532 {
		t.Errorf("runAsUser %d, want 65532 (distroless nonroot)", uid)
	}
}

// dockerfileInfo is what the tests read from the Dockerfile.
type dockerfileInfo struct {
	stages []string          // FROM lines, in order
	final  []string          // instructions of the last stage
	env    map[string]string // ENV of the last stage
	expose []string
	cmd    []string
}

// parseDockerfile joins continuation lines, drops comments, and splits the
// instructions into stages. Good enough for this Dockerfile's own syntax.
func parseDockerfile(t *testing.T) dockerfileInfo {
	t.Helper()
	f, err := os.Open(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		lines = append(lines, strings.TrimSpace(cur.String()))
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	d := dockerfileInfo{env: map[string]string{}}
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		instr = strings.ToUpper(instr)
		if instr == "FROM" {
			d.stages = append(d.stages, rest)
			d.final = nil
			d.env = map[string]string{}
			d.expose = nil
			d.cmd = nil
		}
		d.final = append(d.final, instr+" "+strings.TrimSpace(rest))
		switch instr {
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					d.env[k] = strings.Trim(v, `"`)
				}
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				d.expose = append(d.expose, strings.TrimSuffix(p, "/tcp"))
			}
		case "CMD":
			if err := yaml.Unmarshal([]byte(rest), &d.cmd); err != nil {
				t.Fatalf("Dockerfile CMD is not exec form: %v", err)
			}
		}
	}
	if len(d.stages) < 2 {
		t.Fatalf("Dockerfile: want a multi-stage build, got %d stages", len(d.stages))
	}
	return d
}

func TestDockerfileFinalStageIsNonRootWithoutShell(t *testing.T) {
	d := parseDockerfile(t)
	if b := d.stages[0]; !strings.Contains(b, "golang:1.26") {
		t.Errorf("build stage %q is not golang:1.26", b)
	}
	last := d.stages[len(d.stages)-1]
	if !strings.Contains(last, "gcr.io/distroless/static") || !strings.Contains(last, ":nonroot") {
		t.Errorf("final stage %q is not distroless static :nonroot", last)
	}
	has := func(prefix string) bool {
		return slices.ContainsFunc(d.final, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	for _, l := range d.final {
		// distroless has no /bin/sh: a RUN there fails, and so does a
		// shell-form ENTRYPOINT or CMD.
		if strings.HasPrefix(l, "RUN ") {
			t.Errorf("final stage runs a command (%q), but it has no shell", l)
		}
		if (strings.HasPrefix(l, "ENTRYPOINT ") || strings.HasPrefix(l, "CMD ")) && !strings.Contains(l, "[") {
			t.Errorf("%q is shell form; the final stage has no shell", l)
		}
	}
	if !slices.ContainsFunc(d.final, func(l string) bool {
		return strings.HasPrefix(l, "USER ") && (strings.Contains(l, "nonroot") || strings.Contains(l, "65532"))
	}) {
		t.Error("final stage has no USER nonroot line")
	}
	if !has(`ENTRYPOINT ["/chatbox"]`) {
		t.Error(`final stage lacks ENTRYPOINT ["/chatbox"]`)
	}
	if len(d.cmd) == 0 || d.cmd[0] != "serve" {
		t.Errorf("CMD %v does not run serve", d.cmd)
	}
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "COPY go.mod go.sum", "go mod download", "./cmd/chatbox", "COPY " + filepath.Join("deploy", imageConfig)} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	b, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.Trim(l, "/"))
		}
	}
	for _, want := range []string{".git", "data"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	// What the build copies must stay in the context.
	for _, need := range []string{"go.mod", "go.sum", "cmd", "config", "web", "deploy", "deploy/docker", "deploy/" + imageConfig, "*.go", "**/*.go", "*"} {
		if slices.Contains(patterns, need) {
			t.Errorf(".dockerignore excludes %s, which the build needs", need)
		}
	}
}

func TestKustomizationListsExistingFiles(t *testing.T) {
	ms := loadManifests(t)
	var k manifest
	for _, m := range ms {
		if m.file == kustomization {
			k = m
		}
	}
	if k.doc == nil {
		t.Fatalf("no %s", kustomization)
	}
	listed := map[string]bool{}
	for _, r := range list(k.doc, "resources") {
		name, _ := r.(string)
		listed[name] = true
		if _, err := os.Stat(filepath.Join(kubeDir, name)); err != nil {
			t.Errorf("%s lists %s: %v", kustomization, name, err)
		}
		if strings.Contains(name, ".example.") {
			t.Errorf("%s lists the template %s", kustomization, name)
		}
	}
	// Everything else that is not an example is deployed.
	for _, m := range ms {
		if m.file != kustomization && !strings.Contains(m.file, ".example.") && !listed[m.file] {
			t.Errorf("%s is not listed in %s", m.file, kustomization)
		}
	}
	img := str(container(t, ms), "image")
	if !slices.ContainsFunc(list(k.doc, "images"), func(i any) bool { return str(i, "name") == img }) {
		t.Errorf("%s has no images entry for the container image %q", kustomization, img)
	}
}

func TestIngressExampleMatchesService(t *testing.T) {
	ms := loadManifests(t)
	var ing *manifest
	for _, m := range ms {
		if m.kind() == "Ingress" {
			ing = &m
		}
	}
	if ing == nil {
		t.Skip("no Ingress example")
	}
	origins := loadTOML(t, configMapTOML(t, ms)).Server.AllowedOrigins
	svc := one(t, ms, "Service")
	for _, rule := range list(ing.doc, "spec", "rules") {
		if o := "https://" + str(rule, "host"); !slices.Contains(origins, o) {
			t.Errorf("Ingress host %s: %s is not in server.allowed_origins %v", str(rule, "host"), o, origins)
		}
		for _, p := range list(rule, "http", "paths") {
			if n := str(p, "backend", "service", "name"); n != svc.name() {
				t.Errorf("Ingress backend %q is not the Service %q", n, svc.name())
			}
			if n := str(p, "backend", "service", "port", "name"); n != "" && n != str(list(svc.doc, "spec", "ports")[0], "name") {
				t.Errorf("Ingress backend port %q is not the Service's", n)
			}
		}
	}
	timeout, _ := strconv.Atoi(str(ing.doc, "metadata", "annotations", "nginx.ingress.kubernetes.io/proxy-read-timeout"))
	if timeout <= 60 {
		t.Errorf("proxy-read-timeout %ds must exceed the server's idle_timeout (60s)", timeout)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chatbox.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
