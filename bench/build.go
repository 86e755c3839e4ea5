// Building ./cmd/chatbox for a self-started run, optionally with the bench's
// debug listener added by a build overlay (the source tree is untouched).

package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed instrument.go.txt
var instrumentSource []byte

// moduleRoot finds the Chatbox module root from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/chatbox/chatbox")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the github.com/chatbox/chatbox module; run from the repository")
		}
		dir = parent
	}
}

// buildChatbox builds ./cmd/chatbox into dir. With instrument it adds, by a
// build overlay (the source tree is untouched), a file that serves pprof and
// runtime figures on a separate loopback port when BENCH_CHATBOX_DEBUG_ADDR is
// set. It reports whether the instrumented build succeeded.
func buildChatbox(ctx context.Context, root, dir string, instrument bool, logf func(string, ...any)) (string, bool, error) {
	bin := filepath.Join(dir, "chatbox")
	build := func(extra ...string) error {
		args := append([]string{"build"}, extra...)
		args = append(args, "-o", bin, "./cmd/chatbox")
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build ./cmd/chatbox: %w\n%s", err, out)
		}
		return nil
	}
	if instrument {
		src := filepath.Join(dir, "zz_bench_debug.go")
		overlay := filepath.Join(dir, "overlay.json")
		j, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, "cmd", "chatbox", "zz_bench_debug.go"): src}})
		if err := os.WriteFile(src, instrumentSource, 0o644); err == nil {
			if err := os.WriteFile(overlay, j, 0o644); err == nil {
				err := build("-overlay", overlay)
				if err == nil {
					return bin, true, nil
				}
				logf("instrumented build failed, building plain: %v", err)
			}
		}
	}
	return bin, false, build()
}
