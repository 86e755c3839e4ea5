package main

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The verdict compares the last quarter's mean with the second quarter's,
// within a tolerance or an absolute slack, skipping unknown samples.
func TestSoakVerdicts(t *testing.T) {
	mk := func(rss func(i int) float64) []soakSample {
		var s []soakSample
		for i := range 40 {
			s = append(s, soakSample{Seconds: float64(i), RSSMiB: rss(i), Goroutines: 100, OpenFiles: -1, LagP99MS: 1 + float64(i%3)})
		}
		return s
	}
	for _, tt := range []struct {
		name    string
		rss     func(i int) float64
		rssFlat bool
		change  float64
	}{
		{"flat after a warm-up", func(i int) float64 { return 100 + 50*math.Max(0, float64(5-i)) }, true, 0},
		{"a slow leak", func(i int) float64 { return 100 + 2*float64(i) }, false, 31},            // 129 → 169
		{"within the tolerance", func(i int) float64 { return 100 + 0.2*float64(i) }, true, 3.9}, // 102.9 → 106.9
	} {
		t.Run(tt.name, func(t *testing.T) {
			vs, flat := soakVerdicts(mk(tt.rss))
			if len(vs) != 3 { // open files are unknown throughout
				t.Fatalf("verdicts %v, want RSS, goroutines and lag", vs)
			}
			if v := vs[0]; v.Figure != "RSS (MiB)" || v.Flat != tt.rssFlat || v.ChangePercent != tt.change {
				t.Errorf("RSS verdict %+v, want flat %v, change %v %%", v, tt.rssFlat, tt.change)
			}
			if !vs[1].Flat || !vs[2].Flat {
				t.Errorf("goroutines or lag not flat: %+v", vs)
			}
			if flat != tt.rssFlat {
				t.Errorf("overall flat %v, want %v", flat, tt.rssFlat)
			}
		})
	}
}

// The plot is a PNG with one panel per figure.
func TestSoakPlotIsAPNG(t *testing.T) {
	r := &soakResult{}
	for i := range 30 {
		r.Samples = append(r.Samples, soakSample{Seconds: float64(i) * 5, RSSMiB: 80 + float64(i%4), Goroutines: 40, OpenFiles: 2030, LagP99MS: -1})
	}
	r.Verdicts, r.Flat = soakVerdicts(r.Samples)
	path := filepath.Join(t.TempDir(), "soak.png")
	if err := writeSoakPlot(path, r); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != plotWidth || b.Dy() != panelHeight*len(soakFigures) {
		t.Errorf("plot of %v, want %dx%d", b, plotWidth, panelHeight*len(soakFigures))
	}
}
