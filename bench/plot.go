package main

// Line charts as PNG with the standard library alone: one panel per
// series, stacked, each with its title, y range, time axis, and the two
// quarters a flatness verdict compares shaded. Text is a 5×7 bitmap font
// drawn at twice its size.

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
)

// plotSeries is one panel: y values at x seconds (NaN: no value there).
type plotSeries struct {
	Title string
	X, Y  []float64
	// Shade marks the quarters compared: [start, end) in x, twice.
	Shade [2][2]float64
	Means [2]float64 // drawn across their quarter; NaN: none
}

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colAxis       = color.RGBA{60, 60, 60, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colShade      = color.RGBA{238, 243, 252, 255}
	colLine       = color.RGBA{31, 87, 180, 255}
	colMean       = color.RGBA{214, 96, 39, 255}
	colText       = color.RGBA{30, 30, 30, 255}
)

const (
	plotWidth   = 960
	panelHeight = 230
	marginLeft  = 90
	marginRight = 24
	panelTop    = 34 // room for the title
	panelBottom = 34 // room for the x labels
	textScale   = 2
)

// writePlot draws the series one under the other into a PNG at path.
func writePlot(path string, series []plotSeries) error {
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, panelHeight*len(series)))
	fill(img, img.Bounds(), colBackground)
	for i, s := range series {
		drawPanel(img, image.Rect(0, i*panelHeight, plotWidth, (i+1)*panelHeight), s)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func drawPanel(img *image.RGBA, r image.Rectangle, s plotSeries) {
	plot := image.Rect(r.Min.X+marginLeft, r.Min.Y+panelTop, r.Max.X-marginRight, r.Max.Y-panelBottom)
	drawText(img, r.Min.X+12, r.Min.Y+10, s.Title, colText)

	xMax := 0.0
	yMax := 0.0
	for i, y := range s.Y {
		xMax = math.Max(xMax, s.X[i])
		if !math.IsNaN(y) {
			yMax = math.Max(yMax, y)
		}
	}
	xMax = math.Max(xMax, 1)
	yMax = niceCeil(yMax * 1.15) // from zero, so a change reads at its true size
	px := func(x float64) int { return plot.Min.X + int(math.Round(x/xMax*float64(plot.Dx()))) }
	py := func(y float64) int { return plot.Max.Y - int(math.Round(y/yMax*float64(plot.Dy()))) }

	for _, q := range s.Shade {
		if q[1] > q[0] {
			fill(img, image.Rect(px(q[0]), plot.Min.Y, px(q[1]), plot.Max.Y), colShade)
		}
	}
	for i := 0; i <= 4; i++ {
		y := yMax * float64(i) / 4
		hline(img, plot.Min.X, plot.Max.X, py(y), colGrid)
		label := formatTick(y)
		drawText(img, plot.Min.X-8-textWidth(label), py(y)-7, label, colText)
	}
	for i := 0; i <= 6; i++ {
		x := xMax * float64(i) / 6
		label := fmt.Sprintf("%.0fS", x)
		lx := px(x) - textWidth(label)/2
		if i == 0 {
			lx = px(x) + 4 // clear of the y axis's "0"
		}
		drawText(img, lx, plot.Max.Y+8, label, colText)
		vline(img, px(x), plot.Max.Y, plot.Max.Y+4, colAxis)
	}
	hline(img, plot.Min.X, plot.Max.X, plot.Max.Y, colAxis)
	vline(img, plot.Min.X, plot.Min.Y, plot.Max.Y, colAxis)

	for i, q := range s.Shade {
		if m := s.Means[i]; q[1] > q[0] && !math.IsNaN(m) {
			for x := px(q[0]); x < px(q[1]); x += 8 { // dashed
				hline(img, x, min(x+4, px(q[1])), py(m), colMean)
			}
		}
	}
	prev := image.Point{-1, -1}
	for i, y := range s.Y {
		if math.IsNaN(y) {
			prev = image.Point{-1, -1}
			continue
		}
		p := image.Pt(px(s.X[i]), py(y))
		if prev.X >= 0 {
			line(img, prev, p, colLine)
		}
		fill(img, image.Rect(p.X-2, p.Y-2, p.X+3, p.Y+3), colLine)
		prev = p
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v ≤ 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func formatTick(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	fill(img, image.Rect(x0, y, x1+1, y+1), c)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	fill(img, image.Rect(x, y0, x+1, y1+1), c)
}

// line draws a 2-pixel line from a to b (Bresenham).
func line(img *image.RGBA, a, b image.Point, c color.RGBA) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := sign(b.X-a.X), sign(b.Y-a.Y)
	e := dx + dy
	for p := a; ; {
		fill(img, image.Rect(p.X, p.Y, p.X+2, p.Y+2), c)
		if p == b {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			p.X += sx
		}
		if e2 <= dx {
			e += dx
			p.Y += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// textWidth is the width in pixels of s drawn by drawText.
func textWidth(s string) int { return len(s) * 6 * textScale }

// drawText draws s (upper-cased; unknown characters as blanks) with its
// top left at x, y.
func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for i, ch := range strings.ToUpper(s) {
		g := glyphs[ch]
		for row, bits := range g {
			for col := range 5 {
				if bits&(0x10>>col) != 0 {
					px, py := x+(i*6+col)*textScale, y+row*textScale
					fill(img, image.Rect(px, py, px+textScale, py+textScale), c)
				}
			}
		}
	}
}

// glyphs is a 5×7 font: seven rows, bit 4 the leftmost column.
var glyphs = map[rune][7]uint8{
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, '1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, '3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, '5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, '7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, '9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'A': {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, 'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, 'D': {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, 'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, 'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, 'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, 'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, 'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, 'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, 'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, 'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, 'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C}, ',': {0, 0, 0, 0, 0x0C, 0x04, 0x08},
	'-': {0, 0, 0, 0x1F, 0, 0, 0}, '+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0},
	'%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, '=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, ')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}, '/': {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0},
}
