package web

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"strings"
	"testing"
)

// Every vendored file is exactly the build vendor.sh took from the npm
// registry: its SHA-256 is the one SHA256SUMS records, every file under
// static/vendor is listed there (and in SOURCES), and every listed file
// exists. A file edited by hand, or added without the script, fails here.
func TestVendoredFilesMatchTheirRecordedChecksums(t *testing.T) {
	sums, err := static.ReadFile("static/vendor/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	lines := bufio.NewScanner(strings.NewReader(string(sums)))
	for lines.Scan() {
		sum, name, ok := strings.Cut(lines.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q is not `sum  name`", lines.Text())
		}
		listed[name] = sum
	}
	sources, err := static.ReadFile("static/vendor/SOURCES")
	if err != nil {
		t.Fatal(err)
	}
	fromSources := map[string]bool{}
	for _, line := range strings.Split(string(sources), "\n") {
		if f := strings.Fields(line); len(f) == 3 && !strings.HasPrefix(line, "#") {
			fromSources[f[2]] = true
		}
	}
	if len(listed) == 0 || len(listed) != len(fromSources) {
		t.Fatalf("SHA256SUMS lists %d files, SOURCES %d: run web/vendor.sh", len(listed), len(fromSources))
	}
	seen := 0
	err = fs.WalkDir(static, "static/vendor", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(path, "static/vendor/")
		if name == "SHA256SUMS" || name == "SOURCES" {
			return nil
		}
		want, ok := listed[name]
		if !ok || !fromSources[name] {
			t.Errorf("%s is vendored but not listed in SOURCES and SHA256SUMS", name)
			return nil
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s has SHA-256 %s, SHA256SUMS records %s: it is not the build vendor.sh fetched", name, got, want)
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(listed) {
		t.Errorf("SHA256SUMS lists %d files, %d are vendored", len(listed), seen)
	}
}

// Each vendored package keeps its licence beside its code.
func TestEveryVendoredPackageKeepsItsLicence(t *testing.T) {
	for _, name := range []string{"markdown-it", "dompurify", "highlight.js"} {
		b, err := static.ReadFile("static/vendor/licenses/" + name + ".LICENSE")
		if err != nil || len(b) < 100 {
			t.Errorf("licence of %s: %d bytes, %v", name, len(b), err)
		}
	}
}
