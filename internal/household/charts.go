package household

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// The charts, drawn on the hub as SVG (no script, nothing fetched). Each element
// carries a class the tests count: a heatmap has 7×24 "cell" rects, a score chart
// one "series" polyline per tag with one point per day, a traffic chart a "sent"
// and a "raw" rect per day.

var weekdays = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// Heatmap draws a device's week-by-hour use: one cell per weekday and hour, darker
// for more uses.
func Heatmap(d Device) template.HTML {
	const cw, ch, left, top = 12, 14, 30, 14
	peak := 0
	for _, row := range d.Week {
		for _, v := range row {
			peak = max(peak, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="heatmap" data-device="%s" viewBox="0 0 %d %d" role="img" aria-label="%s: uses by weekday and hour">`,
		template.HTMLEscapeString(d.ID), left+24*cw+2, top+7*ch+2, template.HTMLEscapeString(d.ID))
	for h := 0; h < 24; h += 6 {
		fmt.Fprintf(&b, `<text x="%d" y="10" class="axis">%02d</text>`, left+h*cw, h)
	}
	for wd := 0; wd < 7; wd++ {
		fmt.Fprintf(&b, `<text x="0" y="%d" class="axis">%s</text>`, top+wd*ch+11, weekdays[wd])
		for h := 0; h < 24; h++ {
			v := d.Week[wd][h]
			shade := 0.06
			if peak > 0 && v > 0 {
				shade = 0.15 + 0.85*float64(v)/float64(peak)
			}
			fmt.Fprintf(&b, `<rect class="cell" x="%d" y="%d" width="%d" height="%d" fill-opacity="%.2f"><title>%s %02d:00 — %d use(s)</title></rect>`,
				left+h*cw, top+wd*ch, cw-1, ch-1, shade, weekdays[wd], h, v)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// ScoreChart draws each tag's score (0..1) over days: one polyline per tag.
func ScoreChart(series []Series, days []string) template.HTML {
	const w, h, left, bottom = 320, 120, 28, 16
	n := len(days)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="scores" viewBox="0 0 %d %d" role="img" aria-label="each tag's score over the last %d days">`, w, h+bottom, n)
	for _, y := range []float64{0, 0.5, 1} {
		py := float64(h) - y*float64(h-8)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="axis" x="0" y="%.1f">%.0f%%</text>`,
			left, w, py, py, py+4, y*100)
	}
	if n > 0 {
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text><text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`,
			left, h+bottom-2, days[0], w, h+bottom-2, days[n-1])
	}
	for i, s := range series {
		var pts []string
		for j, v := range s.Points {
			x := float64(left)
			if n > 1 {
				x += float64(j) * float64(w-left) / float64(n-1)
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, float64(h)-v*float64(h-8)))
		}
		fmt.Fprintf(&b, `<polyline class="series c%d" data-tag="%s" data-points="%d" points="%s"><title>%s</title></polyline>`,
			i%8, template.HTMLEscapeString(s.Tag), len(s.Points), strings.Join(pts, " "), template.HTMLEscapeString(s.Tag))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// TrafficChart draws, per day, the bytes sent upstream against the raw bytes kept
// at home, on a logarithmic scale (they differ by orders of magnitude).
func TrafficChart(days []Traffic) template.HTML {
	const w, h, left, bottom = 320, 110, 36, 16
	peak := int64(1)
	for _, d := range days {
		peak = max(peak, d.Sent, d.Raw)
	}
	scale := func(v int64) float64 {
		if v <= 0 {
			return 0
		}
		return float64(h-4) * log10(float64(v)+1) / log10(float64(peak)+1)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="traffic" viewBox="0 0 %d %d" role="img" aria-label="bytes sent upstream per day against raw bytes kept at home">`, w, h+bottom)
	bw := float64(w-left) / float64(max(len(days), 1))
	for i, d := range days {
		x := float64(left) + float64(i)*bw
		rh, sh := scale(d.Raw), scale(d.Sent)
		fmt.Fprintf(&b, `<rect class="raw" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s kept at home</title></rect>`,
			x+1, float64(h)-rh, bw/2-1, rh, d.Date, HumanBytes(d.Raw))
		fmt.Fprintf(&b, `<rect class="sent" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s sent upstream</title></rect>`,
			x+bw/2, float64(h)-sh, bw/2-1, sh, d.Date, HumanBytes(d.Sent))
	}
	fmt.Fprintf(&b, `<text class="axis" x="0" y="10">%s</text><text class="axis" x="0" y="%d">0</text>`, HumanBytes(peak), h)
	if len(days) > 0 {
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">%s</text><text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`,
			left, h+bottom-2, days[0].Date, w, h+bottom-2, days[len(days)-1].Date)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func log10(v float64) float64 { return math.Log10(v) }
