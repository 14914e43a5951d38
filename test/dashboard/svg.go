package dashboard

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// palette is Grafana's classic series colours, in order.
var palette = []string{"#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0"}

const (
	width, height          = 640, 330
	left, right, top, foot = 64, 24, 40, 100
)

// SVG draws a panel's result: lines (or bars, as the panel's drawStyle
// says) over its time range, y from zero, a legend, and a caption saying
// what it is: the queries' results as Prometheus returned them, drawn here.
func SVG(r Result, caption string) []byte {
	// A series at zero throughout (a reason no run ended with) is left out.
	var drawn []Series
	for _, s := range r.Series {
		for _, p := range s.Points {
			if p.Value != 0 {
				drawn = append(drawn, s)
				break
			}
		}
	}
	r.Series = drawn
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#181b1f"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" fill="#d8d9da" font-size="14">%s</text>`+"\n", left, html.EscapeString(r.Panel.Title))

	plotW, plotH := float64(width-left-right), float64(height-top-foot)
	maxY := 0.0
	for _, s := range r.Series {
		for _, p := range s.Points {
			maxY = math.Max(maxY, float64(p.Value))
		}
	}
	maxY = niceCeil(maxY)
	span := r.End.Sub(r.Start).Seconds()
	x := func(t time.Time) float64 { return float64(left) + plotW*t.Sub(r.Start).Seconds()/span }
	y := func(v float64) float64 { return float64(top) + plotH*(1-v/maxY) }

	// Grid and axes.
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#2c3235"/>`+"\n", left, width-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#9fa7b3" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, format(v, r.Panel.FieldConfig.Defaults.Unit))
	}
	for i := 0; i <= 4; i++ {
		t := r.Start.Add(time.Duration(float64(r.End.Sub(r.Start)) * float64(i) / 4))
		anchor := map[int]string{0: "start", 4: "end"}[i]
		if anchor == "" {
			anchor = "middle"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#9fa7b3" text-anchor="%s">%s</text>`+"\n", x(t), height-foot+16, anchor, t.UTC().Format("15:04:05"))
	}

	bars := r.Panel.FieldConfig.Defaults.Custom.DrawStyle == "bars"
	for i, s := range r.Series {
		colour := palette[i%len(palette)]
		if bars {
			// Stacked as the panel's stacking says: each bar on those before it.
			for _, p := range s.Points {
				below := 0.0
				for _, prev := range r.Series[:i] {
					below += valueAt(prev, p.Timestamp.Time())
				}
				v := float64(p.Value)
				if v == 0 {
					continue
				}
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="2" height="%.1f" fill="%s"/>`+"\n", x(p.Timestamp.Time())-1, y(below+v), y(below)-y(below+v), colour)
			}
			continue
		}
		// A gap in the data (no run ended in the window) breaks the line,
		// as Grafana draws it.
		var line []model.SamplePair
		flush := func() {
			if len(line) == 0 {
				return
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, colour)
			for _, p := range line {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(p.Timestamp.Time()), y(float64(p.Value)))
			}
			b.WriteString("\"/>\n")
			line = line[:0]
		}
		for i, p := range s.Points {
			if i > 0 && r.Step > 0 && p.Timestamp.Sub(s.Points[i-1].Timestamp) > r.Step*3/2 {
				flush()
			}
			line = append(line, p)
		}
		flush()
	}

	// Legend, then the caption.
	lx, ly := float64(left), height-foot+34
	for i, s := range r.Series {
		colour := palette[i%len(palette)]
		w := 24 + 6.5*float64(len(s.Legend))
		if lx+w > width-right && lx > left {
			lx, ly = left, ly+16
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="10" height="3" fill="%s"/>`, lx, ly-4, colour)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#d8d9da">%s</text>`+"\n", lx+14, ly, html.EscapeString(s.Legend))
		lx += w
	}
	for i, line := range wrap(caption, 100) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#9fa7b3" font-size="10">%s</text>`+"\n", left, height-22+12*i, html.EscapeString(line))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// valueAt is s's value at t, zero where it has none.
func valueAt(s Series, t time.Time) float64 {
	for _, p := range s.Points {
		if p.Timestamp.Time().Equal(t) {
			return float64(p.Value)
		}
	}
	return 0
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
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

// wrap splits text into lines of at most n characters, at spaces.
func wrap(text string, n int) []string {
	var lines []string
	for len(text) > n {
		cut := strings.LastIndex(text[:n], " ")
		if cut <= 0 {
			cut = n
		}
		lines = append(lines, text[:cut])
		text = strings.TrimLeft(text[cut:], " ")
	}
	return append(lines, text)
}

func format(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if v != math.Trunc(v) {
		s = fmt.Sprintf("%.3g", v)
	}
	if unit == "s" {
		s += " s"
	}
	return s
}
