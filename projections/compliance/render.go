package compliance

import (
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CSV writes one row per finding (and one per check without findings).
func (r *Report) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"check", "status", "source", "title", "resource", "detail"})
	for _, c := range r.Checks {
		if len(c.Findings) == 0 {
			cw.Write([]string{c.ID, c.Status, c.Source, c.Title, "", c.Summary})
		}
		for _, f := range c.Findings {
			cw.Write([]string{c.ID, c.Status, c.Source, c.Title, f.Resource, f.Detail})
		}
	}
	cw.Flush()
	return cw.Error()
}

// The report's charts are laid out here and drawn as inline SVG: each
// with axes, tick values, units and labels, readable for one day of
// traffic as for a year (days are grouped into weeks or months when the
// range is long), keys named by alias beside their id.

// tick is one labelled tick on an axis.
type tick struct {
	Pos   float64
	Label string
}

// niceTicks returns round tick values from 0 to at least top.
func niceTicks(top int) []int {
	if top <= 0 {
		return []int{0, 1}
	}
	raw := float64(top) / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	st := max(1, int(math.Round(step)))
	var out []int
	for v := 0; ; v += st {
		out = append(out, v)
		if v >= top {
			return out
		}
	}
}

func shortNum(v int) string {
	switch {
	case v >= 10_000_000:
		return strconv.Itoa(v/1_000_000) + "M"
	case v >= 1_000_000:
		return strconv.FormatFloat(float64(v)/1e6, 'f', 1, 64) + "M"
	case v >= 10_000:
		return strconv.Itoa(v/1000) + "k"
	case v >= 1000:
		return strconv.FormatFloat(float64(v)/1e3, 'f', 1, 64) + "k"
	}
	return strconv.Itoa(v)
}

// plot is the frame of a chart: its size, the plotting area and the
// y axis (values 0..Top).
type plot struct {
	W, H                   int
	Left, Right, Top, Base float64 // plotting area
	YTicks                 []tick
	YTitle, XTitle         string
	XTicks                 []tick
	top                    int
}

func newPlot(w, h int, top int, yTitle, xTitle string) plot {
	p := plot{W: w, H: h, Left: 64, Right: float64(w - 16), Top: 20, Base: float64(h - 56), YTitle: yTitle, XTitle: xTitle}
	ticks := niceTicks(top)
	p.top = ticks[len(ticks)-1]
	for _, t := range ticks {
		p.YTicks = append(p.YTicks, tick{Pos: p.y(t), Label: shortNum(t)})
	}
	return p
}

func (p plot) y(v int) float64 { return p.Base - (p.Base-p.Top)*float64(v)/float64(p.top) }

// MidY is the middle of the plotting area (where the y title goes).
func (p plot) MidY() float64 { return (p.Top + p.Base) / 2 }

// MidX is the middle of the plotting area (where the x title goes).
func (p plot) MidX() float64 { return (p.Left + p.Right) / 2 }

// vbar is one vertical bar with its value.
type vbar struct {
	X, Y, W, H float64
	Value      int
	Label      string
	Color      string
	Title      string
}

// line is one key's series in the usage chart.
type line struct {
	Key    string
	Name   string
	Points string
	Dots   []vbar // a marker per point (X, Y)
	Color  string
	Total  int
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"}

// usageView is the usage chart: lines over time, or bars when the
// traffic falls in one period.
type usageView struct {
	Plot  plot
	Unit  string
	Lines []line
	Bars  []vbar
	Empty bool
}

// bucketOf groups a day (YYYY-MM-DD) into the chart's period.
func bucketOf(day, unit string) string {
	switch unit {
	case "month":
		return day[:7]
	case "week":
		t, err := time.Parse("2006-01-02", day)
		if err != nil {
			return day
		}
		return t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)).Format("2006-01-02")
	}
	return day
}

// periods lists the chart's periods from the first day to the last, so
// quiet periods show as zeros.
func periods(days []string) (unit string, out []string) {
	first, err1 := time.Parse("2006-01-02", days[0])
	last, err2 := time.Parse("2006-01-02", days[len(days)-1])
	if err1 != nil || err2 != nil {
		return "day", days
	}
	span := int(last.Sub(first).Hours()/24) + 1
	unit = "day"
	switch {
	case span > 400:
		unit = "month"
	case span > 92:
		unit = "week"
	}
	seen := map[string]bool{}
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		b := bucketOf(d.Format("2006-01-02"), unit)
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return unit, out
}

func usageChart(series []Series, name func(string) string, width, height int) usageView {
	daySet := map[string]bool{}
	for _, s := range series {
		for d := range s.Counts {
			daySet[d] = true
		}
	}
	days := slices.Sorted(maps.Keys(daySet))
	if len(days) == 0 {
		return usageView{Plot: newPlot(width, height, 1, "operations", ""), Empty: true}
	}
	unit, buckets := periods(days)
	index := map[string]int{}
	for i, b := range buckets {
		index[b] = i
	}
	sums := make([][]int, len(series))
	top := 1
	for i, s := range series {
		sums[i] = make([]int, len(buckets))
		for d, n := range s.Counts {
			sums[i][index[bucketOf(d, unit)]] += n
		}
		top = max(top, slices.Max(sums[i]))
	}
	xTitle := unit + " (UTC)"
	if unit == "week" {
		xTitle = "week starting (UTC)"
	}
	v := usageView{Plot: newPlot(width, height, top, "operations per "+unit, xTitle), Unit: unit}
	p := v.Plot
	slot := (p.Right - p.Left) / float64(len(buckets))
	every := max(1, int(math.Ceil(float64(len(buckets))/math.Max(1, (p.Right-p.Left)/80))))
	for i, b := range buckets {
		if i%every == 0 {
			p.XTicks = append(p.XTicks, tick{Pos: p.Left + slot*(float64(i)+0.5), Label: b})
		}
	}
	v.Plot = p
	if len(buckets) == 1 {
		// One period of traffic: a bar per key, each labelled.
		bw := math.Min(80, (p.Right-p.Left)/float64(len(series)+1))
		for i, s := range series {
			n := sums[i][0]
			x := p.Left + (p.Right-p.Left)/2 - bw*float64(len(series))/2 + bw*float64(i) + 4
			v.Bars = append(v.Bars, vbar{X: x, Y: p.y(n), W: bw - 8, H: p.Base - p.y(n), Value: n, Label: shortNum(n),
				Color: palette[i%len(palette)], Title: name(s.Key) + ": " + strconv.Itoa(n) + " operations on " + buckets[0]})
			v.Lines = append(v.Lines, line{Key: s.Key, Name: name(s.Key), Color: palette[i%len(palette)], Total: n})
		}
		return v
	}
	for i, s := range series {
		var pts []string
		l := line{Key: s.Key, Name: name(s.Key), Color: palette[i%len(palette)]}
		for j, n := range sums[i] {
			x, y := p.Left+slot*(float64(j)+0.5), p.y(n)
			l.Total += n
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			if len(buckets) <= 60 {
				l.Dots = append(l.Dots, vbar{X: x, Y: y, Value: n, Title: name(s.Key) + ": " + strconv.Itoa(n) + " on " + buckets[j]})
			}
		}
		l.Points = strings.Join(pts, " ")
		v.Lines = append(v.Lines, l)
	}
	return v
}

// barsView is a vertical bar chart.
type barsView struct {
	Plot plot
	Bars []vbar
}

func barChart(labels []string, values []int, color, yTitle, xTitle string, width, height int) barsView {
	top := 1
	for _, v := range values {
		top = max(top, v)
	}
	v := barsView{Plot: newPlot(width, height, top, yTitle, xTitle)}
	p := v.Plot
	if len(values) == 0 {
		return v
	}
	slot := (p.Right - p.Left) / float64(len(values))
	bw := math.Min(70, slot*0.7)
	for i, n := range values {
		x := p.Left + slot*float64(i) + (slot-bw)/2
		h := math.Max(p.Base-p.y(n), 2) // a zero still shows as a sliver
		v.Bars = append(v.Bars, vbar{X: x, Y: p.Base - h, W: bw, H: h, Value: n, Label: labels[i], Color: color,
			Title: labels[i] + ": " + strconv.Itoa(n)})
		v.Plot.XTicks = append(v.Plot.XTicks, tick{Pos: x + bw/2, Label: labels[i]})
	}
	return v
}

// hbar is one row of the rotation-age chart.
type hbar struct {
	Y, W  float64
	Name  string
	Days  int
	Title string
}

// ageView is the rotation-age chart: a row per key, oldest first, with a
// day axis and the cryptoperiod marked.
type ageView struct {
	W, H        int
	Left, Right float64
	Rows        []hbar
	XTicks      []tick
	AxisY, MidX float64
	Limit       float64 // x of the cryptoperiod line (0: off the chart)
	LimitLabel  string
	More        int // keys not shown
}

func ageChart(ages map[string]int, name func(string) string, maxAge, width int) ageView {
	keys := slices.Collect(maps.Keys(ages))
	slices.SortFunc(keys, func(a, b string) int {
		if ages[a] != ages[b] {
			return ages[b] - ages[a]
		}
		return strings.Compare(a, b)
	})
	v := ageView{W: width, Left: 250, Right: float64(width - 20)}
	if len(keys) > 15 {
		v.More = len(keys) - 15
		keys = keys[:15]
	}
	top := max(1, maxAge)
	for _, k := range keys {
		top = max(top, ages[k])
	}
	ticks := niceTicks(top)
	scale := (v.Right - v.Left) / float64(ticks[len(ticks)-1])
	for _, t := range ticks {
		v.XTicks = append(v.XTicks, tick{Pos: v.Left + float64(t)*scale, Label: strconv.Itoa(t)})
	}
	for i, k := range keys {
		d := max(ages[k], 0)
		v.Rows = append(v.Rows, hbar{Y: 20 + float64(i)*24, W: math.Max(float64(d)*scale, 2), Name: name(k), Days: d,
			Title: name(k) + ": current key material is " + strconv.Itoa(d) + " days old"})
	}
	v.AxisY = float64(20 + len(keys)*24 + 4)
	v.H = int(v.AxisY) + 56
	v.MidX = (v.Left + v.Right) / 2
	if maxAge > 0 {
		v.Limit, v.LimitLabel = v.Left+float64(maxAge)*scale, strconv.Itoa(maxAge)+"-day cryptoperiod"
	}
	return v
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"lower": strings.ToLower,
	"num":   func(n uint64) string { return count(n) },
	"half":  func(v float64) float64 { return v / 2 },
	"add":   func(a, b float64) float64 { return a + b },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>keyledger compliance report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{margin-bottom:.2rem} .meta{color:#555;margin-bottom:1rem} .integrity{background:#f6f8fa;border-left:4px solid #1a7f37;padding:.6rem .8rem;margin:1rem 0}
.integrity.bad{border-color:#cf222e}
table{border-collapse:collapse;width:100%;margin:1rem 0} th,td{border:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f4f4f4} .pass{color:#1a7f37;font-weight:bold} .fail{color:#cf222e;font-weight:bold} .warn{color:#9a6700;font-weight:bold} .info{color:#555;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem} figure{margin:0;border:1px solid #eee;padding:.5rem;max-width:100%} figcaption{font-weight:bold;margin-bottom:.3rem}
svg{max-width:100%;height:auto} svg text{font-size:11px;fill:#333} .axis{stroke:#888} .grid{stroke:#eee} .legend span{display:inline-block;width:.8em;height:.8em;margin-right:.3em}
code{font-size:.85em}
</style></head><body>
<h1>keyledger compliance report</h1>
<div class="meta">{{.R.Scope}} · region {{.R.Region}} · generated {{.R.GeneratedAt.UTC.Format "2006-01-02 15:04 MST"}} · {{num .R.Events}} ledger events{{if not .R.FirstEvent.IsZero}} from {{.R.FirstEvent.UTC.Format "2006-01-02 15:04"}} to {{.R.LastEvent.UTC.Format "2006-01-02 15:04 MST"}}{{end}} · {{.R.Keys}} keys</div>
{{with .Integrity}}<p class="integrity{{if ne .Status "PASS"}} bad{{end}}" id="integrity"><strong>Integrity ({{.Status}}):</strong> {{.Summary}}</p>{{end}}
<h2>Checks</h2>
<table><tr><th>Status</th><th>Check</th><th>Source</th><th>Findings</th></tr>
{{range .Checks}}<tr><td class="{{lower .Status}}">{{.Status}}</td><td>{{.Title}}</td><td>{{.Source}}</td>
<td>{{if .Findings}}<ul>{{range .Findings}}<li>{{if .Name}}<strong>{{.Name}}</strong> {{end}}<code>{{.Resource}}</code>: {{.Detail}}</li>{{end}}</ul>{{else}}{{.Summary}}{{end}}</td></tr>
{{end}}</table>
<h2>Charts</h2>
<div class="charts">
{{with .Usage}}<figure id="usage-chart"><figcaption>Usage of the busiest keys (successful cryptographic operations per {{if .Unit}}{{.Unit}}{{else}}day{{end}})</figcaption>
<svg width="{{.Plot.W}}" height="{{.Plot.H}}" viewBox="0 0 {{.Plot.W}} {{.Plot.H}}" role="img" aria-label="usage over time">
{{$p := .Plot}}{{range $p.YTicks}}<line class="grid" x1="{{$p.Left}}" x2="{{$p.Right}}" y1="{{.Pos}}" y2="{{.Pos}}"/><text x="{{add $p.Left -6}}" y="{{add .Pos 4}}" text-anchor="end">{{.Label}}</text>{{end}}
<line class="axis" x1="{{$p.Left}}" y1="{{$p.Base}}" x2="{{$p.Right}}" y2="{{$p.Base}}"/><line class="axis" x1="{{$p.Left}}" y1="{{$p.Top}}" x2="{{$p.Left}}" y2="{{$p.Base}}"/>
<text x="14" y="{{$p.MidY}}" transform="rotate(-90 14 {{$p.MidY}})" text-anchor="middle">{{$p.YTitle}}</text>
{{range $p.XTicks}}<text x="{{.Pos}}" y="{{add $p.Base 16}}" text-anchor="middle">{{.Label}}</text>{{end}}
<text x="{{$p.MidX}}" y="{{add $p.Base 44}}" text-anchor="middle">{{$p.XTitle}}</text>
{{if .Empty}}<text x="{{$p.MidX}}" y="{{$p.MidY}}" text-anchor="middle">no cryptographic operations in the covered period</text>{{end}}
{{range .Bars}}<rect class="bar" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Title}}</title></rect><text x="{{add .X (half .W)}}" y="{{add .Y -4}}" text-anchor="middle">{{.Label}}</text>{{end}}
{{range .Lines}}{{if .Points}}<polyline class="series" fill="none" stroke="{{.Color}}" stroke-width="2" points="{{.Points}}"/>{{$c := .Color}}{{range .Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="3" fill="{{$c}}"><title>{{.Title}}</title></circle>{{end}}{{end}}{{end}}
</svg>
<div class="legend">{{range .Lines}}<div><span style="background:{{.Color}}"></span>{{.Name}} — {{.Total}} operations</div>{{end}}</div></figure>{{end}}
{{with .States}}<figure id="state-chart"><figcaption>Keys by state</figcaption>
<svg width="{{.Plot.W}}" height="{{.Plot.H}}" viewBox="0 0 {{.Plot.W}} {{.Plot.H}}" role="img" aria-label="keys by state">
{{$p := .Plot}}{{range $p.YTicks}}<line class="grid" x1="{{$p.Left}}" x2="{{$p.Right}}" y1="{{.Pos}}" y2="{{.Pos}}"/><text x="{{add $p.Left -6}}" y="{{add .Pos 4}}" text-anchor="end">{{.Label}}</text>{{end}}
<line class="axis" x1="{{$p.Left}}" y1="{{$p.Base}}" x2="{{$p.Right}}" y2="{{$p.Base}}"/><line class="axis" x1="{{$p.Left}}" y1="{{$p.Top}}" x2="{{$p.Left}}" y2="{{$p.Base}}"/>
<text x="14" y="{{$p.MidY}}" transform="rotate(-90 14 {{$p.MidY}})" text-anchor="middle">{{$p.YTitle}}</text>
{{range .Bars}}<rect class="bar" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Title}}</title></rect><text x="{{add .X (half .W)}}" y="{{add .Y -4}}" text-anchor="middle">{{.Value}}</text><text x="{{add .X (half .W)}}" y="{{add $p.Base 16}}" text-anchor="middle">{{.Label}}</text>{{end}}
</svg></figure>{{end}}
{{with .Ages}}<figure id="rotation-chart"><figcaption>Rotation age: days since each key's current material (oldest first)</figcaption>
<svg width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="rotation age in days per key">
{{$v := .}}{{range .XTicks}}<line class="grid" x1="{{.Pos}}" x2="{{.Pos}}" y1="14" y2="{{$v.AxisY}}"/><text x="{{.Pos}}" y="{{add $v.AxisY 14}}" text-anchor="middle">{{.Label}}</text>{{end}}
<line class="axis" x1="{{.Left}}" y1="{{.AxisY}}" x2="{{.Right}}" y2="{{.AxisY}}"/><line class="axis" x1="{{.Left}}" y1="14" x2="{{.Left}}" y2="{{.AxisY}}"/>
<text x="{{.MidX}}" y="{{add .AxisY 32}}" text-anchor="middle">days since the current key material was created</text>
{{range .Rows}}<text x="{{add $v.Left -6}}" y="{{add .Y 13}}" text-anchor="end">{{.Name}}</text><rect class="bar" x="{{$v.Left}}" y="{{.Y}}" width="{{.W}}" height="18" fill="#ff7f0e"><title>{{.Title}}</title></rect><text x="{{add $v.Left (add .W 4)}}" y="{{add .Y 13}}">{{.Days}} d</text>{{end}}
{{if .Limit}}<line x1="{{.Limit}}" x2="{{.Limit}}" y1="14" y2="{{.AxisY}}" stroke="#cf222e" stroke-dasharray="4 3"/><text x="{{.Limit}}" y="11" text-anchor="end" fill="#cf222e">{{.LimitLabel}}</text>{{end}}
{{if .More}}<text x="{{.Left}}" y="{{add .AxisY 46}}">and {{.More}} younger keys</text>{{end}}
</svg></figure>{{end}}
</div>
</body></html>
`))

// findingView is a finding with the key's alias beside its ARN.
type findingView struct {
	Name, Resource, Detail string
}

type checkView struct {
	Status, Title, Source, Summary string
	Findings                       []findingView
}

// HTML writes a self-contained page (inline CSS and SVG, no scripts).
func (r *Report) HTML(w io.Writer) error {
	name := func(keyID string) string {
		if as := r.Aliases[keyID]; len(as) > 0 {
			return strings.Join(as, ", ") + " (" + keyID + ")"
		}
		return keyID
	}
	shortName := func(keyID string) string {
		id := keyID
		if len(id) > 8 {
			id = id[:8] + "…"
		}
		if as := r.Aliases[keyID]; len(as) > 0 {
			n := strings.Join(as, ", ")
			if len(n) > 26 {
				n = n[:25] + "…"
			}
			return n + " (" + id + ")"
		}
		return keyID
	}
	var checks []checkView
	var integrity *checkView
	for _, c := range r.Checks {
		cv := checkView{Status: c.Status, Title: c.Title, Source: c.Source, Summary: c.Summary}
		for _, f := range c.Findings {
			fv := findingView{Resource: f.Resource, Detail: f.Detail}
			if i := strings.LastIndex(f.Resource, ":key/"); i >= 0 {
				if as := r.Aliases[f.Resource[i+len(":key/"):]]; len(as) > 0 {
					fv.Name = strings.Join(as, ", ")
				}
			}
			cv.Findings = append(cv.Findings, fv)
		}
		checks = append(checks, cv)
		if c.ID == "audit-integrity" {
			integrity = &checks[len(checks)-1]
		}
	}
	if integrity != nil {
		copied := *integrity
		integrity = &copied
	}
	var stateLabels []string
	var stateValues []int
	for _, s := range slices.Sorted(maps.Keys(r.KeysByState)) {
		stateLabels, stateValues = append(stateLabels, s), append(stateValues, r.KeysByState[s])
	}
	return page.Execute(w, map[string]any{
		"R": r, "Checks": checks, "Integrity": integrity,
		"Usage":  usageChart(r.Usage, name, 620, 300),
		"States": barChart(stateLabels, stateValues, "#1f77b4", "keys", "", 380, 300),
		"Ages":   ageChart(r.RotationAge, shortName, 365, 620),
	})
}
