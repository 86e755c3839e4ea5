package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandlerServesThePages(t *testing.T) {
	h := Handler()
	for _, tt := range []struct{ path, contains string }{
		{"/", `src="chat.js"`},
		{"/admin/", `src="admin.js"`},
		{"/share/", `src="share.js"`},
		{"/common.js", "export class MessageLog"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), tt.contains) {
				t.Fatalf("GET %s: %d, body without %q", tt.path, rec.Code, tt.contains)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
				t.Errorf("GET %s: Content-Security-Policy %q", tt.path, csp)
			}
		})
	}
}

// The policy forbids inline code and styles, and the pages must never turn
// user text into markup themselves: message text becomes DOM only through
// markdown.js, whose sanitizer returns nodes, not markup. Both are checked
// on the source, so they hold even where the browser tests cannot run. The
// vendored libraries are checked against their checksums instead
// (vendor_test.go).
func TestPagesKeepToThePolicy(t *testing.T) {
	forbidden := map[string]*regexp.Regexp{
		".html": regexp.MustCompile(`\sstyle=|<style|\son[a-z]+=|javascript:|https?://`),
		".js":   regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\("style"|localStorage\.|document\.cookie`),
		".css":  regexp.MustCompile(`@import|url\(\s*["']?https?:`),
	}
	script := regexp.MustCompile(`(?s)<script\b([^>]*)>(.*?)</script>`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(path, "static/vendor/") {
			return nil
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		for ext, re := range forbidden {
			if m := re.Find(b); strings.HasSuffix(path, ext) && m != nil {
				t.Errorf("%s contains %q", path, m)
			}
		}
		if strings.HasSuffix(path, ".html") {
			for _, m := range script.FindAllSubmatch(b, -1) {
				if !strings.Contains(string(m[1]), "src=") || strings.TrimSpace(string(m[2])) != "" {
					t.Errorf("%s has an inline script: %q", path, m[0])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
