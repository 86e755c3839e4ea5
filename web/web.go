// Package web holds the browser pages, embedded in the binary so Chatbox
// works offline with no CDN and no build step: plain HTML, CSS and ES2020
// modules. Every request they make is relative to where they are served, so
// they work under server.path_prefix. Handler serves them; it holds no state.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the pages: the chat page at "/", the admin dashboard at
// "/admin/" and the read-only view of a shared conversation at "/share/".
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The pages hold a token: no framing by other sites, no inline
		// injection, nothing loaded from elsewhere.
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' blob:; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
