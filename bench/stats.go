package main

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// histSubBits sets the histogram's precision: values are bucketed with
// 2^(histSubBits-1) buckets per power of two, a relative error under 1.6%.
const (
	histSubBits = 7
	histHalf    = 1 << (histSubBits - 1)
	histMaxExp  = 40 - histSubBits // values are clamped below 2^40 ns (about 18 minutes)
	histBuckets = (histMaxExp+1)*histHalf + histHalf
)

// Histogram records non-negative int64 values (nanoseconds here) in
// log-linear buckets: fixed memory, cheap to record, mergeable. It is not
// safe for concurrent use; give each goroutine its own and Merge them.
type Histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

func histIndex(v int64) int {
	if v < 2*histHalf {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - histSubBits
	if e > histMaxExp {
		return histBuckets - 1
	}
	m := int(uint64(v) >> e) // in [histHalf, 2*histHalf)
	return e*histHalf + m
}

// histValue is the middle of bucket i.
func histValue(i int) int64 {
	if i < 2*histHalf {
		return int64(i)
	}
	e := i/histHalf - 1
	m := int64(i%histHalf + histHalf)
	return m<<e + (int64(1)<<e)/2
}

// Record adds v; negative values count as zero.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
	h.counts[histIndex(v)]++
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the value at quantile q (0..1), by the nearest-rank
// method, within the bucket precision; exact for the minimum and maximum.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := rankOf(q, int(h.n))
	if rank <= 1 {
		return h.min
	}
	if rank >= int(h.n) {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= uint64(rank) {
			return min(max(histValue(i), h.min), h.max)
		}
	}
	return h.max
}

// Mean is the arithmetic mean.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// rankOf is the 1-based nearest rank of quantile q among n values.
func rankOf(q float64, n int) int {
	r := int(math.Ceil(q * float64(n)))
	return min(max(r, 1), n)
}

// Percentile returns the exact nearest-rank quantile q (0..1) of values,
// which it sorts in place. Zero for no values.
func Percentile(values []time.Duration, q float64) time.Duration {
	if len(values) == 0 {
		return 0
	}
	slices.Sort(values)
	return values[rankOf(q, len(values))-1]
}

// Summary is the latency figures a report shows, in milliseconds.
type Summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms,omitempty"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func ms(d int64) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// SummarizeHist summarises h (values in ns).
func SummarizeHist(h *Histogram) Summary {
	return Summary{
		Count: int(h.n), P50: ms(h.Quantile(0.50)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.max), Mean: ms(int64(h.Mean())),
	}
}

// SummarizeDurations summarises exact samples (sorted in place).
func SummarizeDurations(v []time.Duration) Summary {
	if len(v) == 0 {
		return Summary{}
	}
	var sum time.Duration
	for _, d := range v {
		sum += d
	}
	s := Summary{
		Count: len(v), P50: ms(int64(Percentile(v, 0.50))), P99: ms(int64(Percentile(v, 0.99))),
		P999: ms(int64(Percentile(v, 0.999))), Max: ms(int64(v[len(v)-1])),
		Mean: ms(int64(sum) / int64(len(v))),
	}
	return s
}
